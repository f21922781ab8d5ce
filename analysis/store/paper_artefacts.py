"""`import-paper-artefacts`: the paper's whole zoo into the store, from the extracted `artefacts/` folder or streamed
from `artefacts.tar.gz` / `models-imagenet.tar.gz` (never extracted to disk).

Layout: `imagenet/samples_info.npz` (`sample_files`, `targets`: the ImageFolder order of the validation images) and
`imagenet/<model_dir_id>/preds.npz` (`top1 (50000,)`, `top5 (50000, 5)`, `probs`) with `metadata.json` (`model_id`,
`arch`, `arch_family`, `training_data`, `num_params`, ...); `<model_dir_id>` is the model id with `/` written as `--`.
Only `top1` and `top5` are read (never `probs`, never a pickle); everything else in the archive is ignored.

Models are written in batches of `BATCH_MODELS` by `publish.publish_models`, one transaction per batch (predictions,
one classification of the batch's pairs that no stored model made yet, the summaries and the `models` rows, source
`paper`). A bad model stops the import with a message naming its folder and member: the models read before it are
written first and stay, and a rerun skips every model already stored with all its predictions, so it resumes where it
stopped (an interrupt or a failed write loses at most the batch being written).
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from analysis import paths
from analysis.errors import UserError
from analysis.knowledge import artefacts, classes
from analysis.knowledge.artefacts import ArchiveError
from analysis.store import database, publish, queries

DATASET = "imagenet-val"
SAMPLES_INFO, PREDS, METADATA = "samples_info.npz", "preds.npz", "metadata.json"
FAMILIES = ("mlp", "cnn", "transformer", "hybrid")
PINNED_NAME = "artefacts.tar.gz"  # the one archive with a pinned sha256 (artefacts.ARTEFACTS_SHA256)
MAX_METADATA_BYTES = 1 << 20
MAX_ARRAY_BYTES = 64 << 20  # top1, top5 and samples_info's arrays are a few MB each
MAX_PREDS_BYTES = 8 << 30  # a preds.npz with float32 probs is ~200 MB
_CHUNK = 1 << 20
BATCH_MODELS = 32  # models per transaction: ~20 MB of pending predictions, pairs classified once per batch


def _role(path: PurePosixPath) -> tuple[str, str | None] | None:
    """(SAMPLES_INFO, None) or (PREDS | METADATA, model folder) for the members the import reads; None otherwise."""
    parts = path.parts
    if len(parts) >= 2 and parts[-2] == "imagenet" and parts[-1] == SAMPLES_INFO:
        return SAMPLES_INFO, None
    if len(parts) >= 3 and parts[-3] == "imagenet" and parts[-1] in (PREDS, METADATA):
        return parts[-1], parts[-2]
    return None


def read_arrays(source, fields: tuple[str, ...], where: str) -> dict[str, np.ndarray]:
    """The arrays `fields` of an npz (a path or a seekable file), read member by member without unpickling.

    Only the named members are decompressed (so a preds.npz's `probs` is never read); ArchiveError names `where`.
    """
    try:
        with zipfile.ZipFile(source) as npz:
            out = {}
            for name in fields:
                try:
                    info = npz.getinfo(f"{name}.npy")
                except KeyError:
                    raise ArchiveError(f"{where} has no field {name!r} (it holds {sorted(npz.namelist())}); "
                                       f"the paper's file holds {', '.join(fields)}") from None
                if info.file_size > MAX_ARRAY_BYTES:
                    raise ArchiveError(f"{where}: field {name!r} is {info.file_size} bytes uncompressed, more than "
                                       f"{MAX_ARRAY_BYTES}; it is not the paper's file")
                with npz.open(info) as handle:
                    try:
                        out[name] = np.lib.format.read_array(handle, allow_pickle=False)
                    except ValueError as exc:
                        if "allow_pickle" in str(exc):
                            raise ArchiveError(f"{where}: field {name!r} is a pickled object array; refusing to "
                                               "unpickle it (the paper's arrays are plain numbers and strings)"
                                               ) from None
                        raise ArchiveError(f"{where}: field {name!r} is not a readable array ({exc})") from None
            return out
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ArchiveError(f"{where} is not a readable .npz file ({exc})") from None


def read_metadata(data: bytes, folder: str, where: str) -> publish.ModelRecord:
    """The `models` row of a model from its metadata.json (source `paper`, the whole object kept as metadata)."""
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArchiveError(f"{where} is not readable JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ArchiveError(f"{where} is not a JSON object with model_id, arch, arch_family, training_data, num_params")
    model_id = meta.get("model_id")
    if not isinstance(model_id, str) or model_id.replace("/", "--") != folder:
        raise ArchiveError(f"{where}: field 'model_id' = {model_id!r} is not the model of folder {folder!r} "
                           "(the folder is the model id with '/' written as '--')")
    for name in ("arch", "arch_family", "training_data"):
        if meta.get(name) is not None and not isinstance(meta[name], str):
            raise ArchiveError(f"{where}: field {name!r} = {meta[name]!r} must be a string")
    family = meta.get("arch_family")
    if family is not None and family not in FAMILIES:
        raise ArchiveError(f"{where}: field 'arch_family' = {family!r} is not one of {', '.join(FAMILIES)}")
    params = meta.get("num_params")
    if params is not None and (isinstance(params, bool) or not isinstance(params, (int, float)) or params != params
                               or not 0 <= params <= publish.MAX_PARAMS or params != int(params)):
        raise ArchiveError(f"{where}: field 'num_params' = {params!r} must be a whole number of parameters")
    try:
        return publish.ModelRecord(model_id, "paper", arch=meta.get("arch"), family=family,
                                   training_data=meta.get("training_data"),
                                   params=None if params is None else int(params),
                                   metadata={**meta, "model_dir_id": folder})
    except ValueError as exc:
        raise ArchiveError(f"{where}: {exc}") from None


def check_predictions(arrays: dict[str, np.ndarray], n: int, where: str) -> np.ndarray:
    """`(n, 6)` int16: top1 then top5 of a preds.npz, in its (ImageFolder) row order, after checking every value."""
    top1, top5 = arrays["top1"], arrays["top5"]
    for name, values, shape in (("top1", top1, (n,)), ("top5", top5, (n, 5))):
        if values.shape != shape:
            raise ArchiveError(f"{where}: field {name!r} has shape {values.shape}; expected {shape} "
                               f"(one row per image of {DATASET})")
        if not np.issubdtype(values.dtype, np.integer):
            raise ArchiveError(f"{where}: field {name!r} has dtype {values.dtype}; expected integer class ids 0-999")
        bad = np.flatnonzero((values < 0) | (values >= classes.NUM_CLASSES))
        if len(bad):
            row = int(bad[0]) // (5 if values.ndim == 2 else 1)
            raise ArchiveError(f"{where}: field {name!r} row {row} holds {values.reshape(-1)[bad[0]]}, not a class "
                               f"id 0-999 ({len(bad)} such values)")
    differ = np.flatnonzero(top1 != top5[:, 0])
    if len(differ):
        row = int(differ[0])
        raise ArchiveError(f"{where}: row {row}: field 'top1' {top1[row]} differs from top5[0] {top5[row, 0]} "
                           f"({len(differ)} rows differ)")
    return np.column_stack([top1, top5]).astype(np.int16)


class _StoredImages:
    """The store's imagenet-val images: targets, and the image id of each validation file index."""

    def __init__(self, con) -> None:
        if database.first(con, queries.DATASET_GET, [DATASET]) is None:
            raise database.StoreError(f"dataset {DATASET!r} is not in the store; run `python -m analysis build` first")
        stored = con.execute(queries.IMAGES_OF, [DATASET]).fetchnumpy()
        self.ids = np.asarray(stored["image_id"], dtype=np.int32)
        self.targets = np.asarray(stored["target"], dtype=np.int64)
        self.by_index = np.full(classes.NUM_VAL, -1, dtype=np.int64)  # validation index -> row of self.ids
        for row, name in enumerate(stored["file_name"].tolist()):
            self.by_index[classes.val_index(name)] = row

    def order(self, arrays: dict[str, np.ndarray], where: str) -> np.ndarray:
        """Image id of each row of the archive's files (ImageFolder order), checked against the store's targets."""
        files, targets = arrays["sample_files"], arrays["targets"]
        n = len(self.ids)
        if files.shape != (n,) or files.dtype.kind not in "US":
            raise ArchiveError(f"{where}: field 'sample_files' has shape {files.shape} and dtype {files.dtype}; "
                               f"expected {n} file names (wnid/ILSVRC2012_val_NNNNNNNN.JPEG)")
        if targets.shape != (n,) or not np.issubdtype(targets.dtype, np.integer):
            raise ArchiveError(f"{where}: field 'targets' has shape {targets.shape} and dtype {targets.dtype}; "
                               f"expected {n} integer class ids")
        index = np.empty(n, dtype=np.int64)
        for row, name in enumerate(files.tolist()):
            try:
                index[row] = classes.val_index(PurePosixPath(name.replace("\\", "/")).name)
            except ValueError:
                raise ArchiveError(f"{where}: sample_files[{row}] = {name!r} is not an ImageNet validation file "
                                   "(wnid/ILSVRC2012_val_NNNNNNNN.JPEG)") from None
        rows = self.by_index[index]
        seen = np.bincount(index, minlength=classes.NUM_VAL)
        if (seen > 1).any() or (rows < 0).any():
            row = int(np.flatnonzero((seen[index] > 1) | (rows < 0))[0])
            raise ArchiveError(f"{where}: sample_files[{row}] = {files[row]!r} appears more than once or is not an "
                               f"image of the store's {DATASET}")
        differ = np.flatnonzero(targets != self.targets[rows])
        if len(differ):
            row = int(differ[0])
            raise ArchiveError(f"{where}: sample_files[{row}] = {files[row]!r} has target {targets[row]}, but the "
                               f"store's {DATASET} has {self.targets[rows[row]]} ({len(differ)} rows disagree); "
                               "the archive's images are not this store's validation set")
        return self.ids[rows]


@dataclass
class _Model:
    """What the import has seen of one model folder."""

    folder: str
    members: dict[str, str] = field(default_factory=dict)  # PREDS / METADATA -> member name
    record: publish.ModelRecord | None = None
    preds: np.ndarray | Path | None = None  # (N, 6) int16 in file order, or spooled while samples_info is unseen


class _Zoo:
    """The import's state: the file order once samples_info is read, models waiting for it, and the counts."""

    def __init__(self, con, source: Path, done: set[str], bar) -> None:
        self.con, self.source, self.done, self.bar = con, source, done, bar
        self.images = _StoredImages(con)
        self.order: np.ndarray | None = None  # image id of each file row
        self.rows_of: np.ndarray | None = None  # file row of each image, in image-id order
        self.models: dict[str, _Model] = {}
        self.waiting: list[_Model] = []
        self.spool: tempfile.TemporaryDirectory | None = None
        self.skipped: set[str] = set()
        self.published: dict[str, _Model] = {}
        self.pending: list[tuple[publish.ModelRecord, object]] = []  # read, not yet written: (record, rows)
        self.counts = {"imported": 0, "skipped": 0, "predictions": 0, "new_pairs": 0}

    def where(self, member: str) -> str:
        return f"{self.source}: {member}" if self.source.is_file() else member

    def skip(self, folder: str) -> bool:
        """True for the files of a model already stored with all its predictions (counted once)."""
        if folder not in self.done:
            return False
        if folder not in self.skipped:
            self.skipped.add(folder)
            self.counts["skipped"] += 1
            self.bar.update(1)
        return True

    def samples(self, source, member: str) -> None:
        where = self.where(member)
        if self.order is not None:
            raise ArchiveError(f"{where}: a second {SAMPLES_INFO}; the archive must hold one imagenet/ folder")
        self.order = self.images.order(read_arrays(source, ("sample_files", "targets"), where), where)
        self.rows_of = np.argsort(self.order)
        waiting, self.waiting = self.waiting, []
        for model in waiting:
            self.publish(model)

    def model(self, folder: str, kind: str, member: str) -> _Model:
        model = self.models.setdefault(folder, self.published.get(folder) or _Model(folder))
        if kind in model.members:
            raise ArchiveError(f"{self.where(member)}: model folder {folder!r} has a second {kind} "
                               f"(also {model.members[kind]!r}); the archive must hold one imagenet/ folder")
        model.members[kind] = member
        return model

    def metadata(self, folder: str, data: bytes, member: str) -> None:
        model = self.model(folder, METADATA, member)
        model.record = read_metadata(data, folder, self.where(member))
        self.ready(model)

    def preds(self, folder: str, source, member: str) -> None:
        model = self.model(folder, PREDS, member)
        where = self.where(member)
        model.preds = check_predictions(read_arrays(source, ("top1", "top5"), where), len(self.images.ids), where)
        self.ready(model)

    def ready(self, model: _Model) -> None:
        if model.record is None or model.preds is None:
            return
        if self.order is not None:
            self.publish(model)
            return
        if self.spool is None:
            self.spool = tempfile.TemporaryDirectory(prefix="paper-artefacts-")
        path = Path(self.spool.name) / f"{len(self.waiting)}.npy"
        np.save(path, model.preds)
        model.preds = path
        self.waiting.append(model)

    def publish(self, model: _Model) -> None:
        preds = np.load(model.preds) if isinstance(model.preds, Path) else model.preds
        rows_of = self.rows_of
        rows = publish.prediction_table(self.order[rows_of], preds[rows_of, 0], top5=preds[rows_of, 1:])
        del self.models[model.folder]
        self.published[model.folder] = _Model(model.folder, model.members)  # its names, for a second copy's message
        self.pending.append((model.record, rows))
        if len(self.pending) >= BATCH_MODELS:
            self.flush()

    def flush(self) -> None:
        """Write the pending models in one transaction (a model stored in part is replaced: a resume)."""
        batch, self.pending = self.pending, []
        if not batch:
            return
        out = publish.publish_models(self.con, DATASET, batch, replace=True)
        self.counts["imported"] += out["models"]
        self.counts["predictions"] += out["predictions"]
        self.counts["new_pairs"] += out["new_pairs"]
        self.bar.update(out["models"])
        self.bar.set_postfix_str(f"{batch[-1][0].model_id}, {self.counts['new_pairs']} pairs classified",
                                 refresh=False)

    def finish(self) -> None:
        """Errors for what the archive lacks: samples_info, or one of a model's two files."""
        if self.order is None and (self.waiting or self.models):
            raise ArchiveError(f"{self.source} has no imagenet/{SAMPLES_INFO}, so the row order of the models' "
                               "predictions is unknown; is it the paper's artefacts folder or archive?")
        for model in self.models.values():
            has, lacks = (PREDS, METADATA) if PREDS in model.members else (METADATA, PREDS)
            kept = f"; the {self.counts['imported']} models imported before stay" if self.counts["imported"] else ""
            raise ArchiveError(f"{self.where(model.members[has])}: model folder {model.folder!r} has {has} but no "
                               f"{lacks}; the archive is incomplete{kept}")


def _imagenet_folder(path: Path) -> Path:
    """The `imagenet/` folder of an extracted artefacts folder (PATH/imagenet, PATH itself, or PATH/*/imagenet)."""
    for candidate in (path / "imagenet", path, *sorted(path.glob("*/imagenet"))):
        if candidate.name == "imagenet" and (candidate / SAMPLES_INFO).exists():
            return candidate
    raise ArchiveError(f"{path} has no imagenet/{SAMPLES_INFO}; pass the extracted artefacts/ folder (holding "
                       "imagenet/samples_info.npz and imagenet/<model>/preds.npz), models-imagenet.tar.gz or "
                       "artefacts.tar.gz")


def _read_folder(zoo: _Zoo, path: Path) -> None:
    """Every model of an extracted folder; each file is checked to exist first, so a missing one writes nothing."""
    root = _imagenet_folder(path)
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    files = (root / SAMPLES_INFO, *(d / name for d in folders for name in (METADATA, PREDS)))
    for file in (*folders, *files):
        if file.is_symlink():
            raise ArchiveError(f"{file} is a symbolic link; refusing it (the paper's files are regular files)")
    for file in files:
        if not file.is_file():
            raise ArchiveError(f"{file}: model folder {file.parent.name!r} has no {file.name}; every model folder "
                               f"holds {METADATA} and {PREDS}")
    zoo.bar.reset(total=len(folders))
    zoo.samples(root / SAMPLES_INFO, str(root / SAMPLES_INFO))
    for folder in folders:
        if zoo.skip(folder.name):
            continue
        meta = folder / METADATA
        if meta.stat().st_size > MAX_METADATA_BYTES:
            raise ArchiveError(f"{meta} is {meta.stat().st_size} bytes, more than {MAX_METADATA_BYTES}; not a "
                               "metadata.json of the paper")
        zoo.metadata(folder.name, meta.read_bytes(), str(meta))
        zoo.preds(folder.name, folder / PREDS, str(folder / PREDS))


def _spool(tar: tarfile.TarFile, member: tarfile.TarInfo, target, where: str) -> None:
    """Copy a member's bytes from the stream into `target`; ArchiveError when the archive breaks off."""
    handle = tar.extractfile(member)
    while True:
        try:
            chunk = handle.read(_CHUNK)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise ArchiveError(f"{where}: the archive cannot be read as a tar archive past this member; it is "
                               f"damaged or truncated ({exc})") from None
        if not chunk:
            return
        try:
            target.write(chunk)
        except OSError as exc:
            raise UserError(f"{where} cannot be spooled to the temporary folder {tempfile.gettempdir()} ({exc}); "
                            "free space there or point TMPDIR elsewhere") from None


def _read_archive(zoo: _Zoo, archive: Path) -> None:
    """Every model of a tar archive, streamed once in member order; no member is extracted to disk."""
    for member, tar in artefacts.members(archive, progress=False):
        try:
            path = artefacts.safe_name(member.name)
        except ArchiveError as exc:
            raise ArchiveError(f"{archive}: {exc}") from None
        role = _role(path)
        if role is None:
            continue
        kind, folder = role
        where = zoo.where(member.name)
        if not member.isfile():
            raise ArchiveError(f"{where} is not a regular file (a link or a device); refusing it")
        if folder is not None and zoo.skip(folder):
            continue
        limit = MAX_METADATA_BYTES if kind == METADATA else MAX_PREDS_BYTES
        if member.size > limit:
            raise ArchiveError(f"{where} is {member.size} bytes, more than {limit}; not the paper's {kind}")
        with tempfile.SpooledTemporaryFile(max_size=MAX_ARRAY_BYTES) as buffer:
            _spool(tar, member, buffer, where)
            buffer.seek(0)
            if kind == METADATA:
                zoo.metadata(folder, buffer.read(), member.name)
            elif kind == PREDS:
                zoo.preds(folder, buffer, member.name)
            else:
                zoo.samples(buffer, member.name)


def _complete_models(con, images: int) -> set[str]:
    """Folders (model ids with '/' as '--') of the models stored with all `images` predictions on imagenet-val."""
    counts = con.execute(queries.PREDICTION_COUNTS, [DATASET]).fetchall()
    return {model_id.replace("/", "--") for model_id, n in counts if n == images}


def import_artefacts(path: Path | str, *, db: Path | str | None = None, con=None, progress: bool = True,
                     log: Callable[[str], None] | None = None,
                     expected_sha256: str = artefacts.ARTEFACTS_SHA256) -> dict:
    """Import every model of the paper's artefacts (folder or archive) that the store lacks; see the module doc.

    `artefacts.tar.gz` must have `expected_sha256` (the pinned one); other archives have none (`log` says so).
    Returns {source, check, imported, skipped, predictions, new_pairs}. Bad input raises ArchiveError naming the
    member; the models imported before it stay.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path={path!r} must be the artefacts/ folder, models-imagenet.tar.gz or artefacts.tar.gz")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; pass the extracted artefacts/ folder, models-imagenet.tar.gz "
                                "or artefacts.tar.gz (linked from the README of eth-sri/automated-error-analysis)")
    say = log or (lambda message: None)
    bar_on = progress and sys.stderr.isatty()
    own = con is None
    if own:
        db_path = database.check_exists(paths.db_path(db))
        con = database.connect(db_path)  # first: a locked store fails before the slow reading
    try:
        publish.check_superclasses(con)
        if path.is_dir():
            check = "an extracted folder: no archive checksum"
        elif path.name == PINNED_NAME:
            artefacts.verify(path, expected_sha256=expected_sha256, progress=bar_on)
            check = f"sha256 {expected_sha256[:12]}... verified"
        else:
            check = (f"no pinned sha256 for {path.name} (only {PINNED_NAME} has one); every member is checked as it "
                     "is read")
        say(f"{path}: {check}")
        from tqdm import tqdm

        with tqdm(desc="importing models", unit="model", file=sys.stderr, disable=not bar_on) as bar:
            zoo = _Zoo(con, path, set(), bar)
            zoo.done = _complete_models(con, len(zoo.images.ids))
            try:
                try:
                    (_read_folder if path.is_dir() else _read_archive)(zoo, path)
                except Exception:
                    try:  # the models read before the bad one stay, as if written one by one
                        zoo.flush()
                    except Exception:  # noqa: S110 - the reading error is the one to report; a rerun resumes
                        pass
                    raise
                zoo.flush()
                zoo.finish()
            finally:
                if zoo.spool is not None:
                    zoo.spool.cleanup()
    finally:
        if own:
            con.close()
    return {"source": str(path), "check": check, **zoo.counts}


def cli_import_artefacts(args: argparse.Namespace) -> int:
    """`python -m analysis import-paper-artefacts PATH [--db FILE]`."""
    out = import_artefacts(args.path, db=args.db, log=print)
    print(f"imported {out['imported']} models from {out['source']} ({out['predictions']} predictions, "
          f"{out['new_pairs']} new pairs classified); {out['skipped']} already stored, skipped")
    return 0

"""Import prediction files into the store: the paper's `preds.npz`, Vasudevan-style logits, and CSV.

Formats (DESIGN §6):
- `paper-npz`: `top1 (N,)`, `top5 (N, 5)`, `probs (N, 1000)` in ImageFolder order (classes sorted by wnid,
  then file names), with `metadata.json` (arch, family, training data, params) next to it;
- `logits`: a `.npy` array `(N, 1000)` in image-id order (validation-file order for imagenet-val);
- `csv`: columns `file_name`, `prediction` and optionally `top5` (5 space-separated class ids), read in blocks
  so a file of any size needs little memory; it must cover every image of the dataset unless `partial=True`.
Every file is checked completely before anything is written; the write itself is one transaction.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from analysis import paths
from analysis.errors import one_line
from analysis.knowledge.classes import NUM_CLASSES
from analysis.store import database, publish, queries, shards

FORMATS = ("paper-npz", "logits", "csv")
_SUFFIX_FORMATS = {".npz": "paper-npz", ".npy": "logits", ".csv": "csv"}
_METADATA_KEYS = {  # our field -> accepted keys in metadata.json, first wins
    "arch": ("arch", "architecture"),
    "family": ("family", "arch_family"),
    "training_data": ("training_data", "training data", "dataset", "pretraining_data"),
    "params": ("params", "num_params", "n_params"),
}
_CHUNK = 5000
CSV_BLOCK_BYTES = 1 << 22  # the CSV is parsed and checked this many bytes at a time
_HEADER_BYTES = 1 << 20  # a CSV header line longer than this is refused
_METADATA_DEPTH = 32  # metadata.json nested deeper than this is refused
_NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive (np.savez), or an empty one
_NPY_MAGIC = b"\x93NUMPY"


@dataclass
class Predictions:
    """Checked predictions of one file: `image_ids (N,)`, `top1 (N,)`, `top5 (N, 5)` or None, `top5_confidence (N, 5)` or None."""

    image_ids: np.ndarray
    top1: np.ndarray
    top5: np.ndarray | None
    top5_confidence: np.ndarray | None


class _Images:
    """The stored images of a dataset: file names by image id and ImageFolder order."""

    def __init__(self, con, dataset: str) -> None:
        if database.first(con, queries.DATASET_GET, [dataset]) is None:
            raise ValueError(f"dataset={dataset!r} is not in the store; run `python -m analysis build` first")
        stored = con.execute(queries.IMAGES_OF, [dataset]).fetchnumpy()
        self.dataset = dataset
        self.ids = np.asarray(stored["image_id"], dtype=np.int32)
        self.names = np.asarray(stored["file_name"], dtype=object)
        self.imagefolder = np.asarray(con.execute(queries.IMAGEFOLDER_ORDER, [dataset]).fetchnumpy()["image_id"],
                                      dtype=np.int32)

    def name(self, image_id: int) -> str:
        return str(self.names[int(np.searchsorted(self.ids, image_id))])


def _class_ids(path: Path, field: str, values: np.ndarray, image_ids: np.ndarray, images: _Images) -> np.ndarray:
    if values.size and not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{path}: field {field!r} has dtype {values.dtype}; expected integer class ids 0-999")
    bad = np.flatnonzero((values < 0) | (values >= NUM_CLASSES)) if values.size else []
    if len(bad):
        row = int(bad[0]) // (values.shape[1] if values.ndim == 2 else 1)
        raise ValueError(f"{path}: field {field!r} row {row} ({images.name(image_ids[row])}) holds "
                         f"{values.reshape(-1)[bad[0]]}, not a class id 0-999 ({len(bad)} such values)")
    return values.astype(np.int16)


def _shape(path: Path, field: str, values: np.ndarray, shape: tuple, images: _Images) -> None:
    if values.shape != shape:
        raise ValueError(f"{path}: field {field!r} has shape {values.shape}; expected {shape} "
                         f"(one row per image of {images.dataset}, {len(images.ids)} images; predictions of only "
                         "some images go in a CSV imported with --partial)")


def numpy_kind(path: Path) -> str | None:
    """'npz' or 'npy' by the file's first bytes, None for anything else (whatever its extension says)."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head[:4] in _NPZ_MAGIC:
        return "npz"
    return "npy" if head == _NPY_MAGIC else None


def _expect_kind(path: Path, want: str) -> None:
    kind = numpy_kind(path)
    if kind == want:
        return
    if kind is None:
        raise ValueError(f"{path}: not a NumPy file (neither a .npz archive nor a .npy array: its first bytes are "
                         "not a NumPy or zip header)")
    if kind == "npy":
        raise ValueError(f"{path}: is a .npy array, not a .npz archive; for logits (N, 1000) pass --format logits")
    raise ValueError(f"{path}: is a .npz archive, not a .npy array of logits; for the paper's preds.npz pass "
                     "--format paper-npz")


def _finite(path: Path, field: str, values: np.ndarray, image_ids: np.ndarray, images: _Images) -> None:
    for start in range(0, len(values), _CHUNK):
        block = np.asarray(values[start:start + _CHUNK])
        rows = np.flatnonzero(~np.isfinite(block).all(axis=1))
        if len(rows):
            row = start + int(rows[0])
            raise ValueError(f"{path}: field {field!r} row {row} ({images.name(image_ids[row])}) holds NaN or "
                             "infinite values")


def read_paper_npz(path: Path, images: _Images) -> Predictions:
    """`preds.npz` with top1 `(N,)`, top5 `(N, 5)`, probs `(N, 1000)` in ImageFolder order → image-id order."""
    _expect_kind(path, "npz")
    field = None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {}
            for field in ("top1", "top5", "probs"):
                if field in archive.files:
                    arrays[field] = archive[field]
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as exc:
        where = f"field {field!r} is damaged" if field else "not a readable .npz archive"
        raise ValueError(f"{path}: {where} ({one_line(exc)}); export the file again") from None
    missing = [k for k in ("top1", "top5") if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}; the paper's preds.npz holds top1, top5 and probs")
    n = len(images.ids)
    order = images.imagefolder  # row r of the file is image order[r]
    _shape(path, "top1", arrays["top1"], (n,), images)
    _shape(path, "top5", arrays["top5"], (n, 5), images)
    top1 = _class_ids(path, "top1", arrays["top1"], order, images)
    top5 = _class_ids(path, "top5", arrays["top5"], order, images)
    differ = np.flatnonzero(top1 != top5[:, 0])
    if len(differ):
        r = int(differ[0])
        raise ValueError(f"{path}: row {r} ({images.name(order[r])}): field 'top1' {top1[r]} differs from "
                         f"top5[0] {top5[r, 0]} ({len(differ)} rows differ)")
    conf = None
    if "probs" in arrays:
        probs = arrays["probs"]
        _shape(path, "probs", probs, (n, NUM_CLASSES), images)
        _finite(path, "probs", probs, order, images)
        conf = np.take_along_axis(np.asarray(probs, dtype=np.float32), top5.astype(np.int64), axis=1)
    inverse = np.argsort(order)  # file row of each image id
    return Predictions(images.ids, top1[inverse], top5[inverse], None if conf is None else conf[inverse])


def top5_of_logits(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-5 class ids `(N, 5)` (best first) and their softmax probabilities `(N, 5)` of `logits (N, C)`."""
    top5 = np.empty((len(logits), 5), dtype=np.int16)
    conf = np.empty((len(logits), 5), dtype=np.float32)
    for start in range(0, len(logits), _CHUNK):
        block = np.asarray(logits[start:start + _CHUNK], dtype=np.float64)
        part = np.argpartition(-block, 5, axis=1)[:, :5]
        order = np.argsort(-np.take_along_axis(block, part, axis=1), axis=1, kind="stable")
        idx = np.take_along_axis(part, order, axis=1)
        shifted = np.exp(block - block.max(axis=1, keepdims=True))
        probs = shifted / shifted.sum(axis=1, keepdims=True)
        top5[start:start + len(block)] = idx
        conf[start:start + len(block)] = np.take_along_axis(probs, idx, axis=1)
    return top5, conf


def read_logits(path: Path, images: _Images) -> Predictions:
    """A `.npy` of logits `(N, 1000)` in image-id order."""
    _expect_kind(path, "npy")
    try:
        logits = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({one_line(exc)})") from None
    _shape(path, "logits", logits, (len(images.ids), NUM_CLASSES), images)
    if not np.issubdtype(logits.dtype, np.floating):
        raise ValueError(f"{path}: field 'logits' has dtype {logits.dtype}; expected floating-point logits")
    _finite(path, "logits", logits, images.ids, images)
    top5, conf = top5_of_logits(logits)
    return Predictions(images.ids, top5[:, 0], top5, conf)


def _csv_header(path: Path) -> list[str]:
    """The column names of the CSV's first line (read with a bounded buffer)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEADER_BYTES)
    except OSError as exc:
        raise ValueError(f"{path}: not readable ({one_line(exc)})") from None
    if not head.strip():
        raise ValueError(f"{path}: is empty; expected a header line file_name,prediction[,top5] and one row per image")
    if b"\n" not in head and len(head) == _HEADER_BYTES:
        raise ValueError(f"{path}: the first line is longer than {_HEADER_BYTES >> 20} MiB; expected a CSV header "
                         "file_name,prediction[,top5]")
    try:
        line = head.split(b"\n", 1)[0].decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a readable CSV: the header line is not UTF-8 ({one_line(exc)})") from None
    return next(csv.reader([line]), [])


def _parse_ids(strings: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(value, is_integer) per string: value is the class id written in ASCII digits (-1 when not an integer)."""
    trimmed = pc.utf8_trim_whitespace(strings)
    is_int = pc.match_substring_regex(trimmed, r"^[0-9]+$").to_numpy(zero_copy_only=False)
    short = is_int & (pc.utf8_length(trimmed).to_numpy(zero_copy_only=False) <= 9)
    values = np.full(len(strings), -1, dtype=np.int64)
    values[~short & is_int] = NUM_CLASSES  # too many digits to be a class id
    if short.any():
        values[short] = pc.cast(trimmed.filter(pa.array(short)), pa.int64()).to_numpy()
    return values, is_int


class _CsvCheck:
    """The running check of a CSV's blocks: the first bad row, the number of bad rows, and the good rows."""

    def __init__(self, path: Path, images: _Images, has_top5: bool) -> None:
        self.path, self.images, self.has_top5 = path, images, has_top5
        self.names = pa.array(images.names.tolist(), pa.string())
        self.seen = np.zeros(len(images.ids), dtype=bool)
        self.rows = 0
        self.bad = 0
        self.first: str | None = None
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []

    def block(self, batch: pa.RecordBatch) -> None:
        """Check one block of rows; keep its rows while no bad row was found."""
        n = batch.num_rows
        line = self.rows + 2  # the header is line 1
        self.rows += n
        raw_names = batch.column("file_name")
        names = pc.replace_substring_regex(pc.utf8_trim_whitespace(raw_names), r"^ILSVRC2012_val_.*/", "")
        pos = pc.fill_null(pc.index_in(names, value_set=self.names), -1).to_numpy(zero_copy_only=False)
        unknown = pos < 0
        dup = np.zeros(n, dtype=bool)
        known = np.flatnonzero(~unknown)
        if len(known):
            order = known[np.argsort(pos[known], kind="stable")]
            dup[order[1:][pos[order[1:]] == pos[order[:-1]]]] = True
            dup[known] |= self.seen[pos[known]]
            self.seen[pos[known]] = True
        pred, pred_int = _parse_ids(batch.column("prediction"))
        checks = [("file_name", unknown, f"is not an image of dataset {self.images.dataset}"),
                  ("file_name", dup, "appears more than once"),
                  ("prediction", ~pred_int, "is not an integer class id (write it with the digits 0-9, e.g. 473)"),
                  ("prediction", pred >= NUM_CLASSES, "is not a class id 0-999")]
        top5 = None
        if self.has_top5:
            tokens = pc.split_pattern_regex(pc.utf8_trim_whitespace(batch.column("top5")), r"\s+")
            counts = pc.list_value_length(tokens).to_numpy(zero_copy_only=False)
            values, _ = _parse_ids(pc.list_flatten(tokens))
            parent = pc.list_parent_indices(tokens).to_numpy(zero_copy_only=False)
            token_bad = np.bincount(parent[(values < 0) | (values >= NUM_CLASSES)], minlength=n)
            well_formed = (counts == 5) & (token_bad == 0)
            starts = tokens.offsets.to_numpy()[:-1]
            top5 = np.zeros((n, 5), dtype=np.int16)
            top5[well_formed] = values[starts[well_formed, None] + np.arange(5)]
            checks += [("top5", ~well_formed, "must be 5 space-separated class ids 0-999"),
                       ("top5", well_formed & (top5[:, 0] != pred), "must start with the row's prediction")]
        any_bad = np.zeros(n, dtype=bool)
        for _, mask, _ in checks:
            any_bad |= mask
        if any_bad.any():
            self.bad += int(any_bad.sum())
            if self.first is None:
                row = int(np.flatnonzero(any_bad)[0])
                field, _, why = next(c for c in checks if c[1][row])
                value = repr(batch.column(field)[row].as_py())
                value = value if len(value) <= 120 else value[:117] + "..."
                self.first = f"{self.path}: line {line + row}: field {field!r} = {value} {why}"
                self.parts = []
        if self.first is None:
            self.parts.append((self.images.ids[pos], pred.astype(np.int16), top5))

    def error(self) -> ValueError | None:
        """The first bad row (and how many there are), or None."""
        if self.first is None:
            return None
        return ValueError(self.first + (f" ({self.bad} bad rows)" if self.bad > 1 else ""))


def read_csv(path: Path, images: _Images, *, block_size: int | None = None) -> Predictions:
    """CSV with `file_name`, `prediction` and optional `top5` (5 space-separated ids, best first), in blocks."""
    header = _csv_header(path)
    missing = [c for c in ("file_name", "prediction") if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected file_name, prediction and optional top5")
    wanted = [c for c in ("file_name", "prediction", "top5") if c in header]
    repeated = [c for c in wanted if header.count(c) > 1]
    if repeated:
        raise ValueError(f"{path}: column(s) {repeated} appear more than once in the header; keep one of each")
    check = _CsvCheck(path, images, "top5" in wanted)
    invalid: list = []

    def on_invalid(row) -> str:
        invalid.append(row)
        return "error"

    try:
        reader = pacsv.open_csv(
            path, read_options=pacsv.ReadOptions(block_size=block_size or CSV_BLOCK_BYTES, use_threads=False),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(include_columns=wanted,
                                                 column_types=dict.fromkeys(wanted, pa.string()),
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
        for batch in reader:
            check.block(batch)
    except (pa.ArrowInvalid, OSError) as exc:
        if check.error() is None:
            if invalid:
                row = invalid[0]
                raise ValueError(f"{path}: line {row.number}: {row.actual_columns} fields where the header has "
                                 f"{row.expected_columns} ({one_line(row.text, 80)!r})") from None
            raise ValueError(f"{path}: not a readable CSV after line {check.rows + 1} ({one_line(exc)})") from None
    if check.error() is not None:
        raise check.error()
    if check.rows == 0:
        raise ValueError(f"{path}: no rows, only a header; expected one row per image (file_name, prediction"
                         "[, top5])")
    image_ids = np.concatenate([p[0] for p in check.parts]).astype(np.int32)
    top1 = np.concatenate([p[1] for p in check.parts])
    top5 = np.concatenate([p[2] for p in check.parts]) if check.has_top5 else None
    order = np.argsort(image_ids)
    return Predictions(image_ids[order], top1[order], None if top5 is None else top5[order], None)


class _NonFinite:
    """A JSON constant Python would read as a float (Infinity, -Infinity, NaN), kept to name it in the message."""

    def __init__(self, name: str) -> None:
        self.name = name


def _json_problem(data: object) -> str | None:
    """Why a parsed metadata.json cannot be stored (too deep, a non-finite number), naming the field; or None."""
    stack: list[tuple[object, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > _METADATA_DEPTH:
            return f"is nested more than {_METADATA_DEPTH} levels deep (at {where!r}); flatten it"
        if isinstance(value, _NonFinite) or (isinstance(value, float) and not math.isfinite(value)):
            shown = value.name if isinstance(value, _NonFinite) else repr(value)
            return f"field {where!r} = {shown} is not a finite number; write a plain number or leave it out"
        if isinstance(value, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    return None


def read_metadata(path: Path) -> dict:
    """`metadata.json` → {arch, family, training_data, params, metadata (the whole object)}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_NonFinite)
    except RecursionError:
        raise ValueError(f"{path}: is nested too deeply to read; metadata.json may nest at most "
                         f"{_METADATA_DEPTH} levels") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: not readable JSON ({one_line(exc)})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with arch, family, training_data, params")
    problem = _json_problem(data)
    if problem:
        raise ValueError(f"{path}: {problem}")
    out: dict = {"metadata": data}
    for key, aliases in _METADATA_KEYS.items():
        name = next((a for a in aliases if a in data), None)
        value = None if name is None else data[name]
        if key == "params" and value is not None:
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= publish.MAX_PARAMS
                    or value != int(value)):
                raise ValueError(f"{path}: field {name!r} = {value!r} must be a whole number of parameters from 0 "
                                 f"to {publish.MAX_PARAMS:.0e}")
            value = int(value)
        elif isinstance(value, (dict, list)):
            raise ValueError(f"{path}: field {name!r} must be a string, not {type(value).__name__}")
        elif value is not None:
            value = str(value)
        out[key] = value
    return out


def detect_format(path: Path, fmt: str | None) -> str:
    """`fmt`, or the format implied by the file extension."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"format={fmt!r} must be one of {FORMATS}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise ValueError(f"{path}: cannot tell the format from the extension {suffix!r}; pass --format {'|'.join(FORMATS)}")
    return _SUFFIX_FORMATS[suffix]


def import_predictions(path: Path, *, model_id: str, fmt: str | None = None, metadata: Path | None = None,
                       dataset: str = "imagenet-val", replace: bool = False, partial: bool = False,
                       db: Path | None = None, con=None) -> dict:
    """Check a prediction file completely, then store it as model `model_id` in one transaction.

    An existing model id needs `replace=True`, which keeps the stored fields the import does not give (and refuses
    ones it contradicts for a model from a run). The file must cover every image of `dataset` unless `partial=True`
    (only a CSV can cover part of it). On any bad input the store is unchanged, and a missing store is not created.
    The checked rows land as a Parquet shard (`shards.land`): ingested now when the store is free, else left pending
    for the next writer or `python -m analysis ingest`. Returns {model_id, dataset, predictions, new_pairs, top1,
    pending}: `pending` is the shard's path while it waits (new_pairs and top1 None then), else None.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    fmt = detect_format(path, fmt)
    meta_path = Path(metadata) if metadata else (path.with_name("metadata.json") if fmt == "paper-npz" else None)
    if metadata and not meta_path.is_file():
        raise FileNotFoundError(f"--metadata {meta_path} does not exist")
    info = read_metadata(meta_path) if meta_path and meta_path.is_file() else {"metadata": {}}
    record = publish.ModelRecord(model_id, "import", arch=info.get("arch"), family=info.get("family"),
                                 training_data=info.get("training_data"), params=info.get("params"),
                                 metadata={**info["metadata"], "file": str(path), "format": fmt})
    own = con is None
    if own:
        store = paths.db_path(db)
        if not store.is_file():
            raise database.StoreError(f"store {store} does not exist; build it first with `python -m analysis build "
                                      f"--db {store}`, or check --db / {paths.DB_ENV} (no store created)")
        con = shards.connect_writer(store)  # other writers' short holds are waited for, a dashboard's are not
    try:
        shards.ingest(con, limit=shards.LAND_SHARDS, seconds=shards.LAND_SECONDS)  # a few pending shards
        existing = database.first(con, queries.MODEL_GET, [model_id])
        if existing is not None and not replace:
            raise ValueError(f"model id {model_id!r} already exists in the store (source {existing[1]}); "
                             "pass --replace to overwrite its predictions, or choose another --model-id")
        publish.merged_record(con, record)  # a conflict with the stored model is refused before the file is read
        images = _Images(con, dataset)
    finally:
        if own:  # the file is read and checked without holding the store
            con.close()
    reader = {"paper-npz": read_paper_npz, "logits": read_logits, "csv": read_csv}[fmt]
    preds = reader(path, images)
    covered, total = len(preds.image_ids), len(images.ids)
    if covered < total and not partial:
        raise ValueError(f"{path}: covers {covered} of the {total} images of {dataset} ({total - covered} "
                         "missing); pass --partial to import only these, or add rows for the missing images")
    rows = publish.prediction_table(preds.image_ids, preds.top1, top5=preds.top5,
                                    top5_confidence=preds.top5_confidence)
    landed = shards.land(store if own else None, record, dataset, rows, mode="replace" if replace else "new",
                         con=None if own else con)
    counts = landed.counts or {"predictions": rows.num_rows, "new_pairs": None}
    return {"model_id": model_id, "dataset": dataset, **counts, "top1": landed.top1,
            "pending": landed.shard if landed.pending else None}


def cli_import(args: argparse.Namespace) -> int:
    """`python -m analysis import-predictions FILE --model-id ID [--format F] [--metadata M] [--replace|--partial]`."""
    with shards.warning_lines():
        out = import_predictions(args.file, model_id=args.model_id, fmt=args.format, metadata=args.metadata,
                                 dataset=args.dataset, replace=args.replace, partial=args.partial, db=args.db)
    if out["pending"] is not None:
        store = paths.db_path(args.db)
        print(f"checked {out['predictions']} predictions of {out['model_id']} on {out['dataset']}; "
              + shards.pending_line(out["pending"], store))
        return 0
    if out["top1"] is None:  # another writer's ingest published the shard meanwhile
        print(f"imported {out['predictions']} predictions of {out['model_id']} on {out['dataset']}")
        return 0
    print(f"imported {out['predictions']} predictions of {out['model_id']} on {out['dataset']} "
          f"({out['new_pairs']} new pairs classified); top-1 {out['top1']:.4f}")
    return 0

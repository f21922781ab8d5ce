"""Run a registered model on an image set and store its top-5 predictions, resumably (DESIGN §6).

Predictions are staged chunk by chunk (each chunk its own short transaction, the store is opened only
for the write) and published in one transaction at the end, so an interrupted run resumes where it
stopped and a failed one changes no published table. A re-run skips images already predicted. A staged row
names its file (name, size, modification time): a resume keeps it only while that file is unchanged. One
process at a time holds a run of a model on a dataset; a run whose process is gone is taken over.
CUDA runs use bf16 autocast, channels_last, pinned memory and DataLoader workers; the CPU path is
deterministic (same predictions on every run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa

from analysis import paths
from analysis.errors import UserError
from analysis.knowledge.classes import VAL_FILE_RE, val_index, wnid_to_id
from analysis.store import database, publish, queries, reference, shards

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
CHUNK_IMAGES = 512
DATASETS = ("samples", "imagenet-val", "folder")


class ArgumentError(ValueError):
    """A bad argument of `predict`: the message names the CLI's option; `argument` is the parameter's name and
    `problem` what is wrong without the CLI's fix, so another front end (the Run page) words the fix itself."""

    def __init__(self, argument: str, problem: str, message: str) -> None:
        super().__init__(message)
        self.argument, self.problem = argument, problem


class MissingPathError(ArgumentError, FileNotFoundError):
    """An ArgumentError for a path that is not there (still a FileNotFoundError)."""


def _model_error(exc: Exception, argument: str) -> ArgumentError:
    """The registry's one-line "problem; fix" message as an ArgumentError of `argument` (same text, same type)."""
    message = str(exc)
    problem = message.split("; ")[0].removeprefix("--checkpoint ")
    kind = MissingPathError if isinstance(exc, FileNotFoundError) else ArgumentError
    return kind(argument, problem, message)


@dataclass
class ImageSet:
    """Images to predict: dataset name, `paths (N,)`, their `names (N,)` (images.file_name), `image_ids (N,)`,
    `targets (N,)`; `register` for new folders."""

    dataset: str
    paths: list[Path]
    names: list[str]
    image_ids: np.ndarray
    targets: np.ndarray
    register: tuple[tuple, pa.Table] | None = None


@dataclass
class RunResult:
    """What a run did: its id, model, dataset, device, images predicted now and in total, seconds, top-1."""

    run_id: str | None
    model_id: str
    dataset: str
    device: str
    predicted: int
    selected: int
    seconds: float
    top1: float | None
    pending: Path | None = None  # the shard file waiting for an ingest (the store was busy at the end)


# --- image sets ------------------------------------------------------------------------------------------


def _samples(con) -> ImageSet:
    row = database.first(con, queries.DATASET_GET, ["samples"])
    if row is None:
        raise ValueError("dataset 'samples' is not in the store; run `python -m analysis fetch` and `build`")
    root = Path(row[2] or "")
    stored = con.execute(queries.IMAGES_OF, ["samples"]).fetchnumpy()
    names = [str(f) for f in stored["file_name"]]
    return ImageSet("samples", [root / f for f in names], names, np.asarray(stored["image_id"]),
                    np.asarray(stored["target"]))


def _imagenet_val(root: Path | None) -> ImageSet:
    root = root or paths.imagenet_dir()
    if root is None:
        raise ArgumentError("images", "imagenet-val needs the validation images",
                            f"imagenet-val needs the validation images: set {paths.IMAGENET_ENV} or pass --images DIR")
    root = Path(root)
    if not root.is_dir():
        raise MissingPathError("images", f"{root} is not a folder of ImageNet validation images",
                               f"--images {root} is not a folder of ImageNet validation images")
    found = {p.name: p for p in root.glob("ILSVRC2012_val_*.JPEG")} or \
        {p.name: p for p in root.glob("*/ILSVRC2012_val_*.JPEG")}
    found = {name: p for name, p in found.items() if VAL_FILE_RE.match(name)}
    if not found:
        raise FileNotFoundError(f"{root} holds no ILSVRC2012_val_*.JPEG files (flat or one folder per wnid)")
    from analysis.knowledge.classes import val_targets

    names = sorted(found)
    ids = np.array([val_index(n) for n in names], dtype=np.int32)
    return ImageSet("imagenet-val", [found[n] for n in names], names, ids, val_targets()[ids])


def folder_dataset(root: Path, con) -> str:
    """The dataset id of an image folder, from its resolved path: `folder:<name>-<8 hex of sha256(path)>`.

    A store's older `folder:<name>` keeps its id when its recorded root is this folder.
    """
    resolved = Path(root).resolve()
    legacy = f"folder:{resolved.name}"
    row = database.first(con, queries.DATASET_GET, [legacy])
    if row is not None and row[2] == str(resolved):
        return legacy
    return f"{legacy}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:8]}"


def _folder(root: Path | None, con) -> ImageSet:
    if root is None:
        raise ArgumentError("images", "dataset 'folder' needs a folder of images (one sub-folder per wnid, e.g. "
                            "n01440764/)",
                            "dataset 'folder' needs --images DIR (one sub-folder per wnid, e.g. n01440764/)")
    root = Path(root)
    if not root.is_dir():
        raise MissingPathError("images", f"{root} is not a folder", f"--images {root} is not a folder")
    lookup = wnid_to_id()
    files: list[tuple[str, Path, int]] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name not in lookup:
            raise ValueError(f"{sub}: folder name {sub.name!r} is not an ImageNet-1k wnid (e.g. n01440764)")
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append((f"{sub.name}/{f.name}", f, lookup[sub.name]))
    if not files:
        raise FileNotFoundError(f"{root} holds no images in wnid sub-folders ({', '.join(IMAGE_SUFFIXES)})")
    dataset = folder_dataset(root, con)
    targets = np.array([t for _, _, t in files], dtype=np.int16)
    ids = np.arange(len(files), dtype=np.int32)
    from analysis.taxonomy import labelsets

    table = reference.images_table(labelsets.single(targets), [n for n, _, _ in files])
    stored_row = database.first(con, queries.DATASET_GET, [dataset])
    if stored_row is not None:
        stored = con.execute(queries.IMAGES_OF, [dataset]).fetchnumpy()
        if stored_row[2] != str(root.resolve()) or list(stored["file_name"]) != [n for n, _, _ in files]:
            raise ValueError(f"dataset {dataset!r} is already stored with other images than {root}; "
                             "move the folder to another path to store it as a new image set")
    row = (dataset, "single", str(root.resolve()), f"image folder {root.resolve()} (one sub-folder per wnid)")
    return ImageSet(dataset, [f for _, f, _ in files], [n for n, _, _ in files], ids, targets, (row, table))


def image_set(dataset: str, con, *, images: Path | None = None) -> ImageSet:
    """The images of `dataset` (samples | imagenet-val | folder) in image-id order."""
    if dataset == "samples":
        return _samples(con)
    if dataset == "imagenet-val":
        return _imagenet_val(images)
    if dataset == "folder" or dataset.startswith("folder:"):
        return _folder(images, con)
    raise ValueError(f"dataset={dataset!r} is unknown; choose one of {DATASETS}")


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """`"i/n"` → (i, n) with 0 <= i < n; None stays None."""
    if shard is None:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", str(shard).strip())
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise ValueError(f"shard={shard!r} must be i/n with 0 <= i < n, e.g. 0/4")
    return int(match.group(1)), int(match.group(2))


# --- inference -------------------------------------------------------------------------------------------


class _Images:
    """Torch dataset over image paths: (tensor, position, error message or '', file size, mtime in ns)."""

    def __init__(self, files: list[Path], transform: Callable, size: int) -> None:
        self.files, self.transform, self.size = files, transform, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import torch
        from PIL import Image, UnidentifiedImageError

        path = self.files[i]
        try:
            with open(path, "rb") as fh, warnings.catch_warnings():
                stat = os.fstat(fh.fileno())  # the identity of the bytes read, before reading them
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(fh) as img:
                    tensor = self.transform(img.convert("RGB"))
            return tensor, i, "", stat.st_size, stat.st_mtime_ns
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            error = (f"{path}: cannot read the image: {exc} Images above Pillow's limit (Image.MAX_IMAGE_PIXELS = "
                     f"{Image.MAX_IMAGE_PIXELS} pixels) are refused; shrink it or move it out of the image set")
        except UnidentifiedImageError:
            error = f"{path}: cannot read the image (not an image format Pillow reads)"
        except (OSError, ValueError, SyntaxError) as exc:
            error = f"{path}: cannot read the image ({exc})"
        return torch.zeros(3, self.size, self.size), i, " ".join(error.split()), -1, -1


def _device(device: str) -> str:
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={device!r} must be auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ArgumentError("device", "no CUDA GPU is available",
                            "device=cuda but no CUDA GPU is available; use --device cpu or auto")
    return "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)


def _workers(workers: int | None, device: str) -> int:
    if workers is not None:
        return workers
    cpus = os.cpu_count() or 1
    return min(8, cpus) if device == "cuda" else (0 if cpus <= 2 else min(4, cpus - 1))


def infer_batches(loaded, files: list[Path], *, device: str = "cpu", batch_size: int = 32,
                  workers: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (positions (B,), top5 (B, 5) int16, top5 probabilities (B, 5) float32, file size and mtime in ns (B, 2)
    int64 as read) per batch of `files`.

    Raises ValueError naming the first image that cannot be read (the batch's good rows come first).
    """
    import torch

    module = loaded.module.to(device)
    cuda = device == "cuda"
    if cuda:
        module = module.to(memory_format=torch.channels_last)
    loader = torch.utils.data.DataLoader(
        _Images(files, loaded.transform, loaded.input_size), batch_size=batch_size, shuffle=False,
        num_workers=workers, pin_memory=cuda, persistent_workers=False,
    )
    with torch.inference_mode():
        for batch, positions, errors, sizes, mtimes in loader:
            bad = [j for j, e in enumerate(errors) if e]
            good = slice(0, bad[0]) if bad else slice(None)
            if bad and bad[0] == 0:
                raise ValueError(errors[0])
            x = batch[good].to(device, non_blocking=cuda)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = module(x)
            else:
                logits = module(x)
            probs = logits.float().softmax(dim=1)
            top_p, top_i = probs.topk(5, dim=1)
            yield (positions[good].numpy(), top_i.cpu().numpy().astype(np.int16),
                   top_p.cpu().numpy().astype(np.float32), np.stack([sizes[good].numpy(), mtimes[good].numpy()], 1))
            if bad:
                raise ValueError(errors[bad[0]])


# --- the run ----------------------------------------------------------------------------------------------


class _StoreAccess:
    """Short write connections to the store (opened per write, so the file is locked only while writing).

    Each waits up to shards.WRITERS_WAIT (30 s) for another writer's short hold (`quick`: only --wait or 1 s)."""

    def __init__(self, db: Path | None, con) -> None:
        self.db, self.con = db, con
        self.store = Path(db) if db is not None else (shards.store_of(con) if con is not None else paths.db_path())

    @contextmanager
    def open(self, *, quick: bool = False):
        if self.con is not None:
            yield self.con
            return
        con = database.connect(self.db) if quick else shards.connect_writer(self.db)
        try:
            yield con
        finally:
            con.close()


def _check_options(batch_size, workers, limit) -> None:
    for name, value, low in (("batch_size", batch_size, 1), ("workers", workers, 0), ("limit", limit, 1)):
        if value is not None and (not isinstance(value, int) or value < low):
            raise ValueError(f"{name}={value!r} must be an integer >= {low}")


def _select(images: ImageSet, limit: int | None, shard: tuple[int, int] | None) -> np.ndarray:
    positions = np.arange(len(images.paths))[: limit if limit else None]
    return positions[shard[0]::shard[1]] if shard else positions


def _stage(access: _StoreAccess, run_id: str, rows: list, *, final: bool = True) -> None:
    """Stage buffered (image ids, file names, file (size, mtime_ns), top5, confidences) batches in one transaction.

    A flush that is not `final` and meets another process's lock keeps the rows buffered for the next one."""
    if not rows:
        return
    if not final:
        try:
            _stage_now(access, run_id, rows, quick=True)
        except database.StoreLockedError:
            pass
        return
    _stage_now(access, run_id, rows)


def _stage_now(access: _StoreAccess, run_id: str, rows: list, *, quick: bool = False) -> None:
    ids, names, files, top5, conf = (np.concatenate(parts) for parts in zip(*rows))
    table = publish.prediction_table(ids, top5[:, 0], top5=top5, top5_confidence=conf)
    table = (table.append_column("file_name", pa.array(names.tolist(), pa.string()))
             .append_column("file_size", pa.array(files[:, 0], pa.int64()))
             .append_column("file_mtime_ns", pa.array(files[:, 1], pa.int64())))
    with access.open(quick=quick) as con, database.transaction(con):
        with database.registered(con, table):
            con.execute(queries.STAGING_INSERT, [run_id])
    rows.clear()


def _finish(access: _StoreAccess, run_id: str, status: str, message: str | None, seconds: float) -> None:
    with access.open() as con:
        con.execute(queries.RUN_FINISH, [status, message, seconds, run_id])


_ACTIVE_RUNS: set[str] = set()  # run ids this process holds now
_CLAIM_LOCK = threading.Lock()  # one claim at a time in this process (the dashboard runs pages in threads)


def _process_start(pid: int) -> float | None:
    """When process `pid` started (epoch seconds, from Linux's /proc), None where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _holder_alive(run_id: str, pid: int | None, host: str | None, pid_start: float | None) -> bool:
    """Whether the process holding a running run still runs (a process on another host is taken to)."""
    if pid is None or pid <= 0:  # a run of a version that recorded no holder (and never signal a process group)
        return False
    if host != socket.gethostname() or os.name == "nt":  # cannot look (os.kill would end a Windows process)
        return True
    if pid == os.getpid():
        return run_id in _ACTIVE_RUNS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False  # exited, not yet reaped
    except (OSError, IndexError):
        pass
    start = _process_start(pid)
    return start is None or pid_start is None or abs(start - pid_start) < 1.0  # else a new process took the PID


def _shards_overlap(a: str | None, b: str | None) -> bool:
    """Whether two shard selections can share an image (only distinct shards i/n of the same n cannot)."""
    if a is None or b is None:
        return True
    (i, n), (j, m) = parse_shard(a), parse_shard(b)
    return n != m or i == j


def _check_holders(con, model_id: str, dataset: str, shard: str | None, *, release: bool) -> None:
    """UserError naming the live process that runs `model_id` on `dataset` (an overlapping shard); with `release`,
    runs whose process is gone are marked interrupted, so their staged rows are resumed."""
    holders = con.execute(queries.RUN_HOLDERS, [model_id, dataset]).fetchall()
    for run_id, run_shard, pid, host, pid_start, since in holders:
        if not _shards_overlap(shard, run_shard):
            continue
        if _holder_alive(run_id, pid, host, pid_start):
            part = "" if run_shard is None else f", shard {run_shard}"
            elsewhere = "" if host == socket.gethostname() else \
                f"; if it no longer runs there, run this command on {host} to take the run over"
            raise UserError(f"model {model_id!r} on {dataset} is already being run by PID {pid} on {host} since "
                            f"{since} (run {run_id}{part}); wait for it to finish or stop it, then retry{elsewhere}")
        if release:
            con.execute(queries.RUN_RELEASE, [f"its process (PID {pid} on {host}) is gone; taken over", run_id])


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _verify_staging(con, run_id: str, imgs: ImageSet) -> set[int]:
    """Keep the staged rows of `run_id` whose file is unchanged (name, size, mtime), addressed by that file's current
    image id, one per image; drop the others (file changed, gone, or staged without its identity). Returns the ids."""
    staged = con.sql(queries.STAGED_FILES, params=[run_id]).to_arrow_table()
    if staged.num_rows == 0:
        return set()
    where = {name: k for k, name in enumerate(imgs.names)}
    keep, ids = [], []
    for row, (name, size, mtime) in enumerate(zip(*(staged[c].to_pylist()
                                                    for c in ("file_name", "file_size", "file_mtime_ns")))):
        k = where.pop(name, None)  # pop: a second row of the same file is a duplicate
        if k is not None and _file_identity(imgs.paths[k]) == (size, mtime):
            keep.append(row)
            ids.append(int(imgs.image_ids[k]))
    if ids != staged["image_id"].to_pylist():
        kept = staged.take(pa.array(keep, pa.int64()))
        kept = kept.set_column(0, "image_id", pa.array(ids, pa.int32()))
        con.execute(queries.STAGING_DELETE, [run_id])
        with database.registered(con, kept):
            con.execute(queries.STAGING_INSERT, [run_id])
    return set(ids)


def _start_run(con, model_id: str, imgs: ImageSet, shard: str | None, device: str, n: int,
               options: dict) -> tuple[str, set[int]]:
    """Take the unfinished run of the same model, dataset and shard, or start a new one (UserError while another
    live process runs it); returns its id and the image ids of its verified staged rows."""
    _check_holders(con, model_id, imgs.dataset, shard, release=True)
    holder = {"device": device, "images": n, "pid": os.getpid(), "host": socket.gethostname(),
              "pid_start": _process_start(os.getpid())}
    row = database.first(con, queries.RUN_UNFINISHED, [model_id, imgs.dataset, shard])
    if row is not None:
        con.execute(queries.RUN_RESUME, {"run_id": row[0], **holder})
        return row[0], _verify_staging(con, row[0], imgs)
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    con.execute(queries.RUN_INSERT, {"run_id": run_id, "model_id": model_id, "dataset": imgs.dataset, "shard": shard,
                                     "options": json.dumps(options), **holder})
    return run_id, set()


def _progress_callback(progress, total: int, desc: str):
    if callable(progress):
        return progress, None
    if not progress:
        return (lambda done, total: None), None
    from tqdm import tqdm

    # disable=None: a bar on a terminal only, never in a log or a pipe
    bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=True if total == 0 else None)
    return (lambda done, total: bar.update(done - bar.n)), bar


def predict(model: str, dataset: str, *, images: Path | None = None, db: Path | None = None, con=None,
            device: str = "auto", batch_size: int = 32, workers: int | None = None, limit: int | None = None,
            shard: str | None = None, checkpoint: Path | None = None, model_id: str | None = None,
            progress: bool | Callable[[int, int], None] = True, chunk_images: int = CHUNK_IMAGES,
            engine: str = "local", address: str | None = None, gpus_per_worker: float | None = None) -> RunResult:
    """Run `model` on `dataset` and publish its top-5 predictions (skipping images already stored).

    `progress`: True (tqdm bar), False, or a callable `(done, total)` called after each batch (e.g. a
    dashboard progress bar). `con`: an open write connection to use instead of opening `db` per write.
    An unreadable image (above Pillow's pixel limit too) stops the run with a ValueError naming the file; what was
    predicted before it stays staged, and the next run resumes from there, keeping only rows whose file is unchanged.
    A UserError names the live process (PID, host, since when) that already runs `model_id` on this dataset.
    `engine='ray'` runs the inference on a Ray cluster (`address`, or a local one; `workers` actors, each with
    `gpus_per_worker` GPUs) through `ray_engine`, staged and published like the local engine's.
    """
    _check_options(batch_size, workers, limit)
    shard_parts = parse_shard(shard)
    from analysis.inference import models
    if engine not in ("local", "ray"):
        raise ValueError(f"engine={engine!r} must be local or ray")
    if engine == "ray":
        from analysis.inference import ray_engine

        ray_engine.check_options(address, workers, gpus_per_worker)
    elif address is not None or gpus_per_worker is not None:
        raise ValueError("address and gpus_per_worker are options of engine='ray'; pass --engine ray")

    try:
        spec = models.resolve(model, checkpoint=checkpoint)
    except (ValueError, FileNotFoundError) as exc:
        raise _model_error(exc, "checkpoint" if str(exc).startswith("--checkpoint") else "model") from exc
    model_id = model_id or model
    device = _device(device) if engine == "local" else device
    access = _StoreAccess(db, con)
    with access.open() as c:
        shards.ingest(c, access.store, limit=shards.LAND_SHARDS, seconds=shards.LAND_SECONDS)  # a few pending shards
        publish.check_superclasses(c)  # before the run, not after it: its pairs are classified like the stored ones
        imgs = image_set(dataset, c, images=images)
        existing = database.first(c, queries.MODEL_GET, [model_id])
        if existing is not None and existing[1] != "run":
            raise ArgumentError("model_id", f"model id {model_id!r} is stored as source {existing[1]!r}, not a run",
                                f"model id {model_id!r} is stored as source {existing[1]!r}, not a run; "
                                "pass another --model-id")
        _check_holders(c, model_id, imgs.dataset, shard, release=False)  # before loading the model
        selected = _select(imgs, limit, shard_parts)
        done = {int(i) for i in c.execute(queries.PREDICTED_IMAGES, [model_id, imgs.dataset]).fetchnumpy()["image_id"]}
    todo_mask = ~np.isin(imgs.image_ids[selected], list(done)) if done else np.ones(len(selected), dtype=bool)
    todo = selected[todo_mask]
    result = RunResult(None, model_id, imgs.dataset, device, 0, len(selected), 0.0, None)
    if len(todo) == 0 and not _has_unfinished(access, model_id, imgs.dataset, shard):
        return result
    try:
        loaded = models.load(spec)
    except ValueError as exc:  # with a checkpoint, a load failure is the file's (models._load_checkpoint)
        raise _model_error(exc, "checkpoint" if spec.checkpoint is not None else "model") from exc
    plan = None
    if engine == "ray":
        plan = ray_engine.start(address, workers, gpus_per_worker, device)
        device, result.device, n_workers = plan.device, plan.device, plan.workers
    else:
        n_workers = _workers(workers, device)
    options = {"model": model, "batch_size": batch_size, "workers": n_workers, "limit": limit,
               "checkpoint": str(checkpoint) if checkpoint else None}
    if plan is not None:
        options |= {"engine": "ray", "address": address, "gpus_per_worker": plan.gpus_per_worker}
    record = publish.ModelRecord(model_id, "run", arch=spec.arch, family=spec.family, training_data=spec.training_data,
                                 params=loaded.params, metadata={"registry_name": model, "input_size": loaded.input_size,
                                                                 "checkpoint": options["checkpoint"]})
    try:
        with _CLAIM_LOCK:
            with access.open() as c, database.transaction(c):
                run_id, staged = _start_run(c, model_id, imgs, shard, device, len(selected), options)
            _ACTIVE_RUNS.add(run_id)
    except BaseException:
        if plan is not None:
            ray_engine.stop(plan)
        raise
    todo = todo[~np.isin(imgs.image_ids[todo], list(staged))] if staged else todo
    result.run_id = run_id
    start, buffer, finished, bar = time.perf_counter(), [], 0, None
    try:
        report, bar = _progress_callback(progress, len(todo), f"{model_id} on {imgs.dataset}")
        batches = infer_batches(loaded, [imgs.paths[i] for i in todo], device=device, batch_size=batch_size,
                                workers=n_workers) if plan is None else \
            ray_engine.infer_batches(spec, [imgs.paths[i] for i in todo], plan, batch_size=batch_size)
        for positions, top5, conf, files in batches:
            buffer.append((imgs.image_ids[todo[positions]], np.array([imgs.names[i] for i in todo[positions]], object),
                           files, top5, conf))
            finished += len(positions)
            report(finished, len(todo))
            if sum(len(b[0]) for b in buffer) >= chunk_images:
                _stage(access, run_id, buffer, final=False)
        _stage(access, run_id, buffer)
        seconds = time.perf_counter() - start
        with access.open() as c:
            rows = c.sql(queries.STAGED_ROWS, params=[run_id]).to_arrow_table()
            if not rows.num_rows:
                c.execute(queries.RUN_FINISH, ["done", None, seconds, run_id])
                top1 = database.first(c, queries.MODEL_TOP1, [model_id, imgs.dataset])[0]
        if rows.num_rows:  # published through a Parquet shard: now when the store is free, else by the next writer
            landed = shards.land(access.store, record, imgs.dataset, rows, mode="merge", images=imgs.register,
                                 run_id=run_id, run_seconds=seconds, shard=shard, con=access.con)
            top1, result.pending = landed.top1, landed.shard if landed.pending else None
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        try:
            _stage(access, run_id, buffer)
            _finish(access, run_id, "interrupted" if interrupted else "failed",
                    None if interrupted else str(exc)[:500], time.perf_counter() - start)
        except Exception:  # the store itself failed; the original error is the one to report
            pass
        raise
    finally:
        _ACTIVE_RUNS.discard(run_id)
        if bar is not None:
            bar.close()
        if plan is not None:
            ray_engine.stop(plan)
    result.predicted, result.seconds, result.top1 = rows.num_rows, seconds, top1
    return result


def _has_unfinished(access: _StoreAccess, model_id: str, dataset: str, shard: str | None) -> bool:
    with access.open() as c:
        row = database.first(c, queries.RUN_UNFINISHED, [model_id, dataset, shard])
        return row is not None and database.first(c, queries.STAGED_IMAGES, [row[0]]) is not None


def cli_predict(args: argparse.Namespace) -> int:
    """`python -m analysis predict --model NAME --dataset NAME [...]`."""
    with shards.warning_lines():
        result = predict(args.model, args.dataset, images=args.images, db=args.db, device=args.device,
                         batch_size=args.batch_size, workers=args.workers, limit=args.limit, shard=args.shard,
                         checkpoint=args.checkpoint, model_id=args.model_id, **_engine_args(args))
    if result.run_id is None:
        print(f"{result.model_id} on {result.dataset}: all {result.selected} selected images already predicted")
        return 0
    if result.pending is not None:
        print(f"{result.model_id} on {result.dataset}: {result.predicted} images predicted in {result.seconds:.1f} s "
              f"({result.device}), run {result.run_id}; " + shards.pending_line(result.pending, paths.db_path(args.db)))
        return 0
    rate = result.predicted / result.seconds if result.seconds else 0.0
    top1 = "" if result.top1 is None else f"; top-1 {result.top1:.3f} over its stored predictions"
    print(f"{result.model_id} on {result.dataset}: {result.predicted} images predicted in {result.seconds:.1f} s "
          f"({rate:.1f} img/s, {result.device}), run {result.run_id}{top1}")
    return 0


def _engine_args(args: argparse.Namespace) -> dict:
    """The engine options of `predict` (only when given, so the local engine's call stays as it was)."""
    given = {"engine": getattr(args, "engine", "local"), "address": getattr(args, "address", None),
             "gpus_per_worker": getattr(args, "gpus_per_worker", None)}
    return {k: v for k, v in given.items() if v is not None and (k != "engine" or v != "local")}

"""Run a registered model on an image set and store its top-5 predictions, resumably (DESIGN §6).

Predictions are staged chunk by chunk (each chunk its own short transaction, the store is opened only
for the write) and published in one transaction at the end, so an interrupted run resumes where it
stopped and a failed one changes no published table. A re-run skips images already predicted.
CUDA runs use bf16 autocast, channels_last, pinned memory and DataLoader workers; the CPU path is
deterministic (same predictions on every run).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pyarrow as pa

from analysis import paths
from analysis.knowledge.classes import VAL_FILE_RE, val_index, wnid_to_id
from analysis.store import database, publish, queries, reference

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
CHUNK_IMAGES = 512
DATASETS = ("samples", "imagenet-val", "folder")


@dataclass
class ImageSet:
    """Images to predict: dataset name, `paths (N,)`, `image_ids (N,)`, `targets (N,)`; `register` for new folders."""

    dataset: str
    paths: list[Path]
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


# --- image sets ------------------------------------------------------------------------------------------


def _samples(con) -> ImageSet:
    row = database.first(con, queries.DATASET_GET, ["samples"])
    if row is None:
        raise ValueError("dataset 'samples' is not in the store; run `python -m analysis fetch` and `build`")
    root = Path(row[2] or "")
    stored = con.execute(queries.IMAGES_OF, ["samples"]).fetchnumpy()
    return ImageSet("samples", [root / f for f in stored["file_name"]], np.asarray(stored["image_id"]),
                    np.asarray(stored["target"]))


def _imagenet_val(root: Path | None) -> ImageSet:
    root = root or paths.imagenet_dir()
    if root is None:
        raise ValueError(f"imagenet-val needs the validation images: set {paths.IMAGENET_ENV} or pass --images DIR")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--images {root} is not a folder of ImageNet validation images")
    found = {p.name: p for p in root.glob("ILSVRC2012_val_*.JPEG")} or \
        {p.name: p for p in root.glob("*/ILSVRC2012_val_*.JPEG")}
    found = {name: p for name, p in found.items() if VAL_FILE_RE.match(name)}
    if not found:
        raise FileNotFoundError(f"{root} holds no ILSVRC2012_val_*.JPEG files (flat or one folder per wnid)")
    from analysis.knowledge.classes import val_targets

    names = sorted(found)
    ids = np.array([val_index(n) for n in names], dtype=np.int32)
    return ImageSet("imagenet-val", [found[n] for n in names], ids, val_targets()[ids])


def _folder(root: Path | None, con) -> ImageSet:
    if root is None:
        raise ValueError("dataset 'folder' needs --images DIR (one sub-folder per wnid, e.g. n01440764/)")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--images {root} is not a folder")
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
    dataset = f"folder:{root.resolve().name}"
    targets = np.array([t for _, _, t in files], dtype=np.int16)
    ids = np.arange(len(files), dtype=np.int32)
    from analysis.taxonomy import labelsets

    table = reference.images_table(labelsets.single(targets), [n for n, _, _ in files])
    if database.first(con, queries.DATASET_GET, [dataset]) is not None:
        stored = con.execute(queries.IMAGES_OF, [dataset]).fetchnumpy()
        if list(stored["file_name"]) != [n for n, _, _ in files]:
            raise ValueError(f"dataset {dataset!r} is already stored with other images than {root}; "
                             "rename the folder to store it as a new image set")
    row = (dataset, "single", str(root.resolve()), f"image folder {root.resolve()} (one sub-folder per wnid)")
    return ImageSet(dataset, [f for _, f, _ in files], ids, targets, (row, table))


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
    """Torch dataset over image paths: (tensor, position, error message or '')."""

    def __init__(self, files: list[Path], transform: Callable, size: int) -> None:
        self.files, self.transform, self.size = files, transform, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import torch
        from PIL import Image, UnidentifiedImageError

        path = self.files[i]
        try:
            with Image.open(path) as img:
                tensor = self.transform(img.convert("RGB"))
            return tensor, i, ""
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
            return torch.zeros(3, self.size, self.size), i, f"{path}: cannot read the image ({exc})"


def _device(device: str) -> str:
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={device!r} must be auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA GPU is available; use --device cpu or auto")
    return "cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device)


def _workers(workers: int | None, device: str) -> int:
    if workers is not None:
        return workers
    cpus = os.cpu_count() or 1
    return min(8, cpus) if device == "cuda" else (0 if cpus <= 2 else min(4, cpus - 1))


def infer_batches(loaded, files: list[Path], *, device: str = "cpu", batch_size: int = 32,
                  workers: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (positions (B,), top5 (B, 5) int16, top5 probabilities (B, 5) float32) per batch of `files`.

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
        for batch, positions, errors in loader:
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
                   top_p.cpu().numpy().astype(np.float32))
            if bad:
                raise ValueError(errors[bad[0]])


# --- the run ----------------------------------------------------------------------------------------------


class _StoreAccess:
    """Short write connections to the store (opened per write, so the file is locked only while writing)."""

    def __init__(self, db: Path | None, con) -> None:
        self.db, self.con = db, con

    @contextmanager
    def open(self):
        if self.con is not None:
            yield self.con
            return
        con = database.connect(self.db, wait=30.0)
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


def _stage(access: _StoreAccess, run_id: str, rows: list) -> None:
    if not rows:
        return
    ids, top5, conf = (np.concatenate(parts) for parts in zip(*rows))
    table = publish.prediction_table(ids, top5[:, 0], top5=top5, top5_confidence=conf)
    with access.open() as con, database.transaction(con):
        with database.registered(con, table):
            con.execute(queries.STAGING_INSERT, [run_id])
    rows.clear()


def _finish(access: _StoreAccess, run_id: str, status: str, message: str | None, seconds: float) -> None:
    with access.open() as con:
        con.execute(queries.RUN_FINISH, [status, message, seconds, run_id])


def _start_run(con, model_id: str, dataset: str, shard: str | None, device: str, n: int, options: dict) -> str:
    """Resume the unfinished run of the same model, dataset and shard, or start a new one; returns its id."""
    row = database.first(con, queries.RUN_UNFINISHED, [model_id, dataset, shard])
    if row is not None:
        con.execute(queries.RUN_RESUME, [device, n, row[0]])
        return row[0]
    run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    con.execute(queries.RUN_INSERT, {"run_id": run_id, "model_id": model_id, "dataset": dataset, "device": device,
                                     "images": n, "shard": shard, "options": json.dumps(options)})
    return run_id


def _progress_callback(progress, total: int, desc: str):
    if callable(progress):
        return progress, None
    if not progress:
        return (lambda done, total: None), None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=total == 0)
    return (lambda done, total: bar.update(done - bar.n)), bar


def predict(model: str, dataset: str, *, images: Path | None = None, db: Path | None = None, con=None,
            device: str = "auto", batch_size: int = 32, workers: int | None = None, limit: int | None = None,
            shard: str | None = None, checkpoint: Path | None = None, model_id: str | None = None,
            progress: bool | Callable[[int, int], None] = True, chunk_images: int = CHUNK_IMAGES) -> RunResult:
    """Run `model` on `dataset` and publish its top-5 predictions (skipping images already stored).

    `progress`: True (tqdm bar), False, or a callable `(done, total)` called after each batch (e.g. a
    dashboard progress bar). `con`: an open write connection to use instead of opening `db` per write.
    An unreadable image stops the run with a ValueError naming the file; what was predicted before it stays
    staged, and the next run resumes from there.
    """
    _check_options(batch_size, workers, limit)
    shard_parts = parse_shard(shard)
    from analysis.inference import models

    spec = models.resolve(model, checkpoint=checkpoint)
    model_id = model_id or model
    device = _device(device)
    access = _StoreAccess(db, con)
    with access.open() as c:
        publish.check_superclasses(c)  # before the run, not after it: its pairs are classified like the stored ones
        imgs = image_set(dataset, c, images=images)
        existing = database.first(c, queries.MODEL_GET, [model_id])
        if existing is not None and existing[1] != "run":
            raise ValueError(f"model id {model_id!r} is stored as source {existing[1]!r}, not a run; "
                             "pass another --model-id")
        selected = _select(imgs, limit, shard_parts)
        done = {int(i) for i in c.execute(queries.PREDICTED_IMAGES, [model_id, imgs.dataset]).fetchnumpy()["image_id"]}
    todo_mask = ~np.isin(imgs.image_ids[selected], list(done)) if done else np.ones(len(selected), dtype=bool)
    todo = selected[todo_mask]
    result = RunResult(None, model_id, imgs.dataset, device, 0, len(selected), 0.0, None)
    if len(todo) == 0 and not _has_unfinished(access, model_id, imgs.dataset, shard):
        return result
    loaded = models.load(spec)
    n_workers = _workers(workers, device)
    options = {"model": model, "batch_size": batch_size, "workers": n_workers, "limit": limit,
               "checkpoint": str(checkpoint) if checkpoint else None}
    with access.open() as c, database.transaction(c):
        run_id = _start_run(c, model_id, imgs.dataset, shard, device, len(selected), options)
        staged = {int(i) for i in c.execute(queries.STAGED_IMAGES, [run_id]).fetchnumpy()["image_id"]}
    todo = todo[~np.isin(imgs.image_ids[todo], list(staged))] if staged else todo
    result.run_id = run_id
    report, bar = _progress_callback(progress, len(todo), f"{model_id} on {imgs.dataset}")
    start, buffer, finished = time.perf_counter(), [], 0
    record = publish.ModelRecord(model_id, "run", arch=spec.arch, family=spec.family, training_data=spec.training_data,
                                 params=loaded.params, metadata={"registry_name": model, "input_size": loaded.input_size,
                                                                 "checkpoint": options["checkpoint"]})
    try:
        for positions, top5, conf in infer_batches(loaded, [imgs.paths[i] for i in todo], device=device,
                                                   batch_size=batch_size, workers=n_workers):
            buffer.append((imgs.image_ids[todo[positions]], top5, conf))
            finished += len(positions)
            report(finished, len(todo))
            if sum(len(b[0]) for b in buffer) >= chunk_images:
                _stage(access, run_id, buffer)
        _stage(access, run_id, buffer)
        seconds = time.perf_counter() - start
        with access.open() as c:
            rows = c.sql(queries.STAGED_ROWS, params=[run_id]).to_arrow_table()
            if rows.num_rows:
                publish.publish_predictions(c, record, imgs.dataset, rows, mode="merge", images=imgs.register,
                                            run_id=run_id, run_seconds=seconds)
            else:
                c.execute(queries.RUN_FINISH, ["done", None, seconds, run_id])
            top1 = database.first(c, queries.MODEL_TOP1, [model_id, imgs.dataset])[0]
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
        if bar is not None:
            bar.close()
    result.predicted, result.seconds, result.top1 = rows.num_rows, seconds, top1
    return result


def _has_unfinished(access: _StoreAccess, model_id: str, dataset: str, shard: str | None) -> bool:
    with access.open() as c:
        row = database.first(c, queries.RUN_UNFINISHED, [model_id, dataset, shard])
        return row is not None and database.first(c, queries.STAGED_IMAGES, [row[0]]) is not None


def cli_predict(args: argparse.Namespace) -> int:
    """`python -m analysis predict --model NAME --dataset NAME [...]`."""
    result = predict(args.model, args.dataset, images=args.images, db=args.db, device=args.device,
                     batch_size=args.batch_size, workers=args.workers, limit=args.limit, shard=args.shard,
                     checkpoint=args.checkpoint, model_id=args.model_id)
    if result.run_id is None:
        print(f"{result.model_id} on {result.dataset}: all {result.selected} selected images already predicted")
        return 0
    rate = result.predicted / result.seconds if result.seconds else 0.0
    top1 = "" if result.top1 is None else f"; top-1 {result.top1:.3f} over its stored predictions"
    print(f"{result.model_id} on {result.dataset}: {result.predicted} images predicted in {result.seconds:.1f} s "
          f"({rate:.1f} img/s, {result.device}), run {result.run_id}{top1}")
    return 0

"""Import prediction files into the store: the paper's `preds.npz`, Vasudevan-style logits, and CSV.

Formats (DESIGN §6):
- `paper-npz`: `top1 (N,)`, `top5 (N, 5)`, `probs (N, 1000)` in ImageFolder order (classes sorted by wnid,
  then file names), with `metadata.json` (arch, family, training data, params) next to it;
- `logits`: a `.npy` array `(N, 1000)` in image-id order (validation-file order for imagenet-val);
- `csv`: columns `file_name`, `prediction` and optionally `top5` (5 space-separated class ids).
Every file is checked completely before anything is written; the write itself is one transaction.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.knowledge.classes import NUM_CLASSES
from analysis.store import database, publish, queries

FORMATS = ("paper-npz", "logits", "csv")
_SUFFIX_FORMATS = {".npz": "paper-npz", ".npy": "logits", ".csv": "csv"}
_METADATA_KEYS = {  # our field -> accepted keys in metadata.json, first wins
    "arch": ("arch", "architecture"),
    "family": ("family", "arch_family"),
    "training_data": ("training_data", "training data", "dataset", "pretraining_data"),
    "params": ("params", "num_params", "n_params"),
}
_CHUNK = 5000


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
                         f"(one row per image of {images.dataset}, {len(images.ids)} images)")


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
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = {k: archive[k] for k in ("top1", "top5", "probs") if k in archive.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ValueError(f"{path}: not a readable .npz archive ({exc})") from None
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
    try:
        logits = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy array ({exc})") from None
    _shape(path, "logits", logits, (len(images.ids), NUM_CLASSES), images)
    if not np.issubdtype(logits.dtype, np.floating):
        raise ValueError(f"{path}: field 'logits' has dtype {logits.dtype}; expected floating-point logits")
    _finite(path, "logits", logits, images.ids, images)
    top5, conf = top5_of_logits(logits)
    return Predictions(images.ids, top5[:, 0], top5, conf)


def _bad_rows(path: Path, field: str, lines: np.ndarray, values: list, why: str) -> ValueError:
    more = f" ({len(lines)} bad rows)" if len(lines) > 1 else ""
    return ValueError(f"{path}: line {int(lines[0])}: field {field!r} = {values[0]!r} {why}{more}")


def read_csv(path: Path, images: _Images) -> Predictions:
    """CSV with `file_name`, `prediction` and optional `top5` (5 space-separated ids, best first)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in ("file_name", "prediction") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; expected file_name, prediction and optional top5")
    lines = np.arange(len(df)) + 2  # header is line 1
    names = df["file_name"].str.strip().map(lambda s: Path(s).name if s.startswith("ILSVRC2012_val_") else s)
    lookup = pd.Series(images.ids, index=images.names)
    ids = names.map(lookup)
    unknown = ids.isna().to_numpy()
    if unknown.any():
        raise _bad_rows(path, "file_name", lines[unknown], names[unknown].tolist(),
                        f"is not an image of dataset {images.dataset}")
    dup = names.duplicated().to_numpy()
    if dup.any():
        raise _bad_rows(path, "file_name", lines[dup], names[dup].tolist(), "appears more than once")
    pred = pd.to_numeric(df["prediction"].str.strip(), errors="coerce")
    bad = (pred.isna() | (pred % 1 != 0) | (pred < 0) | (pred >= NUM_CLASSES)).to_numpy()
    if bad.any():
        raise _bad_rows(path, "prediction", lines[bad], df["prediction"][bad].tolist(), "is not a class id 0-999")
    top5 = None
    if "top5" in df.columns:
        tokens = df["top5"].str.split()
        ok = tokens.map(lambda t: len(t) == 5 and all(x.isdigit() and int(x) < NUM_CLASSES for x in t)).to_numpy()
        if not ok.all():
            raise _bad_rows(path, "top5", lines[~ok], df["top5"][~ok].tolist(),
                            "must be 5 space-separated class ids 0-999")
        top5 = np.array(tokens.tolist(), dtype=np.int16)
        differ = top5[:, 0] != pred.to_numpy()
        if differ.any():
            raise _bad_rows(path, "top5", lines[differ], df["top5"][differ].tolist(),
                            "must start with the row's prediction")
    image_ids = ids.to_numpy(np.int32)
    order = np.argsort(image_ids)
    return Predictions(image_ids[order], pred.to_numpy(np.int16)[order], None if top5 is None else top5[order], None)


def read_metadata(path: Path) -> dict:
    """`metadata.json` → {arch, family, training_data, params, metadata (the whole object)}."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with arch, family, training_data, params")
    out: dict = {"metadata": data}
    for key, aliases in _METADATA_KEYS.items():
        value = next((data[a] for a in aliases if a in data), None)
        if key == "params" and value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
                raise ValueError(f"{path}: field 'params' = {value!r} must be a non-negative integer")
            value = int(value)
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
                       dataset: str = "imagenet-val", replace: bool = False, db: Path | None = None,
                       con=None) -> dict:
    """Check a prediction file completely, then store it as model `model_id` in one transaction.

    An existing model id needs `replace=True`; without it (or on any bad input) the store is unchanged.
    Returns {model_id, dataset, predictions, new_pairs, top1}.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    fmt = detect_format(path, fmt)
    meta_path = Path(metadata) if metadata else (path.with_name("metadata.json") if fmt == "paper-npz" else None)
    if metadata and not meta_path.is_file():
        raise FileNotFoundError(f"--metadata {meta_path} does not exist")
    info = read_metadata(meta_path) if meta_path and meta_path.is_file() else {"metadata": {}}
    own = con is None
    con = con if con is not None else database.connect(db)
    try:
        record = publish.ModelRecord(model_id, "import", arch=info.get("arch"), family=info.get("family"),
                                     training_data=info.get("training_data"), params=info.get("params"),
                                     metadata={**info["metadata"], "file": str(path), "format": fmt})
        existing = database.first(con, queries.MODEL_GET, [model_id])
        if existing is not None and not replace:
            raise ValueError(f"model id {model_id!r} already exists in the store (source {existing[1]}); "
                             "pass --replace to overwrite its predictions, or choose another --model-id")
        images = _Images(con, dataset)
        reader = {"paper-npz": read_paper_npz, "logits": read_logits, "csv": read_csv}[fmt]
        preds = reader(path, images)
        rows = publish.prediction_table(preds.image_ids, preds.top1, top5=preds.top5,
                                        top5_confidence=preds.top5_confidence)
        counts = publish.publish_predictions(con, record, dataset, rows, mode="replace" if replace else "new")
        top1 = database.first(con, queries.MODEL_TOP1, [model_id, dataset])[0]
    finally:
        if own:
            con.close()
    return {"model_id": model_id, "dataset": dataset, **counts, "top1": top1}


def cli_import(args: argparse.Namespace) -> int:
    """`python -m analysis import-predictions FILE --model-id ID [--format ...] [--metadata ...] [--replace]`."""
    out = import_predictions(args.file, model_id=args.model_id, fmt=args.format, metadata=args.metadata,
                             dataset=args.dataset, replace=args.replace, db=args.db)
    print(f"imported {out['predictions']} predictions of {out['model_id']} on {out['dataset']} "
          f"({out['new_pairs']} new pairs classified); top-1 {out['top1']:.4f}")
    return 0

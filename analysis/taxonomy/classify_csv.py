"""`python -m analysis classify-csv IN.csv OUT.csv`: classify the rows of a CSV of predictions.

Input columns: `file_name`, `target`, `prediction` (and `labels`, space-separated class ids, with
`--labels given`); other columns pass through unchanged. Output: the input plus `category` and
`reason`. Malformed rows are all reported by line number and nothing is written.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import paths
from analysis.knowledge.classes import NUM_CLASSES, VAL_FILE_RE, val_index, val_targets
from analysis.taxonomy import categories as tx
from analysis.taxonomy import classify, labelsets

LABEL_MODES = ("given", "real", "single")
MAX_LISTED = 20


def _class_id(text: str) -> int | None:
    text = text.strip()
    if not text.lstrip("-").isdigit():
        return None
    value = int(text)
    return value if 0 <= value < NUM_CLASSES else None


def _parse(df: pd.DataFrame, mode: str) -> tuple[dict, list[str]]:
    """Parsed columns and the list of problems ('line N: ...'); line 1 is the header."""
    problems: list[str] = []
    n = len(df)
    targets, predictions = np.zeros(n, dtype=np.int16), np.zeros(n, dtype=np.int16)
    val_idx = np.full(n, -1, dtype=np.int32)
    labels: list[list[int]] = []
    official = val_targets()
    for row, record in enumerate(df.itertuples(index=False)):
        line = row + 2
        values = record._asdict()
        name = values["file_name"].strip()
        if VAL_FILE_RE.match(Path(name).name):
            try:
                val_idx[row] = val_index(name)
            except ValueError:
                pass
        if not name:
            problems.append(f"line {line}: file_name is empty")
        elif mode == "real" and val_idx[row] < 0:
            problems.append(f"line {line}: file_name {name!r} is not an ImageNet validation file "
                            "(ILSVRC2012_val_00000001.JPEG .. ILSVRC2012_val_00050000.JPEG); --labels real needs one")
        for field, out in (("target", targets), ("prediction", predictions)):
            value = _class_id(values[field])
            if value is None:
                problems.append(f"line {line}: {field} {values[field]!r} is not a class id 0-{NUM_CLASSES - 1}")
            else:
                out[row] = value
        if mode == "real" and val_idx[row] >= 0 and _class_id(values["target"]) is not None \
                and int(official[val_idx[row]]) != targets[row]:
            problems.append(f"line {line}: target {targets[row]} differs from the validation label "
                            f"{int(official[val_idx[row]])} of {name}")
        if mode == "given":
            ids = [_class_id(token) for token in values["labels"].split()]
            if any(v is None for v in ids):
                problems.append(f"line {line}: labels {values['labels']!r} must be space-separated class ids "
                                f"0-{NUM_CLASSES - 1}")
                ids = []
            labels.append(ids)
    return {"targets": targets, "predictions": predictions, "val_indices": val_idx, "labels": labels}, problems


def _open_world(checkpoint: str | Path | None, model_name: str | None, keys: np.ndarray, file_names: list[str],
                targets: np.ndarray, folder: Path):
    """(check, images) keyed by label-set image id `keys (N,)`, or (None, None) when no CLIP weights are configured."""
    from analysis.taxonomy.embedders import open_embedder

    embedder = open_embedder(checkpoint, model_name=model_name)
    if embedder is None:
        return None, None
    from PIL import Image

    from analysis.taxonomy.openworld import OpenWorldCheck

    root = paths.imagenet_dir() or folder
    files = {int(k): root / name for k, name in zip(keys, file_names)}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"--clip needs the images: {len(missing)} not found, e.g. {missing[0]}; "
                                f"set {paths.IMAGENET_ENV} to the folder that holds them")

    def images(key):
        return Image.open(files[int(key)])

    # Pool: the CSV's images (the evaluation set); the check leaves an image out of its own neighbours.
    pool = dict(zip((int(k) for k in keys), (int(t) for t in targets)))
    check = OpenWorldCheck.from_images(embedder, list(pool), images, np.array(list(pool.values())))
    return check, images


def classify_frame(df: pd.DataFrame, *, labels: str = "real", clip: str | Path | None = None, clip_model: str | None = None,
                   source: str = "input", folder: Path = Path(".")) -> pd.DataFrame:
    """The frame (string columns) plus `category` and `reason`; ValueError lists every malformed row."""
    if labels not in LABEL_MODES:
        raise ValueError(f"labels={labels!r} must be one of {', '.join(LABEL_MODES)}")
    required = ["file_name", "target", "prediction"] + (["labels"] if labels == "given" else [])
    missing = [c for c in required if c not in df.columns]
    if missing:
        hint = " (--labels given needs a labels column of space-separated class ids)" if "labels" in missing else ""
        raise ValueError(f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}{hint}")
    clash = [c for c in ("category", "reason") if c in df.columns]
    if clash:
        raise ValueError(f"{source}: already has column(s) {', '.join(clash)}; rename them, the output adds these")
    if df.empty:
        raise ValueError(f"{source}: no rows to classify")
    parsed, problems = _parse(df, labels)
    if problems:
        listed = "; ".join(problems[:MAX_LISTED])
        more = f"; ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise ValueError(f"{source}: {len(problems)} malformed row(s): {listed}{more}")

    targets, val_idx = parsed["targets"], parsed["val_indices"]
    if labels == "real":
        labelset, image_ids = labelsets.real(), val_idx.astype(np.int64)
    elif labels == "single":
        labelset, image_ids = labelsets.single(targets, val_indices=val_idx), np.arange(len(df))
    else:
        # The rows with given labels are the annotated set: as in the paper, its images do not count
        # towards co-occurrences (ReaL images outside the set do).
        annotated = np.unique(val_idx[val_idx >= 0])
        labelset = labelsets.given(targets, parsed["labels"], val_indices=val_idx, exclude_from_counts=annotated)
        image_ids = np.arange(len(df))
    check, images = _open_world(clip, clip_model, image_ids, df["file_name"].str.strip().tolist(), targets, folder)
    result = classify.classify_pairs(image_ids, parsed["predictions"], labelset, oov=check, images=images)
    out = df.copy()
    out["category"] = result["category"].to_numpy()
    out["reason"] = result["reason"].to_numpy()
    out.attrs["clip"] = result.attrs["clip"]
    return out


def _write_atomically(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", suffix=".csv", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            df.to_csv(handle, index=False)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def cli_classify_csv(args: argparse.Namespace) -> int:
    """Read `args.input`, classify, write `args.output`; print the category counts."""
    source = Path(args.input)
    if not source.is_file():
        raise FileNotFoundError(f"{source} does not exist; pass a CSV with file_name, target, prediction")
    try:
        df = pd.read_csv(source, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: not a readable CSV ({str(exc).strip()})") from None
    out = classify_frame(df, labels=args.labels, clip=args.clip, clip_model=args.clip_model, source=str(source), folder=source.parent)
    _write_atomically(out, Path(args.output))
    if not out.attrs["clip"]:
        print("fine-grained OOV check: off (no CLIP weights; pass --clip CHECKPOINT or an open_clip tag)", file=sys.stderr)
    counts = out["category"].value_counts()
    print(f"wrote {args.output}: {len(out)} rows")
    for category_id in tx.IDS:
        if counts.get(category_id, 0):
            print(f"  {category_id}: {counts[category_id]}")
    return 0

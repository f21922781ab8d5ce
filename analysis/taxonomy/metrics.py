"""Per-model metrics (DESIGN §1): top-1, ReaL accuracy, MLA (+minor, +explainable), error counts and portions.

Accuracies are in percent, as timm and the paper's statistics report them. MLA follows the TFDS
`imagenet2012_multilabel` formula: an image is correct when the prediction is among its labels
(here: the categories `categories.COUNTS_AS_CORRECT['mla']`), accuracy is averaged per target class,
then over classes. Every figure is given for all images and per group organism / artifact / other.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.knowledge.classes import NUM_CLASSES
from analysis.knowledge.superclasses import GROUPS, class_groups
from analysis.taxonomy import categories as tx
from analysis.taxonomy.labelsets import LabelSet

GROUP_NAMES = ("all",) + tuple(GROUPS)


def _codes(categories) -> np.ndarray:
    arr = np.asarray(categories)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int8)
    return tx.codes_of(arr.tolist())


def per_class_accuracy(correct: np.ndarray, targets: np.ndarray) -> float:
    """Accuracy in percent averaged per target class, then over the classes present; `correct (N,)`, `targets (N,)`."""
    correct, targets = np.asarray(correct, dtype=np.float64), np.asarray(targets, dtype=np.int64)
    if correct.shape != targets.shape:
        raise ValueError(f"correct {correct.shape} and targets {targets.shape} must have the same shape")
    if not len(targets):
        return float("nan")
    hits = np.bincount(targets, weights=correct, minlength=NUM_CLASSES)
    totals = np.bincount(targets, minlength=NUM_CLASSES)
    present = totals > 0
    return float(np.mean(hits[present] / totals[present]) * 100)


def model_metrics(image_ids: np.ndarray, predictions: np.ndarray, categories, labelset: LabelSet) -> pd.DataFrame:
    """One row per group (all, organism, artifact, other) of one model's metrics.

    `image_ids (N,)`, `predictions (N,)` top-1, `categories (N,)` ids or int8 codes from the classifier
    for the same rows. Columns: grp, images, evaluated, top1, real_accuracy, mla, mla_minor,
    mla_explainable, errors, count_<category> and portion_<category> for each error category.
    """
    ids, preds, codes = np.asarray(image_ids), np.asarray(predictions), _codes(categories)
    if ids.ndim != 1 or preds.shape != ids.shape or codes.shape != ids.shape:
        raise ValueError(f"image_ids {ids.shape}, predictions {preds.shape} and categories {codes.shape} "
                         "must be 1-D of the same length")
    if ids.size and (ids.min() < 0 or ids.max() >= len(labelset)):
        raise ValueError(f"image_ids must lie in 0..{len(labelset) - 1} (the label set's images)")
    ids, preds = ids.astype(np.int64), preds.astype(np.int64)
    targets = labelset.targets[ids].astype(np.int64)
    groups = class_groups()[targets]
    evaluated = labelset.evaluated[ids]
    has_real = labelset.has_real[ids]
    real_hit = (labelset.real_matrix[ids] == preds[:, None]).any(axis=1)
    counts_as = {name: np.isin(codes, tx.codes_of(cats)) for name, cats in tx.COUNTS_AS_CORRECT.items()}
    rows = []
    for group in GROUP_NAMES:
        sel = np.ones(len(ids), dtype=bool) if group == "all" else groups == group
        ev = sel & evaluated
        errors = ev & (codes != tx.CORRECT)
        row = {
            "grp": group,
            "images": int(sel.sum()),
            "evaluated": int(ev.sum()),
            "top1": float(np.mean(preds[sel] == targets[sel]) * 100) if sel.any() else float("nan"),
            "real_accuracy": float(np.mean(real_hit[sel & has_real]) * 100) if (sel & has_real).any() else float("nan"),
        }
        for name, ok in counts_as.items():
            row[name] = per_class_accuracy(ok[ev], targets[ev])
        row["errors"] = int(errors.sum())
        per_category = np.bincount(codes[errors].astype(np.intp), minlength=len(tx.CATEGORIES))
        for category_id in tx.ERROR_IDS:
            count = int(per_category[tx.code_of(category_id)])
            row[f"count_{category_id}"] = count
            row[f"portion_{category_id}"] = count / row["errors"] if row["errors"] else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def category_counts(model_index: np.ndarray, codes: np.ndarray, n_models: int) -> np.ndarray:
    """Rows of each category per model, int64 `(n_models, categories)`; `model_index (N,)`, `codes (N,)` int8."""
    model_index, codes = np.asarray(model_index), np.asarray(codes)
    if model_index.shape != codes.shape or model_index.ndim != 1:
        raise ValueError(f"model_index {model_index.shape} and codes {codes.shape} must be 1-D of the same length")
    if model_index.size and (model_index.min() < 0 or model_index.max() >= n_models):
        raise ValueError(f"model_index must lie in 0..{n_models - 1}")
    k = len(tx.CATEGORIES)
    out = np.zeros(n_models * k, dtype=np.int64)
    chunk = 1 << 22  # bounded temporaries for zoo-sized inputs
    for start in range(0, len(codes), chunk):
        flat = model_index[start:start + chunk].astype(np.int64) * k + codes[start:start + chunk]
        out += np.bincount(flat, minlength=n_models * k)
    return out.reshape(n_models, k)

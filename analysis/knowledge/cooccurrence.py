"""Co-occurrence of classes in ReaL multi-labels (target added): the evidence of `spurious_correlation`.

A (label, prediction) pair is common when the two classes co-occur in at least `MIN_IMAGES` images
other than the one being classified (leave-one-out) and share no superclass (DESIGN §1). The counts
are one `(1000, 1000)` matrix over all counted images; classifying an image that is itself counted
subtracts its own contribution.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from analysis.knowledge.classes import NUM_CLASSES

MIN_IMAGES = 2


def padded(label_lists: Sequence[Sequence[int]], *, fill: int = -1) -> np.ndarray:
    """Label lists as a padded int16 matrix `(N, Lmax)` (at least one column), missing entries `fill`."""
    width = max([len(labels) for labels in label_lists] + [1])
    out = np.full((len(label_lists), width), fill, dtype=np.int16)
    lengths = np.fromiter((len(labels) for labels in label_lists), dtype=np.intp, count=len(label_lists))
    if lengths.sum():
        rows = np.repeat(np.arange(len(label_lists)), lengths)
        cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[rows, cols] = np.fromiter((c for labels in label_lists for c in labels), dtype=np.int16,
                                      count=int(lengths.sum()))
    return out


def count_matrix(label_lists: Sequence[Sequence[int]]) -> np.ndarray:
    """Images in which each pair of classes co-occurs, int32 `(1000, 1000)` (diagonal: images with the class).

    Each list counts once per image; duplicates inside a list are ignored.
    """
    lists = [tuple(sorted(set(int(c) for c in labels))) for labels in label_lists]
    for i, labels in enumerate(lists):
        if labels and not (0 <= labels[0] and labels[-1] < NUM_CLASSES):
            raise ValueError(f"label_lists[{i}]={labels!r} has a class id outside 0..{NUM_CLASSES - 1}")
    return _count_padded(padded(lists))


def _count_padded(matrix: np.ndarray) -> np.ndarray:
    flat = np.zeros(NUM_CLASSES * NUM_CLASSES, dtype=np.int64)
    width = matrix.shape[1]
    for i in range(width):
        for j in range(width):
            a, b = matrix[:, i].astype(np.int64), matrix[:, j].astype(np.int64)
            ok = (a >= 0) & (b >= 0)
            flat += np.bincount(a[ok] * NUM_CLASSES + b[ok], minlength=NUM_CLASSES * NUM_CLASSES)
    return flat.reshape(NUM_CLASSES, NUM_CLASSES).astype(np.int32)


def with_target(labels: Sequence[Sequence[int]], targets: np.ndarray) -> list[tuple[int, ...]]:
    """Each image's labels with its target added (sorted, distinct); `targets (N,)`."""
    if len(labels) != len(targets):
        raise ValueError(f"labels has {len(labels)} lists but targets has {len(targets)} entries; pass one per image")
    return [tuple(sorted(set(l) | {int(t)})) for l, t in zip(labels, targets)]


def common_pairs(counts: np.ndarray, *, shares: np.ndarray, min_images: int = MIN_IMAGES) -> np.ndarray:
    """Boolean `(1000, 1000)`: pairs co-occurring in >= `min_images` images that share no superclass.

    `counts` `(1000, 1000)` from `count_matrix`, `shares` `(1000, 1000)` from
    `analysis.knowledge.superclasses.shares_superclass()`. The diagonal is never common.
    """
    for name, value in (("counts", counts), ("shares", shares)):
        if np.shape(value) != (NUM_CLASSES, NUM_CLASSES):
            raise ValueError(f"{name} has shape {np.shape(value)}; expected ({NUM_CLASSES}, {NUM_CLASSES})")
    out = (np.asarray(counts) >= min_images) & ~np.asarray(shares, dtype=bool)
    np.fill_diagonal(out, False)
    return out


def loo_count(counts: np.ndarray, own: Sequence[int], a: int, b: int) -> int:
    """Images other than the one whose counted labels are `own` in which classes `a` and `b` co-occur."""
    own = set(own)
    return int(counts[a, b]) - int(a in own and b in own)


def pairs_table(counts: np.ndarray, *, min_images: int = 1) -> pd.DataFrame:
    """Off-diagonal pairs a < b with their counts (columns a, b, images) — the store's `cooccurrence` rows."""
    upper = np.triu(np.asarray(counts) >= min_images, k=1)
    a, b = np.nonzero(upper)
    return pd.DataFrame({"a": a.astype(np.int16), "b": b.astype(np.int16),
                         "images": np.asarray(counts)[a, b].astype(np.int32)})

"""Label sets: per image its target, its multi-labels, whether it is evaluated, and the co-occurrence counts.

Modes (DESIGN §1): `real` (ReaL labels from timm, the default), `multilabel` (the paper's 20k-image
set from `human_accuracy_v3.0.0.json`), `single` (labels = {target}) and `given` (labels from the
caller). Image `i` of a label set is row `i` of its arrays; for `real` and `multilabel` that is the
0-based ImageNet validation index.
"""

from __future__ import annotations

import json
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from analysis.knowledge import cooccurrence
from analysis.knowledge.classes import (
    NUM_CLASSES,
    NUM_VAL,
    check_class_ids,
    real_labels,
    val_index,
    val_targets,
    wnid_to_id,
)

MODES = ("real", "multilabel", "single", "given")


class LabelSet:
    """Targets `(N,)`, labels per image, evaluation mask `(N,)`, expert marks `(N,)` and co-occurrence counts.

    `labels(i)` lists the target first (when it is a label), then the other labels ascending: the
    order in which the checks look at labels. `cooccurrence` is `(1000, 1000)`; `counted[i]` are
    the classes with which image `i` itself entered those counts (empty when it did not), so the
    leave-one-out count of (a, b) for image i is `cooccurrence[a, b] - (a in counted[i] and b in counted[i])`.
    `val_indices (N,)` is the validation index of each image (-1: not a validation image); `real`
    holds the ReaL labels of each image (None where unknown) for ReaL accuracy.
    """

    def __init__(self, mode: str, targets: np.ndarray, labels_list: list[tuple[int, ...]], evaluated: np.ndarray, *,
                 cooccurrence_counts: np.ndarray, counted: list[tuple[int, ...]],
                 non_prototypical: np.ndarray, exclusion: np.ndarray, val_indices: np.ndarray,
                 real: list[tuple[int, ...] | None], imagenet_m: np.ndarray | None = None) -> None:
        self.mode = mode
        self.targets = targets
        self.labels_list = labels_list
        self.evaluated = evaluated
        self.cooccurrence = cooccurrence_counts
        self.counted = counted
        self.non_prototypical = non_prototypical
        self.exclusion = exclusion
        self.val_indices = val_indices
        self.real = real
        self.imagenet_m = imagenet_m

    def __len__(self) -> int:
        return len(self.targets)

    def __repr__(self) -> str:
        return f"LabelSet(mode={self.mode!r}, images={len(self)}, evaluated={int(self.evaluated.sum())})"

    def labels(self, i: int) -> tuple[int, ...]:
        """Labels of image `i` (target first when it is one, then ascending)."""
        return self.labels_list[i]

    @cached_property
    def label_matrix(self) -> np.ndarray:
        """Labels as a padded int16 matrix `(N, Lmax)` in `labels(i)` order, -1 = no label."""
        return cooccurrence.padded(self.labels_list)

    @cached_property
    def counted_matrix(self) -> np.ndarray:
        """`counted` as a padded int16 matrix `(N, Cmax)`, -1 = none."""
        return cooccurrence.padded(self.counted)

    @cached_property
    def real_matrix(self) -> np.ndarray:
        """ReaL labels as a padded int16 matrix `(N, Rmax)`, -1 = none (also for images without ReaL labels)."""
        return cooccurrence.padded([r or () for r in self.real])

    @cached_property
    def has_real(self) -> np.ndarray:
        """`(N,)` bool: the image has a non-empty ReaL list (the images ReaL accuracy counts)."""
        return np.fromiter((bool(r) for r in self.real), dtype=bool, count=len(self.real))

    def common_pairs(self) -> np.ndarray:
        """Boolean `(1000, 1000)`: pairs common over all counted images (no leave-one-out), no shared superclass."""
        from analysis.knowledge.superclasses import shares_superclass

        return cooccurrence.common_pairs(self.cooccurrence, shares=shares_superclass())


def _ordered(target: int, labels) -> tuple[int, ...]:
    rest = sorted(set(int(l) for l in labels) - {target})
    return ((target,) if target in set(int(l) for l in labels) else ()) + tuple(rest)


def _check_targets(targets) -> np.ndarray:
    return check_class_ids("targets", targets, ndim=1, shape_hint="a 1-D array of class ids (N,)").astype(np.int16)


def _check_val_indices(val_indices, n: int) -> np.ndarray:
    if val_indices is None:
        return np.full(n, -1, dtype=np.int32)
    arr = np.asarray(val_indices)
    if arr.shape != (n,) or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"val_indices has shape {arr.shape} and dtype {arr.dtype}; pass ({n},) integers, -1 = none")
    if arr.size and (arr.min() < -1 or arr.max() >= NUM_VAL):
        raise ValueError(f"val_indices must lie in -1..{NUM_VAL - 1}; got {arr.min()}..{arr.max()}")
    return arr.astype(np.int32)


@lru_cache(maxsize=1)
def _real_with_target() -> tuple[tuple[int, ...], ...]:
    return tuple(cooccurrence.with_target(real_labels(), val_targets()))


@lru_cache(maxsize=1)
def real_cooccurrence() -> np.ndarray:
    """Co-occurrence counts `(1000, 1000)` over all 50,000 ReaL label lists with the target added."""
    return cooccurrence.count_matrix(_real_with_target())


def _non_prototypical(val_idx: np.ndarray) -> np.ndarray:
    from analysis.knowledge.experts import non_prototypical_images

    marked = np.zeros(NUM_VAL + 1, dtype=bool)  # last slot: index -1 (no validation image)
    marked[list(non_prototypical_images())] = True
    return marked[val_idx]


def _val_extras(val_idx: np.ndarray) -> tuple[list, list, np.ndarray]:
    """(counted, real, non_prototypical) of images given by validation index (-1: none)."""
    own, reals = _real_with_target(), real_labels()
    counted = [own[v] if v >= 0 else () for v in val_idx]
    real = [reals[v] if v >= 0 else None for v in val_idx]
    return counted, real, _non_prototypical(val_idx)


@lru_cache(maxsize=1)
def real() -> LabelSet:
    """ReaL labels (timm) for the 50,000 validation images; evaluated = ReaL list non-empty and holds the target."""
    targets = val_targets().astype(np.int16)
    reals = real_labels()
    labels = [_ordered(int(t), r) for t, r in zip(targets, reals)]
    has = np.fromiter((len(r) > 0 for r in reals), dtype=bool, count=NUM_VAL)
    holds = np.fromiter((int(t) in r for t, r in zip(targets, reals)), dtype=bool, count=NUM_VAL)
    exclusion = np.where(~has, "no_real_labels", np.where(~holds, "target_not_in_real", "")).astype(object)
    val_idx = np.arange(NUM_VAL, dtype=np.int32)
    return LabelSet("real", targets, labels, has & holds, cooccurrence_counts=real_cooccurrence(),
                    counted=list(_real_with_target()), non_prototypical=_non_prototypical(val_idx),
                    exclusion=exclusion, val_indices=val_idx, real=list(reals))


def single(targets: np.ndarray, *, val_indices: np.ndarray | None = None) -> LabelSet:
    """Labels = {target} for each image; `targets (N,)`; `val_indices (N,)` (-1 = none) adds expert marks.

    Co-occurrences come from all ReaL images (target added), leaving out each image's own ReaL list.
    """
    targets = _check_targets(targets)
    val_idx = _check_val_indices(val_indices, len(targets))
    counted, reals, nonproto = _val_extras(val_idx)
    return LabelSet("single", targets, [(int(t),) for t in targets], np.ones(len(targets), dtype=bool),
                    cooccurrence_counts=real_cooccurrence(), counted=counted, non_prototypical=nonproto,
                    exclusion=np.full(len(targets), "", dtype=object), val_indices=val_idx, real=reals)


def given(targets: np.ndarray, labels: Sequence[Sequence[int]], *, val_indices: np.ndarray | None = None,
          exclude_from_counts: Sequence[int] | None = None) -> LabelSet:
    """The caller's labels per image (the target is added); `targets (N,)`, `labels` N sequences of class ids.

    Every image is evaluated. Co-occurrences come from the ReaL images (target added), leaving out
    each image's own ReaL list (`val_indices (N,)`, -1 = not a validation image); validation indices
    in `exclude_from_counts` do not count at all (e.g. the whole annotated set, as the paper did).
    """
    targets = _check_targets(targets)
    if isinstance(labels, (str, bytes)) or len(labels) != len(targets):
        raise ValueError(f"labels must be a list of {len(targets)} sequences of class ids, one per target")
    lists = []
    for i, (t, row) in enumerate(zip(targets, labels)):
        if isinstance(row, (str, bytes)):
            raise TypeError(f"labels[{i}]={row!r} must be a sequence of class ids, not a string")
        row = list(row)
        if not all(isinstance(c, (int, np.integer)) and 0 <= c < NUM_CLASSES for c in row):
            raise ValueError(f"labels[{i}]={row!r} must hold class ids 0..{NUM_CLASSES - 1}")
        lists.append(_ordered(int(t), row + [int(t)]))
    val_idx = _check_val_indices(val_indices, len(targets))
    counted, reals, nonproto = _val_extras(val_idx)
    counts = real_cooccurrence()
    if exclude_from_counts is not None and len(exclude_from_counts):
        excluded = sorted(set(int(v) for v in exclude_from_counts))
        if excluded[0] < 0 or excluded[-1] >= NUM_VAL:
            raise ValueError(f"exclude_from_counts must hold validation indices 0..{NUM_VAL - 1}")
        own = _real_with_target()
        counts = counts - cooccurrence.count_matrix([own[v] for v in excluded])
        gone = set(excluded)
        counted = [() if v in gone else c for v, c in zip(val_idx, counted)]
    return LabelSet("given", targets, lists, np.ones(len(targets), dtype=bool), cooccurrence_counts=counts,
                    counted=counted, non_prototypical=nonproto, exclusion=np.full(len(targets), "", dtype=object),
                    val_indices=val_idx, real=reals)


def _names(value, field: str, path: Path) -> list[str]:
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError(f"{path}: field {field!r} must be a list (or object) of image file names")


def read_multilabel_file(path: Path) -> dict:
    """Parse `human_accuracy_v3.0.0.json` (tfds imagenet2012_multilabel format) into validation indices.

    Returns {labels: {val index: tuple of class ids (correct ∪ unclear)}, problematic: set, imagenet_m: set}.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("initial_annots"), dict):
        raise ValueError(f"{path}: expected an object with 'initial_annots' (tfds imagenet2012_multilabel format)")
    lookup = wnid_to_id()
    labels: dict[int, tuple[int, ...]] = {}
    for name, annots in data["initial_annots"].items():
        try:
            index = val_index(name)
        except ValueError as exc:
            raise ValueError(f"{path}: initial_annots: {exc}") from None
        if not isinstance(annots, dict):
            raise ValueError(f"{path}: image {name}: annotations must be an object with correct/unclear/wrong")
        ids = []
        for wnid in list(annots.get("correct", [])) + list(annots.get("unclear", [])):
            if wnid not in lookup:
                raise ValueError(f"{path}: image {name}: {wnid!r} is not an ImageNet-1k wnid")
            ids.append(lookup[wnid])
        labels[index] = tuple(sorted(set(ids)))
    sets = {}
    for field in ("problematic_images", "imagenet_m"):
        names = _names(data.get(field, []), field, path)
        try:
            sets[field] = {val_index(n) for n in names}
        except ValueError as exc:
            raise ValueError(f"{path}: {field}: {exc}") from None
    return {"labels": labels, "problematic": sets["problematic_images"], "imagenet_m": sets["imagenet_m"]}


def multilabel(path: Path) -> LabelSet:
    """The paper's multi-label set (labels = correct ∪ unclear) from `human_accuracy_v3.0.0.json`.

    Evaluated: annotated, not problematic, with the target among its labels. Co-occurrences come
    from the ReaL images (target added) outside the annotated set, as the paper counted them.
    """
    parsed = read_multilabel_file(path)
    targets = val_targets().astype(np.int16)
    annotated = np.zeros(NUM_VAL, dtype=bool)
    annotated[list(parsed["labels"])] = True
    problematic = np.zeros(NUM_VAL, dtype=bool)
    problematic[list(parsed["problematic"])] = True
    labels = [_ordered(int(targets[i]), parsed["labels"].get(i, ())) for i in range(NUM_VAL)]
    holds = np.fromiter((len(l) > 0 and l[0] == t for l, t in zip(labels, targets)), dtype=bool, count=NUM_VAL)
    exclusion = np.select([~annotated, problematic, ~holds], ["not_annotated", "problematic", "target_not_in_labels"],
                          "").astype(object)
    own = _real_with_target()
    counted = [() if annotated[i] else own[i] for i in range(NUM_VAL)]
    counts = cooccurrence.count_matrix(counted)
    imagenet_m = np.zeros(NUM_VAL, dtype=bool)
    imagenet_m[list(parsed["imagenet_m"])] = True
    val_idx = np.arange(NUM_VAL, dtype=np.int32)
    return LabelSet("multilabel", targets, labels, annotated & ~problematic & holds, cooccurrence_counts=counts,
                    counted=counted, non_prototypical=_non_prototypical(val_idx), exclusion=exclusion,
                    val_indices=val_idx, real=list(real_labels()), imagenet_m=imagenet_m)

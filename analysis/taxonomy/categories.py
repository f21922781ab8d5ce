"""The error categories (DESIGN §1) in one place: stable ids, names, check order, severity, colours, int8 codes.

Everything else (classifier, metrics, store, dashboard charts) reads the categories from here, so
adding or renaming one is a change to this file only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEVERITIES = ("correct", "counts_as_correct", "minor", "explainable", "major", "not_evaluated")


@dataclass(frozen=True)
class Category:
    """One category: stable id, int8 code, display name, severity, chart colour (hex) and what it means."""

    id: str
    code: int
    name: str
    severity: str
    colour: str
    description: str


# Check order: the first category whose rule fires decides (not_evaluated is decided before any check).
CATEGORIES: tuple[Category, ...] = (
    Category("correct", 0, "Correct", "correct", "#2ca02c", "prediction == target"),
    Category("overlapping_classes", 1, "Overlapping classes", "counts_as_correct", "#98df8a",
             "(target, prediction) is a collapsed pair of classes that denote the same thing"),
    Category("multi_label", 2, "Multi-label", "counts_as_correct", "#17becf",
             "the prediction is one of the image's labels"),
    Category("fine_grained", 3, "Fine-grained", "minor", "#1f77b4",
             "the prediction shares a superclass with some label"),
    Category("fine_grained_oov", 4, "Fine-grained OOV", "minor", "#9edae5",
             "the image shows a concept outside the 1000 classes close to the prediction (CLIP)"),
    Category("spurious_correlation", 5, "Spurious correlation", "explainable", "#ff7f0e",
             "a label and the prediction co-occur in the ReaL labels of at least 2 other images"),
    Category("non_prototypical", 6, "Non-prototypical", "explainable", "#bcbd22",
             "the experts marked the image non-prototypical"),
    Category("model_failure", 7, "Model failure", "major", "#d62728", "none of the above"),
    Category("not_evaluated", 8, "Not evaluated", "not_evaluated", "#7f7f7f",
             "the image is outside the evaluation set of the label set"),
)

BY_ID: dict[str, Category] = {c.id: c for c in CATEGORIES}
IDS: tuple[str, ...] = tuple(c.id for c in CATEGORIES)
CHECK_ORDER: tuple[str, ...] = IDS[:-1]
# Errors of an evaluated image: every category but correct and not_evaluated.
ERROR_IDS: tuple[str, ...] = IDS[1:-1]
COLOURS: dict[str, str] = {c.id: c.colour for c in CATEGORIES}
NAMES: dict[str, str] = {c.id: c.name for c in CATEGORIES}

CORRECT, OVERLAPPING, MULTI_LABEL, FINE_GRAINED, FINE_GRAINED_OOV, SPURIOUS, NON_PROTOTYPICAL, \
    MODEL_FAILURE, NOT_EVALUATED = (np.int8(c.code) for c in CATEGORIES)

# Which categories each accuracy counts as correct (cumulative, as the paper's MLA columns).
COUNTS_AS_CORRECT: dict[str, tuple[str, ...]] = {
    "mla": ("correct", "overlapping_classes", "multi_label"),
    "mla_minor": ("correct", "overlapping_classes", "multi_label", "fine_grained", "fine_grained_oov"),
    "mla_explainable": ("correct", "overlapping_classes", "multi_label", "fine_grained", "fine_grained_oov",
                        "spurious_correlation", "non_prototypical"),
}

# Category strings of the paper's published lists (reference CSV) -> our ids.
PAPER_NAMES: dict[str, str] = {
    "overlapping classes (collapsed mapping)": "overlapping_classes",
    "multi-label (ambiguous)": "multi_label",
    "fine-grained": "fine_grained",
    "fine-grained OOV": "fine_grained_oov",
    "spurious correlation": "spurious_correlation",
    "non-prototypical": "non_prototypical",
    "model failure": "model_failure",
}

_ID_OF_CODE = np.array(IDS, dtype=object)


def category(category_id: str) -> Category:
    """The category with this stable id; ValueError lists the known ids."""
    if category_id not in BY_ID:
        raise ValueError(f"category={category_id!r} is unknown; choose one of {list(IDS)}")
    return BY_ID[category_id]


def code_of(category_id: str) -> int:
    """int8 code of a category id (the code of vectorised arrays)."""
    return category(category_id).code


def codes_of(category_ids) -> np.ndarray:
    """int8 codes `(N,)` of a sequence of category ids; ValueError names the first unknown id."""
    lookup = {c.id: c.code for c in CATEGORIES}
    try:
        return np.fromiter((lookup[c] for c in category_ids), dtype=np.int8)
    except KeyError as exc:
        raise ValueError(f"category={exc.args[0]!r} is unknown; choose one of {list(IDS)}") from None


def ids_of(codes: np.ndarray) -> np.ndarray:
    """Category ids `(N,)` (object array) of int8 codes `(N,)`."""
    codes = np.asarray(codes)
    if codes.size and (codes.min() < 0 or codes.max() >= len(CATEGORIES)):
        raise ValueError(f"codes must lie in 0..{len(CATEGORIES) - 1}; got {codes.min()}..{codes.max()}")
    return _ID_OF_CODE[codes.astype(np.intp)]


def from_paper(name: str) -> str:
    """Our id of a category string of the paper's lists (e.g. 'fine-grained OOV' -> fine_grained_oov)."""
    if name not in PAPER_NAMES:
        raise ValueError(f"paper category {name!r} is unknown; expected one of {list(PAPER_NAMES)}")
    return PAPER_NAMES[name]

"""The paper's 161 superclasses as WordNet predicates, their class map, and the collapsed class pairs.

A superclass holds a class when, for any one of its predicates (a list of WordNet lemma
names), every lemma of the predicate occurs on the class's hypernym paths (DESIGN §2): the
predicates form a disjunction, so a superclass may unite several named WordNet concepts that
people see as one kind of thing, may span groups (JSON `group`: a name, or a list with the
majority group first), and may overlap other superclasses.
Definitions live in the committed `data/superclasses.json`; collapsed (overlapping) class
groups of Vasudevan et al. (2022) in `data/collapsed_classes.json`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from analysis import paths
from analysis.knowledge import wordnet
from analysis.knowledge.classes import NUM_CLASSES

GROUPS = wordnet.GROUPS


@dataclass(frozen=True)
class Superclass:
    """One superclass: stable id, readable name, its groups (majority first) and predicates (a disjunction)."""

    id: str
    name: str
    groups: tuple[str, ...]
    predicates: tuple[tuple[str, ...], ...]

    @property
    def group(self) -> str:
        """Group of the majority of members (a superclass may span groups, e.g. consomme and soup bowl)."""
        return self.groups[0]


@lru_cache(maxsize=1)
def definitions(path: Path = paths.SUPERCLASSES_JSON) -> tuple[Superclass, ...]:
    """Superclass definitions in file order."""
    data = json.loads(Path(path).read_text())
    return tuple(
        Superclass(d["id"], d["name"], (d["group"],) if isinstance(d["group"], str) else tuple(d["group"]),
                   tuple(tuple(p) for p in d["predicates"]))
        for d in data["superclasses"]
    )


@lru_cache(maxsize=1)
def class_path_lemmas() -> tuple[frozenset[str], ...]:
    """Lemma names on the hypernym paths of each class, `(1000,)` in id order."""
    graph = wordnet.load()
    return tuple(graph.path_lemmas(w) for w in graph.class_wnids)


@lru_cache(maxsize=1)
def class_groups() -> np.ndarray:
    """Group name of each class, `(1000,)` object array (organism / artifact / other)."""
    graph = wordnet.load()
    return np.array([graph.group(w) for w in graph.class_wnids], dtype=object)


def _lemma_matrix(lemmas: tuple[frozenset[str], ...], needed: set[str]) -> dict[str, np.ndarray]:
    out = {lemma: np.zeros(len(lemmas), dtype=bool) for lemma in needed}
    for i, on_path in enumerate(lemmas):
        for lemma in needed & on_path:
            out[lemma][i] = True
    return out


@lru_cache(maxsize=1)
def membership() -> np.ndarray:
    """Boolean matrix `(1000, S)`: class i belongs to superclass j (S = number of definitions)."""
    defs = definitions()
    needed = {lemma.lower() for sc in defs for predicate in sc.predicates for lemma in predicate}
    has = _lemma_matrix(class_path_lemmas(), needed)
    out = np.zeros((NUM_CLASSES, len(defs)), dtype=bool)
    for j, sc in enumerate(defs):
        for predicate in sc.predicates:
            out[:, j] |= np.logical_and.reduce([has[lemma.lower()] for lemma in predicate])
    return out


@lru_cache(maxsize=1)
def shares_superclass() -> np.ndarray:
    """Boolean matrix `(1000, 1000)`: the two classes share at least one superclass (diagonal for members)."""
    m = membership().astype(np.int32)
    return (m @ m.T) > 0


def superclasses_of(class_id: int) -> list[str]:
    """Ids of the superclasses that hold `class_id`."""
    if not isinstance(class_id, (int, np.integer)) or not 0 <= class_id < NUM_CLASSES:
        raise ValueError(f"class_id={class_id!r} must be an integer in 0..999")
    defs = definitions()
    return [defs[j].id for j in np.flatnonzero(membership()[class_id])]


def superclass_map() -> dict[int, list[str]]:
    """`{class_id: [superclass ids]}` for all 1000 classes (empty list: no superclass)."""
    defs = definitions()
    m = membership()
    return {i: [defs[j].id for j in np.flatnonzero(m[i])] for i in range(NUM_CLASSES)}


def shared_superclasses(a: int, b: int) -> list[str]:
    """Ids of superclasses holding both classes `a` and `b`."""
    for arg, value in (("a", a), ("b", b)):
        if not isinstance(value, (int, np.integer)) or not 0 <= value < NUM_CLASSES:
            raise ValueError(f"{arg}={value!r} must be an integer class id in 0..999")
    defs = definitions()
    m = membership()
    return [defs[j].id for j in np.flatnonzero(m[a] & m[b])]


@lru_cache(maxsize=1)
def collapsed_pairs(path: Path = paths.COLLAPSED_JSON) -> tuple[tuple[int, int], ...]:
    """Directed (target, prediction) pairs of Vasudevan et al. (2022)'s collapsed mapping."""
    data = json.loads(Path(path).read_text())
    pairs = [(a, b) for g in data["symmetric_groups"] for a in g["classes"] for b in g["classes"] if a != b]
    pairs += [(d["target"], d["prediction"]) for d in data["directed"]]
    return tuple(sorted(set(pairs)))


@lru_cache(maxsize=1)
def overlapping() -> np.ndarray:
    """Boolean matrix `(1000, 1000)` indexed [target, prediction]: a collapsed pair (never the diagonal)."""
    out = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=bool)
    idx = np.array(collapsed_pairs())
    out[idx[:, 0], idx[:, 1]] = True
    return out


def statistics() -> dict:
    """Figures to compare with the paper (161 superclasses, 74 classes without, 5,476 pairs)."""
    defs = definitions()
    m = membership()
    sizes = m.sum(axis=0)
    non_singleton = sizes >= 2
    groups = class_groups()
    share = shares_superclass()
    pairs = int((np.triu(share, k=1)).sum())
    return {
        "superclasses": len(defs),
        "non_singleton_superclasses": int(non_singleton.sum()),
        "classes_without_superclass": int((m[:, non_singleton].sum(axis=1) == 0).sum()),
        "same_superclass_pairs": pairs,
        "superclass_size_min": int(sizes[non_singleton].min()) if non_singleton.any() else 0,
        "superclass_size_median": float(np.median(sizes[non_singleton])) if non_singleton.any() else 0.0,
        "superclass_size_max": int(sizes[non_singleton].max()) if non_singleton.any() else 0,
        # A superclass counts in every group where it has members (the paper's 50 + 101 + 16 = 167 > 161).
        "superclasses_per_group": {g: int((m[groups == g][:, non_singleton].any(axis=0)).sum()) for g in GROUPS},
        "classes_per_group": {g: int((groups == g).sum()) for g in GROUPS},
        "collapsed_pairs": len(collapsed_pairs()),
    }

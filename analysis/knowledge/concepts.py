"""WordNet concepts as class sets: `wn:dog.n.01` stands for every ImageNet class under dog (118 of them).

A concept id is `wn:` + a synset name of the committed subgraph (data/wordnet_imagenet.json); a class is in a
concept when the concept is on one of its hypernym paths (the class's own synset included). Only the JSON is read.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from analysis.knowledge import wordnet

PREFIX = "wn:"


@dataclass(frozen=True)
class Concept:
    """A WordNet synset and the ImageNet classes under it."""

    id: str
    wnid: str
    name: str
    classes: tuple[int, ...]

    @property
    def label(self) -> str:
        """`dog (WordNet, 118 classes)`: what a picker shows."""
        return f"{self.name} (WordNet, {len(self.classes)} {'class' if len(self.classes) == 1 else 'classes'})"


def is_concept(value: str) -> bool:
    """True when `value` is written as a concept id (`wn:<synset name>`), known or not."""
    return isinstance(value, str) and value.startswith(PREFIX)


@lru_cache(maxsize=1)
def _all() -> dict[str, Concept]:
    graph = wordnet.load()
    members: dict[str, set[int]] = defaultdict(set)
    for class_id, wnid in enumerate(graph.class_wnids):
        for ancestor in graph.ancestors(wnid):
            members[ancestor].add(class_id)
    out = {}
    for wnid, ids in members.items():
        synset = graph.name(wnid)
        out[PREFIX + synset] = Concept(PREFIX + synset, wnid, graph.lemmas(wnid)[0].replace("_", " "),
                                       tuple(sorted(ids)))
    return out


def concept(concept_id: str) -> Concept:
    """The concept `wn:<synset name>`; ValueError naming it (and a known one) when the subgraph has no such synset."""
    if not is_concept(concept_id):
        raise ValueError(f"superclass={concept_id!r} is not a WordNet concept id; write it as {PREFIX}<synset>, "
                         f"e.g. {PREFIX}dog.n.01")
    found = _all().get(concept_id)
    if found is None:
        raise ValueError(f"superclass={concept_id!r} names no WordNet synset above an ImageNet class; "
                         f"use a synset name such as {PREFIX}dog.n.01 or {PREFIX}musical_instrument.n.01")
    return found


def classes_under(concept_id: str) -> tuple[int, ...]:
    """Ids (0-999) of the classes under `concept_id`, sorted."""
    return concept(concept_id).classes


def class_ids(concept_ids) -> list[int]:
    """The union of the classes under every concept id in `concept_ids`, sorted."""
    return sorted({c for cid in concept_ids for c in classes_under(cid)})


def choices(min_classes: int = 2) -> list[Concept]:
    """Concepts holding at least `min_classes` classes (the picker's list), by name then size."""
    if not isinstance(min_classes, int) or min_classes < 1:
        raise ValueError(f"min_classes={min_classes!r} must be an integer >= 1")
    return sorted((c for c in _all().values() if len(c.classes) >= min_classes),
                  key=lambda c: (c.name.lower(), -len(c.classes), c.id))


def of_class(class_id: int) -> Concept:
    """The concept of one class's own synset (it holds that class only, or the classes under it too)."""
    if isinstance(class_id, bool) or not isinstance(class_id, int) or not 0 <= class_id < 1000:
        raise ValueError(f"class_id={class_id!r} must be an integer in 0..999")
    wnid = wordnet.load().class_wnids[class_id]
    return _all()[PREFIX + wordnet.load().name(wnid)]

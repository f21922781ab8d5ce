"""WordNet concepts as class sets, read from the committed subgraph only."""

from __future__ import annotations

import pytest

from analysis.knowledge import concepts, wordnet
from tests.bad_inputs import BadInput, cases

DOG = "n02084071"  # dog.n.01


def _below(graph: wordnet.WordNetGraph, wnid: str) -> set[str]:
    """Every synset under `wnid` by walking hyponym edges down (the other direction from `ancestors`)."""
    seen, stack = set(), [wnid]
    while stack:
        cur = stack.pop()
        if cur not in seen:
            seen.add(cur)
            stack.extend(graph.hyponyms(cur))
    return seen


def test_dog_selects_every_dog_class():
    graph = wordnet.load()
    dogs = concepts.classes_under("wn:dog.n.01")
    below = _below(graph, DOG)
    expected = sorted(i for i, w in enumerate(graph.class_wnids) if w in below)
    assert list(dogs) == expected
    assert len(dogs) == 118 and list(dogs) == list(range(151, 269))  # ImageNet-1k's dogs are classes 151-268
    assert concepts.concept("wn:dog.n.01").label == "dog (WordNet, 118 classes)"


def test_choices_and_class_concepts():
    listed = {c.id: c for c in concepts.choices()}
    assert "wn:dog.n.01" in listed and all(len(c.classes) >= 2 for c in listed.values())
    # a class's own concept holds the class (and only the classes under its synset)
    own = concepts.of_class(207)  # golden retriever
    assert own.classes == (207,) and own.name == "golden retriever"
    assert concepts.class_ids(["wn:dog.n.01", own.id]) == sorted(concepts.classes_under("wn:dog.n.01"))


@pytest.mark.parametrize("case", cases(
    BadInput("filters-concept-unknown", "ErrorFilter superclasses (WordNet concept)", "a synset not in the subgraph",
             "names no WordNet synset", store="not involved"),
    BadInput("filters-concept-no-prefix", "concept id", "written without wn:", "is not a WordNet concept id",
             store="not involved"),
))
def test_bad_concepts_name_the_value(case):
    value = {"filters-concept-unknown": "wn:unicorn.n.01", "filters-concept-no-prefix": "dog.n.01"}[case.id]
    with pytest.raises(ValueError, match=case.message) as info:
        concepts.classes_under(value)
    assert repr(value) in str(info.value)
    with pytest.raises(ValueError, match="class_id"):
        concepts.of_class(1000)

"""Reason codes in words (analysis.taxonomy.reasons): every kind `classify` produces, and WordNet's shared ancestor."""

from __future__ import annotations

import pytest

from analysis.knowledge import classes, superclasses
from analysis.taxonomy import reasons

NAMES = classes.class_names()


def test_superclass_reason_names_both_classes_and_the_superclass():
    hound = next(d for d in superclasses.definitions() if "hound" in d.name.lower())
    wolfhound, deerhound = NAMES.index("Irish wolfhound"), NAMES.index("Scottish deerhound")
    sentence = reasons.reason_sentence(f"superclass:{hound.id}@label:{wolfhound}", target=wolfhound,
                                       prediction=deerhound, category="fine_grained")
    assert sentence.startswith(f"Irish wolfhound and Scottish deerhound share the superclass {hound.name}")
    assert "labels" not in sentence  # the label is the target: no aside


def test_superclass_reason_through_another_label_says_so():
    sentence = reasons.reason_sentence("superclass:s1@label:3", target=1, prediction=4,
                                       class_names=["a", "b", "c", "d", "e"], superclass_names={"s1": "fish"})
    assert sentence.startswith("d and e share the superclass fish")
    assert "d is one of the image's labels; the target is b" in sentence


def test_cooccurrence_reason_counts_other_images():
    racket, ball = NAMES.index("racket"), NAMES.index("tennis ball")
    sentence = reasons.reason_sentence(f"cooc:label={racket},images=14", target=racket, prediction=ball)
    assert sentence.startswith("racket and tennis ball appear together in the labels of 14 other images")
    one = reasons.reason_sentence(f"cooc:label={racket},images=1", prediction=ball)
    assert "labels of 1 other image:" in one


@pytest.mark.parametrize("code, category, expected", [
    ("none", "model_failure", "No rule explains predicting goldfish for an image of tench"),
    ("none", "correct", "The prediction goldfish is the target"),
    ("excluded:no_real_labels", "not_evaluated", "left out of the evaluation because the ReaL annotators gave"),
    ("excluded:weird", "not_evaluated", "because of 'weird'"),
    ("pair:0->1", "overlapping_classes", "tench and goldfish are overlapping classes"),
    ("label:1", "multi_label", "goldfish is one of this image's labels"),
    ("oov:best=n01440764:tinca_tinca", "fine_grained_oov", "closer to tinca tinca (n01440764)"),
    ("oov:gate_closed", "fine_grained_oov", "its gate stayed closed"),
    ("oov:", "fine_grained_oov", "outside the 1000"),
    ("expert:non_prototypical", "non_prototypical", "non-prototypical example of its class"),
    ("something:new", "model_failure", "Unrecognised reason code 'something:new'"),
])
def test_every_reason_kind_is_a_sentence(code, category, expected):
    sentence = reasons.reason_sentence(code, target=0, prediction=1, category=category)
    assert expected in sentence
    if code != "something:new":
        assert code not in sentence and sentence.endswith(".")  # words, not the raw code


def test_parse_reason_values_are_ints():
    assert reasons.parse_reason("cooc:label=65,images=2") == ("cooc", {"label": 65, "images": 2})
    assert reasons.parse_reason("superclass:dog_hound@label:170") == ("superclass", {"superclass": "dog_hound",
                                                                                      "label": 170})
    assert reasons.parse_reason("pair:3->4") == ("pair", {"target": 3, "prediction": 4})
    with pytest.raises(TypeError, match="reason=None must be a string"):
        reasons.parse_reason(None)


def test_shared_paths_start_at_the_lowest_shared_ancestor():
    wnids = classes.wnids()
    wolfhound, deerhound = wnids[NAMES.index("Irish wolfhound")], wnids[NAMES.index("Scottish deerhound")]
    shared = reasons.shared_paths(wolfhound, deerhound)
    assert shared.ancestor == "hound"
    assert shared.target == ("hound", "wolfhound", "Irish wolfhound") or shared.target[-1] == "Irish wolfhound"
    assert shared.target[0] == shared.prediction[0] == "hound" and shared.prediction[-1] == "Scottish deerhound"
    assert shared.depth > 5
    far = reasons.shared_paths(wolfhound, wnids[NAMES.index("racket")])
    assert far.ancestor in ("whole", "object", "physical entity", "entity") and far.depth < 4
    with pytest.raises(ValueError, match="target_wnid='x'"):
        reasons.shared_paths("x", deerhound)

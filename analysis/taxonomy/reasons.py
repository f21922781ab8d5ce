"""Reason codes as sentences, and where two classes meet in WordNet.

`classify` gives every pair a machine-readable reason (`none`, `excluded:<why>`, `pair:<t>-><p>`,
`label:<c>`, `superclass:<id>@label:<c>`, `oov:...`, `cooc:label=<c>,images=<n>`,
`expert:non_prototypical`); `reason_sentence` says each one in words, `parse_reason` splits one into
its kind and values, and `shared_paths` gives the WordNet paths of two classes from their lowest
shared ancestor down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from analysis.knowledge import classes, superclasses, wordnet

KINDS = ("none", "excluded", "pair", "label", "superclass", "oov", "cooc", "expert", "unknown")

_PATTERNS = {
    "pair": re.compile(r"pair:(?P<target>\d+)->(?P<prediction>\d+)"),
    "label": re.compile(r"label:(?P<label>\d+)"),
    "superclass": re.compile(r"superclass:(?P<superclass>[^@]+)@label:(?P<label>\d+)"),
    "cooc": re.compile(r"cooc:label=(?P<label>\d+),images=(?P<images>\d+)"),
    "oov_best": re.compile(r"oov:best=(?P<wnid>[^:]+):(?P<lemma>.+)"),
}
_EXCLUDED = {
    "no_real_labels": "the ReaL annotators gave this image no label",
    "target_not_in_real": "its ImageNet target is not among its ReaL labels",
    "not_annotated": "it has no multi-label annotation",
    "problematic": "the annotators marked it problematic",
    "target_not_in_labels": "its target is not among its labels",
}
_OOV_STATES = {
    "gate_closed": "the open-world check did not look further (its gate stayed closed)",
    "not_checked": "the open-world check has not been run on it",
    "": "the open-world (CLIP) check found it to show a class outside the 1000",
}


def parse_reason(reason: str) -> tuple[str, dict]:
    """(kind, values) of a reason code: kind is one of KINDS; class ids and counts come back as int."""
    if not isinstance(reason, str):
        raise TypeError(f"reason={reason!r} must be a string such as 'label:65' "
                        "(the `reason` column of a stored error)")
    if reason in ("", "none"):
        return "none", {}
    if reason.startswith("excluded:"):
        return "excluded", {"why": reason.split(":", 1)[1]}
    if reason == "expert:non_prototypical":
        return "expert", {}
    if reason.startswith("oov:"):
        best = _PATTERNS["oov_best"].fullmatch(reason)
        if best:
            return "oov", {"wnid": best["wnid"], "lemma": best["lemma"]}
        return "oov", {"state": reason.split(":", 1)[1]}
    for kind in ("pair", "superclass", "label", "cooc"):
        match = _PATTERNS[kind].fullmatch(reason)
        if match:
            return kind, {k: (v if k == "superclass" else int(v)) for k, v in match.groupdict().items()}
    return "unknown", {"code": reason}


def _namer(class_names: Sequence[str] | Mapping[int, str] | None):
    names = class_names if class_names is not None else classes.class_names()

    def name(class_id: int | None) -> str:
        if class_id is None:
            return "the prediction"
        try:
            return str(names[int(class_id)])
        except (KeyError, IndexError):
            return f"class {class_id}"
    return name


def _superclass_name(superclass_id: str, superclass_names: Mapping[str, str] | None) -> str:
    if superclass_names is not None and superclass_id in superclass_names:
        return str(superclass_names[superclass_id])
    try:
        known = {d.id: d.name for d in superclasses.definitions()}
    except (OSError, ValueError):  # no readable superclass file: the id is the best name there is
        known = {}
    return known.get(superclass_id, superclass_id)


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def reason_sentence(reason: str, *, target: int | None = None, prediction: int | None = None,
                    category: str | None = None, class_names: Sequence[str] | Mapping[int, str] | None = None,
                    superclass_names: Mapping[str, str] | None = None) -> str:
    """One plain sentence for a reason code, naming the classes (ImageNet names unless `class_names` is given).

    `target`/`prediction` are class ids of the error; `category` tells `none` apart (correct or model failure).
    """
    kind, values = parse_reason(reason)
    name = _namer(class_names)
    pred = name(prediction)
    if kind == "none":
        if category == "correct" or (target is not None and target == prediction):
            return f"The prediction {pred} is the target."
        return (f"No rule explains predicting {pred} for an image of {name(target)}: the labels, superclasses, "
                "co-occurrences and expert marks give no reason, so it counts as a model failure.")
    if kind == "excluded":
        why = _EXCLUDED.get(values["why"], f"of '{values['why']}'" if values["why"] else "of its labels")
        return f"This image is left out of the evaluation because {why}."
    if kind == "pair":
        return (f"{name(values['target'])} and {name(values['prediction'])} are overlapping classes: one thing "
                "under two ImageNet names (a collapsed pair of Vasudevan et al.), so the prediction counts as correct.")
    if kind == "label":
        return f"{name(values['label'])} is one of this image's labels: the image shows it too (a multi-label image)."
    if kind == "superclass":
        label = values["label"]
        sentence = (f"{name(label)} and {pred} share the superclass "
                    f"{_superclass_name(values['superclass'], superclass_names)}")
        if target is not None and label != target:
            sentence += f" ({name(label)} is one of the image's labels; the target is {name(target)})"
        return sentence + ": a fine-grained mistake."
    if kind == "oov":
        if "lemma" in values:
            return (f"The open-world (CLIP) check finds the image closer to {values['lemma'].replace('_', ' ')} "
                    f"({values['wnid']}), a WordNet concept outside the 1000 classes, than to any ImageNet class: "
                    f"a fine-grained mistake outside the vocabulary.")
        state = _OOV_STATES.get(values["state"], f"the open-world check said '{values['state']}'")
        return f"Counted as a fine-grained out-of-vocabulary mistake: {state}."
    if kind == "cooc":
        return (f"{name(values['label'])} and {pred} appear together in the labels of "
                f"{_plural(values['images'], 'other image')}: a spurious correlation the model may have learnt.")
    if kind == "expert":
        return "The experts marked this image as a non-prototypical example of its class."
    return f"Unrecognised reason code '{values['code']}'."


@dataclass(frozen=True)
class SharedPaths:
    """Two classes' WordNet paths from their lowest shared ancestor down (both tails start at `ancestor`)."""

    ancestor: str
    target: tuple[str, ...]
    prediction: tuple[str, ...]
    depth: int  # synsets above the ancestor (0: the ancestor is WordNet's root)


def shared_paths(target_wnid: str, prediction_wnid: str) -> SharedPaths:
    """The lowest ancestor the two synsets share (over all their hypernym paths) and each path below it, as names."""
    for arg, value in (("target_wnid", target_wnid), ("prediction_wnid", prediction_wnid)):
        if not isinstance(value, str) or not value.startswith("n"):
            raise ValueError(f"{arg}={value!r} must be a WordNet noun id such as 'n02090721'")
    graph = wordnet.load()
    for arg, value in (("target_wnid", target_wnid), ("prediction_wnid", prediction_wnid)):
        if value not in graph.synsets:
            raise ValueError(f"{arg}={value!r} is not in the committed WordNet subgraph (an ImageNet class wnid)")
    best = None
    for tp in graph.hypernym_paths(target_wnid):
        for pp in graph.hypernym_paths(prediction_wnid):
            common = 0
            while common < min(len(tp), len(pp)) and tp[common] == pp[common]:
                common += 1
            if common and (best is None or common > best[0]):
                best = (common, tp, pp)
    readable = lambda w: graph.lemmas(w)[0].replace("_", " ")  # noqa: E731
    if best is None:  # no shared root (cannot happen for nouns): show the whole paths
        tp, pp = max(graph.hypernym_paths(target_wnid), key=len), max(graph.hypernym_paths(prediction_wnid), key=len)
        return SharedPaths("", tuple(map(readable, tp)), tuple(map(readable, pp)), 0)
    common, tp, pp = best
    return SharedPaths(readable(tp[common - 1]), tuple(map(readable, tp[common - 1:])),
                       tuple(map(readable, pp[common - 1:])), common - 1)

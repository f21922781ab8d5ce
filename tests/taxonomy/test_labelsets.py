import json

import numpy as np
import pytest

from analysis.knowledge import cooccurrence as co
from analysis.knowledge.classes import real_labels, val_file_name, val_targets, wnids
from analysis.knowledge.experts import non_prototypical_images
from analysis.taxonomy import labelsets


@pytest.fixture(scope="module")
def real():
    return labelsets.real()


def test_real_evaluates_images_whose_real_list_holds_the_target(real):
    targets, reals = val_targets(), real_labels()
    expected = np.array([int(t) in r for t, r in zip(targets, reals)])
    assert real.mode == "real" and len(real) == 50_000
    assert (real.targets == targets).all()
    assert (real.evaluated == expected).all()
    assert real.evaluated.sum() == 42_164      # ReaL: 46,837 labelled images, of which these hold the target
    for i in np.flatnonzero(real.evaluated)[:200]:
        assert real.labels(i)[0] == targets[i] and set(real.labels(i)) == set(reals[i])
        assert list(real.labels(i)[1:]) == sorted(real.labels(i)[1:])
    empty = next(i for i, r in enumerate(reals) if not r)
    assert real.exclusion[empty] == "no_real_labels"
    other = next(i for i, (t, r) in enumerate(zip(targets, reals)) if r and int(t) not in r)
    assert real.exclusion[other] == "target_not_in_real" and not real.evaluated[other]


def test_real_marks_expert_non_prototypical_images_and_counts_every_image(real):
    assert set(np.flatnonzero(real.non_prototypical)) == non_prototypical_images()
    assert real.counted[3] == tuple(sorted(set(real_labels()[3]) | {int(val_targets()[3])}))
    assert real.label_matrix.shape[0] == 50_000 and real.label_matrix.dtype == np.int16


def test_single_uses_the_target_alone():
    ls = labelsets.single(np.array([5, 7, 7]))
    assert ls.labels_list == [(5,), (7,), (7,)] and ls.evaluated.all()
    assert not ls.non_prototypical.any() and ls.counted == [(), (), ()]


@pytest.mark.parametrize("targets, message", [
    (np.array([[1, 2]]), "1-D"),
    (np.array([1, 1000]), r"targets\[1\]=1000"),
    (np.array([1.0, 2.0]), "integer class ids"),
])
def test_single_rejects_bad_targets(targets, message):
    with pytest.raises((ValueError, TypeError), match=message):
        labelsets.single(targets)


def test_given_adds_the_target_and_looks_up_validation_extras():
    marked = sorted(non_prototypical_images())[0]
    ls = labelsets.given(np.array([3, 9]), [[8, 1], []], val_indices=np.array([marked, -1]))
    assert ls.labels_list == [(3, 1, 8), (9,)]
    assert list(ls.non_prototypical) == [True, False]
    assert ls.counted[0] == labelsets.real().counted[marked] and ls.counted[1] == ()
    assert ls.real[0] == real_labels()[marked] and ls.real[1] is None


def test_given_excluded_images_leave_the_counts():
    excluded = [0, 1, 2]
    ls = labelsets.given(val_targets()[:3], [[], [], []], val_indices=np.arange(3), exclude_from_counts=excluded)
    own = labelsets.real().counted
    assert (ls.cooccurrence == labelsets.real_cooccurrence() - co.count_matrix([own[i] for i in excluded])).all()
    assert ls.counted == [(), (), ()]


@pytest.mark.parametrize("labels, message", [
    ([[1]], "list of 2 sequences"),
    (["1 2", [3]], "not a string"),
    ([[1], [1000]], r"labels\[1\]"),
])
def test_given_rejects_bad_labels(labels, message):
    with pytest.raises((ValueError, TypeError), match=message):
        labelsets.given(np.array([1, 2]), labels)


def _write_multilabel(path, annots, problematic=(), imagenet_m=()):
    path.write_text(json.dumps({"initial_annots": annots, "problematic_images": list(problematic),
                                "imagenet_m": list(imagenet_m)}))
    return path


def test_multilabel_reads_the_tfds_format(tmp_path):
    names, targets, w = [val_file_name(i) for i in range(4)], val_targets(), wnids()
    annots = {
        names[0]: {"correct": [w[targets[0]], w[1]], "unclear": [w[2]], "wrong": [w[3]]},
        names[1]: {"correct": [w[targets[1]]], "unclear": [], "wrong": []},
        names[2]: {"correct": [w[5]], "unclear": [], "wrong": [w[targets[2]]]},
        names[3]: {"correct": [w[targets[3]]]},
    }
    path = _write_multilabel(tmp_path / "human_accuracy_v3.0.0.json", annots, problematic=[names[3]],
                             imagenet_m=[names[0]])
    ls = labelsets.multilabel(path)
    assert ls.mode == "multilabel"
    assert set(ls.labels(0)) == {int(targets[0]), 1, 2} and ls.labels(0)[0] == targets[0]   # wrong not a label
    assert list(ls.evaluated[:5]) == [True, True, False, False, False]
    assert list(ls.exclusion[:5]) == ["", "", "target_not_in_labels", "problematic", "not_annotated"]
    assert list(ls.imagenet_m[:2]) == [True, False]
    own = labelsets.real().counted
    assert ls.counted[:4] == [(), (), (), ()] and ls.counted[4] == own[4]
    assert (ls.cooccurrence == labelsets.real_cooccurrence() - co.count_matrix(own[:4])).all()


def test_multilabel_errors_name_the_file_and_image(tmp_path):
    bad_wnid = _write_multilabel(tmp_path / "a.json", {val_file_name(0): {"correct": ["n00000000"]}})
    with pytest.raises(ValueError, match="ILSVRC2012_val_00000001.JPEG.*n00000000"):
        labelsets.multilabel(bad_wnid)
    bad_name = _write_multilabel(tmp_path / "b.json", {"cat.jpg": {"correct": []}})
    with pytest.raises(ValueError, match="b.json.*cat.jpg"):
        labelsets.multilabel(bad_name)
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        labelsets.multilabel(tmp_path / "c.json")

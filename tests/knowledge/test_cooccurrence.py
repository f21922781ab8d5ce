from collections import Counter
from itertools import product

import numpy as np
import pytest

from analysis.knowledge import cooccurrence as co
from analysis.knowledge.classes import real_labels, val_targets
from analysis.taxonomy import labelsets


def test_count_matrix_counts_each_image_once_per_pair():
    counts = co.count_matrix([[1, 2], [2, 1, 3], [3, 2, 2], [], [5]])
    assert counts.shape == (1000, 1000) and counts.dtype == np.int32
    assert counts[1, 2] == counts[2, 1] == 2
    assert counts[2, 3] == 2 and counts[1, 3] == 1
    assert counts[2, 2] == 3 and counts[5, 5] == 1 and counts[4, 4] == 0
    assert (counts == counts.T).all()


def test_count_matrix_rejects_class_ids_outside_range():
    with pytest.raises(ValueError, match=r"label_lists\[1\]"):
        co.count_matrix([[1], [3, 1000]])


def test_with_target_adds_the_target():
    assert co.with_target([(5, 3), ()], np.array([7, 2])) == [(3, 5, 7), (2,)]
    with pytest.raises(ValueError, match="one per image"):
        co.with_target([(1,)], np.array([1, 2]))


def test_common_pairs_need_two_images_and_no_shared_superclass():
    counts = co.count_matrix([[1, 2], [1, 2], [1, 3], [1, 3], [1, 3], [4, 5]])
    shares = np.zeros((1000, 1000), dtype=bool)
    shares[1, 3] = shares[3, 1] = True
    common = co.common_pairs(counts, shares=shares)
    assert common[1, 2] and common[2, 1]
    assert not common[1, 3]            # shares a superclass
    assert not common[4, 5]            # one image only
    assert not common.diagonal().any()
    with pytest.raises(ValueError, match="shares has shape"):
        co.common_pairs(counts, shares=shares[:10])


def test_leave_one_out_subtracts_only_the_image_itself():
    counts = co.count_matrix([[1, 2], [1, 2, 9]])
    assert co.loo_count(counts, (1, 2, 9), 1, 2) == 1
    assert co.loo_count(counts, (1, 9), 1, 2) == 2
    assert co.loo_count(counts, (), 1, 2) == 2


def test_real_counts_equal_a_plain_count_over_real_labels_with_target():
    plain = Counter()
    for labels, target in zip(real_labels(), val_targets()):
        labels = set(labels) | {int(target)}
        plain.update(product(labels, labels))
    counts = labelsets.real_cooccurrence()
    a, b = np.nonzero(counts)
    assert len(a) == len(plain)
    assert all(counts[x, y] == plain[(x, y)] for x, y in zip(a[:5000], b[:5000]))
    assert int(counts.sum()) == sum(plain.values())


def test_pairs_table_lists_upper_triangle():
    table = co.pairs_table(co.count_matrix([[1, 2], [2, 1], [3, 4]]))
    assert table.to_dict("records") == [{"a": 1, "b": 2, "images": 2}, {"a": 3, "b": 4, "images": 1}]

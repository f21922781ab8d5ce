import re

import numpy as np
import pandas as pd
import pytest

from analysis.taxonomy import categories as tx

DEV_CSV = "/work/shared/reference/paper_common_errors_dev.csv"


def test_ids_and_codes_are_stable_and_in_check_order():
    assert tx.IDS == ("correct", "overlapping_classes", "multi_label", "fine_grained", "fine_grained_oov",
                      "spurious_correlation", "non_prototypical", "model_failure", "not_evaluated")
    assert [c.code for c in tx.CATEGORIES] == list(range(len(tx.CATEGORIES)))
    assert all(np.iinfo(np.int8).min <= c.code <= np.iinfo(np.int8).max for c in tx.CATEGORIES)
    assert tx.CHECK_ORDER[0] == "correct" and tx.CHECK_ORDER[-1] == "model_failure"
    assert "not_evaluated" not in tx.ERROR_IDS and "correct" not in tx.ERROR_IDS


def test_severities_follow_the_design():
    severity = {c.id: c.severity for c in tx.CATEGORIES}
    assert severity["overlapping_classes"] == severity["multi_label"] == "counts_as_correct"
    assert severity["fine_grained"] == severity["fine_grained_oov"] == "minor"
    assert severity["spurious_correlation"] == severity["non_prototypical"] == "explainable"
    assert severity["model_failure"] == "major"
    assert set(severity.values()) <= set(tx.SEVERITIES)


def test_every_category_has_a_distinct_hex_colour():
    colours = list(tx.COLOURS.values())
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours)
    assert len(set(colours)) == len(colours) == len(tx.CATEGORIES)


def test_codes_round_trip_and_unknown_ids_are_named():
    ids = np.array(["model_failure", "correct", "fine_grained_oov"], dtype=object)
    codes = tx.codes_of(ids)
    assert codes.dtype == np.int8 and list(codes) == [7, 0, 4]
    assert list(tx.ids_of(codes)) == list(ids)
    with pytest.raises(ValueError, match="'finegrained'"):
        tx.codes_of(["finegrained"])
    with pytest.raises(ValueError, match="codes must lie"):
        tx.ids_of(np.array([9]))
    assert tx.code_of("spurious_correlation") == tx.SPURIOUS


def test_accuracy_definitions_are_cumulative():
    mla, minor, explainable = (set(tx.COUNTS_AS_CORRECT[k]) for k in ("mla", "mla_minor", "mla_explainable"))
    assert mla < minor < explainable
    assert "model_failure" not in explainable and explainable == set(tx.ERROR_IDS) - {"model_failure"} | {"correct"}


def test_paper_category_strings_of_the_reference_csv_all_map():
    names = set(pd.read_csv(DEV_CSV)["category"])
    assert {tx.from_paper(n) for n in names} == set(tx.ERROR_IDS)
    with pytest.raises(ValueError, match="fine grained"):
        tx.from_paper("fine grained")

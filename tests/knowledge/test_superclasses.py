"""Superclasses: the committed definitions against the paper's figures, how they were made, and the
cross-validated figures of that procedure on the paper's reference rows (the ones that count)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from analysis import paths
from analysis.knowledge import superclasses, wordnet

DEV_CSV = paths.ROOT.parent / "shared" / "reference" / "paper_common_errors_dev.csv"
PAPER = {"superclasses": 161, "classes_without_superclass": 74, "same_superclass_pairs": 5476}
TERRIERS = (185, 186)  # Norfolk, Norwich terrier
TABBY = 281
# Cross-validated figures of scripts/superclass_rules.py (5 folds by image) as measured, less a small margin: a
# change of the procedure that makes them worse fails here. docs/SUPERCLASSES.md has the full table.
CV_FLOORS = {"fine_grained": 0.86, "negative": 0.05, "fine_grained_oov": 0.08}


@pytest.fixture(autouse=True)
def _committed_definitions(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.SUPERCLASSES_ENV, raising=False)
    monkeypatch.setenv(paths.EXTERNAL_ENV, str(tmp_path / "no-paper-file"))
    superclasses.use(None)


@pytest.fixture(scope="module")
def rules():
    """scripts/superclass_rules.py (needs the dev rows and the EfficientNet-Lite weights, i.e. torch)."""
    if not DEV_CSV.is_file():
        pytest.skip(f"{DEV_CSV} not available")
    sys.path.insert(0, str(paths.ROOT / "scripts"))
    import superclass_rules

    return superclass_rules


@pytest.fixture(scope="module")
def cross_validated(rules):
    rows = rules.read_rows()
    return rules.cross_validate(rows, rules.image_folds(rows, 5))


def test_the_statistics_are_the_papers():
    stats = superclasses.statistics()
    assert stats["format"] == "project" and stats["empty_superclasses"] == []
    assert stats["superclasses"] == stats["non_singleton_superclasses"] == PAPER["superclasses"]
    assert stats["classes_without_superclass"] <= 90
    assert abs(stats["same_superclass_pairs"] - PAPER["same_superclass_pairs"]) <= 0.10 * PAPER["same_superclass_pairs"]
    assert stats["superclass_size_min"] >= 2 and stats["superclass_size_max"] <= 31
    assert 3 <= stats["superclass_size_median"] <= 5
    assert stats["classes_per_group"] == {"organism": 410, "artifact": 522, "other": 68}
    # A superclass counts in every group where it has members (the paper: 50 + 101 + 16 = 167 > 161).
    spans = sum(len(d.groups) for d in superclasses.definitions())
    assert sum(stats["superclasses_per_group"].values()) == spans > PAPER["superclasses"]


def test_membership_matches_predicate_semantics():
    """A class is a member iff all lemmas of some predicate lie on its hypernym paths (checked row by row)."""
    m = superclasses.membership()
    lemmas = superclasses.class_path_lemmas()
    for j, sc in enumerate(superclasses.definitions()):
        expected = [any(all(l.lower() in lemmas[i] for l in p) for p in sc.predicates) for i in range(1000)]
        assert (m[:, j] == np.array(expected)).all(), sc.id


def test_ids_and_names_unique_and_well_formed():
    defs = superclasses.definitions()
    assert len({d.id for d in defs}) == len(defs)
    assert len({d.name for d in defs}) == len(defs)
    for d in defs:
        assert d.id and d.id == d.id.lower() and " " not in d.id
        assert d.groups and set(d.groups) <= set(superclasses.GROUPS) and d.group == d.groups[0]
        assert d.predicates and all(p for p in d.predicates)


def test_json_format():
    data = json.loads(paths.SUPERCLASSES_JSON.read_text())
    assert set(data) == {"note", "superclasses"} and "WordNet" in data["note"]
    assert "scripts/superclass_rules.py" in data["note"]
    assert all(set(d) == {"id", "name", "group", "predicates"} for d in data["superclasses"])
    assert all(isinstance(d["group"], str) or len(d["group"]) >= 2 for d in data["superclasses"])


def test_every_predicate_lemma_is_a_lemma_of_the_graph():
    graph = wordnet.load()
    known = {l.lower() for s in graph.synsets.values() for l in s["lemmas"]}
    missing = {l for d in superclasses.definitions() for p in d.predicates for l in p if l.lower() not in known}
    assert not missing


def test_every_predicate_holds_some_class():
    lemmas = superclasses.class_path_lemmas()
    for d in superclasses.definitions():
        for p in d.predicates:
            assert any(all(l.lower() in on_path for l in p) for on_path in lemmas), (d.id, p)


def test_groups_are_the_groups_of_members_majority_first():
    m = superclasses.membership()
    groups = superclasses.class_groups()
    for j, d in enumerate(superclasses.definitions()):
        member_groups = list(groups[m[:, j]])
        assert set(member_groups) == set(d.groups), d.id
        assert member_groups.count(d.group) == max(member_groups.count(g) for g in d.groups), d.id


def test_hand_checked_memberships():
    share = superclasses.shares_superclass()
    assert share[TERRIERS[0], TERRIERS[1]] and "terrier" in superclasses.superclasses_of(TERRIERS[0])
    assert not share[TERRIERS[0], TABBY]
    assert superclasses.shared_superclasses(281, 285) == ["domestic_cat"]  # tabby, Egyptian cat
    assert share[167, 166]  # English foxhound / Walker hound (test_openworld relies on it)
    assert not share[167, 948]  # English foxhound vs Granny Smith
    assert not share[26, 32]  # common newt vs tailed frog: salamander and frog stay apart
    assert share[925, 809] and share[999, 700]  # consomme -> soup bowl, toilet tissue -> paper towel: across groups
    assert (share == share.T).all() and share.diagonal()[superclasses.membership().any(axis=1)].all()


def test_superclass_map_agrees_with_superclasses_of():
    mapping = superclasses.superclass_map()
    assert len(mapping) == 1000
    assert all(mapping[i] == superclasses.superclasses_of(i) for i in (0, 185, 281, 999))


@pytest.mark.parametrize("bad", [-1, 1000, "5", 2.5, None])
def test_superclasses_of_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="class_id"):
        superclasses.superclasses_of(bad)


def test_shared_superclasses_rejects_bad_input():
    with pytest.raises(ValueError, match="b="):
        superclasses.shared_superclasses(1, 1000)


def test_overlapping_is_directed():
    over = superclasses.overlapping()
    assert over.shape == (1000, 1000) and not over.diagonal().any()
    assert over[250, 248] and not over[248, 250]  # Siberian husky -> Eskimo dog only
    assert over[836, 837] and over[837, 836]  # sunglass / sunglasses both ways


def test_the_committed_file_is_what_the_procedure_makes(rules, tmp_path):
    """Refitting on every dev row gives the committed bytes: the file is derived, not edited by hand."""
    out = tmp_path / "superclasses.json"
    rules.write(out)
    assert out.read_text() == paths.SUPERCLASSES_JSON.read_text()


def test_folds_never_split_an_image_or_a_class_pair(rules):
    rows = rules.read_rows()
    by_image = rules.image_folds(rows, 5)
    by_pair = rules.pair_folds(rows, 5)
    assert set(by_image) == set(by_pair) == set(range(5))
    seen: dict = {}
    for f, labels, p in zip(by_pair, rows.labels, rows.prediction):
        for l in labels:
            assert seen.setdefault(tuple(sorted((l, int(p)))), f) == f
    assert len({(f, n) for f, n in zip(by_image, rows.file_name)}) == len(set(rows.file_name))


def test_cross_validated_figures_hold_their_floors(cross_validated):
    """Fitted on four fifths of the images, measured on the fifth: the figures docs/SUPERCLASSES.md reports."""
    assert cross_validated["fine_grained"] >= CV_FLOORS["fine_grained"]
    assert cross_validated["negative"] <= CV_FLOORS["negative"]
    assert cross_validated["fine_grained_oov"] <= CV_FLOORS["fine_grained_oov"]


@pytest.mark.xfail(strict=True, reason="issue 9's targets: cross-validated fine-grained >= 90% with negatives <= 2.5% "
                   "and OOV <= 2%; the procedure reaches about 87% / 4.5% / 7% (docs/SUPERCLASSES.md says why)")
def test_cross_validated_targets_not_yet_reached(cross_validated):
    assert cross_validated["fine_grained"] >= 0.90
    assert cross_validated["negative"] <= 0.025 and cross_validated["fine_grained_oov"] <= 0.02


def test_cli_json_prints_stats_and_full_map():
    out = subprocess.run([sys.executable, "-m", "analysis", "superclasses", "--json"], cwd=paths.ROOT,
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data["non_singleton_superclasses"] == PAPER["superclasses"]
    assert data["classes_without_superclass"] <= 90
    assert len(data["map"]) == 1000 and data["map"]["185"] == superclasses.superclasses_of(185)

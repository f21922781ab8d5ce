"""Superclasses: the committed definitions against the paper's figures and its common-error rows."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from analysis import paths
from analysis.knowledge import superclasses, wordnet

DEV_CSV = paths.ROOT.parent / "shared" / "reference" / "paper_common_errors_dev.csv"
# Paper figures (DESIGN §2) that this rebuild reaches; see test_paper_figures_not_yet_reached.
N_SUPERCLASSES = 161
TERRIERS = (185, 186)  # Norfolk, Norwich terrier
TABBY = 281


def _dev_rows() -> list[dict]:
    if not DEV_CSV.is_file():
        pytest.skip(f"{DEV_CSV} not available")
    with open(DEV_CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["labels"] = {int(x) for x in r["multi_labels"].split()} | {int(r["target"])}
        r["prediction"] = int(r["prediction"])
    return rows


def _share_rate(category: str) -> float:
    share = superclasses.shares_superclass()
    rows = [r for r in _dev_rows() if r["category"] == category]
    assert rows, category
    hit = [any(share[l, r["prediction"]] for l in r["labels"] if l != r["prediction"]) for r in rows]
    return sum(hit) / len(rows)


def test_count_sizes_and_groups():
    stats = superclasses.statistics()
    assert stats["superclasses"] == N_SUPERCLASSES
    assert stats["non_singleton_superclasses"] == N_SUPERCLASSES
    assert stats["superclass_size_min"] >= 2 and stats["superclass_size_max"] <= 31
    assert 3 <= stats["superclass_size_median"] <= 5
    # A superclass counts in every group where it has members (the paper: 50 + 101 + 16 = 167 > 161).
    spans = sum(len(d.groups) for d in superclasses.definitions())
    assert sum(stats["superclasses_per_group"].values()) == spans > N_SUPERCLASSES
    assert stats["classes_per_group"] == {"organism": 410, "artifact": 522, "other": 68}


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


def test_superclasses_may_span_groups():
    """Cross-group fine-grained errors of the paper: consomme -> soup bowl, toilet tissue -> paper towel."""
    assert superclasses.shared_superclasses(925, 809) == ["soup"]
    assert superclasses.shared_superclasses(999, 700) == ["paper_tissue"]
    assert superclasses.shared_superclasses(947, 996) == ["fungus"]  # mushroom, hen-of-the-woods
    assert superclasses.statistics()["superclasses_per_group"]["other"] >= 4


def test_dog_superclasses_overlap_across_wordnet_groups():
    share = superclasses.shares_superclass()
    assert share[167, 166]  # English foxhound / Walker hound (test_openworld relies on it)
    assert not share[167, 948]  # English foxhound vs Granny Smith
    assert share[267, 155] and share[203, 153]  # standard poodle -> Shih-Tzu, Westie -> Maltese
    assert share[159, 168] and share[246, 247]  # Rhodesian ridgeback -> redbone, Great Dane / Saint Bernard


def test_hand_checked_memberships():
    share = superclasses.shares_superclass()
    assert share[TERRIERS[0], TERRIERS[1]]
    assert not share[TERRIERS[0], TABBY]
    assert "terrier" in superclasses.superclasses_of(TERRIERS[0])
    assert "diapsid" in superclasses.shared_superclasses(52, 67)  # thunder snake, diamondback
    assert superclasses.shared_superclasses(281, 285) == ["domestic_cat"]  # tabby, Egyptian cat
    assert not share[26, 32]  # common newt vs tailed frog: salamander and frog stay apart
    assert not share[222, 249]  # kuvasz vs malamute (a non-prototypical row in the paper)
    assert (share == share.T).all()


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


# Dev-CSV validation: other error rows must not share a superclass (at most 2% each).
@pytest.mark.parametrize("category", ["fine-grained OOV", "spurious correlation", "non-prototypical", "model failure"])
def test_other_error_rows_rarely_share_a_superclass(category):
    assert _share_rate(category) <= 0.02


def test_fine_grained_rows_mostly_share_a_superclass():
    """Floor of this rebuild (0.919); the paper's target is 0.98 (see test_paper_figures_not_yet_reached)."""
    assert _share_rate("fine-grained") >= 0.915


@pytest.mark.xfail(strict=True, reason="rebuild reaches 4,122 pairs, 147 classes without, 91.9% fine-grained; "
                   "paper: 5,476, 74, >=98% (broader WordNet nodes that would close the gap join negative dev rows)")
def test_paper_figures_not_yet_reached():
    stats = superclasses.statistics()
    assert 5202 <= stats["same_superclass_pairs"] <= 5750
    assert 70 <= stats["classes_without_superclass"] <= 78
    assert _share_rate("fine-grained") >= 0.98


def test_cli_json_prints_stats_and_full_map():
    out = subprocess.run([sys.executable, "-m", "analysis", "superclasses", "--json"], cwd=paths.ROOT,
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data["superclasses"] == N_SUPERCLASSES
    assert len(data["map"]) == 1000 and data["map"]["185"] == superclasses.superclasses_of(185)

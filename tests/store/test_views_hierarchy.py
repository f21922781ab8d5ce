"""The sidebar filter in the aggregated views, WordNet concepts in the filter, the error tree and the zoo's datasets."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.knowledge import concepts
from analysis.store import database, export, views
from analysis.store.filters import ErrorFilter

MODELS = ("efficientnet-lite0", "efficientnet-lite1")
DATASET = "samples"


@pytest.fixture(scope="module")
def con(small_store):
    connection = database.connect(small_store, read_only=True)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def rows(con) -> pd.DataFrame:
    """Every stored prediction with its target and pair (category, models), read without views or queries."""
    return con.execute("""
        SELECT p.model_id, p.image_id, i.target, p.prediction, i.evaluated, c.category, c.models
        FROM predictions p JOIN images i USING (dataset, image_id)
        JOIN pair_categories c ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
        WHERE p.dataset = ?
    """, [DATASET]).df()


def _errors(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[~rows["category"].isin(["correct", "not_evaluated"])]


def _filters(rows) -> list[ErrorFilter]:
    errors = _errors(rows)
    first = errors.iloc[0]
    return [ErrorFilter(dataset=DATASET), ErrorFilter(dataset=DATASET, categories=(first["category"],)),
            ErrorFilter(dataset=DATASET, superclasses=("wn:bird.n.01",)),
            ErrorFilter(dataset=DATASET, superclasses=(concepts.of_class(int(first["target"])).id,)),
            ErrorFilter(dataset=DATASET, min_models=2),
            ErrorFilter(dataset=DATASET, class_search="a", groups=("organism",))]


def test_concept_filter_counts_the_classes_under_it(con, rows):
    errors = _errors(rows)
    counts = []
    for concept in ("wn:bird.n.01", "wn:vertebrate.n.01", "wn:dog.n.01"):
        under = set(concepts.classes_under(concept))
        expected = int((errors["target"].isin(under) | errors["prediction"].isin(under)).sum())
        assert export.count_errors(con, ErrorFilter(dataset=DATASET, superclasses=(concept,))) == expected
        counts.append(expected)
    assert 0 < counts[0] < len(errors) and counts[1] == len(errors) and counts[2] == 0  # the samples: classes 0-49
    # a concept and a store superclass together: the union of their classes
    sc = con.execute("SELECT superclass_id FROM superclasses WHERE name = 'anapsid'").fetchone()[0]
    members = {r[0] for r in con.execute("SELECT class_id FROM class_superclasses WHERE superclass_id = ?",
                                         [sc]).fetchall()}
    union = members | set(concepts.classes_under("wn:bird.n.01"))
    expected = int((errors["target"].isin(union) | errors["prediction"].isin(union)).sum())
    assert export.count_errors(con, ErrorFilter(dataset=DATASET, superclasses=(sc, "wn:bird.n.01"))) == expected


def test_error_tree_sums_equal_the_error_count(con, rows):
    for flt in _filters(rows) + [f.with_(models=(MODELS[0],)) for f in _filters(rows)]:
        tree = views.error_tree(con, flt)
        assert int(tree["errors"].sum()) == export.count_errors(con, flt), flt
        # one leaf per (class, category): no error counted twice, even for a class in two superclasses
        assert not tree.duplicated(["class_id", "category"]).any()
        assert set(tree["group"]) <= {"organism", "artifact", "other"}
    tree = views.error_tree(con, ErrorFilter(dataset=DATASET))
    by_class = _errors(rows).groupby("target").size()
    assert tree.groupby("class_id")["errors"].sum().sort_index().tolist() == by_class.sort_index().tolist()


def test_filtered_views_equal_the_export(con, rows):
    changed = False
    for flt in _filters(rows):
        for model in MODELS:
            one = flt.with_(models=(model,))
            want = export.count_errors(con, one)
            composition = views.composition(con, model, dataset=DATASET, flt=flt)
            assert int(composition.loc[composition["grp"] == "all", "errors"].sum()) == want, flt
            top = views.top_confusions(con, model, dataset=DATASET, limit=None, flt=flt)
            assert int(top["images"].sum()) == want
            changed |= want != export.count_errors(con, ErrorFilter(dataset=DATASET, models=(model,)))
    assert changed, "some filter must narrow the result, or this test checks nothing"


def test_compare_views_keep_images_matching_under_a_or_b(con, rows):
    a = rows[rows["model_id"] == MODELS[0]].set_index("image_id")
    b = rows[rows["model_id"] == MODELS[1]].set_index("image_id")
    both = a.add_suffix("_a").join(b.add_suffix("_b"), how="inner")
    both = both[both["evaluated_a"]]
    for flt in _filters(rows):
        under = set(concepts.class_ids(s for s in flt.superclasses if concepts.is_concept(s)))
        keep = pd.Series(True, index=both.index)
        if flt.categories:
            keep &= both["category_a"].isin(flt.categories) | both["category_b"].isin(flt.categories)
        if under:
            keep &= both["target_a"].isin(under) | both["prediction_a"].isin(under) | both["prediction_b"].isin(under)
        if flt.min_models > 1:
            keep &= ((both["models_a"] >= flt.min_models) & ~both["category_a"].isin(["correct", "not_evaluated"])) | \
                    ((both["models_b"] >= flt.min_models) & ~both["category_b"].isin(["correct", "not_evaluated"]))
        if flt.class_search or flt.groups:
            continue  # name search and groups: covered by the export equality above
        matrix = views.transition_matrix(con, *MODELS, dataset=DATASET, flt=flt)
        assert int(matrix["images"].sum()) == int(keep.sum()), flt
        counts = views.compare_counts(con, *MODELS, dataset=DATASET, flt=flt)
        assert counts["shared_images"] == int(keep.sum())
        only_a = views.compare_images(con, *MODELS, dataset=DATASET, kind="only_a", limit=None, flt=flt)
        assert len(only_a) == counts["only_a"]


def test_superclass_confusions_leave_out_none_and_nesting(con):
    members = con.execute("SELECT superclass_id, list(class_id) FROM class_superclasses GROUP BY ALL").fetchall()
    names = dict(con.execute("SELECT superclass_id, name FROM superclasses").fetchall())
    sets = {names[s]: set(c) for s, c in members}
    for model in MODELS:
        rolled = views.superclass_confusions(con, model, dataset=DATASET, limit=None)
        assert "(none)" not in set(rolled["target_superclass"]) | set(rolled["prediction_superclass"])
        for t, p in zip(rolled["target_superclass"], rolled["prediction_superclass"]):
            assert t != p and not sets[t] <= sets[p] and not sets[p] <= sets[t], (t, p)
        with_none = views.superclass_confusions(con, model, dataset=DATASET, include_none=True, limit=None)
        assert int(with_none["errors"].sum()) >= int(rolled["errors"].sum())


def test_zoo_points_carry_dataset_and_images(con):
    points = views.zoo_points(con, category="fine_grained", dataset=DATASET)
    stored = points[points["source"] == "stored"]
    assert set(stored["dataset"]) == {DATASET} and set(stored["images"]) == {50}
    paper = points[points["source"] == "paper"]
    assert set(paper["dataset"]) == {"imagenet-val"} and set(paper["images"]) == {views.PAPER_IMAGES}

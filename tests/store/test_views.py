"""Dashboard page queries that read the per-model summary: the figures of `analysis.taxonomy.metrics` on the small store."""

from __future__ import annotations

import math

import pytest

from analysis.store import database, publish, views
from analysis.taxonomy import metrics

MODELS = ("efficientnet-lite0", "efficientnet-lite1")


@pytest.fixture(scope="module")
def con(small_store):
    connection = database.connect(small_store, read_only=True)
    yield connection
    connection.close()


def _expected(con, model_id: str):
    rows = con.execute("""
        SELECT p.image_id, p.prediction, c.category FROM predictions p
        JOIN pair_categories c USING (dataset, image_id, prediction)
        WHERE p.model_id = ? AND p.dataset = 'samples' ORDER BY p.image_id
    """, [model_id]).fetchnumpy()
    return metrics.model_metrics(rows["image_id"], rows["prediction"], list(rows["category"]),
                                 publish.labelset_for(con, "samples")).set_index("grp")


def test_model_metrics_equal_analysis_metrics(con):
    for model_id in MODELS:
        got = views.model_metrics(con, model_id, dataset="samples")
        expected = _expected(con, model_id)
        assert got["grp"].iloc[0] == "all" and list(got["grp"].iloc[1:]) == sorted(got["grp"].iloc[1:])
        for _, row in got.iterrows():
            want = expected.loc[row["grp"]]
            assert (row["images"], row["evaluated"], row["errors"]) == (want["images"], want["evaluated"], want["errors"])
            for name in ("top1", "mla", "mla_minor", "mla_explainable"):
                assert row[name] == pytest.approx(want[name], abs=1e-6)
            assert math.isnan(row["real_accuracy"])  # samples: single labels, no ReaL accuracy


def test_models_and_zoo_points_read_the_summary(con):
    listed = views.models(con)
    assert list(listed["model_id"]) == list(MODELS) and list(listed["images"]) == [50, 50]
    assert views.datasets(con) == ["samples"] and views.family_options(con) == ["cnn"]
    points = views.zoo_points(con, category="fine_grained", x="mla", dataset="samples")
    stored = points[points["source"] == "stored"].set_index("model_id")
    assert list(stored.index) == list(MODELS) and (points["source"] == "paper").sum() > 900
    for model_id in MODELS:
        want = _expected(con, model_id).loc["all"]
        assert stored.loc[model_id, "x"] == pytest.approx(want["mla"], abs=1e-6)
        assert stored.loc[model_id, "errors"] == want["errors"]
        assert stored.loc[model_id, "portion"] == pytest.approx(want["portion_fine_grained"])
    top1 = views.zoo_points(con, category="model_failure", x="top1", grp="organism", dataset="samples")
    organism = _expected(con, MODELS[0]).loc["organism"]
    row = top1[top1["model_id"] == MODELS[0]].iloc[0]
    assert row["x"] == pytest.approx(organism["top1"]) and row["errors"] == organism["errors"]

"""The per-model summary table: the definitions of model_metrics, kept consistent by replace and merge."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.store import database, publish, queries, summary
from analysis.taxonomy import categories, metrics


def _summary(con) -> list[tuple]:
    return con.execute("SELECT * FROM model_summary ORDER BY model_id, dataset, grp").fetchall()


def _metrics_from_rows(con, model_id: str, dataset: str):
    rows = con.execute("""
        SELECT p.image_id, p.prediction, c.category FROM predictions p
        JOIN pair_categories c USING (dataset, image_id, prediction)
        WHERE p.model_id = ? AND p.dataset = ? ORDER BY p.image_id
    """, [model_id, dataset]).fetchnumpy()
    return metrics.model_metrics(rows["image_id"], rows["prediction"], list(rows["category"]),
                                 publish.labelset_for(con, dataset)).set_index("grp")


def test_summary_has_the_definitions_of_model_metrics(small_store):
    con = database.connect(small_store, read_only=True)
    try:
        columns = [r[0] for r in con.execute("DESCRIBE model_summary").fetchall()]
        assert [c for c in columns if c.startswith("count_")] == list(queries.SUMMARY_COUNT_COLUMNS) == [
            f"count_{c}" for c in categories.ERROR_IDS]
        table = con.execute("SELECT * FROM model_summary").df()
        assert not table.duplicated(["model_id", "dataset", "grp"]).any()
        assert sorted(table["model_id"].unique()) == ["efficientnet-lite0", "efficientnet-lite1"]
        for model_id in ("efficientnet-lite0", "efficientnet-lite1"):
            expected = _metrics_from_rows(con, model_id, "samples")
            got = table[(table["model_id"] == model_id) & (table["dataset"] == "samples")].set_index("grp")
            assert sorted(got.index) == sorted(g for g in expected.index if expected.loc[g, "images"] > 0)
            for grp, row in got.iterrows():
                want = expected.loc[grp]
                assert (row["images"], row["evaluated"], row["errors"]) == (want["images"], want["evaluated"],
                                                                            want["errors"])
                assert 100 * row["top1_hits"] / row["images"] == pytest.approx(want["top1"])
                for name in ("mla", "mla_minor", "mla_explainable"):
                    assert row[name] == pytest.approx(want[name], abs=1e-6)
                assert [row[c] for c in queries.SUMMARY_COUNT_COLUMNS] == [want[c] for c in queries.SUMMARY_COUNT_COLUMNS]
            assert got.loc["all", "errors"] > 0 and got.loc["all", "mla"] < 100
    finally:
        con.close()


def test_replace_and_merge_keep_the_summary_consistent(store_copy):
    con = database.connect(store_copy)
    try:
        record = publish.ModelRecord("efficientnet-lite0", "run")
        ids = np.arange(50)
        # replace: every prediction of lite0 on samples becomes class 0 (49 new mistakes, 1 hit)
        publish.publish_predictions(con, record, "samples", publish.prediction_table(ids, np.zeros(50)), mode="replace")
        row = con.execute("SELECT images, errors, top1_hits FROM model_summary WHERE model_id = ? AND dataset = ? "
                          "AND grp = 'all'", [record.model_id, "samples"]).fetchall()
        assert row == [(50, 49, 1)]
        # merge: 10 images become correct again
        publish.publish_predictions(con, record, "samples", publish.prediction_table(ids[:10], ids[:10]), mode="merge")
        assert con.execute("SELECT errors, top1_hits FROM model_summary WHERE model_id = ? AND grp = 'all'",
                           [record.model_id]).fetchall() == [(40, 10)]
        incremental = _summary(con)
        with database.transaction(con):
            summary.refresh_summary(con)  # from scratch: the same table
        assert _summary(con) == incremental
        expected = _metrics_from_rows(con, record.model_id, "samples")
        assert expected.loc["all", "errors"] == 40
        with pytest.raises(ValueError, match="pass both"):
            summary.refresh_summary(con, record.model_id)
    finally:
        con.close()

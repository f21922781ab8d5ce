"""Browse's error_index (analysis/store/error_index.py): every error once, at its place in each sort order; built in
the dashboard's snapshot, never in the store; dropped by every write that would leave it stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.store import database, error_index, pages, publish, queries, snapshot, summary, views
from analysis.store.filters import ErrorFilter
from tests.bad_inputs import BadInput, cases
from tests.store.test_pages import _plain_errors


def _indexed(source: Path, folder: Path) -> Path:
    path = folder / "indexed.duckdb"
    shutil.copyfile(source, path)
    con = database.connect(path)
    try:
        error_index.build(con)
    finally:
        con.close()
    return path


def test_positions_are_each_sorts_order_of_every_error(small_store, tmp_path):
    con = database.connect(_indexed(small_store, tmp_path), read_only=True)
    try:
        n = error_index.rows(con)
        assert n == pages.count_errors(con, ErrorFilter()) > 0
        for sort, position in queries.INDEX_POSITIONS.items():
            indexed = con.execute(f"SELECT model_id, dataset, image_id, {position} FROM error_index "
                                  f"ORDER BY {position}").fetchall()
            assert [r[3] for r in indexed] == list(range(n)), sort  # 0 .. n-1, each once
            plain = _plain_errors(con, ErrorFilter(), sort, None, 0)
            assert [r[:3] for r in indexed] == list(plain[["model_id", "dataset", "image_id"]].itertuples(
                index=False, name=None)), sort
    finally:
        con.close()


def test_the_dashboard_snapshot_holds_the_index_and_the_store_does_not(store_copy):
    shot = snapshot.current(store_copy)
    side = json.loads(Path(f"{store_copy}.snapshot.json").read_text())
    assert side["index_seconds"] is not None and side["index_seconds"] < 5
    for path, held in ((shot.path, True), (store_copy, False)):
        con = database.connect(path, read_only=True)
        try:
            assert error_index.present(con) is held
        finally:
            con.close()


def test_a_snapshot_whose_index_cannot_be_built_is_served_without_it(store_copy, monkeypatch):
    monkeypatch.setattr(error_index, "MEMORY_LIMIT", "100KB")  # DuckDB: out of memory at once
    shot = snapshot.current(store_copy)
    assert shot.copied and json.loads(Path(f"{store_copy}.snapshot.json").read_text())["index_seconds"] is None
    con = database.connect(shot.path, read_only=True)
    try:
        assert not error_index.present(con)
        assert con.execute(queries.ERROR_INDEX_EXISTS.replace(queries.ERROR_INDEX,
                                                              queries.ERROR_INDEX_IMAGES)).fetchone()[0] == 0
        flt = ErrorFilter(dataset="samples")
        total = pages.count_errors(con, flt)
        page = views.errors_page(con, flt, sort="confidence", limit=5, offset=0, total=total)
        assert page.equals(_plain_errors(con, flt, "confidence", 5, 0)) and len(page) == min(5, total)
    finally:
        con.close()


def _model_rows(con, model_id: str):
    rows = con.execute("SELECT image_id, prediction FROM predictions WHERE model_id = ? ORDER BY image_id",
                       [model_id]).fetchnumpy()
    return publish.prediction_table(np.asarray(rows["image_id"]), (np.asarray(rows["prediction"]) + 1) % 1000)


@pytest.mark.parametrize("write", ["publish_predictions", "publish_models", "reclassify"])
def test_every_write_of_predictions_or_categories_drops_the_index(store_copy, write):
    con = database.connect(store_copy)
    try:
        error_index.build(con)
        assert error_index.present(con)
        model = con.execute("SELECT model_id FROM predictions ORDER BY model_id LIMIT 1").fetchone()[0]
        rows = _model_rows(con, model)
        record = publish.ModelRecord(model_id=f"{model}-shifted", source="import", arch="shifted", family="cnn")
        if write == "publish_predictions":
            publish.publish_predictions(con, record, "samples", rows)
        elif write == "publish_models":
            publish.publish_models(con, "samples", [(record, rows)])
        else:
            publish.reclassify(con)
        assert not error_index.present(con)
        assert con.execute(queries.ERROR_INDEX_EXISTS.replace(queries.ERROR_INDEX,
                                                              queries.ERROR_INDEX_IMAGES)).fetchone()[0] == 0
        flt = ErrorFilter(dataset="samples")  # pages read from the predictions again, and see the write
        total = pages.count_errors(con, flt)
        assert views.errors_page(con, flt, sort="models", limit=None, offset=0, total=total).equals(
            _plain_errors(con, flt, "models", None, 0))
    finally:
        con.close()


def _two_datasets(store: Path, *, unknown: bool = False) -> None:
    """Errors in a second dataset too: two models on 300 imagenet-val images, one with tied confidences, one with
    none (NULL), beside the small store's `samples` runs; `unknown`: the samples errors get a category this taxonomy
    does not know (a newer store's), which model_summary does not count; then the index."""
    con = database.connect(store)
    try:
        if unknown:
            with database.transaction(con):
                con.execute("UPDATE pair_categories SET category = 'from_a_newer_taxonomy' WHERE dataset = 'samples' "
                            "AND category NOT IN ('correct', 'not_evaluated')")
                summary.refresh_summary(con)
        ids = np.arange(300)
        targets = con.execute("SELECT target FROM images WHERE dataset = 'imagenet-val' AND image_id < 300 "
                              "ORDER BY image_id").fetchnumpy()["target"].astype(np.int64)
        top5 = np.stack([(targets + ids % 3 + k) % 1000 for k in range(5)], axis=1)  # two thirds wrong
        tied = np.repeat(np.round(np.linspace(0.9, 0.3, 300), 1)[:, None], 5, axis=1)
        for model, confidence in (("val-tied", tied), ("val-none", None)):
            publish.publish_predictions(con, publish.ModelRecord(model_id=model, source="import", family="cnn"),
                                        "imagenet-val", publish.prediction_table(ids, top5[:, 0], top5=top5,
                                                                                 top5_confidence=confidence))
        error_index.build(con)
    finally:
        con.close()


@pytest.mark.parametrize("unknown", [False, True], ids=["known categories", "an unknown category"])
def test_a_dataset_of_several_pages_like_the_plain_query(store_copy, monkeypatch, unknown):
    _two_datasets(store_copy, unknown=unknown)
    monkeypatch.setattr(pages, "BUCKET", 40)
    monkeypatch.setattr(pages, "DIRECT_DEPTH", 30)
    con = database.connect(store_copy, read_only=True)
    try:
        assert error_index.datasets(con) == ("imagenet-val", "samples")
        for flt in (ErrorFilter(dataset="imagenet-val"), ErrorFilter(dataset="samples"), ErrorFilter()):
            assert pages._keeps_every_error(con, flt) is (flt.dataset is None)
            total = pages.count_errors(con, flt)
            images = views.count_error_images(con, flt)
            assert total > 0 or unknown  # model_summary counts only the categories it knows
            for sort in views.ERROR_SORTS:
                for offset in sorted({0, 7, total // 2, max(0, total - 12), total + 5}):
                    got = views.errors_page(con, flt, sort=sort, limit=12, offset=offset, total=total)
                    assert got.equals(_plain_errors(con, flt, sort, 12, offset)), (flt.dataset, sort, offset)
                for offset in sorted({0, images // 2, max(0, images - 12)}):
                    got = views.error_images(con, flt, sort=sort, limit=12, offset=offset, total=images)
                    sql, params = queries.error_images_sql(flt, sort=sort, limit=12, offset=offset)
                    assert got.equals(con.execute(sql, params).df()), (flt.dataset, sort, offset)
    finally:
        con.close()


@pytest.mark.parametrize("case", cases(
    BadInput("error-index-memory-limit", "error_index.build(memory_limit=)", "an empty memory limit",
             "memory_limit='' must be a DuckDB size such as '1GB'"),
))
def test_a_bad_memory_limit_is_refused_naming_it(store_copy, case):
    reader = database.connect(store_copy, read_only=True)
    before = database.table_checksums(reader)
    reader.close()
    con = database.connect(store_copy)
    try:
        with pytest.raises(ValueError, match=case.message):
            error_index.build(con, memory_limit="")
    finally:
        con.close()
    after = database.connect(store_copy, read_only=True)
    try:
        assert database.table_checksums(after) == before
    finally:
        after.close()

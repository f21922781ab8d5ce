"""The atomic write of a model's predictions, and the models listing."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from analysis import cli
from analysis.store import database, publish, summary
from tests.bad_inputs import BadInput, cases


def test_publish_is_one_transaction(store_copy):
    con = database.connect(store_copy)
    try:
        before = database.table_checksums(con)
        rows = publish.prediction_table(np.array([0, 1, 5000]), np.array([3, 1, 2]))  # 5000 is no sample image
        record = publish.ModelRecord("broken", "import")
        with pytest.raises(ValueError, match=r"image ids \[5000\] are not images of dataset 'samples'"):
            publish.publish_predictions(con, record, "samples", rows)
        assert database.table_checksums(con) == before
        with pytest.raises(ValueError, match="already has 50 predictions on samples"):
            publish.publish_predictions(con, publish.ModelRecord("efficientnet-lite0", "run"), "samples",
                                        publish.prediction_table(np.array([0]), np.array([0])))
        assert database.table_checksums(con) == before
        # A failure after the old predictions were deleted (a top-5 id that does not fit SMALLINT) rolls back all.
        overflow = pa.table({"image_id": pa.array([0], pa.int32()), "prediction": pa.array([1], pa.int16()),
                             "top5": pa.array([[1, 2, 3, 4, 70000]], pa.list_(pa.int32())),
                             "confidence": pa.array([0.5], pa.float32()),
                             "top5_confidence": pa.array([[0.5] * 5], pa.list_(pa.float32()))})
        with pytest.raises(duckdb.Error):
            publish.publish_predictions(con, publish.ModelRecord("efficientnet-lite0", "run"), "samples", overflow,
                                        mode="replace")
        assert database.table_checksums(con) == before
        publish.publish_predictions(con, record, "samples", publish.prediction_table(np.array([0, 1]), np.array([3, 1])))
        assert con.execute("SELECT image_id, prediction FROM predictions WHERE model_id = 'broken' ORDER BY 1"
                           ).fetchall() == [(0, 3), (1, 1)]
        assert con.execute("SELECT category, models FROM pair_categories WHERE dataset = 'samples' AND image_id = 1 "
                           "AND prediction = 1").fetchall() == [("correct", 3)]
    finally:
        con.close()


def test_models_command_lists_the_stored_models(small_store, capsys):
    assert cli.main(["models", "--db", str(small_store)]) == 0
    out = capsys.readouterr().out
    assert "efficientnet-lite0" in out and "efficientnet-lite1" in out and "samples=" in out
    con = database.connect(small_store, read_only=True)
    try:
        df = publish.models_frame(con)
    finally:
        con.close()
    assert list(df["model_id"]) == ["efficientnet-lite0", "efficientnet-lite1"]
    assert list(df["predictions"]) == [50, 50] and list(df["family"]) == ["cnn", "cnn"]
    assert all(p > 4_000_000 for p in df["params"])


def test_a_record_without_descriptions_keeps_the_stored_ones(store_copy):
    con = database.connect(store_copy)
    try:
        stored = publish.stored_record(con, "efficientnet-lite0")
        publish.publish_predictions(con, publish.ModelRecord("efficientnet-lite0", "import", metadata={"note": "x"}),
                                    "samples", publish.prediction_table(np.array([0]), np.array([0])), mode="merge")
        after = publish.stored_record(con, "efficientnet-lite0")
    finally:
        con.close()
    assert stored.arch and stored.params
    assert (after.source, after.arch, after.family, after.training_data, after.params) == \
        (stored.source, stored.arch, stored.family, stored.training_data, stored.params)
    assert after.metadata == {**stored.metadata, "note": "x"}


@pytest.mark.parametrize("case", cases(
    BadInput("import-predict-model-id-escape", "predict --model-id", "contains ESC (a terminal escape)",
             "contains the control or invisible character U+001B"),
))
def test_predict_refuses_a_model_id_with_control_characters(case, store_copy, capsys):
    con = database.connect(store_copy, read_only=True)
    try:
        before = database.table_checksums(con)
    finally:
        con.close()
    code = cli.main(["predict", "--model", "efficientnet-lite0", "--dataset", "samples", "--limit", "2",
                     "--device", "cpu", "--workers", "0", "--model-id", "lite\x1b[2J0", "--db", str(store_copy)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0] and case.message in err[0], err
    con = database.connect(store_copy, read_only=True)
    try:
        assert database.table_checksums(con) == before
    finally:
        con.close()


def test_model_ids_may_be_any_printable_text():
    assert publish.ModelRecord("efficientnet-lite0 (ImageNet-21k) ß/é", "run").model_id == \
        "efficientnet-lite0 (ImageNet-21k) ß/é"


def _three_models() -> list[tuple[publish.ModelRecord, pa.Table]]:
    """Three models on the 50 sample images sharing some mistakes; the first replaces the stored efficientnet-lite0."""
    rng = np.random.default_rng(5)
    ids = np.arange(50)
    out = []
    for model_id in ("efficientnet-lite0", "batch-a", "batch-b"):
        predictions = np.where(rng.random(50) < 0.5, rng.integers(0, 1000, 50), ids * 7 % 1000)
        top5 = (predictions[:, None] + np.arange(5)[None, :]) % 1000
        out.append((publish.ModelRecord(model_id, "import", family="cnn" if model_id != "efficientnet-lite0" else None),
                    publish.prediction_table(ids, predictions, top5=top5)))
    return out


def test_a_batch_stores_what_publishing_one_by_one_stores(store_copy, small_store, tmp_path):
    one_by_one = tmp_path / "one-by-one.duckdb"
    shutil.copy(small_store, one_by_one)
    batch = _three_models()
    con = database.connect(one_by_one)
    try:
        new_pairs = sum(publish.publish_predictions(con, record, "samples", rows, mode="replace")["new_pairs"]
                        for record, rows in batch)
        expected = database.table_checksums(con, exclude=("models",))
        expected_models = con.execute("SELECT model_id, source, arch, family, params FROM models ORDER BY 1").fetchall()
    finally:
        con.close()
    con = database.connect(store_copy)
    try:
        out = publish.publish_models(con, "samples", batch, replace=True)
        assert database.table_checksums(con, exclude=("models",)) == expected
        assert con.execute("SELECT model_id, source, arch, family, params FROM models ORDER BY 1").fetchall() == \
            expected_models
        # the summaries computed from the batch's rows equal a recomputation from the stored predictions
        summary.refresh_summary(con)
        assert database.table_checksums(con, exclude=("models",)) == expected
    finally:
        con.close()
    assert out == {"models": 3, "predictions": 150, "new_pairs": new_pairs} and new_pairs > 0


def test_a_batch_is_one_transaction(store_copy):
    batch = _three_models()
    con = database.connect(store_copy)
    try:
        before = database.table_checksums(con)
        with pytest.raises(ValueError, match="model id 'efficientnet-lite0' already has 50 predictions on samples"):
            publish.publish_models(con, "samples", batch)  # not replace: the stored model is refused
        bad = batch[1:] + [(publish.ModelRecord("batch-c", "import"),
                            publish.prediction_table(np.array([0, 5000]), np.array([1, 2])))]
        with pytest.raises(ValueError, match=r"image ids \[5000\] are not images of dataset 'samples'"):
            publish.publish_models(con, "samples", bad)
        twice = batch[1:] + [(publish.ModelRecord("batch-c", "import"),
                              publish.prediction_table(np.array([3, 3]), np.array([1, 2])))]
        with pytest.raises(ValueError, match=r"model 'batch-c': image ids \[3\] appear more than once"):
            publish.publish_models(con, "samples", twice)
        with pytest.raises(ValueError, match=r"model ids \['batch-a'\] appear more than once in the batch"):
            publish.publish_models(con, "samples", [batch[1], batch[1]])
        with pytest.raises(ValueError, match="dataset='nope' is not in the store"):
            publish.publish_models(con, "nope", batch[1:])
        assert database.table_checksums(con) == before
        publish.publish_models(con, "samples", batch[1:])
        assert con.execute("SELECT count(*) FROM predictions WHERE model_id LIKE 'batch-%'").fetchone()[0] == 100
    finally:
        con.close()


def test_classify_new_pairs_classifies_each_pair_once(store_copy):
    con = database.connect(store_copy)
    try:
        with pytest.raises(TypeError, match=r"pairs \(\['image_id'\]\) must be a pyarrow Table with columns image_id"):
            publish.classify_new_pairs(con, "samples", pa.table({"image_id": [1]}))
        stored = con.execute("SELECT count(*) FROM pair_categories").fetchone()[0]
        pairs = pa.table({"image_id": pa.array([0, 0, 1, 2], pa.int32()), "prediction": pa.array([999, 999, 998, 997],
                                                                                                 pa.int16())})
        with database.transaction(con):
            assert publish.classify_new_pairs(con, "samples", pairs) == 3
            assert publish.classify_new_pairs(con, "samples", pairs) == 0
        assert con.execute("SELECT count(*) FROM pair_categories").fetchone()[0] == stored + 3
    finally:
        con.close()

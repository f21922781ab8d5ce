"""The store: schema and migrations, the reference build, checksums, locking and atomic model writes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from analysis import cli, queries, store
from analysis.knowledge import experts, superclasses, zoo
from analysis.taxonomy import categories, labelsets, metrics

ROOT = Path(__file__).resolve().parent.parent


def _count(con, sql, params=None):
    return store.first(con, sql, params)[0]


def test_build_loads_every_reference_table(small_store):
    con = store.connect(small_store, read_only=True)
    try:
        assert store.schema_version(con) == store.SCHEMA_VERSION
        assert _count(con, "SELECT count(*) FROM classes") == 1000
        assert _count(con, "SELECT count(*) FROM superclasses") == len(superclasses.definitions())
        assert _count(con, "SELECT count(*) FROM class_superclasses") == int(superclasses.membership().sum())
        real = labelsets.real()
        assert _count(con, "SELECT count(*) FROM images WHERE dataset = 'imagenet-val'") == 50_000
        assert _count(con, "SELECT count(*) FROM images WHERE dataset = 'imagenet-val' AND evaluated") == int(
            real.evaluated.sum())
        assert _count(con, "SELECT count(*) FROM images WHERE dataset = 'imagenet-val' AND non_prototypical") == int(
            real.non_prototypical.sum()) > 0
        # image 0 keeps its ReaL labels in the label set's order, target first
        assert list(_count(con, "SELECT labels FROM images WHERE dataset = 'imagenet-val' AND image_id = 0")) == list(
            real.labels(0))
        assert _count(con, "SELECT count(*) FROM images WHERE dataset = 'samples'") == 1000
        assert _count(con, "SELECT count(*) FROM images WHERE dataset = 'samples' AND target = image_id") == 1000
        assert _count(con, "SELECT count(*) FROM expert_labels") == len(experts.load_all())
        assert _count(con, "SELECT count(*) FROM paper_models") == len(zoo.load_models()) == 962
        assert _count(con, "SELECT count(*) FROM paper_model_stats") == len(zoo.load_all_stats())
        assert _count(con, "SELECT count(*) FROM cooccurrence WHERE a >= b") == 0
        tench = con.execute("SELECT wnid, name, grp, wordnet_path FROM classes WHERE class_id = 0").fetchall()[0]
        assert tench[:3] == ("n01440764", "tench", "organism") and tench[3][0] == "entity"
        assert store.meta(con)["oov_check"] == "off"
    finally:
        con.close()


def test_build_is_idempotent_and_reclassifies_when_knowledge_changes(store_copy):
    con = store.connect(store_copy)
    before = store.table_checksums(con, exclude=("meta",))
    # Pretend the classifier's knowledge changed and damage one category: the build must repair it.
    con.execute(queries.META_SET, ["classifier_fingerprint", "stale"])
    con.execute("UPDATE pair_categories SET category = 'model_failure', reason = 'x' WHERE category = 'correct'")
    con.execute("UPDATE model_summary SET errors = -1")  # the summaries are recomputed with the categories
    con.close()
    store.build(store_copy, progress=False)
    con = store.connect(store_copy, read_only=True)
    try:
        assert store.table_checksums(con, exclude=("meta",)) == before
        assert store.meta(con)["classifier_fingerprint"] == store.classifier_fingerprint()
    finally:
        con.close()


def test_migrates_a_version_1_store(tmp_path):
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(store.SCHEMA_SQL.read_text())
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO classes (class_id, wnid, name, grp) VALUES (3, 'n3', 'c3', 'artifact'), (7, 'n7', 'c7', 'other')")
    con.execute("INSERT INTO images VALUES ('samples', 3, 'a.jpg', 3, [3], TRUE, FALSE)")
    con.execute("INSERT INTO predictions VALUES ('m', 'samples', 3, 7, NULL, NULL, NULL)")
    con.execute("INSERT INTO pair_categories VALUES ('samples', 3, 7, 'model_failure', 'none')")
    con.close()
    con = store.connect(path)
    try:
        assert store.schema_version(con) == store.SCHEMA_VERSION == 3
        assert con.execute("SELECT models FROM pair_categories").fetchall() == [(1,)]
        # v3: the models already stored are summarised (one image of group artifact, a model failure)
        assert con.execute("SELECT grp, images, errors, top1_hits, mla, count_model_failure FROM model_summary "
                           "ORDER BY grp").fetchall() == [("all", 1, 1, 0, 0.0, 1), ("artifact", 1, 1, 0, 0.0, 1)]
        assert _count(con, "SELECT count(*) FROM prediction_staging") == 0
        assert "shard" in [r[0] for r in con.execute("DESCRIBE runs").fetchall()]
    finally:
        con.close()


def test_refuses_a_newer_schema_and_a_missing_store(tmp_path):
    path = tmp_path / "new.duckdb"
    store.connect(path).close()
    con = duckdb.connect(str(path))
    con.execute(queries.META_SET, ["schema_version", "99"])
    con.close()
    with pytest.raises(store.StoreError, match="schema version 99"):
        store.connect(path)
    with pytest.raises(FileNotFoundError, match="python -m analysis build"):
        store.connect(tmp_path / "absent.duckdb", read_only=True)


def test_checksums_see_every_change(store_copy):
    con = store.connect(store_copy)
    try:
        before = store.table_checksums(con)
        con.execute("INSERT INTO runs (run_id, model_id, dataset, status) VALUES ('r', 'm', 'samples', 'done')")
        after = store.table_checksums(con)
        assert after["runs"] != before["runs"]
        assert {t: v for t, v in after.items() if t != "runs"} == {t: v for t, v in before.items() if t != "runs"}
        # A duplicated row changes the count and the sum even though XOR cancels it.
        con.execute("INSERT INTO pair_categories SELECT * FROM pair_categories LIMIT 1")
        doubled = store.table_checksums(con)["pair_categories"]
        assert doubled[0] == before["pair_categories"][0] + 1 and doubled[2] != before["pair_categories"][2]
    finally:
        con.close()


def _hold_lock_script(path: Path) -> str:
    return textwrap.dedent(f"""
        import sys, time, duckdb
        con = duckdb.connect({str(path)!r})
        print("locked", flush=True)
        sys.stdin.readline()
    """)


def test_a_second_writer_gets_a_clear_error_and_changes_nothing(store_copy, capsys):
    con = store.connect(store_copy, read_only=True)
    before = store.table_checksums(con)
    con.close()
    holder = subprocess.Popen([sys.executable, "-c", _hold_lock_script(store_copy)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(store.StoreError, match=f"{store_copy}.*locked by another process.*PID {holder.pid}"):
            store.connect(store_copy)
        assert cli.main(["build", "--db", str(store_copy)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: store ") and "locked" in err and len(err.strip().splitlines()) == 1
    finally:
        holder.communicate("\n", timeout=30)
    con = store.connect(store_copy, read_only=True)
    try:
        assert store.table_checksums(con) == before
    finally:
        con.close()


def test_publish_is_one_transaction(store_copy):
    con = store.connect(store_copy)
    try:
        before = store.table_checksums(con)
        rows = store.prediction_table(np.array([0, 1, 5000]), np.array([3, 1, 2]))  # 5000 is no sample image
        record = store.ModelRecord("broken", "import")
        with pytest.raises(ValueError, match=r"image ids \[5000\] are not images of dataset 'samples'"):
            store.publish_predictions(con, record, "samples", rows)
        assert store.table_checksums(con) == before
        with pytest.raises(ValueError, match="already has 50 predictions on samples"):
            store.publish_predictions(con, store.ModelRecord("efficientnet-lite0", "run"), "samples",
                                      store.prediction_table(np.array([0]), np.array([0])))
        assert store.table_checksums(con) == before
        # A failure after the old predictions were deleted (a top-5 id that does not fit SMALLINT) rolls back all.
        overflow = pa.table({"image_id": pa.array([0], pa.int32()), "prediction": pa.array([1], pa.int16()),
                             "top5": pa.array([[1, 2, 3, 4, 70000]], pa.list_(pa.int32())),
                             "confidence": pa.array([0.5], pa.float32()),
                             "top5_confidence": pa.array([[0.5] * 5], pa.list_(pa.float32()))})
        with pytest.raises(duckdb.Error):
            store.publish_predictions(con, store.ModelRecord("efficientnet-lite0", "run"), "samples", overflow,
                                      mode="replace")
        assert store.table_checksums(con) == before
        store.publish_predictions(con, record, "samples", store.prediction_table(np.array([0, 1]), np.array([3, 1])))
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
    con = store.connect(small_store, read_only=True)
    try:
        df = store.models_frame(con)
    finally:
        con.close()
    assert list(df["model_id"]) == ["efficientnet-lite0", "efficientnet-lite1"]
    assert list(df["predictions"]) == [50, 50] and list(df["family"]) == ["cnn", "cnn"]
    assert all(p > 4_000_000 for p in df["params"])


def _summary(con) -> list[tuple]:
    return con.execute("SELECT * FROM model_summary ORDER BY model_id, dataset, grp").fetchall()


def _metrics_from_rows(con, model_id: str, dataset: str):
    rows = con.execute("""
        SELECT p.image_id, p.prediction, c.category FROM predictions p
        JOIN pair_categories c USING (dataset, image_id, prediction)
        WHERE p.model_id = ? AND p.dataset = ? ORDER BY p.image_id
    """, [model_id, dataset]).fetchnumpy()
    return metrics.model_metrics(rows["image_id"], rows["prediction"], list(rows["category"]),
                                 store.labelset_for(con, dataset)).set_index("grp")


def test_summary_has_the_definitions_of_model_metrics(small_store):
    con = store.connect(small_store, read_only=True)
    try:
        columns = [r[0] for r in con.execute("DESCRIBE model_summary").fetchall()]
        assert [c for c in columns if c.startswith("count_")] == list(queries.SUMMARY_COUNT_COLUMNS) == [
            f"count_{c}" for c in categories.ERROR_IDS]
        summary = con.execute("SELECT * FROM model_summary").df()
        assert not summary.duplicated(["model_id", "dataset", "grp"]).any()
        assert sorted(summary["model_id"].unique()) == ["efficientnet-lite0", "efficientnet-lite1"]
        for model_id in ("efficientnet-lite0", "efficientnet-lite1"):
            expected = _metrics_from_rows(con, model_id, "samples")
            got = summary[(summary["model_id"] == model_id) & (summary["dataset"] == "samples")].set_index("grp")
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
    con = store.connect(store_copy)
    try:
        record = store.ModelRecord("efficientnet-lite0", "run")
        ids = np.arange(50)
        # replace: every prediction of lite0 on samples becomes class 0 (49 new mistakes, 1 hit)
        store.publish_predictions(con, record, "samples", store.prediction_table(ids, np.zeros(50)), mode="replace")
        row = con.execute("SELECT images, errors, top1_hits FROM model_summary WHERE model_id = ? AND dataset = ? "
                          "AND grp = 'all'", [record.model_id, "samples"]).fetchall()
        assert row == [(50, 49, 1)]
        # merge: 10 images become correct again
        store.publish_predictions(con, record, "samples", store.prediction_table(ids[:10], ids[:10]), mode="merge")
        assert con.execute("SELECT errors, top1_hits FROM model_summary WHERE model_id = ? AND grp = 'all'",
                           [record.model_id]).fetchall() == [(40, 10)]
        incremental = _summary(con)
        with store.transaction(con):
            store.refresh_summary(con)  # from scratch: the same table
        assert _summary(con) == incremental
        expected = _metrics_from_rows(con, record.model_id, "samples")
        assert expected.loc["all", "errors"] == 40
        with pytest.raises(ValueError, match="pass both"):
            store.refresh_summary(con, record.model_id)
    finally:
        con.close()

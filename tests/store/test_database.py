"""The store's connection: schema and migrations, checksums, and a clear error for a second writer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from analysis import cli
from analysis.store import database, queries


def _count(con, sql, params=None):
    return database.first(con, sql, params)[0]


def test_migrates_a_version_1_store(tmp_path):
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(database.SCHEMA_SQL.read_text())
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO classes (class_id, wnid, name, grp) VALUES (3, 'n3', 'c3', 'artifact'), (7, 'n7', 'c7', 'other')")
    con.execute("INSERT INTO images VALUES ('samples', 3, 'a.jpg', 3, [3], TRUE, FALSE)")
    con.execute("INSERT INTO predictions VALUES ('m', 'samples', 3, 7, NULL, NULL, NULL)")
    con.execute("INSERT INTO pair_categories VALUES ('samples', 3, 7, 'model_failure', 'none')")
    con.close()
    con = database.connect(path)
    try:
        assert database.schema_version(con) == database.SCHEMA_VERSION == 3
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
    database.connect(path).close()
    con = duckdb.connect(str(path))
    con.execute(queries.META_SET, ["schema_version", "99"])
    con.close()
    with pytest.raises(database.StoreError, match="schema version 99"):
        database.connect(path)
    with pytest.raises(FileNotFoundError, match="python -m analysis build"):
        database.connect(tmp_path / "absent.duckdb", read_only=True)


def test_checksums_see_every_change(store_copy):
    con = database.connect(store_copy)
    try:
        before = database.table_checksums(con)
        con.execute("INSERT INTO runs (run_id, model_id, dataset, status) VALUES ('r', 'm', 'samples', 'done')")
        after = database.table_checksums(con)
        assert after["runs"] != before["runs"]
        assert {t: v for t, v in after.items() if t != "runs"} == {t: v for t, v in before.items() if t != "runs"}
        # A duplicated row changes the count and the sum even though XOR cancels it.
        con.execute("INSERT INTO pair_categories SELECT * FROM pair_categories LIMIT 1")
        doubled = database.table_checksums(con)["pair_categories"]
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
    con = database.connect(store_copy, read_only=True)
    before = database.table_checksums(con)
    con.close()
    holder = subprocess.Popen([sys.executable, "-c", _hold_lock_script(store_copy)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(database.StoreError, match=f"{store_copy}.*locked by another process.*PID {holder.pid}"):
            database.connect(store_copy)
        assert cli.main(["build", "--db", str(store_copy)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: store ") and "locked" in err and len(err.strip().splitlines()) == 1
    finally:
        holder.communicate("\n", timeout=30)
    con = database.connect(store_copy, read_only=True)
    try:
        assert database.table_checksums(con) == before
    finally:
        con.close()

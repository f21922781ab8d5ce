"""The store's connection: schema and migrations, checksums, and a clear error for a second writer."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from analysis import cli
from analysis.store import database, queries
from tests.bad_inputs import BadInput, cases


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
        assert database.schema_version(con) == database.SCHEMA_VERSION
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


# --- damaged stores: refused on open, one line naming the file and the fix, never written -------------------


def _block_of(path: Path, table: str, column: str) -> int:
    """Byte offset of the first data block holding `table.column` (DuckDB: 3 headers of 4 KiB, then blocks)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        block_id, block_size = con.execute(
            "SELECT s.block_id, d.block_size FROM pragma_storage_info(?) s, pragma_database_size() d "
            "WHERE s.column_name = ? AND s.block_id >= 0 ORDER BY s.segment_id LIMIT 1", [table, column]).fetchone()
    finally:
        con.close()
    return 3 * 4096 + block_id * block_size


def _damage_block(path: Path) -> bytes:
    offset = _block_of(path, "images", "file_name") + 100
    data = bytearray(path.read_bytes())
    data[offset:offset + 1000] = random.Random(1).randbytes(1000)
    return bytes(data)


DAMAGES = {  # how a good store file is damaged: (bytes of the store) -> bytes written instead
    "truncated": lambda path: path.read_bytes()[:100_000],
    "zero-filled": lambda path: bytes(path.stat().st_size),
    "random-bytes": lambda path: random.Random(0).randbytes(300_000),
    "text-file": lambda path: b"file_name,prediction\nILSVRC2012_val_00000001.JPEG,65\n",
    "empty-file": lambda path: b"",
    "damaged-header": lambda path: path.read_bytes()[:4096] + bytes(8192) + path.read_bytes()[12288:],
    "damaged-block": _damage_block,
}


def damage_store(path: Path, how: str) -> bytes:
    """Damage the store at `path` in place as DAMAGES[how] says; returns the bytes now there."""
    data = DAMAGES[how](path)
    path.write_bytes(data)
    return data


def assert_untouched(path: Path, data: bytes) -> None:
    """The damaged store still holds exactly `data` (same bytes, same size) and no .wal appeared next to it."""
    assert path.read_bytes() == data and path.stat().st_size == len(data)
    assert not path.with_name(path.name + ".wal").exists()


def _one_line_error(capsys, code: int, *fragments: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


DAMAGED_MESSAGES = {"truncated": "is truncated", "zero-filled": "is not a DuckDB database file",
                    "random-bytes": "is not a DuckDB database file", "text-file": "is not a DuckDB database file",
                    "empty-file": "is not a DuckDB database file", "damaged-header": "fails its checksum",
                    "damaged-block": "fails its checksum"}
WRONG = {"truncated": "truncated to its first 100,000 bytes", "zero-filled": "every byte zero",
         "random-bytes": "300,000 random bytes", "text-file": "a CSV text file named .duckdb",
         "empty-file": "an empty (0-byte) file", "damaged-header": "its two database headers zeroed",
         "damaged-block": "header intact, a data block of the images table overwritten"}


def _damaged_cases(command: str, damages: tuple[str, ...]) -> list:
    return [BadInput(f"store-{command}-{how}", f"store file ({command})", WRONG[how], DAMAGED_MESSAGES[how],
                     store="byte-identical")
            for how in damages]


def _command(name: str, store: Path, tmp_path: Path) -> list[str]:
    if name == "import":
        csv = tmp_path / "preds.csv"
        csv.write_text("file_name,prediction\nILSVRC2012_val_00000001.JPEG,65\n")
        return ["import-predictions", str(csv), "--model-id", "x", "--db", str(store)]
    if name == "predict":
        return ["predict", "--model", "efficientnet-lite0", "--dataset", "samples", "--limit", "2", "--device",
                "cpu", "--workers", "0", "--db", str(store)]
    return {"build": ["build", "--db", str(store)], "models": ["models", "--db", str(store)]}[name]


@pytest.mark.parametrize("case", cases(
    *_damaged_cases("build", tuple(DAMAGES)),
    *_damaged_cases("models", ("truncated", "zero-filled", "text-file", "damaged-header")),
    *_damaged_cases("import", ("truncated", "random-bytes")),
    *_damaged_cases("predict", ("truncated",)),
))
def test_a_damaged_store_is_refused_in_one_line_and_never_written(case, store_copy, tmp_path, capsys):
    # case.store == "unchanged": a damaged store has no table checksums, so its bytes are compared instead
    command, how = case.id.split("-", 2)[1:]
    data = damage_store(store_copy, how)
    code = cli.main(_command(command, store_copy, tmp_path))
    line = _one_line_error(capsys, code, str(store_copy), case.message, "is damaged",
                           f"python -m analysis build --rebuild --db {store_copy}", ".corrupt")
    assert "IO Error" not in line and "Corrupt database file" not in line  # our words, not DuckDB's
    assert_untouched(store_copy, data)


@pytest.mark.parametrize("how", sorted(DAMAGES))
@pytest.mark.parametrize("read_only", [True, False])
def test_connect_refuses_every_damage_with_corrupt_store_error(how, read_only, store_copy):
    data = damage_store(store_copy, how)
    opened = False
    try:
        database.connect(store_copy, read_only=read_only).close()
        opened = True
        database.verify(store_copy)  # a damaged data block passes the cheap open and is met by the full read
    except database.CorruptStoreError as exc:
        assert str(store_copy) in str(exc) and "build --rebuild" in str(exc) and exc.reason in str(exc)
    else:
        pytest.fail(f"{how} store opened and verified")
    assert_untouched(store_copy, data)
    assert opened == (how == "damaged-block")  # only a damaged data block gets past the open: met on use


def test_a_damaged_block_met_inside_a_write_transaction_rolls_back_with_our_message(store_copy):
    data = damage_store(store_copy, "damaged-block")
    con = database.connect(store_copy)  # the catalogue and meta read fine: the damage is met on use
    try:
        with pytest.raises(database.CorruptStoreError, match="fails its checksum; this change was rolled back"):
            with database.transaction(con):
                con.execute("INSERT INTO meta VALUES ('x', 'y')")
                con.execute(queries.table_checksum("images")).fetchall()
    finally:
        con.close()
    assert_untouched(store_copy, data)


def test_an_older_store_with_a_damaged_block_is_not_migrated(store_copy):
    con = database.connect(store_copy)
    con.execute(queries.META_SET, ["schema_version", str(database.SCHEMA_VERSION - 1)])
    con.close()
    data = damage_store(store_copy, "damaged-block")
    with pytest.raises(database.CorruptStoreError, match="fails its checksum; nothing was written to it"):
        database.connect(store_copy)  # a migration would write: every block is read first
    assert_untouched(store_copy, data)


@pytest.mark.parametrize("case", cases(
    BadInput("store-foreign-duckdb", "store file (build)", "a DuckDB database of another project (table sales)",
             "is a DuckDB database of something else"),
))
def test_another_projects_duckdb_file_is_refused_and_kept(case, tmp_path, capsys):
    path = tmp_path / "sales.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE sales (day DATE, amount DOUBLE)")
    con.execute("INSERT INTO sales VALUES ('2024-01-02', 3.5)")
    before = database.table_checksums(con)
    con.close()
    _one_line_error(capsys, cli.main(["build", "--db", str(path)]), str(path), case.message, "tables sales",
                    "another --db")
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert database.table_checksums(con) == before
    finally:
        con.close()


def test_an_empty_duckdb_file_is_migrated_into_a_store(tmp_path):
    path = tmp_path / "blank.duckdb"
    duckdb.connect(str(path)).close()  # a valid DuckDB file without any table: nothing to protect, it becomes a store
    con = database.connect(path)
    try:
        assert database.schema_version(con) == database.SCHEMA_VERSION
    finally:
        con.close()
    assert database.verify(path) == database.SCHEMA_VERSION


# --- locks: our message, who holds it, fail fast or wait with a countdown ---------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[2], read_only=sys.argv[1] == "read-only")
    print("ready", flush=True)
    if len(sys.argv) > 3:
        time.sleep(float(sys.argv[3]))
    else:
        sys.stdin.readline()
""")


@contextmanager
def holding(path: Path, mode: str, tmp_path: Path, seconds: float | None = None):
    """A second process holding `path` open (`mode` read-only like a dashboard, or write) until the block ends."""
    script = tmp_path / "hold_store.py"
    script.write_text(HOLDER)
    args = [sys.executable, str(script), mode, str(path)] + ([str(seconds)] if seconds is not None else [])
    holder = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.communicate("\n", timeout=60)


def _checksums(path: Path) -> dict:
    con = database.connect(path, read_only=True)
    try:
        return database.table_checksums(con)
    finally:
        con.close()


@pytest.mark.parametrize("case", cases(
    BadInput("store-locked-by-dashboard-build", "store (build)", "open read-only in another process (a dashboard)",
             "which has it open read-only, like a dashboard"),
    BadInput("store-locked-by-dashboard-import", "store (import-predictions)",
             "open read-only in another process (a dashboard)", "which has it open read-only, like a dashboard"),
    BadInput("store-locked-by-dashboard-predict", "store (predict)", "open read-only in another process (a dashboard)",
             "which has it open read-only, like a dashboard"),
    BadInput("store-locked-by-writer-build", "store (build)", "open for writing in another process",
             "which is writing to it"),
))
def test_a_writer_facing_a_held_store_fails_fast_with_our_message(case, store_copy, tmp_path, capsys):
    before = _checksums(store_copy)
    command = case.id.rsplit("-", 1)[1]
    with holding(store_copy, "write" if "writer" in case.id else "read-only", tmp_path) as holder:
        start = time.monotonic()
        code = cli.main(_command(command, store_copy, tmp_path))
        elapsed = time.monotonic() - start
        line = _one_line_error(capsys, code, str(store_copy), case.message, "locked by another process",
                               f"PID {holder.pid}", "hold_store.py", "--wait SECONDS")
    assert elapsed < 5, elapsed
    assert "Conflicting lock" not in line and "duckdb.org" not in line  # our words, not DuckDB's
    assert _checksums(store_copy) == before


@pytest.mark.parametrize("case", cases(
    BadInput("store-wait-negative", "--wait", "-1", "must be a finite number of seconds >= 0", store="not involved"),
    BadInput("store-wait-nan", "--wait", "nan", "must be a finite number of seconds >= 0", store="not involved"),
    BadInput("store-wait-infinite", "--wait", "inf", "must be a finite number of seconds >= 0", store="not involved"),
))
def test_a_bad_wait_is_refused(case, tmp_path, capsys):
    db = tmp_path / "never.duckdb"
    _one_line_error(capsys, cli.main(["build", "--db", str(db), "--wait", case.wrong]), case.message, "--wait")
    assert not db.exists()


def test_wait_shows_a_countdown_then_gives_up_with_our_message(store_copy, tmp_path, capsys):
    before = _checksums(store_copy)
    with holding(store_copy, "read-only", tmp_path) as holder:
        start = time.monotonic()
        code = cli.main(["build", "--db", str(store_copy), "--wait", "3"])
        elapsed = time.monotonic() - start
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and 3 <= elapsed < 8, elapsed
    assert err[0] == f"store {store_copy} is locked by PID {holder.pid}; waiting up to 3 s more (Ctrl-C to stop)"
    assert err[-1].startswith(f"error: store {store_copy} is locked") and "(waited 3 s)" in err[-1]
    assert _checksums(store_copy) == before


def test_wait_succeeds_once_the_holder_lets_go(store_copy, tmp_path, capsys):
    with holding(store_copy, "read-only", tmp_path, seconds=1.5):
        start = time.monotonic()
        assert cli.main(["build", "--db", str(store_copy), "--wait", "30"]) == 0
        assert time.monotonic() - start < 25
    assert "waiting up to" in capsys.readouterr().err


def test_a_read_only_connection_names_a_writing_holder(store_copy, tmp_path):
    with holding(store_copy, "write", tmp_path) as holder:
        with pytest.raises(database.StoreError, match=f"locked by another process, PID {holder.pid} .*hold_store.py"
                                                      ".*which is writing to it"):
            database.connect(store_copy, read_only=True, wait=0)

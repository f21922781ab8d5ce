"""The dashboard's snapshot of the store: copied only when the store changed, never waiting for a writer, one
copier at a time, our messages for a missing or damaged store (real files, real processes)."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from analysis.store import database, queries, snapshot
from tests.bad_inputs import BadInput, cases

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent("""
    import os, sys
    from analysis.store import database, queries
    con = database.connect(sys.argv[1])
    con.execute(queries.META_SET, [sys.argv[2], "written"])
    print("ready", flush=True)
    if sys.argv[3] == "crash":  # stop without closing: the write stays in the store's .wal
        os._exit(0)
    sys.stdin.readline()
    con.close()
""")

REFRESHER = textwrap.dedent("""
    import json, os, sys, time
    from analysis.store import database, snapshot
    start = sys.argv[2]
    while not os.path.exists(start):
        time.sleep(0.005)
    shot = snapshot.current(sys.argv[1])
    con = database.connect(shot.path, read_only=True)
    value = database.first(con, "SELECT value FROM meta WHERE key = 'marker'")
    con.close()
    print(json.dumps({"copied": shot.copied, "stale": shot.stale, "path": str(shot.path), "marker": value}))
""")


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _meta(path: Path, key: str) -> str | None:
    con = database.connect(path, read_only=True)
    try:
        row = database.first(con, queries.META_GET, [key])
        return row[0] if row else None
    finally:
        con.close()


def _write_meta(path: Path, key: str) -> None:
    con = database.connect(path)
    try:
        con.execute(queries.META_SET, [key, "written"])
    finally:
        con.close()


@contextmanager
def writer(path: Path, key: str):
    """Another process holding a write connection on `path` (with `key` written to meta) until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", WRITER, str(path), key, "hold"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield holder
    finally:
        holder.communicate("\n", timeout=60)


def test_an_unchanged_store_is_copied_once(store_copy):
    first = snapshot.current(store_copy)
    assert first.copied and not first.stale and not first.direct
    assert first.path.name.startswith(f"{store_copy.name}.snapshot-") and first.path.parent == store_copy.parent
    assert first.seconds is not None and first.seconds < 2
    made = first.path.stat().st_mtime_ns
    again = snapshot.current(store_copy)
    assert not again.copied and again.path == first.path and again.version == first.version
    assert first.path.stat().st_mtime_ns == made  # not copied again
    side = json.loads(Path(f"{store_copy}.snapshot.json").read_text())
    assert side["identity"] == snapshot.identity(store_copy) and side["file"] == first.path.name
    assert side["bytes"] == store_copy.stat().st_size
    assert _meta(first.path, "schema_version") == str(database.SCHEMA_VERSION)  # a readable store, same schema


def test_a_changed_store_gets_a_new_snapshot_with_its_rows(store_copy):
    first = snapshot.current(store_copy)
    _write_meta(store_copy, "marker")
    second = snapshot.current(store_copy)
    assert second.copied and second.path != first.path and second.version != first.version
    assert _meta(second.path, "marker") == "written" and _meta(first.path, "marker") is None
    _write_meta(store_copy, "marker2")
    third = snapshot.current(store_copy)
    assert _meta(third.path, "marker2") == "written"
    copies = sorted(p.name for p in store_copy.parent.glob(f"{store_copy.name}.snapshot-*"))
    assert copies == sorted([second.path.name, third.path.name])  # the latest two kept, the first removed


def test_a_store_held_by_a_writer_serves_the_old_snapshot_at_once(store_copy):
    old = snapshot.current(store_copy)
    with writer(store_copy, "marker"):
        assert snapshot.identity(store_copy) != json.loads(Path(f"{store_copy}.snapshot.json").read_text())["identity"]
        started = time.perf_counter()
        served = snapshot.current(store_copy)
        waited = time.perf_counter() - started
        assert served.stale and not served.copied and served.path == old.path
        assert waited < 0.5, f"waited {waited:.3f} s for a writer"  # ~20 ms here; a wait for the lock is >= 1 s
        assert served.as_of and _meta(served.path, "marker") is None
    fresh = snapshot.current(store_copy)  # the writer is gone: the next query copies its write
    assert fresh.copied and not fresh.stale and _meta(fresh.path, "marker") == "written"


def test_first_snapshot_of_a_store_held_by_a_writer_says_it_is_locked(store_copy):
    with writer(store_copy, "marker") as holder:
        started = time.perf_counter()
        with pytest.raises(database.StoreLockedError, match=f"store {store_copy} is locked.*PID {holder.pid}"):
            snapshot.current(store_copy)
        assert time.perf_counter() - started < 0.5
    assert not list(store_copy.parent.glob(f"{store_copy.name}.snapshot-*"))  # no copy, no temporary left


def test_a_copy_in_progress_elsewhere_serves_the_old_snapshot(store_copy):
    old = snapshot.current(store_copy)
    _write_meta(store_copy, "marker")
    fd = os.open(f"{snapshot.location(store_copy)}{snapshot.COPY_LOCK}", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another process copying (and indexing) right now
        started = time.perf_counter()
        served = snapshot.current(store_copy)
        assert time.perf_counter() - started < 0.5
        assert served.stale and served.path == old.path
    finally:
        os.close(fd)
    assert _meta(snapshot.current(store_copy).path, "marker") == "written"


def test_a_dashboard_write_pauses_copies_of_the_store_only(store_copy):
    old = snapshot.current(store_copy)
    with snapshot.paused(store_copy):  # the review form's write: no copy may hold the store meanwhile
        _write_meta(store_copy, "marker")
        started = time.perf_counter()
        served = snapshot.current(store_copy)
        assert time.perf_counter() - started < 0.5 and served.stale and served.path == old.path
    fresh = snapshot.current(store_copy)  # the write changed the store: copied (and indexed) at once
    assert fresh.copied and _meta(fresh.path, "marker") == "written"


def test_a_dashboard_write_does_not_wait_for_a_copy_being_indexed(store_copy):
    """A copy under way holds the copy lock for its index build too (15 s at the paper's scale); the dashboard's
    own short writes wait only for a copy that holds the store itself."""
    snapshot.current(store_copy)
    entered = threading.Event()
    fd = os.open(f"{snapshot.location(store_copy)}{snapshot.COPY_LOCK}", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a copier past its copy, indexing

        def write() -> None:
            with snapshot.paused(store_copy):
                entered.set()

        writer_thread = threading.Thread(target=write, daemon=True)
        writer_thread.start()
        assert entered.wait(5)
    finally:
        os.close(fd)
    writer_thread.join(5)


@pytest.mark.parametrize("before", ["no snapshot yet", "an old snapshot"])
def test_two_refreshers_at_once_make_one_copy_and_both_read_a_valid_snapshot(store_copy, tmp_path, before):
    if before == "an old snapshot":
        snapshot.current(store_copy)
    _write_meta(store_copy, "marker")
    start = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", REFRESHER, str(store_copy), str(start)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env()) for _ in range(2)]
    time.sleep(1.0)  # both started and waiting for the signal
    start.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sum(r["copied"] for r in results) == 1, results
    side = json.loads(Path(f"{store_copy}.snapshot.json").read_text())
    copier = next(r for r in results if r["copied"])
    assert Path(copier["path"]).name == side["file"] and copier["marker"] == ["written"]
    other = next(r for r in results if not r["copied"])
    if before == "no snapshot yet":  # nothing to serve meanwhile: it waited for the copy
        assert other["path"] == copier["path"] and other["marker"] == ["written"] and not other["stale"]
    else:  # the old snapshot at once, or the new one when the copy was already done
        assert other["marker"] == (None if other["stale"] else ["written"])
    assert not list(store_copy.parent.glob("*.tmp*"))


def test_a_writer_that_stopped_mid_way_leaves_a_wal_the_snapshot_folds_in(store_copy):
    done = subprocess.run([sys.executable, "-c", WRITER, str(store_copy), "marker", "crash"], capture_output=True,
                          text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    assert Path(f"{store_copy}.wal").is_file()
    shot = snapshot.current(store_copy)
    assert shot.copied and not Path(f"{shot.path}.wal").exists()  # one file
    assert _meta(shot.path, "marker") == "written"


def test_a_store_folder_elsewhere_or_nowhere(store_copy, tmp_path, monkeypatch):
    folder = tmp_path / "snapshots"
    monkeypatch.setenv(snapshot.SNAPSHOT_DIR_ENV, str(folder))
    shot = snapshot.current(store_copy)
    assert shot.copied and shot.path.parent == folder and shot.path.name.startswith(f"{store_copy.name}-")
    assert not list(store_copy.parent.glob("*.snapshot*"))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(snapshot.SNAPSHOT_DIR_ENV, str(blocker / "sub"))
    direct = snapshot.current(store_copy)
    assert direct.direct and direct.path == store_copy and not direct.stale
    assert direct.version == (str(store_copy), store_copy.stat().st_mtime_ns, store_copy.stat().st_size)


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a DuckDB file\n" * 200)


def _truncated(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 3)


@pytest.mark.parametrize("case", cases(
    BadInput("snapshot-store-missing", "store (dashboard snapshot)", "a store path where no file is",
             "does not exist; create it with `python -m analysis build", store="no store created"),
    BadInput("snapshot-store-not-a-file", "store (dashboard snapshot)", "a folder given as the store",
             "is not a file", store="not involved"),
    BadInput("snapshot-store-garbage", "store (dashboard snapshot)", "a store file that is not a DuckDB file",
             "it is not a DuckDB database file", store="byte-identical"),
    BadInput("snapshot-store-truncated", "store (dashboard snapshot)", "a store file cut short",
             "is damaged: it is truncated", store="byte-identical"),
))
def test_a_missing_or_damaged_store_gets_our_message(case, store_copy, tmp_path):
    old = snapshot.current(store_copy)  # even with a snapshot to serve, a damaged store is said, not hidden
    target = store_copy
    if case.id == "snapshot-store-missing":
        target = tmp_path / "absent.duckdb"
    elif case.id == "snapshot-store-not-a-file":
        target = tmp_path / "folder.duckdb"
        target.mkdir()
    elif case.id == "snapshot-store-garbage":
        _garbage(store_copy)
    else:
        _truncated(store_copy)
    before = target.read_bytes() if target.is_file() else None
    expected = {"snapshot-store-missing": FileNotFoundError, "snapshot-store-not-a-file": database.StoreError}
    with pytest.raises(expected.get(case.id, database.CorruptStoreError)) as caught:
        snapshot.current(target)
    message = str(caught.value)
    assert case.message in message and str(target) in message and "\n" not in message
    if case.store == "byte-identical":
        assert target.read_bytes() == before
    if case.store == "no store created":
        assert not target.exists()
    assert old.path.is_file()  # the old copy is not touched


def test_arguments_are_checked(store_copy):
    with pytest.raises(TypeError, match="store=123 must be a path"):
        snapshot.current(123)
    with pytest.raises(ValueError, match="wait=-1 must be a number of seconds >= 0"):
        snapshot.current(store_copy, wait=-1)


def test_the_copying_hook_runs_only_when_a_copy_is_due(store_copy):
    """The dashboard's spinner (`copying`) is shown around a copy, never on the queries that read the same copy."""
    entered = []

    @contextmanager
    def copying():
        entered.append(time.perf_counter())
        yield

    first = snapshot.current(store_copy, copying=copying)
    assert first.copied and len(entered) == 1
    assert not snapshot.current(store_copy, copying=copying).copied and len(entered) == 1
    _write_meta(store_copy, "marker")
    assert snapshot.current(store_copy, copying=copying).copied and len(entered) == 2

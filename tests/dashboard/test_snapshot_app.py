"""With the dashboard open on the store, a writer in another process does not wait for it, and the dashboard shows
the written data on its next rerun (it reads a snapshot, docs/SCALE.md "Writers and the dashboard")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from analysis.store import database, snapshot
from tests.dashboard.apptest import ROOT, open_app

CSV = "file_name,prediction\nILSVRC2012_val_00000002.JPEG,2\nILSVRC2012_val_00000004.JPEG,1\n"


def _locks_held_here(path: Path) -> list[str]:
    """This process's lines of /proc/locks on `path`'s inode (DuckDB locks a file it opens)."""
    info = path.stat()
    key = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    return [line for line in Path("/proc/locks").read_text().splitlines()
            if key in line.split() and str(os.getpid()) in line.split()]


def _import(store: Path, csv: Path, model_id: str) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m analysis import-predictions` of `csv` into `store` in a child process (its default lock wait)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "analysis", "import-predictions", str(csv), "--model-id", model_id,
                           "--format", "csv", "--partial", "--db", str(store)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    return done, time.perf_counter() - started


def _sidebar_captions(at) -> list[str]:
    return [c.value for c in at.sidebar.caption]


def test_a_writer_does_not_wait_for_an_open_dashboard_which_then_shows_its_data(store_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(store_copy))
    monkeypatch.delenv("IMAGENET_ERRORS_READONLY", raising=False)
    csv = tmp_path / "preds.csv"
    csv.write_text(CSV)
    baseline_store = tmp_path / "baseline.duckdb"
    shutil.copy(store_copy, baseline_store)
    done, baseline = _import(baseline_store, csv, "snapshot-new")  # the same write with no dashboard open
    assert done.returncode == 0, done.stderr

    at = open_app("browse")
    assert any(c.startswith(f"store: `{store_copy.name}` · 2 models") for c in _sidebar_captions(at))
    assert _locks_held_here(store_copy) == []  # the open dashboard holds no lock on the store
    done, seconds = _import(store_copy, csv, "snapshot-new")
    assert done.returncode == 0, done.stderr  # before snapshots: exit 2, "locked ... like a dashboard" after 1 s
    assert "locked" not in done.stderr
    assert seconds - baseline < 2.0, f"the writer took {seconds:.2f} s with the dashboard open, {baseline:.2f} without"

    at.run()  # the next rerun copies the written store and shows it
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(c.startswith(f"store: `{store_copy.name}` · 3 models") for c in _sidebar_captions(at))
    assert not any("being written" in c for c in _sidebar_captions(at))
    assert _locks_held_here(store_copy) == []


HOLDER = textwrap.dedent("""
    import sys
    from analysis.store import database, queries
    con = database.connect(sys.argv[1])
    con.execute(queries.META_SET, ["held", "yes"])
    print("ready", flush=True)
    sys.stdin.readline()
    con.close()
""")


def test_a_store_being_written_shows_the_previous_copy_and_says_so(store_copy, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(store_copy))
    at = open_app("browse")
    shown = snapshot.current(store_copy)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_copy)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "ready"
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert f"The store is being written; showing it as of {shown.as_of}." in _sidebar_captions(at)
        assert any("**" in m.value and "errors match" in m.value for m in at.markdown)  # Browse still lists errors
    finally:
        holder.communicate("\n", timeout=60)
    at.run()
    assert not any("being written" in c for c in _sidebar_captions(at))
    con = database.connect(snapshot.current(store_copy).path, read_only=True)
    try:
        assert database.meta(con).get("held") == "yes"  # the copy made after the writer closed has its write
    finally:
        con.close()

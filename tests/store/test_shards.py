"""Parquet shards: a shard ingests to exactly what publish_predictions writes; temporary, incomplete and killed writes
are never ingested; ingesting twice (or after a crash between commit and delete) stores nothing twice; a bad shard
goes to failed/ with its reason while the good ones ingest; a locked store leaves a shard pending until `ingest`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import cli, info, paths
from analysis.errors import UserError
from analysis.store import database, publish, shards
from tests.bad_inputs import BadInput, cases
from tests.stores import query

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "efficientnet-lite0"  # the small store's run on the first 50 sample images



def _checksums(path: Path, exclude=()) -> dict:
    con = database.connect(path, read_only=True)
    try:
        return database.table_checksums(con, exclude=exclude)
    finally:
        con.close()


def _rows(path: Path, model_id: str = SOURCE) -> pa.Table:
    con = database.connect(path, read_only=True)
    try:
        return con.sql("SELECT image_id, prediction, top5, confidence, top5_confidence FROM predictions "
                       "WHERE model_id = ? AND dataset = 'samples' ORDER BY image_id",
                       params=[model_id]).to_arrow_table()
    finally:
        con.close()


def _record(model_id: str = "lite0-shard") -> publish.ModelRecord:
    return publish.ModelRecord(model_id, "import", arch="efficientnet_lite0", family="cnn", params=4_652_008,
                               metadata={"file": "x.npz"})


def _ingest(path: Path) -> shards.Ingested:
    con = database.connect(path)
    try:
        return shards.ingest(con, path)
    finally:
        con.close()


MODEL_TABLES = {  # what one model adds, per table (the run log and ingested_shards aside)
    "predictions": "SELECT * FROM predictions WHERE model_id = 'lite0-shard' ORDER BY ALL",
    "model_summary": "SELECT * FROM model_summary WHERE model_id = 'lite0-shard' ORDER BY ALL",
    "models": "SELECT * EXCLUDE (created_at) FROM models WHERE model_id = 'lite0-shard'",
    "pair_categories": "SELECT * FROM pair_categories ORDER BY ALL",
}


def test_a_shard_ingests_to_what_publish_predictions_writes(small_store, store_copy, tmp_path):
    direct = tmp_path / "direct.duckdb"
    shutil.copy(small_store, direct)
    rows = _rows(store_copy)
    con = database.connect(direct)
    try:
        publish.publish_predictions(con, _record(), "samples", rows, mode="new")
    finally:
        con.close()

    shard = shards.write_shard(store_copy, _record(), "samples", rows, mode="new")
    assert shard.parent == shards.shard_dir(store_copy) == tmp_path / "copy.duckdb.shards"
    assert "-lite0-shard-samples-all-import-" in shard.name and shards.pending(store_copy) == [shard]
    meta = json.loads(pq.read_schema(shard).metadata[shards.META_KEY])
    assert meta["model"]["params"] == 4_652_008 and meta["mode"] == "new" and meta["pid"] == os.getpid()
    done = _ingest(store_copy)
    assert [(r["model_id"], r["predictions"]) for r in done.published] == [("lite0-shard", 50)]
    assert not shard.exists() and shards.pending(store_copy) == []
    for table, sql in MODEL_TABLES.items():
        got = query(store_copy, sql)
        assert got == query(direct, sql), table
        assert got, table
    assert query(store_copy, "SELECT shard_id, file_name, model_id, dataset, rows FROM ingested_shards "
                                     "WHERE model_id = 'lite0-shard'") == [
        (meta["shard_id"], shard.name, "lite0-shard", "samples", 50)]


def _three_images(store: Path) -> pa.Table:
    """The first three `samples` images as a folder dataset's image rows (without the dataset column)."""
    con = database.connect(store, read_only=True)
    try:
        return con.sql("SELECT * EXCLUDE (dataset) FROM images WHERE dataset = 'samples' AND image_id < 3 "
                       "ORDER BY image_id").to_arrow_table()
    finally:
        con.close()


def test_a_folder_dataset_lands_in_a_sibling_written_first(store_copy, tmp_path):
    """A run's new image set travels in `<name>.images.parquet`; without it the shard is never ingested."""
    images = _three_images(store_copy)
    register = (("folder:three-0123abcd", "single", str(tmp_path), "three images"), images)
    rows = _rows(store_copy).slice(0, 3)
    good = shards.write_shard(store_copy, _record(), "folder:three-0123abcd", rows, mode="merge", images=register)
    sibling = good.with_name(good.name.removesuffix(".parquet") + shards.IMAGES_SUFFIX)
    assert sibling.is_file() and sibling.stat().st_mtime_ns <= good.stat().st_mtime_ns
    assert shards.pending(store_copy) == [good]  # the sibling is not a shard of its own

    orphan = shards.write_shard(store_copy, _record("lite0-orphan"), "folder:orphan-0123abcd", rows, mode="merge",
                                images=(("folder:orphan-0123abcd", "single", str(tmp_path), "orphan"), images))
    orphan.with_name(orphan.name.removesuffix(".parquet") + shards.IMAGES_SUFFIX).unlink()
    before = _checksums(store_copy)
    with pytest.warns(shards.ShardWarning, match="images file .* is missing"):
        done = _ingest(store_copy)
    assert [r["model_id"] for r in done.published] == ["lite0-shard"]
    assert not good.exists() and not sibling.exists()
    assert query(store_copy, "SELECT count(*) FROM images WHERE dataset = 'folder:three-0123abcd'") == [(3,)]
    assert query(store_copy, "SELECT count(*) FROM datasets WHERE dataset LIKE 'folder:orphan%'") == [(0,)]
    assert (shards.shard_dir(store_copy) / "failed" / orphan.name).is_file()
    assert before.keys() == _checksums(store_copy).keys()


def test_temporary_files_are_never_ingested(store_copy):
    folder = shards.shard_dir(store_copy)
    real = shards.write_shard(store_copy, _record(), "samples", _rows(store_copy), mode="new")
    hidden = folder / f".{real.name}.1234.tmp"  # a writer's temporary file, complete or not
    shutil.copy(real, hidden)
    (folder / ".half.parquet").write_bytes(real.read_bytes()[:100])
    real.unlink()
    before = _checksums(store_copy)
    assert shards.pending(store_copy) == []
    assert _ingest(store_copy).published == []
    assert _checksums(store_copy) == before and hidden.exists()


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from analysis.store import publish, shards
    n = 50_000
    ids = np.arange(n, dtype=np.int32)
    top5 = np.tile(np.arange(5, dtype=np.int16), (n, 1))
    rows = publish.prediction_table(ids, top5[:, 0], top5=top5, top5_confidence=np.full((n, 5), 0.2, np.float32))
    for k in range(200):
        record = publish.ModelRecord(f"killed-{sys.argv[2]}-{k}", "import")
        shards.write_shard(sys.argv[1], record, "imagenet-val", rows, mode="new")
        print(k, flush=True)
""")


def test_a_killed_writer_leaves_no_partial_shard_visible(store_copy):
    """SIGKILL at arbitrary moments of a loop of 50,000-row shard writes: each visible shard reads back whole."""
    temporaries = 0
    for delay in (0.0, 0.013, 0.029, 0.047):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(store_copy), str(delay)], cwd=ROOT,
                                stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert proc.stdout.readline().strip() == "0"  # one shard written: the loop runs
            time.sleep(delay)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        temporaries += sum(1 for p in shards.shard_dir(store_copy).iterdir() if p.name.startswith("."))
        for path in shards.pending(store_copy):
            table = pq.read_table(path)
            assert table.num_rows == 50_000 and json.loads(table.schema.metadata[shards.META_KEY])["mode"] == "new"
    visible = shards.pending(store_copy)
    assert len(visible) >= 4
    done = _ingest(store_copy)
    assert len(done.published) == len(visible) and done.failed == []
    assert query(store_copy, "SELECT count(*) FROM predictions WHERE model_id LIKE 'killed-%'") == [
        (50_000 * len(visible),)]
    print(f"temporary files left by the kills: {temporaries}")


def test_ingesting_twice_or_after_a_crash_stores_nothing_twice(store_copy, tmp_path):
    shard = shards.write_shard(store_copy, _record(), "samples", _rows(store_copy), mode="new")
    kept = tmp_path / "kept.parquet"
    shutil.copy(shard, kept)
    assert len(_ingest(store_copy).published) == 1
    after = _checksums(store_copy)
    assert _ingest(store_copy).published == []
    shutil.copy(kept, shard)  # as a crash between the commit and the delete leaves it
    done = _ingest(store_copy)
    assert done.published == [] and done.failed == [] and len(done.already) == 1
    assert not shard.exists() and _checksums(store_copy) == after
    assert query(store_copy, "SELECT count(*) FROM predictions WHERE model_id = 'lite0-shard'") == [(50,)]


def _bad_unknown_images(store: Path) -> Path:
    rows = _rows(store)
    bad = rows.set_column(0, "image_id", pa.array(np.arange(5000, 5050, dtype=np.int32)))
    return shards.write_shard(store, _record("lite0-bad"), "samples", bad, mode="new")


def _bad_not_parquet(store: Path) -> Path:
    path = shards.shard_dir(store) / "00000000T000000000000Z-junk.parquet"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"not parquet at all")
    return path


def _bad_no_metadata(store: Path) -> Path:
    path = shards.shard_dir(store) / "00000000T000000000001Z-plain.parquet"
    path.parent.mkdir(exist_ok=True)
    pq.write_table(_rows(store), path)
    return path


def _bad_existing_model(store: Path) -> Path:
    return shards.write_shard(store, _record(SOURCE), "samples", _rows(store), mode="new")


BAD_SHARDS = {"shard-unknown-images": _bad_unknown_images, "shard-not-parquet": _bad_not_parquet,
              "shard-without-metadata": _bad_no_metadata, "shard-model-exists": _bad_existing_model}


@pytest.mark.parametrize("case", cases(
    BadInput("shard-unknown-images", "pending shard", "image ids that are not images of its dataset",
             "are not images of dataset 'samples'"),
    BadInput("shard-not-parquet", "pending shard", "a .parquet file that is not Parquet",
             "it is not a readable Parquet file"),
    BadInput("shard-without-metadata", "pending shard", "a Parquet file without the shard metadata",
             "it has no analysis.shard metadata"),
    BadInput("shard-model-exists", "pending shard", "mode new for a model already stored",
             "already has 50 predictions on samples"),
))
def test_a_bad_shard_goes_to_failed_with_its_reason_and_the_others_ingest(store_copy, capsys, case):
    bad = BAD_SHARDS[case.id](store_copy)
    good = shards.write_shard(store_copy, _record(), "samples", _rows(store_copy), mode="new")
    before = _checksums(store_copy, exclude=("predictions", "model_summary", "models", "pair_categories",
                                              "ingested_shards"))
    assert cli.main(["ingest", "--db", str(store_copy)]) == 0
    out, err = capsys.readouterr()
    assert "ingested 1 shards (50 predictions)" in out and "1 moved to" in out
    lines = err.strip().splitlines()
    assert [line for line in lines if line.startswith("warning:")] == [
        line for line in lines if bad.name in line and case.message in line]
    failed = shards.shard_dir(store_copy) / "failed"
    assert (failed / bad.name).is_file() and case.message in (failed / f"{bad.name}.error.txt").read_text()
    assert not good.exists() and shards.pending(store_copy) == []
    assert query(store_copy, "SELECT count(*) FROM predictions WHERE model_id = 'lite0-shard'") == [(50,)]
    assert query(store_copy, "SELECT count(*) FROM predictions WHERE model_id = 'lite0-bad'") == [(0,)]
    assert _checksums(store_copy, exclude=("predictions", "model_summary", "models", "pair_categories",
                                           "ingested_shards")) == before


HOLDER = textwrap.dedent("""
    import sys, duckdb
    con = duckdb.connect(sys.argv[1])
    print("locked", flush=True)
    sys.stdin.readline()
""")


def test_a_locked_store_leaves_the_shard_pending_until_ingest(store_copy, monkeypatch, capsys):
    before, rows = _checksums(store_copy), _rows(store_copy)
    monkeypatch.setattr(shards, "WRITERS_WAIT", 1.0)  # land waits this long for another writer (30 s by default)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_copy)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        landed = shards.land(store_copy, _record(), "samples", rows, mode="new")
        elapsed = time.monotonic() - start
    finally:
        holder.communicate("\n", timeout=30)
    assert landed.pending and landed.counts is None and elapsed < 3, elapsed
    assert shards.pending(store_copy) == [landed.shard] and _checksums(store_copy) == before
    monkeypatch.setenv(paths.DB_ENV, str(store_copy))
    item = info._store()
    assert item["present"] and "1 pending shards" in item["detail"] and "python -m analysis ingest" in item["detail"]
    assert cli.main(["ingest", "--db", str(store_copy)]) == 0
    assert "ingested 1 shards (50 predictions)" in capsys.readouterr().out
    assert shards.pending(store_copy) == [] and "0 pending shards" in info._store()["detail"]
    assert query(store_copy, "SELECT count(*) FROM predictions WHERE model_id = 'lite0-shard'") == [(50,)]


def test_warning_lines_prints_shard_warnings_and_passes_other_warnings_on(capsys):
    # an other warning re-raised while still recording looped forever (the Ray engine's warnings ate 24 GB)
    with pytest.warns(UserWarning, match="not ours"):
        with shards.warning_lines():
            warnings.warn("not ours", UserWarning)
            warnings.warn(shards.ShardWarning("shard x moved to failed/"))
    assert capsys.readouterr().err == "warning: shard x moved to failed/\n"


def test_a_shard_that_cannot_be_written_is_one_line_and_stores_nothing(store_copy):
    before, rows = _checksums(store_copy), _rows(store_copy)
    shards.shard_dir(store_copy).write_text("a file where the shard folder goes")
    with pytest.raises(UserError, match=r"cannot create the shard folder .*\.shards: .*nothing was stored"):
        shards.land(store_copy, _record(), "samples", rows, mode="new")
    assert _checksums(store_copy) == before


STORED = {  # the tables a backlog of imports writes (timestamps aside)
    "predictions": "SELECT * FROM predictions ORDER BY ALL",
    "model_summary": "SELECT * FROM model_summary ORDER BY ALL",
    "models": "SELECT * EXCLUDE (created_at) FROM models ORDER BY ALL",
    "pair_categories": "SELECT * FROM pair_categories ORDER BY ALL",
}


def _backlog(store: Path, n: int, prefix: str = "backlog") -> list[Path]:
    """`n` pending shards of models `<prefix>-<k>` (the source's 50 rows each), written while nothing ingests."""
    rows = _rows(store)
    return [shards.write_shard(store, _record(f"{prefix}-{k}"), "samples", rows, mode="new") for k in range(n)]


def test_land_ingests_its_own_shard_and_a_bounded_few_then_ingest_takes_the_backlog_in_holds(store_copy, tmp_path,
                                                                                           monkeypatch, capsys):
    whole = tmp_path / "whole.duckdb"  # the same shards ingested all at once, for comparison
    shutil.copy(store_copy, whole)
    backlog = _backlog(store_copy, 6)
    shutil.copytree(shards.shard_dir(store_copy), shards.shard_dir(whole))
    shards.write_shard(whole, _record("landed"), "samples", _rows(store_copy), mode="new")

    monkeypatch.setattr(shards, "LAND_SHARDS", 2)
    with shards.warning_lines():  # as predict and import-predictions print it
        landed = shards.land(store_copy, _record("landed"), "samples", _rows(store_copy), mode="new")
    assert capsys.readouterr().err == (
        f"warning: 4 other shards are still pending in {shards.shard_dir(store_copy)}; the next writer or "
        f"`python -m analysis ingest --db {store_copy}` ingests them\n")
    assert not landed.pending and landed.counts["predictions"] == 50 and landed.left == 4
    assert [r["file"] for r in landed.ingested.published] == [landed.shard.name] + [p.name for p in backlog[:2]]
    assert shards.pending(store_copy) == backlog[2:]

    monkeypatch.setattr(shards, "INGEST_SECONDS", 0.0)  # one shard per hold
    monkeypatch.setattr(shards, "HOLD_GAP", 0.05)
    done = shards.ingest_pending(store_copy)
    assert done.holds == 4 and [r["file"] for r in done.published] == [p.name for p in backlog[2:]]
    assert done.left == 0 and shards.pending(store_copy) == []

    assert len(_ingest(whole).published) == 7
    for table, sql in STORED.items():
        assert query(store_copy, sql) == query(whole, sql), table
    assert query(store_copy, "SELECT count(*) FROM predictions WHERE model_id LIKE 'backlog-%'") == [(300,)]


WAITER = textwrap.dedent("""
    import sys, time
    from analysis.store import shards
    store, n = sys.argv[1], int(sys.argv[2])
    print("ready", flush=True)
    while len(shards.pending(store)) >= n:  # the backlog's ingest has begun
        time.sleep(0.01)
    start = time.monotonic()
    con = shards.connect_writer(store)
    left = len(shards.pending(store))
    con.close()
    print(left, round(time.monotonic() - start, 2), flush=True)
""")


def test_a_waiting_writer_gets_the_store_between_two_holds_of_the_backlog(store_copy, monkeypatch):
    n = 8
    _backlog(store_copy, n)
    monkeypatch.setattr(shards, "INGEST_SECONDS", 0.0)  # one shard per hold, HOLD_GAP (0.5 s) between holds
    waiter = subprocess.Popen([sys.executable, "-c", WAITER, str(store_copy), str(n)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert waiter.stdout.readline().strip() == "ready"
        start = time.monotonic()
        done = shards.ingest_pending(store_copy)
        elapsed = time.monotonic() - start
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    left, waited = out.split()
    # it got the store while at least half of the backlog was still pending, not after the whole ingest
    assert int(left) >= n // 2 and float(waited) < elapsed / 2, (left, waited, elapsed)
    assert done.holds == n and len(done.published) == n and shards.pending(store_copy) == []
    print(f"waiter got the store after {waited} s with {left} of {n} shards pending; backlog took {elapsed:.1f} s")


def _age(path: Path, seconds: float) -> Path:
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))
    return path


def test_orphans_of_killed_writers_are_removed_when_old_and_failed_shards_stay(store_copy, monkeypatch, capsys):
    folder = shards.shard_dir(store_copy)
    _bad_not_parquet(store_copy)
    with pytest.warns(shards.ShardWarning, match="not a readable Parquet file"):
        assert _ingest(store_copy).failed  # -> failed/ with its reason
    failed = folder / "failed"
    _age(failed / "00000000T000000000000Z-junk.parquet.error.txt", 2 * 3600)
    (failed / "lone.images.parquet").write_bytes(b"user data")  # in failed/: never an orphan, whatever its age
    (failed / ".x.parquet.7.tmp").write_bytes(b"user data")
    for path in failed.iterdir():
        _age(path, 2 * 3600)
    in_failed = {p.name: p.read_bytes() for p in failed.iterdir()}

    monkeypatch.setattr(shards, "ORPHAN_AGE", 1.5)  # a constant: 1 h in use; ages by mtime and ctime (no utime)
    images = _three_images(store_copy)

    def lone_sibling(name: str) -> Path:  # a writer killed between the images sibling and its main file
        shard = shards.write_shard(store_copy, _record(f"lite0-{name}"), f"folder:{name}-0123abcd",
                                   _rows(store_copy).slice(0, 3), mode="merge",
                                   images=((f"folder:{name}-0123abcd", "single", "/x", name), images))
        shard.unlink()
        return shard.with_name(shard.name.removesuffix(".parquet") + shards.IMAGES_SUFFIX)

    old, in_flight = lone_sibling("old"), lone_sibling("inflight")
    old_tmp = folder / ".20260101T000000000000Z-x.parquet.4242.tmp"
    foreign = folder / ".notes.txt"  # not a file of ours: never touched
    for path in (old_tmp, foreign):
        path.write_bytes(b"half a shard")
    good = shards.write_shard(store_copy, _record(), "samples", _rows(store_copy), mode="new")  # pending: no orphan
    time.sleep(2.0)
    young = lone_sibling("young")
    young_tmp = folder / ".y.parquet.4243.tmp"
    main_tmp = folder / f".{in_flight.name.removesuffix(shards.IMAGES_SUFFIX)}.parquet.4244.tmp"  # still writing
    for path in (young_tmp, main_tmp):
        path.write_bytes(b"half a shard")
    lone = [old, young]

    assert shards.orphans(store_copy) == sorted([lone[0], old_tmp])
    assert shards.failed_shards(store_copy) == [failed / "00000000T000000000000Z-junk.parquet"]
    monkeypatch.setenv(paths.DB_ENV, str(store_copy))
    detail = info._store()["detail"]
    assert f"1 failed shards in {failed}" in detail and f"2 orphaned files of killed writers in {folder}" in detail

    assert cli.main(["ingest", "--db", str(store_copy)]) == 0
    out = capsys.readouterr().out
    assert "ingested 1 shards (50 predictions)" in out and "2 orphaned files of killed writers removed" in out
    assert not good.exists() and not lone[0].exists() and not old_tmp.exists()
    assert lone[1].exists() and young_tmp.exists() and foreign.exists()  # young: maybe a writer still writing
    assert in_flight.exists() and main_tmp.exists()  # an old sibling whose main file is being written
    assert {p.name: p.read_bytes() for p in failed.iterdir()} == in_failed
    detail = info._store()["detail"]
    assert f"1 failed shards in {failed}" in detail and "orphaned" not in detail


@pytest.mark.parametrize("case", cases(
    BadInput("ingest-limit-zero", "ingest argument", "limit=0 shards", "limit=0 must be at least 1 shard"),
    BadInput("ingest-limit-negative", "ingest argument", "limit=-3 shards", "limit=-3 must be at least 1 shard"),
    BadInput("ingest-limit-not-int", "ingest argument", "limit=2.5 (not a whole number)",
             "limit=2.5 must be a whole number of shards"),
    BadInput("ingest-seconds-negative", "ingest argument", "seconds=-1",
             "seconds=-1 must be a finite number of seconds >= 0"),
    BadInput("ingest-seconds-nan", "ingest argument", "seconds=nan", "seconds=nan must be a finite number"),
    BadInput("ingest-first-not-path", "ingest argument", "first=3 (not a path)", "first=3 must be the path of a shard"),
))
def test_bad_ingest_arguments_are_refused_before_anything_is_touched(store_copy, case, monkeypatch):
    kwargs = {"ingest-limit-zero": {"limit": 0}, "ingest-limit-negative": {"limit": -3},
              "ingest-limit-not-int": {"limit": 2.5}, "ingest-seconds-negative": {"seconds": -1},
              "ingest-seconds-nan": {"seconds": float("nan")}, "ingest-first-not-path": {"first": 3}}[case.id]
    backlog = _backlog(store_copy, 2)
    orphan = shards.shard_dir(store_copy) / ".x.parquet.1.tmp"
    orphan.write_bytes(b"a killed writer's temporary file")
    monkeypatch.setattr(shards, "ORPHAN_AGE", 0.0)  # an ingest that went ahead would remove it
    assert shards.orphans(store_copy) == [orphan]
    before = _checksums(store_copy)
    con = database.connect(store_copy)
    try:
        with pytest.raises((ValueError, TypeError), match=case.message.replace(".", r"\.")) as raised:
            shards.ingest(con, store_copy, **kwargs)
    finally:
        con.close()
    assert "None" in str(raised.value)  # the fix: None for no bound (or no first shard)
    assert shards.pending(store_copy) == backlog and orphan.exists() and _checksums(store_copy) == before


GRABBER = textwrap.dedent("""
    import sys, time, duckdb
    from analysis.store import shards
    store, n = sys.argv[1], int(sys.argv[2])
    while len(shards.pending(store)) >= n:  # the first hold has begun: take the store in the gap after it
        time.sleep(0.01)
    while True:
        try:
            con = duckdb.connect(store)
            break
        except duckdb.IOException:
            time.sleep(0.02)
    print("locked", flush=True)
    sys.stdin.readline()
""")


def test_a_store_taken_between_holds_stops_ingest_saying_what_was_done(store_copy, monkeypatch, capsys):
    backlog = _backlog(store_copy, 4)
    monkeypatch.setattr(shards, "INGEST_SECONDS", 0.0)  # one shard per hold
    monkeypatch.setattr(shards, "HOLD_GAP", 1.0)  # time for the other process to take the store
    monkeypatch.setattr(shards, "WRITERS_WAIT", 1.0)  # and how long ingest waits to retake it (30 s by default)
    grabber = subprocess.Popen([sys.executable, "-c", GRABBER, str(store_copy), "4"], cwd=ROOT, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        code = cli.main(["ingest", "--db", str(store_copy)])
        assert grabber.stdout.readline().strip() == "locked"
    finally:
        grabber.communicate("\n", timeout=30)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"store {store_copy} is locked by another process, PID {grabber.pid}" in err[0], err
    assert "; 1 shards were ingested before it took the store and 3 are still pending (run `python -m analysis " \
           f"ingest --db {store_copy}` again)" in err[0], err
    assert shards.pending(store_copy) == backlog[1:]
    assert query(store_copy, "SELECT count(*) FROM predictions WHERE model_id LIKE 'backlog-%'") == [(50,)]

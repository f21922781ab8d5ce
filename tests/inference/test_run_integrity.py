"""Runs that cannot mislabel or block: a resume after the folder changed, two folders of the same name, one process
per run of a model on a dataset (a crashed one is taken over)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from analysis import cli
from analysis.inference import runner
from analysis.knowledge import classes
from analysis.store import database
from tests.bad_inputs import BadInput, cases
from tests.stores import query

ROOT = Path(__file__).resolve().parents[2]



def _predictions(path, model_id, dataset):
    return query(path, "SELECT image_id, prediction, top5, confidence FROM predictions "
                        "WHERE model_id = ? AND dataset = ? ORDER BY image_id", [model_id, dataset])


def _checksums(path, exclude=()):
    con = database.connect(path, read_only=True)
    try:
        return database.table_checksums(con, exclude=exclude)
    finally:
        con.close()


def _recognised(store, n):
    """`n` sample classes whose picture Lite0 recognises (so pictures of two of them get different predictions)."""
    hits = [r[0] for r in _predictions(store, "efficientnet-lite0", "samples") if r[0] == r[1]]
    assert len(hits) >= n
    return hits[:n]


def _put(root: Path, folder_class: int, name: str, picture_class: int) -> Path:
    """Copy the sample picture of `picture_class` to root/<wnid of folder_class>/name."""
    target = root / classes.wnids()[folder_class] / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(classes.sample_images()[picture_class][0], target)
    return target


def _same_predictions(a, b):
    assert [r[:3] for r in a] == [r[:3] for r in b]  # image ids, top-1 and top-5 classes
    assert np.allclose([r[3] for r in a], [r[3] for r in b], atol=1e-5)  # batches differ: float-rounding-close


def test_resume_after_the_folder_changed_predicts_the_files_now_there(store_copy, tmp_path):
    pics = _recognised(store_copy, 8)
    root = tmp_path / "shots"
    for folder, name, pic in ((0, "a.jpg", pics[0]), (0, "b.jpg", pics[1]), (1, "c.jpg", pics[2]),
                              (1, "d.jpg", pics[3]), (2, "e.jpg", pics[4]), (2, "f.jpg", pics[5])):
        _put(root, folder, name, pic)

    def stop_after_two_batches(done, total):
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # a, b, c, d staged (image ids 0-3), nothing published
        runner.predict("efficientnet-lite0", "folder", images=root, db=store_copy, device="cpu", batch_size=2,
                       workers=0, chunk_images=1, progress=stop_after_two_batches, model_id="resumed")
    assert query(store_copy, "SELECT count(*) FROM prediction_staging") == [(4,)]
    # The folder changes: a.jpg becomes another picture, b.jpg goes (c and d move up one place), g.jpg comes.
    _put(root, 0, "a.jpg", pics[6])
    (root / classes.wnids()[0] / "b.jpg").unlink()
    _put(root, 2, "g.jpg", pics[7])
    totals = []
    resumed = runner.predict("efficientnet-lite0", "folder", images=root, db=store_copy, device="cpu", batch_size=2,
                             workers=0, progress=lambda done, total: totals.append(total), model_id="resumed")
    assert set(totals) == {4}  # c and d reused at their new places; a (changed), e, f, g predicted
    assert resumed.predicted == 6
    fresh = runner.predict("efficientnet-lite0", "folder", images=root, db=store_copy, device="cpu", batch_size=2,
                           workers=0, progress=False, model_id="fresh")
    assert fresh.dataset == resumed.dataset and fresh.predicted == 6
    rows = _predictions(store_copy, "resumed", resumed.dataset)
    _same_predictions(rows, _predictions(store_copy, "fresh", fresh.dataset))
    assert [r[1] for r in rows] == [pics[6], pics[2], pics[3], pics[4], pics[5], pics[7]]  # each file's own picture
    assert query(store_copy, "SELECT count(*) FROM prediction_staging") == [(0,)]


def test_a_staged_row_whose_file_changed_in_place_is_predicted_again(store_copy, tmp_path):
    pics = _recognised(store_copy, 3)
    root = tmp_path / "inplace"
    path = _put(root, 0, "a.jpg", pics[0])
    _put(root, 0, "b.jpg", pics[2])

    def stop(done, total):
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.predict("efficientnet-lite0", "folder", images=root, db=store_copy, device="cpu", batch_size=1,
                       workers=0, chunk_images=1, progress=stop, model_id="inplace")
    assert query(store_copy, "SELECT file_name FROM prediction_staging ORDER BY 1") == [
        (f"{classes.wnids()[0]}/a.jpg",), (f"{classes.wnids()[0]}/b.jpg",)]
    other = classes.sample_images()[pics[1]][0].read_bytes()
    with open(path, "r+b") as fh:  # same inode and name, new content
        fh.write(other)
        fh.truncate()
    result = runner.predict("efficientnet-lite0", "folder", images=root, db=store_copy, device="cpu", workers=0,
                            progress=False, model_id="inplace")
    assert [r[1] for r in _predictions(store_copy, "inplace", result.dataset)] == [pics[1], pics[2]]


def test_two_folders_of_the_same_name_are_two_datasets(store_copy, tmp_path):
    pics = _recognised(store_copy, 4)
    first, second = tmp_path / "x" / "photos", tmp_path / "y" / "photos"
    for root, (p, q) in ((first, pics[:2]), (second, pics[2:])):
        _put(root, 0, "a.jpg", p)
        _put(root, 1, "b.jpg", q)
    one = runner.predict("efficientnet-lite0", "folder", images=first, db=store_copy, device="cpu", workers=0,
                         progress=False)
    two = runner.predict("efficientnet-lite0", "folder", images=second, db=store_copy, device="cpu", workers=0,
                         progress=False)
    assert one.dataset != two.dataset and one.dataset.startswith("folder:photos-")
    assert one.predicted == two.predicted == 2  # the second folder's images are run, not taken for the first's
    assert [r[1] for r in _predictions(store_copy, "efficientnet-lite0", one.dataset)] == pics[:2]
    assert [r[1] for r in _predictions(store_copy, "efficientnet-lite0", two.dataset)] == pics[2:]
    roots = dict(query(store_copy, "SELECT dataset, root FROM datasets WHERE dataset LIKE 'folder:%'"))
    assert roots == {one.dataset: str(first.resolve()), two.dataset: str(second.resolve())}
    # Through a symlink it is the same folder, so the same dataset: nothing to run again.
    link = tmp_path / "link"
    link.symlink_to(first, target_is_directory=True)
    again = runner.predict("efficientnet-lite0", "folder", images=link, db=store_copy, device="cpu", progress=False)
    assert again.dataset == one.dataset and again.run_id is None


def test_a_stored_folder_of_the_older_id_keeps_it(store_copy, tmp_path):
    root = tmp_path / "legacy"
    _put(root, 0, "a.jpg", 0)
    con = database.connect(store_copy)
    try:
        assert runner.folder_dataset(root, con).startswith("folder:legacy-")
        con.execute("INSERT INTO datasets VALUES ('folder:legacy', 'single', ?, 'stored before v4')",
                    [str(root.resolve())])
        assert runner.folder_dataset(root, con) == "folder:legacy"
        con.execute("UPDATE datasets SET root = '/somewhere/else/legacy' WHERE dataset = 'folder:legacy'")
        assert runner.folder_dataset(root, con).startswith("folder:legacy-")
    finally:
        con.close()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture()
def sleeper():
    """A live process on this host (another program than ours)."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("holder", ["exited", "reused-pid", "no-pid"])
def test_a_run_whose_process_is_gone_is_taken_over_with_its_staged_rows(store_copy, sleeper, holder):
    def stop(done, total):
        if done >= 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cpu", limit=8, batch_size=2,
                       workers=0, chunk_images=1, progress=stop, model_id="crashed")
    pid, start = {"exited": (_dead_pid(), None), "reused-pid": (sleeper.pid, 1.0), "no-pid": (None, None)}[holder]
    con = database.connect(store_copy)
    try:  # as a kill -9 leaves it: still running, its staged rows twice (the duplicates of two old racing runs)
        con.execute("UPDATE runs SET status = 'running', pid = ?, host = ?, pid_start = ? WHERE model_id = 'crashed'",
                    [pid, socket.gethostname(), start])
        con.execute("INSERT INTO prediction_staging SELECT * FROM prediction_staging")
    finally:
        con.close()
    totals = []
    result = runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cpu", limit=8, batch_size=2,
                            workers=0, progress=lambda done, total: totals.append(total), model_id="crashed")
    assert set(totals) == {4} and result.predicted == 8  # 4 staged rows reused once each
    assert query(store_copy, "SELECT count(*), min(status), max(pid) FROM runs WHERE model_id = 'crashed'") == [
        (1, "done", os.getpid())]
    _same_predictions(_predictions(store_copy, "crashed", "samples"),
                      _predictions(store_copy, "efficientnet-lite0", "samples")[:8])


def _hold(store, model_id, *, pid, host, pid_start, shard=None):
    con = database.connect(store)
    try:
        con.execute("INSERT INTO runs (run_id, model_id, dataset, status, started_at, shard, pid, host, pid_start, "
                    "held_since) VALUES ('held-1', ?, 'samples', 'running', current_timestamp, ?, ?, ?, ?, "
                    "TIMESTAMP '2030-01-02 03:04:05')", [model_id, shard, pid, host, pid_start])
    finally:
        con.close()


def _refused(capsys, argv, case):
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and case.message in err, err
    return err


HELD = cases(
    BadInput("run-held-by-live-process", "predict of a model id", "another live process on this host runs it",
             "is already being run by PID"),
    BadInput("run-held-on-other-host", "predict of a model id", "a process on another host runs it",
             "run this command on"),
    BadInput("run-held-by-overlapping-shard", "predict --shard", "a live process runs the whole set",
             "wait for it to finish or stop it"),
)


@pytest.mark.parametrize("case", HELD)
def test_a_run_held_by_a_live_process_is_refused(store_copy, sleeper, capsys, case):
    host = "elsewhere.example" if case.id == "run-held-on-other-host" else socket.gethostname()
    _hold(store_copy, "lite0-held", pid=sleeper.pid, host=host, pid_start=runner._process_start(sleeper.pid))
    before = _checksums(store_copy)
    shard = ["--shard", "0/2"] if case.id == "run-held-by-overlapping-shard" else []
    err = _refused(capsys, ["predict", "--model", "efficientnet-lite0", "--model-id", "lite0-held", "--dataset",
                            "samples", "--limit", "4", "--device", "cpu", "--workers", "0", "--db", str(store_copy),
                            *shard], case)
    assert f"PID {sleeper.pid} on {host} since 2030-01-02 03:04:05 (run held-1)" in err
    assert _checksums(store_copy) == before


def test_distinct_shards_run_side_by_side(store_copy, sleeper):
    _hold(store_copy, "sharded", pid=sleeper.pid, host=socket.gethostname(),
          pid_start=runner._process_start(sleeper.pid), shard="0/2")
    result = runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cpu", limit=4, shard="1/2",
                            workers=0, progress=False, model_id="sharded")
    assert result.predicted == 2
    assert query(store_copy, "SELECT shard, status FROM runs WHERE model_id = 'sharded' ORDER BY shard") == [
        ("0/2", "running"), ("1/2", "done")]


HOLDER = """
import sys, time
from pathlib import Path
from analysis.inference import runner

def hold(done, total):
    if done >= 4:
        Path(sys.argv[2]).write_text("holding")
        time.sleep(300)

runner.predict("efficientnet-lite0", "samples", db=sys.argv[1], device="cpu", limit=8, batch_size=2, workers=0,
               chunk_images=1, progress=hold, model_id="concurrent")
"""


@pytest.mark.parametrize("case", cases(
    BadInput("run-concurrent-process", "a second predict of the same model id", "the first one still runs",
             "is already being run by PID"),
))
def test_a_second_process_is_refused_until_the_first_is_killed(store_copy, tmp_path, capsys, case):
    marker = tmp_path / "holding"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_copy), str(marker)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the holding process did not start its run"
            time.sleep(0.2)
        before = _checksums(store_copy)
        err = _refused(capsys, ["predict", "--model", "efficientnet-lite0", "--dataset", "samples", "--limit", "8",
                                "--model-id", "concurrent", "--device", "cpu", "--workers", "0",
                                "--db", str(store_copy)], case)
        assert f"PID {proc.pid} on {socket.gethostname()}" in err
        assert _checksums(store_copy) == before
    finally:
        proc.kill()  # a crash: the run stays 'running' with 2 rows staged
        proc.wait()
    assert query(store_copy, "SELECT status FROM runs WHERE model_id = 'concurrent'") == [("running",)]
    totals = []
    result = runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cpu", limit=8, batch_size=2,
                            workers=0, progress=lambda done, total: totals.append(total), model_id="concurrent")
    assert result.predicted == 8 and set(totals) == {6}
    assert query(store_copy, "SELECT count(*), min(status) FROM runs WHERE model_id = 'concurrent'") == [(1, "done")]

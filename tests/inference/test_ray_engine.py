"""`predict --engine ray`: Ray Data actors on a local 2-CPU Ray give the local engine's predictions, stored through the
same publish path; bad engine options are refused with one line and leave the store unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis import cli
from analysis.knowledge import classes
from analysis.store import database
from tests.bad_inputs import BadInput, cases
from tests.stores import query

ray = pytest.importorskip("ray", reason="ray is not installed (requirements.txt pins ray[data]); "
                                        "the Ray engine cannot run")

LOCAL = "efficientnet-lite0"  # the small store's local-engine run (first 50 sample images, batch size 32)
RAY_ARGS = ["--model", LOCAL, "--model-id", "lite0-ray", "--dataset", "samples", "--limit", "50", "--engine", "ray"]



def _checksums(path: Path) -> dict:
    con = database.connect(path, read_only=True)
    try:
        return database.table_checksums(con)
    finally:
        con.close()


def _predictions(path: Path, model_id: str) -> list:
    return query(path, "SELECT image_id, prediction, top5, confidence, top5_confidence FROM predictions "
                        "WHERE model_id = ? AND dataset = 'samples' ORDER BY image_id", [model_id])


def _error_line(capsys, store: Path, args: list[str]) -> str:
    """Run `predict` through the CLI; assert exit 2 and exactly one `error:` line on stderr; return it."""
    code = cli.main(["predict", "--db", str(store), *args])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert "Traceback" not in captured.err and len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


REFUSED_ARGS = {
    "ray-address-unreachable": [*RAY_ARGS, "--address", "127.0.0.1:1"],
    "ray-address-malformed": [*RAY_ARGS, "--address", "head node"],
    "ray-workers-zero": [*RAY_ARGS, "--workers", "0"],
    "ray-gpus-negative": [*RAY_ARGS, "--gpus-per-worker", "-1"],
    "ray-gpus-over-available": [*RAY_ARGS, "--gpus-per-worker", "4096", "--device", "auto"],
    "ray-options-without-engine": ["--model", LOCAL, "--dataset", "samples", "--limit", "2",
                                   "--address", "127.0.0.1:6379"],
}

REFUSED = cases(
    BadInput("ray-address-unreachable", "predict --engine ray --address", "no Ray cluster listens there",
             "no Ray cluster answers there"),
    BadInput("ray-address-malformed", "predict --engine ray --address", "not HOST:PORT",
             "must be HOST:PORT"),
    BadInput("ray-workers-zero", "predict --engine ray --workers", "0 actors",
             "workers=0 must be an integer >= 1 with --engine ray"),
    BadInput("ray-gpus-negative", "predict --engine ray --gpus-per-worker", "negative",
             "gpus_per_worker=-1.0 must be a number >= 0"),
    BadInput("ray-gpus-over-available", "predict --engine ray --gpus-per-worker", "more GPUs than the cluster has",
             "is more than the Ray cluster's"),
    BadInput("ray-options-without-engine", "predict --address", "given with the local engine",
             "are options of engine='ray'; pass --engine ray"),
)


@pytest.mark.parametrize("case", REFUSED)
def test_bad_engine_options_are_refused(store_copy, capsys, case):
    was_running = ray.is_initialized()
    before = _checksums(store_copy)
    line = _error_line(capsys, store_copy, REFUSED_ARGS[case.id])
    assert case.message in line
    assert _checksums(store_copy) == before
    assert ray.is_initialized() == was_running  # a local Ray the engine started for the check is shut down


def test_ray_engine_gives_the_local_engines_predictions(store_copy, capsys):
    """The engine starts its own local Ray (no --address), runs 2 CPU actors, publishes, and shuts Ray down."""
    assert not ray.is_initialized()
    code = cli.main(["predict", "--db", str(store_copy), *RAY_ARGS, "--workers", "2", "--gpus-per-worker", "0"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "lite0-ray on samples: 50 images predicted" in out.out and "cpu" in out.out
    assert not ray.is_initialized()

    local, remote = _predictions(store_copy, LOCAL), _predictions(store_copy, "lite0-ray")
    assert [r[0] for r in remote] == list(range(50))
    assert [r[:3] for r in remote] == [r[:3] for r in local]  # image, prediction, top-5 ids: identical
    np.testing.assert_allclose(np.array([r[3] for r in remote]), np.array([r[3] for r in local]), atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.array([r[4] for r in remote]), np.array([r[4] for r in local]), atol=1e-5, rtol=0)
    # The same publish path: the same classified pairs and per-model summary, a finished run, nothing left staged.
    summary = "SELECT * EXCLUDE (model_id) FROM model_summary WHERE model_id = ? ORDER BY ALL"
    assert query(store_copy, summary, ["lite0-ray"]) == query(store_copy, summary, [LOCAL])
    categories = ("SELECT p.image_id, c.category, c.reason FROM predictions p JOIN pair_categories c "
                  "USING (dataset, image_id, prediction) WHERE p.model_id = ? ORDER BY p.image_id")
    assert query(store_copy, categories, ["lite0-ray"]) == query(store_copy, categories, [LOCAL])
    run = query(store_copy, "SELECT status, device, images, json_extract(options, '$.engine')::VARCHAR, "
                             "json_extract(options, '$.workers')::INT FROM runs WHERE model_id = 'lite0-ray'")
    assert run == [("done", "cpu", 50, '"ray"', 2)]
    assert query(store_copy, "SELECT count(*) FROM prediction_staging") == [(0,)]


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs, shared by the tests that need one running (the engine connects to it)."""
    started = not ray.is_initialized()
    if started:
        ray.init("local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}})
    yield
    if started:
        ray.shutdown()


def test_unreadable_image_stops_the_ray_run_naming_it(local_ray, store_copy, tmp_path, capsys):
    """An unreadable image in a folder: the run fails naming it, publishes nothing, and keeps the good rows staged;
    the engine leaves a Ray it did not start running."""
    root = tmp_path / "images" / "n01440764"
    root.mkdir(parents=True)
    good = classes.sample_images()[0][0]
    for k in range(3):
        shutil.copy(good, root / f"a{k}.JPEG")
    (root / "b_truncated.JPEG").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    line = _error_line(capsys, store_copy, ["--model", LOCAL, "--model-id", "lite0-ray", "--dataset", "folder",
                                            "--images", str(tmp_path / "images"), "--engine", "ray", "--workers", "2",
                                            "--batch-size", "2"])
    assert "b_truncated.JPEG" in line and "cannot read the image" in line
    assert ray.is_initialized()
    assert query(store_copy, "SELECT count(*) FROM predictions WHERE model_id = 'lite0-ray'") == [(0,)]
    assert query(store_copy, "SELECT status FROM runs WHERE model_id = 'lite0-ray'") == [("failed",)]
    # Batches [a0, a1] and [a2, b_truncated] arrive in any order: a2 (before the bad file in its batch) is always
    # staged, the bad file never.
    staged = {r[0] for r in query(store_copy, "SELECT file_name FROM prediction_staging")}
    assert "n01440764/a2.JPEG" in staged and staged <= {f"n01440764/a{k}.JPEG" for k in range(3)}

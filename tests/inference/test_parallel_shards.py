"""N `predict --shard i/N` processes started at once on one store, with the dashboard open on it, all succeed; after
a final `ingest` the store holds every selected image predicted exactly once, as one unsharded run predicts it, and
the open dashboard shows the new model on its next rerun (issue 12, Must show)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from analysis.store import shards
from tests.dashboard.apptest import open_app
from tests.stores import query

ROOT = Path(__file__).resolve().parents[2]
N, IMAGES = 3, 12
UNSHARDED = "efficientnet-lite0"  # the small store's unsharded run (first 50 sample images)



def _predictions(path: Path, model_id: str) -> list:
    return query(path, "SELECT image_id, prediction, top5, confidence, top5_confidence FROM predictions "
                        "WHERE model_id = ? AND dataset = 'samples' ORDER BY image_id", [model_id])


def _models_caption(at) -> str:
    return next(c.value for c in at.sidebar.caption if c.value.startswith("store: "))


def test_parallel_shard_writers_all_succeed_with_the_dashboard_open(store_copy, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(store_copy))
    monkeypatch.delenv("IMAGENET_ERRORS_READONLY", raising=False)
    at = open_app("browse")  # the dashboard open on the store the writers write
    assert "· 2 models" in _models_caption(at)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "analysis", "predict", "--model", UNSHARDED, "--model-id",
                               "lite0-parallel", "--dataset", "samples", "--limit", str(IMAGES), "--shard", f"{i}/{N}",
                               "--device", "cpu", "--workers", "0", "--batch-size", "2", "--db", str(store_copy)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(N)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0 and "Traceback" not in err, (out, err)
        assert f"lite0-parallel on samples: {IMAGES // N} images predicted" in out, out
    pending = sum("the next writer or `python -m analysis ingest" in out for out, _ in outputs)
    final = subprocess.run([sys.executable, "-m", "analysis", "ingest", "--db", str(store_copy)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert f"ingested {pending} shards" in final.stdout, (final.stdout, pending)
    assert shards.pending(store_copy) == []

    rows = _predictions(store_copy, "lite0-parallel")
    unsharded = _predictions(store_copy, UNSHARDED)[:IMAGES]
    assert [r[0] for r in rows] == list(range(IMAGES))  # every selected image, once
    assert [r[:3] for r in rows] == [r[:3] for r in unsharded]  # image, prediction, top-5 ids: identical
    np.testing.assert_allclose([r[3] for r in rows], [r[3] for r in unsharded], atol=1e-5, rtol=0)
    np.testing.assert_allclose([r[4] for r in rows], [r[4] for r in unsharded], atol=1e-5, rtol=0)
    summary = "SELECT * EXCLUDE (model_id) FROM model_summary WHERE model_id = ? ORDER BY ALL"
    assert query(store_copy, "SELECT count(*) FROM model_summary WHERE model_id = 'lite0-parallel'")[0][0] > 0
    assert query(store_copy, "SELECT shard, status FROM runs WHERE model_id = 'lite0-parallel' ORDER BY shard") == [
        (f"{i}/{N}", "done") for i in range(N)]
    assert query(store_copy, "SELECT count(*) FROM prediction_staging") == [(0,)]
    assert query(store_copy, "SELECT count(*) FROM ingested_shards WHERE model_id = 'lite0-parallel'") == [(N,)]
    at.run()  # the open dashboard's next rerun reads the written store
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "· 3 models" in _models_caption(at)
    print(f"{pending} of {N} shards were left pending by a busy store and ingested by `ingest`; summary rows "
          f"{len(query(store_copy, summary, ['lite0-parallel']))}")

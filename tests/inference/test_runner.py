"""The runner: real EfficientNet-Lite runs on sample images, determinism, resume, shards, folders (bad input:
test_predict_bad_inputs.py; folder changes and concurrent runs: test_run_integrity.py)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from analysis.inference import runner
from analysis.knowledge import classes
from analysis.store import database
from tests.stores import query

DATA_TABLES_EXCLUDE = ("runs", "prediction_staging")  # run bookkeeping; everything else must stay unchanged


def _predictions(path, model_id, dataset="samples"):
    con = database.connect(path, read_only=True)
    try:
        return con.execute("SELECT image_id, prediction, top5, confidence FROM predictions "
                           "WHERE model_id = ? AND dataset = ? ORDER BY image_id", [model_id, dataset]).fetchall()
    finally:
        con.close()



def test_small_store_holds_two_real_runs(small_store):
    runs = query(small_store, "SELECT model_id, dataset, device, images, status FROM runs ORDER BY model_id")
    assert runs == [("efficientnet-lite0", "samples", "cpu", 50, "done"), ("efficientnet-lite1", "samples", "cpu", 50, "done")]
    rows = _predictions(small_store, "efficientnet-lite0")
    assert [r[0] for r in rows] == list(range(50))
    assert all(len(r[2]) == 5 and r[2][0] == r[1] and 0 < r[3] <= 1 for r in rows)
    # Every stored prediction has its pair classified, and correct exactly when prediction == target.
    assert query(small_store, """
        SELECT count(*) FROM predictions p JOIN images i USING (dataset, image_id)
        LEFT JOIN pair_categories c USING (dataset, image_id, prediction)
        WHERE c.category IS NULL OR (c.category = 'correct') <> (p.prediction = i.target)""") == [(0,)]
    top1 = np.mean([r[1] == r[0] for r in rows])  # sample image_id == its class id
    assert top1 >= 0.7
    assert query(small_store, "SELECT count(*) FROM prediction_staging") == [(0,)]


def test_two_runs_give_identical_predictions(store_copy):
    result = runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cpu", limit=50, progress=False,
                            model_id="lite0-again", workers=0)
    assert result.predicted == 50 and result.device == "cpu"
    # Bit-identical, confidences included, with the same batch size as the first run (32).
    assert _predictions(store_copy, "lite0-again") == _predictions(store_copy, "efficientnet-lite0")


def test_rerun_skips_stored_images(store_copy):
    result = runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cpu", limit=50, progress=False)
    assert result.run_id is None and result.predicted == 0 and result.selected == 50


def test_interrupted_run_resumes_without_recomputing(store_copy):
    seen = []

    def stop_after_two_batches(done, total):
        seen.append((done, total))
        if done >= 8:
            raise KeyboardInterrupt

    con = database.connect(store_copy, read_only=True)
    before = database.table_checksums(con, exclude=DATA_TABLES_EXCLUDE)
    con.close()
    with pytest.raises(KeyboardInterrupt):
        runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cpu", limit=12, batch_size=4,
                       progress=stop_after_two_batches, model_id="resumed", chunk_images=4)
    assert seen[-1] == (8, 12)
    assert query(store_copy, "SELECT status FROM runs WHERE model_id = 'resumed'") == [("interrupted",)]
    assert query(store_copy, "SELECT count(*) FROM prediction_staging") == [(8,)]
    con = database.connect(store_copy, read_only=True)
    assert database.table_checksums(con, exclude=DATA_TABLES_EXCLUDE) == before  # nothing published
    con.close()

    totals = []
    result = runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cpu", limit=12, batch_size=4,
                            progress=lambda done, total: totals.append(total), model_id="resumed")
    assert set(totals) == {4} and result.predicted == 12
    assert query(store_copy, "SELECT count(*), min(status), max(status) FROM runs WHERE model_id = 'resumed'") == [
        (1, "done", "done")]
    resumed, first = _predictions(store_copy, "resumed"), _predictions(store_copy, "efficientnet-lite0")[:12]
    assert [r[:3] for r in resumed] == [r[:3] for r in first]  # another batch size: same classes,
    assert np.allclose([r[3] for r in resumed], [r[3] for r in first], atol=1e-5)  # float-rounding-close scores
    assert query(store_copy, "SELECT count(*) FROM prediction_staging") == [(0,)]


def test_shards_interleave(store_copy):
    runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cpu", limit=10, shard="1/2",
                   progress=False, model_id="sharded")
    assert [r[0] for r in _predictions(store_copy, "sharded")] == [1, 3, 5, 7, 9]
    assert query(store_copy, "SELECT shard FROM runs WHERE model_id = 'sharded'") == [("1/2",)]
    with pytest.raises(ValueError, match="shard='2/2' must be i/n with 0 <= i < n"):
        runner.parse_shard("2/2")


def _sample(class_id):
    return classes.sample_images()[class_id][0]


def test_folder_dataset_is_registered_with_single_labels(store_copy, tmp_path):
    root = tmp_path / "my-images"
    for cid in (0, 1, 207):
        wnid = classes.wnids()[cid]
        (root / wnid).mkdir(parents=True)
        shutil.copy(_sample(cid), root / wnid / f"photo{cid}.jpg")
    result = runner.predict("efficientnet-lite0", "folder", images=root, db=store_copy, device="cpu",
                            progress=False)
    assert result.dataset.startswith("folder:my-images-") and result.predicted == 3
    images = query(store_copy, "SELECT image_id, file_name, target, labels FROM images "
                                "WHERE dataset = ? ORDER BY image_id", [result.dataset])
    assert images == [(0, f"{classes.wnids()[0]}/photo0.jpg", 0, [0]), (1, f"{classes.wnids()[1]}/photo1.jpg", 1, [1]),
                      (2, f"{classes.wnids()[207]}/photo207.jpg", 207, [207])]
    # Same images as the sample run, so the same predictions.
    stored = {r[0]: r[1] for r in _predictions(store_copy, "efficientnet-lite0")}
    assert [r[1] for r in _predictions(store_copy, "efficientnet-lite0", result.dataset)][:2] == [stored[0], stored[1]]


def test_imagenet_val_reads_a_flat_folder(store_copy, tmp_path):
    shutil.copy(_sample(65), tmp_path / "ILSVRC2012_val_00000001.JPEG")  # image 0 is a sea snake (65)
    result = runner.predict("efficientnet-lite0", "imagenet-val", images=tmp_path, db=store_copy, device="cpu",
                            progress=False)
    assert result.predicted == 1 and result.selected == 1
    assert query(store_copy, "SELECT image_id FROM predictions WHERE dataset = 'imagenet-val'") == [(0,)]
    assert query(store_copy, "SELECT count(*) FROM pair_categories WHERE dataset = 'imagenet-val'") == [(1,)]


@pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")
def test_cuda_bf16_agrees_with_cpu(store_copy):
    result = runner.predict("efficientnet-lite0", "samples", db=store_copy, device="cuda", limit=50, progress=False,
                            model_id="lite0-cuda", batch_size=25, workers=2)
    assert result.device == "cuda" and result.predicted == 50
    cpu = [r[1] for r in _predictions(store_copy, "efficientnet-lite0")]
    gpu = [r[1] for r in _predictions(store_copy, "lite0-cuda")]
    assert np.mean(np.array(cpu) == np.array(gpu)) >= 0.9


@pytest.fixture(scope="module")
def sample_zoo(small_store, tmp_path_factory):
    """Lite0 and Lite2 on all 1000 sample images (slow: a few minutes on a CPU)."""
    path = tmp_path_factory.mktemp("zoo") / "zoo.duckdb"
    shutil.copy(small_store, path)
    for name in ("efficientnet-lite0", "efficientnet-lite2"):
        runner.predict(name, "samples", db=path, progress=False)
    return path


@pytest.mark.slow
def test_lite_models_on_all_sample_images(sample_zoo):
    top1 = dict(query(sample_zoo, """
        SELECT p.model_id, avg((p.prediction = i.target)::INTEGER) FROM predictions p
        JOIN images i USING (dataset, image_id) WHERE p.dataset = 'samples' GROUP BY 1"""))
    counts = dict(query(sample_zoo, "SELECT model_id, count(*) FROM predictions GROUP BY 1"))
    assert counts["efficientnet-lite0"] == counts["efficientnet-lite2"] == 1000
    assert top1["efficientnet-lite0"] >= 0.70
    assert top1["efficientnet-lite2"] > top1["efficientnet-lite0"]

"""Imports: the paper's preds.npz (ImageFolder order), logits and CSV; every bad input leaves the store as it was."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from analysis import cli
from analysis.knowledge import classes
from analysis.store import database, imports
from analysis.taxonomy import labelsets

N = classes.NUM_VAL


@pytest.fixture(scope="module")
def synthetic():
    """Val-order predictions (30% wrong), their top-5 and the ImageFolder order of the validation files."""
    rng = np.random.default_rng(7)
    targets = classes.val_targets().astype(np.int64)
    top1 = targets.copy()
    wrong = rng.random(N) < 0.3
    top1[wrong] = (targets[wrong] + rng.integers(1, 1000, wrong.sum())) % 1000
    top5 = (top1[:, None] + np.arange(5)[None, :]) % 1000
    order = np.lexsort((np.arange(N), targets))  # ImageFolder: by wnid (= class id order), then file name
    return {"targets": targets, "top1": top1, "top5": top5, "order": order}


def _paper_npz(path, s, *, probs=False, **override):
    arrays = {"top1": s["top1"][s["order"]].astype(np.int64), "top5": s["top5"][s["order"]].astype(np.int64)}
    if probs:
        p = np.zeros((N, 1000), dtype=np.float32)
        np.put_along_axis(p, arrays["top5"], np.array([0.5, 0.2, 0.1, 0.05, 0.04], dtype=np.float32)[None, :], axis=1)
        arrays["probs"] = p
    arrays.update(override)
    np.savez(path, **arrays)
    return path


def _checksums(path):
    con = database.connect(path, read_only=True)
    try:
        return database.table_checksums(con)
    finally:
        con.close()


def _refused(db, argv, capsys, *fragments):
    """Run the CLI, expect exit 2 with one error line holding every fragment, and an unchanged store."""
    before = _checksums(db)
    code = cli.main(argv + ["--db", str(db)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in err[0], (fragment, err[0])
    assert _checksums(db) == before
    return err[0]


def test_paper_layout_round_trip(store_copy, synthetic, tmp_path):
    folder = tmp_path / "my_model"
    folder.mkdir()
    npz = _paper_npz(folder / "preds.npz", synthetic, probs=True)
    (folder / "metadata.json").write_text(json.dumps(
        {"arch": "resnet50", "arch_family": "cnn", "training_data": "ImageNet-1k", "num_params": 25557032,
         "notes": "synthetic"}))
    assert cli.main(["import-predictions", str(npz), "--model-id", "synthetic", "--db", str(store_copy)]) == 0

    con = database.connect(store_copy, read_only=True)
    try:
        stored = con.execute("SELECT image_id, prediction, top5, confidence, top5_confidence FROM predictions "
                             "WHERE model_id = 'synthetic' ORDER BY image_id").fetchall()
        model = con.execute("SELECT arch, family, training_data, params, source, metadata FROM models "
                            "WHERE model_id = 'synthetic'").fetchall()[0]
    finally:
        con.close()
    assert [r[0] for r in stored] == list(range(N))
    assert np.array_equal([r[1] for r in stored], synthetic["top1"])  # mapped back to validation-file order
    assert np.array_equal(np.array([r[2] for r in stored]), synthetic["top5"])
    assert np.allclose([r[3] for r in stored], 0.5) and np.allclose(stored[0][4], [0.5, 0.2, 0.1, 0.05, 0.04])
    assert model[:5] == ("resnet50", "cnn", "ImageNet-1k", 25557032, "import")
    assert json.loads(model[5])["notes"] == "synthetic"

    out = tmp_path / "errors.csv"
    assert cli.main(["export", str(out), "--model", "synthetic", "--db", str(store_copy)]) == 0
    csv = pd.read_csv(out)
    evaluated = labelsets.real().evaluated
    expected = {(classes.val_file_name(i), int(synthetic["top1"][i])) for i in range(N)
                if synthetic["top1"][i] != synthetic["targets"][i] and evaluated[i]}
    assert set(zip(csv["file_name"], csv["prediction_id"])) == expected and len(csv) == len(expected)
    assert (csv["target_id"].to_numpy() == synthetic["targets"][csv["image_id"]]).all()
    assert (csv["top5"].str.split().str[0].astype(int) == csv["prediction_id"]).all()
    assert not csv["category"].isin(["correct", "not_evaluated"]).any()


def test_replace_is_needed_to_overwrite_a_model(store_copy, synthetic, tmp_path, capsys):
    npz = _paper_npz(tmp_path / "preds.npz", synthetic)
    assert cli.main(["import-predictions", str(npz), "--model-id", "m", "--db", str(store_copy)]) == 0
    capsys.readouterr()
    _refused(store_copy, ["import-predictions", str(npz), "--model-id", "m"], capsys,
             "model id 'm' already exists", "--replace")
    _refused(store_copy, ["import-predictions", str(npz), "--model-id", "efficientnet-lite0"], capsys,
             "model id 'efficientnet-lite0' already exists in the store (source run)")
    shifted = dict(synthetic, top1=(synthetic["top1"] + 1) % 1000, top5=(synthetic["top5"] + 1) % 1000)
    npz2 = _paper_npz(tmp_path / "preds2.npz", shifted)
    assert cli.main(["import-predictions", str(npz2), "--model-id", "m", "--replace", "--db", str(store_copy)]) == 0
    con = database.connect(store_copy, read_only=True)
    try:
        got = con.execute("SELECT prediction FROM predictions WHERE model_id = 'm' ORDER BY image_id").fetchnumpy()
        models = database.first(con, "SELECT models FROM pair_categories WHERE dataset = 'imagenet-val' AND image_id = 0 "
                                  "AND prediction = ?", [int(synthetic["top1"][0])])
    finally:
        con.close()
    assert np.array_equal(got["prediction"], shifted["top1"])
    assert models == (0,)  # the replaced prediction no longer counts


def test_bad_paper_files_are_refused(store_copy, synthetic, tmp_path, capsys):
    base = ["--model-id", "bad"]
    npz = _paper_npz(tmp_path / "shape.npz", synthetic, top5=synthetic["top5"][:, :4])
    _refused(store_copy, ["import-predictions", str(npz)] + base, capsys,
             str(npz), "field 'top5' has shape (50000, 4); expected (50000, 5)")

    top1, top5 = synthetic["top1"][synthetic["order"]].copy(), synthetic["top5"][synthetic["order"]].copy()
    top1[17], top5[17, 0] = 1000, 1000
    npz = _paper_npz(tmp_path / "range.npz", synthetic, top1=top1, top5=top5)
    name = classes.val_file_name(int(synthetic["order"][17]))
    _refused(store_copy, ["import-predictions", str(npz)] + base, capsys,
             str(npz), "field 'top1' row 17", name, "not a class id 0-999")

    good = _paper_npz(tmp_path / "good.npz", synthetic).read_bytes()
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(good[: len(good) // 2])
    _refused(store_copy, ["import-predictions", str(corrupt)] + base, capsys, str(corrupt), "not a readable .npz")

    npz = tmp_path / "nokeys.npz"
    np.savez(npz, predictions=synthetic["top1"])
    _refused(store_copy, ["import-predictions", str(npz)] + base, capsys, "missing field(s) ['top1', 'top5']")

    meta = tmp_path / "metadata.json"
    meta.write_text('{"params": "many"}')
    _refused(store_copy, ["import-predictions", str(tmp_path / "good.npz"), "--metadata", str(meta)] + base, capsys,
             str(meta), "field 'params'")


def test_logits_import_and_nan_rows(store_copy, tmp_path, capsys):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(1000, 1000)).astype(np.float32)
    logits[np.arange(1000), np.arange(1000)] += 8  # mostly correct on the sample images
    bad = logits.copy()
    bad[123, 5] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, bad)
    _refused(store_copy, ["import-predictions", str(path), "--model-id", "lg", "--dataset", "samples"], capsys,
             str(path), "field 'logits' row 123", classes.sample_images()[123][0].name, "NaN")
    path = tmp_path / "short.npy"
    np.save(path, logits[:999])
    _refused(store_copy, ["import-predictions", str(path), "--model-id", "lg", "--dataset", "samples"], capsys,
             "field 'logits' has shape (999, 1000); expected (1000, 1000)")
    path = tmp_path / "logits.npy"
    np.save(path, logits)
    out = imports.import_predictions(path, model_id="lg", dataset="samples", db=store_copy)
    assert out["predictions"] == 1000
    con = database.connect(store_copy, read_only=True)
    try:
        rows = con.execute("SELECT prediction, top5, confidence FROM predictions WHERE model_id = 'lg' "
                           "ORDER BY image_id").fetchall()
    finally:
        con.close()
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert [r[0] for r in rows] == logits.argmax(1).tolist()
    assert np.array_equal(np.array([r[1] for r in rows]), np.argsort(-logits, axis=1)[:, :5])
    assert np.allclose([r[2] for r in rows], probs.max(1), atol=1e-6)


def test_csv_import_and_bad_rows(store_copy, tmp_path, capsys):
    path = tmp_path / "preds.csv"
    pd.DataFrame({"file_name": ["ILSVRC2012_val_00000003.JPEG", "ILSVRC2012_val_00000001.JPEG"],
                  "prediction": [230, 65], "top5": ["230 231 232 233 234", "65 1 2 3 4"]}).to_csv(path, index=False)
    assert cli.main(["import-predictions", str(path), "--model-id", "c", "--db", str(store_copy)]) == 0
    con = database.connect(store_copy, read_only=True)
    try:
        assert con.execute("SELECT image_id, prediction, top5 FROM predictions WHERE model_id = 'c' ORDER BY 1"
                           ).fetchall() == [(0, 65, [65, 1, 2, 3, 4]), (2, 230, [230, 231, 232, 233, 234])]
    finally:
        con.close()
    capsys.readouterr()
    cases = [
        ({"file_name": ["ILSVRC2012_val_00000001.JPEG", "cat.jpg"], "prediction": [1, 2]},
         ["line 3", "field 'file_name' = 'cat.jpg'", "not an image of dataset imagenet-val"]),
        ({"file_name": ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG"], "prediction": [1, 1000]},
         ["line 3", "field 'prediction' = '1000'", "not a class id 0-999"]),
        ({"file_name": ["ILSVRC2012_val_00000001.JPEG"] * 2, "prediction": [1, 2]},
         ["line 3", "appears more than once"]),
        ({"file_name": ["ILSVRC2012_val_00000001.JPEG"], "prediction": [1], "top5": ["2 1 3 4 5"]},
         ["line 2", "field 'top5'", "must start with the row's prediction"]),
        ({"name": ["ILSVRC2012_val_00000001.JPEG"], "prediction": [1]}, ["missing column(s) ['file_name']"]),
    ]
    for i, (frame, fragments) in enumerate(cases):
        bad = tmp_path / f"bad{i}.csv"
        pd.DataFrame(frame).to_csv(bad, index=False)
        _refused(store_copy, ["import-predictions", str(bad), "--model-id", f"bad{i}"], capsys, str(bad), *fragments)


def test_import_waits_for_no_one_while_the_store_is_locked(store_copy, synthetic, tmp_path, capsys):
    npz = _paper_npz(tmp_path / "preds.npz", synthetic)
    before = _checksums(store_copy)
    script = textwrap.dedent(f"""
        import sys, duckdb
        con = duckdb.connect({str(store_copy)!r})
        print("locked", flush=True)
        sys.stdin.readline()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = cli.main(["import-predictions", str(npz), "--model-id", "x", "--db", str(store_copy)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1
        assert str(store_copy) in err[0] and "locked by another process" in err[0] and f"PID {holder.pid}" in err[0]
    finally:
        holder.communicate("\n", timeout=30)
    assert _checksums(store_copy) == before

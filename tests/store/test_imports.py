"""Imports: the paper's preds.npz (ImageFolder order), logits and CSV; every bad input leaves the store as it was."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import cli
from analysis.knowledge import classes
from analysis.store import database, imports
from analysis.taxonomy import labelsets
from tests.bad_inputs import BadInput, cases

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


def _refused(db, argv, capsys, case: BadInput, *fragments):
    """Run the CLI, expect exit 2 with one error line holding the case's message and every fragment, and the store
    as the case says (unchanged and still opening, or not created)."""
    before = _checksums(db) if case.store == "unchanged" else None
    code = cli.main(argv + ["--db", str(db)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    for fragment in (case.message, *fragments):
        assert fragment in err[0], (fragment, err[0])
    if case.store == "unchanged":
        assert _checksums(db) == before
    elif case.store == "no store created":
        assert not Path(db).exists() and not Path(db).parent.exists()
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


def _model_row(db, model_id):
    con = database.connect(db, read_only=True)
    try:
        row = con.execute("SELECT source, arch, family, training_data, params, metadata FROM models WHERE model_id = ?",
                          [model_id]).fetchall()[0]
        n = database.first(con, "SELECT count(*) FROM predictions WHERE model_id = ?", [model_id])[0]
    finally:
        con.close()
    return row[:5] + (json.loads(row[5]), n)


def test_replace_keeps_what_a_run_stored_and_predict_still_accepts_it(store_copy, tmp_path, capsys):
    source, arch, family, training_data, params, metadata, _ = _model_row(store_copy, "efficientnet-lite0")
    assert (source, family) == ("run", "cnn") and arch and params > 4_000_000
    sample_names = [p.name for p, _ in classes.sample_images()[:10]]
    path = tmp_path / "ten.csv"
    pd.DataFrame({"file_name": sample_names, "prediction": list(range(10))}).to_csv(path, index=False)
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"arch": arch, "notes": "re-scored"}))
    assert cli.main(["import-predictions", str(path), "--model-id", "efficientnet-lite0", "--dataset", "samples",
                     "--replace", "--partial", "--metadata", str(meta), "--db", str(store_copy)]) == 0
    row = _model_row(store_copy, "efficientnet-lite0")
    assert row[:5] == (source, arch, family, training_data, params)  # nothing the import did not give is lost
    assert row[5]["registry_name"] == metadata["registry_name"] and row[5]["notes"] == "re-scored"
    assert row[5]["format"] == "csv" and row[6] == 10
    # predict still accepts the id and completes it: images 10 and 11 are run, the 10 imported rows stay
    assert cli.main(["predict", "--model", "efficientnet-lite0", "--dataset", "samples", "--limit", "12",
                     "--device", "cpu", "--workers", "0", "--db", str(store_copy)]) == 0
    assert "2 images predicted" in capsys.readouterr().out
    assert _model_row(store_copy, "efficientnet-lite0")[6] == 12


def test_replace_of_an_import_keeps_fields_the_new_one_lacks(store_copy, tmp_path):
    npz = _samples_npz(tmp_path / "preds.npz")
    meta = tmp_path / "metadata.json"
    meta.write_text(json.dumps({"arch": "resnet50", "family": "cnn", "params": 25557032}))
    imports.import_predictions(npz, model_id="imp", dataset="samples", metadata=meta, db=store_copy)
    meta.write_text(json.dumps({"arch": "resnet50d", "training_data": "ImageNet-21k"}))
    imports.import_predictions(npz, model_id="imp", dataset="samples", metadata=meta, replace=True, db=store_copy)
    assert _model_row(store_copy, "imp")[:5] == ("import", "resnet50d", "cnn", "ImageNet-21k", 25557032)


def test_partial_csv_imports_only_its_rows(store_copy, tmp_path):
    path = tmp_path / "ten.csv"
    pd.DataFrame({"file_name": [classes.val_file_name(i) for i in range(10)], "prediction": [7] * 10}
                 ).to_csv(path, index=False)
    out = imports.import_predictions(path, model_id="ten", partial=True, db=store_copy)
    assert out["predictions"] == 10 and _model_row(store_copy, "ten")[6] == 10


def test_logits_import(store_copy, tmp_path):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(1000, 1000)).astype(np.float32)
    logits[np.arange(1000), np.arange(1000)] += 8  # mostly correct on the sample images
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


def test_csv_import(store_copy, tmp_path):
    path = tmp_path / "preds.csv"
    pd.DataFrame({"file_name": ["ILSVRC2012_val_00000003.JPEG", "ILSVRC2012_val_00000001.JPEG"],
                  "prediction": [230, 65], "top5": ["230 231 232 233 234", "65 1 2 3 4"]}).to_csv(path, index=False)
    assert cli.main(["import-predictions", str(path), "--model-id", "c", "--partial", "--db", str(store_copy)]) == 0
    con = database.connect(store_copy, read_only=True)
    try:
        assert con.execute("SELECT image_id, prediction, top5 FROM predictions WHERE model_id = 'c' ORDER BY 1"
                           ).fetchall() == [(0, 65, [65, 1, 2, 3, 4]), (2, 230, [230, 231, 232, 233, 234])]
    finally:
        con.close()


def test_csv_blocks_cover_the_whole_file(store_copy, tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "CSV_BLOCK_BYTES", 1 << 10)  # ~30 rows a block: 34 blocks
    names = [p.name for p, _ in classes.sample_images()]
    path = tmp_path / "all.csv"
    pd.DataFrame({"file_name": names[::-1], "prediction": [(i * 7) % 1000 for i in range(1000)],
                  "top5": [" ".join(str((i * 7 + k) % 1000) for k in range(5)) for i in range(1000)]}
                 ).to_csv(path, index=False)
    assert imports.import_predictions(path, model_id="blocks", dataset="samples", db=store_copy)["predictions"] == 1000
    con = database.connect(store_copy, read_only=True)
    try:
        rows = con.execute("SELECT i.file_name, p.prediction, p.top5 FROM predictions p JOIN images i "
                           "ON i.dataset = p.dataset AND i.image_id = p.image_id WHERE model_id = 'blocks'").fetchall()
    finally:
        con.close()
    expected = {names[999 - i]: (i * 7) % 1000 for i in range(1000)}
    assert {r[0]: r[1] for r in rows} == expected and all(r[2][0] == r[1] for r in rows)


# --- bad input ----------------------------------------------------------------------------------------------------

_BUILD: dict = {}


def _builds(case_id: str):
    """Register the function that writes case `case_id`'s input: (tmp_path, synthetic) -> (argv, extra fragments)."""
    def register(fn):
        _BUILD[case_id] = fn
        return fn
    return register


def _samples_npz(path, compressed=False, **override):
    top1 = np.arange(1000)  # the samples' ImageFolder order is their class order
    arrays = {"top1": top1, "top5": (top1[:, None] + np.arange(5)) % 1000, **override}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _import(path, *more, model_id="bad", dataset="samples"):
    return ["import-predictions", str(path), "--model-id", model_id, "--dataset", dataset, *more]


def _csv(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


_TENCH = "n01440764_tench.JPEG"  # a file name of the samples dataset


@_builds("import-npz-top5-shape")
def _(tmp_path, s):
    npz = _paper_npz(tmp_path / "shape.npz", s, top5=s["top5"][:, :4])
    return _import(npz, dataset="imagenet-val"), [str(npz)]


@_builds("import-npz-class-out-of-range")
def _(tmp_path, s):
    top1, top5 = s["top1"][s["order"]].copy(), s["top5"][s["order"]].copy()
    top1[17], top5[17, 0] = 1000, 1000
    npz = _paper_npz(tmp_path / "range.npz", s, top1=top1, top5=top5)
    return _import(npz, dataset="imagenet-val"), [str(npz), "field 'top1' row 17",
                                                  classes.val_file_name(int(s["order"][17]))]


@_builds("import-npz-truncated")
def _(tmp_path, s):
    good = _samples_npz(tmp_path / "good.npz").read_bytes()
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(good[: len(good) // 2])
    return _import(corrupt), [str(corrupt)]


@_builds("import-npz-deflate-corrupt")
def _(tmp_path, s):
    npz = _samples_npz(tmp_path / "deflate.npz", compressed=True)
    data = bytearray(npz.read_bytes())
    with zipfile.ZipFile(npz) as z:
        info = z.getinfo("top5.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # local header, then deflate data
    for i in range(start + info.compress_size // 3, start + info.compress_size // 3 + 16):
        data[i] ^= 0xFF
    npz.write_bytes(bytes(data))
    return _import(npz), [str(npz)]


@_builds("import-npz-zero-filled")
def _(tmp_path, s):
    npz = tmp_path / "zero.npz"
    npz.write_bytes(bytes(4096))
    return _import(npz), [str(npz)]


@_builds("import-npz-is-npy")
def _(tmp_path, s):
    npz = tmp_path / "renamed.npz"
    np.save(tmp_path / "logits.npy", np.zeros((1000, 1000), dtype=np.float32))
    (tmp_path / "logits.npy").rename(npz)
    return _import(npz), [str(npz), "--format logits"]


@_builds("import-npz-missing-fields")
def _(tmp_path, s):
    npz = tmp_path / "nokeys.npz"
    np.savez(npz, predictions=np.arange(1000))
    return _import(npz), [str(npz)]


@_builds("import-logits-given-npz")
def _(tmp_path, s):
    npz = _samples_npz(tmp_path / "preds.npz")
    return _import(npz, "--format", "logits"), [str(npz), "--format paper-npz"]


@_builds("import-logits-nan")
def _(tmp_path, s):
    logits = np.zeros((1000, 1000), dtype=np.float32)
    logits[123, 5] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, logits)
    return _import(path), [str(path), "field 'logits' row 123", classes.sample_images()[123][0].name]


@_builds("import-logits-short")
def _(tmp_path, s):
    path = tmp_path / "short.npy"
    np.save(path, np.zeros((999, 1000), dtype=np.float32))
    return _import(path), [str(path), "--partial"]


def _metadata(tmp_path, text):
    meta = tmp_path / "metadata.json"
    meta.write_text(text)
    return _import(_samples_npz(tmp_path / "good.npz"), "--metadata", str(meta)), [str(meta)]


_builds("import-metadata-params-string")(lambda tmp_path, s: _metadata(tmp_path, '{"params": "many"}'))
_builds("import-metadata-params-infinity")(lambda tmp_path, s: _metadata(tmp_path, '{"params": Infinity}'))
_builds("import-metadata-params-nan")(lambda tmp_path, s: _metadata(tmp_path, '{"arch": "x", "params": NaN}'))
_builds("import-metadata-params-1e23")(lambda tmp_path, s: _metadata(tmp_path, '{"num_params": 1e23}'))
_builds("import-metadata-number-overflow")(lambda tmp_path, s: _metadata(tmp_path, '{"notes": {"scores": [1, 1e999]}}'))
_builds("import-metadata-nested-10000")(
    lambda tmp_path, s: _metadata(tmp_path, '{"a": ' + "[" * 10_000 + "]" * 10_000 + "}"))
_builds("import-metadata-nested-40")(lambda tmp_path, s: _metadata(tmp_path, '{"a": ' + "[" * 40 + "]" * 40 + "}"))
_builds("import-metadata-arch-object")(lambda tmp_path, s: _metadata(tmp_path, '{"arch": {"name": "resnet"}}'))
_builds("import-metadata-not-json")(lambda tmp_path, s: _metadata(tmp_path, '{"arch": "resnet",}'))


@_builds("import-replace-conflicting-arch")
def _(tmp_path, s):
    meta = tmp_path / "metadata.json"
    meta.write_text('{"arch": "resnet50"}')
    npz = _samples_npz(tmp_path / "preds.npz")
    return _import(npz, "--metadata", str(meta), "--replace", model_id="efficientnet-lite0"), []


@_builds("import-model-id-exists")
def _(tmp_path, s):
    return _import(_samples_npz(tmp_path / "preds.npz"), model_id="efficientnet-lite0"), ["--replace"]


for _name, _char in [("newline", "\n"), ("tab", "\t"), ("nul", "\x00"), ("escape", "\x1b"), ("del", "\x7f"),
                     ("zero-width-space", "\u200b"), ("right-to-left-override", "\u202e")]:
    _builds(f"import-model-id-{_name}")(
        lambda tmp_path, s, c=_char: (_import(_samples_npz(tmp_path / "p.npz"), model_id=f"evil{c}id"),
                                      [f"U+{ord(c):04X}"]))


_CSV_CASES = {  # id -> (CSV text, extra fragments)
    "import-csv-unknown-file": (f"file_name,prediction\n{_TENCH},1\ncat.jpg,2\n", ["line 3", "'cat.jpg'"]),
    "import-csv-class-1000": (f"file_name,prediction\n{_TENCH},1000\n", ["line 2", "'1000'"]),
    "import-csv-duplicate-file": (f"file_name,prediction\n{_TENCH},1\n{_TENCH},2\n", ["line 3"]),
    "import-csv-top5-mismatch": (f"file_name,prediction,top5\n{_TENCH},1,2 1 3 4 5\n", ["line 2", "field 'top5'"]),
    "import-csv-missing-column": (f"name,prediction\n{_TENCH},1\n", []),
    "import-csv-header-only": ("file_name,prediction,top5\n", []),
    "import-csv-empty-file": ("", []),
    "import-csv-class-decimal": (f"file_name,prediction\n{_TENCH},473.0\n", ["line 2", "'473.0'"]),
    "import-csv-class-exponent": (f"file_name,prediction\n{_TENCH},1e2\n", ["line 2", "'1e2'"]),
    "import-csv-class-superscript": (f"file_name,prediction\n{_TENCH},²\n", ["line 2", "'²'"]),
    "import-csv-top5-superscript": (f"file_name,prediction,top5\n{_TENCH},2,2 ² 3 4 5\n", ["line 2"]),
    "import-csv-ragged-row": (f"file_name,prediction\n{_TENCH},1\nn01443537_goldfish.JPEG,1,2\n", ["line 3"]),
    "import-csv-repeated-column": (f"file_name,prediction,prediction\n{_TENCH},1,2\n", ["['prediction']"]),
    "import-csv-not-utf8": (f"file_name,prediction\n{_TENCH},1\ncaf\xe9.jpg,2\n".encode("latin-1"), []),
}
for _id, (_text, _extra) in _CSV_CASES.items():
    _builds(_id)(lambda tmp_path, s, t=_text, e=_extra: (_import(_csv(tmp_path, t)), [str(tmp_path / "bad.csv"), *e]))


@_builds("import-csv-covers-10-of-50000")
def _(tmp_path, s):
    rows = "".join(f"{classes.val_file_name(i)},{int(s['top1'][i])}\n" for i in range(10))
    path = _csv(tmp_path, "file_name,prediction\n" + rows)
    return _import(path, dataset="imagenet-val"), [str(path)]


@_builds("import-csv-bad-row-in-a-later-block")
def _(tmp_path, s):
    names = [p.name for p, _ in classes.sample_images()]
    rows = [f"{n},{i}" for i, n in enumerate(names)]
    rows[700] = f"{names[700]},7OO"
    return _import(_csv(tmp_path, "file_name,prediction\n" + "\n".join(rows) + "\n")), ["line 702", "'7OO'"]


BAD_IMPORTS = cases(
    BadInput("import-npz-top5-shape", "paper preds.npz", "top5 has 4 columns",
             "field 'top5' has shape (50000, 4); expected (50000, 5)"),
    BadInput("import-npz-class-out-of-range", "paper preds.npz", "a class id 1000 in top1", "not a class id 0-999"),
    BadInput("import-npz-truncated", "paper preds.npz", "cut in half", "not a readable .npz archive"),
    BadInput("import-npz-deflate-corrupt", "paper preds.npz", "flipped bytes inside a compressed member",
             "field 'top5' is damaged"),
    BadInput("import-npz-zero-filled", "paper preds.npz", "4 KiB of zero bytes", "not a NumPy file"),
    BadInput("import-npz-is-npy", "paper preds.npz", "a .npy array renamed .npz",
             "is a .npy array, not a .npz archive"),
    BadInput("import-npz-missing-fields", "paper preds.npz", "no top1/top5 arrays",
             "missing field(s) ['top1', 'top5']"),
    BadInput("import-logits-given-npz", "--format logits", "given a .npz archive",
             "is a .npz archive, not a .npy array"),
    BadInput("import-logits-nan", "logits .npy", "a NaN logit", "holds NaN or infinite values"),
    BadInput("import-logits-short", "logits .npy", "999 rows for 1000 images",
             "field 'logits' has shape (999, 1000); expected (1000, 1000)"),
    BadInput("import-metadata-params-string", "metadata.json", "params is a string",
             "field 'params' = 'many' must be a whole number of parameters"),
    BadInput("import-metadata-params-infinity", "metadata.json", "params is Infinity",
             "field 'params' = Infinity is not a finite number"),
    BadInput("import-metadata-params-nan", "metadata.json", "params is NaN",
             "field 'params' = NaN is not a finite number"),
    BadInput("import-metadata-params-1e23", "metadata.json", "num_params is 1e23",
             "field 'num_params' = 1e+23 must be a whole number of parameters from 0 to 1e+13"),
    BadInput("import-metadata-number-overflow", "metadata.json", "a nested number 1e999 (a float overflow)",
             "field 'notes.scores[1]' = inf is not a finite number"),
    BadInput("import-metadata-nested-10000", "metadata.json", "arrays nested 10,000 levels deep",
             "is nested too deeply to read"),
    BadInput("import-metadata-nested-40", "metadata.json", "arrays nested 40 levels deep",
             "is nested more than 32 levels deep"),
    BadInput("import-metadata-arch-object", "metadata.json", "arch is an object", "field 'arch' must be a string"),
    BadInput("import-metadata-not-json", "metadata.json", "a trailing comma", "not readable JSON"),
    BadInput("import-replace-conflicting-arch", "--replace of a model from a run", "metadata.json gives another arch",
             "is stored from a run with arch 'efficientnet_lite0', but this import gives arch 'resnet50'"),
    BadInput("import-model-id-exists", "--model-id", "an id already stored, without --replace",
             "model id 'efficientnet-lite0' already exists in the store (source run)"),
    BadInput("import-model-id-newline", "--model-id", "contains a newline",
             "contains the control or invisible character"),
    BadInput("import-model-id-tab", "--model-id", "contains a tab", "contains the control or invisible character"),
    BadInput("import-model-id-nul", "--model-id", "contains NUL", "contains the control or invisible character"),
    BadInput("import-model-id-escape", "--model-id", "contains ESC (a terminal escape)",
             "contains the control or invisible character"),
    BadInput("import-model-id-del", "--model-id", "contains DEL", "contains the control or invisible character"),
    BadInput("import-model-id-zero-width-space", "--model-id", "contains a zero-width space",
             "contains the control or invisible character"),
    BadInput("import-model-id-right-to-left-override", "--model-id",
             "contains U+202E (reverses the text shown after it)",
             "contains the control or invisible character"),
    BadInput("import-csv-unknown-file", "predictions CSV", "a file name not in the dataset",
             "is not an image of dataset samples"),
    BadInput("import-csv-class-1000", "predictions CSV", "prediction 1000", "is not a class id 0-999"),
    BadInput("import-csv-duplicate-file", "predictions CSV", "one file name twice", "appears more than once"),
    BadInput("import-csv-top5-mismatch", "predictions CSV", "top5 not starting with the prediction",
             "must start with the row's prediction"),
    BadInput("import-csv-missing-column", "predictions CSV", "no file_name column", "missing column(s) ['file_name']"),
    BadInput("import-csv-header-only", "predictions CSV", "a header and no rows", "no rows, only a header"),
    BadInput("import-csv-empty-file", "predictions CSV", "0 bytes", "is empty; expected a header line"),
    BadInput("import-csv-class-decimal", "predictions CSV", "prediction 473.0", "is not an integer class id"),
    BadInput("import-csv-class-exponent", "predictions CSV", "prediction 1e2", "is not an integer class id"),
    BadInput("import-csv-class-superscript", "predictions CSV", "prediction ² (superscript two)",
             "is not an integer class id"),
    BadInput("import-csv-top5-superscript", "predictions CSV", "a ² among the top-5 ids",
             "must be 5 space-separated class ids 0-999"),
    BadInput("import-csv-ragged-row", "predictions CSV", "a row with more fields than the header",
             "3 fields where the header has 2"),
    BadInput("import-csv-repeated-column", "predictions CSV", "two prediction columns",
             "appear more than once in the header"),
    BadInput("import-csv-not-utf8", "predictions CSV", "Latin-1 bytes in a file name", "not a readable CSV"),
    BadInput("import-csv-covers-10-of-50000", "predictions CSV", "10 rows for the 50,000 validation images",
             "covers 10 of the 50000 images of imagenet-val (49990 missing); pass --partial"),
    BadInput("import-csv-bad-row-in-a-later-block", "predictions CSV", "a bad id in row 701 (a later block than the "
             "first)", "is not an integer class id"),
)


@pytest.mark.parametrize("case", BAD_IMPORTS)
def test_bad_import_is_refused(case, store_copy, synthetic, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(imports, "CSV_BLOCK_BYTES", 1 << 12)  # several blocks even for small files
    argv, fragments = _BUILD[case.id](tmp_path, synthetic)
    _refused(store_copy, argv, capsys, case, *fragments)


@pytest.mark.parametrize("case", cases(
    BadInput("import-db-mistyped", "--db", "a path with no store (a typo)", "does not exist; build it first",
             store="no store created")))
def test_import_into_a_missing_store_creates_nothing(case, tmp_path, capsys):
    missing = tmp_path / "typo" / "errors.duckdb"
    _refused(missing, _import(_samples_npz(tmp_path / "preds.npz")), capsys, case, str(missing))


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

"""`import-paper-artefacts`: the paper's zoo layout (folder or streamed archive) round-trips into the store, resumes,
never reads probs or a pickle, and refuses every bad input with one line and the store unchanged."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from analysis import cli
from analysis.knowledge import classes
from analysis.knowledge.fetch import sha256_of
from analysis.store import database, paper_artefacts
from tests.bad_inputs import BadInput, cases

N = classes.NUM_VAL
MODELS = {  # model id -> metadata fields besides model_id
    "resnet50.a1_in1k": {"arch": "resnet", "arch_family": "cnn", "training_data": "ImageNet-1k (1.2M)",
                         "num_params": 25557032},
    "facebook/convnext-base-224": {"arch": "convnext", "arch_family": "cnn", "training_data": "ImageNet-1k (1.2M)",
                                   "num_params": 88591464},
    "vit_base_patch16_224.augreg_in21k": {"arch": "vit", "arch_family": "transformer",
                                          "training_data": "ImageNet-21k (14M)", "num_params": 86567656},
    "mixer_b16_224.goog_in21k": {"arch": "mixer", "arch_family": "mlp", "training_data": "ImageNet-21k (14M)",
                                 "num_params": 59880472},
}


@pytest.fixture(scope="module")
def zoo():
    """Val-order top-1/top-5 of each model (mistakes shared between models) and the ImageFolder order."""
    rng = np.random.default_rng(12)
    targets = classes.val_targets().astype(np.int64)
    confusers = (targets[:, None] + rng.integers(1, 1000, (N, 3))) % 1000
    preds = {}
    for model_id in MODELS:
        top1 = targets.copy()
        wrong = rng.random(N) < rng.uniform(0.15, 0.4)
        top1[wrong] = confusers[wrong, rng.integers(0, 3, wrong.sum())]
        preds[model_id] = (top1, (top1[:, None] + np.arange(5)[None, :] * 7) % 1000)
    order = np.lexsort((np.arange(N), targets))  # ImageFolder: by wnid (= class id order), then file name
    wnids = classes.wnids()
    files = np.array([f"{wnids[targets[i]]}/{classes.val_file_name(i)}" for i in order])
    return {"targets": targets, "order": order, "files": files, "preds": preds}


def _npz(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def _layout(root: Path, zoo, models=tuple(MODELS), *, samples: dict | None = None, preds: dict | None = None,
            metadata: dict | None = None) -> Path:
    """`root/imagenet/...` exactly as the paper's artefacts; `samples` / `preds` / `metadata` override fields."""
    imagenet = root / "imagenet"
    _npz(imagenet / "samples_info.npz", **{"sample_files": zoo["files"], "targets": zoo["targets"][zoo["order"]],
                                            **(samples or {})})
    for model_id in models:
        top1, top5 = zoo["preds"][model_id]
        folder = imagenet / model_id.replace("/", "--")
        _npz(folder / "preds.npz", **{"top1": top1[zoo["order"]], "top5": top5[zoo["order"]],
                                      "probs": np.zeros((N, 2), np.float16), **(preds or {})})
        meta = {"model_id": model_id, **MODELS[model_id], "source": "timm", "extra_annotations": ["synthetic"],
                "top1_val_acc": float(np.mean(top1 == zoo["targets"])), **(metadata or {})}
        (folder / "metadata.json").write_text(json.dumps(meta))
    (root / "errors_analysis.pkl").write_bytes(b"not read")
    return root


def _tar(folder: Path, archive: Path, *, prefix: str = "artefacts", samples_last: bool = False,
         extra: dict[str, bytes] | None = None, links: dict[str, tuple[bytes, str]] | None = None) -> Path:
    """A tar.gz: raw `extra` members and `links` first, then `folder` under `prefix/` (samples_info first or last)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    files.sort(key=lambda p: (p.name == "samples_info.npz") == samples_last)
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (kind, target) in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, target
            tar.addfile(info)
        for path in files:
            tar.add(path, f"{prefix}/{path.relative_to(folder).as_posix()}".lstrip("/"))
    return archive


def _checksums(db: Path, exclude: tuple[str, ...] = ()) -> dict:
    con = database.connect(db, read_only=True)
    try:
        return database.table_checksums(con, exclude=exclude)
    finally:
        con.close()


def _run(db: Path, path: Path, capsys) -> tuple[int, str, str]:
    code = cli.main(["import-paper-artefacts", str(path), "--db", str(db)])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_stored(db: Path, zoo, models=tuple(MODELS)) -> None:
    con = database.connect(db, read_only=True)
    try:
        for model_id in models:
            got = con.execute("SELECT image_id, prediction, top5 FROM predictions WHERE model_id = ? "
                              "AND dataset = 'imagenet-val' ORDER BY image_id", [model_id]).fetchnumpy()
            top1, top5 = zoo["preds"][model_id]
            assert np.array_equal(got["image_id"], np.arange(N))
            assert np.array_equal(got["prediction"], top1)
            assert np.array_equal(np.stack(got["top5"]), top5)
            row = con.execute("SELECT arch, family, training_data, params, source, metadata FROM models "
                              "WHERE model_id = ?", [model_id]).fetchone()
            meta = MODELS[model_id]
            assert row[:5] == (meta["arch"], meta["arch_family"], meta["training_data"], meta["num_params"], "paper")
            stored_meta = json.loads(row[5])
            assert stored_meta["model_dir_id"] == model_id.replace("/", "--")
            assert stored_meta["extra_annotations"] == ["synthetic"] and stored_meta["source"] == "timm"
        # every distinct pair classified exactly once, and its model count is the number of models predicting it
        pairs = con.execute("""
            SELECT count(*), count(c.category), sum((c.models = p.n)::INT) FROM (
                SELECT image_id, prediction, count(*) AS n FROM predictions WHERE dataset = 'imagenet-val' GROUP BY ALL
            ) p LEFT JOIN pair_categories c ON c.dataset = 'imagenet-val' AND c.image_id = p.image_id
                AND c.prediction = p.prediction""").fetchone()
        assert pairs[0] == pairs[1] == pairs[2] >= N
        stored_pairs = con.execute("SELECT count(*) FROM pair_categories WHERE dataset = 'imagenet-val'").fetchone()
        assert stored_pairs[0] == pairs[0]
        summary = con.execute("SELECT count(DISTINCT model_id) FROM model_summary WHERE dataset = 'imagenet-val'")
        assert summary.fetchone()[0] == len(models)
    finally:
        con.close()


@pytest.mark.parametrize("form", ["folder", "folder-imagenet", "models-imagenet.tar.gz", "samples-last.tar.gz",
                                  "no-prefix.tar.gz"])
def test_round_trip_then_a_rerun_is_a_no_op(form, store_copy, zoo, tmp_path, capsys):
    folder = _layout(tmp_path / "artefacts", zoo)
    path = {"folder": folder, "folder-imagenet": folder / "imagenet",
            "models-imagenet.tar.gz": _tar(folder, tmp_path / "models-imagenet.tar.gz"),
            "samples-last.tar.gz": _tar(folder, tmp_path / "samples-last.tar.gz", samples_last=True),
            "no-prefix.tar.gz": _tar(folder, tmp_path / "no-prefix.tar.gz", prefix="")}[form]
    code, out, err = _run(store_copy, path, capsys)
    assert code == 0, err
    assert f"imported {len(MODELS)} models" in out and "0 already stored" in out
    if form.endswith(".tar.gz"):
        assert "no pinned sha256" in out
    _assert_stored(store_copy, zoo)

    before = _checksums(store_copy)
    code, out, err = _run(store_copy, path, capsys)
    assert code == 0, err
    assert "imported 0 models" in out and f"{len(MODELS)} already stored, skipped" in out
    assert _checksums(store_copy) == before


def test_the_pinned_archive_is_verified_first(store_copy, zoo, tmp_path):
    archive = _tar(_layout(tmp_path / "artefacts", zoo, list(MODELS)[:2]), tmp_path / "artefacts.tar.gz")
    messages = []
    out = paper_artefacts.import_artefacts(archive, db=store_copy, progress=False, log=messages.append,
                                           expected_sha256=sha256_of(archive, progress=False))
    assert out["imported"] == 2 and "verified" in messages[0]
    _assert_stored(store_copy, zoo, list(MODELS)[:2])


def test_an_interrupted_import_resumes_and_ends_as_one_run(store_copy, small_store, zoo, tmp_path, capsys):
    archive = _tar(_layout(tmp_path / "artefacts", zoo), tmp_path / "models-imagenet.tar.gz")
    data = archive.read_bytes()
    cut = tmp_path / "cut" / "models-imagenet.tar.gz"  # a download that broke off in the third model
    cut.parent.mkdir()
    cut.write_bytes(data[: int(len(data) * 0.7)])
    code, out, err = _run(store_copy, cut, capsys)
    assert code == 2 and "cannot be read as a tar archive" in err and err.count("\n") == 1
    con = database.connect(store_copy, read_only=True)
    kept = con.execute("SELECT count(*) FROM models WHERE source = 'paper'").fetchone()[0]
    con.close()
    assert 1 <= kept < len(MODELS)

    code, out, err = _run(store_copy, archive, capsys)
    assert code == 0, err
    assert f"imported {len(MODELS) - kept} models" in out and f"{kept} already stored, skipped" in out
    _assert_stored(store_copy, zoo)
    one_go = tmp_path / "one-go.duckdb"
    shutil.copy(small_store, one_go)
    assert _run(one_go, archive, capsys)[0] == 0
    assert _checksums(store_copy, exclude=("models",)) == _checksums(one_go, exclude=("models",))


def test_a_bad_model_stops_the_import_and_the_models_before_it_stay(store_copy, zoo, tmp_path, capsys):
    good = _layout(tmp_path / "good", zoo)
    bad = _layout(tmp_path / "bad", zoo)
    last = sorted(MODELS, key=lambda m: m.replace("/", "--"))[-1]
    _npz(bad / "imagenet" / last.replace("/", "--") / "preds.npz", top1=np.full(N, 1000), top5=np.zeros((N, 5), int))
    code, out, err = _run(store_copy, bad, capsys)
    assert code == 2 and err.count("\n") == 1 and "not a class id 0-999" in err
    assert f"{last.replace('/', '--')}/preds.npz" in err
    con = database.connect(store_copy, read_only=True)
    stored = {r[0] for r in con.execute("SELECT model_id FROM models WHERE source = 'paper'").fetchall()}
    con.close()
    assert stored == set(MODELS) - {last}
    code, out, err = _run(store_copy, good, capsys)
    assert code == 0 and "imported 1 models" in out
    _assert_stored(store_copy, zoo)


class _Boom:
    """Unpickling this creates the marker file: the import must never unpickle anything."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_probs_and_pickles_are_never_read(store_copy, zoo, tmp_path, capsys):
    marker = tmp_path / "unpickled"
    folder = _layout(tmp_path / "artefacts", zoo, list(MODELS)[:1],
                     preds={"probs": np.array([_Boom(marker)] * 3, dtype=object)})
    (folder / "imagenet" / "errors_analysis.pkl").write_bytes(pickle.dumps(_Boom(marker)))
    for path in (folder, _tar(folder, tmp_path / "models-imagenet.tar.gz")):
        code, out, err = _run(store_copy, path, capsys)
        assert code == 0, err
    assert not marker.exists()
    _assert_stored(store_copy, zoo, list(MODELS)[:1])


# --- bad input: each refused with one line, the store unchanged -------------------------------------------------

ONE = list(MODELS)[0]  # the only model of most bad archives, so nothing is written before the problem shows
ONE_DIR = ONE.replace("/", "--")


def _archive(tmp_path, zoo, **layout) -> Path:
    return _tar(_layout(tmp_path / "artefacts", zoo, [ONE], **layout), tmp_path / "models-imagenet.tar.gz")


def _without(tmp_path, zoo, name: str, *, archive: bool) -> Path:
    folder = _layout(tmp_path / "artefacts", zoo, [ONE])
    (folder / "imagenet" / ONE_DIR / name).unlink()
    return _tar(folder, tmp_path / "models-imagenet.tar.gz") if archive else folder


def _member(tmp_path, zoo, name: str, data: bytes = b"x") -> Path:
    folder = _layout(tmp_path / "artefacts", zoo, [ONE])
    return _tar(folder, tmp_path / "models-imagenet.tar.gz", extra={name: data})


def _link(tmp_path, zoo, kind: bytes) -> Path:
    folder = _layout(tmp_path / "artefacts", zoo, [ONE])
    (folder / "imagenet" / ONE_DIR / "preds.npz").unlink()
    return _tar(folder, tmp_path / "models-imagenet.tar.gz",
                links={f"artefacts/imagenet/{ONE_DIR}/preds.npz": (kind, "/etc/passwd")})


def _damaged(tmp_path, zoo) -> Path:
    archive = _archive(tmp_path, zoo)
    data = bytearray(archive.read_bytes())
    data[200:400] = bytes(200)  # inside the first member's compressed bytes
    archive.write_bytes(bytes(data))
    return archive


def _folder_symlink(tmp_path, zoo) -> Path:
    folder = _layout(tmp_path / "artefacts", zoo, [ONE])
    preds = folder / "imagenet" / ONE_DIR / "preds.npz"
    preds.rename(tmp_path / "elsewhere.npz")
    preds.symlink_to(tmp_path / "elsewhere.npz")
    return folder


def _twice(tmp_path, zoo) -> Path:
    folder = _layout(tmp_path / "artefacts", zoo, [ONE])
    data = (folder / "imagenet" / ONE_DIR / "preds.npz").read_bytes()
    return _tar(folder, tmp_path / "models-imagenet.tar.gz", extra={f"copy/imagenet/{ONE_DIR}/preds.npz": data},
                samples_last=True)


def _samples(zoo, **change):
    files, targets = zoo["files"].copy(), zoo["targets"][zoo["order"]].copy()
    for row, name in change.get("files", {}).items():
        files[row] = name
    for row, target in change.get("targets", {}).items():
        targets[row] = target
    return {"sample_files": files, "targets": targets}


def _top1(zoo, **change):
    top1, top5 = (a[zoo["order"]].copy() for a in zoo["preds"][ONE])
    for row, value in change.items():
        top1[int(row[1:])] = value
    return {"top1": top1, "top5": top5}


def _text_file(path: Path) -> Path:
    path.write_text("not an archive\n")
    return path


def _no_samples_info(tmp_path, zoo) -> Path:
    folder = _layout(tmp_path / "artefacts", zoo, [ONE])
    (folder / "imagenet" / "samples_info.npz").unlink()
    return _tar(folder, tmp_path / "models-imagenet.tar.gz")


def _no_top5(tmp_path, zoo) -> Path:
    folder = _layout(tmp_path / "artefacts", zoo, [ONE])
    top1 = zoo["preds"][ONE][0][zoo["order"]]
    _npz(folder / "imagenet" / ONE_DIR / "preds.npz", top1=top1, probs=np.zeros((N, 2), np.float16))
    return _tar(folder, tmp_path / "models-imagenet.tar.gz")


def _garbage_preds(tmp_path, zoo) -> Path:
    folder = _layout(tmp_path / "artefacts", zoo, [ONE])
    (folder / "imagenet" / ONE_DIR / "preds.npz").write_bytes(b"PK\x03\x04 not really a zip")
    return _tar(folder, tmp_path / "models-imagenet.tar.gz")


def _bad_metadata(tmp_path, zoo, data: bytes) -> Path:
    folder = _layout(tmp_path / "artefacts", zoo, [ONE])
    (folder / "imagenet" / ONE_DIR / "metadata.json").write_bytes(data)
    return folder


_BAD = [
    (BadInput("artefacts-import-wrong-sha256", "artefacts.tar.gz", "a different archive under the pinned name",
              "it is a different or damaged file"),
     lambda t, z: _tar(_layout(t / "artefacts", z, [ONE]), t / "artefacts.tar.gz")),
    (BadInput("artefacts-import-damaged-gzip", "artefacts archive", "gzip data damaged in its first member",
              "cannot be read as a tar archive"), _damaged),
    (BadInput("artefacts-import-not-an-archive", "artefacts archive", "a text file named models-imagenet.tar.gz",
              "cannot be read as a tar archive"),
     lambda t, z: _text_file(t / "models-imagenet.tar.gz")),
    (BadInput("artefacts-import-parent-path", "artefacts archive", "a member named ../escape",
              "has an unsafe path"), lambda t, z: _member(t, z, "artefacts/../../escape")),
    (BadInput("artefacts-import-absolute-path", "artefacts archive", "a member with an absolute path",
              "has an unsafe path"), lambda t, z: _member(t, z, "/tmp/escape")),
    (BadInput("artefacts-import-symlink", "artefacts archive", "a model's preds.npz is a symbolic link",
              "is not a regular file (a link or a device)"), lambda t, z: _link(t, z, tarfile.SYMTYPE)),
    (BadInput("artefacts-import-hardlink", "artefacts archive", "a model's preds.npz is a hard link",
              "is not a regular file (a link or a device)"), lambda t, z: _link(t, z, tarfile.LNKTYPE)),
    (BadInput("artefacts-import-folder-symlink", "artefacts folder", "a model's preds.npz is a symbolic link",
              "is a symbolic link; refusing it"), _folder_symlink),
    (BadInput("artefacts-import-no-metadata", "artefacts folder", "a model folder without metadata.json",
              "has no metadata.json"), lambda t, z: _without(t, z, "metadata.json", archive=False)),
    (BadInput("artefacts-import-no-preds", "artefacts archive", "a model folder without preds.npz",
              "has metadata.json but no preds.npz"), lambda t, z: _without(t, z, "preds.npz", archive=True)),
    (BadInput("artefacts-import-no-samples-info", "artefacts archive", "no imagenet/samples_info.npz",
              "has no imagenet/samples_info.npz"),
     _no_samples_info),
    (BadInput("artefacts-import-not-artefacts", "artefacts folder", "a folder without imagenet/",
              "has no imagenet/samples_info.npz"), lambda t, z: t),
    (BadInput("artefacts-import-missing-path", "PATH", "a path that does not exist", "does not exist; pass the"),
     lambda t, z: t / "nowhere.tar.gz"),
    (BadInput("artefacts-import-twice", "artefacts archive", "the same model folder under two prefixes",
              "has a second preds.npz"), _twice),
    (BadInput("artefacts-import-top1-shape", "preds.npz", "top1 of 49,999 rows",
              "has shape (49999,); expected (50000,)"),
     lambda t, z: _archive(t, z, preds={"top1": np.zeros(N - 1, int)})),
    (BadInput("artefacts-import-top5-shape", "preds.npz", "top5 with 3 columns", "has shape (50000, 3)"),
     lambda t, z: _archive(t, z, preds={"top5": np.zeros((N, 3), int)})),
    (BadInput("artefacts-import-class-1000", "preds.npz", "a top1 class id of 1000", "holds 1000, not a class id"),
     lambda t, z: _archive(t, z, preds=_top1(z, r17=1000))),
    (BadInput("artefacts-import-negative-class", "preds.npz", "a top5 class id of -1", "holds -1, not a class id"),
     lambda t, z: _archive(t, z, preds={"top5": np.full((N, 5), -1)})),
    (BadInput("artefacts-import-float-classes", "preds.npz", "float top1", "expected integer class ids 0-999"),
     lambda t, z: _archive(t, z, preds={"top1": np.zeros(N, np.float32)})),
    (BadInput("artefacts-import-top1-not-top5", "preds.npz", "top1 differs from top5[0]", "differs from top5[0]"),
     lambda t, z: _archive(t, z, preds=_top1(z, r5=999 - int(z["preds"][ONE][0][z["order"][5]])))),
    (BadInput("artefacts-import-pickled-top1", "preds.npz", "top1 as a pickled object array",
              "is a pickled object array; refusing to unpickle it"),
     lambda t, z: _archive(t, z, preds={"top1": np.array([1, "x"], dtype=object)})),
    (BadInput("artefacts-import-no-top5", "preds.npz", "no top5 field", "has no field 'top5'"),
     _no_top5),
    (BadInput("artefacts-import-npz-garbage", "preds.npz", "bytes that are not a zip file",
              "is not a readable .npz file"),
     _garbage_preds),
    (BadInput("artefacts-import-targets-disagree", "samples_info.npz", "a target that differs from the store's",
              "the archive's images are not this store's validation set"),
     lambda t, z: _archive(t, z, samples=_samples(z, targets={123: (int(z["targets"][z["order"][123]]) + 1) % 1000}))),
    (BadInput("artefacts-import-samples-unknown-file", "samples_info.npz", "a file that is not a validation image",
              "is not an ImageNet validation file"),
     lambda t, z: _archive(t, z, samples=_samples(z, files={9: "n01440764/holiday.JPEG"}))),
    (BadInput("artefacts-import-samples-duplicate", "samples_info.npz", "the same file twice",
              "appears more than once"),
     lambda t, z: _archive(t, z, samples=_samples(z, files={9: z["files"][10]}))),
    (BadInput("artefacts-import-samples-short", "samples_info.npz", "49,999 files", "expected 50000 file names"),
     lambda t, z: _archive(t, z, samples={"sample_files": z["files"][:-1]})),
    (BadInput("artefacts-import-pickled-samples", "samples_info.npz", "sample_files as a pickled object array",
              "is a pickled object array; refusing to unpickle it"),
     lambda t, z: _archive(t, z, samples={"sample_files": z["files"].astype(object)})),
    (BadInput("artefacts-import-metadata-not-json", "metadata.json", "text that is not JSON", "is not readable JSON"),
     lambda t, z: _bad_metadata(t, z, b"{model_id: resnet")),
    (BadInput("artefacts-import-metadata-other-model", "metadata.json", "the model id of another folder",
              "is not the model of folder"), lambda t, z: _archive(t, z, metadata={"model_id": "resnet18"})),
    (BadInput("artefacts-import-metadata-family", "metadata.json", "arch_family 'rnn'",
              "is not one of mlp, cnn, transformer, hybrid"),
     lambda t, z: _archive(t, z, metadata={"arch_family": "rnn"})),
    (BadInput("artefacts-import-metadata-params", "metadata.json", "num_params -5",
              "must be a whole number of parameters"), lambda t, z: _archive(t, z, metadata={"num_params": -5})),
]


_SETUPS = {case.id: setup for case, setup in _BAD}


@pytest.mark.parametrize("case", cases(*(case for case, _ in _BAD)))
def test_bad_artefacts_are_refused_and_the_store_is_unchanged(case, store_copy, zoo, tmp_path, capsys):
    path = _SETUPS[case.id](tmp_path, zoo)
    before = _checksums(store_copy)
    code, out, err = _run(store_copy, path, capsys)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert case.message in err, err
    assert _checksums(store_copy) == before


@pytest.mark.parametrize("case", cases(BadInput("artefacts-import-no-store", "--db", "a store that does not exist",
                                                "does not exist; create it with", store="no store created")))
def test_a_missing_store_is_not_created(case, zoo, tmp_path, capsys):
    db = tmp_path / "none.duckdb"
    code, out, err = _run(db, _layout(tmp_path / "artefacts", zoo, [ONE]), capsys)
    assert code == 2 and err.count("\n") == 1 and case.message in err, err
    assert not db.exists()


def test_models_are_written_in_batches_and_a_bad_one_keeps_those_before(store_copy, zoo, tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.setattr(paper_artefacts, "BATCH_MODELS", 2)  # 4 models: batches of 2, the bad last one alone
    bad = _layout(tmp_path / "bad", zoo)
    last = sorted(MODELS, key=lambda m: m.replace("/", "--"))[-1]
    _npz(bad / "imagenet" / last.replace("/", "--") / "preds.npz", top1=np.zeros(N, int), top5=np.ones((N, 5), int))
    code, out, err = _run(store_copy, _tar(bad, tmp_path / "models-imagenet.tar.gz"), capsys)
    assert code == 2 and "differs from top5[0]" in err and err.count("\n") == 1
    con = database.connect(store_copy, read_only=True)
    try:  # the first batch (2 models) was committed by size, the third model by the error
        stored = {r[0] for r in con.execute("SELECT model_id FROM models WHERE source = 'paper'").fetchall()}
        transactions = con.execute("SELECT count(DISTINCT created_at) FROM models WHERE source = 'paper'").fetchone()
    finally:
        con.close()
    assert stored == set(MODELS) - {last} and transactions[0] == 2
    code, out, err = _run(store_copy, _layout(tmp_path / "good", zoo), capsys)
    assert code == 0 and "imported 1 models" in out and "3 already stored" in out
    _assert_stored(store_copy, zoo)

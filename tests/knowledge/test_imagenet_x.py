"""ImageNet-X: the pinned annotation files of the imagenet-x package, their load at build, the factor filter and the
per-category factor ratios, on predictions imported for validation file names (the demo has no validation images)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import cli
from analysis.errors import UserError
from analysis.knowledge import classes, imagenet_x
from analysis.store import database, export, factors, imports
from analysis.store.filters import ErrorFilter
from tests.bad_inputs import BadInput, cases

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not imagenet_x.available(), reason="imagenet-x is not installed (requirements.txt)")
N = 3000  # imported validation predictions


@pytest.fixture(scope="module")
def annotations() -> pd.DataFrame:
    return imagenet_x.load()


def test_annotations_are_the_pinned_48868_images_with_our_targets(annotations):
    assert len(annotations) == imagenet_x.IMAGES and annotations["image_id"].is_unique
    assert annotations["image_id"].is_monotonic_increasing
    # the file's class is our validation target for every image
    assert (classes.val_targets()[annotations["image_id"].to_numpy()] == annotations["class_id"].to_numpy()).all()
    assert set(f for fs in annotations["factors"] for f in fs) == set(imagenet_x.FACTORS)
    assert annotations["top_factor"].notna().sum() == imagenet_x.IMAGES - 2
    first = annotations.iloc[0]
    assert first["file_name"] == "ILSVRC2012_val_00000001.JPEG" and first["factors"] == [
        "background", "pose", "subcategory", "texture"] and first["top_factor"] == "background"
    assert first["justification"] == "A coral reef sea snake is on the sand"


def test_load_imports_neither_the_package_nor_torch():
    code = ("import sys; from analysis.knowledge import imagenet_x; imagenet_x.load(); "
            "assert 'imagenet_x' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True)


def _tampered_package(tmp_path: Path) -> Path:
    """A copy of the installed package folder whose multi-factor file has one flag changed."""
    folder = tmp_path / "site" / "imagenet_x"
    shutil.copytree(imagenet_x.annotation_dir() / "annotations", folder / "annotations")
    (folder / "__init__.py").write_text("raise ImportError('never imported')\n")
    path = folder / imagenet_x.MULTI_FACTOR
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"pose":1', b'"pose":0', 1))
    return folder


def test_a_changed_annotation_file_is_named(tmp_path):
    folder = _tampered_package(tmp_path)
    with pytest.raises(UserError, match="imagenet_x_val_multi_factor.jsonl has sha256 .* not the pinned 85b5a1fd"):
        imagenet_x.verified_files(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="reinstall with `pip install imagenet-x==0.0.7`"):
        imagenet_x.verified_files(empty)


@pytest.mark.parametrize("case", cases(
    BadInput("inx-build-annotation-changed", "build (imagenet-x package)",
             "an installed annotation file whose bytes differ from the pinned sha256",
             "has sha256", store="unchanged")))
def test_build_refuses_a_changed_annotation_file(case, store_copy, tmp_path, monkeypatch, capsys):
    folder = _tampered_package(tmp_path)
    monkeypatch.syspath_prepend(str(folder.parent))  # find_spec now finds the tampered copy first
    assert imagenet_x.annotation_dir() == folder
    con = database.connect(store_copy, read_only=True)
    before = database.table_checksums(con)
    con.close()
    assert cli.main(["build", "--db", str(store_copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and case.message in err and "pip install imagenet-x==0.0.7" in err
    con = database.connect(store_copy, read_only=True)
    assert database.table_checksums(con) == before
    con.close()


def test_build_loaded_the_annotations(small_store, annotations):
    con = database.connect(small_store, read_only=True)
    try:
        assert factors.loaded(con) == imagenet_x.IMAGES
        assert database.meta(con)["imagenet_x"].startswith("imagenet-x 0.0.7, sha256 85b5a1fd")
        row = factors.image_factors(con, "imagenet-val", 0)
        assert factors.image_factors(con, "samples", 0) is None  # only validation images are annotated
    finally:
        con.close()
    assert row["factors"] == annotations.iloc[0]["factors"] and row["justification"] == annotations.iloc[0][
        "justification"]


@pytest.fixture(scope="module")
def val_store(small_store, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """A copy of the small store with N imported imagenet-val predictions (70% right, the rest random classes)."""
    folder = tmp_path_factory.mktemp("val_store")
    path = folder / "val.duckdb"
    shutil.copy(small_store, path)
    rng = np.random.default_rng(11)
    targets = classes.val_targets()[:N]
    prediction = np.where(rng.random(N) < 0.7, targets, rng.integers(0, 1000, N))
    csv = folder / "preds.csv"
    pd.DataFrame({"file_name": [classes.val_file_name(i) for i in range(N)], "prediction": prediction}
                 ).to_csv(csv, index=False)
    imports.import_predictions(csv, model_id="val-model", partial=True, db=path)
    con = database.connect(path, read_only=True)
    rows = con.execute("""
        SELECT p.image_id, c.category FROM predictions p
        JOIN pair_categories c ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
        WHERE p.model_id = 'val-model' ORDER BY p.image_id""").df()
    con.close()
    return path, rows


def test_factor_filter_selects_the_errors_whose_image_shows_the_factor(val_store, annotations):
    path, rows = val_store
    marked = annotations.set_index("image_id")["factors"]
    errors = rows[~rows["category"].isin(["correct", "not_evaluated"])]
    for wanted in (("pose",), ("partial_view", "style")):
        expected = sorted(i for i in errors["image_id"] if i in marked.index and set(marked[i]) & set(wanted))
        con = database.connect(path, read_only=True)
        try:
            for flt in (ErrorFilter(dataset="imagenet-val", factors=wanted),
                        ErrorFilter(models=("val-model",), factors=wanted)):
                frame = export.errors_frame(con, flt)
                assert sorted(frame["image_id"]) == expected and export.count_errors(con, flt) == len(expected)
            # a factor filter on the sample images matches nothing: they are not annotated
            assert export.count_errors(con, ErrorFilter(dataset="samples", factors=wanted)) == 0
        finally:
            con.close()
        assert 0 < len(expected) < len(errors)


def test_factor_ratios_equal_the_shares_counted_here(val_store, annotations):
    path, rows = val_store
    con = database.connect(path, read_only=True)
    try:
        ratios = factors.factor_ratios(con, ErrorFilter(models=("val-model",)))
        assert factors.factor_ratios(con, ErrorFilter(models=("efficientnet-lite0",))).empty  # no val predictions
    finally:
        con.close()
    merged = rows.merge(annotations[["image_id", "factors"]], on="image_id")
    share = {c: {f: np.mean([f in fs for fs in g["factors"]]) for f in imagenet_x.FACTORS}
             for c, g in merged.groupby("category")}
    for r in ratios.itertuples():
        assert r.predictions == (merged["category"] == r.category).sum()
        assert r.share == pytest.approx(share[r.category][r.factor])
        if share["correct"][r.factor] > 0:
            assert r.ratio == pytest.approx(share[r.category][r.factor] / share["correct"][r.factor])
    assert set(ratios.loc[ratios["category"] == "correct", "ratio"].dropna()) == {1.0}


@pytest.mark.parametrize("case", cases(
    BadInput("inx-export-unknown-factor", "export --factor", "a name that is no ImageNet-X factor",
             "factor 'posture' is not an ImageNet-X factor; use one of multiple_objects", store="not involved")))
def test_unknown_factor_on_the_command_line(case, small_store, tmp_path, capsys):
    out = tmp_path / "e.csv"
    assert cli.main(["export", str(out), "--factor", "posture", "--db", str(small_store)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and case.message in err[0] and not out.exists()

"""Fixtures of the dashboard tests: the small real store seen through IMAGENET_ERRORS_DB, and image folders for the
Run page (an allowed root and a folder outside it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analysis import paths
from analysis.knowledge import classes
from analysis.store import database, views
from dashboard import access
from tests.dashboard.apptest import DATASET


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="module")
def db(small_store, monkeypatch_module) -> Path:
    """The shared small real store (EfficientNet-Lite0/1 on 50 sample images), opened through IMAGENET_ERRORS_DB."""
    monkeypatch_module.setenv("IMAGENET_ERRORS_DB", str(small_store))
    return Path(small_store)


@pytest.fixture
def con(db):
    connection = database.connect(db, read_only=True)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def model_ids(db) -> list[str]:
    with database.connect(db, read_only=True) as connection:
        frame = views.models(connection)
        ids = frame[frame["dataset"] == DATASET]["model_id"].tolist()
    assert len(ids) >= 2, "the small store must hold two models on the sample images"
    return ids


@pytest.fixture
def image_tree(tmp_path, monkeypatch, store_copy) -> dict[str, str]:
    """An allowed root (IMAGENET_ERRORS_IMAGE_ROOTS) and, beside it, a valid image folder outside every root.

    root/ holds a file, a symlink to the outside folder and a symlink loop; the dashboard reads a writable copy of
    the small store, so a run that should not happen would show in its checksums.
    """
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    (outside / "n01440764").mkdir(parents=True)
    sample = next(p for p, class_id in classes.sample_images() if class_id == 0)
    shutil.copy(sample, outside / "n01440764" / "tench.JPEG")
    (root / "file.txt").write_text("not a folder")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root / "loop")
    monkeypatch.setenv(paths.IMAGE_ROOTS_ENV, str(root))
    monkeypatch.delenv(paths.IMAGENET_ENV, raising=False)
    monkeypatch.delenv(access.READONLY_ENV, raising=False)
    monkeypatch.setenv(paths.DB_ENV, str(store_copy))
    return {"tmp": str(tmp_path), "root": str(root), "outside": str(outside), "store": str(store_copy)}

"""Shared fixtures: a real small store (build + EfficientNet-Lite0/1 on 50 sample images) and writable copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SMALL_STORE_IMAGES = 50
SMALL_STORE_MODELS = ("efficientnet-lite0", "efficientnet-lite1")


@pytest.fixture(scope="session")
def small_store(tmp_path_factory) -> Path:
    """A real store: reference tables, then Lite0 and Lite1 on the first 50 sample images. Do not write to it."""
    from analysis.inference import runner
    from analysis.store import reference
    path = tmp_path_factory.mktemp("store") / "small.duckdb"
    reference.build(path, progress=False)
    for name in SMALL_STORE_MODELS:
        runner.predict(name, "samples", db=path, device="cpu", limit=SMALL_STORE_IMAGES, progress=False, workers=0)
    return path


@pytest.fixture()
def store_copy(small_store, tmp_path) -> Path:
    """A writable copy of `small_store` for tests that change it."""
    target = tmp_path / "copy.duckdb"
    shutil.copy(small_store, target)
    return target

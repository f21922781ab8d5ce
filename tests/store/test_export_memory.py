"""The streamed export's memory does not grow with the number of rows: `python -m analysis export` of a store with
10x the error rows peaks at about the same RSS (measured by `wait4` on the child process)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.store import database, export
from analysis.store.filters import ErrorFilter

ROOT = Path(__file__).resolve().parents[2]
IMAGES = 10_000  # synthetic mistakes per model (the first validation images)
GROWTH_MB = 100  # allowed growth of peak RSS from the small to the 10x export (before parts: 225 MB)


def _add_synthetic(store: Path, models: int) -> int:
    """`models` synthetic models each wrong on the first IMAGES validation images; return the store's error rows."""
    con = database.connect(store)
    try:
        before = len(export.errors_frame(con, ErrorFilter()))
        con.execute("INSERT INTO models (model_id, arch, family, training_data, params, source) "
                    "SELECT 'synthetic-' || lpad(i::VARCHAR, 4, '0'), 'arch', 'cnn', 'ImageNet-1k', 1000000, 'import' "
                    "FROM range(?) t(i)", [models])
        con.execute("INSERT INTO pair_categories (dataset, image_id, prediction, category, reason, models) "
                    "SELECT dataset, image_id, ((target + 1) % 1000)::SMALLINT, 'model_failure', 'synthetic', ? "
                    "FROM images WHERE dataset = 'imagenet-val' AND image_id < ?", [models, IMAGES])
        con.execute("INSERT INTO predictions (model_id, dataset, image_id, prediction, top5, confidence) "
                    "SELECT m.model_id, i.dataset, i.image_id, ((i.target + 1) % 1000)::SMALLINT, "
                    "[(i.target + 1) % 1000, i.target, 1, 2, 3]::SMALLINT[], 0.25 + (i.image_id % 7) / 10 "
                    "FROM models m, images i WHERE m.model_id LIKE 'synthetic-%' AND i.dataset = 'imagenet-val' "
                    "AND i.image_id < ?", [IMAGES])
        con.execute("CHECKPOINT")
        return before + models * IMAGES
    finally:
        con.close()


def _peak_rss_mb(store: Path, output: Path) -> float:
    """Peak RSS (MB) of `python -m analysis export` of the whole store, read from `wait4`."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "analysis", "export", "--db", str(store), str(output)], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, out.decode()
    return usage.ru_maxrss / 1024


@pytest.fixture()
def stores(small_store, tmp_path) -> tuple[tuple[Path, int], tuple[Path, int]]:
    """(path, error rows) of two copies of the small store with 10 and 100 synthetic models."""
    made = []
    for models in (10, 100):
        path = tmp_path / f"zoo{models}.duckdb"
        path.write_bytes(small_store.read_bytes())
        made.append((path, _add_synthetic(path, models)))
    return made[0], made[1]


def test_export_memory_does_not_grow_with_the_rows(stores, tmp_path):
    (small, small_rows), (large, large_rows) = stores
    small_mb = _peak_rss_mb(small, tmp_path / "small.csv")
    large_mb = _peak_rss_mb(large, tmp_path / "large.csv")
    for name, rows in (("small", small_rows), ("large", large_rows)):
        with open(tmp_path / f"{name}.csv", "rb") as handle:
            assert sum(1 for _ in handle) == rows + 1  # every row written (plus the header)
    assert large_rows > 9 * small_rows
    assert large_mb - small_mb < GROWTH_MB, (small_mb, large_mb)

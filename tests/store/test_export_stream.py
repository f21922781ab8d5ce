"""The streamed export (DuckDB formats the CSV, record batch by record batch) writes the bytes of the in-memory
pandas path (`to_csv(errors_frame(...))`): on the small store, on hostile values, and across batch boundaries."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from analysis.store import database, export
from analysis.store.filters import ErrorFilter


def _streamed(con, flt: ErrorFilter, path: Path) -> bytes:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        rows = export.stream_csv(con, flt, fd)
    finally:
        os.close(fd)
    data = path.read_bytes()
    assert data.count(os.linesep.encode()) >= rows + 1  # header + one line per row (more when a cell holds one)
    return data


@pytest.fixture(scope="module")
def con(small_store):
    connection = database.connect(small_store, read_only=True)
    yield connection
    connection.close()


def _filters(con) -> list[ErrorFilter]:
    frame = export.errors_frame(con, ErrorFilter())
    superclass = next(s for ids in frame["target_superclasses"] for s in ids)
    return [ErrorFilter(), ErrorFilter(min_models=2), ErrorFilter(models=("efficientnet-lite1",)),
            ErrorFilter(dataset="imagenet-val"), ErrorFilter(categories=(frame["category"].iloc[0],)),
            ErrorFilter(superclasses=(superclass,)), ErrorFilter(class_search=frame["target_name"].iloc[0][:3])]


def test_streamed_bytes_equal_the_pandas_path_on_the_small_store(con, tmp_path):
    for flt in _filters(con):
        expected = export.to_csv(export.errors_frame(con, flt)).encode()
        assert _streamed(con, flt, tmp_path / "out.csv") == expected, flt
    assert len(export.errors_frame(con, ErrorFilter())) > 10  # the comparison covered real rows


def test_batch_boundaries_lose_and_repeat_nothing(con, tmp_path, monkeypatch):
    expected = export.to_csv(export.errors_frame(con, ErrorFilter())).encode()
    monkeypatch.setattr(export, "BATCH_ROWS", 3)  # many record batches for the small store's rows
    assert _streamed(con, ErrorFilter(), tmp_path / "out.csv") == expected
    lines = pa.array([f"row {i}\n" for i in range(10)])
    for array in (lines, lines.slice(3, 4), lines.cast(pa.large_string()).slice(7), lines.slice(10)):
        assert bytes(export._line_bytes(array)) == "".join(array.to_pylist()).encode()


def _hostile(store: Path) -> None:
    """A copy of Lite0's predictions under hostile names and values, written straight into the store."""
    odd = 'odd,"model"\nid\rx '
    con = database.connect(store)
    try:
        con.execute("INSERT INTO models (model_id, arch, family, training_data, params, source) "
                    "SELECT ?, arch, ?, training_data, params, source FROM models WHERE model_id = 'efficientnet-lite0'",
                    [odd, 'fam,"ily"'])
        con.execute("INSERT INTO predictions SELECT ? AS model_id, * EXCLUDE (model_id) FROM predictions "
                    "WHERE model_id = 'efficientnet-lite0'", [odd])
        wrong = [r[0] for r in con.execute(
            "SELECT p.image_id FROM predictions p JOIN pair_categories c USING (dataset, image_id, prediction) "
            "WHERE p.model_id = ? AND c.category NOT IN ('correct', 'not_evaluated') ORDER BY 1", [odd]).fetchall()]
        assert len(wrong) >= 6
        values = [None, float("nan"), 1e-7, 123456.5, float("inf"), 0.1234565]
        for image_id, value in zip(wrong, values):
            con.execute("UPDATE predictions SET confidence = ? WHERE model_id = ? AND image_id = ?",
                        [value, odd, image_id])
        con.execute("UPDATE predictions SET top5 = NULL WHERE model_id = ? AND image_id = ?", [odd, wrong[0]])
        con.execute("UPDATE images SET file_name = ?, labels = [] WHERE image_id = ?", ['a,b "c".JPEG', wrong[1]])
        con.execute("UPDATE images SET file_name = ? WHERE image_id = ?", ["", wrong[2]])
    finally:
        con.close()


def test_hostile_values_are_written_as_pandas_writes_them(store_copy, tmp_path):
    _hostile(store_copy)
    con = database.connect(store_copy, read_only=True)
    try:
        frame = export.errors_frame(con, ErrorFilter())
        expected = export.to_csv(frame).encode()
        streamed = _streamed(con, ErrorFilter(), tmp_path / "out.csv")
    finally:
        con.close()
    folder = tmp_path / "exports"
    assert frame["confidence"].isna().sum() >= 2 and (frame["file_name"] == "").any()
    assert b'"odd,""model""\nid\rx "' in expected and b'"a,b ""c"".JPEG"' in expected and b",inf," in expected
    assert streamed == expected
    assert export.export_csv(ErrorFilter(), folder / "cli.csv", db=store_copy) == len(frame)
    assert (folder / "cli.csv").read_bytes() == expected
    assert [p.name for p in folder.iterdir()] == ["cli.csv"]  # no temporary file or spill folder left


def test_duckdb_printf_rounds_floats_as_python(con):
    rng = np.random.default_rng(7)
    values = np.concatenate([
        rng.random(20_000).astype(np.float32), (rng.standard_normal(20_000) * 10.0 ** rng.integers(-40, 39, 20_000))
        .astype(np.float32), np.float32([0.0, -0.0, 1e-45, 3.4028235e38, 0.1234565, 1234565, 999999.5, 0.5])])
    table = pa.table({"v": pa.array(values)})
    with database.registered(con, table, "_floats"):
        got = [r[0] for r in con.execute("SELECT printf('%.6g', v) FROM _floats").fetchall()]
    assert got == ["%.6g" % v for v in values]


def test_parts_of_any_size_give_the_same_bytes(store_copy, tmp_path, monkeypatch):
    _hostile(store_copy)
    con = database.connect(store_copy)
    try:  # Lite1 on a second dataset too: a model cut by dataset and image runs
        con.execute("INSERT INTO predictions SELECT model_id, 'imagenet-val', image_id, prediction, top5, confidence, "
                    "top5_confidence FROM predictions WHERE model_id = 'efficientnet-lite1'")
        con.execute("INSERT INTO models (model_id, arch, family, training_data, params, source) SELECT "
                    "'efficientnet-lite0-copy', arch, family, training_data, params, source FROM models "
                    "WHERE model_id = 'efficientnet-lite0'")
        con.execute("INSERT INTO predictions SELECT 'efficientnet-lite0-copy', * EXCLUDE (model_id) FROM predictions "
                    "WHERE model_id = 'efficientnet-lite0'")  # sorts between Lite0 and Lite1
        con.execute("INSERT INTO pair_categories (dataset, image_id, prediction, category, reason, models) "
                    "SELECT DISTINCT 'imagenet-val', image_id, prediction, 'model_failure', 'copied', 1 FROM predictions "
                    "WHERE dataset = 'samples' AND model_id = 'efficientnet-lite1'")
    finally:
        con.close()
    con = database.connect(store_copy, read_only=True)
    try:
        filters = [ErrorFilter(), ErrorFilter(models=("efficientnet-lite1",)), ErrorFilter(dataset="imagenet-val"),
                   ErrorFilter(models=("efficientnet-lite0", "efficientnet-lite1"), min_models=2)]
        expected = [export.to_csv(export.errors_frame(con, flt)).encode() for flt in filters]
        assert b"\nefficientnet-lite1,imagenet-val," in expected[0] and b"\nefficientnet-lite1,samples," in expected[0]
        total = len(export.errors_frame(con, ErrorFilter()))
        both = []  # part sizes giving whole models together and a model cut into runs of image ids
        for part_rows in range(1, total + 1):
            monkeypatch.setattr(export, "PART_ROWS", part_rows)
            parts, rows = export._parts(con, ErrorFilter())
            assert rows == total
            if any(len(p.models) > 1 for p, _ in parts) and any(i != export.ALL_IMAGES for _, i in parts):
                both.append(part_rows)
        assert both
        for part_rows in (1, 7, both[0], both[-1], 10**9):
            monkeypatch.setattr(export, "PART_ROWS", part_rows)
            for flt, want in zip(filters, expected):
                assert _streamed(con, flt, tmp_path / "out.csv") == want, (part_rows, flt)
    finally:
        con.close()

"""Browse's pages at any depth (analysis/store/pages.py) hold exactly the plain OFFSET query's rows, in its order, for
every sort and filter; counts read from model_summary equal the counts over the errors."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from analysis.store import database, error_index, pages, queries, views
from analysis.store.filters import ErrorFilter
from tests.bad_inputs import BadInput, cases

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 12


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """The benchmark's synthetic zoo, small: 5 models x 1,000 validation images (many ties in every sort key)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_dashboard import build_synthetic_store
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    path = tmp_path_factory.mktemp("zoo") / "zoo.duckdb"
    build_synthetic_store(path, models=5, images=1000)
    return path


def _indexed_copy(source: Path, folder: Path) -> Path:
    """A copy of `source` holding error_index, as the dashboard's snapshot does."""
    path = folder / source.name
    shutil.copyfile(source, path)
    writer = database.connect(path)
    try:
        assert error_index.build(writer) == pages.count_errors(writer, ErrorFilter())
    finally:
        writer.close()
    return path


@pytest.fixture(scope="module")
def indexed(small_store, zoo, tmp_path_factory) -> dict[str, Path]:
    return {name: _indexed_copy(path, tmp_path_factory.mktemp(name))
            for name, path in (("small_store", small_store), ("zoo", zoo))}


@pytest.fixture(params=["small_store", "zoo"])
def con(request):
    connection = database.connect(request.getfixturevalue(request.param), read_only=True)
    yield connection
    connection.close()


@pytest.fixture(params=["small_store", "zoo"])
def cons(request, indexed, monkeypatch):
    """(the store, its copy holding error_index): the plain query's rows are read once and both are compared."""
    # Small runs of positions, so that pages of these small stores cross their boundaries as at 6.5M errors.
    monkeypatch.setattr(pages, "BUCKET", 50)
    monkeypatch.setattr(pages, "DIRECT_DEPTH", 30)
    plain = database.connect(request.getfixturevalue(request.param), read_only=True)
    with_index = database.connect(indexed[request.param], read_only=True)
    assert not error_index.present(plain) and error_index.present(with_index)
    yield plain, with_index
    plain.close()
    with_index.close()


def _dataset(con) -> str:
    return con.execute("SELECT dataset FROM predictions GROUP BY dataset ORDER BY count(*) DESC LIMIT 1").fetchone()[0]


def _filters(con) -> dict[str, ErrorFilter]:
    dataset = _dataset(con)
    models = [r[0] for r in con.execute("SELECT DISTINCT model_id FROM predictions ORDER BY 1").fetchall()]
    family = con.execute("SELECT family FROM models WHERE family IS NOT NULL LIMIT 1").fetchone()
    base = ErrorFilter(dataset=dataset)
    out = {"dataset": base, "every dataset": ErrorFilter(), "one model": base.with_(models=(models[-1],)),
           "two models": base.with_(models=tuple(models[:2])), "group": base.with_(groups=("organism",)),
           "categories": base.with_(categories=("fine_grained", "model_failure")),
           "group+category+model": base.with_(groups=("artifact", "other"), categories=("model_failure",),
                                              models=(models[0],)),
           "concept": base.with_(superclasses=("wn:dog.n.01",)), "search": base.with_(class_search="e"),
           "min models": base.with_(min_models=2), "not reviewed": base.with_(review="not_reviewed"),
           "confusion": base.with_(**dict(zip(("target", "prediction"), con.execute(
               "SELECT i.target, p.prediction FROM predictions p JOIN images i USING (dataset, image_id) "
               "WHERE p.dataset = ? AND p.prediction <> i.target GROUP BY ALL ORDER BY count(*) DESC, 1, 2 LIMIT 1",
               [dataset]).fetchone())))}
    if family:
        out["family"] = base.with_(families=(family[0],))
    return out


def _plain_errors(con, flt, sort, limit, offset) -> pd.DataFrame:
    sql, params = queries.sorted_errors_sql(flt, sort=sort, limit=limit, offset=offset)
    return con.execute(sql, params).df()


def _plain_images(con, flt, sort, limit, offset) -> pd.DataFrame:
    sql, params = queries.error_images_sql(flt, sort=sort, limit=limit, offset=offset)
    return con.execute(sql, params).df()


def _offsets(total: int) -> list[int]:
    """First, middle and last page, windows across page boundaries and the mirror's midpoint, the end and past it."""
    last = (max(1, math.ceil(total / LIMIT)) - 1) * LIMIT
    return sorted({0, 5, (total // LIMIT // 2) * LIMIT, total // 2 - 6, total // 2 - 5, total // 2, last,
                   max(0, total - 7), max(0, total - 1), total, total + 30} - {-6, -5} | {0})


def _pages_match(cons, page, plain, flt: ErrorFilter, total: int, sorts, name: str) -> int:
    """Every page of `flt` in each of `sorts` at the depths of `_offsets(total)`, read by `page` (a views function)
    from the store and from its indexed copy, equals the plain query's (`plain`); returns the rows compared."""
    con, with_index = cons
    seen = 0
    for sort in sorts:
        for offset in _offsets(total):
            if offset < 0:
                continue
            want = plain(con, flt, sort, LIMIT, offset)
            for where, connection in (("", con), (" (index)", with_index)):
                got = page(connection, flt, sort=sort, limit=LIMIT, offset=offset, total=total)
                pd.testing.assert_frame_equal(got, want, obj=f"{name} / {sort} / offset {offset}{where}")
            seen += len(want)
    return seen


def test_every_sort_and_filter_pages_like_the_plain_offset_query(cons):
    con = cons[0]
    seen = 0
    for name, flt in _filters(con).items():
        total = pages.count_errors(con, flt)
        assert total == len(_plain_errors(con, flt, "image", None, 0)), name
        seen += _pages_match(cons, views.errors_page, _plain_errors, flt, total, views.ERROR_SORTS, name)
    assert seen > 100


def test_per_image_pages_like_the_plain_offset_query(cons):
    con = cons[0]
    for name, flt in _filters(con).items():
        _pages_match(cons, views.error_images, _plain_images, flt, views.count_error_images(con, flt),
                     views.IMAGE_SORTS, name)


@pytest.mark.parametrize("index", [False, True], ids=["plain", "index"])
def test_consecutive_pages_tile_the_whole_sorted_result(zoo, indexed, index, monkeypatch):
    """Page after page, at every depth, gives the whole result once, in order (model runs counted by the summary or
    from the end, pair keys, the mirrored back half; or runs of index positions)."""
    monkeypatch.setattr(pages, "BUCKET", 37)
    monkeypatch.setattr(pages, "DIRECT_DEPTH", 30)
    con = database.connect(indexed["zoo"] if index else zoo, read_only=True)
    try:
        for flt in (ErrorFilter(dataset="imagenet-val", groups=("organism", "artifact")),  # summary runs
                    ErrorFilter(dataset="imagenet-val", class_search="e")):  # a row-level filter
            total = pages.count_errors(con, flt)
            assert total > 20 * LIMIT
            for sort in views.ERROR_SORTS:
                whole = _plain_errors(con, flt, sort, None, 0)
                tiled = pd.concat([views.errors_page(con, flt, sort=sort, limit=LIMIT, offset=o, total=total)
                                   for o in range(0, total, LIMIT)], ignore_index=True)
                pd.testing.assert_frame_equal(tiled, whole, obj=f"{flt} / {sort}")
    finally:
        con.close()


def test_counts_from_the_summary_equal_the_counts_over_the_errors(con):
    answered = 0
    for name, flt in _filters(con).items():
        sql, params = queries.count_errors_sql(flt)
        assert pages.count_errors(con, flt) == con.execute(sql, params).fetchall()[0][0], name
        assert views.count_error_images(con, flt) == len(_plain_images(con, flt, "image", None, 0)), name
        answered += pages.from_summary(flt)
    assert answered >= 6  # dataset, every dataset, one/two models, group, categories, family: no predictions scan


def test_no_query_offset_exceeds_half_the_result():
    for total in range(0, 60):
        for offset in range(0, total + LIMIT):
            backwards, limit, off = pages.window(LIMIT, offset, total)
            assert off <= total / 2 + LIMIT / 2
            want = max(0, min(total, offset + LIMIT) - offset)
            assert limit == want or (limit == LIMIT and not backwards and want == 0) or limit >= want


@pytest.mark.parametrize("case", cases(
    BadInput("page-total-negative", "views.errors_page(total=)", "a negative total", "total=-1 must be None or an "
             "integer >= 0", store="not involved"),
    BadInput("page-total-text", "views.errors_page(total=)", "a total given as text", "total='12' must be None or an "
             "integer >= 0", store="not involved"),
))
def test_a_bad_total_is_refused_naming_it(small_store, case):
    connection = database.connect(small_store, read_only=True)
    try:
        total = -1 if case.id.endswith("negative") else "12"
        with pytest.raises(ValueError, match=case.message.replace("(", r"\(")):
            views.errors_page(connection, ErrorFilter(dataset="samples"), limit=LIMIT, total=total)
    finally:
        connection.close()

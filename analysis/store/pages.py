"""Browse's pages at any depth, and error counts from the per-model summary.

A plain page at offset `o` costs DuckDB a top-N of `o + limit` rows over the joined errors: at 962 models x 50,000
images the middle page of 6.5M errors took 6-22 s against 0.1-2.7 s for page 1. Every page is cut down to a query
whose cost does not grow with its depth, by the first rule that applies:

0. the store holds `error_index` (the dashboard's snapshot always does; `error_index.py`): each error's position in
   every sort order is stored, so a page of a filter that keeps every error is the rows at positions
   [o, o + limit); under any other filter the filter's rows are counted per run of BUCKET positions (one scan of
   the index, no join to predictions) and the page read from the run(s) it falls in. Per image, a filter that
   keeps every error reads positions in `error_index_images`; other filters follow rules 3 and 4 below, rule 4
   grouping the index's rows instead of every prediction joined to its pair.

Without the index (a store read directly):

1. image / category sort, a filter `model_summary` counts exactly (`from_summary`): the sorted errors are runs of
   one model x dataset (x category); their sizes come from the summary, so a page is read from the one or two
   model runs it falls in (one-model queries; at most MAX_SEGMENTS).
2. models / class sort without a model or family filter: the leading sort key is a property of the
   (dataset, image, prediction) pair, so each key's rows are counted over pair_categories alone (a pair is
   `models` rows) and the page is read from the rows between its first and last key, at an offset within them.
3. per-image mode without a model or family filter, sorted other than by confidence: the images are ranked over
   pair_categories and only the page's images are read in predictions (`queries.pair_images_sql`).
4. otherwise the rows of the back half are read in the reverse order (every ORDER BY term flipped, NULLS placement
   included) at offset `total - o - limit`, so no offset exceeds half the result and the last page costs what the
   first costs; the caller hands over `total`, the count Browse already made. Every sort order ends in the row's key
   (model, dataset, image; dataset, image per image), a total order, so its reverse selects exactly the same rows.

`count_errors` reads `model_summary` (one row per model x dataset x group with a count per category) when the filter
is one it answers exactly: models, families, groups, categories and the dataset, k = 1, no row-level condition.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from analysis.store import error_index, queries
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories

SEGMENT_SORTS = ("image", "category")  # sorts whose order runs model by model (within a category)
MAX_SEGMENTS = 4  # a page spanning more model runs than this is read by one query instead
MAX_PROBES = 8  # model runs counted from the end for a back-half page of the image sort under a row-level filter
BUCKET = 65_536  # positions per run counted for a deep indexed page under a filter
DIRECT_DEPTH = 1_000  # an indexed page ending above this depth is read by one top-N query instead
# Filter fields the summary cannot answer: they select single rows, not models x groups x categories.
_ROW_FIELDS = ("superclasses", "class_search", "review", "factors", "target", "prediction")


def _check(flt, limit, offset, total) -> None:
    if not isinstance(flt, ErrorFilter):
        raise TypeError(f"flt={flt!r} must be an analysis.store.filters.ErrorFilter")
    for name, value in (("limit", limit), ("total", total)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name}={value!r} must be None or an integer >= 0")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset={offset!r} must be an integer >= 0")


def window(limit: int | None, offset: int, total: int | None) -> tuple[bool, int | None, int]:
    """(reversed, limit, offset) of the query that reads rows [offset, offset + limit) of `total`: the forward
    window for the front half (or without a total or limit), the mirrored window in reverse order for the back half.
    """
    if limit is None or total is None or offset + limit / 2 <= total / 2:
        return False, limit, offset
    end = min(total, offset + limit)
    if end <= offset:
        return False, 0, 0
    return True, end - offset, total - end


def segments(con: duckdb.DuckDBPyConnection, flt: ErrorFilter, sort: str) -> list[tuple[ErrorFilter, int]]:
    """The errors of `flt` in `sort` order (image or category) cut into consecutive runs of one model x dataset
    (x category): (the run's filter, its rows), sizes from `model_summary` (only for `from_summary` filters)."""
    sql, params = queries.summary_segments_sql(flt)
    rows = con.execute(sql, params).fetchall()
    chosen = queries.summary_chosen(flt)
    if sort == "image":  # model, dataset, image
        return [(flt.with_(models=(m,), dataset=d), sum(n)) for m, d, *n in rows if sum(n)]
    return [(flt.with_(models=(m,), dataset=d, categories=(c,)), n[k])  # category (taxonomy order), model, dataset
            for k, c in enumerate(chosen) for m, d, *n in rows if n[k]]


def _by_segments(con, flt: ErrorFilter, sort: str, limit: int, offset: int) -> pd.DataFrame | None:
    """The page from the few model runs it falls in (None when it spans more than MAX_SEGMENTS of them)."""
    parts, start = [], 0
    for seg, size in segments(con, flt, sort):
        if start + size > offset and start < offset + limit:
            if len(parts) == MAX_SEGMENTS:
                return None
            inner = max(0, offset - start)
            parts.append((seg, inner, min(size - inner, offset + limit - start - inner)))
        start += size
        if start >= offset + limit:
            break
    frames = []
    for seg, inner, n in parts:
        sql, params = queries.sorted_errors_sql(seg, sort=sort, limit=n, offset=inner)
        frames.append(con.execute(sql, params).df())
    if not frames:
        sql, params = queries.sorted_errors_sql(flt, sort=sort, limit=0, offset=0)
        return con.execute(sql, params).df()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _covering(counts: list[tuple], offset: int, limit: int) -> tuple:
    """(first key, last key, rows before the first) of the keys whose rows hold rows [offset, offset + limit), from
    (key, rows) in sort order; first key None when offset lies past the end."""
    start, first, last, before = 0, None, None, 0
    for key, n in counts:
        if first is None and start + n > offset:
            first, before = key, start
        if first is not None:
            last = key
        start += n
        if start >= offset + limit:
            break
    return first, last, before


def _by_pair_key(con, flt: ErrorFilter, sort: str, limit: int, offset: int) -> pd.DataFrame:
    """The page from the rows whose leading sort key (a pair's, `queries.PAIR_SEGMENTS`) lies between the keys of
    its first and last row, the positions of each key's rows counted over pair_categories."""
    sql, params = queries.pair_segments_sql(flt, sort)
    first, last, before = _covering(con.execute(sql, params).fetchall(), offset, limit)
    if first is None:  # past the end
        sql, params = queries.sorted_errors_sql(flt, sort=sort, limit=0, offset=0)
    else:
        descending = queries.PAIR_SEGMENTS[sort][1]
        sql, params = queries.sorted_errors_sql(flt, sort=sort, limit=limit, offset=offset - before,
                                                segment=(last, first) if descending else (first, last))
    return con.execute(sql, params).df()


def _from_the_end(con, flt: ErrorFilter, limit: int, offset: int, total: int) -> pd.DataFrame | None:
    """A back-half page of the image sort from the last model runs, each counted by a one-model query (None when
    the page lies deeper than MAX_PROBES runs from the end)."""
    sql, params = queries.summary_runs_sql(flt)
    parts, end = [], total
    for probe, (model_id, dataset) in enumerate(con.execute(sql, params).fetchall()):
        if end <= offset or end <= 0:
            break
        if probe == MAX_PROBES:
            return None
        run = flt.with_(models=(model_id,), dataset=dataset)
        start = end - count_errors(con, run)
        if start < min(total, offset + limit) and end > offset:
            inner = max(0, offset - start)
            parts.append((run, inner, min(end, offset + limit) - start - inner))
        end = start
    if end > offset or end < 0:  # the runs do not add up to `total`: leave it to the plain query
        return None
    frames = []
    for run, inner, n in reversed(parts):
        sql, params = queries.sorted_errors_sql(run, sort="image", limit=n, offset=inner)
        frames.append(con.execute(sql, params).df())
    if not frames:
        sql, params = queries.sorted_errors_sql(flt, sort="image", limit=0, offset=0)
        return con.execute(sql, params).df()
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _keeps_every_error(con, flt: ErrorFilter) -> bool:
    """Whether `flt` selects every error in error_index: no condition but a dataset, and every indexed error is of it
    (read from the index itself, so a category the summary does not count cannot make it disagree)."""
    if flt.with_(dataset=None) != ErrorFilter():
        return False
    return flt.dataset is None or error_index.datasets(con) in ((), (flt.dataset,))


def _indexed(con, flt: ErrorFilter, sort: str, limit: int, offset: int) -> pd.DataFrame:
    """The page from error_index: the positions [offset, offset + limit) when the filter keeps every error; else
    the filter's rows counted per run of BUCKET positions, and the page read from the runs it falls in."""
    positions, inner = None, offset
    if _keeps_every_error(con, flt):
        positions, inner = (offset, offset + limit), 0
    elif offset + limit > DIRECT_DEPTH:
        sql, params = queries.index_buckets_sql(flt, sort, bucket=BUCKET)
        first, last, before = _covering(con.execute(sql, params).fetchall(), offset, limit)
        positions, inner = ((first * BUCKET, (last + 1) * BUCKET), offset - before) if first is not None \
            else ((0, 0), 0)  # past the end: no position
    sql, params = queries.indexed_errors_sql(flt, sort=sort, limit=limit, offset=inner, positions=positions)
    return con.execute(sql, params).df()


def errors_page(con: duckdb.DuckDBPyConnection, flt: ErrorFilter, *, sort: str = "image", limit: int | None = 24,
                offset: int = 0, total: int | None = None) -> pd.DataFrame:
    """`views.errors_page`: the same rows in the same order. With error_index (a dashboard snapshot), a page is the
    rows at its positions in the sort's order. Without it: sorted by image or category under a filter the summary
    counts (`from_summary`), a page is read from the one or two models it falls in (their run sizes from
    `model_summary`); otherwise, with `total` (= `export.count_errors(con, flt)`), a page in the back half is read
    in reverse order from the end."""
    _check(flt, limit, offset, total)
    if limit is not None and error_index.present(con):
        return _indexed(con, flt, sort, limit, offset)
    if limit is not None and sort in SEGMENT_SORTS and from_summary(flt):
        frame = _by_segments(con, flt, sort, limit, offset)
        if frame is not None:
            return frame
    if limit is not None and sort in queries.PAIR_SEGMENTS and not flt.models and not flt.families:
        return _by_pair_key(con, flt, sort, limit, offset)
    if limit is not None and sort == "image" and total is not None and offset >= total / 2:
        frame = _from_the_end(con, flt, limit, offset, total)
        if frame is not None:
            return frame
    backwards, lim, off = window(limit, offset, total)
    sql, params = queries.sorted_errors_sql(flt, sort=sort, limit=lim, offset=off, reverse=backwards)
    return con.execute(sql, params).df()


def error_images(con: duckdb.DuckDBPyConnection, flt: ErrorFilter, *, sort: str = "image", limit: int | None = 24,
                 offset: int = 0, total: int | None = None) -> pd.DataFrame:
    """`views.error_images`: the same rows in the same order. With error_index, a filter that keeps every error
    reads the page's positions in error_index_images. Otherwise, without a model or family filter and sorted other
    than by confidence, the images are ranked over pair_categories (`queries.pair_images_sql`); else, with `total`
    (= `views.count_error_images(con, flt)`), a page in the back half is read in reverse order from the end (from
    error_index's rows when there is one)."""
    _check(flt, limit, offset, total)
    indexed = limit is not None and error_index.present(con)
    if indexed and _keeps_every_error(con, flt):
        sql, params = queries.indexed_images_sql(sort=sort, positions=(offset, offset + limit))
        return con.execute(sql, params).df()
    if limit is not None and sort != "confidence" and not flt.models and not flt.families:
        sql, params = queries.pair_images_sql(flt, sort=sort, limit=limit, offset=offset)
        return con.execute(sql, params).df()
    backwards, lim, off = window(limit, offset, total)
    sql, params = queries.error_images_sql(flt, sort=sort, limit=lim, offset=off, reverse=backwards, indexed=indexed)
    return con.execute(sql, params).df()


def from_summary(flt: ErrorFilter) -> bool:
    """Whether `model_summary` counts the errors of `flt` exactly (no row-level condition, k = 1, known categories)."""
    return (flt.min_models == 1 and not any(getattr(flt, name) for name in _ROW_FIELDS)
            and all(c in categories.ERROR_IDS for c in flt.categories))


def count_errors(con: duckdb.DuckDBPyConnection, flt: ErrorFilter) -> int:
    """`export.count_errors`: from `model_summary` when `from_summary(flt)`, else counted over the errors."""
    _check(flt, None, 0, None)
    if not from_summary(flt):
        sql, params = queries.count_errors_sql(flt)
    else:
        sql, params = queries.summary_count_sql(flt)
    return int(con.execute(sql, params).fetchall()[0][0])

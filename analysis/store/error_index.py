"""The errors in every Browse order, precomputed (`error_index`), so that any page of any sort costs what page 1 costs.

One row per error (a stored prediction whose pair is neither correct nor not_evaluated) holding what Browse filters
on (model, dataset, image, prediction, the image's target, the pair's category and `models`), the confidence and
top-5, and its 0-based position in each order of `queries.ERROR_SORTS` (`pos_image`, `pos_confidence`, ...). A page
is then the rows whose position lies in a range (`pages.py`), instead of a sort of every error joined to its pair.
Beside it, `error_index_images`: one row per image holding an error, with the per-image figures over every error
and its position in each per-image order (Browse's "one card per image" mode).

It is derived data, built where nobody writes: in the dashboard's snapshot, right after the copy
(`snapshot.current`), and by the benchmark in its own store. Every write of predictions or categories drops it in
its transaction (`summary.refresh_summary`, `publish.publish_models`), so a store never holds a stale one; without
it every page is read from the predictions as before. At 962 models x 50,000 images (6.5M errors) it takes about
15 s and 1 GB to build (memory capped by MEMORY_LIMIT; DuckDB spills beyond it) and about 190 MiB on disk.
"""

from __future__ import annotations

import duckdb

from analysis.store import database, queries
from analysis.taxonomy import categories

MEMORY_LIMIT = "1GB"  # the build's DuckDB memory limit (its sorts spill to disk beyond it)


def present(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store open on `con` holds the index (a snapshot made by this version of the dashboard); its two
    tables are built and dropped together."""
    return bool(database.first(con, queries.ERROR_INDEX_EXISTS)[0])


def rows(con: duckdb.DuckDBPyConnection) -> int:
    """How many errors the index holds (every error of the store)."""
    return int(database.first(con, queries.ERROR_INDEX_ROWS)[0])


def datasets(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The datasets whose errors the index holds: () when empty, one name, or the first and last of several."""
    low, high = database.first(con, queries.ERROR_INDEX_DATASETS)
    return () if low is None else (low,) if low == high else (low, high)


def build(con: duckdb.DuckDBPyConnection, *, memory_limit: str | None = None) -> int:
    """(Re)build the index from the store's predictions in one transaction; returns its rows.

    `con` must be a write connection on a store nobody else writes (a snapshot, a benchmark's store);
    `memory_limit` defaults to MEMORY_LIMIT. A DuckDB error (out of memory or disk) leaves the store as it was.
    """
    memory_limit = MEMORY_LIMIT if memory_limit is None else memory_limit
    if not isinstance(memory_limit, str) or not memory_limit.strip():
        raise ValueError(f"memory_limit={memory_limit!r} must be a DuckDB size such as '1GB'")
    con.execute(queries.SET_MEMORY_LIMIT, {"limit": memory_limit})
    try:
        with database.transaction(con):
            for statement in queries.ERROR_INDEX_BUILD:
                params = {"category_order": list(categories.IDS)} if "$category_order" in statement else None
                con.execute(statement, params)
    finally:
        con.execute(queries.RESET_MEMORY_LIMIT)
    return rows(con)


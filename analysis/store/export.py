"""The filtered errors as rows: one function behind `python -m analysis export` and the dashboard's CSV download.

A row is one stored mistake (model × image whose pair category is neither correct nor not_evaluated)
with its image, target, labels, prediction, category and reason, superclasses, the experts' verdict
where one exists and how many stored models make the same mistake.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import duckdb
import pandas as pd

from analysis.store import database, queries
from analysis.store.filters import ErrorFilter

# Columns holding lists: written to CSV as space-separated values.
LIST_COLUMNS = ("labels", "top5", "target_superclasses", "prediction_superclasses")
COLUMNS = ("model_id", "dataset", "image_id", "file_name", "target_id", "target_wnid", "target_name", "labels",
           "prediction_id", "prediction_wnid", "prediction_name", "confidence", "top5", "category", "reason",
           "target_superclasses", "prediction_superclasses", "expert", "expert_category", "expert_severity",
           "models_making_error", "target_group", "family")


def _check(flt, limit, offset) -> None:
    if not isinstance(flt, ErrorFilter):
        raise TypeError(f"flt={flt!r} must be an analysis.store.filters.ErrorFilter")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit={limit!r} must be None or an integer >= 0")
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset={offset!r} must be an integer >= 0")


def errors_frame(con: duckdb.DuckDBPyConnection, flt: ErrorFilter, *, limit: int | None = None,
                 offset: int = 0) -> pd.DataFrame:
    """The errors `flt` selects, ordered by model, dataset, image id; a page when `limit` is given.

    Columns: see COLUMNS (labels, top5 and superclass columns are lists).
    """
    _check(flt, limit, offset)
    sql, params = queries.errors_sql(flt, limit=limit, offset=offset)
    return con.execute(sql, params).df()


def count_errors(con: duckdb.DuckDBPyConnection, flt: ErrorFilter) -> int:
    """Number of rows `errors_frame(con, flt)` returns without a limit."""
    _check(flt, None, 0)
    sql, params = queries.count_errors_sql(flt)
    return int(database.first(con, sql, params)[0])


def to_csv(frame: pd.DataFrame, target: Path | io.TextIOBase | None = None) -> str | None:
    """Write `frame` as CSV (list columns space-separated); return the text when `target` is None."""
    out = frame.copy()
    for column in LIST_COLUMNS:
        if column in out.columns:
            out[column] = [" ".join(str(v) for v in values) if values is not None else "" for values in out[column]]
    return out.to_csv(target, index=False, float_format="%.6g")


def csv_bytes(con: duckdb.DuckDBPyConnection, flt: ErrorFilter) -> bytes:
    """The whole filtered result as CSV bytes (the dashboard's download button)."""
    return to_csv(errors_frame(con, flt)).encode()


def cli_export(args: argparse.Namespace) -> int:
    """`python -m analysis export OUT.csv [filters]`."""
    flt = ErrorFilter.from_args(args)
    con = database.connect(args.db, read_only=True)
    try:
        frame = errors_frame(con, flt)
        classified_with = database.meta(con).get("superclasses", "not recorded (store built before they were)")
    finally:
        con.close()
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    to_csv(frame, output)
    print(f"wrote {len(frame)} errors to {output}")
    print(f"superclasses: {classified_with}")  # the sidecar line: which definitions made these categories
    return 0

"""The per-model summary table (`model_summary`, schema v3): one row per model × dataset × group with the
figures of `analysis.taxonomy.metrics.model_metrics`, which the dashboard reads instead of aggregating every
prediction. Recomputed in the transaction that changes a model's rows.
"""

from __future__ import annotations

import duckdb

from analysis.store import queries


def refresh_summary(con: duckdb.DuckDBPyConnection, model_id: str | None = None, dataset: str | None = None) -> None:
    """Recompute `model_summary` for one model on one dataset, or for every stored model when both are None.

    Runs inside the caller's transaction (publish, reclassify, migration, bulk loads such as the benchmark's), and
    drops the Browse index (`error_index`), which the same change would leave stale.
    """
    if (model_id is None) != (dataset is None):
        raise ValueError(f"model_id={model_id!r} and dataset={dataset!r}: pass both (one model) or neither (all)")
    con.execute(queries.ERROR_INDEX_DROP)  # derived from the same rows: never left stale (analysis/store/error_index.py)
    if model_id is None:
        con.execute(queries.SUMMARY_DELETE_ALL)
        con.execute(queries.SUMMARY_INSERT_ALL, queries.SUMMARY_PARAMS)
    else:
        con.execute(queries.SUMMARY_DELETE_MODEL, [model_id, dataset])
        con.execute(queries.SUMMARY_INSERT_MODEL, {**queries.SUMMARY_PARAMS, "model": model_id, "dataset": dataset})

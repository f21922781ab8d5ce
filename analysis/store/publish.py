"""The atomic write of a model's predictions: one transaction stores its predictions, classifies the
(image, prediction) pairs not classified yet, recomputes its summary and upserts the model row (DESIGN §5).

A failure anywhere rolls all of it back. `publish_models` writes several models' whole predictions in one transaction
(a bulk import: the batch's new pairs classified once, the summaries computed from the batch's rows). `reclassify`
classifies every stored pair again (after a change of knowledge).
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from dataclasses import asdict, dataclass, field, replace

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import paths
from analysis.store import database, queries, summary

WRITE_MODES = ("new", "replace", "merge")
MAX_PARAMS = 10**13  # ten trillion parameters: far above any image classifier, well inside BIGINT
_DESCRIBING = ("arch", "family", "training_data", "params")  # the fields a run or an import says about a model


def check_model_id(model_id: object) -> str:
    """`model_id` when it is a non-empty string without control or invisible characters; ValueError otherwise."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValueError(f"model_id={model_id!r} must be a non-empty string, e.g. 'efficientnet-lite0'")
    bad = next(((i, c) for i, c in enumerate(model_id) if unicodedata.category(c) in ("Cc", "Cf", "Cs")), None)
    if bad is not None:
        raise ValueError(f"model id {model_id!r} contains the control or invisible character U+{ord(bad[1]):04X} "
                         f"at position {bad[0]}; use printable characters only, e.g. 'efficientnet-lite0'")
    return model_id


@dataclass(frozen=True)
class ModelRecord:
    """A row of `models`: id, architecture, family, training data, parameter count, source and free metadata."""

    model_id: str
    source: str                      # run | import | paper
    arch: str | None = None
    family: str | None = None
    training_data: str | None = None
    params: int | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_model_id(self.model_id)
        if self.source not in ("run", "import", "paper"):
            raise ValueError(f"source={self.source!r} must be one of run, import, paper")
        if self.params is not None and (isinstance(self.params, bool) or not isinstance(self.params, (int, np.integer))
                                        or not 0 <= self.params <= MAX_PARAMS):
            raise ValueError(f"params={self.params!r} must be an integer from 0 to {MAX_PARAMS:.0e} "
                             "(number of parameters)")

    def sql_params(self) -> dict:
        row = asdict(self)
        row["params"] = None if self.params is None else int(self.params)
        row["metadata"] = json.dumps(self.metadata, sort_keys=True, default=str)
        return row


def stored_record(con: duckdb.DuckDBPyConnection, model_id: str) -> ModelRecord | None:
    """The stored `models` row of `model_id` as a ModelRecord, or None when there is none."""
    row = database.first(con, queries.MODEL_RECORD, [model_id])
    if row is None:
        return None
    metadata = json.loads(row[5]) if row[5] else {}
    return ModelRecord(model_id, row[0], arch=row[1], family=row[2], training_data=row[3], params=row[4],
                       metadata=metadata if isinstance(metadata, dict) else {"stored": metadata})


def merged_record(con: duckdb.DuckDBPyConnection, model: ModelRecord) -> ModelRecord:
    """`model` over its stored row: what `model` leaves unset keeps its stored value, and the stored source stays.

    A field both give differently is refused when the sources differ (an import cannot relabel what a run or the
    paper stored) or both are runs (a run merges its rows with the stored ones: two architectures under one id);
    otherwise the new value wins (a re-import may correct its metadata).
    """
    stored = stored_record(con, model.model_id)
    if stored is None:
        return model
    if stored.source != model.source or model.source == "run":
        for name in _DESCRIBING:
            old, new = getattr(stored, name), getattr(model, name)
            if old is not None and new is not None and old != new:
                keep = f", or leave {name} out of metadata.json to keep the stored value" if model.source == "import" \
                    else ""
                raise ValueError(f"model id {model.model_id!r} is stored from a {stored.source} with {name} {old!r}, "
                                 f"but this {model.source} gives {name} {new!r}; store it under another "
                                 f"--model-id{keep}")
    kept = {name: getattr(model, name) if getattr(model, name) is not None else getattr(stored, name)
            for name in _DESCRIBING}
    return replace(model, source=stored.source, metadata={**stored.metadata, **model.metadata}, **kept)



def labelset_for(con: duckdb.DuckDBPyConnection, dataset: str):
    """The LabelSet of a stored dataset: ReaL for label mode `real`, the stored targets for `single`."""
    from analysis.taxonomy import labelsets

    row = database.first(con, queries.DATASET_GET, [dataset])
    if row is None:
        raise ValueError(f"dataset={dataset!r} is not in the store; run `python -m analysis build` "
                         "(imagenet-val, samples) or predict on a folder first")
    if row[1] == "real":
        return labelsets.real()
    targets = con.execute(queries.IMAGES_OF, [dataset]).fetchnumpy()
    return labelsets.single(np.asarray(targets["target"], dtype=np.int16))


def _classify_incoming(con: duckdb.DuckDBPyConnection, dataset: str, sql: str, params: list) -> int:
    """Classify the pairs `sql` selects (image_id, prediction) and insert them into pair_categories."""
    from analysis.taxonomy import classify

    pairs = con.execute(sql, params).fetchnumpy()
    if len(pairs["image_id"]) == 0:
        return 0
    result = classify.classify_pairs(np.asarray(pairs["image_id"]), np.asarray(pairs["prediction"]),
                                     labelset_for(con, dataset))
    frame = pa.table({"image_id": pa.array(result["image_id"].to_numpy(np.int32)),
                      "prediction": pa.array(result["prediction"].to_numpy(np.int16)),
                      "category": pa.array(result["category"].astype(str).tolist(), pa.string()),
                      "reason": pa.array(result["reason"].astype(str).tolist(), pa.string())})
    database.insert_frame(con, queries.PAIRS_INSERT, frame, [dataset], name="_classified")
    return frame.num_rows


def reclassify(con: duckdb.DuckDBPyConnection) -> int:
    """Classify every stored pair again, then every model summary (in the caller's transaction); returns the pairs."""
    con.execute(queries.PAIRS_DELETE_ALL)
    total = 0
    for (dataset,) in con.execute(queries.PREDICTED_DATASETS).fetchall():
        pairs = con.sql(queries.DATASET_PAIRS, params=[dataset]).to_arrow_table()
        with database.registered(con, pairs):
            total += _classify_incoming(con, dataset, "SELECT image_id, prediction FROM _incoming", [])
        con.execute(queries.AFFECTED_CREATE)
        con.execute(queries.AFFECTED_ADD_DATASET, [dataset])
        con.execute(queries.PAIRS_ADJUST, {"dataset": dataset})
    summary.refresh_summary(con)
    return total


def prediction_table(image_ids: np.ndarray, predictions: np.ndarray, *, top5: np.ndarray | None = None,
                     top5_confidence: np.ndarray | None = None) -> pa.Table:
    """Arrow rows for `publish_predictions`: `image_ids (N,)`, `predictions (N,)`, `top5 (N, 5)`, `top5_confidence (N, 5)`.

    Inputs are trusted (callers validate them); confidence = top5_confidence[:, 0] when given.
    """
    n = len(image_ids)

    def _lists(values: np.ndarray | None, dtype, pa_type):
        if values is None:
            return pa.nulls(n, pa.list_(pa_type))
        values = np.ascontiguousarray(values, dtype=dtype)
        flat = pa.array(values.reshape(-1))
        return pa.ListArray.from_arrays(pa.array(np.arange(0, values.size + 1, values.shape[1], dtype=np.int32)), flat)

    conf = None if top5_confidence is None else np.asarray(top5_confidence, dtype=np.float32)[:, 0]
    return pa.table({
        "image_id": pa.array(np.asarray(image_ids, dtype=np.int32)),
        "prediction": pa.array(np.asarray(predictions, dtype=np.int16)),
        "top5": _lists(top5, np.int16, pa.int16()),
        "confidence": pa.nulls(n, pa.float32()) if conf is None else pa.array(conf),
        "top5_confidence": _lists(top5_confidence, np.float32, pa.float32()),
    })


def existing_predictions(con: duckdb.DuckDBPyConnection, model_id: str, dataset: str) -> int:
    """Number of stored predictions of `model_id` on `dataset` (0 when the model is unknown)."""
    return int(database.first(con, queries.PREDICTION_COUNT, [model_id, dataset])[0])


def check_new_model(con: duckdb.DuckDBPyConnection, model_id: str, dataset: str) -> None:
    """ValueError when `model_id` already has predictions on `dataset` (the caller did not ask to replace)."""
    n = existing_predictions(con, model_id, dataset)
    if n:
        raise ValueError(f"model id {model_id!r} already has {n} predictions on {dataset} in the store; "
                         "pass --replace to overwrite them, or choose another --model-id")


def check_superclasses(con: duckdb.DuckDBPyConnection) -> None:
    """StoreError when the store was classified with other superclass definitions than this process's active ones.

    New pairs must be classified like the stored ones; the fix is a build with the wanted definitions.
    """
    from analysis.knowledge import superclasses

    recorded = database.meta(con)
    active = superclasses.active()
    if recorded.get("superclasses_sha256", active.sha256) != active.sha256:
        raise database.StoreError(
            f"the store was classified with the superclasses {recorded.get('superclasses')}, but this command "
            f"uses {active.describe()}; run `python -m analysis build --superclasses FILE` with the definitions you "
            f"want (it re-classifies every stored pair), or set {paths.SUPERCLASSES_ENV} to the store's file")


def publish_predictions(con: duckdb.DuckDBPyConnection, model: ModelRecord, dataset: str, rows: pa.Table, *,
                        mode: str = "new", images: tuple[tuple, pa.Table] | None = None,
                        run_id: str | None = None, run_seconds: float = 0.0,
                        statements: tuple[tuple[str, list], ...] = ()) -> dict[str, int]:
    """Write a model's predictions on `dataset` in ONE transaction, classifying the pairs not yet classified.

    `rows` from `prediction_table`. `mode`: `new` (error if the model already has predictions there),
    `replace` (drop its previous predictions on the dataset first) or `merge` (replace only the images in
    `rows`: runs, shards, resumes). `images` = (datasets row, images table) registers a new image set in
    the same transaction; `run_id` marks that run done and drops its staged rows. The model's summary on
    `dataset` is recomputed from all its rows there, and its row is `merged_record` (what `model` leaves unset
    keeps its stored value). `statements`: more (sql, params) run in the same transaction (a shard's
    `ingested_shards` row). Returns counts.
    """
    if not isinstance(model, ModelRecord):
        raise TypeError(f"model={model!r} must be an analysis.store.publish.ModelRecord")
    if mode not in WRITE_MODES:
        raise ValueError(f"mode={mode!r} must be one of {WRITE_MODES}")
    if not isinstance(rows, pa.Table) or rows.num_rows == 0:
        raise ValueError("rows must be a non-empty pyarrow Table from analysis.store.publish.prediction_table")
    with database.transaction(con):
        if images is not None and database.first(con, queries.DATASET_GET, [images[0][0]]) is None:
            con.execute(queries.DATASET_UPSERT, list(images[0]))
            database.insert_frame(con, queries.IMAGES_INSERT, images[1], [images[0][0]])
        if database.first(con, queries.DATASET_GET, [dataset]) is None:
            raise ValueError(f"dataset={dataset!r} is not in the store; run `python -m analysis build` first")
        if mode == "new":
            check_new_model(con, model.model_id, dataset)
        check_superclasses(con)
        model = merged_record(con, model)
        with database.registered(con, rows):
            unknown = [r[0] for r in con.execute(queries.INCOMING_UNKNOWN_IMAGES, [dataset]).fetchall()]
            if unknown:
                raise ValueError(f"image ids {unknown} are not images of dataset {dataset!r}")
            repeated = [r[0] for r in con.execute(queries.INCOMING_DUPLICATES).fetchall()]
            if repeated:
                raise ValueError(f"image ids {repeated} appear more than once in the rows; pass one prediction per image")
            con.execute(queries.AFFECTED_CREATE)
            con.execute(queries.AFFECTED_ADD_MODEL, [model.model_id, dataset, mode == "replace"])
            con.execute(queries.AFFECTED_ADD_INCOMING)
            if mode == "replace":
                con.execute(queries.PREDICTIONS_DELETE, [model.model_id, dataset])
            else:
                con.execute(queries.PREDICTIONS_DELETE_INCOMING, [model.model_id, dataset])
            con.execute(queries.PREDICTIONS_INSERT, [model.model_id, dataset])
            new_pairs = _classify_incoming(con, dataset, queries.UNCLASSIFIED_PAIRS, [dataset])
            con.execute(queries.PAIRS_ADJUST, {"dataset": dataset})
        summary.refresh_summary(con, model.model_id, dataset)  # its rows only: other models' pairs keep their categories
        con.execute(queries.MODEL_UPSERT, model.sql_params())
        if run_id is not None:
            con.execute(queries.STAGING_DELETE, [run_id])
            con.execute(queries.RUN_FINISH, ["done", None, float(run_seconds), run_id])
        for sql, params in statements:
            con.execute(sql, params)
    return {"predictions": rows.num_rows, "new_pairs": new_pairs}


def classify_new_pairs(con: duckdb.DuckDBPyConnection, dataset: str, pairs: pa.Table) -> int:
    """Classify the distinct (image_id, prediction) pairs of `pairs` not yet in pair_categories; returns how many.

    Runs in the caller's transaction; the new pairs get `models` = 0 (the caller adjusts the counts).
    """
    if not isinstance(pairs, pa.Table) or not {"image_id", "prediction"} <= set(pairs.column_names):
        got = pairs.column_names if isinstance(pairs, pa.Table) else type(pairs).__name__
        raise TypeError(f"pairs ({got}) must be a pyarrow Table with columns image_id and prediction")
    with database.registered(con, pairs.select(["image_id", "prediction"])):
        return _classify_incoming(con, dataset, queries.UNCLASSIFIED_PAIRS, [dataset])


def _sorted_rows(model_id: str, rows: pa.Table) -> pa.Table:
    """`rows` by image id; ValueError naming the model when an image id appears twice."""
    image_ids = rows["image_id"].to_numpy()
    if len(image_ids) > 1 and not (np.diff(image_ids) > 0).all():
        order = np.argsort(image_ids, kind="stable")
        ordered = image_ids[order]
        repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
        if len(repeated):
            raise ValueError(f"model {model_id!r}: image ids {repeated[:5].tolist()} appear more than once in its "
                             "rows; pass one prediction per image")
        rows = rows.take(pa.array(order))
    return rows


def publish_models(con: duckdb.DuckDBPyConnection, dataset: str, batch: list[tuple[ModelRecord, pa.Table]], *,
                   replace: bool = False) -> dict[str, int]:
    """Write several models' whole predictions on `dataset` in ONE transaction (a bulk import, e.g. the paper's zoo).

    `batch`: (ModelRecord, rows from `prediction_table`) per model, each model once. Like `publish_predictions` in
    mode `new` (or `replace` when `replace`) for each, but the batch's new pairs are classified once, the pair model
    counts adjusted once, and the summaries computed from the batch's rows. Returns counts.
    """
    if not isinstance(batch, (list, tuple)) or not batch:
        raise ValueError(f"batch={batch!r} must be a non-empty list of (ModelRecord, pyarrow Table) pairs")
    for item in batch:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], ModelRecord)):
            raise TypeError(f"batch item {item!r} must be a (analysis.store.publish.ModelRecord, pyarrow Table) pair")
        if not isinstance(item[1], pa.Table) or item[1].num_rows == 0:
            raise ValueError(f"rows of model {item[0].model_id!r} must be a non-empty pyarrow Table from "
                             "analysis.store.publish.prediction_table")
    ids = [model.model_id for model, _ in batch]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"model ids {twice} appear more than once in the batch; pass each model once")
    columns = ["image_id", "prediction", "top5", "confidence", "top5_confidence"]
    tables = [_sorted_rows(model.model_id, r.select(columns)) for model, r in batch]
    rows = pa.concat_tables(tables, promote_options="default")
    m = np.repeat(np.arange(len(batch), dtype=np.int32), [r.num_rows for r in tables])
    rows = rows.append_column("model_id", pa.array(ids, pa.string()).take(pa.array(m)))
    names = pa.table({"m": pa.array(np.arange(len(batch), dtype=np.int32)), "model_id": pa.array(ids, pa.string())})
    with database.transaction(con):
        if database.first(con, queries.DATASET_GET, [dataset]) is None:
            raise ValueError(f"dataset={dataset!r} is not in the store; run `python -m analysis build` first")
        check_superclasses(con)
        records = [merged_record(con, model) for model, _ in batch]
        with database.registered(con, rows, "_batch"), database.registered(con, names, "_batch_models"):
            unknown = [r[0] for r in con.execute(queries.BATCH_UNKNOWN_IMAGES, {"dataset": dataset}).fetchall()]
            if unknown:
                raise ValueError(f"image ids {unknown} are not images of dataset {dataset!r}")
            con.execute(queries.AFFECTED_CREATE)
            for (model_id,) in con.execute(queries.BATCH_MAYBE_STORED, {"dataset": dataset}).fetchall():
                if not replace:
                    check_new_model(con, model_id, dataset)
                    continue
                con.execute(queries.AFFECTED_REMOVE_MODEL, [model_id, dataset])
                con.execute(queries.PREDICTIONS_DELETE, [model_id, dataset])
            con.execute(queries.PREDICTIONS_INSERT_BATCH, {"dataset": dataset})
            new_pairs = classify_new_pairs(con, dataset, rows)
            con.execute(queries.AFFECTED_ADD_BATCH)
            con.execute(queries.PAIRS_ADJUST, {"dataset": dataset})
            con.execute(queries.ERROR_INDEX_DROP)  # stale now (analysis/store/error_index.py)
            for model_id in ids:
                con.execute(queries.SUMMARY_DELETE_MODEL, [model_id, dataset])
            con.execute(queries.SUMMARY_INSERT_BATCH, {**queries.SUMMARY_PARAMS, "dataset": dataset})
        for record in records:
            con.execute(queries.MODEL_UPSERT, record.sql_params())
    return {"models": len(batch), "predictions": rows.num_rows, "new_pairs": new_pairs}



def models_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Stored models: model_id, source, family, arch, training_data, params, datasets, predictions, top1."""
    return con.execute(queries.MODELS_LIST).df()


def cli_models(args: argparse.Namespace) -> int:
    """`python -m analysis models [--db FILE] [--json]`: id, source, family, datasets, predictions, top-1."""
    con = database.connect(args.db, read_only=True)
    try:
        df = models_frame(con)
    finally:
        con.close()
    if args.json:
        print(df.to_json(orient="records", indent=1))
    elif df.empty:
        print("no models in the store; run `python -m analysis predict` or `import-predictions`")
    else:
        print(df[["model_id", "source", "family", "datasets", "predictions", "top1"]].to_string(index=False))
    return 0

"""The DuckDB store: the one owner of connections, schema creation and migrations, the reference build
and the atomic write of a model's predictions (DESIGN §5).

Every write of a model is one transaction: its predictions, the categories of its new (image, prediction)
pairs, its per-model summary, the model row and, for a run, the end of the run. A failure anywhere rolls
all of it back.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import paths, queries
from analysis.errors import UserError

SCHEMA_VERSION = 3
SCHEMA_SQL = Path(__file__).with_name("schema.sql")
SQL_DIR = Path(__file__).with_name("sql")
WRITE_MODES = ("new", "replace", "merge")
# Files whose content decides the category of a pair: a change re-classifies every stored pair on build.
_CLASSIFIER_FILES = (paths.SUPERCLASSES_JSON, paths.COLLAPSED_JSON, paths.WORDNET_JSON,
                     *(paths.ROOT / "analysis" / path for path in (
                         "taxonomy/classify.py", "taxonomy/labelsets.py", "knowledge/cooccurrence.py",
                         "taxonomy/categories.py")))


class StoreError(UserError):
    """The store cannot be used as asked (locked, missing, newer schema); the message says what to do."""


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
        if not isinstance(self.model_id, str) or not self.model_id.strip():
            raise ValueError(f"model_id={self.model_id!r} must be a non-empty string, e.g. 'efficientnet-lite0'")
        if self.source not in ("run", "import", "paper"):
            raise ValueError(f"source={self.source!r} must be one of run, import, paper")
        if self.params is not None and (not isinstance(self.params, (int, np.integer)) or self.params < 0):
            raise ValueError(f"params={self.params!r} must be a non-negative integer (number of parameters)")

    def sql_params(self) -> dict:
        row = asdict(self)
        row["params"] = None if self.params is None else int(self.params)
        row["metadata"] = json.dumps(self.metadata, sort_keys=True, default=str)
        return row


# --- connections and schema ----------------------------------------------------------------------------


def connect(path: Path | str | None = None, *, read_only: bool = False, wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Open the store (default `paths.db_path()`); a write connection creates or migrates the schema.

    Retries for up to `wait` seconds while another process holds the file, then raises StoreError naming
    the file and the holder. A read-only connection needs an existing store at the current schema version.
    """
    path = Path(path) if path is not None else paths.db_path()
    if read_only and not path.is_file():
        raise FileNotFoundError(f"store {path} does not exist; create it with `python -m analysis build --db {path}`")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(0.0, float(wait))
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise StoreError(f"store {path} cannot be opened: {exc}") from None
            if time.monotonic() >= deadline:
                holder = str(exc).split("Conflicting lock is held in", 1)[-1].split(". See", 1)[0].strip()
                raise StoreError(f"store {path} is locked by another process ({holder}); close the dashboard or wait "
                                 "for the other command to finish, then retry") from None
            time.sleep(0.2)
        except duckdb.ConnectionException as exc:
            raise StoreError(f"store {path} is already open in this process with other settings ({exc}); "
                             "close that connection first") from None
        except duckdb.Error as exc:
            raise StoreError(f"store {path} is not a usable DuckDB file ({exc}); move it away and run build") from None
    con.execute("SET enable_progress_bar = false")  # never DuckDB's own bar on the user's terminal
    try:
        if read_only:
            version = schema_version(con)
            if version != SCHEMA_VERSION:
                raise StoreError(f"store {path} has schema version {version}, this code needs {SCHEMA_VERSION}; "
                                 f"run `python -m analysis build --db {path}`")
        else:
            migrate(con)
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT around the block; any exception (or interrupt) rolls everything back."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def first(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> tuple | None:
    """The first row of a query, or None; reads the whole result (DuckDB keeps a half-read one open)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The store's schema version from `meta` (0 for an empty file)."""
    has_meta = first(con, queries.HAS_META)[0]
    if not has_meta:
        return 0
    row = first(con, queries.META_GET, ["schema_version"])
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema to SCHEMA_VERSION (schema.sql, then sql/migrate_NNN.sql in order) in one transaction."""
    version = schema_version(con)
    if version > SCHEMA_VERSION:
        raise StoreError(f"the store has schema version {version}, newer than this code ({SCHEMA_VERSION}); "
                         "update the project")
    if version == SCHEMA_VERSION:
        return version
    with transaction(con):
        if version < 1:
            con.execute(SCHEMA_SQL.read_text())
            version = 1
        for v in range(version + 1, SCHEMA_VERSION + 1):
            con.execute((SQL_DIR / f"migrate_{v:03d}.sql").read_text())
            if v == 3:  # the summary of the models already stored (SQL files cannot share queries' statements)
                refresh_summary(con)
        con.execute(queries.META_SET, ["schema_version", str(SCHEMA_VERSION)])
    return SCHEMA_VERSION


def table_checksums(con: duckdb.DuckDBPyConnection, *, exclude: tuple[str, ...] = ()) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows, XOR of row hashes, sum of row hashes) — equal checksums mean equal contents."""
    tables = [r[0] for r in con.execute(queries.BASE_TABLES).fetchall() if r[0] not in exclude]
    return {t: tuple(int(v) for v in first(con, queries.table_checksum(t))) for t in tables}


def meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """All `meta` keys: schema_version, built_at, classifier_fingerprint, oov_check, missing_sources."""
    return dict(con.execute(queries.META_ALL).fetchall())


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, frame, name: str = "_incoming") -> Iterator[None]:
    """`frame` (Arrow or pandas) visible to SQL as `name` inside the block."""
    con.register(name, frame)
    try:
        yield
    except BaseException:
        try:  # an aborted transaction refuses even this; the original error is the one to report
            con.unregister(name)
        except duckdb.Error:
            pass
        raise
    con.unregister(name)


def _insert_frame(con: duckdb.DuckDBPyConnection, sql: str, frame, params: list | None = None, *,
                  name: str = "_incoming") -> None:
    with registered(con, frame, name):
        con.execute(sql, params or [])


# --- the reference build -------------------------------------------------------------------------------


def _say(message: str, progress: bool) -> None:
    if progress:
        print(f"build: {message}", file=sys.stderr, flush=True)


def _classes_frame() -> pd.DataFrame:
    from analysis.knowledge import classes, superclasses, wordnet

    graph = wordnet.load()
    cls = classes.classes()
    return pd.DataFrame({
        "class_id": np.arange(len(cls), dtype=np.int16),
        "wnid": [c.wnid for c in cls],
        "name": [c.name for c in cls],
        "lemmas": [list(c.lemmas) for c in cls],
        "definition": [c.definition for c in cls],
        "grp": superclasses.class_groups().tolist(),
        "wordnet_path": [graph.display_path(c.wnid) for c in cls],
    })


def _superclass_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    from analysis.knowledge import superclasses

    defs = superclasses.definitions()
    member = superclasses.membership()
    sc = pd.DataFrame({"superclass_id": [d.id for d in defs], "name": [d.name for d in defs],
                       "grp": [d.group for d in defs], "size": member.sum(axis=0).astype(np.int32)})
    rows, cols = np.nonzero(member)
    links = pd.DataFrame({"class_id": rows.astype(np.int16), "superclass_id": np.array([d.id for d in defs])[cols]})
    return sc, links


def images_table(labelset, file_names: list[str]) -> pa.Table:
    """Rows of `images` for an image set: one per `file_names (N,)` entry, targets and labels from `labelset`."""
    n = len(labelset.targets)
    return pa.table({
        "image_id": pa.array(np.arange(n, dtype=np.int32)),
        "file_name": pa.array(file_names, pa.string()),
        "target": pa.array(np.asarray(labelset.targets, dtype=np.int16)),
        "labels": pa.array([list(l) for l in labelset.labels_list], pa.list_(pa.int16())),
        "evaluated": pa.array(np.asarray(labelset.evaluated, dtype=bool)),
        "non_prototypical": pa.array(np.asarray(labelset.non_prototypical, dtype=bool)),
    })


def _dataset_loads(missing: list[str]) -> list[tuple[tuple, pa.Table]]:
    """(datasets row, images table) for imagenet-val (ReaL) and samples (single labels), when available."""
    from analysis.knowledge import classes
    from analysis.taxonomy import labelsets
    real = labelsets.real()
    val_root = paths.imagenet_dir()
    out = [(("imagenet-val", "real", str(val_root) if val_root else None,
             "ImageNet validation set (50,000 images), ReaL multi-labels"),
            images_table(real, [classes.val_file_name(i) for i in range(classes.NUM_VAL)]))]
    samples = classes.sample_images()
    if samples:
        single = labelsets.single(np.array([c for _, c in samples], dtype=np.int16))
        out.append((("samples", "single", str(samples[0][0].parent),
                     "One sample image per class (EliSchwartz/imagenet-sample-images), single labels"),
                    images_table(single, [p.name for p, _ in samples])))
    else:
        missing.append("sample_images")
    return out


def _optional(loader, source: str, missing: list[str]):
    try:
        return loader()
    except FileNotFoundError:
        missing.append(source)
        return None


def _paper_frames(missing: list[str]) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    from analysis.knowledge import zoo

    models = _optional(zoo.load_models, "zoo_models", missing)
    if models is not None:
        models = models.rename(columns={"dataset": "training_data"})
        models["extra_annotations"] = models["extra_annotations"].astype(str)
    stats = _optional(zoo.load_all_stats, "zoo_stats", missing)
    if stats is not None:
        stats = pd.DataFrame({
            "model_dir_id": stats["model_dir_id"], "dataset": stats["dataset"], "grp": stats["group"],
            "num_params": stats["num_params"], "training_data": stats["training_data"], "arch": stats["arch"],
            "arch_family": stats["arch_family"], "arch_group": stats["arch_group"],
            "top1": stats["top1_val_acc"], "mla": stats["mla_group"], "mla_minor": stats["mla_group_minor_error"],
            "mla_explainable": stats["mla_group_explainable_error"], "num_errors": stats["num_group_top1_errors"],
            **{c: stats[c] for c in stats.columns if c.startswith("count_")},
        })
    return models, stats


def _experts_frame(missing: list[str]) -> pd.DataFrame | None:
    from analysis.knowledge import experts

    frames = []
    for expert, source in experts.EXPERTS.items():
        df = _optional(lambda e=expert: experts.load_expert(e), source, missing)
        if df is not None:
            frames.append(df)
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True).rename(columns={"image_index": "image_id"})


def classifier_fingerprint() -> str:
    """sha256 over the knowledge files and classifier sources that decide a pair's category."""
    digest = hashlib.sha256()
    for path in _CLASSIFIER_FILES:
        digest.update(path.name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()[:16]


def build(path: Path | str | None = None, *, progress: bool = True) -> dict[str, int]:
    """Create or refresh the store's reference tables in one transaction; safe to re-run.

    Loads classes, superclasses, datasets + images (imagenet-val with ReaL labels, samples), ReaL
    co-occurrences, expert labels and the paper's 962-model tables. Sources not fetched yet are skipped
    and listed in meta `missing_sources`. When the classifier's knowledge changed since the last build,
    every stored (image, prediction) pair is classified again. Returns row counts per table.
    """
    from analysis.knowledge import cooccurrence
    from analysis.taxonomy import labelsets
    con = connect(path)  # first: a locked or unusable store fails before the slow loading
    try:
        missing: list[str] = []
        _say("loading classes, WordNet paths and superclasses", progress)
        classes_df = _classes_frame()
        superclasses_df, links_df = _superclass_frames()
        _say("loading the image sets (imagenet-val with ReaL labels, samples)", progress)
        dataset_loads = _dataset_loads(missing)
        cooc = cooccurrence.pairs_table(labelsets.real_cooccurrence())
        _say("loading expert labels and the paper's model zoo", progress)
        experts_df = _experts_frame(missing)
        paper_models, paper_stats = _paper_frames(missing)
        fingerprint = classifier_fingerprint()
        with transaction(con):
            for table, frame in (("classes", classes_df), ("superclasses", superclasses_df),
                                 ("class_superclasses", links_df), ("expert_labels", experts_df),
                                 ("paper_models", paper_models), ("paper_model_stats", paper_stats)):
                con.execute(queries.REFERENCE_DELETES[table])
                if frame is not None:
                    _insert_frame(con, queries.REFERENCE_INSERTS[table], frame)
                _say(f"{table}: {0 if frame is None else len(frame)} rows", progress)
            for row, images in dataset_loads:
                con.execute(queries.DATASET_UPSERT, list(row))
                con.execute(queries.IMAGES_DELETE, [row[0]])
                _insert_frame(con, queries.IMAGES_INSERT, images, [row[0]])
                _say(f"images of {row[0]}: {images.num_rows} rows", progress)
            con.execute(queries.COOCCURRENCE_DELETE, ["real"])
            _insert_frame(con, queries.COOCCURRENCE_INSERT, cooc, ["real"])
            _say(f"cooccurrence: {len(cooc)} class pairs", progress)
            previous = first(con, queries.META_GET, ["classifier_fingerprint"])
            if previous and previous[0] != fingerprint:
                _say("the classifier's knowledge changed: classifying every stored pair again", progress)
                reclassify(con)
            for key, value in (("classifier_fingerprint", fingerprint), ("oov_check", "off"),
                               ("built_at", time.strftime("%Y-%m-%dT%H:%M:%S")),
                               ("missing_sources", " ".join(sorted(set(missing))))):
                con.execute(queries.META_SET, [key, value])
        counts = {t: c[0] for t, c in table_checksums(con).items()}
    finally:
        con.close()
    if missing:
        _say(f"skipped missing sources {sorted(set(missing))}; run `python -m analysis fetch`", progress)
    return counts


# --- classification and the atomic write of a model ------------------------------------------------------


def labelset_for(con: duckdb.DuckDBPyConnection, dataset: str):
    """The LabelSet of a stored dataset: ReaL for label mode `real`, the stored targets for `single`."""
    from analysis.taxonomy import labelsets

    row = first(con, queries.DATASET_GET, [dataset])
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
    _insert_frame(con, queries.PAIRS_INSERT, frame, [dataset], name="_classified")
    return frame.num_rows


def refresh_summary(con: duckdb.DuckDBPyConnection, model_id: str | None = None, dataset: str | None = None) -> None:
    """Recompute `model_summary` for one model on one dataset, or for every stored model when both are None.

    Runs inside the caller's transaction (publish, reclassify, migration, bulk loads such as the benchmark's).
    """
    if (model_id is None) != (dataset is None):
        raise ValueError(f"model_id={model_id!r} and dataset={dataset!r}: pass both (one model) or neither (all)")
    if model_id is None:
        con.execute(queries.SUMMARY_DELETE_ALL)
        con.execute(queries.SUMMARY_INSERT_ALL, queries.SUMMARY_PARAMS)
    else:
        con.execute(queries.SUMMARY_DELETE_MODEL, [model_id, dataset])
        con.execute(queries.SUMMARY_INSERT_MODEL, {**queries.SUMMARY_PARAMS, "model": model_id, "dataset": dataset})


def reclassify(con: duckdb.DuckDBPyConnection) -> int:
    """Classify every stored pair again, then every model summary (in the caller's transaction); returns the pairs."""
    con.execute(queries.PAIRS_DELETE_ALL)
    total = 0
    for (dataset,) in con.execute(queries.PREDICTED_DATASETS).fetchall():
        pairs = con.sql(queries.DATASET_PAIRS, params=[dataset]).to_arrow_table()
        with registered(con, pairs):
            total += _classify_incoming(con, dataset, "SELECT image_id, prediction FROM _incoming", [])
        con.execute(queries.AFFECTED_CREATE)
        con.execute(queries.AFFECTED_ADD_DATASET, [dataset])
        con.execute(queries.PAIRS_ADJUST, {"dataset": dataset})
    refresh_summary(con)
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
    return int(first(con, queries.PREDICTION_COUNT, [model_id, dataset])[0])


def check_new_model(con: duckdb.DuckDBPyConnection, model_id: str, dataset: str) -> None:
    """ValueError when `model_id` already has predictions on `dataset` (the caller did not ask to replace)."""
    n = existing_predictions(con, model_id, dataset)
    if n:
        raise ValueError(f"model id {model_id!r} already has {n} predictions on {dataset} in the store; "
                         "pass --replace to overwrite them, or choose another --model-id")


def publish_predictions(con: duckdb.DuckDBPyConnection, model: ModelRecord, dataset: str, rows: pa.Table, *,
                        mode: str = "new", images: tuple[tuple, pa.Table] | None = None,
                        run_id: str | None = None, run_seconds: float = 0.0) -> dict[str, int]:
    """Write a model's predictions on `dataset` in ONE transaction, classifying the pairs not yet classified.

    `rows` from `prediction_table`. `mode`: `new` (error if the model already has predictions there),
    `replace` (drop its previous predictions on the dataset first) or `merge` (replace only the images in
    `rows`: runs, shards, resumes). `images` = (datasets row, images table) registers a new image set in
    the same transaction; `run_id` marks that run done and drops its staged rows. The model's summary on
    `dataset` is recomputed from all its rows there. Returns counts.
    """
    if not isinstance(model, ModelRecord):
        raise TypeError(f"model={model!r} must be an analysis.store.ModelRecord")
    if mode not in WRITE_MODES:
        raise ValueError(f"mode={mode!r} must be one of {WRITE_MODES}")
    if not isinstance(rows, pa.Table) or rows.num_rows == 0:
        raise ValueError("rows must be a non-empty pyarrow Table from analysis.store.prediction_table")
    with transaction(con):
        if images is not None and first(con, queries.DATASET_GET, [images[0][0]]) is None:
            con.execute(queries.DATASET_UPSERT, list(images[0]))
            _insert_frame(con, queries.IMAGES_INSERT, images[1], [images[0][0]])
        if first(con, queries.DATASET_GET, [dataset]) is None:
            raise ValueError(f"dataset={dataset!r} is not in the store; run `python -m analysis build` first")
        if mode == "new":
            check_new_model(con, model.model_id, dataset)
        with registered(con, rows):
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
        refresh_summary(con, model.model_id, dataset)  # its rows only: other models' pairs keep their categories
        con.execute(queries.MODEL_UPSERT, model.sql_params())
        if run_id is not None:
            con.execute(queries.STAGING_DELETE, [run_id])
            con.execute(queries.RUN_FINISH, ["done", None, float(run_seconds), run_id])
    return {"predictions": rows.num_rows, "new_pairs": new_pairs}


# --- CLI ------------------------------------------------------------------------------------------------


def cli_build(args: argparse.Namespace) -> int:
    """`python -m analysis build [--db FILE]`."""
    path = Path(args.db) if args.db else paths.db_path()
    counts = build(path)
    print(f"built {path}: " + ", ".join(f"{t} {n}" for t, n in counts.items() if n))
    return 0


def models_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Stored models: model_id, source, family, arch, training_data, params, datasets, predictions, top1."""
    return con.execute(queries.MODELS_LIST).df()


def cli_models(args: argparse.Namespace) -> int:
    """`python -m analysis models [--db FILE] [--json]`: id, source, family, datasets, predictions, top-1."""
    con = connect(args.db, read_only=True)
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

"""The queries behind each dashboard page: small aggregated frames computed in DuckDB SQL.

Every function takes an open (read-only) DuckDB connection first, aggregates in SQL with bound
parameters and returns a small pandas frame (or dict), so the dashboard can cache it and the
benchmark can time it without Streamlit. Row lists are paged with `limit`/`offset`; `limit=None`
returns the whole result (what a CSV download needs).
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from analysis.store import pages, queries
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories

GROUPS = ("organism", "artifact", "other")
COMPARE_KINDS = ("only_a", "only_b", "both_different", "cell")
ZOO_X = ("mla", "top1")
PAPER_IMAGES = 50_000  # the paper's zoo statistics are over the ImageNet validation set
_NON_ERRORS = ("correct", "not_evaluated")


# One model's rows on one dataset: image, target, labels, prediction and the pair's category.
# pair_categories is joined by its full key; a pair not (yet) classified reads as correct/unclassified.
_MODEL_ROWS = """
    SELECT i.image_id, i.target, i.labels, i.evaluated, p.prediction, cl.grp,
           coalesce(c.category, CASE WHEN p.prediction = i.target THEN 'correct' ELSE 'unclassified' END) AS category
    FROM predictions p
    JOIN images i ON i.dataset = p.dataset AND i.image_id = p.image_id
    JOIN classes cl ON cl.class_id = i.target
    LEFT JOIN pair_categories c
      ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
    WHERE p.model_id = {model} AND p.dataset = $dataset
"""


def _rows(model_param: str) -> str:
    return _MODEL_ROWS.format(model=model_param)


def _check_text(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name}={value!r} must be a non-empty string, e.g. 'efficientnet-lite0'")
    return value


def _check_page(limit, offset) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit={limit!r} must be None or an integer >= 0")
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset={offset!r} must be an integer >= 0")


def _page_sql(limit, offset) -> str:
    # Both values are validated integers, so formatting them is safe (DuckDB cannot bind LIMIT NULL).
    return (f" LIMIT {int(limit)}" if limit is not None else "") + (f" OFFSET {int(offset)}" if offset else "")


def _df(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> pd.DataFrame:
    return con.execute(sql, params or {}).df()


# --- catalogue -----------------------------------------------------------------------------------


def models(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Stored models with predictions: model_id, arch, family, training_data, source, dataset, images."""
    return _df(con, """
        SELECT m.model_id, m.arch, m.family, m.training_data, m.source, s.dataset, s.images
        FROM model_summary s JOIN models m USING (model_id)
        WHERE s.grp = 'all'
        ORDER BY m.model_id, s.dataset
    """)


def datasets(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Datasets that hold at least one prediction, most predictions first."""
    rows = con.execute(
        "SELECT dataset FROM model_summary WHERE grp = 'all' GROUP BY dataset ORDER BY sum(images) DESC, dataset"
    ).fetchall()
    return [r[0] for r in rows]


def superclass_options(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Superclasses for the filter: superclass_id, name, grp, size (largest first)."""
    return _df(con, "SELECT superclass_id, name, grp, size FROM superclasses ORDER BY name, superclass_id")


def classification(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """How the stored pairs were classified: `superclasses` (file, format, sha256), `oov_check`, `built_at`."""
    rows = con.execute("SELECT key, value FROM meta WHERE key IN ('superclasses', 'oov_check', 'built_at')").fetchall()
    return {"superclasses": "not recorded (store built before they were; run build)", **dict(rows)}


def family_options(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Families of the stored models that have predictions."""
    rows = con.execute("""
        SELECT DISTINCT family FROM models
        WHERE family IS NOT NULL AND model_id IN (SELECT model_id FROM model_summary)
        ORDER BY family
    """).fetchall()
    return [r[0] for r in rows]


# --- overview --------------------------------------------------------------------------------------


def model_metrics(con: duckdb.DuckDBPyConnection, model_id: str, *, dataset: str) -> pd.DataFrame:
    """One row per group (all, organism, artifact, other) of a model on a dataset, accuracies in percent.

    Columns: grp, images, evaluated, errors, top1, real_accuracy (NaN unless the dataset has ReaL labels),
    mla, mla_minor, mla_explainable — read from `model_summary`, which holds the definitions of
    `analysis.taxonomy.metrics.model_metrics`: MLA averages per-image correctness over the evaluated images of each
    target class, then over classes.
    """
    _check_text("model_id", model_id)
    _check_text("dataset", dataset)
    sql = """
        SELECT s.grp, s.images, s.evaluated, s.errors, 100.0 * s.top1_hits / s.images AS top1,
               CASE WHEN d.label_mode = 'real' THEN 100.0 * s.real_hits / nullif(s.real_n, 0) END AS real_accuracy,
               s.mla, s.mla_minor, s.mla_explainable
        FROM model_summary s LEFT JOIN datasets d ON d.dataset = s.dataset
        WHERE s.model_id = $model AND s.dataset = $dataset
        ORDER BY s.grp <> 'all', s.grp
    """
    return _df(con, sql, {"model": model_id, "dataset": dataset}).astype(
        {"real_accuracy": "float64", "mla": "float64", "mla_minor": "float64", "mla_explainable": "float64"})


def composition(con: duckdb.DuckDBPyConnection, model_id: str, *, dataset: str,
                flt: ErrorFilter | None = None) -> pd.DataFrame:
    """Errors of a model by group and category: grp, category, errors, portion (of the group's errors).

    `flt` (its ROW_FILTER_FIELDS; dataset and models are the arguments) keeps only the errors it selects."""
    _check_text("model_id", model_id)
    _check_text("dataset", dataset)
    cond, fparams = _row_filter(flt, image="r.image_id", target="r.target", predictions=("r.prediction",),
                                categories_=("r.category",))
    sql = f"""
        WITH r AS ({_rows('$model')}),
        e AS (SELECT grp, category FROM r WHERE evaluated AND NOT list_contains($non_errors, category) AND {cond}),
        c AS (SELECT coalesce(grp, 'all') AS grp, category, count(*) AS errors
              FROM e GROUP BY GROUPING SETS ((category), (grp, category)))
        SELECT grp, category, errors, errors / sum(errors) OVER (PARTITION BY grp) AS portion
        FROM c ORDER BY grp, category
    """
    df = _df(con, sql, {"model": model_id, "dataset": dataset, "non_errors": list(_NON_ERRORS), **fparams})
    order = {c: i for i, c in enumerate(categories.IDS)}
    return df.sort_values(["grp", "category"], key=lambda s: s.map(order) if s.name == "category" else s,
                          ignore_index=True)


def top_confusions(con: duckdb.DuckDBPyConnection, model_id: str, *, dataset: str,
                   limit: int | None = 20, offset: int = 0, flt: ErrorFilter | None = None) -> pd.DataFrame:
    """Most frequent (target → prediction) mistakes of a model: target, prediction, names, category, images
    (of the errors `flt` selects, when given)."""
    _check_text("model_id", model_id)
    _check_text("dataset", dataset)
    _check_page(limit, offset)
    cond, fparams = _row_filter(flt, image="r.image_id", target="r.target", predictions=("r.prediction",),
                                categories_=("r.category",))
    sql = f"""
        WITH r AS ({_rows('$model')}),
        e AS (SELECT target, prediction, category, count(*) AS images
              FROM r WHERE evaluated AND NOT list_contains($non_errors, category) AND {cond}
              GROUP BY ALL)
        SELECT e.target, t.name AS target_name, e.prediction, p.name AS prediction_name, e.category, e.images
        FROM e JOIN classes t ON t.class_id = e.target JOIN classes p ON p.class_id = e.prediction
        ORDER BY e.images DESC, e.target, e.prediction, e.category
    """ + _page_sql(limit, offset)
    return _df(con, sql, {"model": model_id, "dataset": dataset, "non_errors": list(_NON_ERRORS), **fparams})


# --- browse: detail of one error ---------------------------------------------------------------------


def error_detail(con: duckdb.DuckDBPyConnection, model_id: str, dataset: str, image_id: int) -> dict | None:
    """Everything the detail panel shows for one (model, image); None when the model has no such prediction.

    Keys: image_id, file_name, root, target/prediction (id, name, wnid, wordnet_path, superclasses),
    labels [(id, name)], top5 [(id, name, confidence)], category, reason, expert [(expert, category,
    severity)], models_same_mistake, models_on_image.
    """
    _check_text("model_id", model_id)
    _check_text("dataset", dataset)
    if not isinstance(image_id, int) or image_id < 0:
        raise ValueError(f"image_id={image_id!r} must be an integer >= 0")
    params = {"model": model_id, "dataset": dataset, "image": image_id}
    row = con.execute("""
        SELECT i.image_id, i.file_name, d.root, i.target, i.labels, i.evaluated, p.prediction, p.top5,
               p.confidence, p.top5_confidence, c.category, c.reason
        FROM predictions p
        JOIN images i ON i.dataset = p.dataset AND i.image_id = p.image_id
        LEFT JOIN datasets d ON d.dataset = p.dataset
        LEFT JOIN pair_categories c ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
        WHERE p.model_id = $model AND p.dataset = $dataset AND p.image_id = $image
    """, params).fetchone()
    if row is None:
        return None
    (image, file_name, root, target, labels, evaluated, prediction, top5, confidence, top5_conf,
     category, reason) = row
    ids = sorted({int(target), int(prediction), *(labels or []), *(top5 or [])})
    info = {
        r[0]: {"id": r[0], "name": r[1], "wnid": r[2], "wordnet_path": list(r[3] or []), "superclasses": list(r[4] or [])}
        for r in con.execute("""
            SELECT cl.class_id, cl.name, cl.wnid, cl.wordnet_path,
                   list(s.name ORDER BY s.name) FILTER (WHERE s.name IS NOT NULL)
            FROM classes cl
            LEFT JOIN class_superclasses cs ON cs.class_id = cl.class_id
            LEFT JOIN superclasses s ON s.superclass_id = cs.superclass_id
            WHERE list_contains($ids, cl.class_id)
            GROUP BY ALL
        """, {"ids": ids}).fetchall()
    }
    counts = con.execute("""
        SELECT count(DISTINCT model_id) FILTER (WHERE prediction = $prediction), count(DISTINCT model_id)
        FROM predictions WHERE dataset = $dataset AND image_id = $image
    """, {"dataset": dataset, "image": image_id, "prediction": prediction}).fetchone()
    expert = con.execute("""
        SELECT expert, category, severity FROM expert_labels
        WHERE $dataset = 'imagenet-val' AND image_id = $image AND prediction = $prediction ORDER BY expert
    """, {"dataset": dataset, "image": image_id, "prediction": prediction}).fetchall()
    top5_conf = list(top5_conf or [])
    return {
        "model_id": model_id, "dataset": dataset, "image_id": int(image), "file_name": file_name, "root": root,
        "target": info[int(target)], "prediction": info[int(prediction)], "evaluated": bool(evaluated),
        "labels": [(int(l), info[int(l)]["name"]) for l in (labels or [])],
        "top5": [(int(c), info[int(c)]["name"], float(top5_conf[k]) if k < len(top5_conf) else None)
                 for k, c in enumerate(top5 or [])],
        "confidence": None if confidence is None else float(confidence),
        "category": category or ("correct" if prediction == target else "unclassified"), "reason": reason or "",
        "expert": [{"expert": e, "category": c, "severity": s} for e, c, s in expert],
        "models_same_mistake": int(counts[0]), "models_on_image": int(counts[1]),
    }


# --- compare two models ------------------------------------------------------------------------------


_PAIR_ROWS = f"""
    WITH a AS ({_rows('$model_a')}), b AS ({_rows('$model_b')})
    SELECT a.image_id, a.target, a.evaluated, a.prediction AS prediction_a, a.category AS category_a,
           b.prediction AS prediction_b, b.category AS category_b
    FROM a JOIN b USING (image_id)
"""


def _check_pair(model_a, model_b, dataset) -> None:
    _check_text("model_a", model_a)
    _check_text("model_b", model_b)
    _check_text("dataset", dataset)


def transition_matrix(con: duckdb.DuckDBPyConnection, model_a: str, model_b: str, *, dataset: str,
                      flt: ErrorFilter | None = None) -> pd.DataFrame:
    """Category under A × category under B over the evaluated images both models predicted: long form.

    `flt` keeps the images it selects under A or B (`_pair_filter`)."""
    _check_pair(model_a, model_b, dataset)
    cond, fparams = _pair_filter(flt)
    sql = f"""
        WITH pairs AS ({_PAIR_ROWS})
        SELECT category_a, category_b, count(*) AS images FROM pairs WHERE evaluated AND {cond} GROUP BY ALL
        ORDER BY category_a, category_b
    """
    return _df(con, sql, {"model_a": model_a, "model_b": model_b, "dataset": dataset, **fparams})


def _compare_where(kind: str) -> str:
    return {
        "only_a": "prediction_a <> target AND prediction_b = target",
        "only_b": "prediction_b <> target AND prediction_a = target",
        "both_different": "prediction_a <> target AND prediction_b <> target AND prediction_a <> prediction_b",
        "cell": "category_a = $category_a AND category_b = $category_b",
    }[kind]


def _check_kind(kind, category_a, category_b) -> dict:
    if kind not in COMPARE_KINDS:
        raise ValueError(f"kind={kind!r} is unknown; choose one of {COMPARE_KINDS}")
    if kind == "cell":
        if not category_a or not category_b:
            raise ValueError("kind='cell' needs category_a and category_b, e.g. category_a='correct'")
        return {"category_a": category_a, "category_b": category_b}
    return {}


def compare_images(con: duckdb.DuckDBPyConnection, model_a: str, model_b: str, *, dataset: str, kind: str,
                   category_a: str | None = None, category_b: str | None = None,
                   limit: int | None = 50, offset: int = 0, flt: ErrorFilter | None = None) -> pd.DataFrame:
    """Evaluated images where A and B differ (`kind`: only_a, only_b, both_different) or of one matrix cell
    (of the images `flt` selects under A or B, when given).

    Columns: image_id, file_name, target (+name), prediction_a/b (+names), category_a/b; by image_id.
    """
    _check_pair(model_a, model_b, dataset)
    _check_page(limit, offset)
    extra = _check_kind(kind, category_a, category_b)
    cond, fparams = _pair_filter(flt)
    extra.update(fparams)
    sql = f"""
        WITH pairs AS ({_PAIR_ROWS}),
        sel AS (SELECT * FROM pairs WHERE evaluated AND {_compare_where(kind)} AND {cond}
                ORDER BY image_id{_page_sql(limit, offset)})
        SELECT p.image_id, i.file_name, p.target, t.name AS target_name,
               p.prediction_a, pa.name AS prediction_a_name, p.category_a,
               p.prediction_b, pb.name AS prediction_b_name, p.category_b
        FROM sel p
        JOIN images i ON i.dataset = $dataset AND i.image_id = p.image_id
        JOIN classes t ON t.class_id = p.target
        JOIN classes pa ON pa.class_id = p.prediction_a
        JOIN classes pb ON pb.class_id = p.prediction_b
        ORDER BY p.image_id
    """
    return _df(con, sql, {"model_a": model_a, "model_b": model_b, "dataset": dataset, **extra})


def compare_counts(con: duckdb.DuckDBPyConnection, model_a: str, model_b: str, *, dataset: str,
                   flt: ErrorFilter | None = None) -> dict:
    """How many evaluated images only A, only B, or both (differently) get wrong, and how many both predicted
    (of the images `flt` selects under A or B, when given)."""
    _check_pair(model_a, model_b, dataset)
    cond, fparams = _pair_filter(flt)
    sql = f"""
        WITH pairs AS ({_PAIR_ROWS})
        SELECT count(*) FILTER (WHERE {_compare_where('only_a')}),
               count(*) FILTER (WHERE {_compare_where('only_b')}),
               count(*) FILTER (WHERE {_compare_where('both_different')}),
               count(*)
        FROM pairs WHERE evaluated AND {cond}
    """
    row = con.execute(sql, {"model_a": model_a, "model_b": model_b, "dataset": dataset, **fparams}).fetchone()
    return {"only_a": row[0], "only_b": row[1], "both_different": row[2], "shared_images": row[3]}


# --- model zoo -----------------------------------------------------------------------------------------


def zoo_points(con: duckdb.DuckDBPyConnection, *, category: str, x: str = "mla", grp: str = "all",
               dataset: str = "imagenet-val") -> pd.DataFrame:
    """One point per model: the paper's 962 (imagenet stats) and every stored model on `dataset`.

    Columns: model_id, source ('paper' | 'stored'), training_data, family, x (MLA or top-1, percent),
    portion (of the model's errors that are `category`), errors, dataset and images (what the point was measured
    on: the paper's models on the 50,000 ImageNet validation images, 'imagenet-val').
    """
    if x not in ZOO_X:
        raise ValueError(f"x={x!r} is unknown; choose one of {ZOO_X}")
    if grp not in ("all", *GROUPS):
        raise ValueError(f"grp={grp!r} is unknown; choose one of {('all', *GROUPS)}")
    if category not in categories.ERROR_IDS:
        raise ValueError(f"category={category!r} is not an error category; choose one of {categories.ERROR_IDS}")
    count_column = f"count_{category}"  # validated category id above: a known column name
    paper = _df(con, f"""
        SELECT model_dir_id AS model_id, 'paper' AS source, training_data, arch_family AS family,
               CASE WHEN $x = 'mla' THEN mla ELSE top1 END AS x,
               {count_column} / nullif(num_errors, 0) AS portion, num_errors AS errors,
               'imagenet-val' AS dataset, {PAPER_IMAGES}::BIGINT AS images
        FROM paper_model_stats WHERE dataset = 'imagenet' AND grp = $grp
        ORDER BY model_id
    """, {"x": x, "grp": grp})
    stored = _stored_zoo_points(con, category=category, x=x, grp=grp, dataset=dataset)
    return pd.concat([paper, stored], ignore_index=True)


def _stored_zoo_points(con, *, category: str, x: str, grp: str, dataset: str) -> pd.DataFrame:
    count_column = f"count_{category}"  # validated by the caller: a known column name
    return _df(con, f"""
        SELECT s.model_id, 'stored' AS source, m.training_data, m.family,
               CASE WHEN $x = 'mla' THEN s.mla ELSE 100.0 * s.top1_hits / s.images END AS x,
               s.{count_column} / nullif(s.errors, 0) AS portion, s.errors::INTEGER AS errors,
               s.dataset, s.images::BIGINT AS images
        FROM model_summary s JOIN models m USING (model_id)
        WHERE s.dataset = $dataset AND s.grp = $grp
        ORDER BY s.model_id
    """, {"dataset": dataset, "grp": grp, "x": x})


def superclass_confusions(con: duckdb.DuckDBPyConnection, model_id: str, *, dataset: str,
                          same_superclass: bool = False, include_none: bool = False, limit: int | None = 20,
                          offset: int = 0, flt: ErrorFilter | None = None) -> pd.DataFrame:
    """A model's mistakes rolled up the superclasses: which (target superclass → predicted superclass) pairs
    are confused most. Columns: target_superclass, prediction_superclass, errors.

    Each error counts once per pair of superclasses holding its target and its prediction. A pair where one
    superclass contains the other (all its classes) is no confusion between them and is dropped, as is one
    superclass with itself unless `same_superclass`. Classes in no superclass count under '(none)' only with
    `include_none`. `flt` keeps the errors it selects.
    """
    _check_text("model_id", model_id)
    _check_text("dataset", dataset)
    _check_page(limit, offset)
    cond, fparams = _row_filter(flt, image="r.image_id", target="r.target", predictions=("r.prediction",),
                                categories_=("r.category",))
    sql = f"""
        WITH r AS ({_rows('$model')}),
        e AS (SELECT image_id, target, prediction FROM r
              WHERE evaluated AND NOT list_contains($non_errors, category) AND {cond}),
        sizes AS (SELECT superclass_id, count(*) AS n FROM class_superclasses GROUP BY ALL),
        shared AS (
            SELECT o.superclass_id AS outer_id, i.superclass_id AS inner_id, count(*) AS n
            FROM class_superclasses o JOIN class_superclasses i ON i.class_id = o.class_id GROUP BY ALL
        ),
        nested AS (  -- (outer, inner): every class of inner is in outer
            SELECT outer_id, inner_id FROM shared JOIN sizes ON sizes.superclass_id = inner_id AND sizes.n = shared.n
        ),
        rolled AS (
            SELECT e.image_id, st.superclass_id AS t_id, sp.superclass_id AS p_id
            FROM e LEFT JOIN class_superclasses st ON st.class_id = e.target
            LEFT JOIN class_superclasses sp ON sp.class_id = e.prediction
        ),
        kept AS (
            SELECT * FROM rolled
            WHERE ($include_none OR (t_id IS NOT NULL AND p_id IS NOT NULL))
              AND (t_id IS NULL OR p_id IS NULL OR t_id <> p_id OR $same)
              AND NOT EXISTS (SELECT 1 FROM nested n WHERE t_id <> p_id AND ((n.outer_id = t_id AND n.inner_id = p_id)
                                                            OR (n.outer_id = p_id AND n.inner_id = t_id)))
        )
        SELECT coalesce(ts.name, '(none)') AS target_superclass, coalesce(ps.name, '(none)') AS prediction_superclass,
               count(*) AS errors
        FROM kept LEFT JOIN superclasses ts ON ts.superclass_id = t_id
        LEFT JOIN superclasses ps ON ps.superclass_id = p_id
        GROUP BY ALL ORDER BY errors DESC, target_superclass, prediction_superclass
    """ + _page_sql(limit, offset)
    return _df(con, sql, {"model": model_id, "dataset": dataset, "same": bool(same_superclass),
                          "include_none": bool(include_none), "non_errors": list(_NON_ERRORS), **fparams})


def dataset_roots(con: duckdb.DuckDBPyConnection) -> dict[str, str | None]:
    """Where each dataset's image files are (`datasets.root`, None when unknown)."""
    return dict(con.execute("SELECT dataset, root FROM datasets ORDER BY dataset").fetchall())


# --- browse at scale, the detail dialog ----------------------------------------------------------------

ERROR_SORTS = tuple(queries.ERROR_SORTS)
IMAGE_SORTS = tuple(queries.IMAGE_SORTS)


def _check_filter(flt) -> None:
    if not isinstance(flt, ErrorFilter):
        raise TypeError(f"flt={flt!r} must be an analysis.store.filters.ErrorFilter")


def errors_page(con: duckdb.DuckDBPyConnection, flt: ErrorFilter, *, sort: str = "image",
                limit: int | None = 24, offset: int = 0, total: int | None = None) -> pd.DataFrame:
    """`export.errors_frame`'s rows and columns for `flt`, in `sort` order (ERROR_SORTS: models = most models
    making the mistake first, confidence = most confident first, class = target then prediction name,
    category = taxonomy order, image = the export's order). Read by `pages.errors_page` (the same rows as a plain
    OFFSET, at a cost that does not grow with depth where it can); pass `total` (`export.count_errors(con, flt)`)."""
    _check_filter(flt)
    _check_page(limit, offset)
    return pages.errors_page(con, flt, sort=sort, limit=limit, offset=offset, total=total)


def error_images(con: duckdb.DuckDBPyConnection, flt: ErrorFilter, *, sort: str = "image",
                 limit: int | None = 24, offset: int = 0, total: int | None = None) -> pd.DataFrame:
    """One row per image with at least one error `flt` selects (columns: see `queries.error_images_sql`), read by
    `pages.error_images`; pass `total` (`count_error_images(con, flt)`) so a back-half page is read from the end."""
    _check_filter(flt)
    _check_page(limit, offset)
    return pages.error_images(con, flt, sort=sort, limit=limit, offset=offset, total=total)


def count_error_images(con: duckdb.DuckDBPyConnection, flt: ErrorFilter) -> int:
    """How many distinct images hold an error `flt` selects."""
    _check_filter(flt)
    sql, params = queries.count_error_images_sql(flt)
    return int(con.execute(sql, params).fetchall()[0][0])


def _check_ids(name: str, values) -> list[int]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name}={values!r} must be a list of integer ids, e.g. [0, 5]")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} holds {v!r}; every id must be an integer >= 0")
        out.append(int(v))
    return out


def image_predictions(con: duckdb.DuckDBPyConnection, dataset: str, image_ids, *,
                      models=()) -> pd.DataFrame:
    """Every stored model's prediction for some images (or only `models`'): dataset, image_id, model_id,
    prediction_id, prediction_name, prediction_wnid, confidence, target_id, category, reason, models_making_error."""
    _check_text("dataset", dataset)
    ids = _check_ids("image_ids", image_ids)
    if isinstance(models, str) or not all(isinstance(m, str) for m in models):
        raise TypeError(f"models={models!r} must be a sequence of model ids")
    return _df(con, queries.IMAGE_PREDICTIONS, {"dataset": dataset, "images": ids, "models": list(models)})


def cooccurrence_images(con: duckdb.DuckDBPyConnection, dataset: str, a: int, b: int, *,
                        exclude: int = -1, limit: int = 8) -> pd.DataFrame:
    """Images of `dataset` (other than `exclude`) whose labels hold both classes `a` and `b`, first `limit`:
    image_id, file_name, target_id, target_wnid, target_name, labels."""
    _check_text("dataset", dataset)
    for name, value in (("a", a), ("b", b), ("exclude", exclude), ("limit", limit)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name}={value!r} must be an integer")
    if limit < 0:
        raise ValueError(f"limit={limit!r} must be an integer >= 0")
    return _df(con, queries.COOCCURRENCE_IMAGES,
               {"dataset": dataset, "a": int(a), "b": int(b), "exclude": int(exclude), "limit": int(limit)})


# --- the sidebar filter on every page, the error tree, the zoo's datasets --------------------------------


def _row_filter(flt: ErrorFilter | None, **exprs) -> tuple[str, dict]:
    """`queries.row_filter_sql` for a view's rows ("TRUE" without a filter)."""
    if flt is None:
        return "TRUE", {}
    _check_filter(flt)
    return queries.row_filter_sql(flt, **exprs)


def _pair_filter(flt: ErrorFilter | None) -> tuple[str, dict]:
    """The filter over Compare's pairs: an image is kept when it matches under A or under B (target or either
    prediction in the superclass or name search; A's or B's category; A's or B's mistake made by k models)."""
    return _row_filter(flt, image="pairs.image_id", target="pairs.target",
                       predictions=("pairs.prediction_a", "pairs.prediction_b"),
                       categories_=("pairs.category_a", "pairs.category_b"))


TREE_LEVELS = ("group", "concept", "superclass", "class_name", "category")


def error_tree(con: duckdb.DuckDBPyConnection, flt: ErrorFilter) -> pd.DataFrame:
    """The errors `flt` selects (exactly `export.count_errors`'s rows) as a tree: one row per
    (group, concept, superclass, class, category) of the target with `errors`, plus the ids a drill-down needs.

    Columns: group, concept, superclass, superclass_id, class_id, class_name, category, errors. A class in several
    superclasses counts under its smallest one (then by name), so every error is counted once; a class in none is
    under '(no superclass)'. The concept is the superclass name before ':' (the WordNet synset the project's rules
    name, e.g. 'dog'), else the superclass name.
    """
    _check_filter(flt)
    joins, where, params = queries.error_where(flt)
    sql = f"""
        WITH keys AS ({queries._ERROR_KEYS.format(joins=joins, where=where)}),
        primary_sc AS (
            SELECT cs.class_id, arg_min(s.superclass_id, (s.size, s.name)) AS superclass_id
            FROM class_superclasses cs JOIN superclasses s USING (superclass_id) GROUP BY ALL
        ),
        counted AS (
            SELECT i.target AS class_id, k.category, count(*) AS errors
            FROM keys k JOIN images i ON i.dataset = k.dataset AND i.image_id = k.image_id GROUP BY ALL
        )
        SELECT cl.grp AS "group",
               CASE WHEN s.name IS NULL THEN '(no superclass)'
                    WHEN contains(s.name, ':') THEN trim(split_part(s.name, ':', 1)) ELSE s.name END AS concept,
               coalesce(s.name, '(no superclass)') AS superclass, s.superclass_id, c.class_id,
               cl.name AS class_name, c.category, c.errors
        FROM counted c JOIN classes cl ON cl.class_id = c.class_id
        LEFT JOIN primary_sc ps ON ps.class_id = c.class_id
        LEFT JOIN superclasses s ON s.superclass_id = ps.superclass_id
        ORDER BY "group", concept, superclass, class_name, c.category
    """
    return _df(con, sql, params)


def class_sets(con: duckdb.DuckDBPyConnection, flt: ErrorFilter) -> dict[str, set[int] | None]:
    """The class ids the filter's class conditions allow, for frames read outside the store (Experts):
    `group` (targets), `superclass` and `search` (target or prediction); None where the filter sets nothing."""
    _check_filter(flt)
    out: dict[str, set[int] | None] = {"group": None, "superclass": None, "search": None}
    if flt.groups:
        out["group"] = {r[0] for r in con.execute("SELECT class_id FROM classes WHERE list_contains($g, grp)",
                                                  {"g": list(flt.groups)}).fetchall()}
    if flt.superclasses:
        ids, concept_classes = queries.superclass_params(flt.superclasses)
        rows = con.execute("SELECT class_id FROM class_superclasses WHERE list_contains($s, superclass_id)",
                           {"s": ids}).fetchall() if ids else []
        out["superclass"] = {r[0] for r in rows} | set(concept_classes)
    if flt.class_search:
        out["search"] = {r[0] for r in con.execute("SELECT class_id FROM classes WHERE contains(lower(name), $q)",
                                                   {"q": flt.class_search.lower()}).fetchall()}
    return out

"""The store's SQL in one place: reference loads, model writes, runs, listings and the filter → SQL translation.

Every statement binds user values as parameters (`?` or `$name`); the only names spliced into SQL are
table names read from DuckDB's own catalogue and the fixed names of registered frames (`_incoming`, `_classified`).
"""

from __future__ import annotations

from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories

# --- schema and bookkeeping --------------------------------------------------------------------------

META_GET = "SELECT value FROM meta WHERE key = ?"
META_SET = "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)"
CHECKPOINT = "CHECKPOINT"  # a copy folds the .wal it was given into its file
META_ALL = "SELECT key, value FROM meta ORDER BY key"
HAS_META = """
    SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = 'meta'
"""
BASE_TABLES = """
    SELECT table_name FROM information_schema.tables
    WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name
"""


STORE_FILE = "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"


def _quoted(table: str) -> str:
    return '"' + table.replace('"', '""') + '"'


def table_checksum(table: str) -> str:
    """Row count, XOR and sum of row hashes of `table` (a catalogue name, quoted here)."""
    return (f"SELECT count(*), coalesce(bit_xor(hash(t)), 0), coalesce(sum(hash(t)::HUGEINT), 0) "
            f"FROM {_quoted(table)} AS t")


def table_count(table: str) -> str:
    """Row count of `table` (a catalogue name, quoted here)."""
    return f"SELECT count(*) FROM {_quoted(table)}"


# --- reference tables (build) ------------------------------------------------------------------------

REFERENCE_INSERTS = {
    "classes": "INSERT INTO classes SELECT class_id, wnid, name, lemmas, definition, grp, wordnet_path FROM _incoming",
    "superclasses": "INSERT INTO superclasses SELECT superclass_id, name, grp, size FROM _incoming",
    "class_superclasses": "INSERT INTO class_superclasses SELECT class_id, superclass_id FROM _incoming",
    "expert_labels": """INSERT INTO expert_labels SELECT expert, file_name, image_id, prediction, category, severity,
                        raw_category, raw_severity FROM _incoming""",
    "paper_models": """INSERT INTO paper_models SELECT model_id, source, arch, arch_group, arch_family, training_data,
                       extra_annotations FROM _incoming""",
    "paper_model_stats": """INSERT INTO paper_model_stats BY NAME SELECT * FROM _incoming""",
}
REFERENCE_DELETES = {t: f"DELETE FROM {t}" for t in REFERENCE_INSERTS}  # fixed names, no user values
DATASET_UPSERT = "INSERT OR REPLACE INTO datasets (dataset, label_mode, root, description) VALUES (?, ?, ?, ?)"
DATASET_GET = "SELECT dataset, label_mode, root, description FROM datasets WHERE dataset = ?"
IMAGES_DELETE = "DELETE FROM images WHERE dataset = ?"
IMAGES_INSERT = """
    INSERT INTO images (dataset, image_id, file_name, target, labels, evaluated, non_prototypical)
    SELECT ?, image_id, file_name, target, labels, evaluated, non_prototypical FROM _incoming
"""
IMAGES_OF = "SELECT image_id, file_name, target FROM images WHERE dataset = ? ORDER BY image_id"
IMAGE_COUNT = "SELECT count(*) FROM images WHERE dataset = ?"
# ImageFolder order: classes sorted by wnid, then file names sorted within each class folder.
IMAGEFOLDER_ORDER = """
    SELECT i.image_id FROM images i JOIN classes c ON c.class_id = i.target
    WHERE i.dataset = ? ORDER BY c.wnid, i.file_name
"""
COOCCURRENCE_DELETE = "DELETE FROM cooccurrence WHERE label_mode = ?"
COOCCURRENCE_INSERT = "INSERT INTO cooccurrence SELECT ?, a, b, images FROM _incoming"

# --- models and predictions --------------------------------------------------------------------------

MODEL_GET = "SELECT model_id, source, family FROM models WHERE model_id = ?"
MODEL_RECORD = "SELECT source, arch, family, training_data, params, metadata FROM models WHERE model_id = ?"
MODEL_COUNT = "SELECT count(*) FROM models"
MODEL_UPSERT = """
    INSERT OR REPLACE INTO models (model_id, arch, family, training_data, params, source, created_at, metadata)
    VALUES ($model_id, $arch, $family, $training_data, $params, $source, current_timestamp, $metadata)
"""
PREDICTION_COUNT = "SELECT count(*) FROM predictions WHERE model_id = ? AND dataset = ?"
PREDICTION_COUNTS = "SELECT model_id, count(*) FROM predictions WHERE dataset = ? GROUP BY model_id"
PREDICTIONS_DELETE = "DELETE FROM predictions WHERE model_id = ? AND dataset = ?"
PREDICTIONS_DELETE_INCOMING = """
    DELETE FROM predictions WHERE model_id = ? AND dataset = ? AND image_id IN (SELECT image_id FROM _incoming)
"""
PREDICTIONS_INSERT = """
    INSERT INTO predictions (model_id, dataset, image_id, prediction, top5, confidence, top5_confidence)
    SELECT ?, ?, image_id, prediction, top5, confidence, top5_confidence FROM _incoming ORDER BY image_id
"""
INCOMING_UNKNOWN_IMAGES = """
    SELECT n.image_id FROM _incoming n ANTI JOIN images i ON i.dataset = ? AND i.image_id = n.image_id
    ORDER BY n.image_id LIMIT 5
"""
UNCLASSIFIED_PAIRS = """
    SELECT DISTINCT n.image_id, n.prediction FROM _incoming n
    ANTI JOIN pair_categories c ON c.dataset = ? AND c.image_id = n.image_id AND c.prediction = n.prediction
    ORDER BY n.image_id, n.prediction
"""
DATASET_PAIRS = "SELECT DISTINCT image_id, prediction FROM predictions WHERE dataset = ? ORDER BY ALL"
PREDICTED_DATASETS = "SELECT DISTINCT dataset FROM predictions ORDER BY dataset"
PAIRS_INSERT = """
    INSERT INTO pair_categories (dataset, image_id, prediction, category, reason, models)
    SELECT ?, image_id, prediction, category, reason, 0 FROM _classified
"""
# Keep pair_categories.models current: -1 for each prediction a publish removes, +1 for each it adds (a model
# has at most one prediction per image, so the count of rows is the count of models).
AFFECTED_CREATE = "CREATE OR REPLACE TEMP TABLE _affected (image_id INTEGER, prediction SMALLINT, delta INTEGER)"
AFFECTED_ADD_MODEL = """
    INSERT INTO _affected SELECT image_id, prediction, -1 FROM predictions
    WHERE model_id = ? AND dataset = ? AND (? OR image_id IN (SELECT image_id FROM _incoming))
"""
AFFECTED_ADD_INCOMING = "INSERT INTO _affected SELECT image_id, prediction, 1 FROM _incoming"
AFFECTED_ADD_DATASET = "INSERT INTO _affected SELECT image_id, prediction, 1 FROM predictions WHERE dataset = ?"
PAIRS_ADJUST = """
    UPDATE pair_categories c SET models = c.models + n.delta
    FROM (SELECT image_id, prediction, sum(delta) AS delta FROM _affected GROUP BY ALL HAVING sum(delta) <> 0) n
    WHERE c.dataset = $dataset AND c.image_id = n.image_id AND c.prediction = n.prediction
"""
INCOMING_DUPLICATES = "SELECT image_id FROM _incoming GROUP BY image_id HAVING count(*) > 1 ORDER BY 1 LIMIT 5"

PAIRS_DELETE_ALL = "DELETE FROM pair_categories"
PREDICTED_IMAGES = "SELECT image_id FROM predictions WHERE model_id = ? AND dataset = ?"
MODEL_TOP1 = """
    SELECT avg((p.prediction = i.target)::INTEGER) FROM predictions p
    JOIN images i ON i.dataset = p.dataset AND i.image_id = p.image_id
    WHERE p.model_id = ? AND p.dataset = ?
"""

MODELS_LIST = """
    WITH counts AS (
        SELECT model_id, dataset, images AS n, top1_hits / images AS top1 FROM model_summary WHERE grp = 'all'
    )
    SELECT m.model_id, m.source, m.family, m.arch, m.training_data, m.params,
           string_agg(c.dataset, ' ' ORDER BY c.dataset) AS datasets,
           coalesce(sum(c.n), 0)::BIGINT AS predictions,
           string_agg(c.dataset || '=' || printf('%.4f', c.top1), ' ' ORDER BY c.dataset) AS top1
    FROM models m LEFT JOIN counts c USING (model_id)
    GROUP BY ALL ORDER BY m.model_id
"""

# --- per-model summary (schema v3) ----------------------------------------------------------------------

# One row per model × dataset × group with the definitions of analysis.taxonomy.metrics.model_metrics: MLA averages the
# per-image "counts as correct" over the evaluated images of each target class, then over the classes present.
# A pair not (yet) classified reads as correct when prediction = target, else as unclassified (an error).
SUMMARY_COUNT_COLUMNS = tuple(f"count_{c}" for c in categories.ERROR_IDS)  # fixed names from the taxonomy
_SUMMARY_INSERT = """
    INSERT INTO model_summary
    WITH r AS (
        SELECT p.model_id, p.dataset, i.target, cl.grp, i.evaluated, p.prediction = i.target AS top1_hit,
               len(i.labels) > 0 AS has_real, list_contains(i.labels, p.prediction) AS real_hit,
               coalesce(c.category, CASE WHEN p.prediction = i.target THEN 'correct' ELSE 'unclassified' END)
                   AS category
        FROM predictions p
        JOIN images i ON i.dataset = p.dataset AND i.image_id = p.image_id
        JOIN classes cl ON cl.class_id = i.target
        LEFT JOIN pair_categories c ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
        WHERE {where}
    ),
    per_class AS (
        SELECT model_id, dataset, grp, target, count(*) AS n, count(*) FILTER (WHERE evaluated) AS n_eval,
               count(*) FILTER (WHERE evaluated AND NOT list_contains($non_errors, category)) AS errors,
               count(*) FILTER (WHERE top1_hit) AS top1_hits, count(*) FILTER (WHERE has_real) AS real_n,
               count(*) FILTER (WHERE has_real AND real_hit) AS real_hits,
               avg(list_contains($mla, category)::INT) FILTER (WHERE evaluated) AS ok,
               avg(list_contains($mla_minor, category)::INT) FILTER (WHERE evaluated) AS ok_minor,
               avg(list_contains($mla_explainable, category)::INT) FILTER (WHERE evaluated) AS ok_explainable,
               {per_class_counts}
        FROM r GROUP BY ALL
    )
    -- MLA rounded to 1e-9 percent: parallel sums are order-dependent, a recomputation must give the same bits.
    SELECT model_id, dataset, coalesce(grp, 'all') AS grp, sum(n), sum(n_eval), sum(errors), sum(top1_hits),
           sum(real_n), sum(real_hits), round(100 * avg(ok), 9), round(100 * avg(ok_minor), 9),
           round(100 * avg(ok_explainable), 9), {sums}
    FROM per_class GROUP BY GROUPING SETS ((model_id, dataset), (model_id, dataset, grp))
"""
_SUMMARY_PER_CLASS = ",\n               ".join(
    f"count(*) FILTER (WHERE evaluated AND category = '{c}') AS count_{c}" for c in categories.ERROR_IDS)
_SUMMARY_SUMS = ", ".join(f"sum({c})" for c in SUMMARY_COUNT_COLUMNS)
SUMMARY_INSERT_MODEL = _SUMMARY_INSERT.format(where="p.model_id = $model AND p.dataset = $dataset",
                                              per_class_counts=_SUMMARY_PER_CLASS, sums=_SUMMARY_SUMS)
SUMMARY_INSERT_ALL = _SUMMARY_INSERT.format(where="TRUE", per_class_counts=_SUMMARY_PER_CLASS, sums=_SUMMARY_SUMS)
SUMMARY_PARAMS = {"non_errors": ["correct", "not_evaluated"],
                  **{name: list(ids) for name, ids in categories.COUNTS_AS_CORRECT.items()}}
SUMMARY_DELETE_MODEL = "DELETE FROM model_summary WHERE model_id = ? AND dataset = ?"
SUMMARY_DELETE_ALL = "DELETE FROM model_summary"

# --- runs ----------------------------------------------------------------------------------------------

RUN_INSERT = """
    INSERT INTO runs (run_id, model_id, dataset, device, images, seconds, status, message, started_at, shard, options,
                      pid, host, pid_start, held_since)
    VALUES ($run_id, $model_id, $dataset, $device, $images, 0, 'running', NULL, current_timestamp, $shard, $options,
            $pid, $host, $pid_start, current_timestamp)
"""
RUN_RESUME = """
    UPDATE runs SET status = 'running', device = $device, images = $images, message = NULL, pid = $pid, host = $host,
                    pid_start = $pid_start, held_since = current_timestamp
    WHERE run_id = $run_id
"""
# Runs of a model on a dataset that a process holds now (or held when it crashed).
RUN_HOLDERS = """
    SELECT run_id, shard, pid, host, pid_start, strftime(held_since, '%Y-%m-%d %H:%M:%S') FROM runs
    WHERE model_id = ? AND dataset = ? AND status = 'running' ORDER BY started_at
"""
RUN_RELEASE = "UPDATE runs SET status = 'interrupted', message = ? WHERE run_id = ? AND status = 'running'"
RUN_FINISH = """
    UPDATE runs SET status = ?, message = ?, seconds = seconds + ?, finished_at = current_timestamp WHERE run_id = ?
"""
RUN_GET = "SELECT * FROM runs WHERE run_id = ?"
# The most recent unfinished run of the same model, dataset and shard: its staged rows are reused.
RUN_UNFINISHED = """
    SELECT run_id FROM runs
    WHERE model_id = ? AND dataset = ? AND shard IS NOT DISTINCT FROM ? AND status IN ('running', 'interrupted', 'failed')
    ORDER BY started_at DESC LIMIT 1
"""
STAGING_INSERT = """
    INSERT INTO prediction_staging (run_id, image_id, prediction, top5, confidence, top5_confidence,
                                    file_name, file_size, file_mtime_ns)
    SELECT ?, image_id, prediction, top5, confidence, top5_confidence, file_name, file_size, file_mtime_ns
    FROM _incoming
"""
STAGED_IMAGES = "SELECT image_id FROM prediction_staging WHERE run_id = ?"
STAGED_FILES = """
    SELECT image_id, prediction, top5, confidence, top5_confidence, file_name, file_size, file_mtime_ns
    FROM prediction_staging WHERE run_id = ? ORDER BY image_id
"""
STAGED_ROWS = """
    SELECT image_id, prediction, top5, confidence, top5_confidence FROM prediction_staging WHERE run_id = ?
    ORDER BY image_id
"""
STAGING_DELETE = "DELETE FROM prediction_staging WHERE run_id = ?"

# --- errors (export and dashboard) --------------------------------------------------------------------

# One row per stored mistake: a prediction whose pair category is neither correct nor not_evaluated;
# pair_categories.models holds how many stored models make the same (dataset, image, prediction) mistake.
# Late materialisation: `keys` joins only what the filter needs, is sorted and paged; the details
# (images, classes, superclasses, experts) are joined to the page's rows only.
_ERROR_KEYS = """
    SELECT p.model_id, p.dataset, p.image_id, p.prediction, p.top5, p.confidence, c.category, c.reason,
           c.models AS models_making_error
    FROM predictions p
    JOIN pair_categories c ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
    {joins}
    WHERE {where}
"""
_FILTER_JOINS = {  # filter field -> the join it needs inside the key query ({rows}: the alias holding the pair)
    "images": "JOIN images i ON i.dataset = {rows}.dataset AND i.image_id = {rows}.image_id",
    "target": "JOIN classes tc ON tc.class_id = i.target",
    "prediction": "JOIN classes pc ON pc.class_id = {rows}.prediction",
}
_ERRORS = """
WITH keys AS ({keys}),
sc AS (
    SELECT class_id, list(superclass_id ORDER BY superclass_id) AS ids FROM class_superclasses GROUP BY class_id
),
experts AS (
    SELECT image_id, prediction, string_agg(expert, ' ' ORDER BY expert) AS expert,
           string_agg(category, ' ' ORDER BY expert) AS expert_category,
           string_agg(severity, ' ' ORDER BY expert) AS expert_severity
    FROM expert_labels GROUP BY ALL
)
SELECT
    k.model_id, k.dataset, k.image_id, i.file_name,
    i.target AS target_id, tc.wnid AS target_wnid, tc.name AS target_name, i.labels,
    k.prediction AS prediction_id, pc.wnid AS prediction_wnid, pc.name AS prediction_name,
    k.confidence, k.top5, k.category, k.reason,
    coalesce(ts.ids, []) AS target_superclasses, coalesce(ps.ids, []) AS prediction_superclasses,
    e.expert, e.expert_category, e.expert_severity, k.models_making_error,
    tc.grp AS target_group, m.family
FROM keys k
JOIN images i ON i.dataset = k.dataset AND i.image_id = k.image_id
JOIN classes tc ON tc.class_id = i.target
JOIN classes pc ON pc.class_id = k.prediction
JOIN models m ON m.model_id = k.model_id
LEFT JOIN sc ts ON ts.class_id = i.target
LEFT JOIN sc ps ON ps.class_id = k.prediction
LEFT JOIN experts e ON k.dataset = 'imagenet-val' AND e.image_id = k.image_id AND e.prediction = k.prediction
ORDER BY k.model_id, k.dataset, k.image_id
"""
_KEY_ORDER = " ORDER BY p.model_id, p.dataset, p.image_id"
_IN_SUPERCLASSES = "(SELECT class_id FROM class_superclasses WHERE list_contains($superclasses, superclass_id))"
_IN_CONCEPTS = "{cls} IN (SELECT unnest($concept_classes::INTEGER[]))"  # classes under the filter's WordNet concepts


def superclass_params(values) -> tuple[list[str], list[int]]:
    """(store superclass ids, class ids under the WordNet concepts `wn:<synset>`) of a filter's superclasses."""
    from analysis.knowledge import concepts

    return [v for v in values if not concepts.is_concept(v)], concepts.class_ids(v for v in values
                                                                                if concepts.is_concept(v))
# A review judges the (dataset, image, prediction) mistake, so it marks that mistake for every model making it. The
# reviewed (or disagreeing) mistakes are a set selected once, not a subquery per row (DuckDB would first gather the
# distinct keys of every row it filters: 0.18 s over 6.5M errors).
_ROW_PAIR = "({rows}.dataset, {rows}.image_id, {rows}.prediction)"
_REVIEW_CONDITIONS = {
    "reviewed": f"{_ROW_PAIR} IN (SELECT (dataset, image_id, prediction) FROM reviews)",
    "not_reviewed": f"{_ROW_PAIR} NOT IN (SELECT (dataset, image_id, prediction) FROM reviews)",
    "disagrees": (f"{_ROW_PAIR} IN (SELECT (r.dataset, r.image_id, r.prediction) FROM reviews r JOIN pair_categories "
                  "d ON d.dataset = r.dataset AND d.image_id = r.image_id AND d.prediction = r.prediction "
                  "WHERE r.verdict <> d.category)"),
}
# ImageNet-X annotates imagenet-val images by their validation index.
_HAS_FACTORS = ("({rows}.dataset = 'imagenet-val' AND {rows}.image_id IN (SELECT f.image_id FROM imagenet_x f "
                "WHERE list_has_any(f.factors, $factors)))")
_CLASSES_NAMED = "(SELECT class_id FROM classes WHERE contains(lower(name), $class_search))"


def error_where(flt: ErrorFilter, *, rows: str = "p") -> tuple[str, str, dict]:
    """(joins, where, params): the filter as the key query's joins and conditions, with named parameters.

    `rows` is the alias whose dataset, image_id and prediction the conditions read: `p` (predictions, joined to their
    pair's category `c`), `c` (pair_categories, when no model or family filter is set) or `x` (`error_index`: one
    row per error holding its pair's category and models and its image's target, so no join is needed).
    """
    pair, model, target = ("x", "x", "x.target") if rows == "x" else ("c", "p", "i.target")
    where = [f"{pair}.category NOT IN ('correct', 'not_evaluated')", f"{pair}.models >= $min_models"]
    params: dict = {"min_models": flt.min_models}
    needs: set[str] = set()
    if flt.dataset:
        params["dataset"] = flt.dataset
        where.append(f"{rows}.dataset = $dataset")
    if flt.models:
        params["models"] = list(flt.models)
        where.append(f"list_contains($models, {model}.model_id)")
    if flt.categories:
        params["categories"] = list(flt.categories)
        where.append(f"list_contains($categories, {pair}.category)")
    if flt.families:
        params["families"] = list(flt.families)
        where.append(f"{model}.model_id IN (SELECT model_id FROM models WHERE list_contains($families, family))")
    if flt.groups:
        params["groups"] = list(flt.groups)
        where.append(f"{target} IN (SELECT class_id FROM classes WHERE list_contains($groups, grp))")
        needs.add("images")
    if flt.superclasses:
        params["superclasses"], params["concept_classes"] = superclass_params(flt.superclasses)
        where.append(f"({target} IN {_IN_SUPERCLASSES} OR {rows}.prediction IN {_IN_SUPERCLASSES} "
                     f"OR {_IN_CONCEPTS.format(cls=target)} OR {_IN_CONCEPTS.format(cls=rows + '.prediction')})")
        needs.add("images")
    if flt.class_search:  # the few classes named so first, not the name of every row's classes
        params["class_search"] = flt.class_search.lower()
        where.append(f"({target} IN {_CLASSES_NAMED} OR {rows}.prediction IN {_CLASSES_NAMED})")
        needs.add("images")
    if flt.review:
        where.append(_REVIEW_CONDITIONS[flt.review].format(rows=rows))
    if flt.factors:
        params["factors"] = list(flt.factors)
        where.append(_HAS_FACTORS.format(rows=rows))
    if flt.target is not None:
        params["target"] = flt.target
        where.append(f"{target} = $target")
        needs.add("images")
    if flt.prediction is not None:
        params["prediction"] = flt.prediction
        where.append(f"{rows}.prediction = $prediction")
    if rows == "x":
        needs.clear()
    joins = "\n    ".join(sql.format(rows=rows) for name, sql in _FILTER_JOINS.items() if name in needs)
    return joins, " AND ".join(where), params


def errors_sql(flt: ErrorFilter, *, limit: int | None, offset: int) -> tuple[str, dict]:
    """The rows of `export.errors_frame` for `flt`, ordered by model, dataset, image; paged when `limit`."""
    joins, where, params = error_where(flt)
    keys = _ERROR_KEYS.format(joins=joins, where=where) + _KEY_ORDER
    if limit is not None:
        params["limit"], params["offset"] = limit, offset
        keys += " LIMIT $limit OFFSET $offset"
    return _ERRORS.format(keys=keys), params


def count_errors_sql(flt: ErrorFilter) -> tuple[str, dict]:
    """The number of rows of `errors_sql`: counted over predictions when the filter names models or families,
    else summed over the pairs (each erroneous pair is one row per model making it, `pair_categories.models`)."""
    if flt.models or flt.families:
        joins, where, params = error_where(flt)
        return f"SELECT count(*) FROM ({_ERROR_KEYS.format(joins=joins, where=where)})", params
    joins, where, params = error_where(flt, rows="c")
    return f"SELECT coalesce(sum(c.models), 0) FROM pair_categories c {joins} WHERE {where}", params


# The export's CSV text made in SQL, one finished line per row, as `export.to_csv` (pandas) writes it: NULL as an
# empty cell, lists space-separated, floats "%.6g" (NaN empty), booleans True/False, and a cell quoted (quotes
# doubled) when it holds a comma, a quote or a character of the line end. Column names come from our own query.
_CSV_QUOTED = """CASE WHEN {cell} IS NULL THEN '' WHEN {special} THEN '"' || replace({cell}, '"', '""') || '"'
    ELSE {cell} END"""


def _csv_text(column: str, type_name: str) -> str:
    """The SQL of one column as text before quoting (NULL stays NULL)."""
    name = '"' + column.replace('"', '""') + '"'
    if type_name.endswith("[]"):
        return f"array_to_string({name}, ' ')"
    if type_name in ("FLOAT", "DOUBLE"):
        return f"CASE WHEN isnan({name}) THEN NULL ELSE printf('%.6g', {name}) END"
    if type_name == "BOOLEAN":
        return f"CASE WHEN {name} THEN 'True' WHEN NOT {name} THEN 'False' END"
    return f"CAST({name} AS VARCHAR)"


def errors_csv_sql(flt: ErrorFilter, columns: list[tuple[str, str]], *, eol: str,
                   images: tuple[int, int] | None = None) -> tuple[str, dict]:
    """One VARCHAR column `line` (the CSV row and `eol`) per row of `errors_sql(flt)`, in its order; `columns`
    are that query's (name, DuckDB type) pairs; only image ids first..last (inclusive) when `images` is given."""
    sql, params = errors_sql(flt, limit=None, offset=0) if images is None else errors_images_range_sql(flt, images)
    special_chars = sorted({",", '"', *eol})
    params.update({f"csv_special_{i}": char for i, char in enumerate(special_chars)})
    params["csv_eol"] = eol
    texts = ",\n    ".join(f"{_csv_text(name, type_name)} AS c{i}" for i, (name, type_name) in enumerate(columns))
    cells = []
    for i in range(len(columns)):
        special = " OR ".join(f"contains(c{i}, $csv_special_{j})" for j in range(len(special_chars)))
        cells.append(_CSV_QUOTED.format(cell=f"c{i}", special=special))
    line = " || ',' || ".join(cells) + " || $csv_eol"
    return f"SELECT {line} AS line FROM (SELECT\n    {texts}\nFROM ({sql}) e)", params


# --- sorted error pages and one row per image (Browse at scale) ---------------------------------------

# sort name -> (ORDER BY of the key query, ORDER BY of the detail query); fixed SQL, never from user input.
ERROR_SORTS = {
    "models": ("c.models DESC, p.model_id, p.dataset, p.image_id",
               "k.models_making_error DESC, k.model_id, k.dataset, k.image_id"),
    "confidence": ("p.confidence DESC NULLS LAST, p.model_id, p.dataset, p.image_id",
                   "k.confidence DESC NULLS LAST, k.model_id, k.dataset, k.image_id"),
    "class": ("tc.name, pc.name, p.model_id, p.dataset, p.image_id",
              "tc.name, pc.name, k.model_id, k.dataset, k.image_id"),
    "category": ("list_position($category_order, c.category), p.model_id, p.dataset, p.image_id",
                 "list_position($category_order, k.category), k.model_id, k.dataset, k.image_id"),
    "image": ("p.model_id, p.dataset, p.image_id", "k.model_id, k.dataset, k.image_id"),
}
# sort name -> ORDER BY over the per-image aggregate `g` joined to its target class `tc`.
IMAGE_SORTS = {
    "models": "g.models_making_error DESC, g.dataset, g.image_id",
    "confidence": "g.confidence DESC NULLS LAST, g.dataset, g.image_id",
    "class": "tc.name, g.dataset, g.image_id",
    "category": "g.category_rank, g.dataset, g.image_id",
    "image": "g.dataset, g.image_id",
}


def _check_sort(sort: str, known: dict) -> None:
    if sort not in known:
        raise ValueError(f"sort={sort!r} is unknown; choose one of {tuple(known)}")


def _sort_joins(flt: ErrorFilter) -> tuple[str, str, dict]:
    """error_where plus the image and class joins a class sort reads."""
    joins, where, params = error_where(flt)
    for name in ("images", "target", "prediction"):
        join = _FILTER_JOINS[name].format(rows="p")
        if join not in joins:
            joins += "\n    " + join
    params["category_order"] = list(categories.IDS)
    return joins, where, params


def sorted_errors_sql(flt: ErrorFilter, *, sort: str, limit: int | None, offset: int,
                      reverse: bool = False, segment: tuple | None = None) -> tuple[str, dict]:
    """The rows of `export.errors_frame` for `flt` in `sort` order (ERROR_SORTS), paged when `limit`; `reverse`
    pages the reversed order (the page's rows still come back in `sort` order); `segment` = (low, high) keeps the
    rows whose PAIR_SEGMENTS key of `sort` lies between them (the page then counts from the first such row)."""
    _check_sort(sort, ERROR_SORTS)
    joins, where, params = _sort_joins(flt)
    if segment is not None:
        where += f" AND {PAIR_SEGMENTS[sort][0]} BETWEEN $segment_low AND $segment_high"
        params["segment_low"], params["segment_high"] = segment
    if sort != "category":  # DuckDB refuses a named parameter the SQL does not use
        params.pop("category_order")
    order = reverse_order(ERROR_SORTS[sort][0]) if reverse else ERROR_SORTS[sort][0]
    keys = _ERROR_KEYS.format(joins=joins, where=where) + " ORDER BY " + order
    if limit is not None:
        params["limit"], params["offset"] = limit, offset
        keys += " LIMIT $limit OFFSET $offset"
    return _in_sort_order(keys, sort), params


def _in_sort_order(keys: str, sort: str) -> str:
    """`_ERRORS` over the page's `keys`, its rows in `sort` order (ERROR_SORTS' detail ORDER BY)."""
    return _ERRORS.format(keys=keys).rsplit("ORDER BY", 1)[0] + "ORDER BY " + ERROR_SORTS[sort][1]


# An image's figures over the errors `keys` holds of it ({models}: the column holding each error's model count), and
# the row per image Browse shows ({source}: the table or CTE `g` of those figures).
_IMAGE_FIGURES = ("count(*) AS errors, max({models}) AS models_making_error, max(confidence) AS confidence, "
                  "min(list_position($category_order, category)) AS category_rank")
_IMAGE_ROWS = """SELECT g.dataset, g.image_id, i.file_name, i.target AS target_id, tc.wnid AS target_wnid,
               tc.name AS target_name, g.errors, g.models_making_error, g.confidence, g.category_rank
        FROM {source} g JOIN images i ON i.dataset = g.dataset AND i.image_id = g.image_id
        JOIN classes tc ON tc.class_id = i.target"""


def error_images_sql(flt: ErrorFilter, *, sort: str, limit: int | None, offset: int,
                     reverse: bool = False, indexed: bool = False) -> tuple[str, dict]:
    """One row per image holding at least one error `flt` selects: dataset, image_id, file_name, target_id,
    target_wnid, target_name, errors (rows of the filter on it), models_making_error (most of any of its
    mistakes), confidence (highest wrong confidence), category_rank; in `sort` order (IMAGE_SORTS); `reverse`
    pages the reversed order (the page's rows still come back in `sort` order); `indexed` reads the errors from
    error_index instead of joining every prediction to its pair."""
    _check_sort(sort, IMAGE_SORTS)
    if indexed:
        joins, where, params = error_where(flt, rows="x")
        params["category_order"] = list(categories.IDS)
        keys = (f"SELECT x.dataset, x.image_id, x.confidence, x.category, x.models AS models_making_error "
                f"FROM {ERROR_INDEX} x {joins} WHERE {where}")
    else:
        joins, where, params = _sort_joins(flt)
        keys = _ERROR_KEYS.format(joins=joins, where=where)
    sql = f"""
        WITH keys AS ({keys}),
        g AS (SELECT dataset, image_id, {_IMAGE_FIGURES.format(models="models_making_error")}
              FROM keys GROUP BY dataset, image_id)
        {_IMAGE_ROWS.format(source="g")}
        ORDER BY {reverse_order(IMAGE_SORTS[sort]) if reverse else IMAGE_SORTS[sort]}
    """
    if limit is not None:
        params["limit"], params["offset"] = limit, offset
        sql += " LIMIT $limit OFFSET $offset"
    if reverse:  # the page's rows back in `sort` order; the class sort's target name is a column here
        sql = f"SELECT * FROM ({sql}) g ORDER BY {IMAGE_SORTS[sort].replace('tc.name', 'g.target_name')}"
    return sql, params


def count_error_images_sql(flt: ErrorFilter) -> tuple[str, dict]:
    """How many distinct images `error_images_sql` returns without a limit (over pair_categories alone when the
    filter names no models or families: a pair with models >= 1 is an error of a stored prediction)."""
    if not flt.models and not flt.families:
        joins, where, params = error_where(flt, rows="c")
        return (f"SELECT count(*) FROM (SELECT DISTINCT c.dataset, c.image_id FROM pair_categories c {joins} "
                f"WHERE {where})"), params
    joins, where, params = error_where(flt)
    return (f"SELECT count(*) FROM (SELECT DISTINCT p.dataset, p.image_id FROM predictions p JOIN pair_categories c "
            f"ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction {joins} "
            f"WHERE {where})"), params


# Every stored prediction of some images: one row per (model, image), with the pair's category.
IMAGE_PREDICTIONS = """
    SELECT p.dataset, p.image_id, p.model_id, p.prediction AS prediction_id, pc.name AS prediction_name,
           pc.wnid AS prediction_wnid, p.confidence, i.target AS target_id,
           coalesce(c.category, CASE WHEN p.prediction = i.target THEN 'correct' ELSE 'unclassified' END) AS category,
           c.reason, coalesce(c.models, 0) AS models_making_error
    FROM predictions p
    JOIN images i ON i.dataset = p.dataset AND i.image_id = p.image_id
    JOIN classes pc ON pc.class_id = p.prediction
    LEFT JOIN pair_categories c ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
    WHERE p.dataset = $dataset AND list_contains($images, p.image_id)
      AND (len($models) = 0 OR list_contains($models, p.model_id))
    ORDER BY p.image_id, p.model_id
"""

# Other images of a dataset whose labels hold both classes (the evidence of a spurious correlation).
COOCCURRENCE_IMAGES = """
    SELECT i.image_id, i.file_name, i.target AS target_id, t.wnid AS target_wnid, t.name AS target_name, i.labels
    FROM images i JOIN classes t ON t.class_id = i.target
    WHERE i.dataset = $dataset AND list_contains(i.labels, $a) AND list_contains(i.labels, $b)
      AND i.image_id <> $exclude
    ORDER BY i.image_id
    LIMIT $limit
"""


# --- the sidebar filter over aggregated views (overview, compare, zoo hierarchy) -------------------------

ROW_FILTER_FIELDS = ("categories", "groups", "superclasses", "class_search", "min_models", "factors", "target",
                     "prediction")


def row_filter_sql(flt: ErrorFilter, *, image: str, target: str, predictions: tuple[str, ...],
                   categories_: tuple[str, ...]) -> tuple[str, dict]:
    """(condition, params): the filter's ROW_FILTER_FIELDS over rows of one image and one or more predictions.

    The arguments are SQL expressions of the row, qualified by their table alias (`r.image_id`: a bare name would
    bind to the subqueries' own columns), never user text. A row is kept when its target's
    group is one of `groups`; its target or any prediction is in `superclasses` (store ids or WordNet concepts) and
    its name contains `class_search`; any of `categories_` is one of `categories`; any prediction is a mistake made
    by at least `min_models` stored models; the image shows one of `factors`; the target is `target` and a
    prediction is `prediction` (one confusion). For one prediction this is
    `error_where`'s condition, so a view's counts equal `export.count_errors` for the same filter. Needs `$dataset`.
    """
    where: list[str] = ["TRUE"]
    params: dict = {}
    classes_ = (target, *predictions)
    if flt.categories:
        params["rf_categories"] = list(flt.categories)
        where.append("(" + " OR ".join(f"list_contains($rf_categories, {c})" for c in categories_) + ")")
    if flt.groups:
        params["rf_groups"] = list(flt.groups)
        where.append(f"list_contains($rf_groups, (SELECT grp FROM classes WHERE class_id = {target}))")
    if flt.superclasses:
        params["rf_superclasses"], params["rf_concepts"] = superclass_params(flt.superclasses)
        where.append("(" + " OR ".join(
            f"{c} IN (SELECT class_id FROM class_superclasses WHERE list_contains($rf_superclasses, superclass_id)) "
            f"OR list_contains($rf_concepts::INTEGER[], {c})" for c in classes_) + ")")
    if flt.class_search:
        params["rf_search"] = flt.class_search.lower()
        where.append("(" + " OR ".join(
            f"{c} IN (SELECT class_id FROM classes WHERE contains(lower(name), $rf_search))" for c in classes_) + ")")
    if flt.min_models > 1:
        params["rf_min_models"] = flt.min_models
        where.append("(" + " OR ".join(
            f"EXISTS (SELECT 1 FROM pair_categories k WHERE k.dataset = $dataset AND k.image_id = {image} "
            f"AND k.prediction = {p} AND k.models >= $rf_min_models "
            "AND k.category NOT IN ('correct', 'not_evaluated'))" for p in predictions) + ")")
    if flt.target is not None:
        params["rf_target"] = flt.target
        where.append(f"{target} = $rf_target")
    if flt.prediction is not None:
        params["rf_prediction"] = flt.prediction
        where.append("(" + " OR ".join(f"{p} = $rf_prediction" for p in predictions) + ")")
    if getattr(flt, "factors", ()):
        params["rf_factors"] = list(flt.factors)
        where.append(f"EXISTS (SELECT 1 FROM imagenet_x x WHERE $dataset = 'imagenet-val' AND x.image_id = {image} "
                     "AND list_has_any(x.factors, $rf_factors))")
    return " AND ".join(where), params


# --- several models in one transaction (publish.publish_models): `_batch` holds every row of the batch with its
# model_id, `_batch_models` (m, model_id) the batch's models; `$dataset` is the one dataset they are written to ------

BATCH_UNKNOWN_IMAGES = """
    SELECT DISTINCT n.image_id FROM _batch n ANTI JOIN images i ON i.dataset = $dataset AND i.image_id = n.image_id
    ORDER BY n.image_id LIMIT 5
"""
# Models that may have rows on $dataset: a models row or a summary row (every writer leaves one of them); only these
# are counted in `predictions`, so the check does not scan the whole zoo for new models.
BATCH_MAYBE_STORED = """
    SELECT model_id FROM _batch_models WHERE model_id IN (SELECT model_id FROM models)
        OR model_id IN (SELECT model_id FROM model_summary WHERE dataset = $dataset)
    ORDER BY m
"""
AFFECTED_REMOVE_MODEL = """
    INSERT INTO _affected SELECT image_id, prediction, -1 FROM predictions WHERE model_id = ? AND dataset = ?
"""
AFFECTED_ADD_BATCH = "INSERT INTO _affected SELECT image_id, prediction, 1 FROM _batch"
# In the batch's order (by model, then image id: publish_models sorts), as PREDICTIONS_INSERT orders one model.
PREDICTIONS_INSERT_BATCH = """
    INSERT INTO predictions (model_id, dataset, image_id, prediction, top5, confidence, top5_confidence)
    SELECT model_id, $dataset, image_id, prediction, top5, confidence, top5_confidence FROM _batch
"""
# The summary of the batch's models from `_batch` itself: after the write their rows on $dataset are exactly these.
assert _SUMMARY_INSERT.count("FROM predictions p") == 1
SUMMARY_INSERT_BATCH = _SUMMARY_INSERT.replace(
    "FROM predictions p",
    "FROM (SELECT model_id, $dataset AS dataset, image_id, prediction FROM _batch) p", 1,
).format(where="TRUE", per_class_counts=_SUMMARY_PER_CLASS, sums=_SUMMARY_SUMS)


# --- Parquet shards (analysis.store.shards) ---
INGESTED_SHARD_GET = "SELECT file_name, ingested_at FROM ingested_shards WHERE shard_id = ?"
INGESTED_SHARD_INSERT = """
    INSERT INTO ingested_shards (shard_id, file_name, model_id, dataset, rows, ingested_at)
    VALUES (?, ?, ?, ?, ?, current_timestamp)
"""


# --- pages read from the end, counts from the summary (analysis/store/pages.py) ---------------------------------


def _order_terms(order: str) -> list[str]:
    """The comma-separated terms of an ORDER BY (commas inside parentheses kept)."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(order):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(order[start:i].strip())
            start = i + 1
    return terms + [order[start:].strip()]


def reverse_order(order: str) -> str:
    """The exact reverse of one of our fixed ORDER BY clauses: each term's direction flipped and its NULLs moved to
    the other end (DuckDB puts NULLs last by default in both directions)."""
    out = []
    for term in _order_terms(order):
        words = term.split()
        nulls_first = words[-2:] == ["NULLS", "FIRST"]
        if words[-2:] in (["NULLS", "FIRST"], ["NULLS", "LAST"]):
            words = words[:-2]
        descending = words[-1] == "DESC"
        if words[-1] in ("ASC", "DESC"):
            words = words[:-1]
        direction = "ASC" if descending else "DESC"
        out.append(f"{' '.join(words)} {direction} NULLS {'LAST' if nulls_first else 'FIRST'}")
    return ", ".join(out)


def summary_chosen(flt: ErrorFilter) -> list[str]:
    """The error categories `flt` selects (all when it names none), each once, in the taxonomy's order."""
    if any(c not in categories.ERROR_IDS for c in flt.categories):
        raise ValueError(f"categories={flt.categories!r} must be error category ids, e.g. ('fine_grained',)")
    return [c for c in categories.ERROR_IDS if not flt.categories or c in flt.categories]


def _summary_filter(flt: ErrorFilter, *, groups: bool = True) -> tuple[str, str, dict]:
    """(joins, where, params): `flt`'s models, families, dataset (and groups, else the 'all' rows) over
    `model_summary s`."""
    where, params, joins = ["list_contains($groups, s.grp)" if groups and flt.groups else "s.grp = 'all'"], {}, ""
    if groups and flt.groups:
        params["groups"] = list(flt.groups)
    if flt.dataset:
        params["dataset"] = flt.dataset
        where.append("s.dataset = $dataset")
    if flt.models:
        params["models"] = list(flt.models)
        where.append("list_contains($models, s.model_id)")
    if flt.families:
        params["families"] = list(flt.families)
        joins = "JOIN models m ON m.model_id = s.model_id"
        where.append("list_contains($families, m.family)")
    return joins, " AND ".join(where), params


def summary_segments_sql(flt: ErrorFilter) -> tuple[str, dict]:
    """model_id, dataset and the errors of each chosen category (`summary_chosen`, one column each) of every model x
    dataset `flt` selects, from `model_summary`, in the errors' order (model, dataset); a filter as `summary_count_sql`.
    """
    columns = ", ".join(f"sum(s.count_{c})" for c in summary_chosen(flt))  # names from the taxonomy's ids
    joins, where, params = _summary_filter(flt)
    return (f"SELECT s.model_id, s.dataset, {columns} FROM model_summary s {joins} WHERE {where} "
            f"GROUP BY s.model_id, s.dataset ORDER BY s.model_id, s.dataset"), params


def summary_count_sql(flt: ErrorFilter) -> tuple[str, dict]:
    """`count_errors_sql`'s number summed over `model_summary` (per-category counts of each model x dataset x group)
    for a filter of models, families, groups, categories and dataset only (`pages.from_summary`)."""
    total = " + ".join(f"s.count_{c}" for c in summary_chosen(flt))  # column names from the taxonomy's ids
    joins, where, params = _summary_filter(flt)
    return f"SELECT coalesce(sum({total}), 0) FROM model_summary s {joins} WHERE {where}", params


# --- the streamed export in parts (export.stream_csv): each part sorted alone, in the export's order ---------------

def error_parts_sql(flt: ErrorFilter, *, block: int) -> tuple[str, dict]:
    """(model_id, dataset, block, first image_id, last image_id, rows) of the rows of `errors_sql(flt)`, one row per
    model, dataset and run of `block` image ids (image_id // block), in the errors' order."""
    joins, where, params = error_where(flt)
    params["block"] = block
    keys = _ERROR_KEYS.format(joins=joins, where=where)
    return (f"SELECT model_id, dataset, image_id // $block AS block, min(image_id), max(image_id), count(*) "
            f"FROM ({keys}) GROUP BY ALL ORDER BY ALL"), params


def errors_images_range_sql(flt: ErrorFilter, images: tuple[int, int]) -> tuple[str, dict]:
    """The rows of `errors_sql(flt)` whose image id is in images[0]..images[1] (inclusive), in its order (sorted once:
    each of DuckDB's sorts takes memory of its own)."""
    joins, where, params = error_where(flt)
    params["first_image"], params["last_image"] = images
    keys = _ERROR_KEYS.format(joins=joins, where=where + " AND p.image_id BETWEEN $first_image AND $last_image")
    return _ERRORS.format(keys=keys), params


# sort -> (its leading key, a property of the (dataset, image, prediction) pair; descending?): the errors' positions
# in that order are known from pair_categories alone (each pair is `models` rows) when no model or family filter is set.
PAIR_SEGMENTS = {"models": ("c.models", True), "class": ("tc.name", False)}


def pair_segments_sql(flt: ErrorFilter, sort: str) -> tuple[str, dict]:
    """key, rows: the errors of `flt` (no models, no families) per value of `sort`'s PAIR_SEGMENTS key, in order."""
    key, descending = PAIR_SEGMENTS[sort]
    joins, where, params = error_where(flt, rows="c")
    for name in ("images", "target"):
        join = _FILTER_JOINS[name].format(rows="c")
        if join not in joins:
            joins += "\n    " + join
    return (f"SELECT {key} AS key, sum(c.models) AS n FROM pair_categories c {joins} WHERE {where} "
            f"GROUP BY key ORDER BY key{' DESC' if descending else ''}"), params


def pair_images_sql(flt: ErrorFilter, *, sort: str, limit: int, offset: int) -> tuple[str, dict]:
    """`error_images_sql`'s page for a filter without models or families and a sort other than confidence: the
    images ranked over pair_categories alone (an image's errors are the `models` of its pairs), then only the page's
    images read in predictions for their highest wrong confidence."""
    _check_sort(sort, IMAGE_SORTS)
    if flt.models or flt.families or sort == "confidence":
        raise ValueError(f"sort={sort!r} with models or families: use error_images_sql")
    joins, where, params = error_where(flt, rows="c")
    params.update(category_order=list(categories.IDS), limit=limit, offset=offset)
    sql = f"""
        WITH pk AS (SELECT c.dataset, c.image_id, c.prediction, c.category, c.models FROM pair_categories c {joins}
                    WHERE {where}),
        g AS (SELECT dataset, image_id, sum(models)::BIGINT AS errors, max(models) AS models_making_error,
                     min(list_position($category_order, category)) AS category_rank
              FROM pk GROUP BY dataset, image_id),
        page AS (SELECT g.*, i.file_name, i.target AS target_id, tc.wnid AS target_wnid, tc.name AS target_name
                 FROM g JOIN images i ON i.dataset = g.dataset AND i.image_id = g.image_id
                 JOIN classes tc ON tc.class_id = i.target
                 ORDER BY {IMAGE_SORTS[sort]} LIMIT $limit OFFSET $offset),
        conf AS (SELECT p.dataset, p.image_id, max(p.confidence) AS confidence
                 FROM predictions p
                 JOIN pk ON pk.dataset = p.dataset AND pk.image_id = p.image_id AND pk.prediction = p.prediction
                 WHERE p.image_id IN (SELECT image_id FROM page) GROUP BY ALL)
        SELECT g.dataset, g.image_id, g.file_name, g.target_id, g.target_wnid, g.target_name, g.errors,
               g.models_making_error, f.confidence, g.category_rank
        FROM page g LEFT JOIN conf f ON f.dataset = g.dataset AND f.image_id = g.image_id
        ORDER BY {IMAGE_SORTS[sort].replace('tc.name', 'g.target_name')}
    """
    return sql, params


def summary_runs_sql(flt: ErrorFilter) -> tuple[str, dict]:
    """model_id, dataset of every model x dataset `flt`'s models, families and dataset allow, last first (the image
    sort's runs from the end), from `model_summary`."""
    joins, where, params = _summary_filter(flt, groups=False)
    return (f"SELECT s.model_id, s.dataset FROM model_summary s {joins} WHERE {where} "
            f"ORDER BY s.model_id DESC, s.dataset DESC"), params


# --- the errors in every Browse order, precomputed (error_index.build: the dashboard's snapshot) -----------------
# One row per error (a stored prediction whose pair is neither correct nor not_evaluated) with its 0-based position
# in each ERROR_SORTS order. Built from a row key that orders rows as the image sort does (model, dataset, image):
# the ranks of the model and dataset ids packed above the image id, so the other orders sort numbers, not text.
ERROR_INDEX = "error_index"
ERROR_INDEX_IMAGES = "error_index_images"
INDEX_POSITIONS = {"image": "pos_image", "confidence": "pos_confidence", "models": "pos_models",
                   "class": "pos_class", "category": "pos_category"}
_INDEX_SOURCE = """
    WITH mdl AS (SELECT model_id, row_number() OVER (ORDER BY model_id) AS model_rank
                 FROM (SELECT DISTINCT model_id FROM predictions)),
    ds AS (SELECT dataset, row_number() OVER (ORDER BY dataset) AS dataset_rank, count(*) OVER () AS datasets
           FROM (SELECT DISTINCT dataset FROM predictions)),
    names AS (SELECT class_id, dense_rank() OVER (ORDER BY name) AS name_rank FROM classes)
    SELECT {columns}
    FROM predictions p
    JOIN pair_categories c ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
    JOIN images i ON i.dataset = p.dataset AND i.image_id = p.image_id
    JOIN mdl ON mdl.model_id = p.model_id
    JOIN ds ON ds.dataset = p.dataset
    {joins}
    WHERE c.category NOT IN ('correct', 'not_evaluated')
"""
_ROW_KEY = "(((mdl.model_rank * ds.datasets + ds.dataset_rank) << 32) + (p.image_id::BIGINT + 2147483648))"
ERROR_INDEX_BUILD = (
    "CREATE OR REPLACE TEMP TABLE _index_keys AS " + _INDEX_SOURCE.format(
        columns=f"{_ROW_KEY} AS row_key, p.confidence, c.models, tn.name_rank AS target_rank, "
                "pn.name_rank AS prediction_rank, list_position($category_order, c.category) AS category_rank",
        joins="JOIN names tn ON tn.class_id = i.target JOIN names pn ON pn.class_id = p.prediction"),
    """CREATE OR REPLACE TEMP TABLE _index_positions AS
       SELECT row_key,
              row_number() OVER (ORDER BY row_key) - 1 AS pos_image,
              row_number() OVER (ORDER BY confidence DESC NULLS LAST, row_key) - 1 AS pos_confidence,
              row_number() OVER (ORDER BY models DESC, row_key) - 1 AS pos_models,
              row_number() OVER (ORDER BY target_rank, prediction_rank, row_key) - 1 AS pos_class,
              row_number() OVER (ORDER BY category_rank, row_key) - 1 AS pos_category
       FROM _index_keys""",
    "DROP TABLE _index_keys",
    f"CREATE OR REPLACE TABLE {ERROR_INDEX} AS " + _INDEX_SOURCE.format(
        columns="p.model_id, p.dataset, p.image_id, p.prediction, p.top5, p.confidence, c.category, c.models, "
                "i.target, x.pos_image, x.pos_confidence, x.pos_models, x.pos_class, x.pos_category",
        joins=f"JOIN _index_positions x ON x.row_key = {_ROW_KEY}"),
    "DROP TABLE _index_positions",
    # One row per image holding an error: error_images_sql's figures over every error, at their place in each
    # IMAGE_SORTS order (the per-image mode of a filter that keeps every error).
    f"""CREATE OR REPLACE TABLE {ERROR_INDEX_IMAGES} AS
        WITH g AS (SELECT dataset, image_id, {_IMAGE_FIGURES.format(models="models")}
                   FROM {ERROR_INDEX} GROUP BY dataset, image_id)
        SELECT g.*,
               row_number() OVER (ORDER BY {IMAGE_SORTS["image"]}) - 1 AS pos_image,
               row_number() OVER (ORDER BY {IMAGE_SORTS["confidence"]}) - 1 AS pos_confidence,
               row_number() OVER (ORDER BY {IMAGE_SORTS["models"]}) - 1 AS pos_models,
               row_number() OVER (ORDER BY {IMAGE_SORTS["class"]}) - 1 AS pos_class,
               row_number() OVER (ORDER BY {IMAGE_SORTS["category"]}) - 1 AS pos_category
        FROM g JOIN images i ON i.dataset = g.dataset AND i.image_id = g.image_id
        JOIN classes tc ON tc.class_id = i.target""",
)
ERROR_INDEX_DROP = f"DROP TABLE IF EXISTS {ERROR_INDEX_IMAGES}; DROP TABLE IF EXISTS {ERROR_INDEX}"
ERROR_INDEX_EXISTS = ("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                      f"AND schema_name = 'main' AND table_name = '{ERROR_INDEX}'")
ERROR_INDEX_ROWS = f"SELECT count(*) FROM {ERROR_INDEX}"
ERROR_INDEX_DATASETS = f"SELECT min(dataset), max(dataset) FROM {ERROR_INDEX}"
SET_MEMORY_LIMIT = "SET memory_limit = $limit"
RESET_MEMORY_LIMIT = "RESET memory_limit"


def index_buckets_sql(flt: ErrorFilter, sort: str, *, bucket: int) -> tuple[str, dict]:
    """b, n: how many errors of `flt` lie in each run of `bucket` positions of `sort`'s order, from error_index."""
    _check_sort(sort, ERROR_SORTS)
    joins, where, params = error_where(flt, rows="x")
    position = INDEX_POSITIONS[sort]
    params["bucket"] = bucket
    return (f"SELECT x.{position} // $bucket AS b, count(*) AS n FROM {ERROR_INDEX} x {joins} WHERE {where} "
            "GROUP BY b ORDER BY b"), params


def indexed_errors_sql(flt: ErrorFilter, *, sort: str, limit: int, offset: int,
                       positions: tuple[int, int] | None = None) -> tuple[str, dict]:
    """`sorted_errors_sql(flt, sort=sort, limit=limit, offset=offset)`'s rows read from error_index: the filter over
    its rows in position order; `positions` = (low, high) keeps positions low <= p < high (the page then counts from
    the first such row). The pair's reason is joined to the page's rows only."""
    _check_sort(sort, ERROR_SORTS)
    joins, where, params = error_where(flt, rows="x")
    position = INDEX_POSITIONS[sort]
    if positions is not None:
        where += f" AND x.{position} >= $low AND x.{position} < $high"
        params["low"], params["high"] = positions
    params["limit"], params["offset"] = limit, offset
    if sort == "category":
        params["category_order"] = list(categories.IDS)
    keys = f"""
        SELECT x.model_id, x.dataset, x.image_id, x.prediction, x.top5, x.confidence, x.category, c.reason,
               x.models AS models_making_error
        FROM (SELECT x.* FROM {ERROR_INDEX} x {joins} WHERE {where} ORDER BY x.{position} LIMIT $limit OFFSET $offset) x
        JOIN pair_categories c ON c.dataset = x.dataset AND c.image_id = x.image_id AND c.prediction = x.prediction
    """
    return _in_sort_order(keys, sort), params


def indexed_images_sql(*, sort: str, positions: tuple[int, int]) -> tuple[str, dict]:
    """`error_images_sql(ErrorFilter(), sort=sort, ...)`'s rows at positions low <= p < high of `sort`'s order,
    read from error_index_images (for a filter that keeps every error)."""
    _check_sort(sort, IMAGE_SORTS)
    position = INDEX_POSITIONS[sort]
    return f"""
        {_IMAGE_ROWS.format(source=ERROR_INDEX_IMAGES)}
        WHERE g.{position} >= $low AND g.{position} < $high
        ORDER BY g.{position}
    """, {"low": positions[0], "high": positions[1]}

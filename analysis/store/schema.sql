-- Store schema, version 1 (created by analysis.store.database, which then applies analysis/store/sql/migrate_NNN.sql for
-- every later version: v2 adds runs.shard, runs.options, the prediction_staging table of resumable runs and
-- pair_categories.models, the number of stored models that predict the pair; v3 adds model_summary, the
-- per-model × dataset × group figures the dashboard reads; v4 adds the file identity of staged rows and the
-- holder of a running run: runs.pid, host, pid_start, held_since; v5 adds reviews, the user's own verdicts that
-- build never touches, and imagenet_x, the optional ImageNet-X factor annotations of imagenet-val; v6 adds
-- ingested_shards, the ids of the Parquet shards already published, analysis.store.shards).
-- Class ids are SMALLINT 0-999; images are addressed by (dataset, image_id), image_id = 0-based
-- index within the dataset (validation file order for imagenet-val, class id order for samples).

CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);

CREATE TABLE IF NOT EXISTS classes (
    class_id SMALLINT PRIMARY KEY, wnid VARCHAR NOT NULL, name VARCHAR NOT NULL,
    lemmas VARCHAR[], definition VARCHAR, grp VARCHAR NOT NULL,      -- organism | artifact | other
    wordnet_path VARCHAR[]                                            -- readable names, root first
);
CREATE TABLE IF NOT EXISTS superclasses (
    superclass_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, grp VARCHAR NOT NULL, size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS class_superclasses (class_id SMALLINT NOT NULL, superclass_id VARCHAR NOT NULL);

CREATE TABLE IF NOT EXISTS datasets (
    dataset VARCHAR PRIMARY KEY,        -- imagenet-val | samples | folder:<name>
    label_mode VARCHAR NOT NULL,        -- real | multilabel | single
    root VARCHAR,                       -- where the image files are, if known
    description VARCHAR
);
CREATE TABLE IF NOT EXISTS images (
    dataset VARCHAR NOT NULL, image_id INTEGER NOT NULL, file_name VARCHAR NOT NULL,
    target SMALLINT NOT NULL, labels SMALLINT[] NOT NULL, evaluated BOOLEAN NOT NULL,
    non_prototypical BOOLEAN NOT NULL DEFAULT FALSE
);
-- ReaL co-occurrence counts used by spurious_correlation (per dataset and label mode).
CREATE TABLE IF NOT EXISTS cooccurrence (label_mode VARCHAR NOT NULL, a SMALLINT NOT NULL, b SMALLINT NOT NULL, images INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS models (
    model_id VARCHAR PRIMARY KEY, arch VARCHAR, family VARCHAR, training_data VARCHAR, params BIGINT,
    source VARCHAR NOT NULL,            -- paper | run | import
    created_at TIMESTAMP DEFAULT current_timestamp, metadata JSON
);
-- One row per (model, dataset, image). top5[1] = prediction.
CREATE TABLE IF NOT EXISTS predictions (
    model_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, image_id INTEGER NOT NULL,
    prediction SMALLINT NOT NULL, top5 SMALLINT[], confidence REAL, top5_confidence REAL[]
);
-- Category of each distinct (dataset, image, prediction) pair, classified once.
CREATE TABLE IF NOT EXISTS pair_categories (
    dataset VARCHAR NOT NULL, image_id INTEGER NOT NULL, prediction SMALLINT NOT NULL,
    category VARCHAR NOT NULL, reason VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS expert_labels (
    expert VARCHAR NOT NULL, file_name VARCHAR NOT NULL, image_id INTEGER NOT NULL, prediction SMALLINT NOT NULL,
    category VARCHAR NOT NULL, severity VARCHAR NOT NULL, raw_category VARCHAR, raw_severity VARCHAR
);
CREATE TABLE IF NOT EXISTS paper_models (
    model_id VARCHAR PRIMARY KEY, source VARCHAR, arch VARCHAR, arch_group VARCHAR, arch_family VARCHAR,
    training_data VARCHAR, extra_annotations VARCHAR
);
-- The paper's per-model statistics (stats-<dataset>/non_problematic_stats_<grp>.csv), one row per model × dataset × grp.
CREATE TABLE IF NOT EXISTS paper_model_stats (
    model_dir_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, grp VARCHAR NOT NULL,
    num_params BIGINT, training_data VARCHAR, arch VARCHAR, arch_family VARCHAR, arch_group VARCHAR,
    top1 DOUBLE, mla DOUBLE, mla_minor DOUBLE, mla_explainable DOUBLE,
    num_errors INTEGER, count_overlapping_classes INTEGER, count_multi_label INTEGER, count_fine_grained INTEGER,
    count_fine_grained_oov INTEGER, count_spurious_correlation INTEGER, count_non_prototypical INTEGER,
    count_model_failure INTEGER
);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, model_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, device VARCHAR,
    images INTEGER, seconds DOUBLE, status VARCHAR NOT NULL,  -- running | done | failed | interrupted
    message VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP
);
-- CLIP open-world check: cached embeddings and per-pair verdicts.
CREATE TABLE IF NOT EXISTS clip_image_embeddings (checkpoint VARCHAR NOT NULL, dataset VARCHAR NOT NULL, image_id INTEGER NOT NULL, embedding FLOAT[] NOT NULL);
CREATE TABLE IF NOT EXISTS clip_text_embeddings (checkpoint VARCHAR NOT NULL, prompt VARCHAR NOT NULL, embedding FLOAT[] NOT NULL);

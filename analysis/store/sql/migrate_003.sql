-- Schema version 3: a per-model summary, one row per model × dataset × group (all | organism | artifact | other),
-- with the definitions of analysis.metrics.model_metrics. The dashboard's per-model figures (model list, overview
-- metrics, zoo scatter) read it instead of aggregating all predictions. Written in the transaction that publishes
-- a model's predictions and recomputed whenever pairs are classified again; analysis.store.database fills it for the
-- models already stored right after this file runs. Unique on (model_id, dataset, grp).
CREATE TABLE IF NOT EXISTS model_summary (
    model_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL, grp VARCHAR NOT NULL,
    images BIGINT NOT NULL,             -- predicted images of the group
    evaluated BIGINT NOT NULL,          -- of which evaluated (in the label set's evaluation set)
    errors BIGINT NOT NULL,             -- evaluated images whose category is neither correct nor not_evaluated
    top1_hits BIGINT NOT NULL,          -- prediction = target
    real_n BIGINT NOT NULL,             -- images with a non-empty label list
    real_hits BIGINT NOT NULL,          -- of which the prediction is a label
    mla DOUBLE, mla_minor DOUBLE, mla_explainable DOUBLE,   -- percent, averaged per target class; NULL: none evaluated
    count_overlapping_classes BIGINT NOT NULL, count_multi_label BIGINT NOT NULL, count_fine_grained BIGINT NOT NULL,
    count_fine_grained_oov BIGINT NOT NULL, count_spurious_correlation BIGINT NOT NULL,
    count_non_prototypical BIGINT NOT NULL, count_model_failure BIGINT NOT NULL
);

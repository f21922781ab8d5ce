-- Schema version 2: resumable runs. Predictions of a run are staged here chunk by chunk (each chunk its
-- own transaction) and published into `predictions` in one transaction when the run finishes.
ALTER TABLE runs ADD COLUMN IF NOT EXISTS shard VARCHAR;            -- "i/n" or NULL for the whole set
ALTER TABLE runs ADD COLUMN IF NOT EXISTS options JSON;             -- batch size, workers, limit, checkpoint
CREATE TABLE IF NOT EXISTS prediction_staging (
    run_id VARCHAR NOT NULL, image_id INTEGER NOT NULL,
    prediction SMALLINT NOT NULL, top5 SMALLINT[], confidence REAL, top5_confidence REAL[]
);
-- How many stored models make each (dataset, image, prediction) pair: "made by at least k models" filters
-- read it instead of counting predictions; kept current by every publish of predictions.
ALTER TABLE pair_categories ADD COLUMN IF NOT EXISTS models INTEGER DEFAULT 0;
UPDATE pair_categories c SET models = n.models
FROM (SELECT dataset, image_id, prediction, count(DISTINCT model_id) AS models FROM predictions GROUP BY ALL) n
WHERE n.dataset = c.dataset AND n.image_id = c.image_id AND n.prediction = c.prediction;

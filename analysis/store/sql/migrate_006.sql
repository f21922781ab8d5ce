-- Schema version 6: the Parquet shards already ingested (analysis.store.shards). A shard's id is recorded in the same
-- transaction that publishes its rows, so a shard file met again after that commit (a crash before its deletion) is
-- deleted, not published twice.
CREATE TABLE IF NOT EXISTS ingested_shards (
    shard_id VARCHAR PRIMARY KEY, file_name VARCHAR NOT NULL, model_id VARCHAR NOT NULL, dataset VARCHAR NOT NULL,
    rows BIGINT NOT NULL, ingested_at TIMESTAMP NOT NULL
);

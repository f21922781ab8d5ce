"""Store: the DuckDB file and everything that reads or writes it — the connection, schema and migrations
(`database`), the reference build, the atomic write of a model's predictions, the per-model summary, all SQL
(`queries` for writes and the export, `views` for the dashboard's reads), the shared error filter, the export,
the prediction-file imports and the CLIP embedding cache.

Imports `analysis.taxonomy` and `analysis.knowledge`, never inference or the CLI.
"""

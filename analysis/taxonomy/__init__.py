"""Taxonomy: the error categories and how a mistake is put in one — label sets, the per-row and vectorised
classifier, the open-world (CLIP) check and its embedders, the metrics (top-1, ReaL, MLA), the agreement with
the experts, and `classify-csv`.

Imports `analysis.knowledge` (and `paths` / `errors`), never the store, inference or the CLI.
"""

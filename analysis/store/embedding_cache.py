"""The CLIP embedding cache in the store: `clip_image_embeddings` / `clip_text_embeddings` (schema.sql), the
DuckDB implementation of `analysis.taxonomy.embedders.EmbeddingCache`, so that the open-world check embeds each
image and prompt once per checkpoint across runs.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

_CACHE_TABLES = ("clip_image_embeddings", "clip_text_embeddings")
_SCHEMA_SQL = Path(__file__).with_name("schema.sql")
_INSERT_IMAGES = "INSERT INTO clip_image_embeddings BY NAME SELECT * FROM _clip_rows"
_INSERT_TEXTS = "INSERT INTO clip_text_embeddings BY NAME SELECT * FROM _clip_rows"


def _cache_ddl() -> list[str]:
    statements = _SCHEMA_SQL.read_text().split(";")
    return [s for s in statements if any(f"EXISTS {table} " in s for table in _CACHE_TABLES)]


def _split_image_keys(keys: Sequence[Hashable]) -> tuple[list[str], list[int]]:
    datasets, ids = [], []
    for key in keys:
        if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)
                and isinstance(key[1], (int, np.integer))):
            raise TypeError(f"image key {key!r} must be a (dataset: str, image_id: int) pair for the DuckDB cache")
        datasets.append(key[0])
        ids.append(int(key[1]))
    return datasets, ids


def _vectors(column) -> np.ndarray:
    # A DuckDB FLOAT[] column as arrow -> one (rows, D) float32 array without per-row Python.
    if len(column) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    flat = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    values = flat.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    return values.reshape(len(flat), -1)


class DuckDBCache:
    """Embedding cache in the store's `clip_image_embeddings` / `clip_text_embeddings` tables.

    Image keys are `(dataset, image_id)` pairs; the embedder name goes in the `checkpoint` column.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        """Use the open connection `con`, creating the two cache tables (schema.sql DDL) when missing."""
        if not isinstance(con, duckdb.DuckDBPyConnection):
            raise TypeError(f"con={con!r} must be an open duckdb connection (duckdb.connect(path))")
        self._con = con
        for statement in _cache_ddl():
            con.execute(statement)

    def get_images(self, name: str, keys: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
        """Cached embeddings `{(dataset, image_id): (D,)}` of those `keys` that are cached."""
        datasets, ids = _split_image_keys(keys)
        out: dict[Hashable, np.ndarray] = {}
        for dataset in sorted(set(datasets)):
            wanted = [i for d, i in zip(datasets, ids) if d == dataset]
            table = self._con.sql(
                "SELECT image_id, embedding FROM clip_image_embeddings"
                " WHERE checkpoint = ? AND dataset = ? AND image_id IN (SELECT unnest(?))",
                params=[name, dataset, wanted]).to_arrow_table()
            found = table.column("image_id").to_numpy()
            out.update(zip(((dataset, int(i)) for i in found), _vectors(table.column("embedding"))))
        return out

    def put_images(self, name: str, keys: Sequence[Hashable], embeddings: np.ndarray) -> None:
        """Store `embeddings (len(keys), D)` under `(dataset, image_id)` keys, in one insert."""
        datasets, ids = _split_image_keys(keys)
        self._insert(_INSERT_IMAGES, {"checkpoint": [name] * len(ids), "dataset": datasets,
                                      "image_id": np.asarray(ids, dtype=np.int32)}, embeddings)

    def get_texts(self, name: str, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached embeddings `{prompt: (D,)}` of those `prompts` that are cached."""
        table = self._con.sql(
            "SELECT prompt, embedding FROM clip_text_embeddings WHERE checkpoint = ? AND prompt IN (SELECT unnest(?))",
            params=[name, list(prompts)]).to_arrow_table()
        return dict(zip(table.column("prompt").to_pylist(), _vectors(table.column("embedding"))))

    def put_texts(self, name: str, prompts: Sequence[str], embeddings: np.ndarray) -> None:
        """Store `embeddings (len(prompts), D)` under `prompts`, in one insert."""
        prompts = list(prompts)
        self._insert(_INSERT_TEXTS, {"checkpoint": [name] * len(prompts), "prompt": prompts}, embeddings)

    def _insert(self, insert: str, columns: dict, embeddings: np.ndarray) -> None:
        # Rows travel as one Arrow table (embedding: list<float> over the flat array), not as Python lists.
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        rows, dim = embeddings.shape
        offsets = np.arange(rows + 1, dtype=np.int32) * dim
        columns = dict(columns, embedding=pa.ListArray.from_arrays(offsets, embeddings.ravel()))
        self._con.register("_clip_rows", pa.table(columns))
        try:
            self._con.execute(insert)
        finally:
            self._con.unregister("_clip_rows")

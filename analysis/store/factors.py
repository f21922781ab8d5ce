"""The store's ImageNet-X table (`imagenet_x`, schema v5): its load at build, one image's factors, and how much more
often each factor appears in each error category than in correct predictions (CC BY-NC 4.0 annotations)."""

from __future__ import annotations

import duckdb
import pandas as pd

from analysis.knowledge import imagenet_x
from analysis.store import database
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories

DATASET = "imagenet-val"  # the annotations are of validation images, addressed by their validation index

_DELETE = "DELETE FROM imagenet_x"
_INSERT = """
    INSERT INTO imagenet_x SELECT image_id, file_name, class_id, factors, top_factor, justification, one_word
    FROM _incoming ORDER BY image_id
"""
_COUNT = "SELECT count(*) FROM imagenet_x"
_IMAGE = """
    SELECT image_id, file_name, class_id, factors, top_factor, justification, one_word FROM imagenet_x
    WHERE image_id = ?
"""
# Per category: predictions on annotated images, and per factor how many of them show it. The sidebar's models,
# families and groups narrow the predictions; a pair not classified reads as correct / unclassified.
_RATIOS = """
    WITH r AS (
        SELECT coalesce(c.category, CASE WHEN p.prediction = i.target THEN 'correct' ELSE 'unclassified' END)
                   AS category, x.factors
        FROM predictions p
        JOIN imagenet_x x ON x.image_id = p.image_id
        JOIN images i ON i.dataset = p.dataset AND i.image_id = p.image_id
        JOIN classes cl ON cl.class_id = i.target
        JOIN models m ON m.model_id = p.model_id
        LEFT JOIN pair_categories c
          ON c.dataset = p.dataset AND c.image_id = p.image_id AND c.prediction = p.prediction
        WHERE p.dataset = $dataset
          AND (len($models) = 0 OR list_contains($models, p.model_id))
          AND (len($families) = 0 OR list_contains($families, m.family))
          AND (len($groups) = 0 OR list_contains($groups, cl.grp))
    ),
    totals AS (SELECT category, count(*) AS predictions FROM r GROUP BY category),
    hits AS (
        SELECT category, factor, count(*) AS with_factor
        FROM (SELECT category, unnest(factors) AS factor FROM r) GROUP BY ALL
    )
    SELECT t.category, h.factor, t.predictions, coalesce(h.with_factor, 0) AS with_factor
    FROM totals t LEFT JOIN hits h USING (category)
"""
RATIO_COLUMNS = ("category", "factor", "predictions", "with_factor", "share", "correct_share", "ratio")


def replace_annotations(con: duckdb.DuckDBPyConnection, frame: pd.DataFrame | None) -> None:
    """Replace the `imagenet_x` rows with `frame` (`imagenet_x.load()`), or empty the table when None."""
    con.execute(_DELETE)
    if frame is not None:
        database.insert_frame(con, _INSERT, frame)


def loaded(con: duckdb.DuckDBPyConnection) -> int:
    """How many images the store's `imagenet_x` table annotates (0: not loaded)."""
    return int(database.first(con, _COUNT)[0])


def image_factors(con: duckdb.DuckDBPyConnection, dataset: str, image_id: int) -> dict | None:
    """The ImageNet-X row of image `image_id` of `dataset` (only imagenet-val is annotated), or None."""
    if not isinstance(image_id, int) or isinstance(image_id, bool):
        raise TypeError(f"image_id={image_id!r} must be an integer image index, e.g. 0")
    if dataset != DATASET:
        return None
    row = database.first(con, _IMAGE, [image_id])
    if row is None:
        return None
    keys = ("image_id", "file_name", "class_id", "factors", "top_factor", "justification", "one_word")
    return dict(zip(keys, row))


def factor_ratios(con: duckdb.DuckDBPyConnection, flt: ErrorFilter | None = None) -> pd.DataFrame:
    """Per category × factor: predictions on annotated imagenet-val images, how many show the factor, that share,
    the share among correct predictions, and ratio = share / correct share (columns `RATIO_COLUMNS`).

    `flt`'s models, families and groups narrow the predictions (its other fields are ignored); the dataset is
    always imagenet-val. A ratio of 2 means the factor is marked twice as often on that category's images as on
    the images predicted correctly. Empty when nothing is annotated or predicted.
    """
    flt = ErrorFilter() if flt is None else flt
    if not isinstance(flt, ErrorFilter):
        raise TypeError(f"flt={flt!r} must be an ErrorFilter")
    counts = con.execute(_RATIOS, {"dataset": DATASET, "models": list(flt.models), "families": list(flt.families),
                                   "groups": list(flt.groups)}).df()
    if counts.empty:
        return pd.DataFrame(columns=list(RATIO_COLUMNS))
    totals = counts.groupby("category")["predictions"].first()
    hits = counts.dropna(subset=["factor"]).set_index(["category", "factor"])["with_factor"]
    order = [c for c in (*categories.IDS, "unclassified") if c in totals.index]
    grid = pd.MultiIndex.from_product([order, imagenet_x.FACTORS], names=["category", "factor"])
    out = pd.DataFrame(index=grid).reset_index()
    out["predictions"] = out["category"].map(totals).astype("int64")
    out["with_factor"] = hits.reindex(grid, fill_value=0).to_numpy().astype("int64")
    out["share"] = out["with_factor"] / out["predictions"]
    correct = out.loc[out["category"] == "correct"].set_index("factor")["share"]
    out["correct_share"] = out["factor"].map(correct)
    out["ratio"] = out["share"] / out["correct_share"].where(out["correct_share"] > 0)
    return out[list(RATIO_COLUMNS)]

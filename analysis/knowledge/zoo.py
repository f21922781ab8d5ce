"""The paper's 962-model zoo: model summary and per-group error statistics (Peychev et al., 2023)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis.knowledge import fetch

ZOO_DATASETS = ("imagenet", "imagenet-a")
ZOO_GROUPS = ("all", "organism", "artifact", "other")
COUNT_COLUMNS = {
    "num_collapsed_mappings": "overlapping_classes",
    "num_ambiguous": "multi_label",
    "num_same_superclass": "fine_grained",
    "num_OOV_clip": "fine_grained_oov",
    "num_common_co_occ": "spurious_correlation",
    "num_non_prototypical": "non_prototypical",
    "num_not_classified": "model_failure",
}


def load_models(path: Path | None = None) -> pd.DataFrame:
    """`models_summary.csv`: one row per model (model_id, source, arch, family, training dataset)."""
    path = Path(path) if path else fetch.local_file("zoo_models", "models_summary.csv")
    df = pd.read_csv(path)
    required = {"model_id", "source", "arch", "arch_family", "dataset"}
    missing = required - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return df


def load_stats(dataset: str = "imagenet", group: str = "all", path: Path | None = None) -> pd.DataFrame:
    """Per-model statistics of one group (`non_problematic_stats_<group>.csv`) with our category ids added.

    Adds `count_<category>` columns (renamed error counts) next to the original ones.
    """
    if dataset not in ZOO_DATASETS:
        raise ValueError(f"dataset={dataset!r} is unknown; choose one of {ZOO_DATASETS}")
    if group not in ZOO_GROUPS:
        raise ValueError(f"group={group!r} is unknown; choose one of {ZOO_GROUPS}")
    if path is None:
        path = fetch.local_file("zoo_stats", f"stats-{dataset}/non_problematic_stats_{group}.csv")
    df = pd.read_csv(path)
    missing = {"model_dir_id", *COUNT_COLUMNS} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    for column, category in COUNT_COLUMNS.items():
        df[f"count_{category}"] = df[column]
    df.insert(0, "group", group)
    df.insert(0, "dataset", dataset)
    return df


def load_all_stats() -> pd.DataFrame:
    """Every dataset × group statistics table stacked (about 8 × 962 rows)."""
    return pd.concat([load_stats(d, g) for d in ZOO_DATASETS for g in ZOO_GROUPS], ignore_index=True)

"""Expert error labels of Vasudevan et al. (2022) for ViT-3B and Greedy Soups, mapped to our category ids."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analysis.knowledge import fetch
from analysis.knowledge.classes import val_index

EXPERTS = {"vit3b": "expert_vit3b", "greedysoups": "expert_greedysoups"}
EXPERT_NAMES = {"vit3b": "ViT-3B", "greedysoups": "Greedy Soups"}
CATEGORY_MAP = {
    "Fine-grained error": "fine_grained",
    "Fine-grained error with OOV": "fine_grained_oov",
    "Fine-grained with OOV": "fine_grained_oov",
    "Spurious Correlation": "spurious_correlation",
    "Non-prototypical": "non_prototypical",
    "Fine-grained with Multilabel Options": "multi_label",
}
SEVERITY_MAP = {"Minor": "minor", "Borderline": "minor", "Major": "major"}


def _check_expert(expert: str) -> str:
    if expert not in EXPERTS:
        raise ValueError(f"expert={expert!r} is unknown; choose one of {sorted(EXPERTS)}")
    return EXPERTS[expert]


def load_expert(expert: str, path: Path | None = None) -> pd.DataFrame:
    """One expert file as rows: expert, file_name, image_index, prediction, category, severity, raw values.

    Unknown categories or severities raise ValueError naming the file and the image.
    """
    source = _check_expert(expert)
    path = Path(path) if path else fetch.local_file(source)
    data = json.loads(path.read_text())
    rows = []
    for file_name, entry in data.items():
        raw_category, raw_severity = entry.get("failure category"), entry.get("failure severity")
        if raw_category not in CATEGORY_MAP:
            raise ValueError(f"{path}: image {file_name}: unknown failure category {raw_category!r}")
        if raw_severity not in SEVERITY_MAP:
            raise ValueError(f"{path}: image {file_name}: unknown failure severity {raw_severity!r}")
        prediction = entry.get("top_prediction")
        if not isinstance(prediction, int) or not 0 <= prediction < 1000:
            raise ValueError(f"{path}: image {file_name}: top_prediction {prediction!r} is not a class id 0-999")
        rows.append({
            "expert": expert,
            "file_name": file_name,
            "image_index": val_index(file_name),
            "prediction": prediction,
            "category": CATEGORY_MAP[raw_category],
            "severity": SEVERITY_MAP[raw_severity],
            "raw_category": raw_category,
            "raw_severity": raw_severity,
        })
    return pd.DataFrame(rows).sort_values("image_index", ignore_index=True)


def load_all() -> pd.DataFrame:
    """Both expert files stacked (columns as in `load_expert`)."""
    return pd.concat([load_expert(e) for e in EXPERTS], ignore_index=True)


def non_prototypical_images() -> set[int]:
    """Validation indices that any expert marked non-prototypical (the `non_prototypical` check)."""
    frames = []
    for expert, source in EXPERTS.items():
        if not fetch.missing(source):
            frames.append(load_expert(expert))
    if not frames:
        return set()
    df = pd.concat(frames)
    return set(df.loc[df["category"] == "non_prototypical", "image_index"].astype(int))

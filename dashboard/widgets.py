"""Shared pieces of the pages: CSV downloads of whole results, category charts, metric rows."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd
import plotly.express as px
import streamlit as st

from analysis.errors import UserError
from analysis.store import export
from analysis.taxonomy import categories
from dashboard import db


def csv_download(label: str, frame: Callable[[], pd.DataFrame], *, file_name: str, key: str) -> None:
    """A download button whose CSV (the whole result, built only when clicked) is `frame()` as `export` writes it."""
    st.download_button(label, data=lambda: export.to_csv(frame()), file_name=file_name, mime="text/csv",
                       key=key, on_click="ignore", icon=":material/download:")


def category_label(category: str) -> str:
    return categories.NAMES.get(category, category)


def composition_chart(frame: pd.DataFrame, *, key: str, selectable: bool = False):
    """Stacked bars: portion of errors of each category per group, in taxonomy order and colours; `selectable`
    returns the click (`bar_selection` reads it)."""
    data = frame.assign(category_name=frame["category"].map(category_label))
    order = [categories.NAMES[c] for c in categories.ERROR_IDS]
    fig = px.bar(
        data, x="grp", y="portion", color="category_name", text="errors",
        category_orders={"category_name": order, "grp": ["all", "organism", "artifact", "other"]},
        color_discrete_map={categories.NAMES[c]: categories.COLOURS[c] for c in categories.IDS},
        labels={**LABELS, "category_name": "Category"},
        hover_data={"errors": True, "portion": ":.1%"}, custom_data=["category"],
    )
    fig.update_layout(barmode="stack", yaxis_tickformat=".0%", height=380, margin=dict(t=30, b=10))
    if selectable:
        return st.plotly_chart(fig, key=key, on_select="rerun", selection_mode="points")
    return st.plotly_chart(fig, key=key)


def bar_selection(event) -> tuple[str, str] | None:
    """(group, category) of the composition bar segment clicked in `composition_chart(..., selectable=True)`."""
    points = getattr(getattr(event, "selection", None), "points", None) or []
    for point in points:
        custom = point.get("customdata") or []
        if point.get("x") and custom and custom[0] in categories.NAMES:
            return str(point["x"]), str(custom[0])
    return None


def metric_row(row: pd.Series, *, prefix: str = "") -> None:
    """top-1, ReaL, MLA, MLA+minor, MLA+explainable as st.metric values (percent, two decimals)."""
    cols = st.columns(5)
    for col, (name, label) in zip(cols, (("top1", "Top-1"), ("real_accuracy", "ReaL accuracy"), ("mla", "MLA"),
                                         ("mla_minor", "MLA + minor"), ("mla_explainable", "MLA + explainable"))):
        value = row.get(name)
        col.metric(prefix + label, "n/a" if pd.isna(value) else f"{value:.2f}%", help=METRIC_HELP[name])


def empty(message: str) -> None:
    st.info(message, icon=":material/info:")


def models_on(dataset: str | None) -> list[str]:
    """Ids of the stored models with predictions on `dataset` (the pages' model choices)."""
    catalogue = db.view("models")
    return catalogue.loc[catalogue["dataset"] == dataset, "model_id"].tolist()


# One dictionary of human labels for every column and axis the pages show (a raw name never reaches the screen).
LABELS = {
    "grp": "Group", "group": "Group", "images": "Images", "evaluated": "Evaluated", "errors": "Errors",
    "top1": "Top-1 (%)", "real_accuracy": "ReaL accuracy (%)", "mla": "MLA (%)", "mla_minor": "MLA + minor (%)",
    "mla_explainable": "MLA + explainable (%)", "portion": "Portion of errors", "category": "Category",
    "target": "Target id", "target_name": "Target", "prediction": "Prediction id", "prediction_name": "Prediction",
    "image_id": "Image id", "file_name": "File", "model_id": "Model", "source": "Source",
    "training_data": "Training data", "family": "Model family", "x": "Accuracy (%)", "dataset": "Dataset",
    "category_a": "Category under A", "category_b": "Category under B", "prediction_a": "Prediction id (A)",
    "prediction_b": "Prediction id (B)", "prediction_a_name": "Prediction of A", "prediction_b_name": "Prediction of B",
    "target_superclass": "Target superclass", "prediction_superclass": "Predicted superclass",
    "expert": "Expert verdict", "automatic": "Automatic category", "agree": "Agree",
    "counts_as_correct": "Counts as correct", "severity": "Severity", "reason": "Reason",
    "concept": "WordNet concept", "superclass": "Superclass", "class_name": "Class", "confidence": "Confidence",
    "models_making_error": "Models making this mistake", "labels": "Labels", "small_run": "Under 1,000 images",
    "count": "Count", "mistakes": "Mistakes", "n": "Count",
    "factor": "ImageNet-X factor", "predictions": "Predictions", "with_factor": "With the factor", "share": "Share",
    "correct_share": "Share in correct", "ratio": "× correct", "verdict": "Verdict", "note": "Note",
    "reviewer": "Reviewer", "reviewed_at": "Reviewed at", "class_id": "Class id", "name": "Class",
}
METRIC_HELP = {
    "top1": "Top-1 accuracy: the share of images whose first prediction is the target label.",
    "real_accuracy": "ReaL accuracy: the share of images whose prediction is one of the ReaL labels "
                     "(Beyer et al. 2020); n/a for images without ReaL labels.",
    "mla": "MLA, multi-label accuracy: a prediction counts as correct when it is one of the image's labels or an "
           "overlapping class; per-image correctness is averaged over each class's images, then over classes.",
    "mla_minor": "MLA + minor: MLA that also counts fine-grained errors (a close class of the same superclass) as "
                 "correct.",
    "mla_explainable": "MLA + explainable: MLA + minor that also counts spurious correlations and non-prototypical "
                       "images as correct.",
}


def label(name: str) -> str:
    """The human label of a column or axis name (the name itself, capitalised, when the dictionary lacks it)."""
    return LABELS.get(name, name.replace("_", " ").capitalize() if "_" in name else name)


def column_config(frame: pd.DataFrame, formats: dict | None = None) -> dict:
    """`st.dataframe` column_config labelling every column of `frame` (and its index) with LABELS;
    `formats` maps a column to a NumberColumn format (e.g. "%.2f%%", "percent")."""
    formats = formats or {}
    config: dict = {}
    for name in [*frame.columns, *(n for n in frame.index.names if n)]:
        name = str(name)
        if name in formats:
            config[name] = st.column_config.NumberColumn(label(name), format=formats[name])
        else:
            config[name] = st.column_config.Column(label(name))
    return config


def table(frame: pd.DataFrame, *, key: str, formats: dict | None = None, **kwargs):
    """`st.dataframe` with human column labels (LABELS) and no index, unless `hide_index` says otherwise."""
    kwargs.setdefault("hide_index", True)
    return st.dataframe(frame, key=key, column_config=column_config(frame, formats), **kwargs)


def _download_bytes(flt, snapshot: Path) -> bytes:
    """The CSV of `flt` built from `snapshot`, or from the current one when a newer copy of the store replaced it."""
    return export.build_download(flt, db=snapshot if snapshot.is_file() else db.current().path).read_bytes()


def errors_download(label: str, flt, *, total: int, file_name: str, key: str) -> None:
    """Browse's full download: the file `python -m analysis export` writes, built on disk by a child process when the
    user asks (spinner; an error box with our message on failure), then served from disk on each click."""
    store = db.current().path  # the snapshot the page shows: the child that writes the CSV never holds the store
    path = export.download_path(flt, db=store)
    if not path.is_file():
        if not st.button(f"Prepare the CSV of all {total:,} rows", key=f"{key}_build", icon=":material/build:"):
            return
        with st.spinner(f"Writing {total:,} rows to CSV…", show_time=True):
            try:
                path = export.build_download(flt, db=store)
            except (UserError, ValueError, OSError) as exc:
                st.error(f"Could not build the CSV: {exc}")
                return
    st.download_button(label, data=lambda: _download_bytes(flt, store), file_name=file_name,
                       mime="text/csv", key=key, on_click="ignore", icon=":material/download:")

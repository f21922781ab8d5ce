"""Shared pieces of the pages: CSV downloads of whole results, category charts, metric rows."""

from __future__ import annotations

from typing import Callable

import pandas as pd
import plotly.express as px
import streamlit as st

from analysis.store import export
from analysis.taxonomy import categories
from dashboard import db


def csv_download(label: str, frame: Callable[[], pd.DataFrame], *, file_name: str, key: str) -> None:
    """A download button whose CSV (the whole result, built only when clicked) is `frame()` as `export` writes it."""
    st.download_button(label, data=lambda: export.to_csv(frame()), file_name=file_name, mime="text/csv",
                       key=key, on_click="ignore", icon=":material/download:")


def category_label(category: str) -> str:
    return categories.NAMES.get(category, category)


def composition_chart(frame: pd.DataFrame, *, key: str):
    """Stacked bars: portion of errors of each category per group, in taxonomy order and colours."""
    data = frame.assign(category_name=frame["category"].map(category_label))
    order = [categories.NAMES[c] for c in categories.ERROR_IDS]
    fig = px.bar(
        data, x="grp", y="portion", color="category_name", text="errors",
        category_orders={"category_name": order, "grp": ["all", "organism", "artifact", "other"]},
        color_discrete_map={categories.NAMES[c]: categories.COLOURS[c] for c in categories.IDS},
        labels={"grp": "group", "portion": "portion of errors", "category_name": "category"},
        hover_data={"errors": True, "portion": ":.1%"},
    )
    fig.update_layout(barmode="stack", yaxis_tickformat=".0%", height=380, margin=dict(t=30, b=10))
    return st.plotly_chart(fig, key=key)


def metric_row(row: pd.Series, *, prefix: str = "") -> None:
    """top-1, ReaL, MLA, MLA+minor, MLA+explainable as st.metric values (percent, two decimals)."""
    cols = st.columns(5)
    for col, (name, label) in zip(cols, (("top1", "Top-1"), ("real_accuracy", "ReaL accuracy"), ("mla", "MLA"),
                                         ("mla_minor", "MLA + minor"), ("mla_explainable", "MLA + explainable"))):
        value = row.get(name)
        col.metric(prefix + label, "n/a" if pd.isna(value) else f"{value:.2f}%")


def empty(message: str) -> None:
    st.info(message, icon=":material/info:")


def models_on(dataset: str | None) -> list[str]:
    """Ids of the stored models with predictions on `dataset` (the pages' model choices)."""
    catalogue = db.view("models")
    return catalogue.loc[catalogue["dataset"] == dataset, "model_id"].tolist()

"""Overview: one model's accuracies, its error composition per group and its most frequent confusions."""

from __future__ import annotations

import streamlit as st

from dashboard import db, state, widgets

flt = state.current_filter()
st.title("Overview")
models = widgets.models_on(flt.dataset)
if not models:
    widgets.empty(f"No model has predictions on `{flt.dataset}`.")
    st.stop()
preferred = [m for m in flt.models if m in models]
if preferred and st.session_state.get("ov_model") not in models:
    st.session_state["ov_model"] = preferred[0]
model = state.selectbox("Model", models, key="ov_model", url="model")
st.caption(f"Dataset `{flt.dataset}` · the sidebar's other filters apply to Browse and the CSV exports.")

with st.spinner("Computing metrics…"):
    metrics = db.view("model_metrics", model, dataset=flt.dataset)
overall = metrics[metrics["grp"] == "all"].iloc[0]
widgets.metric_row(overall)
st.caption(f"{int(overall['images'])} images, {int(overall['evaluated'])} evaluated, "
           f"{int(overall['errors'])} errors. MLA counts overlapping-class and multi-label predictions as correct; "
           "+minor adds fine-grained errors; +explainable adds spurious correlations and non-prototypical images.")
# A dataset without ReaL labels (the sample images) has no ReaL accuracy: leave the empty column out.
st.dataframe(metrics.dropna(axis=1, how="all"), hide_index=True, key="ov_metrics_table",
             column_config={c: st.column_config.NumberColumn(format="%.2f%%")
                            for c in ("top1", "real_accuracy", "mla", "mla_minor", "mla_explainable")})
widgets.csv_download("Metrics CSV", lambda: db.uncached("views", "model_metrics", model, dataset=flt.dataset),
                     file_name=f"metrics_{model}.csv", key="ov_metrics_csv")

st.subheader("Error composition")
composition = db.view("composition", model, dataset=flt.dataset)
if composition.empty:
    widgets.empty("This model makes no errors on the evaluated images.")
else:
    widgets.composition_chart(composition, key="ov_composition_chart")
    widgets.csv_download("Composition CSV", lambda: db.uncached("views", "composition", model, dataset=flt.dataset),
                         file_name=f"composition_{model}.csv", key="ov_composition_csv")

st.subheader("Most frequent confusions (target → prediction)")
top = db.view("top_confusions", model, dataset=flt.dataset, limit=25)
if top.empty:
    widgets.empty("No confusions to show.")
else:
    st.dataframe(top.assign(category=top["category"].map(widgets.category_label)), hide_index=True,
                 key="ov_confusions_table")
    widgets.csv_download("All confusions CSV",
                         lambda: db.uncached("views", "top_confusions", model, dataset=flt.dataset, limit=None),
                         file_name=f"confusions_{model}.csv", key="ov_confusions_csv")

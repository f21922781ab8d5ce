"""Overview: one model's accuracies, its error composition per group and its most frequent confusions."""

from __future__ import annotations

import streamlit as st

from dashboard import db, gallery, state, treemap, widgets

CONFUSION_CARDS = 8

flt = state.applied_filter("")  # the sidebar's filter less what this page ignores (models, families)
st.title("Overview")
models = widgets.models_on(flt.dataset)
if not models:
    widgets.empty(f"No model has predictions on `{flt.dataset}`.")
    state.stop()
preferred = [m for m in state.current_filter().models if m in models]
if preferred and st.session_state.get("ov_model") not in models:
    st.session_state["ov_model"] = preferred[0]
model = state.selectbox("Model", models, key="ov_model", url="model")
narrowed = flt != flt.__class__(dataset=flt.dataset)
st.caption(f"Dataset `{flt.dataset}` · accuracies over all its images"
           + (" · the composition, the tree and the confusions show only the errors the sidebar's filters select."
              if narrowed else "."))

with st.spinner("Computing metrics…"):
    metrics = db.view("model_metrics", model, dataset=flt.dataset)
overall = metrics[metrics["grp"] == "all"].iloc[0]
widgets.metric_row(overall)
st.caption(f"{int(overall['images'])} images, {int(overall['evaluated'])} evaluated, "
           f"{int(overall['errors'])} errors. MLA counts overlapping-class and multi-label predictions as correct; "
           "+minor adds fine-grained errors; +explainable adds spurious correlations and non-prototypical images.")
# A dataset without ReaL labels (the sample images) has no ReaL accuracy: leave the empty column out.
widgets.table(metrics.dropna(axis=1, how="all"), key="ov_metrics_table",
              formats={c: "%.2f%%" for c in ("top1", "real_accuracy", "mla", "mla_minor", "mla_explainable")})
widgets.csv_download("Metrics CSV", lambda: db.uncached("views", "model_metrics", model, dataset=flt.dataset),
                     file_name=f"metrics_{model}.csv", key="ov_metrics_csv")

st.subheader("Error composition")
composition = db.view("composition", model, dataset=flt.dataset, flt=flt)
if composition.empty:
    widgets.empty("No errors of this model match the filters." if narrowed else
                  "This model makes no errors on the evaluated images.")
else:
    st.caption("Click a bar segment to see those errors in Browse.")
    clicked = widgets.bar_selection(widgets.composition_chart(composition, key="ov_composition_chart",
                                                              selectable=True))
    if clicked:
        grp, category = clicked
        gallery.drill_down(flt.with_(models=(model,), categories=(category,),
                                     groups=() if grp == "all" else (grp,)))
    widgets.csv_download("Composition CSV", lambda: db.uncached("views", "composition", model, dataset=flt.dataset,
                                                                flt=flt),
                         file_name=f"composition_{model}.csv", key="ov_composition_csv")

st.subheader("Errors as a tree: group → concept → superclass → class")
treemap.section(flt.with_(models=(model,)), key="ov_tree")

st.subheader("Most frequent confusions (target → prediction)")
top = db.view("top_confusions", model, dataset=flt.dataset, limit=25, flt=flt)
if top.empty:
    widgets.empty("No confusions to show.")
else:
    st.caption("Select a row to see its errors in Browse.")
    picked = widgets.table(top.assign(category=top["category"].map(widgets.category_label)), hide_index=True,
                           key="ov_confusions_table", on_select="rerun", selection_mode="single-row")
    rows = picked.selection.rows if picked is not None and hasattr(picked, "selection") else []
    if rows:
        gallery.drill_down(gallery.confusion_filter(flt, model, top.iloc[rows[0]]))
    gallery.confusion_cards(top.head(CONFUSION_CARDS), flt, model, key="ov_confusion")
    widgets.csv_download("All confusions CSV",
                         lambda: db.uncached("views", "top_confusions", model, dataset=flt.dataset, limit=None,
                                             flt=flt),
                         file_name=f"confusions_{model}.csv", key="ov_confusions_csv")

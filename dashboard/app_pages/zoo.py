"""Model zoo: the paper's 962 models and the stored ones measured on the same dataset (error-type portion against MLA
or top-1), small runs apart, and a hierarchy view rolling a model's confusions up the superclasses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analysis.store import views
from analysis.taxonomy import categories
from dashboard import db, state, widgets

COLOUR_BY = {"training_data": "training data", "family": "model family"}
X_LABEL = {"mla": "MLA (%)", "top1": "Top-1 accuracy (%)"}
GROUP_LABEL = {"all": "all classes", "organism": "organism", "artifact": "artifact", "other": "other"}
PAPER_DATASET = "imagenet-val"  # the paper's statistics are over the 50,000 ImageNet validation images
SMALL_RUN = 1_000  # a run over fewer images is shown apart: its portions are too noisy to compare

flt = state.applied_filter("zoo")
st.title("Model zoo")
cols = st.columns(4)
with cols[0]:
    category = state.selectbox("Error category", list(categories.ERROR_IDS), key="zoo_category", url="category",
                               format_func=categories.NAMES.get, index=categories.ERROR_IDS.index("fine_grained"))
with cols[1]:
    x = state.selectbox("Against", list(X_LABEL), key="zoo_x", url="x", format_func=X_LABEL.get)
with cols[2]:
    colour = state.selectbox("Colour by", list(COLOUR_BY), key="zoo_colour", url="colour", format_func=COLOUR_BY.get)
with cols[3]:
    grp = state.selectbox("Group", list(GROUP_LABEL), key="zoo_grp", url="grp", format_func=GROUP_LABEL.get)

with st.spinner("Computing every model's figures…"):
    points = db.view("zoo_points", category=category, x=x, grp=grp, dataset=flt.dataset)
points = points.assign(small_run=points["images"] < SMALL_RUN)
same_dataset = flt.dataset == PAPER_DATASET
paper = points[points["source"] == "paper"].dropna(subset=["x", "portion"])
stored = points[points["source"] == "stored"].dropna(subset=["x", "portion"])
if flt.models:
    stored = stored[stored["model_id"].isin(flt.models)]
if flt.families:
    stored = stored[stored["family"].isin(flt.families)]
if not same_dataset:  # like with like: the paper's models were measured on another dataset
    paper = paper.iloc[0:0]
if paper.empty and stored.empty:
    widgets.empty("No model statistics: run `python -m analysis fetch` and `build` for the paper's 962 models, or "
                  "run a model.")
    state.stop()
if not same_dataset:
    st.info(f"The paper's {views.PAPER_IMAGES:,}-image statistics are measured on ImageNet validation "
            f"(`{PAPER_DATASET}`), your models here on `{flt.dataset}`: they are not drawn together. Choose the "
            f"dataset `{PAPER_DATASET}` in the sidebar to compare with the paper's models.", icon=":material/info:")

portion_label = f"Portion of errors: {categories.NAMES[category]}"
hover = {"family": True, "training_data": True, "errors": True, "dataset": True, "images": ":,", "x": ":.2f",
         "portion": ":.1%"}
labels = {**widgets.LABELS, "x": X_LABEL[x], "portion": portion_label}
fig = px.scatter(paper, x="x", y="portion", color=colour, hover_name="model_id", hover_data=hover, opacity=0.6,
                 labels=labels)
if len(paper) >= 2:
    slope, intercept = np.polyfit(paper["x"], paper["portion"], 1)
    xs = np.linspace(paper["x"].min(), paper["x"].max(), 50)
    fig.add_trace(go.Scatter(x=xs, y=slope * xs + intercept, mode="lines", name=f"trend (paper, slope {slope:.4f})",
                             line=dict(color="black", dash="dash")))
for small, name, symbol in ((False, "your models", "star"), (True, f"your runs under {SMALL_RUN:,} images", "x-open")):
    part = stored[stored["small_run"] == small]
    if part.empty:
        continue
    fig.add_trace(go.Scatter(
        x=part["x"], y=part["portion"], mode="markers+text", text=part["model_id"], textposition="top center",
        name=f"{name} ({flt.dataset})", customdata=np.stack([part["dataset"], part["images"]], axis=-1),
        marker=dict(symbol=symbol, size=18 if not small else 14, color="#d62728" if not small else "#7f7f7f",
                    line=dict(width=1, color="black")),
        hovertemplate="%{text}<br>dataset %{customdata[0]}, %{customdata[1]:,} images"
                      + ("<br><b>fewer than 1,000 images: noisy</b>" if small else "")
                      + "<br>x %{x:.2f}<br>portion %{y:.1%}<extra></extra>"))
fig.update_layout(yaxis_tickformat=".0%", height=520, margin=dict(t=10, b=10), legend=dict(font=dict(size=10)),
                  xaxis_title=X_LABEL[x], yaxis_title=portion_label)
st.plotly_chart(fig, key="zoo_chart")
small_runs = stored[stored["small_run"]]
st.caption((f"{len(paper)} paper models (`{PAPER_DATASET}`, {views.PAPER_IMAGES:,} images each, group "
            f"{GROUP_LABEL[grp]}) and " if len(paper) else "")
           + f"{len(stored)} stored models on `{flt.dataset}` (stars)"
           + (f"; {len(small_runs)} of them measured on fewer than {SMALL_RUN:,} images are drawn apart (grey crosses):"
              " their portions are noisy." if len(small_runs) else "."))
shown = pd.concat([paper, stored], ignore_index=True)  # what the chart draws, not every stored point
with st.expander("Table"):
    widgets.table(shown, key="zoo_table", formats={"x": "%.2f", "portion": "percent"})
widgets.csv_download("Zoo CSV", lambda: shown, file_name=f"zoo_{category}_{x}_{grp}.csv", key="zoo_csv")

st.subheader("Hierarchy: which superclasses a model confuses")
models = widgets.models_on(flt.dataset)
if flt.models:
    models = [m for m in models if m in flt.models] or models
if not models:
    widgets.empty(f"No stored model has predictions on `{flt.dataset}`.")
    state.stop()
hcols = st.columns([2, 1, 1])
with hcols[0]:
    model = state.selectbox("Model", models, key="zoo_model", url="model")
with hcols[1]:
    same = state.toggle("Include confusions within one superclass", value=False, key="zoo_same", url="same")
with hcols[2]:
    include_none = state.toggle("Include classes in no superclass", value=False, key="zoo_none", url="none")
rolled = db.view("superclass_confusions", model, dataset=flt.dataset, same_superclass=same,
                 include_none=include_none, limit=20, flt=flt)
if rolled.empty:
    widgets.empty("No confusions between superclasses.")
else:
    bars = rolled.assign(pair=rolled["target_superclass"] + " → " + rolled["prediction_superclass"])
    hfig = px.bar(bars[::-1], x="errors", y="pair", orientation="h",
                  labels={**widgets.LABELS, "pair": "Target → predicted superclass"})
    hfig.update_layout(height=140 + 22 * len(bars), margin=dict(t=10, b=10))
    st.plotly_chart(hfig, key="zoo_hierarchy_chart")
    st.caption("A pair where one superclass contains the other is no confusion and is left out"
               + ("" if include_none else "; so are errors of classes in no superclass") + ".")
    widgets.table(rolled, key="zoo_hierarchy_table")
    widgets.csv_download("All superclass pairs CSV",
                         lambda: db.uncached("views", "superclass_confusions", model, dataset=flt.dataset,
                                             same_superclass=same, include_none=include_none, limit=None, flt=flt),
                         file_name=f"superclass_confusions_{model}.csv", key="zoo_hierarchy_csv")

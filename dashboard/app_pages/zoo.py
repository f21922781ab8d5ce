"""Model zoo: the paper's 962 models and the stored ones (error-type portion against MLA or top-1),
and a hierarchy view rolling a model's confusions up the superclasses."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analysis.taxonomy import categories
from dashboard import db, state, widgets

COLOUR_BY = {"training_data": "training data", "family": "model family"}
X_LABEL = {"mla": "MLA (%)", "top1": "top-1 accuracy (%)"}

flt = state.current_filter()
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
    grp = state.selectbox("Group", ["all", "organism", "artifact", "other"], key="zoo_grp", url="grp")

with st.spinner("Computing every model's figures…"):
    points = db.view("zoo_points", category=category, x=x, grp=grp, dataset=flt.dataset)
paper = points[points["source"] == "paper"].dropna(subset=["x", "portion"])
stored = points[points["source"] == "stored"].dropna(subset=["x", "portion"])
if paper.empty and stored.empty:
    widgets.empty("No model statistics: run `python -m analysis fetch` and `build` for the paper's 962 models, or "
                  "run a model.")
    st.stop()
if paper.empty:
    st.info("The paper's model statistics are not in the store (run `python -m analysis fetch` then `build`).",
            icon=":material/info:")

fig = px.scatter(paper, x="x", y="portion", color=colour, hover_name="model_id",
                 hover_data={"family": True, "training_data": True, "errors": True, "x": ":.2f", "portion": ":.1%"},
                 opacity=0.6, labels={"x": X_LABEL[x], "portion": f"portion of errors: {categories.NAMES[category]}",
                                      "training_data": "training data", "family": "family"})
if len(paper) >= 2:
    slope, intercept = np.polyfit(paper["x"], paper["portion"], 1)
    xs = np.linspace(paper["x"].min(), paper["x"].max(), 50)
    fig.add_trace(go.Scatter(x=xs, y=slope * xs + intercept, mode="lines", name=f"trend (paper, slope {slope:.4f})",
                             line=dict(color="black", dash="dash")))
if not stored.empty:
    fig.add_trace(go.Scatter(x=stored["x"], y=stored["portion"], mode="markers+text", text=stored["model_id"],
                             textposition="top center", name=f"your models ({flt.dataset})",
                             marker=dict(symbol="star", size=18, color="#d62728", line=dict(width=1, color="black")),
                             hovertemplate="%{text}<br>x %{x:.2f}<br>portion %{y:.1%}<extra></extra>"))
fig.update_layout(yaxis_tickformat=".0%", height=520, margin=dict(t=10, b=10), legend=dict(font=dict(size=10)))
st.plotly_chart(fig, key="zoo_chart")
st.caption(f"{len(paper)} paper models (ImageNet validation, non-problematic images, group `{grp}`) and "
           f"{len(stored)} stored models on `{flt.dataset}` (highlighted).")
with st.expander("Table"):
    st.dataframe(points, hide_index=True, key="zoo_table")
widgets.csv_download("Zoo CSV", lambda: points, file_name=f"zoo_{category}_{x}_{grp}.csv", key="zoo_csv")

st.subheader("Hierarchy: which superclasses a model confuses")
models = widgets.models_on(flt.dataset)
if not models:
    widgets.empty(f"No stored model has predictions on `{flt.dataset}`.")
    st.stop()
hcols = st.columns([2, 1])
with hcols[0]:
    model = state.selectbox("Model", models, key="zoo_model", url="model")
with hcols[1]:
    same = st.toggle("Include confusions within one superclass", value=False, key="zoo_same")
rolled = db.view("superclass_confusions", model, dataset=flt.dataset, same_superclass=same, limit=20)
if rolled.empty:
    widgets.empty("No confusions between superclasses.")
else:
    bars = rolled.assign(pair=rolled["target_superclass"] + " → " + rolled["prediction_superclass"])
    hfig = px.bar(bars[::-1], x="errors", y="pair", orientation="h", labels={"pair": "target → prediction superclass"})
    hfig.update_layout(height=140 + 22 * len(bars), margin=dict(t=10, b=10))
    st.plotly_chart(hfig, key="zoo_hierarchy_chart")
    st.dataframe(rolled, hide_index=True, key="zoo_hierarchy_table")
    widgets.csv_download("All superclass pairs CSV",
                         lambda: db.uncached("views", "superclass_confusions", model, dataset=flt.dataset,
                                             same_superclass=same, limit=None),
                         file_name=f"superclass_confusions_{model}.csv", key="zoo_hierarchy_csv")

"""Compare models: two models' metrics side by side, their category transition matrix and where they differ."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from analysis.taxonomy import categories
from dashboard import db, gallery, state, widgets

SHOWN_ROWS = 500
GALLERY_SIZE = 12
KINDS = {"only_a": "Only A wrong", "only_b": "Only B wrong", "both_different": "Both wrong, differently"}

flt = state.applied_filter("compare")  # the sidebar's filter less what Compare ignores
st.title("Compare models")
models = widgets.models_on(flt.dataset)
if len(models) < 2:
    widgets.empty(f"Comparing needs two models with predictions on `{flt.dataset}`; this store has "
                  f"{len(models)}. Run another model on the Run page.")
    state.stop()
chosen = state.current_filter().models  # the sidebar's models are A's and B's defaults
preferred = [m for m in chosen if m in models] + [m for m in models if m not in chosen]
cols = st.columns(2)
with cols[0]:
    if st.session_state.get("cmp_a") not in models:
        st.session_state["cmp_a"] = preferred[0]
    model_a = state.selectbox("Model A", models, key="cmp_a", url="a")
with cols[1]:
    if st.session_state.get("cmp_b") not in models:
        st.session_state["cmp_b"] = next(m for m in preferred if m != model_a)
    model_b = state.selectbox("Model B", models, key="cmp_b", url="b")
if model_a == model_b:
    widgets.empty("Choose two different models.")
    state.stop()

for col, model, tag in ((cols[0], model_a, "A"), (cols[1], model_b, "B")):
    with col:
        metrics = db.view("model_metrics", model, dataset=flt.dataset)
        row = metrics[metrics["grp"] == "all"].iloc[0]
        inner = st.columns(3)
        for c, (name, label) in zip(inner + inner[:2], (("top1", "Top-1"), ("real_accuracy", "ReaL"), ("mla", "MLA"),
                                                        ("mla_minor", "MLA+minor"),
                                                        ("mla_explainable", "MLA+explainable"))):
            c.metric(f"{label} ({tag})", "n/a" if row[name] != row[name] else f"{row[name]:.2f}%",
                     help=widgets.METRIC_HELP[name] + " Over all images, whatever the filters.")

st.subheader("Category transition matrix (evaluated images both models predicted)")
matrix = db.view("transition_matrix", model_a, model_b, dataset=flt.dataset, flt=flt)
if matrix.empty:
    widgets.empty("The two models share no evaluated images on this dataset.")
    state.stop()
order = [c for c in categories.IDS if c in set(matrix["category_a"]) | set(matrix["category_b"])]
names = [categories.NAMES.get(c, c) for c in order]
# A heatmap drawn as square markers: scatter points can be clicked (selected), heatmap cells cannot.
ia, ib = [order.index(c) for c in matrix["category_a"]], [order.index(c) for c in matrix["category_b"]]
fig = go.Figure(go.Scatter(
    x=[names[i] for i in ib], y=[names[i] for i in ia], mode="markers+text", text=matrix["images"],
    marker=dict(symbol="square", size=52, color=matrix["images"] ** 0.5, colorscale="Blues", line=dict(width=1)),
    customdata=[f"{a}|{b}" for a, b in zip(matrix["category_a"], matrix["category_b"])],
    hovertemplate="A: %{y}<br>B: %{x}<br>%{text} images<extra></extra>",
))
fig.update_layout(xaxis=dict(title=f"category under B ({model_b})", categoryorder="array", categoryarray=names),
                  yaxis=dict(title=f"category under A ({model_a})", categoryorder="array",
                             categoryarray=names[::-1]),
                  height=120 + 70 * len(order), margin=dict(t=10, b=10), clickmode="event+select")
event = st.plotly_chart(fig, key="cmp_matrix_chart", on_select="rerun", selection_mode="points")
# the cells where the models disagree first, the agreeing ones (largest first) after
cells = [f"{a}|{b}" for a, b, _ in sorted(zip(matrix["category_a"], matrix["category_b"], matrix["images"]),
                                          key=lambda r: (r[0] == r[1], -r[2]))]
points = event.selection.points if event is not None and hasattr(event, "selection") else []
if points and points[0].get("customdata") in cells and points[0]["customdata"] != st.session_state.get("_cmp_clicked"):
    st.session_state["cmp_cell"] = st.session_state["_cmp_clicked"] = points[0]["customdata"]
cell_label = {c: f"{categories.NAMES.get(c.split('|')[0])} → {categories.NAMES.get(c.split('|')[1])} "
                 f"({int(matrix.loc[(matrix.category_a == c.split('|')[0]) & (matrix.category_b == c.split('|')[1]), 'images'].iloc[0])})"
              for c in cells}
cell = state.selectbox("Show the images of a cell (A → B), or click a cell", cells, key="cmp_cell", url="cell",
                       format_func=cell_label.get, index=None, placeholder="choose a cell")
widgets.csv_download("Matrix CSV", lambda: db.uncached("views", "transition_matrix", model_a, model_b,
                                                       dataset=flt.dataset, flt=flt),
                     file_name=f"transitions_{model_a}_vs_{model_b}.csv", key="cmp_matrix_csv")


def _cards(frame, kind: str):
    """A gallery frame of compare_images rows: A's and B's verdicts on each card."""
    verdicts = [[gallery.verdict("A", model_a, r.prediction_a, r.prediction_a_name, r.category_a),
                 gallery.verdict("B", model_b, r.prediction_b, r.prediction_b_name, r.category_b)]
                for r in frame.itertuples(index=False)]
    if kind == "only_b":  # the Details button opens the wrong model's error: B's first
        verdicts = [v[::-1] for v in verdicts]
    return frame.assign(dataset=flt.dataset, target_id=frame["target"], verdicts=verdicts)


def _listing(kind: str, key: str, total: int, **cell_args) -> None:
    page = gallery.pager(total, GALLERY_SIZE, key=f"{key}_page") if total > GALLERY_SIZE else 1
    frame = db.view("compare_images", model_a, model_b, dataset=flt.dataset, kind=kind, limit=GALLERY_SIZE, flt=flt,
                    offset=GALLERY_SIZE * (page - 1), **cell_args)
    if frame.empty:
        widgets.empty("No images.")
        return
    gallery.cards(_cards(frame, kind), key=key)
    # a toggle, not an expander: an expander's body (and its query) would run on every rerun, open or not
    if st.toggle(f"As a table (first {SHOWN_ROWS})", key=f"{key}_as_table"):
        table = db.view("compare_images", model_a, model_b, dataset=flt.dataset, kind=kind, limit=SHOWN_ROWS, flt=flt,
                        **cell_args)
        widgets.table(table.assign(category_a=table["category_a"].map(widgets.category_label),
                                   category_b=table["category_b"].map(widgets.category_label)),
                      hide_index=True, key=f"{key}_table")
    widgets.csv_download("CSV (all rows)", lambda: db.uncached("views", "compare_images", model_a, model_b,
                                                               dataset=flt.dataset, kind=kind, limit=None, flt=flt,
                                                               **cell_args),
                         file_name=f"{kind}_{model_a}_vs_{model_b}.csv", key=f"{key}_csv")


if cell:
    category_a, category_b = cell.split("|")
    cell_images = int(matrix.loc[(matrix.category_a == category_a) & (matrix.category_b == category_b),
                                 "images"].iloc[0])
    st.markdown(f"**Images: {cell_label[cell]}** ({GALLERY_SIZE} cards a page; the CSV has all)")
    drills = st.columns(2)
    for col, model, category, tag in ((drills[0], model_a, category_a, "A"), (drills[1], model_b, category_b, "B")):
        if category in categories.ERROR_IDS:
            with col:
                gallery.drill_button(f"All {widgets.category_label(category)} errors of {tag} in Browse",
                                     flt.with_(models=(model,), categories=(category,)), key=f"cmp_drill_{tag}")
    _listing("cell", "cmp_cell_list", cell_images, category_a=category_a, category_b=category_b)

st.subheader("Where they differ")
counts = db.view("compare_counts", model_a, model_b, dataset=flt.dataset, flt=flt)
tabs = st.tabs([f"{label} ({counts[kind]})" for kind, label in KINDS.items()])
for tab, kind in zip(tabs, KINDS):
    with tab:
        _listing(kind, f"cmp_{kind}", int(counts[kind]))

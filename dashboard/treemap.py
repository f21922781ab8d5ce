"""Overview's error tree: group → concept → superclass → class → category as a plotly treemap; a click (or the
picker under it) opens Browse with that node's filter."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from analysis.knowledge import concepts
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories
from dashboard import db, gallery, widgets

LEVELS = ("group", "concept", "superclass", "class_name", "category")


def nodes(tree: pd.DataFrame, flt: ErrorFilter) -> pd.DataFrame:
    """One row per treemap node: id, parent, label, level, errors (a parent's = the sum of its children's),
    colour (the node's most frequent category; a tie: the alphabetically first) and `drill`, the ErrorFilter a click
    opens in Browse. Grouped once per level (not per node): ~1 s for 4,500 nodes."""
    rows = []
    for depth, level in enumerate(LEVELS):
        keys = list(LEVELS[:depth + 1])
        grouped = tree.groupby(keys, sort=True, dropna=False)
        node = grouped["errors"].sum().rename("errors").to_frame()
        node["superclass_ids"] = grouped["superclass_id"].agg(lambda s: tuple(sorted(s.dropna().unique())))
        node["class_id"] = grouped["class_id"].first()
        if level == "category":
            node["top"] = node.index.get_level_values(-1)
        else:
            sums = tree.groupby(keys + ["category"], sort=True, dropna=False)["errors"].sum().reset_index()
            sums = sums.sort_values(keys + ["errors", "category"], ascending=[True] * len(keys) + [False, True],
                                    kind="stable").drop_duplicates(keys, keep="first")
            node["top"] = sums.set_index(keys)["category"]
        for key, row in zip(node.index, node.itertuples(index=False)):
            key = key if isinstance(key, tuple) else (key,)
            rows.append({"id": "/".join(map(str, key)), "parent": "/".join(map(str, key[:-1])),
                         "label": _label(level, key[-1]), "level": level, "errors": int(row.errors),
                         "colour": categories.COLOURS.get(row.top),
                         "drill": _drill(flt, level, key, row.superclass_ids, int(row.class_id))})
    return pd.DataFrame(rows, columns=["id", "parent", "label", "level", "errors", "colour", "drill"])


def _label(level: str, value) -> str:
    return widgets.category_label(value) if level == "category" else str(value)


def _drill(flt: ErrorFilter, level: str, key: tuple, superclass_ids: tuple[str, ...], class_id: int) -> ErrorFilter:
    """The Browse filter of a node: its group, then its superclasses, then its class, then its category."""
    out = flt.with_(groups=(key[0],))
    if level in ("concept", "superclass") and superclass_ids:
        out = out.with_(superclasses=superclass_ids)
    if level in ("class_name", "category"):
        out = out.with_(superclasses=(concepts.of_class(class_id).id,))
    if level == "category":
        out = out.with_(categories=(key[-1],))
    return out


def figure(frame: pd.DataFrame) -> go.Figure:
    """The treemap of `nodes()` (values are totals: a parent is the sum of its children)."""
    fig = go.Figure(go.Treemap(
        ids=frame["id"], parents=frame["parent"], labels=frame["label"], values=frame["errors"],
        branchvalues="total", marker=dict(colors=frame["colour"]), customdata=frame["id"], maxdepth=3,
        hovertemplate="%{label}<br>%{value} errors<extra></extra>",
    ))
    fig.update_layout(height=520, margin=dict(t=10, b=10, l=10, r=10))
    return fig


@st.cache_data(show_spinner="Laying out the error tree…", max_entries=32)
def _cached_nodes(tree: pd.DataFrame, flt: ErrorFilter) -> pd.DataFrame:
    """`nodes()` once per tree and filter: seconds for thousands of nodes, and every rerun of the page needs it."""
    return nodes(tree, flt)


def section(flt: ErrorFilter, *, key: str) -> None:
    """The tree of the errors `flt` selects, and a drill-down to Browse by click or by picking a node."""
    tree = db.view("error_tree", flt)
    if tree.empty:
        widgets.empty("No errors to draw.")
        return
    frame = _cached_nodes(tree, flt)
    st.caption(f"{int(tree['errors'].sum()):,} errors by the target's group, WordNet concept, superclass and class; "
               "colour: the most frequent category. Click a box to zoom; pick a node below to browse its errors.")
    event = st.plotly_chart(figure(frame), key=f"{key}_chart", on_select="rerun", selection_mode="points")
    points = event.selection.points if event is not None and hasattr(event, "selection") else []
    by_id = dict(zip(frame["id"], frame["drill"]))
    clicked = next((p.get("customdata") or p.get("id") for p in points if (p.get("customdata") or p.get("id"))
                    in by_id), None)
    if clicked and clicked != st.session_state.get(f"_{key}_clicked"):
        st.session_state[f"_{key}_clicked"] = clicked
        gallery.drill_down(by_id[clicked])
    names = dict(zip(frame["id"], frame["label"]))
    parents = dict(zip(frame["id"], frame["parent"]))

    def _path(node: str) -> str:
        return (_path(parents[node]) + " › " if parents[node] else "") + names[node]

    labels = {i: f"{_path(i)} ({n})" for i, n in zip(frame["id"], frame["errors"])}
    cols = st.columns([4, 1], vertical_alignment="bottom")
    with cols[0]:
        node = st.selectbox("Browse the errors of a node", list(frame["id"]), index=None, format_func=labels.get,
                            key=f"{key}_node", placeholder="type to search a group, concept, superclass or class")
    with cols[1]:
        if st.button("Open in Browse", key=f"{key}_open", disabled=node is None, icon=":material/photo_library:"):
            gallery.drill_down(by_id[node])
    widgets.csv_download("Tree CSV", lambda: tree, file_name="error_tree.csv", key=f"{key}_csv")

"""Browse errors: the sidebar's filtered errors as a paged image grid, a detail panel, and the CSV export."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from analysis.taxonomy import categories
from dashboard import db, images, state, widgets

PAGE_SIZE = 12
COLUMNS = 3

flt = state.current_filter()
st.title("Browse errors")
with st.spinner("Counting errors…"):
    total = db.count_errors(flt)
if total == 0:
    widgets.empty("No errors match these filters. Clear some filters in the sidebar (or lower "
                  "'made by at least k models').")
    st.stop()

pages = max(1, math.ceil(total / PAGE_SIZE))
top = st.columns([2, 1, 2], vertical_alignment="bottom")
with top[1]:
    page_no = state.number(f"Page (of {pages})", key="br_page", url="page", min_value=1, max_value=pages, value=1)
top[0].markdown(f"**{total:,}** errors match · showing {PAGE_SIZE * (page_no - 1) + 1}–"
                f"{min(total, PAGE_SIZE * page_no)}")
with top[2]:
    widgets.csv_download(f"Download all {total:,} rows (CSV)", lambda: db.uncached("export", "errors_frame", flt),
                         file_name="errors.csv", key="br_csv")

rows = db.errors(flt, limit=PAGE_SIZE, offset=PAGE_SIZE * (page_no - 1))


def _open(model_id: str, image_id: int) -> None:
    st.session_state["br_detail"] = f"{model_id}|{image_id}"


def _detail(value: str) -> None:
    model_id, _, image = value.rpartition("|")
    dataset = flt.dataset
    try:
        detail = db.view("error_detail", model_id, dataset, int(image))
    except (ValueError, TypeError):
        detail = None
    if detail is None:
        st.warning(f"No prediction of `{model_id}` for image {image} on `{dataset}`.")
        return
    target, prediction = detail["target"], detail["prediction"]
    with st.container(border=True, key="br_detail_panel"):
        head = st.columns([3, 1], vertical_alignment="top")
        head[0].subheader(f"{detail['file_name']}: {target['name']} → {prediction['name']}")
        head[1].button("Close", key="br_close", on_click=lambda: st.session_state.pop("br_detail", None))
        pics = images.pictures(dataset, detail["root"], detail["file_name"], target["id"], target["wnid"],
                               prediction["id"])
        left, right = st.columns([2, 3])
        with left:
            cols = st.columns(len(pics))
            for col, (path, caption) in zip(cols, pics):
                images.show(path, caption, size=320, container=col)
        with right:
            cat = detail["category"]
            st.markdown(f"**Model** `{detail['model_id']}` · **category** "
                        f":{'green' if cat in categories.COUNTS_AS_CORRECT['mla'] else 'red'}[{widgets.category_label(cat)}]"
                        f" ({categories.BY_ID[cat].severity if cat in categories.BY_ID else 'unclassified'}) · "
                        f"reason `{detail['reason'] or '—'}`")
            if cat in categories.BY_ID:
                st.caption(categories.BY_ID[cat].description)
            st.markdown(f"**Target** {target['name']} (`{target['id']}`, {target['wnid']}) · **prediction** "
                        f"{prediction['name']} (`{prediction['id']}`, {prediction['wnid']})"
                        + (f", confidence {detail['confidence']:.1%}" if detail["confidence"] is not None else ""))
            st.markdown("**Labels** " + (", ".join(f"{n} (`{i}`)" for i, n in detail["labels"]) or "—")
                        + ("" if detail["evaluated"] else " · *not in the evaluation set*"))
            st.markdown("**WordNet path of the target** " + " › ".join(target["wordnet_path"] or ["—"]))
            st.markdown("**WordNet path of the prediction** " + " › ".join(prediction["wordnet_path"] or ["—"]))
            st.markdown("**Superclasses** target: " + (", ".join(target["superclasses"]) or "none")
                        + " · prediction: " + (", ".join(prediction["superclasses"]) or "none"))
            if detail["expert"]:
                st.markdown("**Expert verdict** " + "; ".join(
                    f"{e['expert']}: {widgets.category_label(e['category'])} ({e['severity']})" for e in detail["expert"]))
            else:
                st.markdown("**Expert verdict** none (the experts reviewed only ViT-3B's and Greedy Soups' mistakes)")
            st.markdown(f"**Same mistake** made by {detail['models_same_mistake']} of the "
                        f"{detail['models_on_image']} stored models that predicted this image")
            top5 = pd.DataFrame(detail["top5"], columns=["class_id", "name", "confidence"])
            st.dataframe(top5, hide_index=True, key="br_top5",
                         column_config={"confidence": st.column_config.NumberColumn(format="percent")})
    state.set_page_param("detail", value)


state.url_value("detail", "br_detail")
if st.session_state.get("br_detail"):
    _detail(st.session_state["br_detail"])

roots = db.view("dataset_roots")
grid = st.columns(COLUMNS)
for n, row in enumerate(rows.itertuples(index=False)):
    with grid[n % COLUMNS].container(border=True, key=f"br_cell_{n}"):
        pics = images.pictures(row.dataset, roots.get(row.dataset), row.file_name, row.target_id, row.target_wnid,
                               row.prediction_id)
        for col, (path, caption) in zip(st.columns(len(pics)), pics):
            images.show(path, caption.split(" (")[0], size=200, container=col)
        st.markdown(f"**{row.target_name}** → **{row.prediction_name}**  \n"
                    f"{widgets.category_label(row.category)} · `{row.model_id}` · {row.file_name}")
        st.button("Details", key=f"br_open_{n}", on_click=_open, args=(row.model_id, int(row.image_id)))

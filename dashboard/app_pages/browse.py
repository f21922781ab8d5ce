"""Browse errors: the sidebar's filtered errors as a paged, sortable image grid (one card per error or per image),
the detail dialog, and the CSV export. Grid size, sort, mode, page and open detail live in the URL."""

from __future__ import annotations

import streamlit as st

from analysis.store.filters import ErrorFilter
from dashboard import db, detail, gallery, state, widgets

SORTS = {"image": "model, then image (the export's order)", "models": "most models making it",
         "confidence": "most confident first", "class": "class name (target, then prediction)",
         "category": "category (taxonomy order)"}
OWNER = "br"


def _flag(value: str) -> bool:
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _bad_url_values() -> list[str]:
    """Messages for URL parameters of this page that are ignored (shown once, when the link is first opened)."""
    out = []
    grid, sort, page, per_image = (state.pending_url(name) for name in ("grid", "sort", "page", "per_image"))
    if grid is not None and grid not in {str(g) for g in gallery.GRID_SIZES}:
        out.append(f"grid={grid!r} is not a grid size; showing {gallery.GRID_SIZES[0]} (choose one of "
                   f"{', '.join(map(str, gallery.GRID_SIZES))})")
    if sort is not None and sort not in SORTS:
        out.append(f"sort={sort!r} is not a sort order; showing the export's order (choose one of {', '.join(SORTS)})")
    if page is not None and not (page.isdigit() and int(page) >= 1):
        out.append(f"page={page!r} is not a page number >= 1; showing page 1")
    if per_image is not None:
        try:
            _flag(per_image)
        except ValueError:
            out.append(f"per_image={per_image!r} must be 1 or 0; showing one card per error")
    return out


def _error_cards(flt: ErrorFilter, sort: str, size: int, page: int):
    # the count hands the page its depth: a page in the back half is read from the end (analysis/store/pages.py)
    rows = db.view("errors_page", flt, sort=sort, limit=size, offset=size * (page - 1), total=db.count_errors(flt))
    verdicts = [[gallery.verdict("", r.model_id, r.prediction_id, r.prediction_name, r.category, r.confidence)]
                for r in rows.itertuples(index=False)]
    return rows.assign(verdicts=verdicts, row=rows.to_dict("records"))


def _image_cards(flt: ErrorFilter, sort: str, size: int, page: int):
    shown = db.view("error_images", flt, sort=sort, limit=size, offset=size * (page - 1),
                    total=db.view("count_error_images", flt))
    if shown.empty:
        return shown.assign(verdicts=[])
    preds = db.view("image_predictions", flt.dataset, [int(i) for i in shown["image_id"]], models=tuple(flt.models))
    by_image = {image: group for image, group in preds.groupby("image_id")}
    verdicts = []
    for image in shown["image_id"]:
        group = by_image.get(image)
        verdicts.append([] if group is None else [
            gallery.verdict("", r.model_id, r.prediction_id, r.prediction_name, r.category, r.confidence)
            for r in group.itertuples(index=False)])
    return shown.assign(verdicts=verdicts)


flt = state.current_filter()
st.title("Browse errors")
for message in _bad_url_values():
    st.warning(f"The link's {message}.", icon=":material/link_off:")

controls = st.columns([1, 2, 1.4], vertical_alignment="bottom")
with controls[0]:
    size = state.selectbox("Cards per page", list(gallery.GRID_SIZES), key="br_grid", url="grid")
with controls[1]:
    sort = state.selectbox("Sort", list(SORTS), key="br_sort", url="sort", format_func=SORTS.get)
with controls[2]:
    state.url_value("per_image", "br_per_image", convert=_flag)
    per_image = st.toggle("One card per image (every selected model's prediction)", key="br_per_image",
                          help="One card per image holding a matching error, with the prediction of every model "
                               "chosen in the sidebar (every stored model when none is chosen).")
state.set_page_param("per_image", "1" if per_image else None)

with st.spinner("Counting errors…"):
    errors_total = db.count_errors(flt)
    total = db.view("count_error_images", flt) if per_image and errors_total else errors_total
if errors_total == 0:
    widgets.empty("No errors match these filters. Clear some filters in the sidebar (or lower "
                  "'made by at least k models').")
    state.stop()

top = st.columns([2, 1, 2], vertical_alignment="bottom")
with top[1]:
    page_no = gallery.pager(total, size, key="br_page", url="page")
unit = "images" if per_image else "errors"
top[0].markdown(f"**{errors_total:,}** errors match" + (f" on **{total:,}** images" if per_image else "")
                + f" · showing {unit} {size * (page_no - 1) + 1}–{min(total, size * page_no)}")
with top[2]:
    widgets.errors_download(f"Download all {errors_total:,} rows (CSV)", flt, total=errors_total,
                            file_name="errors.csv", key="br_csv")
gallery.page_buttons(total, size, key="br_page", where="top")

with st.spinner("Loading the cards…"):
    frame = (_image_cards if per_image else _error_cards)(flt, sort, size, page_no)

# a link with `detail=model|image` opens that error's dialog
state.url_value("detail", "br_detail")
if st.session_state.get("br_detail") and not detail.is_open(OWNER):
    model_id, _, image = str(st.session_state["br_detail"]).rpartition("|")
    if image.isdigit() and model_id:
        detail.open_detail([{"model_id": model_id, "dataset": flt.dataset, "image_id": int(image)}], 0,
                           owner=OWNER, url=True)
    else:
        st.warning(f"The link's detail={st.session_state['br_detail']!r} is not `model|image id`; no detail opened.")
    st.session_state.pop("br_detail", None)



def _load(position: int, *, flt=flt, sort=sort, size=size, per_image=per_image):
    """(first position, cards) of the page holding result position `position` (the dialog's Next / Previous past
    this page); Browse follows to that page."""
    page = position // size + 1
    st.session_state["br_page"] = page
    return size * (page - 1), (_image_cards if per_image else _error_cards)(flt, sort, size, page)


gallery.cards(frame, key=OWNER, columns=4 if size <= 48 else 6, size=200 if size <= 48 else 140, url_detail=True,
              result=(size * (page_no - 1), total, _load))
gallery.page_buttons(total, size, key="br_page", where="bottom")

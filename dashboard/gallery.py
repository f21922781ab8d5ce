"""The one card grid every page shows errors with: the image, the target and each model's verdict, a Details
button that opens the detail dialog (next / previous move through the same cards), page controls, and the
drill-down from a chart or table to Browse with a filter.

A gallery frame has one row per card: dataset, image_id, file_name, target_id, target_name, `verdicts` (a list of
{who, model_id, prediction_id, prediction_name, category, confidence} dicts; `who` is a label such as "A") and
optionally target_wnid and `row` (the export's error row, handed to the detail dialog).
"""

from __future__ import annotations

import math
from typing import Callable, NoReturn

import pandas as pd
import streamlit as st

from analysis.knowledge import classes
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories, reasons
from dashboard import db, detail, images, state, widgets

GRID_SIZES = (12, 24, 48, 96)
COLUMNS = 4


def verdict(who: str, model_id: str, prediction_id: int, prediction_name: str, category: str,
            confidence: float | None = None) -> dict:
    """One model's verdict on a card."""
    missing = confidence is None or pd.isna(confidence)
    return {"who": who, "model_id": model_id, "prediction_id": int(prediction_id), "prediction_name": prediction_name,
            "category": category, "confidence": None if missing else float(confidence)}


def _is_right(category: str) -> bool:
    return category == "correct" or category in categories.COUNTS_AS_CORRECT["mla"]


def verdict_line(v: dict) -> str:
    """`who model: prediction · category (confidence)` with the category in green (counts as right) or red."""
    colour = "green" if _is_right(v["category"]) else "red"
    who = f"**{v['who']}** " if v.get("who") else ""
    model = f"`{v['model_id']}`: " if v.get("model_id") else ""
    conf = f" ({v['confidence']:.0%})" if v.get("confidence") is not None else ""
    return f"{who}{model}{v['prediction_name']} · :{colour}[{widgets.category_label(v['category'])}]{conf}"


def _opened(verdicts: list[dict]) -> dict | None:
    """The verdict the Details button opens: the first wrong one (else the first)."""
    wrong = [v for v in verdicts if v["category"] != "correct" and v.get("model_id")]
    return (wrong or [v for v in verdicts if v.get("model_id")] or [None])[0]


def _wnid(row) -> str:
    wnid = getattr(row, "target_wnid", None)
    return wnid if isinstance(wnid, str) and wnid else classes.wnids()[int(row.target_id)]


def _items(frame: pd.DataFrame) -> list[dict | None]:
    """The dialog item of each card (None for a card without an error to open)."""
    items = []
    for row in frame.itertuples(index=False):
        v = _opened(row.verdicts)
        items.append(None if v is None else {"model_id": v["model_id"], "dataset": row.dataset,
                                             "image_id": int(row.image_id), "row": getattr(row, "row", None)})
    return items


def _loader(load: Callable[[int], tuple[int, pd.DataFrame]]) -> Callable[[int], tuple[int, list[dict]]]:
    def items_at(position: int) -> tuple[int, list[dict]]:
        start, frame = load(position)
        return start, [i for i in _items(frame) if i is not None]
    return items_at


def cards(frame: pd.DataFrame, *, key: str, columns: int = COLUMNS, size: int = 180, url_detail: bool = False,
          result: tuple[int, int, Callable[[int], tuple[int, pd.DataFrame]]] | None = None) -> None:
    """Draw one card per row of a gallery frame; Details opens the dialog on the card.

    Next / Previous in the dialog stay within these cards, or go through the whole result when `result` =
    (position of the first card in it, its size, load(position) -> (position of the first card of the page holding
    it, that page's gallery frame)).
    """
    if frame.empty:
        widgets.empty("No images.")
        return
    roots = db.view("dataset_roots")
    items = _items(frame)
    openable = [i for i in items if i is not None]
    window = None if result is None else (result[0], result[1], _loader(result[2]))
    grid = st.columns(columns)
    for n, row in enumerate(frame.itertuples(index=False)):
        with grid[n % columns].container(border=True, key=f"{key}_card_{n}"):
            shown = _opened(row.verdicts) or (row.verdicts[0] if row.verdicts else None)
            prediction = shown["prediction_id"] if shown else int(row.target_id)
            pics = images.pictures(row.dataset, roots.get(row.dataset), row.file_name, int(row.target_id),
                                   _wnid(row), prediction)
            for col, (path, caption) in zip(st.columns(len(pics)), pics):
                images.show(path, caption.split(" (")[0], size=size, container=col)
            st.markdown(f"**{row.target_name}** · {row.file_name}  \n"
                        + "  \n".join(verdict_line(v) for v in row.verdicts))
            if getattr(row, "note", None):
                st.caption(row.note)
            if items[n] is not None:
                st.button("Details", key=f"{key}_open_{n}", on_click=detail.open_detail,
                          args=(openable, openable.index(items[n])),
                          kwargs={"owner": key, "url": url_detail, "result": window})
    detail.render(key)


def pager(total: int, size: int, *, key: str, url: str | None = None, label: str = "Page") -> int:
    """A page number input (1-based, seeded from and written to URL parameter `url`); returns the page."""
    pages = max(1, math.ceil(total / size))
    if st.session_state.get(key, 1) > pages:
        st.session_state[key] = pages
    return state.number(f"{label} (of {pages})", key=key, url=url, min_value=1, max_value=pages, value=1)


def _move(key: str, delta: int, pages: int) -> None:
    st.session_state[key] = max(1, min(pages, int(st.session_state.get(key, 1)) + delta))


def page_buttons(total: int, size: int, *, key: str, where: str) -> None:
    """Previous / next buttons for the page number widget `key` (one set per place `where`: top, bottom)."""
    pages = max(1, math.ceil(total / size))
    page = int(st.session_state.get(key, 1))
    cols = st.columns([1, 2, 1], vertical_alignment="center")
    cols[0].button("Previous page", key=f"{key}_prev_{where}", on_click=_move, args=(key, -1, pages),
                   disabled=page <= 1, icon=":material/chevron_left:")
    cols[1].caption(f"page {page} of {pages} · {total:,} in all")
    cols[2].button("Next page", key=f"{key}_next_{where}", on_click=_move, args=(key, 1, pages),
                   disabled=page >= pages, icon=":material/chevron_right:")


# --- drill-down ------------------------------------------------------------------------------------------


def browse_params(flt: ErrorFilter, **page_params) -> dict[str, str]:
    """The URL parameters of Browse showing `flt` (first page)."""
    return {**flt.to_query_params(), "page": "1", **{k: str(v) for k, v in page_params.items()}}


def drill_down(flt: ErrorFilter, **page_params) -> NoReturn:
    """Switch to Browse with `flt` as its filter (the sidebar is seeded from the new URL)."""
    state.reseed_from_url()
    detail.close()
    st.switch_page("app_pages/browse.py", query_params=browse_params(flt, **page_params))


def drill_button(label: str, flt: ErrorFilter, *, key: str, **page_params) -> None:
    """A button that opens Browse with `flt`."""
    if st.button(label, key=key, icon=":material/photo_library:"):
        drill_down(flt, **page_params)


def disagreement_cards(frame: pd.DataFrame, *, key: str, who: str = "Expert", size: int = 24) -> None:
    """Expert-reviewed mistakes (`agreement.compare` rows with target_name and prediction_name) as paged cards
    with the expert's and the automatic verdict, and the automatic reason in words."""
    total = len(frame)
    page = pager(total, size, key=f"{key}_page") if total > size else 1
    shown = frame.iloc[size * (page - 1): size * page]
    sentences = []
    for r in shown.itertuples(index=False):
        try:
            sentences.append(reasons.reason_sentence(str(r.reason), target=int(r.target), prediction=int(r.prediction),
                                                     category=r.automatic))
        except (TypeError, ValueError):
            sentences.append("")
    cards_frame = pd.DataFrame({
        "dataset": "imagenet-val", "image_id": shown["image_index"].astype(int).to_numpy(),
        "file_name": shown["file_name"].to_numpy(), "target_id": shown["target"].astype(int).to_numpy(),
        "target_name": shown["target_name"].to_numpy(),
        "verdicts": [[verdict(who, "", r.prediction, r.prediction_name, r.expert),
                      verdict("Automatic", "", r.prediction, r.prediction_name, r.automatic)]
                     for r in shown.itertuples(index=False)],
        "note": sentences,
    })
    cards(cards_frame, key=key)


def confusion_filter(flt: ErrorFilter, model_id: str, row) -> ErrorFilter:
    """Browse's filter for one (target → prediction, category) confusion of a model: exactly those errors."""
    return flt.with_(models=(model_id,), categories=(str(row["category"]),), target=int(row["target"]),
                     prediction=int(row["prediction"]))


def confusion_cards(frame: pd.DataFrame, flt: ErrorFilter, model_id: str, *, key: str, columns: int = COLUMNS) -> None:
    """`views.top_confusions` rows as cards: the class sample images of target and prediction, the count and a
    button that opens the confusion's errors in Browse."""
    grid = st.columns(columns)
    for n, row in enumerate(frame.to_dict("records")):
        with grid[n % columns].container(border=True, key=f"{key}_card_{n}"):
            for col, (class_id, caption) in zip(st.columns(2), ((row["target"], "target"),
                                                                (row["prediction"], "prediction"))):
                images.show(images.sample_image(int(class_id)), caption, size=160, container=col)
            st.markdown(f"**{row['target_name']}** → **{row['prediction_name']}**  \n"
                        f"{row['images']} images · {widgets.category_label(row['category'])}")
            drill_button("Browse", confusion_filter(flt, model_id, row), key=f"{key}_drill_{n}")

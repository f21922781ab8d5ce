"""The error detail dialog: the image large, next / previous within the current result, the reason in words,
WordNet paths from the shared ancestor, the experts' verdict and every stored model's prediction for the image.

A page lists its result with `dashboard.gallery.cards`; a card's Details button calls
`open_detail(items, index, owner=...)` (items: {model_id, dataset, image_id, row} dicts) and the gallery calls
`render(owner)`, which shows the dialog while that gallery's one is open.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd
import streamlit as st

from analysis.taxonomy import categories, reasons
from dashboard import db, images, state, widgets

_ITEMS = "_detail_items"
_INDEX = "_detail_index"
_OPEN = "_detail_open"
_RESULT = "_detail_result"
COOCCURRENCE_SHOWN = 8


def open_detail(items: list[dict], index: int, *, owner: str, url: bool = False,
                result: tuple[int, int, Callable[[int], tuple[int, list[dict]]]] | None = None) -> None:
    """Open the dialog of gallery `owner` on `items[index]` (a button callback); `url` writes
    `detail=model|image` into the page's URL while it is open.

    `result` = (position of items[0] in the whole result, result size, load(position) -> (position of its page's
    first item, that page's items)) lets Next / Previous go on past these items through the whole result.
    """
    if not items:
        return
    st.session_state[_ITEMS] = list(items)
    st.session_state[_INDEX] = max(0, min(int(index), len(items) - 1))
    st.session_state[_OPEN] = (owner, bool(url))
    st.session_state[_RESULT] = None if result is None else (int(result[0]), int(result[1]), result[2])


def close() -> None:
    """Close the dialog (its dismiss callback)."""
    st.session_state.pop(_OPEN, None)
    st.session_state.pop("br_detail", None)


def is_open(owner: str) -> bool:
    """Whether gallery `owner`'s dialog is open."""
    return (st.session_state.get(_OPEN) or (None,))[0] == owner and bool(st.session_state.get(_ITEMS))


def current(owner: str) -> dict | None:
    """The item gallery `owner`'s dialog shows, or None."""
    if not is_open(owner):
        return None
    items = st.session_state[_ITEMS]
    return items[min(st.session_state.get(_INDEX, 0), len(items) - 1)]


def _position() -> tuple[int, int]:
    """(0-based position of the shown item in the whole result, result size)."""
    items = st.session_state.get(_ITEMS) or []
    index = st.session_state.get(_INDEX, 0)
    result = st.session_state.get(_RESULT)
    return (index, len(items)) if result is None else (result[0] + index, result[1])


def _step(delta: int) -> None:
    items = st.session_state.get(_ITEMS) or []
    index = st.session_state.get(_INDEX, 0) + delta
    result = st.session_state.get(_RESULT)
    if 0 <= index < len(items) or result is None:
        st.session_state[_INDEX] = max(0, min(index, len(items) - 1))
        return
    offset, total, load = result
    wanted = offset + index
    if not 0 <= wanted < total:
        return
    start, loaded = load(wanted)
    if not loaded or not start <= wanted < start + len(loaded):
        return
    st.session_state[_ITEMS] = loaded
    st.session_state[_INDEX] = wanted - start
    st.session_state[_RESULT] = (start, total, load)


def render(owner: str) -> None:
    """Show gallery `owner`'s dialog when it is open (once per page run, after the cards)."""
    item = current(owner)
    if item is None:
        return
    if st.session_state[_OPEN][1]:
        state.set_page_param("detail", f"{item['model_id']}|{item['image_id']}")
    _dialog()


def _row(detail: dict, item: dict) -> dict:
    """The error row as `export.errors_frame` gives it (the item's own row when the page had one)."""
    target, prediction = detail["target"], detail["prediction"]
    expert = detail["expert"]
    row = {
        "model_id": detail["model_id"], "dataset": detail["dataset"], "image_id": detail["image_id"],
        "file_name": detail["file_name"], "target_id": target["id"], "target_wnid": target["wnid"],
        "target_name": target["name"], "labels": [i for i, _ in detail["labels"]],
        "prediction_id": prediction["id"], "prediction_wnid": prediction["wnid"], "prediction_name": prediction["name"],
        "confidence": detail["confidence"], "top5": [c for c, _, _ in detail["top5"]], "category": detail["category"],
        "reason": detail["reason"], "expert": " ".join(e["expert"] for e in expert) or None,
        "expert_category": " ".join(e["category"] for e in expert) or None,
        "expert_severity": " ".join(e["severity"] for e in expert) or None,
        "models_making_error": detail["models_same_mistake"],
    }
    return {**row, **(item.get("row") or {})}


def _verdict(category: str) -> str:
    colour = "green" if category in categories.COUNTS_AS_CORRECT["mla"] else "red"
    return f":{colour}[{widgets.category_label(category)}]"


def _reason(detail: dict, superclass_names: dict) -> None:
    target, prediction = detail["target"], detail["prediction"]
    names = {c["id"]: c["name"] for c in (target, prediction)} | dict(detail["labels"])
    names |= {c: n for c, n, _ in detail["top5"]}
    try:
        sentence = reasons.reason_sentence(detail["reason"] or "none", target=target["id"], prediction=prediction["id"],
                                           category=detail["category"], class_names=_Names(names),
                                           superclass_names=superclass_names)
    except (TypeError, ValueError) as exc:
        sentence = f"(cannot read the reason {detail['reason']!r}: {exc})"
    st.markdown(f"**Why** {sentence}")
    kind, values = reasons.parse_reason(detail["reason"] or "none")
    if kind == "cooc":
        others = db.view("cooccurrence_images", detail["dataset"], values["label"], prediction["id"],
                         exclude=detail["image_id"], limit=COOCCURRENCE_SHOWN)
        if others.empty:
            st.caption("None of those images is in this dataset's stored labels.")
            return
        st.caption(f"{len(others)} of them:")
        roots = db.view("dataset_roots")
        cols = st.columns(min(4, len(others)))
        for n, other in enumerate(others.itertuples(index=False)):
            path, _ = images.pictures(detail["dataset"], roots.get(detail["dataset"]), other.file_name,
                                      int(other.target_id), other.target_wnid, prediction["id"])[0]
            images.show(path, f"{other.file_name} ({other.target_name})", size=160, container=cols[n % len(cols)])


class _Names(dict):
    """Class names known from the detail, with a plain fallback (the sentence never fails on a missing name)."""

    def __missing__(self, key):
        return f"class {key}"


def _wordnet(detail: dict) -> None:
    target, prediction = detail["target"], detail["prediction"]
    try:
        shared = reasons.shared_paths(target["wnid"], prediction["wnid"])
    except (ValueError, FileNotFoundError):
        st.markdown("**WordNet path of the target** " + " › ".join(target["wordnet_path"] or ["—"]))
        st.markdown("**WordNet path of the prediction** " + " › ".join(prediction["wordnet_path"] or ["—"]))
        return
    mark = f"**:blue[{shared.ancestor}]**"
    st.markdown(f"**Lowest shared WordNet ancestor** {mark} ({shared.depth} levels below the root)")
    st.markdown("**WordNet path of the target** " + " › ".join([mark, *shared.target[1:]]))
    st.markdown("**WordNet path of the prediction** " + " › ".join([mark, *shared.prediction[1:]]))


def _models(detail: dict) -> None:
    frame = db.view("image_predictions", detail["dataset"], [detail["image_id"]])
    if frame.empty:
        return
    target = detail["target"]["id"]
    same = frame[frame["prediction_id"] == detail["prediction"]["id"]]["model_id"].tolist()
    right = frame[frame["prediction_id"] == target]["model_id"].tolist()
    rights = f" · right: {', '.join(f'`{m}`' for m in right)}" if right else " · no stored model gets it right"
    st.markdown(f"**Same mistake** made by {len(same)} of the {len(frame)} stored models that predicted this image"
                + rights)
    shown = frame.assign(category=frame["category"].map(widgets.category_label),
                         right=frame["prediction_id"] == target)
    st.dataframe(shown[["model_id", "prediction_name", "confidence", "category", "right"]], hide_index=True,
                 key="detail_models", column_config={
                     "model_id": "Model", "prediction_name": "Prediction", "category": "Category", "right": "Right",
                     "confidence": st.column_config.NumberColumn("Confidence", format="percent")})


def _extras(row: dict) -> None:
    # ---- sections built in dashboard/detail_extras.py (the user's review, ImageNet-X factors) ----
    try:
        from dashboard import detail_extras
    except ImportError:
        return
    for section in ("review_section", "imagenet_x_section"):
        func = getattr(detail_extras, section, None)
        if func is not None:
            func(row)


@st.dialog("Error detail", width="large", on_dismiss=close)
def _dialog() -> None:
    items = st.session_state.get(_ITEMS) or []
    if not items:
        return
    index = min(st.session_state.get(_INDEX, 0), len(items) - 1)
    item = items[index]
    position, total = _position()
    nav = st.columns([1, 2, 1], vertical_alignment="center")
    nav[0].button("Previous", key="detail_prev", on_click=_step, args=(-1,), disabled=position == 0,
                  icon=":material/arrow_back:")
    nav[1].markdown(f"Error **{position + 1:,}** of {total:,} in this result")
    nav[2].button("Next", key="detail_next", on_click=_step, args=(1,), disabled=position >= total - 1,
                  icon=":material/arrow_forward:")
    try:
        detail = db.view("error_detail", str(item["model_id"]), str(item["dataset"]), int(item["image_id"]))
    except (ValueError, TypeError, KeyError) as exc:
        st.error(f"Cannot show this error: {exc}", icon=":material/error:")
        return
    if detail is None:
        st.warning(f"No prediction of `{item['model_id']}` for image {item['image_id']} on `{item['dataset']}`.")
        return
    target, prediction = detail["target"], detail["prediction"]
    st.subheader(f"{detail['file_name']}: {target['name']} → {prediction['name']}")
    pics = images.pictures(detail["dataset"], detail["root"], detail["file_name"], target["id"], target["wnid"],
                           prediction["id"])
    for col, (path, caption) in zip(st.columns([3, 2]), pics):
        images.show(path, caption, size=512, container=col)
    cat = detail["category"]
    st.markdown(f"**Model** `{detail['model_id']}` · **category** {_verdict(cat)}"
                f" ({categories.BY_ID[cat].severity if cat in categories.BY_ID else 'unclassified'})"
                + (f" · confidence {detail['confidence']:.1%}" if detail["confidence"] is not None else ""))
    options = db.view("superclass_options")
    superclass_names = dict(zip(options["superclass_id"], options["name"]))
    _reason(detail, superclass_names)
    st.markdown("**Labels** " + (", ".join(n for _, n in detail["labels"]) or "—")
                + ("" if detail["evaluated"] else " · *not in the evaluation set*"))
    _wordnet(detail)
    if detail["expert"]:
        st.markdown("**Expert verdict** " + "; ".join(
            f"{e['expert']}: {_verdict(e['category'])} ({e['severity']})" for e in detail["expert"]))
    else:
        st.markdown("**Expert verdict** none (the experts reviewed only ViT-3B's and Greedy Soups' mistakes on "
                    "the validation images)")
    _models(detail)
    with st.expander("Top-5 predictions"):
        top5 = pd.DataFrame(detail["top5"], columns=["class_id", "name", "confidence"])
        widgets.table(top5, key="detail_top5", formats={"confidence": "percent"})
    _extras(_row(detail, item))

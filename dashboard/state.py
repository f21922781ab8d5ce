"""Filter state ↔ URL: the sidebar's ErrorFilter and each page's own parameters, seeded once from the URL.

On a session's first run the URL's query parameters seed the widgets (through their session-state
keys); at the end of every run the URL is rewritten from the widgets, so a copied link reopens the
same view.
"""

from __future__ import annotations

from typing import Callable, NoReturn, Sequence

import streamlit as st

from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories

# ErrorFilter field -> sidebar widget key.
FILTER_KEYS = {
    "dataset": "flt_dataset", "models": "flt_models", "categories": "flt_categories",
    "superclasses": "flt_superclasses", "families": "flt_families", "groups": "flt_groups",
    "class_search": "flt_class_search", "min_models": "flt_min_models",
    "review": "flt_review", "factors": "flt_factors", "target": "flt_target", "prediction": "flt_prediction",
}
REVIEW_LABELS = {"": "all errors", "reviewed": "reviewed by a user", "not_reviewed": "not reviewed",
                 "disagrees": "review disagrees with automatic"}
_URL = "_url_params"        # the URL's parameters at the session's first run (consumed by widgets)
_PAGE = "_page_params"      # page parameters to write into the URL at the end of this run
_FILTER = "_filter"


def begin_run() -> None:
    """Once per session, keep the URL's parameters for the widgets; every run, start a fresh page-param set."""
    if _URL not in st.session_state:
        st.session_state[_URL] = {k: st.query_params.get(k) for k in st.query_params.keys()}
        try:
            flt = ErrorFilter.from_query_params(st.session_state[_URL])
        except (ValueError, TypeError) as exc:
            st.warning(f"The link's filter was ignored: {exc}")
            flt = ErrorFilter()
        for field, key in FILTER_KEYS.items():
            value = getattr(flt, field)
            st.session_state[key] = list(value) if isinstance(value, tuple) else value
    st.session_state[_PAGE] = {}


def _sanitise(key: str, options: Sequence, *, multi: bool) -> None:
    """Drop seeded values that are not (or no longer) among the widget's options."""
    if key not in st.session_state:
        return
    value = st.session_state[key]
    if multi:
        st.session_state[key] = [v for v in (value or []) if v in options]
    elif value not in options:
        del st.session_state[key]


def url_value(name: str, key: str, *, convert: Callable = str) -> None:
    """Seed widget `key` from URL parameter `name` on the session's first rendering of that widget."""
    pending = st.session_state.get(_URL, {})
    if name in pending and pending[name] not in (None, ""):
        raw = pending.pop(name)
        try:
            st.session_state[key] = convert(raw)
        except (TypeError, ValueError):
            pass


def selectbox(label: str, options: Sequence, *, key: str, url: str | None = None, **kwargs):
    """`st.selectbox` seeded from URL parameter `url` and written back to it."""
    if url:
        url_value(url, key, convert=type(options[0]) if options else str)
    _sanitise(key, options, multi=False)
    if key in st.session_state:
        kwargs.pop("index", None)
    value = st.selectbox(label, options, key=key, **kwargs)
    if url and value is not None:
        st.session_state[_PAGE][url] = str(value)
    return value


def number(label: str, *, key: str, url: str | None = None, min_value: int = 1, max_value: int | None = None,
           value: int = 1, **kwargs) -> int:
    """An integer `st.number_input` seeded from URL parameter `url` and written back to it."""
    if url:
        url_value(url, key, convert=int)
    if key in st.session_state:
        current = st.session_state[key]
        if current < min_value or (max_value is not None and current > max_value):
            st.session_state[key] = min_value
    result = st.number_input(label, min_value=min_value, max_value=max_value, step=1, key=key,
                             **({} if key in st.session_state else {"value": value}), **kwargs)
    if url and result != value:
        st.session_state[_PAGE][url] = str(int(result))
    return int(result)


def set_page_param(name: str, value) -> None:
    """Write a page parameter into this run's URL (None removes it)."""
    if value is not None:
        st.session_state[_PAGE][name] = str(value)


def sidebar_filter(datasets: list[str], models: list[str], superclasses: dict[str, str],
                   families: list[str], max_models: int, *, ignored: dict[str, str] | None = None) -> ErrorFilter:
    """Draw the shared filters in the sidebar and return them as one ErrorFilter.

    `ignored` ({field: why}) greys out the filters the current page does not apply, the reason as their help."""
    sb = st.sidebar
    sb.header("Filters")
    ignored = ignored or {}

    def off(field: str) -> dict:
        return {"disabled": True, "help": f"Ignored on this page: {ignored[field]}."} if field in ignored else {}

    _sanitise(FILTER_KEYS["dataset"], datasets, multi=False)
    dataset = sb.selectbox("Dataset", datasets, key=FILTER_KEYS["dataset"], **off("dataset"))
    for field, options in (("models", models), ("categories", categories.ERROR_IDS),
                           ("superclasses", list(superclasses)), ("families", families),
                           ("groups", ["organism", "artifact", "other"])):
        _sanitise(FILTER_KEYS[field], options, multi=True)
    chosen = sb.multiselect("Models", models, key=FILTER_KEYS["models"], placeholder="all models", **off("models"))
    chosen_categories = sb.multiselect("Category", categories.ERROR_IDS, key=FILTER_KEYS["categories"],
                                       format_func=categories.NAMES.get, placeholder="all error categories",
                                       **off("categories"))
    chosen_sc = sb.multiselect("Superclass or WordNet concept (target or prediction)", list(superclasses),
                               key=FILTER_KEYS["superclasses"], format_func=lambda s: superclasses.get(s, s),
                               placeholder="type to search, e.g. dog", filter_mode="contains",
                               **(off("superclasses") or {"help": "A WordNet concept (e.g. dog) selects every class "
                                                                  "under it; a superclass, the classes it holds."}))
    fams = sb.multiselect("Model family", families, key=FILTER_KEYS["families"], placeholder="all families",
                          **off("families"))
    groups = sb.multiselect("Group", ["organism", "artifact", "other"], key=FILTER_KEYS["groups"],
                            placeholder="all groups", **off("groups"))
    search = sb.text_input("Class name contains", key=FILTER_KEYS["class_search"], **off("class_search"))
    key = FILTER_KEYS["min_models"]
    if st.session_state.get(key, 1) > max(1, max_models) or st.session_state.get(key, 1) < 1:
        st.session_state[key] = 1
    min_models = sb.number_input("Made by at least k models", min_value=1, max_value=max(1, max_models), step=1,
                                 key=key, **off("min_models"))
    review, chosen_factors = _review_and_factor_filters(sb, dataset, ignored)
    target, prediction = _confusion_filter(sb, ignored)
    flt = ErrorFilter(models=tuple(chosen), dataset=dataset, categories=tuple(chosen_categories),
                      superclasses=tuple(chosen_sc), families=tuple(fams), groups=tuple(groups),
                      class_search=search.strip(), min_models=int(min_models), review=review,
                      factors=chosen_factors, target=target, prediction=prediction)
    if ignored:
        sb.caption("Ignored on this page: " + "; ".join(f"**{FILTER_LABELS.get(f, f)}** ({why})"
                                                         for f, why in ignored.items()))
    st.session_state[_FILTER] = flt
    return flt


def _clear_confusion() -> None:
    for field in ("target", "prediction"):
        st.session_state[FILTER_KEYS[field]] = None


def _confusion_filter(sb, ignored: dict[str, str]) -> tuple[int | None, int | None]:
    """The target / prediction class set by a drill-down (a confusion), shown with a button that clears it."""
    from analysis.knowledge import classes

    names = classes.class_names()
    chosen = []
    for field in ("target", "prediction"):
        value = st.session_state.get(FILTER_KEYS[field])
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names)):
            value = st.session_state[FILTER_KEYS[field]] = None
        chosen.append(value)
    if chosen == [None, None]:
        return None, None
    target, prediction = chosen
    text = " → ".join([names[target] if target is not None else "any class",
                       names[prediction] if prediction is not None else "any prediction"])
    why = ignored.get("target") or ignored.get("prediction")
    sb.markdown(f"**Confusion** {text}" + (f"  \n:gray[Ignored on this page: {why}.]" if why else ""))
    sb.button("Clear the confusion filter", key="flt_confusion_clear", on_click=_clear_confusion,
              icon=":material/close:")
    return target, prediction


def _review_and_factor_filters(sb, dataset: str | None, ignored: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """The sidebar's review state and ImageNet-X factors (factors apply to imagenet-val only)."""
    from analysis.knowledge import imagenet_x

    def off(field: str, help_text: str) -> dict:
        if field in ignored:
            return {"disabled": True, "help": f"Ignored on this page: {ignored[field]}."}
        return {"help": help_text}

    _sanitise(FILTER_KEYS["review"], list(REVIEW_LABELS), multi=False)
    review = sb.selectbox("Review", list(REVIEW_LABELS), key=FILTER_KEYS["review"], format_func=REVIEW_LABELS.get,
                          **off("review", "Errors a user gave a verdict (Browse → detail → Review), or whose verdict "
                                          "differs from the automatic category"))
    _sanitise(FILTER_KEYS["factors"], imagenet_x.FACTORS, multi=True)
    on_val = dataset == "imagenet-val"
    factor_help = ("Images whose ImageNet-X annotation marks any of these factors (validation images only; "
                   "annotations CC BY-NC 4.0)" if on_val else
                   "ImageNet-X annotates ImageNet validation images only: choose the dataset imagenet-val")
    factor_options = off("factors", factor_help)
    chosen = sb.multiselect("ImageNet-X factor", imagenet_x.FACTORS, key=FILTER_KEYS["factors"],
                            format_func=imagenet_x.FACTOR_NAMES.get, placeholder="any factor",
                            **{**factor_options, "disabled": factor_options.get("disabled", False) or not on_val})
    return review or "", tuple(chosen) if on_val else ()


def current_filter() -> ErrorFilter:
    """The filter the sidebar drew in this run."""
    return st.session_state.get(_FILTER, ErrorFilter())


def end_run() -> None:
    """Rewrite the URL from the sidebar filter and this run's page parameters (only when it changed)."""
    wanted = {**current_filter().to_query_params(), **st.session_state.get(_PAGE, {})}
    current = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if current != wanted:
        st.query_params.from_dict(wanted)


def stop() -> NoReturn:
    """End the page now (`st.stop`), writing the URL first: app.py's end of run never comes after a stop."""
    end_run()
    st.stop()


def reseed_from_url() -> None:
    """Make the next run seed the filters and page parameters from the URL again (a drill-down's new link)."""
    st.session_state.pop(_URL, None)


FILTER_LABELS = {"dataset": "Dataset", "models": "Models", "categories": "Category",
                 "target": "Target class", "prediction": "Predicted class",
                 "superclasses": "Superclass or concept", "families": "Model family", "groups": "Group",
                 "class_search": "Class name", "min_models": "Made by at least k models", "review": "Review",
                 "factors": "ImageNet-X factor"}


def applied_filter(page: str) -> ErrorFilter:
    """The sidebar's filter as page `page` (a url_path) applies it: the fields it ignores back at their defaults."""
    from dashboard import scope

    return scope.applied(current_filter(), page)


def _flag(raw) -> bool:
    if str(raw) not in ("0", "1"):
        raise ValueError(f"{raw!r} is not 0 or 1")
    return str(raw) == "1"


def toggle(label: str, *, key: str, url: str, value: bool = False, **kwargs) -> bool:
    """`st.toggle` seeded from URL parameter `url` ("1"/"0") and written back to it when not `value`."""
    url_value(url, key, convert=_flag)
    result = st.toggle(label, key=key, **({} if key in st.session_state else {"value": value}), **kwargs)
    if result != value:
        st.session_state[_PAGE][url] = "1" if result else "0"
    return bool(result)


def pending_url(name: str) -> str | None:
    """The URL's value of page parameter `name` while no widget has consumed it yet (None otherwise)."""
    value = st.session_state.get(_URL, {}).get(name)
    return None if value is None else str(value)

"""Filter state ↔ URL: the sidebar's ErrorFilter and each page's own parameters, seeded once from the URL.

On a session's first run the URL's query parameters seed the widgets (through their session-state
keys); at the end of every run the URL is rewritten from the widgets, so a copied link reopens the
same view.
"""

from __future__ import annotations

from typing import Callable, Sequence

import streamlit as st

from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories

# ErrorFilter field -> sidebar widget key.
FILTER_KEYS = {
    "dataset": "flt_dataset", "models": "flt_models", "categories": "flt_categories",
    "superclasses": "flt_superclasses", "families": "flt_families", "groups": "flt_groups",
    "class_search": "flt_class_search", "min_models": "flt_min_models",
}
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
                   families: list[str], max_models: int) -> ErrorFilter:
    """Draw the shared filters in the sidebar and return them as one ErrorFilter."""
    sb = st.sidebar
    sb.header("Filters")
    _sanitise(FILTER_KEYS["dataset"], datasets, multi=False)
    dataset = sb.selectbox("Dataset", datasets, key=FILTER_KEYS["dataset"])
    for field, options in (("models", models), ("categories", categories.ERROR_IDS),
                           ("superclasses", list(superclasses)), ("families", families),
                           ("groups", ["organism", "artifact", "other"])):
        _sanitise(FILTER_KEYS[field], options, multi=True)
    chosen = sb.multiselect("Models", models, key=FILTER_KEYS["models"], placeholder="all models")
    chosen_categories = sb.multiselect("Category", categories.ERROR_IDS, key=FILTER_KEYS["categories"],
                                       format_func=categories.NAMES.get, placeholder="all error categories")
    chosen_sc = sb.multiselect("Superclass (target or prediction)", list(superclasses),
                               key=FILTER_KEYS["superclasses"], format_func=lambda s: superclasses.get(s, s),
                               placeholder="type to search", filter_mode="contains")
    fams = sb.multiselect("Model family", families, key=FILTER_KEYS["families"], placeholder="all families")
    groups = sb.multiselect("Group", ["organism", "artifact", "other"], key=FILTER_KEYS["groups"],
                            placeholder="all groups")
    search = sb.text_input("Class name contains", key=FILTER_KEYS["class_search"])
    key = FILTER_KEYS["min_models"]
    if st.session_state.get(key, 1) > max(1, max_models) or st.session_state.get(key, 1) < 1:
        st.session_state[key] = 1
    min_models = sb.number_input("Made by at least k models", min_value=1, max_value=max(1, max_models), step=1,
                                 key=key)
    flt = ErrorFilter(models=tuple(chosen), dataset=dataset, categories=tuple(chosen_categories),
                      superclasses=tuple(chosen_sc), families=tuple(fams), groups=tuple(groups),
                      class_search=search.strip(), min_models=int(min_models))
    st.session_state[_FILTER] = flt
    return flt


def current_filter() -> ErrorFilter:
    """The filter the sidebar drew in this run."""
    return st.session_state.get(_FILTER, ErrorFilter())


def end_run() -> None:
    """Rewrite the URL from the sidebar filter and this run's page parameters (only when it changed)."""
    wanted = {**current_filter().to_query_params(), **st.session_state.get(_PAGE, {})}
    current = {k: st.query_params.get(k) for k in st.query_params.keys()}
    if current != wanted:
        st.query_params.from_dict(wanted)

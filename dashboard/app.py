"""ImageNet error atlas dashboard: `streamlit run dashboard/app.py` (store: `IMAGENET_ERRORS_DB` or data/errors.duckdb)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from analysis.knowledge import concepts  # noqa: E402
from dashboard import access, db, scope, state  # noqa: E402

PAGES = Path(__file__).resolve().parent / "app_pages"

st.set_page_config(page_title="ImageNet error atlas", page_icon=":material/travel_explore:", layout="wide")

pages = [
    # The default page lives at "/" (Streamlit ignores a url_path there and would answer "/overview" with "page not found").
    st.Page(PAGES / "overview.py", title="Overview", icon=":material/insights:", default=True),
    st.Page(PAGES / "browse.py", title="Browse errors", icon=":material/photo_library:", url_path="browse"),
    st.Page(PAGES / "compare.py", title="Compare models", icon=":material/compare:", url_path="compare"),
    st.Page(PAGES / "experts.py", title="Experts", icon=":material/groups:", url_path="experts"),
    st.Page(PAGES / "zoo.py", title="Model zoo", icon=":material/scatter_plot:", url_path="zoo"),
    st.Page(PAGES / "factors.py", title="ImageNet-X factors", icon=":material/category:", url_path="factors"),
]
READ_ONLY = access.read_only()
if not READ_ONLY:  # the one page that writes (runs a model, builds the store)
    pages.append(st.Page(PAGES / "run.py", title="Run a model", icon=":material/play_circle:", url_path="run"))
page = st.navigation(pages)
state.begin_run()


def _read_only_note() -> None:
    """Say in the sidebar that nothing runs or writes here, or warn when a writable one listens beyond localhost."""
    address = st.get_option("server.address")
    if READ_ONLY:
        st.sidebar.info("Read-only dashboard: no model runs and no store builds from here.", icon=":material/lock:")
    elif address not in ("127.0.0.1", "localhost", "::1"):
        st.sidebar.warning(f"Listening on {address or 'every network interface'} with the Run page on: anyone who "
                           f"reaches it can run models and write the store. Set {access.READONLY_ENV}=1 "
                           "(docs/SERVING.md).", icon=":material/warning:")


def _store_ready() -> bool:
    """Draw the sidebar filters; False (with a message) when the store is missing, unreadable or empty."""
    path = db.store_path()
    if not path.is_file():
        st.error(f"No store at `{path}`. Create one with `python -m analysis build`, then add predictions with "
                 "`python -m analysis predict --model efficientnet-lite0 --dataset samples`"
                 f"{'' if READ_ONLY else ' (or use the Run page)'}, "
                 "or point `IMAGENET_ERRORS_DB` at an existing store.", icon=":material/database:")
        return False
    try:
        datasets = db.view("datasets")
        catalogue = db.view("models")
        superclasses = db.view("superclass_options")
        families = db.view("family_options")
    except Exception as exc:  # a locked, corrupt or foreign file: say so instead of a traceback
        st.error(f"Cannot read the store `{path}`: {exc}", icon=":material/database:")
        return False
    if not datasets:
        where = "" if READ_ONLY else " on the Run page or"
        st.info(f"The store `{path}` holds no predictions yet. Run a model{where} with "
                "`python -m analysis predict --model efficientnet-lite0 --dataset samples`.", icon=":material/info:")
        return False
    dataset = st.session_state.get(state.FILTER_KEYS["dataset"]) or datasets[0]
    on_dataset = catalogue[catalogue["dataset"] == (dataset if dataset in datasets else datasets[0])]
    choices = {**dict(zip(superclasses["superclass_id"], superclasses["name"])),
               **{c.id: c.label for c in concepts.choices(1)}}  # WordNet concepts: "dog" = its 118 classes
    state.sidebar_filter(
        datasets, on_dataset["model_id"].tolist(), choices, families, max_models=len(on_dataset),
        ignored=scope.ignored(page.url_path),
    )
    if scope.PARTLY.get(page.url_path):
        st.sidebar.caption(scope.PARTLY[page.url_path])
    st.sidebar.caption(f"store: `{path.name}` · {catalogue['model_id'].nunique()} models")
    shown = db.current()
    if shown.stale:  # a writer holds the store: its previous copy is shown until the next query after the write
        st.sidebar.caption(f"The store is being written; showing it as of {shown.as_of}.")
    return True


def _footer() -> None:
    """Which definitions made the categories on every page (the CSV downloads carry the same categories)."""
    try:
        info = db.view("classification")
    except Exception:  # the page above already said what is wrong with the store
        return
    st.divider()
    st.caption(f"Categories classified with the superclasses {info['superclasses']}; "
               f"fine-grained OOV check: {info.get('oov_check', 'off')}; store built {info.get('built_at', '?')}."
               + (" Read-only dashboard." if READ_ONLY else ""))


_read_only_note()
st.session_state["store_ready"] = _store_ready()
if st.session_state["store_ready"] or (page.url_path == "run" and not READ_ONLY):
    page.run()
if st.session_state["store_ready"]:
    _footer()
state.end_run()

"""The Experts page's reviewer mode: a user who reviewed errors compared with the automatic categories like the
Vasudevan experts (confusion, agreement, Cohen's kappa), the reviews' CSV download and (unless read-only) upload."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from analysis.errors import UserError
from analysis.store import reviews
from analysis.taxonomy import categories
from dashboard import access, db, detail_extras, state, widgets

MODES = {"experts": "Vasudevan et al.'s experts", "reviewers": "Reviewers (users' own verdicts)"}


def _label(category: str) -> str:
    return reviews.VERDICT_NAMES.get(category) or categories.NAMES.get(category, category)


@st.cache_data(show_spinner=False, max_entries=16)
def _reviewers(version: tuple) -> list[str]:
    with db.cursor() as cur:
        return reviews.reviewers(cur)


@st.cache_data(show_spinner=False, max_entries=16)
def _comparison(version: tuple, reviewer: str, dataset: str | None) -> pd.DataFrame:
    with db.cursor() as cur:
        return reviews.comparison(cur, reviewer, dataset=dataset)


def _upload() -> None:
    """Import a reviews CSV (validated as a whole before anything is written)."""
    if access.read_only():
        return
    with st.expander("Import reviews (CSV)", icon=":material/upload:"):
        st.caption("Columns: " + ", ".join(reviews.REQUIRED) + " (and optionally reviewed_at, file_name, note) — "
                   "the format of the download. A bad row stops the import and nothing is written.")
        upload = st.file_uploader("Reviews CSV", type=["csv"], key="rv_upload")
        if upload is not None and st.button("Import", key="rv_import"):
            try:
                counts = detail_extras.write(reviews.import_reviews, upload.getvalue(), source=upload.name)
            except (UserError, ValueError, TypeError) as exc:
                st.error(f"Nothing was imported: {exc}", icon=":material/error:")
                return
            st.success(f"Imported {counts['imported']} reviews ({counts['replaced']} replaced earlier verdicts).",
                       icon=":material/check_circle:")


def render() -> None:
    """Reviewer mode of the Experts page (the sidebar's dataset applies)."""
    flt = state.current_filter()
    version = db.version()
    names = _reviewers(version)
    if not names:
        st.info("No reviews yet. Open an error on Browse errors and give your own verdict in its detail"
                + ("." if access.read_only() else ", or import a reviews CSV below."), icon=":material/info:")
        _upload()
        return
    reviewer = state.selectbox("Reviewer", names, key="ex_reviewer", url="reviewer")
    frame = _comparison(version, reviewer, flt.dataset)
    st.caption(f"{reviewer}'s verdicts on errors of `{flt.dataset}` (the sidebar's dataset), each compared with the "
               "automatic category of the same (image, prediction) in this store.")
    if frame.empty:
        st.info(f"{reviewer} reviewed no error of `{flt.dataset}`; choose another dataset in the sidebar.",
                icon=":material/info:")
    else:
        figures = reviews.figures(frame)
        m = st.columns(3)
        m[0].metric("Reviewed errors", f"{figures['reviewed']}")
        m[1].metric("Agreement", f"{100 * figures['agreement']:.1f}%",
                    help="Share of reviewed errors whose verdict is the automatic category")
        m[2].metric("Cohen's kappa", f"{figures['kappa']:.3f}",
                    help="Agreement corrected for chance: 1 = perfect, 0 = chance level")
        st.subheader(f"{reviewer} (rows) × automatic (columns)")
        table = reviews.confusion(frame)
        named = table.rename(index=_label, columns=_label)
        fig = px.imshow(named, text_auto=True, color_continuous_scale="Purples", aspect="auto",
                        labels=dict(x="automatic", y=reviewer, color="errors"))
        fig.update_layout(height=140 + 45 * len(table), margin=dict(t=10, b=10), coloraxis_showscale=False)
        st.plotly_chart(fig, key="rv_confusion_chart")
        st.dataframe(named, key="rv_confusion_table")
        disagree = frame[~frame["agree"]]
        st.subheader("Disagreements")
        if disagree.empty:
            st.info(f"The automatic categories agree with every verdict of {reviewer}.", icon=":material/info:")
        else:
            widgets.table(disagree.drop(columns=["agree"]).assign(expert=disagree["expert"].map(_label),
                                                                   automatic=disagree["automatic"].map(_label))
                          .rename(columns={"expert": "verdict"}), key="rv_disagree_table")
    st.download_button("Download all reviews (CSV)", key="rv_download", on_click="ignore",
                       icon=":material/download:", mime="text/csv", file_name="reviews.csv",
                       data=_csv)
    _upload()


def _csv() -> bytes:
    with db.cursor() as cur:
        return reviews.csv_bytes(cur)

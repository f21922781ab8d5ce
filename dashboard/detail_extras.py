"""Extra sections of the error detail dialog (the user's review form, the image's ImageNet-X factors) and the
ImageNet-X factor chart: each reads the dashboard's snapshot of the store, and the review form writes to the store
through a short write connection of its own."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from analysis.errors import UserError
from analysis.knowledge import imagenet_x
from analysis.store import database, factors, reviews
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories
from dashboard import access, db, widgets

REVIEWER_KEY = "rv_reviewer_name"  # the reviewer's name, remembered for the session
FACTOR_CAPTION = ("Factors of variation from " + imagenet_x.LICENCE + ". Annotated: 48,868 of the 50,000 "
                  "validation images.")


@st.cache_data(show_spinner=False, max_entries=64)
def _reviews_of(version: tuple, model_id: str, dataset: str, image_id: int) -> pd.DataFrame:
    with db.cursor() as cur:
        return reviews.reviews_frame(cur, model_id=model_id, dataset=dataset, image_id=image_id)


@st.cache_data(show_spinner=False, max_entries=64)
def _image_factors(version: tuple, dataset: str, image_id: int) -> dict | None:
    with db.cursor() as cur:
        return factors.image_factors(cur, dataset, image_id)


@st.cache_data(show_spinner="Counting ImageNet-X factors per category…", max_entries=16)
def _factor_ratios(version: tuple, flt: ErrorFilter) -> pd.DataFrame:
    with db.cursor() as cur:
        return factors.factor_ratios(cur, flt)


@st.cache_data(show_spinner=False, max_entries=4)
def _annotated(version: tuple) -> int:
    with db.cursor() as cur:
        return factors.loaded(cur)


def write(func, *args, **kwargs):
    """Run `func(write_connection, *args, **kwargs)` on a short write connection to the store (`db.writing`: no
    snapshot copy holds the store meanwhile); the next read copies the written store."""
    with db.writing():
        con = database.connect(db.store_path())
        try:
            return func(con, *args, **kwargs)
        finally:
            con.close()


def _row_key(row: dict) -> str:
    return f"{row['model_id']}|{row['dataset']}|{int(row['image_id'])}"


def review_section(row: dict) -> None:
    """The stored reviews of this error, and (unless read-only) a form to give or change the user's own verdict."""
    try:
        image_id = int(row["image_id"])
        stored = _reviews_of(db.version(), str(row["model_id"]), str(row["dataset"]), image_id)
    except (KeyError, TypeError, ValueError) as exc:
        st.error(f"Cannot show the reviews of this error: {exc}", icon=":material/error:")
        return
    st.markdown("**Reviews**")
    for r in stored.itertuples():
        note = f" — {r.note}" if r.note else ""
        st.caption(f"{r.reviewer} ({r.reviewed_at}): **{reviews.VERDICT_NAMES.get(r.verdict, r.verdict)}**{note}")
    if access.read_only():
        if stored.empty:
            st.caption("Not reviewed.")
        return
    key = _row_key(row)
    name = st.session_state.get(REVIEWER_KEY, "")
    mine = stored[stored["reviewer"] == name] if name else stored.iloc[0:0]
    current = mine.iloc[0] if len(mine) else None
    automatic = str(row.get("category") or "")
    default = current["verdict"] if current is not None else (automatic if automatic in reviews.VERDICTS else None)
    with st.form(key=f"rv_form_{key}", clear_on_submit=False, border=True):
        reviewer = st.text_input("Your name", value=name, max_chars=reviews.MAX_REVIEWER, key=f"rv_name_{key}")
        verdict = st.selectbox("Your verdict", reviews.VERDICTS, format_func=reviews.VERDICT_NAMES.get,
                               index=reviews.VERDICTS.index(default) if default else 0, key=f"rv_verdict_{key}",
                               help="An error category, or “Label wrong” when the image's label itself is wrong. "
                                    f"The automatic category is {categories.NAMES.get(automatic, automatic)}.")
        note = st.text_area("Note", value=current["note"] if current is not None else "", max_chars=reviews.MAX_NOTE,
                            key=f"rv_note_{key}", height=80)
        saved = st.form_submit_button("Save review", icon=":material/rate_review:")
    if saved:
        try:
            reviewer = reviews.check_reviewer(reviewer)
            write(reviews.save_review, reviewer=reviewer, model_id=str(row["model_id"]), dataset=str(row["dataset"]),
                  image_id=image_id, prediction=int(row["prediction_id"]), verdict=verdict, note=note)
        except (UserError, ValueError, TypeError, KeyError) as exc:
            st.error(f"The review was not saved: {exc}", icon=":material/error:")
            return
        st.session_state[REVIEWER_KEY] = reviewer
        st.success(f"Saved {reviewer}'s verdict: {reviews.VERDICT_NAMES[verdict]}.", icon=":material/check_circle:")


def imagenet_x_section(row: dict) -> None:
    """The ImageNet-X factors, top factor and annotator's justification of the row's image (imagenet-val only)."""
    try:
        found = _image_factors(db.version(), str(row["dataset"]), int(row["image_id"]))
    except (KeyError, TypeError, ValueError) as exc:
        st.error(f"Cannot show the ImageNet-X factors: {exc}", icon=":material/error:")
        return
    if found is None:
        return
    st.markdown("**ImageNet-X factors**")
    names = [imagenet_x.FACTOR_NAMES[f] for f in found["factors"]]
    top = imagenet_x.FACTOR_NAMES.get(found["top_factor"], "none")
    st.markdown(" ".join(f":blue-badge[{n}]" for n in names) or "no factor marked")
    st.caption(f"Top factor: **{top}**. Annotator: “{found['justification']}”")
    st.caption(FACTOR_CAPTION)


def factor_section(flt: ErrorFilter | None = None, *, key: str = "fx") -> None:
    """Per error category, how much more often each ImageNet-X factor is marked than on correctly predicted images
    (a heat map and its table; imagenet-val only; the filter's models, families and groups apply)."""
    flt = ErrorFilter() if flt is None else flt
    st.caption(FACTOR_CAPTION)
    version = db.version()
    if not _annotated(version):
        st.info("The ImageNet-X annotations are not in this store: install them with "
                f"`{imagenet_x.INSTALL}`, then run `python -m analysis build`.", icon=":material/info:")
        return
    ratios = _factor_ratios(version, flt)
    errors = ratios[ratios["category"].isin(categories.ERROR_IDS)]
    if errors.empty or ratios["category"].ne("correct").all():
        st.info("No predictions on annotated ImageNet validation images (with both errors and correct predictions) "
                "for these models: import or run a model on `imagenet-val`.", icon=":material/info:")
        return
    table = errors.pivot(index="category", columns="factor", values="ratio")
    table = table.reindex(index=[c for c in categories.ERROR_IDS if c in table.index], columns=list(imagenet_x.FACTORS))
    named = table.rename(index=categories.NAMES, columns=imagenet_x.FACTOR_NAMES)
    fig = px.imshow(named, text_auto=".2f", color_continuous_scale="RdBu_r", color_continuous_midpoint=1.0,
                    aspect="auto", labels=dict(x="factor", y="category", color="× correct"))
    fig.update_layout(height=120 + 42 * len(named), margin=dict(t=10, b=10))
    st.plotly_chart(fig, key=f"{key}_chart")
    correct = int(ratios.loc[ratios["category"] == "correct", "predictions"].iloc[0])
    st.caption(f"Each cell: the share of that category's errors whose image shows the factor, divided by the share "
               f"among the {correct:,} correct predictions (1 = as often; 2 = twice as often).")
    shown = errors.assign(category=errors["category"].map(categories.NAMES),
                          factor=errors["factor"].map(imagenet_x.FACTOR_NAMES))
    widgets.table(shown, key=f"{key}_table", formats={"share": "percent", "correct_share": "percent", "ratio": "%.2f"})

"""Experts: automatic vs expert categories on the mistakes the experts reviewed (ViT-3B, Greedy Soups)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from analysis.knowledge import classes, experts, fetch
from analysis.taxonomy import agreement
from dashboard import db, gallery, reviewer_mode, scope, state, widgets

st.title("Experts vs automatic categories")
st.caption("Vasudevan et al. (2022) reviewed every multi-label mistake of ViT-3B and Greedy Soups. Each reviewed "
           "(image, prediction) is classified here by the automatic pipeline and compared with the expert's verdict.")

# Reviewer mode (users' own verdicts, dashboard/reviewer_mode.py): the rest of the page is the experts' mode.
if state.selectbox("Compare the automatic categories with", list(reviewer_mode.MODES), key="ex_mode", url="mode",
                   format_func=reviewer_mode.MODES.get) == "reviewers":
    reviewer_mode.render()
    state.stop()

available = [e for e, source in experts.EXPERTS.items() if not fetch.missing(source)]
if not available:
    st.info("The expert label files are not fetched. Run `python -m analysis fetch` to get them.",
            icon=":material/info:")
    state.stop()

LABEL_NAMES = {"expert_verdict": "Expert verdict (ReaL + target − prediction)", "real": "ReaL labels",
               "real_with_target": "ReaL labels + target"}

cols = st.columns(3)
with cols[0]:
    expert = state.selectbox("Expert review of", available, key="ex_expert", url="expert",
                             format_func=experts.EXPERT_NAMES.get)
with cols[1]:
    labels = state.selectbox("Label set", list(agreement.LABEL_CHOICES), key="ex_labels", url="labels",
                             format_func=LABEL_NAMES.get)
with cols[2]:
    check = state.toggle("Use the non-prototypical check (circular: it reads the experts' marks)", value=True,
                         key="ex_nonproto", url="nonproto")


@st.cache_data(show_spinner="Classifying the reviewed mistakes…", max_entries=16)
def _comparison(expert: str, labels: str, check: bool) -> pd.DataFrame:
    out = agreement.compare(expert, labels=labels, non_prototypical_check=check)
    names = classes.class_names()
    out.insert(3, "target_name", [names[t] for t in out["target"]])
    out.insert(5, "prediction_name", [names[p] for p in out["prediction"]])
    return out


st.caption(f"**{LABEL_NAMES[labels]}**: {agreement.LABEL_DESCRIPTIONS[labels]}.")

try:
    comparison = _comparison(expert, labels, check)
except (FileNotFoundError, ValueError) as exc:
    st.error(f"Cannot compare with the experts: {exc}", icon=":material/error:")
    state.stop()
flt = state.applied_filter("experts")  # groups, superclasses, class name and categories apply here
if flt != flt.__class__(dataset=flt.dataset):
    comparison = scope.filter_pairs(comparison, db.view("class_sets", flt), flt)
    st.caption(f"{len(comparison)} reviewed mistakes match the sidebar's filters.")
    if comparison.empty:
        widgets.empty("No reviewed mistake matches the sidebar's filters.")
        state.stop()
if not comparison.attrs.get("clip", False):
    st.info("The fine-grained OOV check is off (no CLIP weights: set IMAGENET_ERRORS_CLIP to a checkpoint or an "
            "open_clip tag), so mistakes the experts call fine-grained OOV cannot agree.", icon=":material/info:")

evaluated = comparison[comparison["automatic"] != "not_evaluated"]
m = st.columns(4)
m[0].metric("Reviewed mistakes", f"{len(comparison)}", help="Mistakes the expert gave a verdict, after the filters")
m[1].metric("Agreement", f"{100 * comparison['agree'].mean():.1f}%",
            help="The share of reviewed mistakes whose automatic category equals the expert's")
m[2].metric("Cohen's kappa", f"{agreement.cohen_kappa(comparison['expert'], comparison['automatic']):.3f}",
            help="Agreement corrected for chance (1 = perfect, 0 = what chance gives)")
m[3].metric("Agreement (evaluated only)",
            f"{100 * evaluated['agree'].mean():.1f}%" if len(evaluated) else "n/a",
            help=f"{len(evaluated)} of the reviewed mistakes are in the automatic evaluation set")

st.subheader("Expert (rows) × automatic (columns)")
table = agreement.confusion(comparison)
named = table.rename(index=widgets.category_label, columns=widgets.category_label)
fig = px.imshow(named, text_auto=True, color_continuous_scale="Blues", aspect="auto",
                labels=dict(x="automatic", y="expert", color="mistakes"))
fig.update_layout(height=140 + 45 * len(table), margin=dict(t=10, b=10), coloraxis_showscale=False)
st.plotly_chart(fig, key="ex_confusion_chart")
widgets.table(named, key="ex_confusion_table", hide_index=False)
widgets.csv_download("Confusion CSV", lambda: table.reset_index(),
                     file_name=f"expert_confusion_{expert}.csv", key="ex_confusion_csv")

st.subheader("Disagreements")
disagree = comparison[~comparison["agree"]]
if disagree.empty:
    widgets.empty("The automatic categories agree with every expert verdict.")
else:
    st.caption(f"{len(disagree)} mistakes where the verdicts differ (the expert's and the automatic verdict on "
               "each card)")
    gallery.disagreement_cards(disagree, key="ex_disagree", who=experts.EXPERT_NAMES.get(expert, "Expert"))
    with st.expander("As a table"):
        widgets.table(disagree.drop(columns=["agree"]).assign(
            expert=disagree["expert"].map(widgets.category_label),
            automatic=disagree["automatic"].map(widgets.category_label)), hide_index=True, key="ex_disagree_table")
    widgets.csv_download("Disagreements CSV", lambda: disagree,
                         file_name=f"expert_disagreements_{expert}.csv", key="ex_disagree_csv")

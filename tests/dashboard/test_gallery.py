"""The card gallery, the detail dialog, Browse at scale and the drill-downs, through Streamlit's AppTest on the
small real store (EfficientNet-Lite0/1 on 50 sample images)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from analysis.knowledge import classes
from analysis.store import database, export, views
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import agreement, categories, reasons
from tests.bad_inputs import BadInput, cases
from tests.dashboard.apptest import DATASET
from tests.dashboard.apptest import open_app as _app


def _open_buttons(at: AppTest, prefix: str) -> list:
    return [b for b in at.button if b.key and b.key.startswith(f"{prefix}_open_")]


def _heading(row) -> str:
    return f"{row['file_name']}: {row['target_name']} → {row['prediction_name']}"


def test_compare_cell_shows_cards_with_both_verdicts(db, con, model_ids):
    at = _app("compare")
    a, b = at.selectbox(key="cmp_a").value, at.selectbox(key="cmp_b").value
    matrix = views.transition_matrix(con, a, b, dataset=DATASET)
    off = matrix[matrix["category_a"] != matrix["category_b"]].sort_values("images", ascending=False)
    cell = off.iloc[0]
    at.selectbox(key="cmp_cell").select(f"{cell['category_a']}|{cell['category_b']}").run()
    assert not at.exception, [e.value for e in at.exception]
    rows = views.compare_images(con, a, b, dataset=DATASET, kind="cell", category_a=cell["category_a"],
                                category_b=cell["category_b"], limit=12)
    assert len(_open_buttons(at, "cmp_cell_list")) == len(rows) == min(12, cell["images"])
    texts = [m.value for m in at.markdown]
    for row in rows.itertuples(index=False):
        card = [t for t in texts if t.startswith(f"**{row.target_name}** · {row.file_name}")]
        assert card, f"no card for {row.file_name}"
        assert f"**A** `{a}`: {row.prediction_a_name} · " in card[0]
        assert f"**B** `{b}`: {row.prediction_b_name} · " in card[0]
        assert categories.NAMES[row.category_a] in card[0] and categories.NAMES[row.category_b] in card[0]
    # a card's Details opens the dialog on the wrong model's error; next moves to the next card's
    _open_buttons(at, "cmp_cell_list")[0].click().run()
    first = rows.iloc[0]
    wrong = (a, first["prediction_a_name"]) if first["category_a"] != "correct" else (b, first["prediction_b_name"])
    assert f"{first['file_name']}: {first['target_name']} → {wrong[1]}" in [s.value for s in at.subheader]
    if len(rows) > 1:
        at.button(key="detail_next").click().run()
        assert any(s.value.startswith(f"{rows.iloc[1]['file_name']}: ") for s in at.subheader)
    # the only-A / only-B / both-wrong tabs are galleries too, one card per listed image (first page)
    counts = views.compare_counts(con, a, b, dataset=DATASET)
    for kind in ("only_a", "only_b", "both_different"):
        assert len(_open_buttons(at, f"cmp_{kind}")) == min(12, counts[kind])


def test_detail_dialog_shows_the_reason_in_words_and_next_moves(db, con):
    at = _app("browse")
    rows = views.errors_page(con, ErrorFilter(dataset=DATASET), sort="image", limit=12)
    total = export.count_errors(con, ErrorFilter(dataset=DATASET))
    _open_buttons(at, "br")[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _heading(rows.iloc[0]) in [s.value for s in at.subheader]
    first = rows.iloc[0]
    sentence = reasons.reason_sentence(first["reason"], target=int(first["target_id"]),
                                       prediction=int(first["prediction_id"]), category=first["category"])
    why = [m.value for m in at.markdown if m.value.startswith("**Why**")]
    assert why == [f"**Why** {sentence}"] and first["reason"] not in why[0]
    assert any(m.value.startswith(f"Error **1** of {total:,}") for m in at.markdown)
    assert any("Lowest shared WordNet ancestor" in m.value for m in at.markdown)
    assert any(m.value.startswith("**Same mistake** made by") for m in at.markdown)
    assert at.query_params["detail"] == f"{first['model_id']}|{first['image_id']}"
    at.button(key="detail_next").click().run()
    assert not at.exception
    assert _heading(rows.iloc[1]) in [s.value for s in at.subheader]
    assert any(m.value.startswith(f"Error **2** of {total:,}") for m in at.markdown)
    at.button(key="detail_prev").click().run()
    assert _heading(rows.iloc[0]) in [s.value for s in at.subheader]


def test_next_goes_past_the_page_through_the_whole_result(db, con):
    flt = ErrorFilter(dataset=DATASET)
    rows = views.errors_page(con, flt, sort="image", limit=13)
    assert len(rows) == 13, "the small store must hold more errors than one 12-card page"
    at = _app("browse")
    _open_buttons(at, "br")[11].click().run()
    assert _heading(rows.iloc[11]) in [s.value for s in at.subheader]
    at.button(key="detail_next").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _heading(rows.iloc[12]) in [s.value for s in at.subheader]
    assert any(m.value.startswith("Error **13** of") for m in at.markdown)
    assert at.number_input(key="br_page").value == 2  # Browse follows the dialog to the error's page
    at.button(key="detail_prev").click().run()
    assert _heading(rows.iloc[11]) in [s.value for s in at.subheader]
    assert at.number_input(key="br_page").value == 1


def test_a_detail_link_reopens_the_dialog(db, con):
    first = views.errors_page(con, ErrorFilter(dataset=DATASET), sort="image", limit=1).iloc[0]
    at = _app("browse", query={"detail": f"{first['model_id']}|{first['image_id']}"})
    assert _heading(first) in [s.value for s in at.subheader]


def test_grid_size_sort_and_one_card_per_image_change_the_cards(db, con, model_ids):
    flt = ErrorFilter(dataset=DATASET)
    total = export.count_errors(con, flt)
    assert total > 12, "the small store must hold more errors than one 12-card page"
    at = _app("browse")
    assert len(_open_buttons(at, "br")) == 12
    at.selectbox(key="br_grid").select(24).run()
    assert len(_open_buttons(at, "br")) == min(24, total)
    assert at.query_params["grid"] == "24"

    at.selectbox(key="br_sort").select("confidence").run()
    by_confidence = views.errors_page(con, flt, sort="confidence", limit=24)
    _open_buttons(at, "br")[0].click().run()
    assert _heading(by_confidence.iloc[0]) in [s.value for s in at.subheader]
    assert at.query_params["sort"] == "confidence"

    at = _app("browse", query={"per_image": "1", "grid": "12"})
    images = views.error_images(con, flt, sort="image", limit=12)
    assert at.toggle(key="br_per_image").value is True
    assert len(_open_buttons(at, "br")) == len(images) == min(12, views.count_error_images(con, flt))
    texts = [m.value for m in at.markdown]
    for image in images.itertuples(index=False):
        card = [t for t in texts if t.startswith(f"**{image.target_name}** · {image.file_name}")]
        assert len(card) == 1
        assert all(f"`{m}`:" in card[0] for m in model_ids[:2]), card[0]  # every model's prediction on one card
    assert any(f"**{total:,}** errors match on **{views.count_error_images(con, flt):,}** images" in t for t in texts)
    assert at.query_params["per_image"] == "1"


def test_page_controls_top_and_bottom(db, con):
    at = _app("browse", query={"grid": "12"})
    total = export.count_errors(con, ErrorFilter(dataset=DATASET))
    at.button(key="br_page_next_bottom").click().run()
    assert at.number_input(key="br_page").value == 2
    assert len(_open_buttons(at, "br")) == min(12, total - 12)
    assert at.query_params["page"] == "2"
    at.button(key="br_page_prev_top").click().run()
    assert at.number_input(key="br_page").value == 1


def test_a_compare_cell_drills_down_to_browse(db, con):
    at = _app("compare")
    a = at.selectbox(key="cmp_a").value
    b = at.selectbox(key="cmp_b").value
    matrix = views.transition_matrix(con, a, b, dataset=DATASET)
    cell = matrix[matrix["category_a"].isin(categories.ERROR_IDS)].sort_values("images").iloc[-1]
    at.selectbox(key="cmp_cell").select(f"{cell['category_a']}|{cell['category_b']}").run()
    at.button(key="cmp_drill_A").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="flt_models").value == [a]
    assert at.multiselect(key="flt_categories").value == [cell["category_a"]]
    expected = export.count_errors(con, ErrorFilter(dataset=DATASET, models=(a,), categories=(cell["category_a"],)))
    assert any(f"**{expected:,}** errors match" in m.value for m in at.markdown)
    assert at.query_params["models"] == a and at.query_params["categories"] == cell["category_a"]


def test_an_overview_confusion_drills_down_to_browse(db, con, model_ids):
    at = _app()
    top = views.top_confusions(con, model_ids[0], dataset=DATASET, limit=1).iloc[0]
    at.button(key="ov_confusion_drill_0").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="flt_models").value == [model_ids[0]]
    assert at.multiselect(key="flt_categories").value == [top["category"]]
    assert at.query_params["target"] == str(top["target"]) and at.query_params["prediction"] == str(top["prediction"])
    # exactly the confusion's errors: as many cards as the confusion has images, each target → prediction
    assert len(_open_buttons(at, "br")) == top["images"]
    assert any(m.value.startswith(f"**Confusion** {top['target_name']} → {top['prediction_name']}")
               for m in at.sidebar.markdown)
    at.button(key="flt_confusion_clear").click().run()
    assert "target" not in at.query_params and "prediction" not in at.query_params
    wider = export.count_errors(con, ErrorFilter(dataset=DATASET, models=(model_ids[0],), categories=(top["category"],)))
    assert len(_open_buttons(at, "br")) == min(12, wider) and wider > top["images"]


def test_expert_disagreements_are_cards_with_both_verdicts(db):
    at = _app("experts")
    comparison = agreement.compare("vit3b")
    disagree = comparison[~comparison["agree"]]
    assert len(disagree) > 24
    assert len(_card_texts(at, "ex_disagree")) == 24  # first page
    names = classes.class_names()
    first = disagree.iloc[0]
    card = [t for t in _card_texts(at, "ex_disagree") if t.startswith(f"**{names[first['target']]}** · ")][0]
    assert f"**ViT-3B** {names[first['prediction']]} · " in card
    assert f"**Automatic** {names[first['prediction']]} · " in card
    assert categories.NAMES[first["expert"]] in card and categories.NAMES[first["automatic"]] in card


def _card_texts(at: AppTest, key: str) -> list[str]:
    """The text of each card of gallery `key` (its markdown: target line, then one verdict line each)."""
    return [m.value for m in at.markdown if m.value.startswith("**") and "  \n**" in m.value]


HOSTILE = cases(
    BadInput("gallery-grid-7", "Browse URL parameter", "grid=7 (not a grid size)", "grid='7' is not a grid size"),
    BadInput("gallery-sort-sql", "Browse URL parameter", "sort=drop table (not a sort order)",
             "sort='drop table' is not a sort order"),
    BadInput("gallery-page-negative", "Browse URL parameter", "page=-1", "page='-1' is not a page number"),
    BadInput("gallery-page-text", "Browse URL parameter", "page=abc", "page='abc' is not a page number"),
    BadInput("gallery-per-image-text", "Browse URL parameter", "per_image=maybe", "per_image='maybe' must be 1 or 0"),
    BadInput("gallery-detail-garbage", "Browse URL parameter", "detail=nonsense (no `model|image id`)",
             "detail='nonsense' is not `model|image id`"),
    BadInput("gallery-detail-unknown", "Browse URL parameter", "detail=no-such-model|3 (an unknown model)",
             "No prediction of `no-such-model` for image 3"),
)
_VALUES = {"gallery-grid-7": {"grid": "7"}, "gallery-sort-sql": {"sort": "drop table"},
           "gallery-page-negative": {"page": "-1"}, "gallery-page-text": {"page": "abc"},
           "gallery-per-image-text": {"per_image": "maybe"}, "gallery-detail-garbage": {"detail": "nonsense"},
           "gallery-detail-unknown": {"detail": "no-such-model|3"}}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_browse_urls_get_a_message_and_sane_defaults(db, case):
    before = _checksums(db)
    at = _app("browse", query=_VALUES[case.id])
    assert not at.exception
    assert any(case.message in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.selectbox(key="br_grid").value == 12
    assert at.selectbox(key="br_sort").value == "image"
    assert at.number_input(key="br_page").value == 1
    assert len(_open_buttons(at, "br")) == 12  # the first page of the default grid still shows
    assert _checksums(db) == before  # case.store: unchanged


def _checksums(path) -> dict:
    with database.connect(path, read_only=True) as connection:
        return database.table_checksums(connection)


def test_a_composition_bar_click_reads_as_group_and_category():
    """What plotly sends for a click on a stacked bar segment (x = group, customdata = category) -> the drill."""
    from types import SimpleNamespace

    from dashboard import widgets

    click = SimpleNamespace(selection=SimpleNamespace(points=[{"x": "organism", "customdata": ["fine_grained"]}]))
    assert widgets.bar_selection(click) == ("organism", "fine_grained")
    assert widgets.bar_selection(SimpleNamespace(selection=SimpleNamespace(points=[]))) is None
    assert widgets.bar_selection(None) is None
    odd = SimpleNamespace(selection=SimpleNamespace(points=[{"x": "all", "customdata": ["no such category"]}]))
    assert widgets.bar_selection(odd) is None

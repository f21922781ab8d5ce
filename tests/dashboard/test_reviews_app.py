"""The review form of the detail dialog, the Experts page's reviewer mode, the review / factor sidebar filters and the
ImageNet-X page, through Streamlit's AppTest on writable copies of the small store."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from analysis.store import database, export, reviews
from analysis.store.filters import ErrorFilter
from tests.bad_inputs import BadInput, cases
from tests.dashboard.apptest import APP


def _first_error(path) -> dict:
    con = database.connect(path, read_only=True)
    try:
        return export.errors_frame(con, ErrorFilter(models=("efficientnet-lite0",), dataset="samples"),
                                   limit=1).iloc[0].to_dict()
    finally:
        con.close()


def _form_app(row: dict) -> AppTest:
    def script(row):  # AppTest runs this function as the page, with `row` passed in
        from dashboard import detail_extras

        detail_extras.review_section(row)

    at = AppTest.from_function(script, kwargs={"row": row}, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_review_form_saves_remembers_the_name_and_shows_the_review(store_copy, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(store_copy))
    monkeypatch.delenv("IMAGENET_ERRORS_READONLY", raising=False)
    row = {k: (int(v) if k in ("image_id", "prediction_id") else v) for k, v in _first_error(store_copy).items()
           if k in ("model_id", "dataset", "image_id", "prediction_id", "category")}
    at = _form_app(row)
    key = f"{row['model_id']}|{row['dataset']}|{row['image_id']}"
    at.text_input(key=f"rv_name_{key}").input("dana")
    at.selectbox(key=f"rv_verdict_{key}").select("label_wrong")
    at.text_area(key=f"rv_note_{key}").input("the label is a different breed")
    at.button[0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.session_state["rv_reviewer_name"] == "dana"
    assert any("Saved dana's verdict: Label wrong" in s.value for s in at.success)
    con = database.connect(store_copy, read_only=True)
    try:
        frame = reviews.reviews_frame(con)
    finally:
        con.close()
    assert frame[["reviewer", "model_id", "image_id", "prediction", "verdict", "note"]].values.tolist() == [
        ["dana", row["model_id"], row["image_id"], row["prediction_id"], "label_wrong",
         "the label is a different breed"]]
    at.run()  # the stored review is listed above the form
    assert any("dana" in c.value and "Label wrong" in c.value for c in at.caption)


def test_review_form_refuses_an_empty_name_in_an_error_box(store_copy, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(store_copy))
    row = _first_error(store_copy)
    at = _form_app({"model_id": row["model_id"], "dataset": row["dataset"], "image_id": int(row["image_id"]),
                    "prediction_id": int(row["prediction_id"]), "category": row["category"]})
    at.button[0].click().run()
    assert not at.exception and at.error and "must be a non-empty name" in at.error[0].value


def test_review_form_is_hidden_in_read_only_mode(store_copy, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(store_copy))
    monkeypatch.setenv("IMAGENET_ERRORS_READONLY", "1")
    row = _first_error(store_copy)
    at = _form_app({"model_id": row["model_id"], "dataset": row["dataset"], "image_id": int(row["image_id"]),
                    "prediction_id": int(row["prediction_id"]), "category": row["category"]})
    assert not at.text_input and not at.button and any(c.value == "Not reviewed." for c in at.caption)


def _save(path, n: int, reviewer: str = "erin") -> list[tuple[str, str]]:
    con = database.connect(path)
    try:
        rows = export.errors_frame(con, ErrorFilter(models=("efficientnet-lite0",), dataset="samples"), limit=n)
        pairs = []
        for k, r in enumerate(rows.itertuples()):
            verdict = r.category if k % 2 else "label_wrong"
            reviews.save_review(con, reviewer=reviewer, model_id=r.model_id, dataset=r.dataset,
                                image_id=int(r.image_id), prediction=int(r.prediction_id), verdict=verdict)
            pairs.append((verdict, r.category))
        return pairs
    finally:
        con.close()


def _page(page: str, query: dict, *, first_run=None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(query)
    at.run()
    if first_run is not None:
        first_run(at)
    at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_experts_reviewer_mode_shows_agreement_and_kappa(store_copy, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(store_copy))
    monkeypatch.delenv("IMAGENET_ERRORS_READONLY", raising=False)
    pairs = _save(store_copy, 6)
    at = _page("experts", {"mode": "reviewers", "dataset": "samples"})
    con = database.connect(store_copy, read_only=True)
    figures = reviews.figures(reviews.comparison(con, "erin", dataset="samples"))
    con.close()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Reviewed errors"] == "6"
    assert metrics["Agreement"] == f"{100 * sum(v == c for v, c in pairs) / 6:.1f}%"
    assert metrics["Cohen's kappa"] == f"{figures['kappa']:.3f}"
    assert at.query_params["mode"] == ["reviewers"] or at.query_params["mode"] == "reviewers"
    assert any(e.label == "Import reviews (CSV)" for e in at.expander)


def test_browse_review_filter_from_the_url(store_copy, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(store_copy))
    _save(store_copy, 4)
    at = _page("browse", {"dataset": "samples", "review": "disagrees"})
    assert at.selectbox(key="flt_review").value == "disagrees"
    assert at.session_state["_filter"].review == "disagrees"


HOSTILE_URLS = {"review-url-unknown-state": {"review": "everything"},
                "inx-url-unknown-factor": {"factors": "pose,posture", "dataset": "samples"}}


@pytest.mark.parametrize("case", cases(
    BadInput("review-url-unknown-state", "URL ?review=", "a value that is no review state",
             "The link's filter was ignored: review='everything' must be one of", store="not involved"),
    BadInput("inx-url-unknown-factor", "URL ?factors=", "a name that is no ImageNet-X factor",
             "The link's filter was ignored: factor 'posture' is not an ImageNet-X factor", store="not involved")))
def test_hostile_review_and_factor_urls_warn(case, small_store, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(small_store))
    seen = []
    _page("browse", HOSTILE_URLS[case.id], first_run=lambda at: seen.extend(w.value for w in at.warning))
    assert any(case.message in w for w in seen), seen


def test_factor_page_without_validation_predictions_says_so(small_store, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(small_store))
    at = _page("factors", {})
    assert any("No predictions on annotated ImageNet validation images" in i.value for i in at.info)
    assert any("CC BY-NC 4.0" in c.value for c in at.caption)

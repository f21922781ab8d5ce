"""The views behind Browse at scale and the detail dialog, on the small real store (Lite0/1 on 50 sample images)."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.store import database, export, views
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import categories, reasons

DATASET = "samples"


@pytest.fixture
def con(small_store):
    connection = database.connect(small_store, read_only=True)
    yield connection
    connection.close()


def _key(frame: pd.DataFrame) -> list[tuple]:
    return list(zip(frame["model_id"], frame["image_id"]))


@pytest.mark.parametrize("sort", views.ERROR_SORTS)
def test_errors_page_holds_the_exports_rows_in_sort_order(con, sort):
    flt = ErrorFilter(dataset=DATASET)
    everything = export.errors_frame(con, flt)
    assert len(everything) > 3
    page = views.errors_page(con, flt, sort=sort, limit=None)
    assert list(page.columns) == list(export.COLUMNS)
    assert sorted(_key(page)) == sorted(_key(everything))  # same rows, other order
    if sort == "models":
        assert page["models_making_error"].is_monotonic_decreasing
    elif sort == "confidence":
        assert page["confidence"].is_monotonic_decreasing
    elif sort == "class":
        assert page["target_name"].tolist() == sorted(page["target_name"])
    elif sort == "category":
        ranks = page["category"].map(categories.IDS.index)
        assert ranks.is_monotonic_increasing
    else:
        assert _key(page) == _key(everything)
    # paging cuts the same order into pieces
    first, second = (views.errors_page(con, flt, sort=sort, limit=3, offset=o) for o in (0, 3))
    assert _key(first) + _key(second) == _key(page)[:6]


def test_errors_page_refuses_an_unknown_sort(con):
    with pytest.raises(ValueError, match="sort='drop table' is unknown; choose one of"):
        views.errors_page(con, ErrorFilter(dataset=DATASET), sort="drop table")
    with pytest.raises(TypeError, match="flt="):
        views.errors_page(con, {"dataset": DATASET})


def test_error_images_are_the_distinct_images_of_the_errors(con):
    flt = ErrorFilter(dataset=DATASET)
    errors = export.errors_frame(con, flt)
    shown = views.error_images(con, flt, sort="models", limit=None)
    assert sorted(shown["image_id"]) == sorted(set(errors["image_id"]))
    assert views.count_error_images(con, flt) == len(shown)
    per_image = errors.groupby("image_id").size()
    assert (shown.set_index("image_id")["errors"] == per_image.reindex(shown["image_id"])).all()
    assert shown["models_making_error"].is_monotonic_decreasing
    one_model = ErrorFilter(dataset=DATASET, models=(errors["model_id"].iloc[0],))
    assert views.count_error_images(con, one_model) == errors.loc[
        errors["model_id"] == errors["model_id"].iloc[0], "image_id"].nunique()


def test_image_predictions_give_every_models_verdict(con):
    errors = export.errors_frame(con, ErrorFilter(dataset=DATASET))
    image = int(errors["image_id"].iloc[0])
    preds = views.image_predictions(con, DATASET, [image])
    stored = con.execute("SELECT model_id, prediction FROM predictions WHERE dataset = ? AND image_id = ? "
                         "ORDER BY model_id", [DATASET, image]).fetchall()
    assert list(zip(preds["model_id"], preds["prediction_id"])) == stored
    wrong = preds[preds["prediction_id"] != preds["target_id"]]
    assert set(wrong["model_id"]) == set(errors.loc[errors["image_id"] == image, "model_id"])
    assert (preds.loc[preds["prediction_id"] == preds["target_id"], "category"] == "correct").all()
    only = views.image_predictions(con, DATASET, [image], models=[stored[0][0]])
    assert only["model_id"].tolist() == [stored[0][0]]
    with pytest.raises(ValueError, match="image_ids holds -1"):
        views.image_predictions(con, DATASET, [-1])


def test_cooccurrence_images_hold_both_labels(con):
    # the ReaL labels of the validation set: find a pair of classes labelled together on several images
    a, b = con.execute("""
        SELECT l1, l2 FROM (SELECT unnest(labels) AS l1, labels FROM images WHERE dataset = 'imagenet-val'),
             LATERAL (SELECT unnest(labels) AS l2) WHERE l1 < l2 GROUP BY ALL ORDER BY count(*) DESC LIMIT 1
    """).fetchone()
    found = views.cooccurrence_images(con, "imagenet-val", a, b, limit=8)
    assert 1 <= len(found) <= 8
    assert all(a in labels and b in labels for labels in found["labels"])
    skipped = views.cooccurrence_images(con, "imagenet-val", a, b, exclude=int(found["image_id"].iloc[0]), limit=8)
    assert int(found["image_id"].iloc[0]) not in set(skipped["image_id"])
    with pytest.raises(TypeError, match="limit='8' must be an integer"):
        views.cooccurrence_images(con, "imagenet-val", a, b, limit="8")


def test_every_stored_reason_kind_reads_as_a_sentence(con):
    rows = con.execute("""
        SELECT DISTINCT ON (split_part(c.reason, ':', 1)) c.reason, c.category, i.target, c.prediction
        FROM pair_categories c JOIN images i USING (dataset, image_id)
    """).fetchall()
    kinds = {reasons.parse_reason(r[0])[0] for r in rows}
    assert "unknown" not in kinds and {"none", "superclass"} <= kinds
    names = dict(con.execute("SELECT class_id, name FROM classes").fetchall())
    for reason, category, target, prediction in rows:
        sentence = reasons.reason_sentence(reason, target=target, prediction=prediction, category=category)
        assert reason not in sentence and sentence.endswith(".")
        if reasons.parse_reason(reason)[0] == "superclass":
            assert names[int(prediction)] in sentence and "share the superclass" in sentence


def test_a_confusion_filter_selects_exactly_that_target_and_prediction(con):
    """target / prediction (a drill-down from a confusion) narrow the export to that pair, in the count too."""
    errors = export.errors_frame(con, ErrorFilter(dataset="samples"))
    first = errors.iloc[0]
    flt = ErrorFilter(dataset="samples", target=int(first["target_id"]), prediction=int(first["prediction_id"]))
    rows = export.errors_frame(con, flt)
    expected = errors[(errors["target_id"] == first["target_id"]) & (errors["prediction_id"] == first["prediction_id"])]
    assert len(rows) == len(expected) == export.count_errors(con, flt) >= 1
    only_target = ErrorFilter(dataset="samples", target=int(first["target_id"]))
    assert export.count_errors(con, only_target) == int((errors["target_id"] == first["target_id"]).sum())
    assert ErrorFilter.from_query_params(flt.to_query_params()) == flt


@pytest.mark.parametrize("field, value", [("target", 1000), ("prediction", -1), ("target", True), ("target", "3")])
def test_a_confusion_filter_refuses_what_is_not_a_class_id(field, value):
    with pytest.raises(ValueError, match=f"{field}=.* must be a class id 0..999"):
        ErrorFilter(**{field: value})

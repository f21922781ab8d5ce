"""Reviews (schema v5): saving, the Browse filter, the comparison with the automatic categories, build keeping them,
and the CSV export / import with its whole-file validation."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from analysis import cli
from analysis.store import database, export, reference, reviews
from analysis.store.filters import ErrorFilter
from analysis.taxonomy import agreement
from tests.bad_inputs import BadInput, cases


def _errors(path: Path, n: int = 6) -> pd.DataFrame:
    con = database.connect(path, read_only=True)
    try:
        return export.errors_frame(con, ErrorFilter(models=("efficientnet-lite0",), dataset="samples"), limit=n)
    finally:
        con.close()


def _review(path: Path, rows: pd.DataFrame, reviewer: str = "alice", *, disagree_every: int = 2) -> list[str]:
    """Review `rows`: every `disagree_every`-th verdict differs from the automatic category; returns the verdicts."""
    verdicts = []
    con = database.connect(path)
    try:
        for k, r in enumerate(rows.itertuples()):
            verdict = r.category if k % disagree_every else ("label_wrong" if r.category != "label_wrong" else
                                                             "model_failure")
            reviews.save_review(con, reviewer=reviewer, model_id=r.model_id, dataset=r.dataset,
                                image_id=int(r.image_id), prediction=int(r.prediction_id), verdict=verdict,
                                note=f"note {k}")
            verdicts.append(verdict)
    finally:
        con.close()
    return verdicts


def _checksums(path: Path) -> dict:
    con = database.connect(path, read_only=True)
    try:
        return database.table_checksums(con)
    finally:
        con.close()


def test_save_replaces_the_reviewers_verdict_and_lists_the_automatic_category(store_copy):
    rows = _errors(store_copy, 2)
    r = rows.iloc[0]
    con = database.connect(store_copy)
    try:
        for verdict in ("fine_grained", "label_wrong"):  # the second save replaces the first
            reviews.save_review(con, reviewer=" alice ", model_id=r.model_id, dataset=r.dataset,
                                image_id=int(r.image_id), prediction=int(r.prediction_id), verdict=verdict, note="x")
        reviews.save_review(con, reviewer="bob", model_id=r.model_id, dataset=r.dataset, image_id=int(r.image_id),
                            prediction=int(r.prediction_id), verdict="model_failure")
        frame = reviews.reviews_frame(con)
        assert reviews.reviewers(con) == ["alice", "bob"]
    finally:
        con.close()
    assert list(frame.columns) == list(reviews.COLUMNS)
    assert frame[["reviewer", "verdict"]].values.tolist() == [["alice", "label_wrong"], ["bob", "model_failure"]]
    assert set(frame["automatic"]) == {r.category} and set(frame["file_name"]) == {r.file_name}
    assert set(frame["prediction_name"]) == {r.prediction_name}


@pytest.mark.parametrize("kwargs, message", [
    ({"reviewer": ""}, "must be a non-empty name"),
    ({"reviewer": "a\nb"}, "control or invisible character U+000A"),
    ({"reviewer": "x" * 65}, "use at most 64"),
    ({"verdict": "correct"}, "is not a verdict; use one of overlapping_classes"),
    ({"image_id": 5000}, "is not in the store"),
    ({"prediction": 1000}, "must be a class id 0-999"),
    ({"note": "y" * 2001}, "keep it to at most 2000"),
])
def test_save_refuses_bad_values_and_writes_nothing(store_copy, kwargs, message):
    r = _errors(store_copy, 1).iloc[0]
    args = dict(reviewer="alice", model_id=r.model_id, dataset=r.dataset, image_id=int(r.image_id),
                prediction=int(r.prediction_id), verdict="fine_grained", note="")
    con = database.connect(store_copy)
    try:
        with pytest.raises(ValueError, match=re.escape(message)):
            reviews.save_review(con, **{**args, **kwargs})
        assert database.first(con, "SELECT count(*) FROM reviews")[0] == 0
    finally:
        con.close()


def test_build_keeps_the_reviews(store_copy):
    _review(store_copy, _errors(store_copy, 4))
    before = _checksums(store_copy)["reviews"]
    assert before[0] == 4
    reference.build(store_copy, progress=False)
    assert _checksums(store_copy)["reviews"] == before


def test_review_filters_count_and_list_the_same_errors(store_copy):
    rows = _errors(store_copy, 6)
    verdicts = _review(store_copy, rows)
    disagreeing = sum(v != c for v, c in zip(verdicts, rows["category"]))
    con = database.connect(store_copy, read_only=True)
    try:
        total = export.count_errors(con, ErrorFilter(dataset="samples"))
        for flt in (ErrorFilter(dataset="samples", review="reviewed"),
                    ErrorFilter(dataset="samples", review="disagrees"),
                    ErrorFilter(dataset="samples", review="not_reviewed"),
                    ErrorFilter(models=("efficientnet-lite0",), review="reviewed")):
            frame = export.errors_frame(con, flt)
            assert export.count_errors(con, flt) == len(frame), flt  # both count paths agree with the listing
        reviewed = export.errors_frame(con, ErrorFilter(models=("efficientnet-lite0",), review="reviewed"))
        disagree = export.errors_frame(con, ErrorFilter(models=("efficientnet-lite0",), review="disagrees"))
        not_reviewed = export.count_errors(con, ErrorFilter(dataset="samples", review="not_reviewed"))
        any_reviewed = export.count_errors(con, ErrorFilter(dataset="samples", review="reviewed"))
    finally:
        con.close()
    assert sorted(reviewed["image_id"]) == sorted(rows["image_id"])
    assert len(disagree) == disagreeing > 0
    assert not_reviewed + any_reviewed == total


def test_comparison_is_the_experts_comparison_for_a_reviewer(store_copy):
    rows = _errors(store_copy, 6)
    verdicts = _review(store_copy, rows, "carol", disagree_every=3)
    con = database.connect(store_copy, read_only=True)
    try:
        frame = reviews.comparison(con, "carol")
    finally:
        con.close()
    assert frame["expert"].tolist() == [v for _, v in sorted(zip(rows["image_id"], verdicts))]
    figures = reviews.figures(frame)
    assert figures["reviewed"] == 6
    assert figures["agreement"] == pytest.approx(sum(v == c for v, c in zip(verdicts, rows["category"])) / 6)
    assert figures["kappa"] == agreement.cohen_kappa(frame["expert"], frame["automatic"])
    table = reviews.confusion(frame)
    assert table.values.sum() == 6 and "label_wrong" in table.index  # label_wrong is kept, not dropped


def test_export_then_import_into_another_store_gives_the_same_reviews(store_copy, small_store, tmp_path, capsys):
    _review(store_copy, _errors(store_copy, 5))
    out = tmp_path / "reviews.csv"
    assert cli.main(["reviews", "export", str(out), "--db", str(store_copy)]) == 0
    other = tmp_path / "other.duckdb"
    shutil.copy(small_store, other)
    assert cli.main(["reviews", "import", str(out), "--db", str(other)]) == 0
    assert "imported 5 reviews" in capsys.readouterr().out
    assert cli.main(["reviews", "import", str(out), "--db", str(other)]) == 0  # again: replaces, adds nothing
    assert "(5 replaced" in capsys.readouterr().out
    frames = []
    for path in (store_copy, other):
        con = database.connect(path, read_only=True)
        try:
            frames.append(reviews.reviews_frame(con))
        finally:
            con.close()
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert _checksums(store_copy)["reviews"] == _checksums(other)["reviews"]  # times kept to the second


_HEADER = "reviewer,model_id,dataset,image_id,prediction,verdict,note\n"
_GOOD = "alice,efficientnet-lite0,samples,3,7,fine_grained,ok\n"
BAD_IMPORTS = {
    BadInput("review-import-unknown-verdict", "reviews CSV", "verdict 'dog'",
             "row 2 (line 3), field verdict: verdict 'dog' is not a verdict"):
        _HEADER + _GOOD + "alice,efficientnet-lite0,samples,4,7,dog,\n",
    BadInput("review-import-unknown-image", "reviews CSV", "image 1000 of samples (0-999)",
             "row 1 (line 2), field image_id: 1000 is outside 0-999"):
        _HEADER + "alice,efficientnet-lite0,samples,1000,7,fine_grained,\n",
    BadInput("review-import-unknown-dataset", "reviews CSV", "a dataset the store does not hold",
             "field dataset: 'imagenet-v' is not a dataset of this store"):
        _HEADER + "alice,efficientnet-lite0,imagenet-v,3,7,fine_grained,\n",
    BadInput("review-import-empty-reviewer", "reviews CSV", "an empty reviewer", "field reviewer: reviewer='' must be"):
        _HEADER + _GOOD + ",efficientnet-lite0,samples,4,7,fine_grained,\n",
    BadInput("review-import-reviewer-control-char", "reviews CSV", "a reviewer name with an escape character",
             "field reviewer: reviewer 'al\\x1bice' contains the control or invisible character U+001B"):
        _HEADER + "al\x1bice,efficientnet-lite0,samples,4,7,fine_grained,\n",
    BadInput("review-import-missing-columns", "reviews CSV", "no verdict and prediction columns",
             "lacks the column(s) ['prediction', 'verdict']"):
        "reviewer,model_id,dataset,image_id\nalice,efficientnet-lite0,samples,3\n",
    BadInput("review-import-prediction-not-integer", "reviews CSV", "prediction 'seven'",
             "field prediction: 'seven' is not an integer"):
        _HEADER + "alice,efficientnet-lite0,samples,3,seven,fine_grained,\n",
    BadInput("review-import-duplicate-row", "reviews CSV", "the same reviewer and error twice",
             "row 2 (line 3), field reviewer: repeats the review of row 1"):
        _HEADER + _GOOD + _GOOD,
    BadInput("review-import-header-only", "reviews CSV", "a header and no rows", "holds no reviews"):
        _HEADER,
    BadInput("review-import-bad-time", "reviews CSV", "reviewed_at 'yesterday'",
             "field reviewed_at: 'yesterday' is not a time"):
        "reviewer,reviewed_at,model_id,dataset,image_id,prediction,verdict\n"
        "alice,yesterday,efficientnet-lite0,samples,3,7,fine_grained\n",
    BadInput("review-import-wrong-file-name", "reviews CSV", "a file name that is another image's",
             "field file_name: 'n01440764_tench.JPEG' is not image 3 of 'samples'"):
        "reviewer,model_id,dataset,image_id,file_name,prediction,verdict\n"
        "alice,efficientnet-lite0,samples,3,n01440764_tench.JPEG,7,fine_grained\n",
}


@pytest.mark.parametrize("case", cases(*BAD_IMPORTS))
def test_bad_reviews_csv_is_refused_and_the_store_unchanged(case, store_copy, tmp_path, capsys):
    _review(store_copy, _errors(store_copy, 2))  # earlier reviews must survive a refused import
    path = tmp_path / "reviews.csv"
    path.write_text(BAD_IMPORTS[case], encoding="utf-8")
    before = _checksums(store_copy)
    assert cli.main(["reviews", "import", str(path), "--db", str(store_copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and case.message in err[0] and str(path) in err[0], err
    assert _checksums(store_copy) == before


@pytest.mark.parametrize("case", cases(
    BadInput("review-import-not-utf8", "reviews CSV", "Latin-1 bytes in a note", "is not a readable CSV")))
def test_unreadable_reviews_csv_is_refused(case, store_copy, tmp_path, capsys):
    path = tmp_path / "reviews.csv"
    path.write_bytes((_HEADER + "alice,efficientnet-lite0,samples,3,7,fine_grained,caf\xe9\n").encode("latin-1"))
    before = _checksums(store_copy)
    assert cli.main(["reviews", "import", str(path), "--db", str(store_copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and case.message in err[0], err
    assert _checksums(store_copy) == before


def test_export_refuses_to_overwrite_the_store(store_copy, capsys):
    before = _checksums(store_copy)
    assert cli.main(["reviews", "export", str(store_copy), "--force", "--db", str(store_copy)]) == 2
    assert "error: " in capsys.readouterr().err
    assert _checksums(store_copy) == before

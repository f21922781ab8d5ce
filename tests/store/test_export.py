"""Export: the filtered error rows shared by `python -m analysis export` and the dashboard's download."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from analysis import cli
from analysis.knowledge import experts
from analysis.store import database, export, imports
from analysis.store.filters import ErrorFilter


@pytest.fixture(scope="module")
def con(small_store):
    connection = database.connect(small_store, read_only=True)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def everything(con):
    return export.errors_frame(con, ErrorFilter())


def test_one_row_per_mistake(con, everything):
    wrong = con.execute("""SELECT p.model_id, p.image_id FROM predictions p JOIN images i USING (dataset, image_id)
                           WHERE p.prediction <> i.target ORDER BY 1, 2""").fetchall()
    assert list(zip(everything["model_id"], everything["image_id"])) == wrong  # samples: single labels
    assert len(everything) == export.count_errors(con, ErrorFilter()) > 0
    assert list(everything.columns) == list(export.COLUMNS)
    assert not everything["category"].isin(["correct", "not_evaluated"]).any()
    row = everything.iloc[0]
    assert row["file_name"].startswith(row["target_wnid"]) and list(row["labels"]) == [row["target_id"]]
    assert row["top5"][0] == row["prediction_id"] and row["family"] == "cnn"


def test_pages_add_up_to_the_whole(con, everything):
    pages = [export.errors_frame(con, ErrorFilter(), limit=7, offset=o) for o in range(0, len(everything), 7)]
    assert pd.concat(pages, ignore_index=True)[["model_id", "image_id"]].equals(everything[["model_id", "image_id"]])
    assert export.errors_frame(con, ErrorFilter(), limit=5, offset=len(everything)).empty


def _same(frame, expected):
    assert list(zip(frame["model_id"], frame["image_id"])) == list(zip(expected["model_id"], expected["image_id"]))


def test_each_filter_narrows_as_documented(con, everything):
    _same(export.errors_frame(con, ErrorFilter(models=("efficientnet-lite1",))),
          everything[everything["model_id"] == "efficientnet-lite1"])
    category = everything["category"].iloc[0]
    _same(export.errors_frame(con, ErrorFilter(categories=(category,))), everything[everything["category"] == category])
    name = everything["prediction_name"].iloc[0]
    needle = name[1:4].upper()
    hit = everything["target_name"].str.lower().str.contains(needle.lower(), regex=False) | \
        everything["prediction_name"].str.lower().str.contains(needle.lower(), regex=False)
    _same(export.errors_frame(con, ErrorFilter(class_search=needle)), everything[hit])
    _same(export.errors_frame(con, ErrorFilter(groups=("artifact",))), everything[everything["target_group"] == "artifact"])
    _same(export.errors_frame(con, ErrorFilter(dataset="imagenet-val")), everything.iloc[0:0])
    _same(export.errors_frame(con, ErrorFilter(families=("transformer",))), everything.iloc[0:0])
    superclass = next(s for ids in everything["target_superclasses"] for s in ids)
    members = everything["target_superclasses"].map(lambda ids: superclass in list(ids)) | \
        everything["prediction_superclasses"].map(lambda ids: superclass in list(ids))
    _same(export.errors_frame(con, ErrorFilter(superclasses=(superclass,))), everything[members])
    both = everything.groupby(["image_id", "prediction_id"])["model_id"].transform("nunique") >= 2
    assert both.any()
    _same(export.errors_frame(con, ErrorFilter(min_models=2)), everything[both])
    assert (everything["models_making_error"] == everything.groupby(["image_id", "prediction_id"])["model_id"]
            .transform("nunique")).all()


def test_count_matches_the_rows_for_every_filter(con, everything):
    # Without a model or family filter the count sums pair_categories.models; with one it counts predictions.
    superclass = next(s for ids in everything["target_superclasses"] for s in ids)
    filters = [ErrorFilter(), ErrorFilter(min_models=2), ErrorFilter(min_models=3), ErrorFilter(groups=("artifact",)),
               ErrorFilter(categories=(everything["category"].iloc[0],)), ErrorFilter(dataset="samples"),
               ErrorFilter(dataset="imagenet-val"), ErrorFilter(superclasses=(superclass,)),
               ErrorFilter(class_search=everything["prediction_name"].iloc[0][1:4]),
               ErrorFilter(models=("efficientnet-lite1",)), ErrorFilter(families=("cnn",), min_models=2)]
    counts = [export.count_errors(con, flt) for flt in filters]
    assert counts == [len(export.errors_frame(con, flt)) for flt in filters]
    assert counts[0] > counts[1] > 0 and counts[6] == 0


def test_cli_export_writes_the_download_bytes(small_store, con, tmp_path):
    out = tmp_path / "lite1.csv"
    argv = ["export", str(out), "--db", str(small_store), "--model", "efficientnet-lite1", "--min-models", "2"]
    assert cli.main(argv) == 0
    flt = ErrorFilter(models=("efficientnet-lite1",), min_models=2)
    assert out.read_bytes() == export.csv_bytes(con, flt)
    csv = pd.read_csv(io.BytesIO(out.read_bytes()))
    assert len(csv) == export.count_errors(con, flt) > 0
    assert csv["top5"].str.split().map(len).eq(5).all()


def test_bad_arguments_are_named(con):
    with pytest.raises(TypeError, match="flt=.* must be an analysis.store.filters.ErrorFilter"):
        export.errors_frame(con, {"models": ["x"]})
    with pytest.raises(ValueError, match="limit=-1 must be None or an integer >= 0"):
        export.errors_frame(con, ErrorFilter(), limit=-1)
    with pytest.raises(ValueError, match="offset=1.5 must be an integer >= 0"):
        export.errors_frame(con, ErrorFilter(), offset=1.5)


def test_expert_verdicts_join_the_same_mistake(store_copy, tmp_path):
    reviewed = experts.load_expert("vit3b").head(40)
    path = tmp_path / "vit3b.csv"
    reviewed[["file_name", "prediction"]].to_csv(path, index=False)
    imports.import_predictions(path, model_id="vit3b-like", db=store_copy)
    con = database.connect(store_copy, read_only=True)
    try:
        rows = export.errors_frame(con, ErrorFilter(models=("vit3b-like",)))
    finally:
        con.close()
    assert len(rows) > 0
    verdicts = reviewed.set_index("file_name")
    for _, row in rows.iterrows():  # both experts may have reviewed the same mistake: space-joined, by expert
        by_expert = dict(zip(row["expert"].split(), zip(row["expert_category"].split(), row["expert_severity"].split())))
        assert by_expert["vit3b"] == tuple(verdicts.loc[row["file_name"], ["category", "severity"]])

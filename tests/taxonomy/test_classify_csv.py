import pandas as pd
import pytest

from analysis.cli import main
from analysis.taxonomy import categories as tx

DEV_CSV = "/work/shared/reference/paper_common_errors_dev.csv"


@pytest.fixture(scope="module")
def dev_result(tmp_path_factory):
    """The paper's reference rows through `classify-csv --labels given` (no CLIP)."""
    folder = tmp_path_factory.mktemp("dev")
    source = pd.read_csv(DEV_CSV, dtype=str, keep_default_na=False)
    source.rename(columns={"multi_labels": "labels", "category": "paper_category"}).to_csv(folder / "in.csv", index=False)
    assert main(["classify-csv", str(folder / "in.csv"), str(folder / "out.csv"), "--labels", "given"]) == 0
    out = pd.read_csv(folder / "out.csv", dtype=str, keep_default_na=False)
    out["expected"] = out["paper_category"].map(tx.PAPER_NAMES)
    return out


def _rate(df, category):
    rows = df[df["expected"] == category]
    return (rows["category"] == category).mean()


def test_dev_output_keeps_input_and_adds_category_and_reason(dev_result):
    source = pd.read_csv(DEV_CSV, dtype=str, keep_default_na=False)
    assert len(dev_result) == len(source)
    assert (dev_result["file_name"] == source["file_name"]).all() and (dev_result["labels"] == source["multi_labels"]).all()
    assert set(dev_result["category"]) <= set(tx.IDS) - {"fine_grained_oov", "not_evaluated", "correct"}
    assert (dev_result["reason"] != "").all()


# The whole pipeline (classify-csv) on the dev rows. The superclasses were fitted on these very rows, so the
# fine-grained figure here is an in-sample check that classify-csv applies the committed map, not a measure of
# the map: the held-out figures are the cross-validated ones (tests/knowledge/test_superclasses.py).
@pytest.mark.parametrize("category, threshold", [
    ("overlapping_classes", 1.0), ("multi_label", 1.0), ("spurious_correlation", 0.97),
    ("non_prototypical", 0.90), ("model_failure", 0.88), ("fine_grained", 0.98),
])
def test_dev_rows_agree_with_the_paper(dev_result, category, threshold):
    rows = dev_result[dev_result["expected"] == category]
    assert _rate(dev_result, category) >= threshold, (
        f"{category}: {_rate(dev_result, category):.1%} of {len(rows)} rows; came out as "
        f"{rows['category'].value_counts().to_dict()}")


def test_dev_fine_grained_oov_rows_are_not_fine_grained(dev_result):
    rows = dev_result[dev_result["expected"] == "fine_grained_oov"]
    assert (rows["category"] != "fine_grained").mean() >= 0.98


def _csv(tmp_path, text):
    path = tmp_path / "in.csv"
    path.write_text(text)
    return path


def test_malformed_rows_are_all_reported_and_nothing_is_written(tmp_path, capsys):
    path = _csv(tmp_path, "file_name,target,prediction,labels\n"
                          "ILSVRC2012_val_00000001.JPEG,65,1,65\n"
                          "ILSVRC2012_val_00000002.JPEG,1000,1,\n"
                          ",3,1,3\n"
                          "ILSVRC2012_val_00000004.JPEG,3,x,3 4\n"
                          "ILSVRC2012_val_00000005.JPEG,3,2,3 -1\n")
    out = tmp_path / "out.csv"
    assert main(["classify-csv", str(path), str(out), "--labels", "given"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "4 malformed row(s)" in err
    for fragment in ("line 3: target '1000'", "line 4: file_name is empty", "line 5: prediction 'x'", "line 6: labels"):
        assert fragment in err
    assert not out.exists()


def test_many_malformed_rows_are_listed_up_to_twenty(tmp_path, capsys):
    rows = "".join(f"ILSVRC2012_val_{i:08d}.JPEG,1,1001\n" for i in range(1, 31))
    path = _csv(tmp_path, "file_name,target,prediction\n" + rows)
    assert main(["classify-csv", str(path), str(tmp_path / "o.csv"), "--labels", "single"]) == 2
    err = capsys.readouterr().err
    assert "30 malformed" in err and "line 21:" in err and "line 22:" not in err and "and 10 more" in err


def test_real_labels_check_file_and_target(tmp_path, capsys):
    path = _csv(tmp_path, "file_name,target,prediction\nmy_cat.jpg,1,2\nILSVRC2012_val_00000001.JPEG,3,2\n")
    assert main(["classify-csv", str(path), str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "line 2: file_name 'my_cat.jpg'" in err and "line 3: target 3 differs from the validation label 65" in err


def test_missing_column_and_clashing_column(tmp_path, capsys):
    path = _csv(tmp_path, "file_name,target,prediction\nILSVRC2012_val_00000001.JPEG,65,2\n")
    assert main(["classify-csv", str(path), str(tmp_path / "o.csv"), "--labels", "given"]) == 2
    assert "missing column(s) labels" in capsys.readouterr().err
    path = _csv(tmp_path, "file_name,target,prediction,category\nILSVRC2012_val_00000001.JPEG,65,2,x\n")
    assert main(["classify-csv", str(path), str(tmp_path / "o.csv")]) == 2
    assert "already has column(s) category" in capsys.readouterr().err


def test_real_and_single_modes_keep_extra_columns_as_they_are(tmp_path, capsys):
    path = _csv(tmp_path, "model,file_name,target,prediction,note\n"
                          "m1,ILSVRC2012_val_00000002.JPEG,970,970,007\n"
                          "m2,ILSVRC2012_val_00000002.JPEG,970,795,\n")
    for mode in ("real", "single"):
        out = tmp_path / f"{mode}.csv"
        assert main(["classify-csv", str(path), str(out), "--labels", mode]) == 0
        df = pd.read_csv(out, dtype=str, keep_default_na=False)
        assert list(df.columns) == ["model", "file_name", "target", "prediction", "note", "category", "reason"]
        assert list(df["note"]) == ["007", ""] and df.loc[0, "category"] == "correct"
        # ReaL labels of this image are (970, 795): 795 is a label with ReaL, an error with the target alone.
        assert df.loc[1, "category"] == ("multi_label" if mode == "real" else "spurious_correlation")
    assert "fine-grained OOV check: off" in capsys.readouterr().err


def test_missing_clip_checkpoint_is_a_clear_error(tmp_path, capsys):
    path = _csv(tmp_path, "file_name,target,prediction\nILSVRC2012_val_00000002.JPEG,970,795\n")
    out = tmp_path / "o.csv"
    assert main(["classify-csv", str(path), str(out), "--clip", str(tmp_path / "none.pt")]) == 2
    err = capsys.readouterr().err
    assert "none.pt" in err and "does not exist" in err and not out.exists()


def test_superclasses_flag_decides_fine_grained(tmp_path, monkeypatch):
    """The same rows with the paper-format file given by --superclasses (or the environment) and without it."""
    from analysis import paths
    from analysis.knowledge import superclasses

    monkeypatch.delenv(paths.SUPERCLASSES_ENV, raising=False)
    monkeypatch.setenv(paths.EXTERNAL_ENV, str(tmp_path / "none"))
    # golden retriever -> vizsla, and tench -> Granny Smith: joined only by the file below
    path = _csv(tmp_path, "file_name,target,prediction,labels\na.jpg,207,211,207\nb.jpg,0,948,0\n")
    paper = tmp_path / "paper.json"
    paper.write_text('{"gundog": [["retriever"], ["pointer", "dog"]]}\n{"odd": [["tench"], ["Granny_Smith"]]}\n')
    try:
        assert main(["classify-csv", str(path), str(tmp_path / "a.csv"), "--labels", "given"]) == 0
        default = pd.read_csv(tmp_path / "a.csv")
        assert main(["classify-csv", str(path), str(tmp_path / "b.csv"), "--labels", "given",
                     "--superclasses", str(paper)]) == 0
        given = pd.read_csv(tmp_path / "b.csv")
        monkeypatch.setenv(paths.SUPERCLASSES_ENV, str(paper))
        superclasses.use(None)
        assert main(["classify-csv", str(path), str(tmp_path / "c.csv"), "--labels", "given"]) == 0
        from_env = pd.read_csv(tmp_path / "c.csv")
    finally:
        superclasses.use(None)
    assert list(given["category"]) == ["fine_grained", "fine_grained"]
    assert list(given["reason"]) == ["superclass:gundog@label:207", "superclass:odd@label:0"]
    assert list(from_env["category"]) == list(given["category"])
    assert default.loc[1, "category"] != "fine_grained"  # tench and Granny Smith share no committed superclass

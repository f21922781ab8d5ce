"""Export: the filtered error rows shared by `python -m analysis export` and the dashboard's download."""

from __future__ import annotations

import errno
import io
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import cli
from analysis.errors import UserError
from analysis.knowledge import experts
from analysis.store import database, export, imports
from analysis.store.filters import ErrorFilter
from tests.bad_inputs import BadInput, cases

ROOT = Path(__file__).resolve().parents[2]


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
    imports.import_predictions(path, model_id="vit3b-like", db=store_copy, partial=True)
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


# --- the export's output file: never the store, never a DuckDB file, never half-written --------------------------

def _checksums(store):
    con = database.connect(store, read_only=True)  # also proves the store still opens
    try:
        return database.table_checksums(con)
    finally:
        con.close()


def _tree(folder):
    """Every entry under `folder` (links not followed): kind and, for regular files, the bytes."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file" if path.is_file() else "other"
        entries[str(path.relative_to(folder))] = (kind, path.read_bytes() if kind == "file" else None)
    return entries


def _csv(path):
    path.write_text("an earlier export,keep me\n")
    return path


def _store_itself(store, tmp_path, monkeypatch):
    return store, []


def _store_symlink(store, tmp_path, monkeypatch):
    (tmp_path / "link.csv").symlink_to(store)
    return tmp_path / "link.csv", ["--force"]


def _store_symlinked_dir(store, tmp_path, monkeypatch):
    (tmp_path / "alias").symlink_to(store.parent, target_is_directory=True)
    return tmp_path / "alias" / store.name, ["--force"]


def _store_hardlink(store, tmp_path, monkeypatch):
    (tmp_path / "hard.csv").hardlink_to(store)
    return tmp_path / "hard.csv", ["--force"]


def _store_forced(store, tmp_path, monkeypatch):
    return store, ["--force"]


def _store_wal(store, tmp_path, monkeypatch):
    return store.with_name(store.name + ".wal"), []


def _other_duckdb(store, tmp_path, monkeypatch):
    other = tmp_path / "other" / "errors.csv"  # a DuckDB file whatever its name
    other.parent.mkdir()
    shutil.copy(store, other)
    return other, ["--force"]


def _duckdb_suffix(store, tmp_path, monkeypatch):
    return tmp_path / "errors.DuckDB", []


def _existing(store, tmp_path, monkeypatch):
    return _csv(tmp_path / "errors.csv"), []


def _directory(store, tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    _csv(tmp_path / "out" / "errors.csv")
    return tmp_path / "out", ["--force"]


def _socket(store, tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX)
    monkeypatch.chdir(tmp_path)  # a short relative name: socket paths are limited to ~100 bytes
    sock.bind("s.csv")
    return Path("s.csv"), ["--force"]


def _read_only(folder, monkeypatch):
    folder.chmod(0o555)
    if os.geteuid() == 0:  # root ignores the mode bits: make the OS refuse as it would for anyone else
        real = os.open

        def refused(path, flags, *args, **kwargs):
            if Path(path).resolve().parent == folder.resolve() and flags & os.O_CREAT:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", refused)


def _read_only_dir(store, tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    output = _csv(folder / "errors.csv")
    _read_only(folder, monkeypatch)
    return output, ["--force"]


def _read_only_dir_new(store, tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    _read_only(folder, monkeypatch)
    return folder / "errors.csv", []


def _full_disk(monkeypatch):
    real, calls = os.write, []

    def full(fd, data):
        if fd <= 2:
            return real(fd, data)
        calls.append(fd)
        if len(calls) == 1:  # a partial first write, then the disk is full
            return real(fd, bytes(data)[:10])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)


def _disk_full(store, tmp_path, monkeypatch):
    output = _csv(tmp_path / "errors.csv")
    _full_disk(monkeypatch)
    return output, ["--force"]


def _disk_full_new(store, tmp_path, monkeypatch):
    _full_disk(monkeypatch)
    return tmp_path / "new" / "errors.csv", []


_BAD_OUTPUTS = [
    (BadInput("export-store-itself", "export output", "the store's own path", "is the store itself"), _store_itself),
    (BadInput("export-store-forced", "export output", "the store's own path, with --force", "is the store itself"),
     _store_forced),
    (BadInput("export-store-symlink", "export output", "a symlink to the store, with --force", "is the store itself"),
     _store_symlink),
    (BadInput("export-store-symlinked-dir", "export output", "the store reached through a symlinked folder",
              "is the store itself"), _store_symlinked_dir),
    (BadInput("export-store-hardlink", "export output", "a hard link to the store, with --force",
              "is the store itself"), _store_hardlink),
    (BadInput("export-store-wal", "export output", "the store's write-ahead log (.wal)", "has a DuckDB file name"),
     _store_wal),
    (BadInput("export-other-duckdb", "export output", "another DuckDB database named .csv, with --force",
              "is a DuckDB database"), _other_duckdb),
    (BadInput("export-duckdb-suffix", "export output", "a new file named .duckdb", "has a DuckDB file name"),
     _duckdb_suffix),
    (BadInput("export-existing-output", "export output", "an existing file, without --force",
              "already exists; pass --force"), _existing),
    (BadInput("export-directory", "export output", "a directory, with --force", "is a directory"), _directory),
    (BadInput("export-socket", "export output", "a socket (not a regular file), with --force",
              "is not a regular file"), _socket),
    (BadInput("export-read-only-dir", "export output", "an existing file in a read-only folder, with --force",
              "Permission denied"), _read_only_dir),
    (BadInput("export-read-only-dir-new", "export output", "a new file in a read-only folder", "Permission denied"),
     _read_only_dir_new),
    (BadInput("export-disk-full", "export output", "an existing file on a full disk, with --force",
              "No space left on device"), _disk_full),
    (BadInput("export-disk-full-new", "export output", "a new file on a full disk", "No space left on device"),
     _disk_full_new),
]
_SETUPS = {case.id: setup for case, setup in _BAD_OUTPUTS}


@pytest.mark.parametrize("case", cases(*(case for case, _ in _BAD_OUTPUTS)))
def test_bad_output_is_refused_and_nothing_is_touched(case, store_copy, tmp_path, capsys, monkeypatch):
    before_store = _checksums(store_copy)
    output, extra = _SETUPS[case.id](store_copy, tmp_path, monkeypatch)
    before = _tree(tmp_path)
    assert cli.main(["export", str(output), "--db", str(store_copy), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert case.message in err and str(output) in err
    monkeypatch.undo()  # os.open and os.write are real again
    if (tmp_path / "locked").exists():
        (tmp_path / "locked").chmod(0o755)
    assert _tree(tmp_path) == before  # no temporary file left, the existing output untouched
    assert _checksums(store_copy) == before_store


def test_force_replaces_an_existing_output_with_the_export(small_store, con, tmp_path, capsys):
    output = _csv(tmp_path / "errors.csv")
    output.chmod(0o640)
    assert cli.main(["export", str(output), "--db", str(small_store), "--force"]) == 0
    assert output.read_bytes() == export.csv_bytes(con, ErrorFilter())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["errors.csv"]  # the temporary file was renamed
    assert f"wrote {export.count_errors(con, ErrorFilter())} errors to {output}" in capsys.readouterr().out


def test_a_symlinked_output_is_written_at_its_target(small_store, con, tmp_path):
    (tmp_path / "real").mkdir()
    target = _csv(tmp_path / "real" / "errors.csv")
    (tmp_path / "link.csv").symlink_to(target)
    assert cli.main(["export", str(tmp_path / "link.csv"), "--db", str(small_store), "--force"]) == 0
    assert (tmp_path / "link.csv").is_symlink() and target.read_bytes() == export.csv_bytes(con, ErrorFilter())


def test_check_output_names_the_problem_without_writing(small_store, tmp_path):
    assert export.check_output(tmp_path / "a" / "new.csv", store=small_store) == (tmp_path / "a" / "new.csv")
    assert not (tmp_path / "a").exists()
    with pytest.raises(UserError, match="is the store itself"):
        export.check_output(small_store, store=small_store, force=True)
    with pytest.raises(TypeError, match="output=3 must be a path"):
        export.check_output(3, store=small_store)


# --- CSV text: today's bytes for normal rows; NULL lists (a CSV import without top5) are empty cells ------------

def test_to_csv_keeps_its_format():
    frame = pd.DataFrame({
        "model_id": ["m,1", 'q"2'], "image_id": np.array([4, 13], dtype=np.int32),
        "labels": [np.array([4, 7], dtype=np.int16), []],
        "confidence": np.array([0.383025479, np.nan], dtype=np.float32),
        "top5": [[842, 775, 890, 801, 977], None], "target_superclasses": [["a_b", "c"], np.array([], dtype=object)],
        "expert": [None, "vit3b greedy"], "models_making_error": np.array([2, 1], dtype=np.int32)})
    golden = ('model_id,image_id,labels,confidence,top5,target_superclasses,expert,models_making_error\n'
              '"m,1",4,4 7,0.383025,842 775 890 801 977,a_b c,,2\n"q""2",13,,,,,vit3b greedy,1\n')  # before the NA fix
    assert export.to_csv(frame) == golden
    frame["top5"] = pd.array([[842, 775, 890, 801, 977], pd.NA], dtype=object)
    frame["labels"] = [np.array([4, 7], dtype=np.int16), float("nan")]
    assert export.to_csv(frame) == golden


def _import_without_top5(store, tmp_path):
    source = tmp_path / "preds.csv"
    source.write_text("file_name,prediction\nILSVRC2012_val_00000002.JPEG,2\nILSVRC2012_val_00000004.JPEG,1\n")
    assert cli.main(["import-predictions", str(source), "--model-id", "no-top5", "--format", "csv", "--partial",
                     "--db", str(store)]) == 0


def test_export_after_a_csv_import_without_top5(store_copy, tmp_path, capsys):
    _import_without_top5(store_copy, tmp_path)
    output = tmp_path / "all.csv"
    assert cli.main(["export", str(output), "--db", str(store_copy)]) == 0
    assert "wrote" in capsys.readouterr().out
    rows = pd.read_csv(output, keep_default_na=False, dtype=str)
    imported = rows[rows["model_id"] == "no-top5"]
    assert len(imported) == 2 and (imported["top5"] == "").all() and (imported["confidence"] == "").all()
    assert (rows[rows["model_id"] != "no-top5"]["top5"].str.split().map(len) == 5).all()
    con = database.connect(store_copy, read_only=True)
    try:
        assert output.read_bytes() == export.csv_bytes(con, ErrorFilter())
    finally:
        con.close()


@pytest.mark.parametrize("case", cases(BadInput(
    "export-store-from-env", "export output", "the store named by IMAGENET_ERRORS_DB, as a relative path",
    "is the store itself")))
def test_the_issue_command_leaves_the_store_readable(case, store_copy):
    before = _checksums(store_copy)
    env = {**os.environ, "IMAGENET_ERRORS_DB": store_copy.name, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "analysis", "export", store_copy.name], cwd=store_copy.parent,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and case.message in done.stderr and store_copy.name in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert _checksums(store_copy) == before

"""Browse's "Download all" button serves the bytes `python -m analysis export` writes, also for NULL top-5 lists."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from analysis import cli
from analysis.store import database, export
from analysis.store.filters import ErrorFilter
from tests.bad_inputs import BadInput, cases

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@pytest.fixture
def no_top5_store(store_copy, tmp_path, monkeypatch) -> Path:
    """The small store plus a CSV import without a top5 column (its rows have NULL top5 and confidence)."""
    source = tmp_path / "preds.csv"
    source.write_text("file_name,prediction\nILSVRC2012_val_00000002.JPEG,2\nILSVRC2012_val_00000004.JPEG,1\n")
    assert cli.main(["import-predictions", str(source), "--model-id", "no-top5", "--format", "csv", "--partial",
                     "--db", str(store_copy)]) == 0
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(store_copy))
    return store_copy


@pytest.fixture
def deferred(monkeypatch) -> dict:
    """Streamlit's deferred download callables by file name, with the manager that would run them on a click."""
    seen: dict = {}
    original = MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        file_id = original(self, data_callable, mimetype, coordinates, file_name, **kwargs)
        seen[file_name] = (self, file_id, data_callable)
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return seen


def _browse(models: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update({"dataset": "imagenet-val", "models": models})
    at.run()
    at.switch_page("app_pages/browse.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_download_all_after_a_csv_import_without_top5(no_top5_store, deferred, tmp_path, monkeypatch):
    monkeypatch.setenv(export.DOWNLOADS_ENV, str(tmp_path / "downloads"))
    at = _browse("no-top5")
    assert any("**2** errors match" in m.value for m in at.markdown)
    assert not at.get("download_button")  # nothing built before the user asks
    at.button(key="br_csv_build").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.download_button(key="br_csv").label == "Download all 2 rows (CSV)"
    built = list((tmp_path / "downloads").iterdir())
    assert len(built) == 1 and built[0].name.startswith("errors-")  # one file on disk, no temporary left

    manager, file_id, data = deferred["errors.csv"]
    served = data()  # what a click on the button sends: the file's bytes, read at click time
    manager.execute_deferred(file_id)  # Streamlit's own click path: raises if the callable fails
    flt = ErrorFilter(dataset="imagenet-val", models=("no-top5",))
    with database.connect(no_top5_store, read_only=True) as con:
        assert served == export.csv_bytes(con, flt)  # the in-memory pandas path
    output = tmp_path / "cli.csv"
    assert cli.main(["export", str(output), "--db", str(no_top5_store), "--dataset", "imagenet-val",
                     "--model", "no-top5"]) == 0
    assert output.read_bytes() == served
    rows = pd.read_csv(output, keep_default_na=False, dtype=str)
    assert len(rows) == 2 and (rows["top5"] == "").all() and (rows["confidence"] == "").all()
    at.run()  # a rerun finds the built file: the download button straight away
    assert at.download_button(key="br_csv").label == "Download all 2 rows (CSV)"


@pytest.mark.parametrize("case", cases(BadInput(
    "stream-downloads-not-a-folder", "dashboard download folder", "IMAGENET_ERRORS_DOWNLOADS names a path inside a "
    "regular file", "cannot create the downloads folder", store="unchanged")))
def test_a_failed_build_shows_our_message(case, store_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGENET_ERRORS_DB", str(store_copy))
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv(export.DOWNLOADS_ENV, str(tmp_path / "file" / "downloads"))
    with database.connect(store_copy, read_only=True) as con:
        before = database.table_checksums(con)
    at = _browse("efficientnet-lite0")
    at.button(key="br_csv_build").click().run()
    assert not at.exception
    assert len(at.error) == 1 and case.message in at.error[0].value and "Not a directory" in at.error[0].value
    assert not at.get("download_button")
    with database.connect(store_copy, read_only=True) as con:
        assert database.table_checksums(con) == before

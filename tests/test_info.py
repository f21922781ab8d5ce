"""`python -m analysis info`: what is present, and the command for what is missing."""

import json

import pytest

from analysis import paths
from analysis.cli import main
from tests.store.test_database import assert_untouched, damage_store, holding


def test_info_json_lists_every_source_with_a_fix_for_the_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.EXTERNAL_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv(paths.DB_ENV, str(tmp_path / "none.duckdb"))
    monkeypatch.delenv(paths.CLIP_ENV, raising=False)
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    items = {i["name"]: i for section in ("packaged", "committed", "fetched", "optional") for i in report[section]}
    assert items["classes"]["present"] and items["wordnet_subgraph"]["present"]
    assert not items["expert_vit3b"]["present"]
    assert items["expert_vit3b"]["fix"] == "python -m analysis fetch --only expert_vit3b"
    assert not items["store"]["present"] and items["store"]["fix"] == "python -m analysis build"
    assert not items["clip_checkpoint"]["present"] and "IMAGENET_ERRORS_CLIP" in items["clip_checkpoint"]["fix"]


def test_info_reports_fetched_sources_and_a_real_store(small_store, monkeypatch, capsys):
    monkeypatch.setenv(paths.DB_ENV, str(small_store))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "ok sample_images" in out and "1000/1000 files" in out
    assert "2 models, classified with the superclasses data/superclasses.json (project format, sha256 " in out
    assert "ok superclasses         data/superclasses.json (project format" in out and "in use" in out


def test_info_reports_a_bad_superclass_file_without_a_traceback(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops\n")
    monkeypatch.setenv(paths.SUPERCLASSES_ENV, str(bad))
    monkeypatch.setenv(paths.DB_ENV, str(tmp_path / "none.duckdb"))
    assert main(["info", "--json"]) == 0
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)["committed"]}
    assert not items["superclasses"]["present"] and "line 1" in items["superclasses"]["detail"]
    assert paths.SUPERCLASSES_ENV in items["superclasses"]["fix"]


@pytest.mark.parametrize("how", ["truncated", "damaged-block", "zero-filled"])
def test_info_reports_a_damaged_store_as_unreadable_with_the_rebuild_advice(how, store_copy, monkeypatch, capsys):
    data = damage_store(store_copy, how)
    monkeypatch.setenv(paths.DB_ENV, str(store_copy))
    assert main(["info", "--json"]) == 0
    store = {i["name"]: i for i in json.loads(capsys.readouterr().out)["optional"]}["store"]
    assert not store["present"] and store["detail"].startswith(f"{store_copy}: unreadable, ")
    assert f"python -m analysis build --rebuild --db {store_copy}" in store["fix"] and ".corrupt" in store["fix"]
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "ok store" not in out and "-- store" in out and "Traceback" not in out
    assert_untouched(store_copy, data)


def test_info_says_who_holds_a_locked_store(store_copy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.DB_ENV, str(store_copy))
    with holding(store_copy, "write", tmp_path) as holder:
        assert main(["info", "--json"]) == 0
    store = {i["name"]: i for i in json.loads(capsys.readouterr().out)["optional"]}["store"]
    assert not store["present"] and f"PID {holder.pid}" in store["fix"] and "which is writing to it" in store["fix"]

"""Fetch: verified copies are skipped, and every failure names the file and leaves nothing behind."""

import hashlib
import shutil
from pathlib import Path

import pytest

from analysis import paths
from analysis.cli import main
from analysis.knowledge import fetch

MIRROR = paths.default_mirror()
needs_mirror = pytest.mark.skipif(MIRROR is None, reason="no local mirror (../shared/mirror or IMAGENET_ERRORS_MIRROR)")


def _expert_file() -> fetch.ExternalFile:
    return fetch.files_of("expert_vit3b")[0]


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_registry_has_every_source_with_pins_and_licences():
    files = fetch.registry()
    assert set(fetch.source_names(files)) == {
        "expert_vit3b", "expert_greedysoups", "class_confusions", "zoo_models", "zoo_stats", "sample_images"}
    assert sum(f.source == "sample_images" for f in files) == 1000
    assert sum(f.source == "zoo_stats" for f in files) == 8
    for f in files:
        assert len(f.commit) == 40 and len(f.sha256) == 64 and f.licence
        assert f.url.startswith(f"https://raw.githubusercontent.com/{f.repo}/{f.commit}/")


def test_unknown_source_names_the_known_ones():
    with pytest.raises(ValueError, match="expert_vit3b"):
        fetch.files_of("imagenet-train")


@needs_mirror
def test_fetch_from_mirror_verifies_then_skips(tmp_path):
    file = _expert_file()
    assert fetch.fetch_file(file, mirror=MIRROR, root=tmp_path) is True
    assert hashlib.sha256(file.local_path(tmp_path).read_bytes()).hexdigest() == file.sha256
    assert fetch.fetch_file(file, mirror=MIRROR, root=tmp_path) is False
    assert _leftovers(tmp_path) == [file.local_path(tmp_path)]


@needs_mirror
def test_checksum_mismatch_names_file_and_leaves_nothing(tmp_path):
    file = _expert_file()
    bad_mirror = tmp_path / "mirror"
    target = file.mirror_path(bad_mirror)
    target.parent.mkdir(parents=True)
    shutil.copy(file.mirror_path(MIRROR), target)
    with open(target, "ab") as handle:
        handle.write(b" ")
    root = tmp_path / "external"
    with pytest.raises(fetch.FetchError, match=r"vit3b_mistakes\.json.*sha256 mismatch"):
        fetch.fetch_file(file, mirror=bad_mirror, root=root)
    assert _leftovers(root) == []


@needs_mirror
def test_damaged_existing_copy_is_replaced(tmp_path):
    file = _expert_file()
    local = file.local_path(tmp_path)
    local.parent.mkdir(parents=True)
    local.write_bytes(b"{}")
    assert fetch.fetch_file(file, mirror=MIRROR, root=tmp_path) is True
    assert fetch.is_verified(file, tmp_path)


def test_missing_mirror_file_names_it(tmp_path):
    (tmp_path / "mirror").mkdir()
    with pytest.raises(fetch.FetchError, match=r"vit3b_mistakes\.json.*not in the mirror"):
        fetch.fetch_file(_expert_file(), mirror=tmp_path / "mirror", root=tmp_path / "external")
    assert _leftovers(tmp_path / "external") == []


def test_interrupted_write_leaves_no_partial_file(tmp_path):
    def half_then_fail(file, handle):
        handle.write(b"x" * 100)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch.fetch_file(_expert_file(), root=tmp_path, opener=half_then_fail)
    assert _leftovers(tmp_path) == []


def test_network_failure_names_file_and_url(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "URL_TEMPLATE", "http://127.0.0.1:9/{repo}/{commit}/{path}")
    with pytest.raises(fetch.FetchError, match=r"vit3b_mistakes\.json.*download from http://127\.0\.0\.1:9/"):
        fetch.fetch_file(_expert_file(), root=tmp_path)
    assert _leftovers(tmp_path) == []


def test_cli_fetch_fails_non_zero_with_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.EXTERNAL_ENV, str(tmp_path / "external"))
    (tmp_path / "empty").mkdir()
    assert main(["fetch", "--only", "zoo_models", "--mirror", str(tmp_path / "empty")]) == 2
    assert "models_summary.csv" in capsys.readouterr().err
    assert _leftovers(tmp_path / "external") == []


@needs_mirror
def test_cli_fetch_one_source(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(paths.EXTERNAL_ENV, str(tmp_path))
    assert main(["fetch", "--only", "zoo_stats"]) == 0
    assert "8 fetched" in capsys.readouterr().out
    assert main(["fetch", "--only", "zoo_stats"]) == 0
    assert "8 already verified" in capsys.readouterr().out

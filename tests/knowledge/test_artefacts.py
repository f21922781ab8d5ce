"""The paper's artefacts archive: sha256 verification, safe extraction of superclasses.json, and the new default."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from analysis import paths
from analysis.cli import main
from analysis.knowledge import artefacts, superclasses
from analysis.knowledge.fetch import sha256_of

PAPER_SUPERCLASSES = b'{"retriever": [["retriever"]]}\n{"pointing_dog": [["pointer", "dog"]]}\n'


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Extraction goes to a temporary data/external; the committed definitions are active before and after."""
    monkeypatch.setenv(paths.EXTERNAL_ENV, str(tmp_path / "external"))
    monkeypatch.delenv(paths.SUPERCLASSES_ENV, raising=False)
    superclasses.use(None)
    yield
    superclasses.use(None)


def _archive(path: Path, members: dict[str, bytes], *, links: dict[str, str] | None = None) -> Path:
    """A tar.gz laid out like the paper's artefacts (artefacts/..., imagenet/<model>/...)."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def _good(tmp_path) -> Path:
    return _archive(tmp_path / "artefacts.tar.gz", {
        "artefacts/imagenet/some--model/metadata.json": b'{"model_id": "some/model"}',
        "artefacts/superclasses.json": PAPER_SUPERCLASSES,
    })


def test_extracts_the_paper_superclasses_and_makes_them_the_default(tmp_path):
    archive = _good(tmp_path)
    target = artefacts.extract_superclasses(archive, expected_sha256=sha256_of(archive),
                                            progress=False)
    assert target == paths.paper_superclasses() and target.read_bytes() == PAPER_SUPERCLASSES
    provenance = json.loads(target.with_name("SOURCE.json").read_text())
    assert provenance["member"] == "artefacts/superclasses.json"
    assert superclasses.source() == target and superclasses.active().format == "paper"
    assert [d.id for d in superclasses.definitions()] == ["retriever", "pointing_dog"]
    assert not list(target.parent.glob(".*tmp"))


def test_the_cli_refuses_an_archive_that_is_not_the_papers(tmp_path, capsys):
    archive = _good(tmp_path)  # same layout, but not the pinned bytes
    assert main(["fetch", "--artefacts", str(archive)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar, one line says why
    assert last.startswith(f"error: archive {archive} has sha256 ")
    assert artefacts.ARTEFACTS_SHA256 in last and "nothing was extracted" in last
    assert not paths.paper_superclasses().exists() and superclasses.source() == paths.SUPERCLASSES_JSON
    assert main(["fetch", "--artefacts", str(tmp_path / "absent.tar.gz")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("members, links, message", [
    ({"../superclasses.json": PAPER_SUPERCLASSES}, None, "unsafe path"),
    ({"/etc/superclasses.json": PAPER_SUPERCLASSES}, None, "unsafe path"),
    ({"artefacts/readme.txt": b"x"}, {"artefacts/superclasses.json": "/etc/passwd"}, "not a regular file"),
    ({"artefacts/readme.txt": b"x"}, None, "has no superclasses.json"),
    ({"artefacts/superclasses.json": b'{"dog": 3}\n'}, None, "not a readable superclass file"),
])
def test_unsafe_or_wrong_members_are_refused_and_nothing_is_written(tmp_path, members, links, message):
    archive = _archive(tmp_path / "artefacts.tar.gz", members, links=links)
    with pytest.raises(artefacts.ArchiveError, match=message):
        artefacts.extract_superclasses(archive, expected_sha256=sha256_of(archive),
                                       progress=False)
    assert not paths.paper_superclasses().parent.exists() or not any(paths.paper_superclasses().parent.iterdir())


def test_a_damaged_archive_is_named(tmp_path):
    archive = tmp_path / "artefacts.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(artefacts.ArchiveError, match=f"{archive}.*cannot be read as a tar archive"):
        artefacts.extract_superclasses(archive, expected_sha256=sha256_of(archive),
                                       progress=False)


def test_safe_name_keeps_members_inside():
    assert str(artefacts.safe_name("artefacts/imagenet/a--b/preds.npz")) == "artefacts/imagenet/a--b/preds.npz"
    for bad in ("../x", "a/../../x", "/abs/x", "C:/x"):
        with pytest.raises(artefacts.ArchiveError, match="unsafe path"):
            artefacts.safe_name(bad)

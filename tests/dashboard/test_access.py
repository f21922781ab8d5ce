"""dashboard.access: the read-only switch and the folders the Run page may read (no store, no Streamlit run)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analysis import paths
from analysis.errors import UserError
from dashboard import access


@pytest.fixture
def tree(tmp_path) -> dict[str, Path]:
    """root/ (allowed) with a sub-folder, a file, a symlink out, a symlink in, a loop; outside/ beside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub" / "n01440764").mkdir(parents=True)
    (outside / "n01440764").mkdir(parents=True)
    (root / "file.txt").write_text("not a folder")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "in").symlink_to(root / "sub", target_is_directory=True)
    (root / "loop").symlink_to(root / "loop")
    return {"tmp": tmp_path, "root": root, "outside": outside}


@pytest.mark.parametrize("text, expected", [
    ("{root}", "{root}"),
    ("{root}/sub", "{root}/sub"),
    ("{root}/sub/", "{root}/sub"),
    ("{root}/sub/../sub/n01440764", "{root}/sub/n01440764"),
    ("{root}/in", "{root}/sub"),  # a symlink that stays inside the root
])
def test_folders_under_a_root_are_allowed_and_resolved(tree, text, expected):
    folder = access.allowed_folder(text.format(**tree), [tree["root"]])
    assert folder == Path(expected.format(**tree)).resolve()


def test_a_relative_folder_is_taken_from_the_project_folder():
    assert access.allowed_folder("data/external", [paths.DATA_DIR]) == (paths.DATA_DIR / "external").resolve()
    with pytest.raises(UserError, match="not under an allowed folder"):
        access.allowed_folder("data/../analysis", [paths.DATA_DIR])


def test_a_root_given_through_a_symlink_still_holds_its_folders(tree):
    link = tree["tmp"] / "root-link"
    link.symlink_to(tree["root"], target_is_directory=True)
    assert access.allowed_folder(f"{tree['root']}/sub", [link]) == (tree["root"] / "sub").resolve()


REFUSED = ["{tmp}/missing", "{root}/missing", "{root}/file.txt", "/etc", "{root}/../outside", "{root}/out",
           "{root}/out/n01440764", "{root}/loop", "{root}/a\x00b", "{root}/" + "a" * 5000, "", "~", "/"]


def test_every_refusal_reads_the_same_whatever_is_there(tree):
    """A missing path, a file, /etc, `..`, a symlink out or a loop: one message, naming only the text as given."""
    messages = set()
    for text in REFUSED:
        given = text.format(**tree)
        with pytest.raises(UserError) as refused:
            access.allowed_folder(given, [tree["root"]])
        message = str(refused.value)
        assert "not under an allowed folder" in message and "\n" not in message
        assert str(tree["outside"]) not in message.replace(repr(given), "")  # a symlink's target is never named
        messages.add(message.replace(repr(given), "<text>"))
    assert len(messages) == 1, messages


def test_image_roots_come_from_data_imagenet_dir_and_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.IMAGENET_ENV, raising=False)
    monkeypatch.delenv(paths.IMAGE_ROOTS_ENV, raising=False)
    assert paths.image_roots() == [paths.DATA_DIR]
    monkeypatch.setenv(paths.IMAGENET_ENV, str(tmp_path / "val"))
    monkeypatch.setenv(paths.IMAGE_ROOTS_ENV, os.pathsep.join([str(tmp_path / "a"), "", " ", str(tmp_path / "b")]))
    assert paths.image_roots() == [paths.DATA_DIR, tmp_path / "val", tmp_path / "a", tmp_path / "b"]
    (tmp_path / "b" / "x").mkdir(parents=True)
    assert access.allowed_folder(str(tmp_path / "b" / "x")) == (tmp_path / "b" / "x").resolve()
    with pytest.raises(UserError, match="not under an allowed folder"):
        access.allowed_folder(str(tmp_path))


@pytest.mark.parametrize("value, argv, expected", [
    (None, [], False), ("", [], False), ("0", [], False), ("false", [], False), ("No", [], False),
    ("off", [], False), ("1", [], True), ("true", [], True), ("yes", [], True),
    ("ture", [], True),  # a typo fails closed: read-only
    (None, ["--read-only"], True), ("0", ["--read-only"], True), (None, ["--readonly"], True),
    (None, ["--read"], False),
])
def test_read_only_from_the_environment_or_the_flag(monkeypatch, value, argv, expected):
    if value is None:
        monkeypatch.delenv(access.READONLY_ENV, raising=False)
    else:
        monkeypatch.setenv(access.READONLY_ENV, value)
    assert access.read_only(argv) is expected

"""What the dashboard may do on this server: read-only mode, and the folders the Run page may read images under."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis import paths
from analysis.errors import UserError

READONLY_ENV = "IMAGENET_ERRORS_READONLY"
READONLY_FLAGS = ("--read-only", "--readonly")
_OFF = ("", "0", "false", "no", "off")


def read_only(argv: Sequence[str] | None = None) -> bool:
    """True when `IMAGENET_ERRORS_READONLY` is set (to anything but 0/false/no/off) or the app got `--read-only`."""
    args = sys.argv[1:] if argv is None else argv
    return os.environ.get(READONLY_ENV, "").strip().lower() not in _OFF or any(flag in args for flag in READONLY_FLAGS)


def allowed_folder(text: str, roots: Sequence[Path] | None = None) -> Path:
    """The resolved folder `text` names, when it is an existing folder under one of `roots` (default: image_roots()).

    A relative `text` is taken from the project folder. Every refusal has the same message (naming only `text` as
    given and the roots), so it does not tell whether the path exists, is a file, or where a symlink leads.
    """
    roots = paths.image_roots() if roots is None else list(roots)
    refused = UserError(
        f"Image folder {text!r} is not under an allowed folder: the Run page reads only existing folders under "
        f"{', '.join(str(r) for r in roots)} (add one with {paths.IMAGE_ROOTS_ENV}=dir1:dir2 before starting the "
        "dashboard).")
    try:
        folder = (paths.ROOT / Path(text).expanduser()).resolve()
        if any(folder.is_relative_to(Path(root).expanduser().resolve()) for root in roots) and folder.is_dir():
            return folder
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, a symlink loop: refused all the same
        pass
    raise refused

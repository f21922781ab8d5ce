"""The paper's artefacts archive (`artefacts.tar.gz` from the paper's repository README): sha256 verification and
safe extraction of the members the project reads (today: the authors' `superclasses.json`).

The archive is large and is read as a stream: one pass to verify the sha256, one pass to find a member. A member
is only ever written under `data/external/paper/`, under its own base name, after its path was checked (no
absolute paths, no `..`, regular files only) and its content was validated; the write is atomic.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from analysis import paths
from analysis.errors import UserError
from analysis.knowledge.fetch import sha256_of

ARTEFACTS_SHA256 = "efd9b00879fc48c12494cde15477040ed04a1d50b815aec15d33985ffb10adf1"
MAX_MEMBER_BYTES = 64 << 20  # a definition file is kilobytes; refuse anything that could fill the disk


class ArchiveError(UserError):
    """The archive is not the expected one or cannot be read safely; the message names the file and the member."""


def verify(archive: Path | str, *, expected_sha256: str = ARTEFACTS_SHA256, progress: bool = True) -> Path:
    """Check that `archive` exists and has the pinned sha256; ArchiveError says what was found otherwise."""
    if not isinstance(archive, (str, Path)):
        raise TypeError(f"archive={archive!r} must be a path to artefacts.tar.gz")
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"archive {archive} does not exist; download artefacts.tar.gz from the paper's "
                                "repository (eth-sri/automated-error-analysis, README) and pass its path")
    got = sha256_of(archive, progress=progress)
    if got != expected_sha256:
        raise ArchiveError(f"archive {archive} has sha256 {got}, expected {expected_sha256} (the paper's "
                           "artefacts.tar.gz); it is a different or damaged file, so nothing was extracted")
    return archive


def safe_name(name: str) -> PurePosixPath:
    """A member path that stays inside the extraction folder; ArchiveError for absolute paths or `..`."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or name.startswith(("/", "\\")) or ":" in (path.parts[0] if path.parts else ""):
        raise ArchiveError(f"archive member {name!r} has an unsafe path (absolute or with '..'); refusing it")
    return path


def members(archive: Path, *, progress: bool = True) -> Iterator[tuple[tarfile.TarInfo, tarfile.TarFile]]:
    """Stream the archive's members in order (any compression tar knows), with a progress bar over its bytes."""
    from tqdm import tqdm

    with open(archive, "rb") as raw, tqdm(total=archive.stat().st_size, unit="B", unit_scale=True,
                                          desc=f"reading {archive.name}", disable=not progress) as bar:
        try:
            with tarfile.open(fileobj=raw, mode="r|*") as tar:
                for member in tar:
                    bar.update(raw.tell() - bar.n)
                    yield member, tar
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ArchiveError(f"archive {archive} cannot be read as a tar archive ({exc})") from None


def read_member(archive: Path, wanted: Callable[[PurePosixPath], bool], *, what: str, progress: bool = True,
                max_bytes: int = MAX_MEMBER_BYTES) -> tuple[str, bytes]:
    """(name, bytes) of the first regular-file member whose safe path satisfies `wanted`.

    ArchiveError when none does (the message says the archive has no `what`), or when that member is unsafe.
    """
    for member, tar in members(archive, progress=progress):
        path = PurePosixPath(member.name)
        if not wanted(path):
            continue
        safe_name(member.name)
        if not member.isfile():
            raise ArchiveError(f"archive member {member.name!r} of {archive} is not a regular file (a link or a "
                               "device); refusing it")
        if member.size > max_bytes:
            raise ArchiveError(f"archive member {member.name!r} of {archive} is {member.size} bytes, more than "
                               f"{max_bytes}; refusing it")
        handle = tar.extractfile(member)
        return member.name, handle.read()
    raise ArchiveError(f"archive {archive} has no {what}; is it the paper's artefacts.tar.gz?")


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def extract_superclasses(archive: Path | str, *, expected_sha256: str = ARTEFACTS_SHA256,
                         target: Path | None = None, progress: bool = True) -> Path:
    """Verify `archive`, then install its `superclasses.json` at `paths.paper_superclasses()` (the new default).

    The member is parsed as a superclass file before it replaces anything; a provenance file beside it records
    the archive's sha256 and the member's path. Returns the installed file.
    """
    from analysis.knowledge import superclasses

    archive = verify(archive, expected_sha256=expected_sha256, progress=progress)
    target = Path(target) if target is not None else paths.paper_superclasses()
    name, data = read_member(archive, lambda p: p.name == "superclasses.json", what="superclasses.json",
                             progress=progress)
    with tempfile.TemporaryDirectory() as scratch:
        candidate = Path(scratch) / "superclasses.json"
        candidate.write_bytes(data)
        try:
            superclasses.read(candidate)
        except ValueError as exc:
            raise ArchiveError(f"archive member {name!r} of {archive} is not a readable superclass file: "
                               f"{str(exc).split(': ', 1)[-1]}") from None
    _write_atomic(target, data)
    provenance = {"archive": str(archive), "archive_sha256": expected_sha256, "member": name}
    _write_atomic(target.with_name("SOURCE.json"), (json.dumps(provenance, indent=1) + "\n").encode())
    return target

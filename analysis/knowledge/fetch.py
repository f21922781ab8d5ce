"""Fetch the public files the project needs (pinned URLs, sha256-verified, atomic writes)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from analysis import paths

URL_TEMPLATE = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
VERIFIED_CACHE = ".sha256-cache.json"  # in the download folder: (size, mtime_ns, ctime_ns, sha256) per verified file


class FetchError(RuntimeError):
    """A file could not be fetched or verified; the message names it."""


@dataclass(frozen=True)
class ExternalFile:
    """One pinned public file: where it comes from, its checksum and licence."""

    source: str
    repo: str
    commit: str
    path: str
    size: int
    sha256: str
    licence: str

    @property
    def url(self) -> str:
        return URL_TEMPLATE.format(repo=self.repo, commit=self.commit, path=self.path)

    def local_path(self, root: Path | None = None) -> Path:
        """Where the verified copy lives under `data/external/`."""
        return (root or paths.external_dir()) / self.repo / self.path

    def mirror_path(self, mirror: Path) -> Path:
        return mirror / self.repo / self.path


def registry(tsv: Path = paths.SOURCES_TSV) -> list[ExternalFile]:
    """All external files of `data/sources.tsv`, in file order."""
    with open(tsv, newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    rows = csv.DictReader(lines, delimiter="\t")
    return [
        ExternalFile(r["source"], r["repo"], r["commit"], r["path"], int(r["bytes"]), r["sha256"], r["licence"])
        for r in rows
    ]


def source_names(files: Iterable[ExternalFile] | None = None) -> list[str]:
    """Distinct source names (`expert_vit3b`, `sample_images`, ...) in registry order."""
    return list(dict.fromkeys(f.source for f in (files if files is not None else registry())))


def files_of(source: str) -> list[ExternalFile]:
    """The registered files of one source; ValueError names the known ones otherwise."""
    files = [f for f in registry() if f.source == source]
    if not files:
        raise ValueError(f"source={source!r} is not registered; choose one of {source_names()}")
    return files


def sha256_of(path: Path, *, progress: bool = False) -> str:
    """sha256 of a file read in 1 MiB blocks; `progress` shows a bar over its bytes (multi-gigabyte archives)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                          desc=f"sha256 {path.name}", disable=not progress) as bar:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def is_verified(file: ExternalFile, root: Path | None = None) -> bool:
    """True when the local copy exists with the pinned size and sha256."""
    local = file.local_path(root)
    return local.is_file() and local.stat().st_size == file.size and sha256_of(local) == file.sha256


def _read_cache(path: Path) -> dict:
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):  # absent or damaged: every file is hashed again
        return {}
    return cache if isinstance(cache, dict) else {}


def _write_cache(path: Path, cache: dict) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=path.parent)
    except OSError:  # a read-only folder: verification still works, it just hashes again next time
        return
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(cache, handle, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def verify_local(files: Iterable[ExternalFile] | None = None, root: Path | None = None) -> int:
    """Check every present file of `files` (default: all registered) against its pinned size and sha256.

    Absent files are skipped (their sources count as missing). A file that differs raises FetchError naming
    it and the fetch command that replaces it. The digests of files unchanged since they were last hashed (same
    size, mtime_ns and ctime_ns) come from `VERIFIED_CACHE` in the download folder. Returns the files checked.
    """
    root = root or paths.external_dir()
    cache_path = root / VERIFIED_CACHE
    cache = _read_cache(cache_path)
    changed, checked = False, 0
    for file in registry() if files is None else files:
        local = file.local_path(root)
        try:
            st = local.stat()
        except FileNotFoundError:
            continue
        fix = f"run `python -m analysis fetch --only {file.source}` to fetch it again"
        if st.st_size != file.size:
            raise FetchError(f"{local} ({file.source}) has {st.st_size:,} bytes, its pinned size is {file.size:,}: "
                             f"the file was changed or damaged; {fix}")
        key, stamp = f"{file.repo}/{file.path}", [st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        entry = cache.get(key)
        if isinstance(entry, list) and len(entry) == 4 and entry[:3] == stamp:
            digest = entry[3]
        else:
            digest = sha256_of(local)
            cache[key], changed = [*stamp, digest], True
        if digest != file.sha256:
            if changed:
                _write_cache(cache_path, cache)
            raise FetchError(f"{local} ({file.source}) does not match its pinned sha256 (expected "
                             f"{file.sha256[:12]}…, got {digest[:12]}…): the file was changed or damaged; {fix}")
        checked += 1
    if changed:
        _write_cache(cache_path, cache)
    return checked


def _copy_from_mirror(file: ExternalFile, mirror: Path, handle) -> None:
    src = file.mirror_path(mirror)
    if not src.is_file():
        raise FetchError(f"{file.path} ({file.source}): not in the mirror at {src}")
    with open(src, "rb") as source:
        shutil.copyfileobj(source, handle, 1 << 20)


def _download(file: ExternalFile, handle, timeout: float = 60.0) -> None:
    try:
        with urllib.request.urlopen(file.url, timeout=timeout) as response:
            shutil.copyfileobj(response, handle, 1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        raise FetchError(f"{file.path} ({file.source}): download from {file.url} failed: {exc}") from exc


def fetch_file(file: ExternalFile, *, mirror: Path | None = None, root: Path | None = None,
               opener: Callable | None = None) -> bool:
    """Fetch one file atomically (temp file, verify, rename); return False when already verified.

    `opener(file, handle)` writes the bytes; default: copy from `mirror`, else download by URL.
    On any failure no file is left at the destination and FetchError names the file.
    """
    if is_verified(file, root):
        return False
    dest = file.local_path(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write = opener or ((lambda f, h: _copy_from_mirror(f, mirror, h)) if mirror else _download)
    fd, tmp_name = tempfile.mkstemp(prefix=".part-", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(file, handle)
        actual = sha256_of(tmp)
        if actual != file.sha256:
            raise FetchError(
                f"{file.path} ({file.source}): sha256 mismatch, expected {file.sha256}, got {actual}; "
                "the source changed or the copy is damaged"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def fetch(*, only: str | None = None, mirror: Path | None = None, root: Path | None = None,
          progress: bool = True) -> dict[str, int]:
    """Fetch every registered file (or those of source `only`); return counts fetched/skipped."""
    files = files_of(only) if only else registry()
    if mirror is not None and not Path(mirror).is_dir():
        raise FetchError(f"mirror folder {mirror} does not exist; pass --mirror DIR or set {paths.MIRROR_ENV}")
    counts = {"fetched": 0, "already_verified": 0}
    for source in source_names(files):
        group = [f for f in files if f.source == source]
        bar = tqdm(group, desc=f"fetch {source}", unit="file", disable=not progress or len(group) < 10)
        for file in bar:
            fetched = fetch_file(file, mirror=mirror, root=root)
            counts["fetched" if fetched else "already_verified"] += 1
    return counts


def missing(source: str, root: Path | None = None) -> list[ExternalFile]:
    """Files of `source` whose verified copy is absent (cheap check: existence and size)."""
    out = []
    for f in files_of(source):
        local = f.local_path(root)
        if not (local.is_file() and local.stat().st_size == f.size):
            out.append(f)
    return out


def local_file(source: str, path_suffix: str = "") -> Path:
    """Path of a fetched file of `source` (the first whose path ends with `path_suffix`).

    Raises FileNotFoundError with the fetch command when it is not there.
    """
    for f in files_of(source):
        if f.path.endswith(path_suffix):
            local = f.local_path()
            if not local.is_file():
                raise FileNotFoundError(
                    f"{local} is missing; run `python -m analysis fetch --only {source}`"
                )
            return local
    raise ValueError(f"path_suffix={path_suffix!r} matches no file of source {source!r}")

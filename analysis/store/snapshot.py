"""The dashboard's snapshot of the store: a copy it reads, so that it never holds the store a writer needs.

DuckDB lets one process write a file or many read it. A reader of the store itself (the dashboard, all its life)
would make every writer wait and fail; a reader of a copy never does. `current(store)` returns the snapshot to
read: the copy made from the store as it is now, made again when the store's identity (mtime, size and inode of
the file and of its `.wal`) differs from the one recorded in the sidecar `<store>.snapshot.json`. The copy is
the only moment the store is held (a read-only connection with wait=0, so no writer is in the middle of a write
while the bytes are copied); when a writer holds the store, or another process is copying it, the previous
snapshot is served, marked `stale`. One process or thread copies at a time (`flock` on `<store>.snapshot.lock`).

Each copy is a file of its own, `<store>.snapshot-<12 hex of its store identity>`: DuckDB keeps one database
instance per path in a process, so a copy renamed over an open one would go unseen by that process. The two
latest copies are kept (a process may still be opening the previous one); older ones are removed (a process
reading one keeps its data until it closes it). When the store's folder is not writable the snapshot lives in
`IMAGENET_ERRORS_SNAPSHOT_DIR`, else the system's temporary folder; when no folder is writable, the store itself
is read (`Snapshot.direct`, as before snapshots).

Each copy also gets Browse's `error_index` (every error's position in each sort order, `error_index.py`), built
after the store is let go, so writers never wait for it: about 15 s at 962 models x 50,000 images, milliseconds for
a small store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Iterator

import duckdb

from analysis import paths
from analysis.store import database, error_index, queries

SNAPSHOT_DIR_ENV = "IMAGENET_ERRORS_SNAPSHOT_DIR"
TEMP_FOLDER = "imagenet-errors-snapshots"  # under the system's temporary folder, for a store in a read-only folder
KEEP = 2  # copies kept: the latest and the one before it
_POLL = 0.05  # seconds between tries of a busy lock, when there is no snapshot to serve meanwhile
RETRY_AFTER = 1.0  # seconds a store found held by a writer is not tried again while its identity stays the same
COPY_LOCK = ".snapshot.lock"  # one process or thread makes (copies and indexes) a snapshot at a time
HOLD_LOCK = ".snapshot.hold.lock"  # held while the store itself is open for a copy, and by `paused` writers
_held: dict[str, tuple[list, float]] = {}  # store -> (its identity, monotonic time) when last found held


@dataclass(frozen=True)
class Snapshot:
    """The file the dashboard reads for `store`, and how it relates to the store now."""

    path: Path  # the file to open read-only: a copy, or the store itself when `direct`
    store: Path
    made_at: float | None = None  # when the copy was made (seconds since the epoch); None when `direct`
    stale: bool = False  # the store changed since the copy, and could not be copied now (a writer holds it)
    direct: bool = False  # no writable folder for a copy: the store itself is read, and held while open
    copied: bool = False  # this call made the copy
    seconds: float | None = None  # how long the store was held for the copy (when `copied`)

    @property
    def version(self) -> tuple:
        """A cache key that changes whenever the data read through `path` may have changed."""
        if self.direct:
            stat = self.store.stat()
            return str(self.store), stat.st_mtime_ns, stat.st_size
        return str(self.path), self.made_at

    @property
    def as_of(self) -> str:
        """When the copy was made, as local time (HH:MM:SS, with the date when not today)."""
        if self.made_at is None:
            return "now"
        made = time.localtime(self.made_at)
        same_day = time.strftime("%Y-%m-%d", made) == time.strftime("%Y-%m-%d")
        return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", made)


def _store_arg(store: Path | str | None) -> Path:
    if store is None:
        return paths.db_path()
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store={store!r} must be a path (str or Path) to a .duckdb file")
    return Path(store)


def identity(store: Path | str) -> list:
    """mtime (ns), size and inode of the store and of its `.wal` (None, None, None without one): equal identities,
    equal contents."""
    store = _store_arg(store)
    found = []
    for path in (store, Path(f"{store}.wal")):
        try:
            stat = path.stat()
        except FileNotFoundError:
            found += [None, None, None]
        else:
            found += [stat.st_mtime_ns, stat.st_size, stat.st_ino]
    return found


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def location(store: Path | str | None = None) -> Path | None:
    """The prefix of the snapshot's files (`<prefix>.snapshot.json`, ...): next to the store when its folder is
    writable, else in `IMAGENET_ERRORS_SNAPSHOT_DIR` or the temporary folder; None when none is writable."""
    store = _store_arg(store)
    env = os.environ.get(SNAPSHOT_DIR_ENV, "").strip()
    if not env and _writable(store.parent):
        return store
    folder = Path(env) if env else Path(tempfile.gettempdir()) / TEMP_FOLDER
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        return None
    if not _writable(folder):
        return None
    tag = hashlib.sha256(str(store.resolve()).encode()).hexdigest()[:12]  # one store, one name, in a shared folder
    return folder / f"{store.name}-{tag}"


def _sidecar(prefix: Path) -> Path:
    return Path(f"{prefix}.snapshot.json")


def _read_sidecar(prefix: Path) -> dict | None:
    try:
        data = json.loads(_sidecar(prefix).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("file"), str):
        return None
    if not isinstance(data.get("identity"), list):
        return None
    return data


def _usable(prefix: Path, side: dict | None) -> Path | None:
    """The copy the sidecar names, when it is there."""
    if side is None:
        return None
    path = prefix.parent / side["file"]
    return path if path.is_file() else None


def _served(store: Path, prefix: Path, side: dict, *, stale: bool) -> Snapshot:
    return Snapshot(prefix.parent / side["file"], store, float(side.get("made_at", 0.0)), stale=stale)


@contextlib.contextmanager
def _locked(prefix: Path, *, wait: float | None, lock: str = COPY_LOCK) -> Iterator[bool]:
    """Hold `<prefix><lock>` inside the block: yields False when it stays busy (wait=None: not waited for; else up
    to `wait` seconds; wait=inf: until it is free)."""
    fd = os.open(f"{prefix}{lock}", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is None or time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(_POLL)
        yield True
    finally:
        os.close(fd)  # releases the flock


def _copy(source: Path, target: Path) -> int:
    """Copy `source` to `target` and fsync it; the bytes copied."""
    shutil.copyfile(source, target)
    with open(target, "rb+") as handle:
        os.fsync(handle.fileno())
    return target.stat().st_size


def _write_sidecar(prefix: Path, data: dict) -> None:
    target = _sidecar(prefix)
    temporary = target.with_name(f"{target.name}.tmp{os.getpid()}")
    with open(temporary, "w") as handle:
        json.dump(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)


def _remove_old(prefix: Path, keep: set[str]) -> None:
    for path in prefix.parent.iterdir():
        if path.name.startswith(f"{prefix.name}.snapshot-") and path.name not in keep:
            if path.is_dir():  # DuckDB's spill folder of a copy's index build, left by a killed process
                shutil.rmtree(path, ignore_errors=True)
                continue
            with contextlib.suppress(OSError):
                path.unlink()


def _schema_is_current(path: Path) -> bool:
    con = database.connect(path, read_only=True)
    try:
        return database.schema_version(con) == database.SCHEMA_VERSION
    finally:
        con.close()


def _index(copy: duckdb.DuckDBPyConnection) -> float | None:
    """Build Browse's error_index in the copy (the store is no longer held); seconds taken, or None when it could
    not be built (out of memory or disk: the dashboard then reads every page from the predictions, as before)."""
    started = time.perf_counter()
    try:
        error_index.build(copy)
        copy.execute(queries.CHECKPOINT)
    except duckdb.Error:
        return None
    return time.perf_counter() - started


class _Paused(database.StoreLockedError):
    """A dashboard write (`paused`) holds the store now: the previous copy is served, and the next query retries."""


def _copy_store(store: Path, prefix: Path, previous: dict | None, *, wait: float | None) -> Snapshot:
    """Hold the store read-only (no wait), copy it (and its .wal) and let it go; then index the copy and publish it.

    A dashboard write in progress (`paused`) counts as a writer holding the store: waited for up to `wait` seconds
    (None: not at all), then StoreLockedError. Only the copy itself holds HOLD_LOCK, not the index build.
    """
    with _locked(prefix, wait=wait, lock=HOLD_LOCK) as got:
        if not got:
            raise _Paused(f"store {store} is being written by the dashboard; reload the page in a moment", "write")
        con = database.connect(store, read_only=True, wait=0)  # a writer holding it: StoreLockedError, nothing waits
        started = time.perf_counter()
        ident = identity(store)  # taken while held: what is copied
        name = f"{prefix.name}.snapshot-{hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:12]}"
        temporary = prefix.parent / f"{name}.tmp{os.getpid()}"
        temporary_wal = Path(f"{temporary}.wal")
        try:
            size = _copy(store, temporary)
            has_wal = ident[3] is not None and Path(f"{store}.wal").is_file()
            if has_wal:  # left by a writer that stopped before its checkpoint: part of the store's contents
                size += _copy(Path(f"{store}.wal"), temporary_wal)
            made_at = time.time()
        except BaseException:
            temporary.unlink(missing_ok=True)
            temporary_wal.unlink(missing_ok=True)
            raise
        finally:
            con.close()
            held = time.perf_counter() - started
    try:
        indexed = None
        current = _schema_is_current(temporary)  # an older store's copy is not migrated for its index
        if has_wal or current:
            copy = database.connect(temporary)
            try:
                if has_wal:  # fold it into the copy, so that the snapshot is one file
                    copy.execute(queries.CHECKPOINT)
                indexed = _index(copy) if current else None
            finally:
                copy.close()
        temporary_wal.unlink(missing_ok=True)
        os.replace(temporary, prefix.parent / name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        temporary_wal.unlink(missing_ok=True)
        shutil.rmtree(f"{temporary}.tmp", ignore_errors=True)  # DuckDB's spill folder of the index build
        raise
    _write_sidecar(prefix, {"store": str(store), "identity": ident, "file": name, "made_at": made_at,
                            "bytes": size, "seconds": held, "index_seconds": indexed})
    _remove_old(prefix, {name} | ({previous["file"]} if previous else set()))
    return Snapshot(prefix.parent / name, store, made_at, copied=True, seconds=held)


def current(store: Path | str | None = None, *, wait: float = 30.0,
            copying: Callable[[], ContextManager] | None = None) -> Snapshot:
    """The snapshot to read for `store` (default `paths.db_path()`), copied now when the store changed since.

    When the store cannot be copied now (a writer holds it, or another process is copying it) the previous copy
    is returned with `stale=True` at once; with no previous copy, waits up to `wait` seconds for the other copier,
    and a store held by a writer raises `database.StoreLockedError`. A missing store raises FileNotFoundError, a
    damaged one CorruptStoreError (the messages of `database.connect`). `copying`: a context manager factory
    entered around the wait for the copy lock and the copy (the dashboard's spinner), only when one is due.
    """
    store = _store_arg(store)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not wait >= 0:
        raise ValueError(f"wait={wait!r} must be a number of seconds >= 0, for example 30")
    database.check_exists(store)
    prefix = location(store)
    if prefix is None:
        return Snapshot(store, store, direct=True)
    ident = identity(store)
    side = _read_sidecar(prefix)
    if _usable(prefix, side) and side["identity"] == ident:
        return _served(store, prefix, side, stale=False)
    old = _usable(prefix, side)
    held = _held.get(str(store))
    if old and held and held[0] == ident and time.monotonic() - held[1] < RETRY_AFTER:
        return _served(store, prefix, side, stale=True)  # still held, nothing written since: not tried again yet
    with copying() if copying is not None else contextlib.nullcontext(), \
            _locked(prefix, wait=None if old else wait) as got:
        if not got:
            if old:
                return _served(store, prefix, side, stale=True)
            raise database.StoreLockedError(f"store {store} has been copied or written by the dashboard (another "
                                            f"page or process) for over {wait:g} s; reload the page in a moment")
        side = _read_sidecar(prefix)  # another process may have copied it while we waited for the lock
        if _usable(prefix, side) and side["identity"] == identity(store):
            return _served(store, prefix, side, stale=False)
        try:
            return _copy_store(store, prefix, side, wait=None if _usable(prefix, side) else wait)
        except _Paused:  # over in a moment, and its write changes the store: no pause before the next try
            if _usable(prefix, side):
                return _served(store, prefix, side, stale=True)
            raise
        except (database.StoreLockedError, database.OpenHereError):  # OpenHereError: this process writes it right now
            _held[str(store)] = (ident, time.monotonic())
            if _usable(prefix, side):
                return _served(store, prefix, side, stale=True)
            raise
        except OSError as exc:  # no room for a copy (up to three times the store), or the folder went read-only
            _held[str(store)] = (ident, time.monotonic())
            if _usable(prefix, side):
                return _served(store, prefix, side, stale=True)
            raise database.StoreError(f"cannot copy store {store} for the dashboard into {prefix.parent}: "
                                      f"{exc.strerror or exc}; free space there or set IMAGENET_ERRORS_SNAPSHOT_DIR "
                                      "to a folder with room") from None


@contextlib.contextmanager
def paused(store: Path | str | None = None) -> Iterator[None]:
    """No copy of `store` holds the store inside the block (for a writer in this process): one under way finishes
    copying first (its index build, on the copy, may go on meanwhile); the first `current` after it copies the
    written store."""
    store = _store_arg(store)
    prefix = location(store) if store.parent.is_dir() else None
    if prefix is None:
        yield
        return
    with _locked(prefix, wait=float("inf"), lock=HOLD_LOCK):
        yield

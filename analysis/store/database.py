"""The DuckDB connection of the store: the one place that opens the file, creates the schema and migrates it
(DESIGN §5), plus the small helpers every store module shares (transactions, first row, checksums, meta, frames
visible to SQL).
"""

from __future__ import annotations

import math
import os
import re
import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from analysis import paths
from analysis.errors import UserError
from analysis.store import queries, summary

SCHEMA_VERSION = 6
SCHEMA_SQL = Path(__file__).with_name("schema.sql")
SQL_DIR = Path(__file__).with_name("sql")


class StoreError(UserError):
    """The store cannot be used as asked (locked, missing, newer schema); the message says what to do."""


class CorruptStoreError(StoreError):
    """The store file is damaged or not a DuckDB file; nothing was written to it, `build --rebuild` replaces it."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class OpenHereError(StoreError):
    """The file is already open in this process with the other read-only setting."""


class StoreLockedError(StoreError):
    """Another process holds the store's lock; `mode` is how it holds it: 'read', 'write' or None (unknown)."""

    def __init__(self, message: str, mode: str | None = None) -> None:
        super().__init__(message)
        self.mode = mode


DEFAULT_WAIT = 1.0  # seconds a connection waits for another process's lock unless told otherwise (--wait)
_wait = DEFAULT_WAIT
_DAMAGE_PATTERNS = (  # DuckDB's words for a damaged file -> ours
    (re.compile(r"not a valid DuckDB database file"),
     lambda m, size: f"it is not a DuckDB database file ({size:,} bytes; if it is not your store, pass another --db)"),
    (re.compile(r"Could not read enough bytes .* from location (\d+)"),
     lambda m, size: f"it is truncated ({size:,} bytes long, and it needs a block at byte {int(m[1]):,})"),
    (re.compile(r"Corrupt database file: .* in block at location (\d+)"),
     lambda m, size: f"its block at byte {int(m[1]):,} fails its checksum"),
)


def check_wait(seconds: float) -> float:
    """`seconds` as a float >= 0 (a lock wait); ValueError otherwise."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"wait={seconds!r} must be a number of seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"--wait {seconds!r} must be a finite number of seconds >= 0; pass for example --wait 60")
    return float(seconds)


@contextmanager
def waiting(seconds: float) -> Iterator[None]:
    """Inside the block, `connect` without `wait=` waits up to `seconds` for another process's lock (--wait)."""
    global _wait
    previous, _wait = _wait, check_wait(seconds)
    try:
        yield
    finally:
        _wait = previous


def rebuild_advice(path: Path) -> str:
    """What to do with a damaged store at `path`."""
    arg = shlex.quote(str(path))
    return (f"Run `python -m analysis build --rebuild --db {arg}` to build a fresh store there (the damaged file is "
            f"kept as {path.name}.corrupt), then predict or import its models again")


def damage(path: Path, exc: BaseException, *, outcome: str = "nothing was written to it") -> CorruptStoreError | None:
    """The CorruptStoreError for DuckDB's error `exc` on `path` when it means a damaged file, else None."""
    text = str(exc)
    size = path.stat().st_size if path.is_file() else 0
    for pattern, reason in _DAMAGE_PATTERNS:
        match = pattern.search(text)
        if match:
            why = reason(match, size)
            return CorruptStoreError(f"store {path} is damaged: {why}; {outcome}. " + rebuild_advice(path), why)
    return None


def _holder(path: Path, exc: BaseException) -> tuple[int | None, str | None]:
    """(PID, 'read' or 'write') of the other process locking `path`: /proc/locks (Linux), else DuckDB's message."""
    try:
        st = path.stat()
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        lines = []
    if lines:
        key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        for line in lines:  # "1: POSIX  ADVISORY  WRITE 13395 fe:00:2474465 0 EOF"; "->" marks a blocked waiter
            fields = line.split()
            if len(fields) >= 6 and fields[1] != "->" and fields[5] == key and fields[4] != str(os.getpid()):
                return int(fields[4]), "read" if fields[3] == "READ" else "write"
    match = re.search(r"\(PID (\d+)\)", str(exc))
    return (int(match[1]) if match else None), None


def _command_line(pid: int) -> str | None:
    """The command line of process `pid`, printable and shortened, when /proc lets us read it."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    words = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    text = "".join(c if c.isprintable() else "?" for c in words)  # one line, whatever the holder's arguments
    return text if len(text) <= 200 else text[:199] + "…"


def _lock_message(path: Path, exc: BaseException, waited: float) -> str:
    pid, kind = _holder(path, exc)
    who = "another process"
    if pid is not None:
        command = _command_line(pid)
        who += f", PID {pid}" + (f" ({command})" if command else "")
    after = f" (waited {waited:g} s)" if waited > DEFAULT_WAIT else ""
    if kind == "read":
        return (f"store {path} is locked by {who}, which has it open read-only, like a dashboard{after}; close that "
                "dashboard or program, or retry with --wait SECONDS to wait until it is closed")
    doing = ", which is writing to it" if kind == "write" else ""
    return (f"store {path} is locked by {who}{doing}{after}; wait for it to finish or close it, "
            "or retry with --wait SECONDS to wait for it")


class _Countdown:
    """A one-line 'waiting for the lock' countdown on stderr (rewritten in place on a terminal)."""

    def __init__(self, path: Path) -> None:
        self.path, self.shown, self.tty = path, None, sys.stderr.isatty()

    def show(self, exc: BaseException, remaining: float) -> None:
        seconds = math.ceil(remaining)
        if seconds == self.shown or (self.shown is not None and not self.tty):
            return
        pid, _ = _holder(self.path, exc)
        holder = f"PID {pid}" if pid is not None else "another process"
        line = f"store {self.path} is locked by {holder}; waiting up to {seconds} s more (Ctrl-C to stop)"
        print(f"\r{line}\033[K" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)
        self.shown = seconds

    def close(self) -> None:
        if self.shown is not None and self.tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _open(path: Path, read_only: bool, deadline: float, wait: float) -> duckdb.DuckDBPyConnection:
    """duckdb.connect, retrying while another process holds the lock until `deadline`; our errors for the rest."""
    countdown = _Countdown(path)
    try:
        while True:
            try:
                return duckdb.connect(str(path), read_only=read_only)
            except duckdb.IOException as exc:
                if "Could not set lock" not in str(exc):
                    raise damage(path, exc) or _unusable(path, exc) from None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StoreLockedError(_lock_message(path, exc, wait), _holder(path, exc)[1]) from None
                if wait > DEFAULT_WAIT:
                    countdown.show(exc, remaining)
                time.sleep(min(0.2, remaining))
            except duckdb.ConnectionException:
                other = "for writing" if read_only else "read-only"
                raise OpenHereError(f"store {path} is already open in this process {other}; close that connection first"
                                ) from None
            except duckdb.Error as exc:
                raise damage(path, exc) or _unusable(path, exc) from None
    finally:
        countdown.close()


def _unusable(path: Path, exc: BaseException) -> StoreError:
    reason = " ".join(str(exc).split())[:300]
    return StoreError(f"store {path} cannot be opened ({reason}); check the file and its folder's permissions")


def _probe(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """The schema version of a just-opened store, after reading its catalogue and meta (a damaged one raises)."""
    try:
        tables = [r[0] for r in con.execute(queries.BASE_TABLES).fetchall()]
        version = schema_version(con)
    except duckdb.Error as exc:
        raise damage(path, exc) or _unusable(path, exc) from None
    if version == 0 and tables:
        shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreError(f"store {path} is a DuckDB database of something else (tables {shown}), not a store of this "
                         "project; nothing was written to it. Pass another --db (or IMAGENET_ERRORS_DB)")
    return version


def _scan(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Read every row of every table (DuckDB checks each block's checksum as it reads it)."""
    try:
        table_checksums(con)
    except duckdb.Error as exc:
        raise damage(path, exc) or _unusable(path, exc) from None


def check_exists(path: Path) -> Path:
    """`path` when it is a store file; else StoreError (something else is there) or FileNotFoundError (nothing is),
    each saying what to do. Nothing is created."""
    if path.exists() and not path.is_file():
        raise StoreError(f"store {path} is not a file; pass --db FILE (a .duckdb file)")
    if not path.is_file():
        raise FileNotFoundError(f"store {path} does not exist; create it with `python -m analysis build --db {path}`")
    return path


def connect(path: Path | str | None = None, *, read_only: bool = False,
            wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """Open the store (default `paths.db_path()`); a write connection creates or migrates the schema.

    An existing file is first opened read-only and its catalogue read, so a damaged file (CorruptStoreError) or
    another project's DuckDB file is refused before anything could be written to it. While another process
    holds the file, retries for up to `wait` seconds (default DEFAULT_WAIT, or the `waiting` block's), then
    raises StoreError naming the file, the holder's PID and command line, and what to do. A read-only
    connection needs an existing store at the current schema version.
    """
    path = paths.db_path(path)
    wait = _wait if wait is None else check_wait(wait)
    if read_only or path.exists():
        check_exists(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait
    if not read_only and path.is_file() and path.stat().st_size > 0:
        try:
            probe = _open(path, True, deadline, wait)
        except OpenHereError:  # open for writing in this process already: probed when it was opened
            pass
        else:
            try:
                if 0 < _probe(probe, path) < SCHEMA_VERSION:  # a migration writes: every block must read first
                    _scan(probe, path)
            finally:
                probe.close()
    con = _open(path, read_only, deadline, wait)
    try:
        con.execute("SET enable_progress_bar = false")  # never DuckDB's own bar on the user's terminal
        if read_only:
            version = _probe(con, path)
            if version != SCHEMA_VERSION:
                raise StoreError(f"store {path} has schema version {version}, this code needs {SCHEMA_VERSION}; "
                                 f"run `python -m analysis build --db {path}`")
        else:
            migrate(con)
    except BaseException:
        con.close()
        raise
    return con


def verify(path: Path | str, *, wait: float | None = None) -> int:
    """Read every row of every table of the store at `path` read-only (DuckDB checks each block's checksum).

    Returns its schema version; CorruptStoreError when a block is damaged, StoreError when it is locked or
    another project's database. Nothing is written.
    """
    path = check_exists(Path(path))
    wait = _wait if wait is None else check_wait(wait)
    con = _open(path, True, time.monotonic() + wait, wait)
    try:
        version = _probe(con, path)
        _scan(con, path)
    finally:
        con.close()
    return version


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT around the block; any exception (or interrupt) rolls everything back."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException as exc:
        con.execute("ROLLBACK")
        if isinstance(exc, duckdb.Error):  # a damaged block met mid-write: our one line instead of DuckDB's
            row = first(con, queries.STORE_FILE)
            corrupt = damage(Path(row[0]), exc, outcome="this change was rolled back") if row and row[0] else None
            if corrupt is not None:
                raise corrupt from None
        raise
    con.execute("COMMIT")


def first(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> tuple | None:
    """The first row of a query, or None; reads the whole result (DuckDB keeps a half-read one open)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The store's schema version from `meta` (0 for an empty file)."""
    has_meta = first(con, queries.HAS_META)[0]
    if not has_meta:
        return 0
    row = first(con, queries.META_GET, ["schema_version"])
    return int(row[0]) if row else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema to SCHEMA_VERSION (schema.sql, then sql/migrate_NNN.sql in order) in one transaction."""
    version = schema_version(con)
    if version > SCHEMA_VERSION:
        raise StoreError(f"the store has schema version {version}, newer than this code ({SCHEMA_VERSION}); "
                         "update the project")
    if version == SCHEMA_VERSION:
        return version
    with transaction(con):
        if version < 1:
            con.execute(SCHEMA_SQL.read_text())
            version = 1
        for v in range(version + 1, SCHEMA_VERSION + 1):
            con.execute((SQL_DIR / f"migrate_{v:03d}.sql").read_text())
            if v == 3:  # the summary of the models already stored (SQL files cannot share queries' statements)
                summary.refresh_summary(con)
        con.execute(queries.META_SET, ["schema_version", str(SCHEMA_VERSION)])
    return SCHEMA_VERSION


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows per table (no row is read: DuckDB keeps the counts)."""
    tables = [r[0] for r in con.execute(queries.BASE_TABLES).fetchall()]
    return {t: int(first(con, queries.table_count(t))[0]) for t in tables}


def table_checksums(con: duckdb.DuckDBPyConnection, *, exclude: tuple[str, ...] = ()) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows, XOR of row hashes, sum of row hashes) — equal checksums mean equal contents."""
    tables = [r[0] for r in con.execute(queries.BASE_TABLES).fetchall() if r[0] not in exclude]
    return {t: tuple(int(v) for v in first(con, queries.table_checksum(t))) for t in tables}


def meta(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """All `meta` keys: schema_version, built_at, classifier_fingerprint, oov_check, missing_sources, and the
    superclass definitions that classified the store (superclasses, superclasses_file, superclasses_sha256,
    superclasses_format)."""
    return dict(con.execute(queries.META_ALL).fetchall())


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, frame, name: str = "_incoming") -> Iterator[None]:
    """`frame` (Arrow or pandas) visible to SQL as `name` inside the block."""
    con.register(name, frame)
    try:
        yield
    except BaseException:
        try:  # an aborted transaction refuses even this; the original error is the one to report
            con.unregister(name)
        except duckdb.Error:
            pass
        raise
    con.unregister(name)


def insert_frame(con: duckdb.DuckDBPyConnection, sql: str, frame, params: list | None = None, *,
                 name: str = "_incoming") -> None:
    """Run `sql` (an INSERT ... FROM `name`) with `frame` registered as `name`."""
    with registered(con, frame, name):
        con.execute(sql, params or [])


def current_wait() -> float:
    """The seconds `connect` waits for another process's lock when not told otherwise (DEFAULT_WAIT, or --wait)."""
    return _wait

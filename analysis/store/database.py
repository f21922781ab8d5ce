"""The DuckDB connection of the store: the one place that opens the file, creates the schema and migrates it
(DESIGN §5), plus the small helpers every store module shares (transactions, first row, checksums, meta, frames
visible to SQL).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from analysis import paths
from analysis.errors import UserError
from analysis.store import queries, summary

SCHEMA_VERSION = 3
SCHEMA_SQL = Path(__file__).with_name("schema.sql")
SQL_DIR = Path(__file__).with_name("sql")


class StoreError(UserError):
    """The store cannot be used as asked (locked, missing, newer schema); the message says what to do."""



def connect(path: Path | str | None = None, *, read_only: bool = False, wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Open the store (default `paths.db_path()`); a write connection creates or migrates the schema.

    Retries for up to `wait` seconds while another process holds the file, then raises StoreError naming
    the file and the holder. A read-only connection needs an existing store at the current schema version.
    """
    path = Path(path) if path is not None else paths.db_path()
    if read_only and not path.is_file():
        raise FileNotFoundError(f"store {path} does not exist; create it with `python -m analysis build --db {path}`")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + max(0.0, float(wait))
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise StoreError(f"store {path} cannot be opened: {exc}") from None
            if time.monotonic() >= deadline:
                holder = str(exc).split("Conflicting lock is held in", 1)[-1].split(". See", 1)[0].strip()
                raise StoreError(f"store {path} is locked by another process ({holder}); close the dashboard or wait "
                                 "for the other command to finish, then retry") from None
            time.sleep(0.2)
        except duckdb.ConnectionException as exc:
            raise StoreError(f"store {path} is already open in this process with other settings ({exc}); "
                             "close that connection first") from None
        except duckdb.Error as exc:
            raise StoreError(f"store {path} is not a usable DuckDB file ({exc}); move it away and run build") from None
    con.execute("SET enable_progress_bar = false")  # never DuckDB's own bar on the user's terminal
    try:
        if read_only:
            version = schema_version(con)
            if version != SCHEMA_VERSION:
                raise StoreError(f"store {path} has schema version {version}, this code needs {SCHEMA_VERSION}; "
                                 f"run `python -m analysis build --db {path}`")
        else:
            migrate(con)
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT around the block; any exception (or interrupt) rolls everything back."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
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



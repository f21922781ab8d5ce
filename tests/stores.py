"""Reading a test's store: one helper the store and inference tests share."""

from __future__ import annotations

from pathlib import Path

from analysis.store import database


def query(path: Path, sql: str, params=None) -> list:
    """Every row of `sql` on the store at `path`, through a read-only connection closed before returning."""
    con = database.connect(path, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()

"""The dashboard's one read-only store connection and its cached queries."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import duckdb
import streamlit as st

from analysis import paths
from analysis.store import database, export, views


def store_path() -> Path:
    """The store the dashboard reads (`IMAGENET_ERRORS_DB`, else `data/errors.duckdb`)."""
    return paths.db_path()


@st.cache_resource(show_spinner=False, max_entries=2, on_release=lambda con: con.close())
def _connection(path: str) -> duckdb.DuckDBPyConnection:
    return database.connect(Path(path), read_only=True)


def cursor() -> duckdb.DuckDBPyConnection:
    """A cursor on the shared read-only connection (one per query, so sessions on other threads don't collide)."""
    path = store_path()
    if not path.is_file():
        raise FileNotFoundError(f"no store at {path}")
    return _connection(str(path)).cursor()


def release() -> None:
    """Close the shared connection (a run needs the file to itself) and forget every cached result."""
    _connection.clear()
    _query.clear()


def _version(path: Path) -> tuple[str, int, int]:
    stat = os.stat(path)
    return str(path), stat.st_mtime_ns, stat.st_size


@st.cache_data(show_spinner=False, max_entries=256)
def _query(module: str, name: str, version: tuple, args: tuple, kwargs: tuple) -> Any:
    func = getattr({"views": views, "export": export}[module], name)
    with cursor() as cur:
        return func(cur, *args, **dict(kwargs))


def view(name: str, *args, **kwargs) -> Any:
    """`analysis.store.views.<name>(connection, *args, **kwargs)`, cached per store version (file mtime and size)."""
    return _query("views", name, _version(store_path()), args, tuple(sorted(kwargs.items())))


def count_errors(flt) -> int:
    """`analysis.store.export.count_errors` for the filter, cached."""
    return _query("export", "count_errors", _version(store_path()), (flt,), ())


def uncached(module: str, name: str, *args, **kwargs) -> Any:
    """Call `analysis.<module>.<name>(connection, ...)` directly (for CSV downloads, built once per click)."""
    func = getattr({"views": views, "export": export}[module], name)
    with cursor() as cur:
        return func(cur, *args, **kwargs)

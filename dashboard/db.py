"""The dashboard's read-only connection to its snapshot of the store, and its cached queries.

The dashboard never holds the store itself (a writer would have to wait for it): it reads a copy, made again on
the first query after the store changed (`analysis.store.snapshot`; docs/SCALE.md "Writers and the dashboard").
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb
import streamlit as st

from analysis import paths
from analysis.store import database, export, snapshot, views


def store_path() -> Path:
    """The store the dashboard reads (`IMAGENET_ERRORS_DB`, else `data/errors.duckdb`)."""
    return paths.db_path()


def current() -> snapshot.Snapshot:
    """The snapshot queries read now: copied (and indexed) again when the store changed and no writer holds it, with
    a spinner meanwhile, else the previous one (`stale`)."""
    return snapshot.current(store_path(), copying=lambda: st.spinner(
        "Copying and indexing the store for the dashboard (after each change to it; writers never wait for this)…"))


def version() -> tuple:
    """The cache key of the data queries read now (the snapshot's file and when it was made)."""
    return current().version


@st.cache_resource(show_spinner=False, max_entries=4, on_release=lambda con: con.close())
def _connection(path: str) -> duckdb.DuckDBPyConnection:
    return database.connect(Path(path), read_only=True)


def cursor() -> duckdb.DuckDBPyConnection:
    """A cursor on the snapshot's shared read-only connection (one per query, so sessions on other threads don't
    collide); a new snapshot gets a new connection, and the one before it is closed when a third comes."""
    return _connection(str(current().path)).cursor()


def release() -> None:
    """Close the shared connections and forget every cached result."""
    _connection.clear()
    _query.clear()


@contextmanager
def writing(*, pause: bool = True) -> Iterator[None]:
    """Around a write of the dashboard's own to the store (the Run page, the review form): with `pause`, no copy of
    the store starts meanwhile in any session (for short writes; a model run passes pause=False and its writes wait
    for a copy like any writer's); when the dashboard reads the store itself (no writable folder for a snapshot) its
    connection is released first; the first query after the block sees the write."""
    path = store_path()
    if path.is_file() and snapshot.location(path) is None:
        release()
    if not pause:
        yield
        return
    with snapshot.paused(path):
        yield


@st.cache_data(show_spinner=False, max_entries=256)
def _query(module: str, name: str, version: tuple, args: tuple, kwargs: tuple) -> Any:
    func = getattr({"views": views, "export": export}[module], name)
    with _connection(version[0]).cursor() as cur:  # the snapshot the key names, not a newer one made meanwhile
        return func(cur, *args, **dict(kwargs))


def view(name: str, *args, **kwargs) -> Any:
    """`analysis.store.views.<name>(connection, *args, **kwargs)`, cached per snapshot."""
    return _query("views", name, version(), args, tuple(sorted(kwargs.items())))


def count_errors(flt) -> int:
    """`analysis.store.export.count_errors` for the filter, cached."""
    return _query("export", "count_errors", version(), (flt,), ())


def uncached(module: str, name: str, *args, **kwargs) -> Any:
    """Call `analysis.<module>.<name>(connection, ...)` directly (for CSV downloads, built once per click)."""
    func = getattr({"views": views, "export": export}[module], name)
    with cursor() as cur:
        return func(cur, *args, **kwargs)

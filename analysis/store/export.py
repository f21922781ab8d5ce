"""The filtered errors as rows: one function behind `python -m analysis export` and the dashboard's CSV download.

A row is one stored mistake (model × image whose pair category is neither correct nor not_evaluated)
with its image, target, labels, prediction, category and reason, superclasses, the experts' verdict
where one exists and how many stored models make the same mistake.
"""

from __future__ import annotations

import argparse
import io
import os
import stat
import uuid
from contextlib import suppress
from pathlib import Path

import duckdb
import pandas as pd

from analysis import paths
from analysis.errors import UserError
from analysis.store import database, queries
from analysis.store.filters import ErrorFilter

# Columns holding lists: written to CSV as space-separated values.
LIST_COLUMNS = ("labels", "top5", "target_superclasses", "prediction_superclasses")
COLUMNS = ("model_id", "dataset", "image_id", "file_name", "target_id", "target_wnid", "target_name", "labels",
           "prediction_id", "prediction_wnid", "prediction_name", "confidence", "top5", "category", "reason",
           "target_superclasses", "prediction_superclasses", "expert", "expert_category", "expert_severity",
           "models_making_error", "target_group", "family")
# A DuckDB file starts with an 8-byte checksum and then these bytes; an export never writes over one.
DUCKDB_MAGIC, DUCKDB_MAGIC_OFFSET = b"DUCK", 8
DUCKDB_SUFFIXES = (".duckdb", ".wal")


def _check(flt, limit, offset) -> None:
    if not isinstance(flt, ErrorFilter):
        raise TypeError(f"flt={flt!r} must be an analysis.store.filters.ErrorFilter")
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit={limit!r} must be None or an integer >= 0")
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset={offset!r} must be an integer >= 0")


def errors_frame(con: duckdb.DuckDBPyConnection, flt: ErrorFilter, *, limit: int | None = None,
                 offset: int = 0) -> pd.DataFrame:
    """The errors `flt` selects, ordered by model, dataset, image id; a page when `limit` is given.

    Columns: see COLUMNS (labels, top5 and superclass columns are lists).
    """
    _check(flt, limit, offset)
    sql, params = queries.errors_sql(flt, limit=limit, offset=offset)
    return con.execute(sql, params).df()


def count_errors(con: duckdb.DuckDBPyConnection, flt: ErrorFilter) -> int:
    """Number of rows `errors_frame(con, flt)` returns without a limit."""
    _check(flt, None, 0)
    sql, params = queries.count_errors_sql(flt)
    return int(database.first(con, sql, params)[0])


def _joined(values) -> str:
    """A list cell as space-separated values; a NULL list (None, pd.NA, NaN) as an empty cell."""
    if values is None or (pd.api.types.is_scalar(values) and pd.isna(values)):
        return ""
    return " ".join(str(v) for v in values)


def to_csv(frame: pd.DataFrame, target: Path | io.TextIOBase | None = None) -> str | None:
    """Write `frame` as CSV (list columns space-separated, NULL lists empty); return the text when `target` is None."""
    out = frame.copy()
    for column in LIST_COLUMNS:
        if column in out.columns:
            out[column] = [_joined(values) for values in out[column]]
    return out.to_csv(target, index=False, float_format="%.6g")


def csv_bytes(con: duckdb.DuckDBPyConnection, flt: ErrorFilter) -> bytes:
    """The whole filtered result as CSV bytes (the dashboard's download button)."""
    return to_csv(errors_frame(con, flt)).encode()


def is_duckdb_file(path: Path) -> bool:
    """Whether the file at `path` starts with DuckDB's header."""
    with open(path, "rb") as handle:
        header = handle.read(DUCKDB_MAGIC_OFFSET + len(DUCKDB_MAGIC))
    return header[DUCKDB_MAGIC_OFFSET:] == DUCKDB_MAGIC


def check_output(output: Path | str, *, store: Path | str | None = None, force: bool = False) -> Path:
    """The resolved file an export to `output` writes; UserError when that is the store (default
    `paths.db_path()`), a DuckDB file, a directory, not a regular file, or an existing file without `force`.
    """
    if not isinstance(output, (str, os.PathLike)):
        raise TypeError(f"output={output!r} must be a path (str or pathlib.Path)")
    given = Path(output)
    try:
        target = given.resolve()  # symlinks followed, in the folders above too
        shown = str(given) if target == given.absolute() else f"{given} (-> {target})"
        _refuse(given, target, shown, Path(store) if store is not None else paths.db_path(), force)
    except OSError as exc:
        raise UserError(f"cannot check export output {given}: {exc.strerror or exc}; give another file name") from None
    return target


def _refuse(given: Path, target: Path, shown: str, store: Path, force: bool) -> None:
    if target == store.resolve() or (target.exists() and store.exists() and os.path.samefile(target, store)):
        raise UserError(f"export output {shown} is the store itself ({store}); writing there would destroy it, "
                        "even with --force: give a new .csv file name")
    suffix = next((s for s in DUCKDB_SUFFIXES for name in (given.name, target.name) if name.lower().endswith(s)), None)
    if suffix is not None:
        raise UserError(f"export output {shown} has a DuckDB file name ({suffix}); export writes CSV: "
                        "give a .csv file name")
    if not target.exists():
        return
    if target.is_dir():
        raise UserError(f"export output {shown} is a directory; give a file name in it, such as {given / 'errors.csv'}")
    if not target.is_file():
        raise UserError(f"export output {shown} is not a regular file (a device, pipe or socket); give a file name")
    if is_duckdb_file(target):
        raise UserError(f"export output {shown} is a DuckDB database; export never writes over one, even with "
                        "--force: give a .csv file name")
    if not force:
        raise UserError(f"export output {shown} already exists; pass --force to overwrite it, or give a new file name")


def write_csv(frame: pd.DataFrame, output: Path | str, *, store: Path | str | None = None,
              force: bool = False) -> Path:
    """Write `frame` as `to_csv` does to `output` (checked by `check_output`) through a temporary file in the same
    folder renamed over it; on any failure no temporary file or new folder is left and an existing output is unchanged.
    """
    target = check_output(output, store=store, force=force)
    data = to_csv(frame).encode()
    try:
        _replace(target, data)
    except OSError as exc:
        raise UserError(f"cannot write export output {output}: {exc.strerror or exc}; nothing was written and an "
                        "existing file there is unchanged") from None
    return target


def _replace(target: Path, data: bytes) -> None:
    """Put `data` at `target` by writing a temporary file next to it and renaming it over `target`."""
    created = [folder for folder in reversed(target.parents) if not folder.exists()]
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    made = False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        made = True
        try:
            if target.exists():  # --force keeps the replaced file's permissions
                os.chmod(fd, stat.S_IMODE(target.stat().st_mode))
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
    except BaseException:
        if made:
            with suppress(OSError):
                temporary.unlink()
        for folder in reversed(created):
            with suppress(OSError):
                folder.rmdir()
        raise


def cli_export(args: argparse.Namespace) -> int:
    """`python -m analysis export OUT.csv [--force] [filters]`."""
    check_output(args.output, store=args.db, force=args.force)  # before the query: a refused output fails fast
    flt = ErrorFilter.from_args(args)
    con = database.connect(args.db, read_only=True)
    try:
        frame = errors_frame(con, flt)
        classified_with = database.meta(con).get("superclasses", "not recorded (store built before they were)")
    finally:
        con.close()
    output = Path(args.output)
    write_csv(frame, output, store=args.db, force=args.force)
    print(f"wrote {len(frame)} errors to {output}")
    print(f"superclasses: {classified_with}")  # the sidecar line: which definitions made these categories
    return 0

"""The filtered errors as rows: one function behind `python -m analysis export` and the dashboard's CSV download.

A row is one stored mistake (model × image whose pair category is neither correct nor not_evaluated)
with its image, target, labels, prediction, category and reason, superclasses, the experts' verdict
where one exists and how many stored models make the same mistake.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import itertools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import paths
from analysis.errors import UserError
from analysis.store import database, pages, queries
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
T = TypeVar("T")


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
    """Number of rows `errors_frame(con, flt)` returns without a limit (from `model_summary` when it knows it:
    `pages.count_errors`)."""
    _check(flt, None, 0)
    return pages.count_errors(con, flt)


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
        _refuse(given, target, shown, paths.db_path(store), force)
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
        _replace(target, lambda fd, _temporary: _write_all(fd, data))
    except OSError as exc:
        raise UserError(f"cannot write export output {output}: {exc.strerror or exc}; nothing was written and an "
                        "existing file there is unchanged") from None
    return target


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _replace(target: Path, write: Callable[[int, Path], T]) -> T:
    """Put what `write(fd, temporary)` writes at `target` through a temporary file next to it renamed over `target`;
    return what `write` returns. On any failure no temporary file or new folder is left and `target` is unchanged."""
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
            result = write(fd, temporary)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
        return result
    except BaseException:
        if made:
            with suppress(OSError):
                temporary.unlink()
        for folder in reversed(created):
            with suppress(OSError):
                folder.rmdir()
        raise


# --- streaming: the bytes of `to_csv(errors_frame(...))`, formatted by DuckDB, in constant memory ------------------

BATCH_ROWS = 50_000  # rows per record batch read from DuckDB and written at once
# The export is cut into parts of at most about PART_ROWS rows in its order (whole models together, or runs of one
# model's image ids), each sorted by DuckDB alone: no sort of the whole result, so memory does not grow with it.
PART_ROWS = 50_000
MEMORY_LIMIT = "160MB"  # DuckDB's memory while streaming an export (its buffer pool caches the tables up to it)


def _columns(con: duckdb.DuckDBPyConnection, flt: ErrorFilter) -> list[tuple[str, str]]:
    """(name, DuckDB type) of each column `errors_frame` returns, read from an empty page."""
    sql, params = queries.errors_sql(flt, limit=0, offset=0)
    return [(column[0], str(column[1])) for column in con.execute(sql, params).description]


def _header(columns: list[tuple[str, str]]) -> bytes:
    special = {",", '"', *os.linesep}
    cells = ['"' + name.replace('"', '""') + '"' if special & set(name) else name for name, _ in columns]
    return (",".join(cells) + os.linesep).encode()


def _line_bytes(lines: pa.Array) -> memoryview:
    """The values of a string array (each a finished CSV line) back to back, without copying them."""
    if not (pa.types.is_string(lines.type) or pa.types.is_large_string(lines.type)):
        lines = lines.cast(pa.large_string())
    _, offsets, data = lines.buffers()
    if data is None or len(lines) == 0:
        return memoryview(b"")
    kind = np.dtype(np.int64 if pa.types.is_large_string(lines.type) else np.int32)
    bounds = np.frombuffer(offsets, dtype=kind, count=len(lines) + 1, offset=lines.offset * kind.itemsize)
    return memoryview(data)[int(bounds[0]):int(bounds[-1])]


Part = tuple[ErrorFilter, tuple[int, int]]  # a part's filter and the first and last image id of its rows
ALL_IMAGES = (-2**31, 2**31 - 1)  # every image id (INTEGER)


def _parts(con: duckdb.DuckDBPyConnection, flt: ErrorFilter) -> tuple[list[Part], int]:
    """(parts, rows): the export of `flt` as consecutive (filter, image ids) parts of at most about PART_ROWS rows in
    its order (whole models together; a larger model by dataset and runs of image ids)."""
    sql, params = queries.error_parts_sql(flt, block=PART_ROWS)
    groups = con.execute(sql, params).fetchall()  # (model, dataset, block, first image, last image, rows), in order
    totals: dict[str, int] = {}
    for model, *_, rows in groups:
        totals[model] = totals.get(model, 0) + rows
    parts: list[Part] = []
    models: list[str] = []
    size = 0
    for model, model_groups in itertools.groupby(groups, key=lambda group: group[0]):
        if models and (size + totals[model] > PART_ROWS or totals[model] > PART_ROWS):
            parts.append((flt.with_(models=tuple(models)), ALL_IMAGES))
            models, size = [], 0
        if totals[model] <= PART_ROWS:  # whole models together
            models.append(model)
            size += totals[model]
            continue
        for dataset, runs in itertools.groupby(model_groups, key=lambda group: group[1]):
            first, last, size = None, None, 0
            for *_, lo, hi, rows in runs:  # runs of image ids, in order
                if first is not None and size + rows > PART_ROWS:
                    parts.append((flt.with_(models=(model,), dataset=dataset), (first, last)))
                    first, size = None, 0
                first, last, size = lo if first is None else first, hi, size + rows
            parts.append((flt.with_(models=(model,), dataset=dataset), (first, last)))
        size = 0
    if models:
        parts.append((flt.with_(models=tuple(models)), ALL_IMAGES))
    return parts, sum(totals.values())


def stream_csv(con: duckdb.DuckDBPyConnection, flt: ErrorFilter, fd: int, *,
               progress: Callable[[int, int], None] | None = None) -> int:
    """Write to the open file descriptor `fd` the bytes of `to_csv(errors_frame(con, flt))`, made by DuckDB one
    part (`_parts`) and record batch at a time; return the number of rows. `progress(done, total)` after each batch."""
    _check(flt, None, 0)
    columns = _columns(con, flt)
    _write_all(fd, _header(columns))
    parts, total = _parts(con, flt)
    rows = 0
    for part, images in parts:
        sql, params = queries.errors_csv_sql(part, columns, eol=os.linesep, images=images)
        for batch in con.sql(sql, params=params).to_arrow_reader(BATCH_ROWS):
            _write_all(fd, _line_bytes(batch.column(0)))
            rows += batch.num_rows
            if progress is not None:
                progress(rows, total)
    return rows


@contextmanager
def _bounded(con: duckdb.DuckDBPyConnection, spill: Path) -> Iterator[None]:
    """DuckDB's memory limit at MEMORY_LIMIT and its spill folder at `spill` (removed after) for the block."""
    before = database.first(con, "SELECT current_setting('memory_limit'), current_setting('temp_directory')", [])
    con.execute("SET memory_limit = ?", [MEMORY_LIMIT])
    with suppress(duckdb.Error):  # refused once this database has spilled elsewhere: it keeps that folder
        con.execute("SET temp_directory = ?", [str(spill)])
    try:
        yield
    finally:
        con.execute("SET memory_limit = ?", [before[0]])
        with suppress(duckdb.Error):
            con.execute("SET temp_directory = ?", [before[1]])
        shutil.rmtree(spill, ignore_errors=True)


@contextmanager
def _bar(show: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A `stream_csv` progress callable drawing a tqdm bar of rows on stderr while `show` (None otherwise)."""
    if not show:
        yield None
        return
    from tqdm import tqdm

    with tqdm(desc="exporting errors", unit="row", unit_scale=True, file=sys.stderr, disable=None) as bar:
        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update


def export_csv(flt: ErrorFilter, output: Path | str, *, db: Path | str | None = None, force: bool = False,
               progress: bool = False) -> int:
    """Write the errors `flt` selects in the store `db` (default `paths.db_path()`) to `output` (checked by
    `check_output`; replaced atomically as `write_csv` does) in constant memory; return the number of rows.
    `progress`: a tqdm bar of rows on stderr (shown on a terminal)."""
    _check(flt, None, 0)
    target = check_output(output, store=db, force=force)
    con = database.connect(db, read_only=True)
    try:
        def write(fd: int, temporary: Path) -> int:
            with _bounded(con, temporary.with_name(temporary.name + ".spill")), _bar(progress) as bar:
                return stream_csv(con, flt, fd, progress=bar)

        try:
            return _replace(target, write)
        except OSError as exc:
            raise UserError(f"cannot write export output {output}: {exc.strerror or exc}; nothing was written and an "
                            "existing file there is unchanged") from None
    finally:
        con.close()


def cli_export(args: argparse.Namespace) -> int:
    """`python -m analysis export OUT.csv [--force] [filters]`."""
    check_output(args.output, store=args.db, force=args.force)  # before the query: a refused output fails fast
    flt = ErrorFilter.from_args(args)
    con = database.connect(args.db, read_only=True)
    try:
        classified_with = database.meta(con).get("superclasses", "not recorded (store built before they were)")
    finally:
        con.close()
    output = Path(args.output)
    rows = export_csv(flt, output, db=args.db, force=args.force, progress=True)
    print(f"wrote {rows} errors to {output}")
    print(f"superclasses: {classified_with}")  # the sidecar line: which definitions made these categories
    return 0


# --- the dashboard's full download: the CLI's streamed export, built once on disk in a child process -------------

DOWNLOADS_ENV = "IMAGENET_ERRORS_DOWNLOADS"  # the folder of built downloads (default: a per-user temporary folder)
KEEP_DOWNLOADS = 4  # built files kept (most recently used); older ones are removed after each build
_CHILD = "from analysis.store.export import _download_child; raise SystemExit(_download_child())"


def downloads_dir() -> Path:
    """Where the dashboard's full downloads are built (`IMAGENET_ERRORS_DOWNLOADS`, else a temporary folder)."""
    return Path(os.environ.get(DOWNLOADS_ENV) or Path(tempfile.gettempdir()) / f"imagenet-errors-downloads-{os.getuid()}")


def download_path(flt: ErrorFilter, *, db: Path | str | None = None) -> Path:
    """The file `build_download` writes for `flt` on this version (path, mtime, size) of the store `db`."""
    _check(flt, None, 0)
    store = paths.db_path(db)
    info = store.stat()
    key = json.dumps([str(store.resolve()), info.st_mtime_ns, info.st_size, flt.as_dict()], sort_keys=True,
                     default=list)
    return downloads_dir() / f"errors-{hashlib.sha256(key.encode()).hexdigest()[:24]}.csv"


def build_download(flt: ErrorFilter, *, db: Path | str | None = None, timeout: float = 3600) -> Path:
    """The errors `flt` selects as the CSV file `export_csv` writes, built (once per store version and filter) by a
    child process so that the caller's memory stays flat; UserError with the child's message when that fails."""
    path = download_path(flt, db=db)
    if path.is_file():
        os.utime(path)  # recently used: kept by the clean-up
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the downloads folder {path.parent}: {exc.strerror or exc}; set "
                        f"{DOWNLOADS_ENV} to a writable folder") from None
    store = paths.db_path(db)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(store), str(path)], input=json.dumps(
            flt.as_dict(), default=list), env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise UserError(f"building the CSV took over {timeout:.0f} s and was stopped; narrow the filter or run "
                        f"`python -m analysis export`") from None
    if done.returncode != 0:
        lines = (done.stderr.strip() or f"exit code {done.returncode}").splitlines()
        raise UserError(lines[-1].removeprefix("error: "))
    _clean_downloads(path.parent)
    return path


def _clean_downloads(folder: Path) -> None:
    built = sorted(folder.glob("errors-*.csv"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in built[KEEP_DOWNLOADS:]:
        with suppress(OSError):
            old.unlink()


def _download_child() -> int:
    """The child of `build_download`: argv store and output, the filter as JSON on stdin."""
    store, output = sys.argv[1:3]
    try:
        export_csv(ErrorFilter(**json.loads(sys.stdin.read())), output, db=store, force=True)
    except (UserError, ValueError, TypeError, FileNotFoundError, OSError, duckdb.Error) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0

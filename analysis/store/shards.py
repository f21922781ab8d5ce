"""Parquet shards: a writer's predictions land as a file next to the store, and the store ingests them when it can.

A shard is one Parquet file in `<store>.shards/` per (model, dataset, shard i/N or all, run) holding the rows of
`publish.prediction_table`, with everything `publish.publish_predictions` needs in its key-value metadata (JSON under
`analysis.shard`: shard id, the ModelRecord, dataset, mode, run id and seconds, created time, writer PID and host). A
folder dataset the run registers goes in a sibling `<name>.images.parquet` written before the main file. Files are
written under a temporary name starting with '.', fsynced, renamed into place and the folder fsynced, so a shard is
either complete or invisible. `ingest` publishes each pending shard in ONE transaction that also records its id in
`ingested_shards`, then deletes the file(s); a shard that fails validation moves to `failed/` with a `.error.txt`.
`land` writes a shard and, when the store can be taken for writing now, ingests it first and then at most
LAND_SHARDS others within LAND_SECONDS, else leaves it pending for the next writer or `python -m analysis ingest`,
which ingests a backlog in holds of at most INGEST_SECONDS, letting go of the store between them. Temporary files of
killed writers and lone images siblings older than ORPHAN_AGE are removed by `ingest` (docs/SCALE.md, "Parquet shards
and ingestion").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import sys
import time
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from analysis import paths
from analysis.errors import UserError
from analysis.store import database, publish, queries

META_KEY = b"analysis.shard"
IMAGES_SUFFIX = ".images.parquet"
FORMAT = 1
WRITERS_WAIT = 30.0  # seconds a writer waits for another writer's short hold (staging flush, ingest) before failing
LAND_SHARDS = 8  # other pending shards a writer's `land` ingests after its own (the rest wait for the next one)
LAND_SECONDS = 10.0  # ... and only while this many seconds have passed since its ingest began
INGEST_SECONDS = 10.0  # `ingest_pending` holds the store at most about this long (plus one shard), then lets go
HOLD_GAP = 0.5  # seconds `ingest_pending` waits between holds, so a writer polling for the lock (0.2 s) gets it
ORPHAN_AGE = 3600.0  # seconds after which a killed writer's temporary file or a lone images sibling is removed
_COLUMNS = ("image_id", "prediction", "top5", "confidence", "top5_confidence")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=-]+")
_TEMPORARY = re.compile(r"^\..+\.parquet\.\d+\.tmp$")  # _write_atomic's `.<name>.parquet.<pid>.tmp`


class ShardWarning(UserWarning):
    """A pending shard could not be ingested; it was moved to `failed/` with its reason."""


class ShardsLeftWarning(ShardWarning):
    """A writer ingested its own shard but left other pending shards for the next writer or `ingest`."""


@dataclass
class Ingested:
    """What `ingest` did: shards published (dicts), shards already ingested and deleted, shards moved to failed/,
    orphaned files removed, shards still pending after it, and how many holds of the store it took."""

    published: list[dict] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)
    left: int = 0
    holds: int = 0

    @property
    def handled(self) -> int:
        """Shards taken out of the pending ones: published, deleted as already ingested, or moved to failed/."""
        return len(self.published) + len(self.already) + len(self.failed)


@dataclass
class Landed:
    """What `land` did: the shard file, whether it waits for a later ingest, what was ingested, the model's top-1."""

    shard: Path
    pending: bool
    ingested: Ingested | None = None
    counts: dict | None = None  # publish_predictions' counts of this shard, when ingested now
    top1: float | None = None
    left: int = 0  # shards still pending after it (its own included when it is pending)


def shard_dir(store: Path | str) -> Path:
    """The shard folder of the store file `store`: `<store>.shards/` next to it."""
    store = Path(store)
    return store.with_name(store.name + ".shards")


def safe_part(text: str, limit: int = 60) -> str:
    """`text` as a file-name part: a model id's '/' as '--' (the paper's folders), other unsafe runs as '_'."""
    part = _UNSAFE.sub("_", str(text).replace("/", "--")).strip("._") or "x"
    return part[:limit]


def pending(store: Path | str) -> list[Path]:
    """The complete pending shards of `store` in name (= creation) order; temporary and images files excluded."""
    folder = shard_dir(store)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet")
                  if not p.name.startswith(".") and not p.name.endswith(IMAGES_SUFFIX) and p.is_file())


def orphans(store: Path | str, *, age: float | None = None) -> list[Path]:
    """Files of killed writers in the shard folder older than `age` s (default ORPHAN_AGE) by mtime: temporary
    `.<name>.parquet.<pid>.tmp` files and `<name>.images.parquet` siblings whose `<name>.parquet` is gone."""
    age = ORPHAN_AGE if age is None else _check_seconds(age, "age", f"ORPHAN_AGE ({ORPHAN_AGE:g} s)")
    folder = shard_dir(store)
    if not folder.is_dir():
        return []
    cutoff = time.time() - age
    out = []
    names = [p.name for p in folder.iterdir()]
    for name in names:
        path = folder / name
        if _TEMPORARY.match(name):
            pass
        elif name.endswith(IMAGES_SUFFIX) and not name.startswith("."):
            main = name.removesuffix(IMAGES_SUFFIX) + ".parquet"
            if (folder / main).exists() or any(n.startswith(f".{main}.") for n in names):  # its shard: being written
                continue
        else:
            continue
        try:
            stat = path.stat()
            # ctime too: a file copied or renamed in with an old mtime (rsync -a) is not old
            if path.is_file() and max(stat.st_mtime, stat.st_ctime) < cutoff:
                out.append(path)
        except FileNotFoundError:  # removed meanwhile (renamed into place, or ingested)
            continue
    return sorted(out)


def failed_shards(store: Path | str) -> list[Path]:
    """The shards moved to `<store>.shards/failed/` (each with its `<name>.error.txt`); never deleted by us."""
    folder = shard_dir(store) / "failed"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.endswith(IMAGES_SUFFIX) and p.is_file())


def _remove_orphans(store: Path) -> list[Path]:
    """Delete `orphans(store)`; returns those deleted by this call."""
    removed = []
    for path in orphans(store):
        try:
            path.unlink()
        except FileNotFoundError:  # another ingest removed it first
            continue
        removed.append(path)
    if removed:
        _fsync_dir(shard_dir(store))
    return removed


def _check_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit={limit!r} must be a whole number of shards, or None for every pending shard")
    if limit < 1:
        raise ValueError(f"limit={limit!r} must be at least 1 shard; pass None to ingest every pending shard")
    return limit


def _check_seconds(seconds: float | None, name: str = "seconds", none: str = "no time limit") -> float | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"{name}={seconds!r} must be a number of seconds, or None for {none}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name}={seconds!r} must be a finite number of seconds >= 0; pass None for {none}")
    return float(seconds)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(table: pa.Table, target: Path) -> None:
    """Write `table` as Parquet at `target`: a '.'-named temporary file, fsync, rename, fsync of the folder."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:  # a full disk, a read-only folder: one line, nothing left behind
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write the shard {target}: {exc.strerror or exc}; nothing was stored (free space or "
                        f"make {target.parent} writable, then run the command again)") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def write_shard(store: Path | str, record: publish.ModelRecord, dataset: str, rows: pa.Table, *, mode: str,
                images: tuple[tuple, pa.Table] | None = None, run_id: str | None = None, run_seconds: float = 0.0,
                shard: str | None = None) -> Path:
    """Write one shard of `record`'s `rows` on `dataset` (and its images sibling first) atomically; returns its path."""
    if not isinstance(record, publish.ModelRecord):
        raise TypeError(f"record={record!r} must be an analysis.store.publish.ModelRecord")
    if mode not in publish.WRITE_MODES:
        raise ValueError(f"mode={mode!r} must be one of {publish.WRITE_MODES}")
    if not isinstance(rows, pa.Table) or rows.num_rows == 0 or not set(_COLUMNS) <= set(rows.column_names):
        raise ValueError("rows must be a non-empty pyarrow Table from analysis.store.publish.prediction_table")
    folder = shard_dir(store)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the shard folder {folder}: {exc.strerror or exc}; nothing was stored (make "
                        f"{folder.parent} writable, then run the command again)") from None
    shard_id = str(uuid.uuid4())
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now % 1 * 1e6):06d}Z"
    part = "all" if shard is None else shard.replace("/", "of")
    name = f"{stamp}-{safe_part(record.model_id)}-{safe_part(dataset, 40)}-{safe_part(part, 20)}-" \
           f"{safe_part(run_id or 'import', 40)}-{shard_id[:8]}"
    meta = {"format": FORMAT, "shard_id": shard_id, "model": asdict(record), "dataset": dataset, "mode": mode,
            "run_id": run_id, "run_seconds": float(run_seconds), "shard": shard,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z",
            "pid": os.getpid(), "host": socket.gethostname(), "images_file": None}
    if images is not None:
        meta["images_file"] = name + IMAGES_SUFFIX
        sibling = images[1].replace_schema_metadata({META_KEY: json.dumps({"shard_id": shard_id,
                                                                           "dataset_row": list(images[0])})})
        _write_atomic(sibling, folder / meta["images_file"])
    table = rows.select(list(_COLUMNS)).replace_schema_metadata({META_KEY: json.dumps(meta, default=str)})
    target = folder / f"{name}.parquet"
    _write_atomic(table, target)
    return target


def _metadata(path: Path) -> dict:
    """The shard metadata of the Parquet file `path`; ValueError when it has none or it is malformed."""
    try:
        raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    except (pa.ArrowException, OSError) as exc:
        if not path.exists():  # deleted meanwhile (ingested by another writer, or by hand): not the shard's fault
            raise FileNotFoundError(f"shard {path} is gone") from None
        raise ValueError(f"it is not a readable Parquet file ({' '.join(str(exc).split())[:200]})") from None
    if raw is None:
        raise ValueError("it has no analysis.shard metadata (not written by this project)")
    try:
        meta = json.loads(raw)
    except ValueError:
        raise ValueError("its analysis.shard metadata is not JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("shard_id"), str) or not isinstance(meta.get("model"),
                                                                                                  dict):
        raise ValueError("its analysis.shard metadata lacks shard_id or model")
    return meta


def _read(path: Path, meta: dict) -> tuple[publish.ModelRecord, pa.Table, tuple[tuple, pa.Table] | None]:
    """The record, rows and images registration of a shard; ValueError naming what is wrong."""
    if meta.get("format") != FORMAT:
        raise ValueError(f"its format {meta.get('format')!r} is not {FORMAT} (written by another version)")
    if meta.get("mode") not in publish.WRITE_MODES or not isinstance(meta.get("dataset"), str):
        raise ValueError(f"its mode {meta.get('mode')!r} or dataset {meta.get('dataset')!r} is invalid")
    try:
        record = publish.ModelRecord(**meta["model"])
    except TypeError as exc:
        raise ValueError(f"its model record is malformed ({exc})") from None
    try:
        rows = pq.read_table(path).replace_schema_metadata(None)
    except (pa.ArrowException, OSError) as exc:
        if not path.exists():
            raise FileNotFoundError(f"shard {path} is gone") from None
        raise ValueError(f"its rows cannot be read ({' '.join(str(exc).split())[:200]})") from None
    if rows.column_names != list(_COLUMNS) or rows.num_rows == 0:
        raise ValueError(f"its columns {rows.column_names} (rows {rows.num_rows}) are not {list(_COLUMNS)} "
                         "with at least one row")
    images = None
    if meta.get("images_file"):
        sibling = path.with_name(meta["images_file"])
        if not sibling.is_file():
            raise ValueError(f"its images file {sibling.name} is missing")
        table = pq.read_table(sibling)
        row = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}")).get("dataset_row")
        if not isinstance(row, list):
            raise ValueError(f"its images file {sibling.name} has no dataset row")
        images = (tuple(row), table.replace_schema_metadata(None))
    return record, rows, images


def _remove(path: Path, meta: dict | None) -> None:
    """Delete a shard: the main file first (what makes it pending), then its images sibling."""
    path.unlink(missing_ok=True)
    if meta and meta.get("images_file"):
        path.with_name(meta["images_file"]).unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fail(path: Path, meta: dict | None, reason: str) -> Path:
    """Move a shard (and its images sibling) to failed/ with `<name>.error.txt` holding `reason`; returns its path."""
    failed = path.parent / "failed"
    failed.mkdir(exist_ok=True)
    (failed / f"{path.name}.error.txt").write_text(reason + "\n")
    if meta and meta.get("images_file") and path.with_name(meta["images_file"]).is_file():
        os.replace(path.with_name(meta["images_file"]), failed / meta["images_file"])
    target = failed / path.name
    os.replace(path, target)
    _fsync_dir(failed)
    _fsync_dir(path.parent)
    return target


def store_of(con: duckdb.DuckDBPyConnection) -> Path:
    """The file of the store open on `con`."""
    row = database.first(con, queries.STORE_FILE)
    if not row or not row[0]:
        raise ValueError("con must be a connection to a store file, not an in-memory database")
    return Path(row[0])


def _bar(store: Path):
    """A tqdm bar over the store's pending shards (on stderr), or None when there are none."""
    waiting = len(pending(store))
    if not waiting:
        return None
    from tqdm import tqdm

    return tqdm(total=waiting, desc="ingesting shards", unit="shard", file=sys.stderr, disable=None)


def ingest(con: duckdb.DuckDBPyConnection, store: Path | str | None = None, *, progress: bool = False,
           limit: int | None = None, seconds: float | None = None, first: Path | str | None = None) -> Ingested:
    """Publish the complete pending shards of the store open for writing on `con`, each in ONE transaction.

    `first` (a shard path, the caller's own) goes before the others; the ingest stops after `limit` shards or once
    `seconds` have passed (checked between shards: a shard in progress finishes, and at least one is ingested), and
    `Ingested.left` counts the shards still pending. Orphans of killed writers (`orphans`) are removed first.
    A shard already recorded in `ingested_shards` (a crash between commit and delete) is only deleted; one that
    fails validation moves to `failed/` with `<name>.error.txt` and a ShardWarning, and the others still ingest.
    A StoreError (superclasses, a damaged store) stops here and leaves the shard pending.
    """
    limit, seconds = _check_limit(limit), _check_seconds(seconds)
    if first is not None and not isinstance(first, (str, Path)):
        raise TypeError(f"first={first!r} must be the path of a shard (str or Path), or None")
    store = Path(store) if store is not None else store_of(con)
    bar = _bar(store) if progress else None
    try:
        return _ingest(con, store, limit=limit, seconds=seconds, first=first, bar=bar)
    finally:
        if bar is not None:
            bar.close()


def _ingest(con: duckdb.DuckDBPyConnection, store: Path, *, limit: int | None, seconds: float | None,
            first: Path | str | None, bar) -> Ingested:
    """`ingest` with checked arguments, updating `bar` (a tqdm bar or None) once per shard."""
    deadline = None if seconds is None else time.monotonic() + seconds
    out = Ingested(holds=1)
    out.orphans = _remove_orphans(store)
    files = pending(store)
    if first is not None:
        files.sort(key=lambda p: p.name != Path(first).name)  # stable: the others keep their order
    for path in files:
        if out.handled and ((limit is not None and out.handled >= limit)
                            or (deadline is not None and time.monotonic() >= deadline)):
            break
        meta = None
        try:
            meta = _metadata(path)
            if database.first(con, queries.INGESTED_SHARD_GET, [meta["shard_id"]]) is not None:
                _remove(path, meta)
                out.already.append(meta["shard_id"])
                continue
            record, rows, images = _read(path, meta)
            counts = publish.publish_predictions(
                con, record, meta["dataset"], rows, mode=meta["mode"], images=images, run_id=meta.get("run_id"),
                run_seconds=float(meta.get("run_seconds") or 0.0),
                statements=((queries.INGESTED_SHARD_INSERT, [meta["shard_id"], path.name, record.model_id,
                                                             meta["dataset"], rows.num_rows]),))
        except FileNotFoundError:
            if path.exists():  # a file publish needs (a checkpoint, a superclass file): the shard stays pending
                raise
            continue  # another writer ingested and deleted it meanwhile
        except database.StoreError:
            raise
        except (ValueError, TypeError, duckdb.Error, OSError) as exc:
            reason = " ".join(str(exc).split())
            if not isinstance(exc, (ValueError, TypeError, pa.ArrowException)):
                # the store or the machine failed (memory, disk): the shard is intact and stays pending
                raise database.StoreError(f"ingesting shard {path} stopped: {reason[:300]}; nothing of it was "
                                          "stored and it stays pending for the next ingest") from None
            moved = _fail(path, meta, reason)  # its own fault (its checks, an unreadable file)
            out.failed.append((moved, reason))
            warnings.warn(f"shard {path.name} was not ingested: {reason}; moved to {moved}", ShardWarning,
                          stacklevel=3)
            continue
        finally:
            if bar is not None:
                bar.update(1)
        _remove(path, meta)
        out.published.append({"shard_id": meta["shard_id"], "file": path.name, "model_id": record.model_id,
                              "dataset": meta["dataset"], **counts})
    out.left = len(pending(store))
    return out


def connect_writer(store: Path | str | None = None, *, wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """A write connection for a writer command: waits up to max(wait, WRITERS_WAIT) s while another writer holds the
    store (its holds are short), but only `wait` (default: --wait or 1 s) while a reader (a dashboard) holds it."""
    wait = database.current_wait() if wait is None else database.check_wait(wait)
    deadline = time.monotonic() + max(wait, WRITERS_WAIT)
    reader_seen = 0
    while True:
        try:
            return database.connect(store, wait=wait)
        except database.StoreLockedError as exc:
            reader_seen = reader_seen + 1 if exc.mode == "read" else 0
            # twice read-only in a row: a reader that stays (not another writer's read-only probe of the file)
            if reader_seen >= 2 or time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def land(store: Path | str | None, record: publish.ModelRecord, dataset: str, rows: pa.Table, *, mode: str,
         images: tuple[tuple, pa.Table] | None = None, run_id: str | None = None, run_seconds: float = 0.0,
         shard: str | None = None, wait: float | None = None, con: duckdb.DuckDBPyConnection | None = None) -> Landed:
    """Write a shard, then ingest it and at most LAND_SHARDS other pending shards within LAND_SECONDS when the store
    can be taken for writing within `wait` seconds (default: --wait or 1 s; `con`: a write connection already held);
    else leave it pending (nothing is lost). Other shards left pending: `Landed.left` and a ShardsLeftWarning.

    ValueError when this shard itself fails validation at ingest (it is in failed/ then, with its reason).
    """
    store = Path(store) if store is not None else (store_of(con) if con is not None else paths.db_path())
    path = write_shard(store, record, dataset, rows, mode=mode, images=images, run_id=run_id,
                       run_seconds=run_seconds, shard=shard)
    own = con is None
    if own:
        try:
            con = connect_writer(store, wait=wait)
        except database.StoreLockedError:
            return Landed(path, True, left=len(pending(store)))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ShardWarning)
            done = ingest(con, store, first=path, limit=1 + LAND_SHARDS, seconds=LAND_SECONDS)
        for w in caught:  # others' failed shards: passed on; this shard's failure: raised below
            if f"shard {path.name} " not in str(w.message):
                warnings.warn(w.message, ShardWarning, stacklevel=2)
        mine = next((r for r in done.published if r["file"] == path.name), None)
        for moved, reason in done.failed:
            if moved.name == path.name:
                raise ValueError(f"{reason} (the shard is kept as {moved})")
        top1 = database.first(con, queries.MODEL_TOP1, [record.model_id, dataset])[0] if mine else None
    finally:
        if own:
            con.close()
    if done.left:
        warnings.warn(f"{done.left} other shards are still pending in {shard_dir(store)}; the next writer or "
                      f"`python -m analysis ingest --db {store}` ingests them", ShardsLeftWarning, stacklevel=2)
    if mine is None:  # not published by this ingest: another writer's ingest took it meanwhile
        return Landed(path, False, done, None, None, left=done.left)
    return Landed(path, False, done, {k: mine[k] for k in ("predictions", "new_pairs")}, top1, left=done.left)


def pending_line(path: Path, store: Path) -> str:
    """The CLI's one line for a shard left pending."""
    return (f"the store {store} is busy, so the predictions wait in {path}; the next writer or "
            f"`python -m analysis ingest --db {store}` ingests them")


def ingest_pending(store: Path | str | None = None, *, progress: bool = False) -> Ingested:
    """Ingest every pending shard of `store` in holds of at most INGEST_SECONDS (plus the shard in progress) each,
    letting go of the store for HOLD_GAP s between them so that other writers get it; one tqdm bar over all shards.

    The first hold waits like any writer (`connect_writer`); a later one up to WRITERS_WAIT for anyone (a dashboard
    copying the store in between included). A store not retaken raises StoreLockedError saying what was ingested.
    """
    store = database.check_exists(paths.db_path(store))
    out = Ingested()
    bar = _bar(store) if progress else None
    try:
        while True:
            if out.holds:
                time.sleep(HOLD_GAP)
                try:
                    con = connect_writer(store, wait=max(database.current_wait(), WRITERS_WAIT))
                except database.StoreLockedError as exc:
                    raise database.StoreLockedError(
                        f"{exc}; {len(out.published)} shards were ingested before it took the store and "
                        f"{len(pending(store))} are still pending (run `python -m analysis ingest --db {store}` "
                        "again)", exc.mode) from None
            else:
                con = connect_writer(store)
            if bar is not None:
                bar.total = bar.n + len(pending(store))  # writers may have added shards meanwhile
                bar.refresh()
            try:
                done = _ingest(con, store, limit=None, seconds=INGEST_SECONDS, first=None, bar=bar)
            finally:
                con.close()
            out.published += done.published
            out.already += done.already
            out.failed += done.failed
            out.orphans += done.orphans
            out.holds += 1
            out.left = done.left
            if not done.left or not done.handled:  # all done, or nothing could be taken (every shard vanished)
                return out
    finally:
        if bar is not None:
            bar.close()


def cli_ingest(args: argparse.Namespace) -> int:
    """`python -m analysis ingest [--db FILE] [--wait SECONDS]`: publish every pending Parquet shard."""
    store = paths.db_path(args.db)
    with warning_lines():
        done = ingest_pending(store, progress=True)
    rows = sum(r["predictions"] for r in done.published)
    extra = f", {len(done.already)} already ingested deleted" if done.already else ""
    failed = f", {len(done.failed)} moved to {shard_dir(store) / 'failed'}" if done.failed else ""
    holds = f", in {done.holds} holds of the store" if done.holds > 1 else ""
    gone = f", {len(done.orphans)} orphaned files of killed writers removed" if done.orphans else ""
    print(f"ingested {len(done.published)} shards ({rows} predictions) into {store}{extra}{failed}{holds}{gone}")
    return 0


@contextmanager
def warning_lines() -> Iterator[None]:
    """Inside the block, each ShardWarning is printed as one 'warning:' line on stderr (the CLI's form)."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ShardWarning)
            yield
    finally:  # after the block restored the filters: other warnings go back to them (re-raised inside, they loop)
        for w in caught:
            if issubclass(w.category, ShardWarning):
                print(f"warning: {w.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

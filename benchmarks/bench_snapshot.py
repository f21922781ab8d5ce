"""Snapshot benchmark: how long the dashboard's copy of the store holds it (the longest a writer waits for the
dashboard), by store size, with the store's pages in the page cache (just written) and dropped from it (cold).

Each store is the small test store's schema plus a padding table of random numbers up to the size asked for; the
figure is `Snapshot.seconds`, the time the read-only connection is held while the file is copied and fsynced.
Figures go to docs/SCALE.md, section "Writers and the dashboard" (by hand).

    python benchmarks/bench_snapshot.py [--sizes 50,200,450,1000] [--store FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.store import database, reference, snapshot  # noqa: E402


def _drop_cache(path: Path) -> None:
    """Ask the kernel to forget `path`'s cached pages (no privileges needed), so the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def padded_store(base: Path, target: Path, megabytes: int) -> int:
    """A copy of `base` grown to about `megabytes` MB by a table of random numbers; its size in bytes."""
    shutil.copy(base, target)
    con = database.connect(target)
    try:
        rows = max(0, megabytes * 1_000_000 - base.stat().st_size) // 8
        con.execute("CREATE TABLE bench_padding AS SELECT (random() * 9.2e18)::BIGINT AS v FROM range(?)", [rows])
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return target.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,450,1000", help="store sizes in MB, comma-separated")
    parser.add_argument("--store", type=Path, help="an existing store to pad (default: build one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "data") as folder:
        folder = Path(folder)
        base = args.store
        if base is None:
            base = folder / "base.duckdb"
            reference.build(base, progress=False)
        print("| store | cache | held (copy + fsync) | MB/s | whole call |")
        print("|---|---|---|---|---|")
        for megabytes in (int(s) for s in args.sizes.split(",")):
            store = folder / f"store-{megabytes}.duckdb"
            size = padded_store(base, store, megabytes)
            for cache in ("warm", "cold"):
                for old in folder.glob(f"{store.name}.snapshot*"):
                    old.unlink()
                if cache == "cold":
                    _drop_cache(store)
                started = time.perf_counter()
                shot = snapshot.current(store)
                whole = time.perf_counter() - started
                print(f"| {size / 1e6:,.0f} MB | {cache} | {shot.seconds:.2f} s | {size / 1e6 / shot.seconds:,.0f} | "
                      f"{whole:.2f} s |", flush=True)
            for old in folder.glob(f"{store.name}*"):
                old.unlink()


if __name__ == "__main__":
    main()

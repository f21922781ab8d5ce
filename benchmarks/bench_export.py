"""Export benchmark: wall time and peak RSS of `python -m analysis export` (streamed) on a synthetic zoo, against
the old in-memory path (`errors_frame` -> pandas `to_csv`) at a smaller size, with the two files compared byte for byte.

Builds (or reuses, `--db FILE --reuse`) a store with the reference tables and synthetic models on the first
`--images` validation images (bulk-inserted as `bench_dashboard` does, about half of each model's predictions wrong,
mistakes shared between models), classifies the distinct (image, prediction) pairs, then runs each export in a child
process and reads its peak RSS from `os.wait4`. Writes `docs/PERFORMANCE.md` section `<!-- bench:export -->`.

    python benchmarks/bench_export.py [--errors 10000000] [--images 50000] [--old-errors 500000] [--db FILE --reuse]
"""

from __future__ import annotations

import argparse
import filecmp
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from report import update_section  # noqa: E402

from analysis.knowledge import classes  # noqa: E402
from analysis.store import database, export, reference, summary  # noqa: E402
from analysis.store.filters import ErrorFilter  # noqa: E402
from analysis.taxonomy import classify, labelsets  # noqa: E402

SECTION = "export"
TARGET_RSS_MB = 500
WRONG_RATE = (0.3, 0.7)  # each model's share of wrong predictions, uniform in this range
OLD_PATH = """
import sys
from analysis.store import database, export
from analysis.store.filters import ErrorFilter
db, out, models = sys.argv[1], sys.argv[2], tuple(sys.argv[3:])
con = database.connect(db, read_only=True)
frame = export.errors_frame(con, ErrorFilter(models=models))  # the export before streaming: all rows in pandas
con.close()
export.write_csv(frame, out, store=db, force=True)
print(f"wrote {len(frame)} errors to {out}")
"""


def build_store(path: Path, *, errors: int, images: int, seed: int = 0) -> dict:
    """Reference tables plus enough synthetic models on `images` images for about `errors` error rows."""
    t0 = time.perf_counter()
    reference.build(path, progress=False)
    rng = np.random.default_rng(seed)
    targets = classes.val_targets()[:images].astype(np.int64)
    cand = np.where(rng.random((images, 5)) < 0.7, np.clip(targets[:, None] + rng.integers(-4, 5, (images, 5)), 0, 999),
                    rng.integers(0, 1000, (images, 5)))
    cand[cand == targets[:, None]] = (cand[cand == targets[:, None]] + 1) % 1000
    # ReaL makes some wrong top-1 correct and leaves some images unevaluated: aim 35% over the wrong count.
    models = math.ceil(errors * 1.35 / (images * sum(WRONG_RATE) / 2))
    con = database.connect(path)
    try:
        ids = np.arange(images, dtype=np.int32)
        for m in range(models):
            wrong = rng.random(images) < rng.uniform(*WRONG_RATE)
            pred = np.where(wrong, cand[ids, np.minimum(rng.geometric(0.6, images) - 1, 4)], targets).astype(np.int16)
            top5 = np.concatenate([pred[:, None], cand[:, :4]], axis=1).astype(np.int16)
            table = pa.table({"image_id": ids, "prediction": pred, "confidence": rng.uniform(0.05, 0.99, images)
                              .astype(np.float32), "top5": pa.ListArray.from_arrays(
                                  pa.array(np.arange(0, top5.size + 1, 5, dtype=np.int32)), pa.array(top5.ravel()))})
            with database.registered(con, table, "_synthetic"):
                con.execute("INSERT INTO predictions (model_id, dataset, image_id, prediction, top5, confidence) "
                            "SELECT $model, 'imagenet-val', image_id, prediction, top5, confidence FROM _synthetic",
                            {"model": f"synthetic-{m:04d}"})
            con.execute("INSERT INTO models (model_id, arch, family, training_data, params, source) "
                        "VALUES (?, ?, ?, ?, ?, 'import')", [f"synthetic-{m:04d}", f"arch-{m % 37}",
                                                              ("cnn", "transformer", "mlp", "hybrid")[m % 4],
                                                              "ImageNet-1k", int(rng.integers(5, 600)) * 1_000_000])
            if (m + 1) % 50 == 0:
                print(f"model {m + 1}/{models}", file=sys.stderr)
        pairs = con.execute("SELECT image_id, prediction, count(*)::INTEGER AS models FROM predictions "
                            "GROUP BY ALL ORDER BY image_id, prediction").fetchnumpy()
        result = classify.classify_pairs(np.asarray(pairs["image_id"]), np.asarray(pairs["prediction"]),
                                         labelsets.real())
        frame = pa.table({"image_id": result["image_id"].to_numpy(np.int32),
                          "prediction": result["prediction"].to_numpy(np.int16),
                          "category": result["category"].astype(str).tolist(),
                          "reason": result["reason"].astype(str).tolist(),
                          "models": np.asarray(pairs["models"], dtype=np.int32)})
        with database.registered(con, frame, "_pairs"):
            con.execute("INSERT INTO pair_categories (dataset, image_id, prediction, category, reason, models) "
                        "SELECT 'imagenet-val', image_id, prediction, category, reason, models FROM _pairs")
        summary.refresh_summary(con)  # count_errors reads model_summary
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return {"models": models, "build_s": time.perf_counter() - t0}


def measure(argv: list[str]) -> dict:
    """Run `argv` as a child process; its wall seconds, peak RSS (MB, from `wait4`) and last output line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({child.returncode}):\n{output}")
    return {"s": seconds, "rss_mb": usage.ru_maxrss / 1024, "out": output.strip().splitlines()[0]}


def models_for(con, errors: int) -> list[str]:
    """The first stored models (in id order) whose errors add up to at least `errors`."""
    chosen, total = [], 0
    for model_id, n in con.execute("SELECT p.model_id, count(*) FROM predictions p JOIN pair_categories c USING "
                                   "(dataset, image_id, prediction) WHERE c.category NOT IN ('correct', "
                                   "'not_evaluated') GROUP BY ALL ORDER BY 1").fetchall():
        chosen.append(model_id)
        total += n
        if total >= errors:
            break
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", type=int, default=10_000_000, help="about this many error rows in the store")
    parser.add_argument("--images", type=int, default=50_000, help="first N validation images per model")
    parser.add_argument("--old-errors", type=int, default=500_000, help="rows for the old in-memory path's run")
    parser.add_argument("--db", type=Path, default=None, help="keep the synthetic store here (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="export from an existing --db store without rebuilding")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bench-export-"))
    path = args.db or workdir / "zoo.duckdb"
    try:
        built = "reused"
        if not (args.reuse and path.exists()):
            path.unlink(missing_ok=True)
            info = build_store(path, errors=args.errors, images=args.images)
            built = f"{info['build_s']:.0f} s"
        store_gb = path.stat().st_size / 1e9
        con = database.connect(path, read_only=True)
        try:
            total = export.count_errors(con, ErrorFilter())
            n_models = con.execute("SELECT count(*) FROM models").fetchone()[0]
            subset = models_for(con, args.old_errors)
            subset_rows = export.count_errors(con, ErrorFilter(models=tuple(subset)))
        finally:
            con.close()
        cli = [sys.executable, "-m", "analysis", "export", "--db", str(path), "--force"]
        model_args = [a for m in subset for a in ("--model", m)]
        old = measure([sys.executable, "-c", OLD_PATH, str(path), str(workdir / "old.csv"), *subset])
        new_small = measure([*cli, str(workdir / "new_small.csv"), *model_args])
        same = filecmp.cmp(workdir / "old.csv", workdir / "new_small.csv", shallow=False)
        small_bytes = (workdir / "old.csv").stat().st_size
        (workdir / "old.csv").unlink()
        full = measure([*cli, str(workdir / "all.csv")])
        full_bytes = (workdir / "all.csv").stat().st_size
        with open(workdir / "all.csv", "rb") as handle:
            lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 24), b""))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ok = full["rss_mb"] < TARGET_RSS_MB
    lines_out = [
        f"- store: {n_models} synthetic models x {args.images:,} images, {total:,} error rows "
        f"(build {built}, {store_gb:.2f} GB)",
        f"- streamed export, all {total:,} errors: {full['s']:.1f} s, peak RSS {full['rss_mb']:.0f} MB "
        f"({'under' if ok else 'OVER'} the {TARGET_RSS_MB} MB target), {full_bytes / 1e9:.2f} GB of CSV, "
        f"{lines - 1:,} rows written",
        f"- old in-memory path (`errors_frame` + pandas `to_csv`), {subset_rows:,} errors of {len(subset)} models: "
        f"{old['s']:.1f} s, peak RSS {old['rss_mb']:.0f} MB",
        f"- streamed export of the same {subset_rows:,} errors: {new_small['s']:.1f} s, peak RSS "
        f"{new_small['rss_mb']:.0f} MB; bytes {'identical' if same else 'DIFFERENT'} to the old path's "
        f"({small_bytes / 1e6:.0f} MB); {old['s'] / new_small['s']:.1f}x faster, "
        f"{old['rss_mb'] / new_small['rss_mb']:.1f}x less memory",
    ]
    print("\n".join(lines_out))
    if not args.no_write:
        update_section(SECTION, "\n".join([
            "## Export (`benchmarks/bench_export.py`)", "",
            f"Each export runs as a child process (peak RSS from `wait4`); the streamed one is `python -m analysis "
            f"export`: the rows in parts of at most {export.PART_ROWS:,} in the export's order (whole models "
            f"together, a larger model by runs of image ids), each sorted alone, DuckDB formatting record batches of "
            f"{export.BATCH_ROWS:,} rows under a memory limit of {export.MEMORY_LIMIT}. Machine: {platform.machine()} "
            f"with {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} when written: shared with other jobs), "
            f"DuckDB {__import__('duckdb').__version__}, Python {platform.python_version()}.",
            "", f"Command: `python benchmarks/bench_export.py --errors {args.errors} --images {args.images} "
            f"--old-errors {args.old_errors}`", "", *lines_out]))
    if args.db is None:
        path.unlink(missing_ok=True)
    return 0 if ok and same else 1


if __name__ == "__main__":
    raise SystemExit(main())

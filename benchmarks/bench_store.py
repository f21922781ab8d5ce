"""Store benchmark: import rows/s, store bytes per model, and classify-and-store time for a synthetic zoo.

Builds a temporary store, then publishes `--models` synthetic models on the 50,000 validation images
through the same path as `import-predictions` (one transaction per model: predictions, classification of
the new (image, prediction) pairs, pair model counts). Mistakes repeat across models as in a real zoo:
each image has a few likely wrong classes. Figures go to docs/PERFORMANCE.md, section `bench:store`.

    python benchmarks/bench_store.py [--models 200] [--images 50000] [--keep FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from report import update_section  # noqa: E402


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {gpu}, Python {platform.python_version()}"


def synthetic_model(rng, targets: np.ndarray, confusers: np.ndarray, accuracy: float):
    """top5 `(N, 5)` and confidences `(N, 5)`: correct with `accuracy`, else one of the image's confusers."""
    n = len(targets)
    top1 = targets.copy()
    wrong = rng.random(n) > accuracy
    top1[wrong] = confusers[wrong, rng.integers(0, confusers.shape[1], wrong.sum())]
    top5 = (top1[:, None] + np.arange(5)[None, :]) % 1000
    conf = np.sort(rng.dirichlet(np.ones(6), n)[:, :5].astype(np.float32), axis=1)[:, ::-1]
    return top5, np.ascontiguousarray(conf)


def _export_times(con, n_models: int) -> dict[str, str]:
    """Median seconds of `export.errors_frame` (first page of 50) and `count_errors` for a few filters."""
    from analysis.store import export
    from analysis.store.filters import ErrorFilter

    out = {}
    for label, flt in (("all models", ErrorFilter()), ("one model", ErrorFilter(models=("synthetic-0001",))),
                       (f"made by >= {max(1, n_models // 10)} models", ErrorFilter(min_models=max(1, n_models // 10)))):
        page, count = [], []
        for _ in range(3):
            t = time.perf_counter()
            export.errors_frame(con, flt, limit=50)
            page.append(time.perf_counter() - t)
            t = time.perf_counter()
            n = export.count_errors(con, flt)
            count.append(time.perf_counter() - t)
        out[f"export, {label} ({n:,} errors)"] = (f"first page {np.median(page) * 1000:.0f} ms, "
                                                   f"count {np.median(count) * 1000:.0f} ms")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--images", type=int, default=50_000, help="first N validation images per model")
    parser.add_argument("--keep", type=Path, default=None, help="keep the store at this path")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    args = parser.parse_args(argv)

    from analysis.knowledge import classes
    from analysis.store import database, publish, reference
    workdir = Path(tempfile.mkdtemp(prefix="bench-store-"))
    path = args.keep or workdir / "zoo.duckdb"
    t0 = time.perf_counter()
    reference.build(path, progress=False)
    build_s = time.perf_counter() - t0
    con = database.connect(path)
    con.execute("CHECKPOINT")
    base_bytes = path.stat().st_size

    rng = np.random.default_rng(0)
    targets = classes.val_targets()[: args.images].astype(np.int64)
    confusers = (targets[:, None] + rng.integers(1, 1000, (len(targets), 4))) % 1000
    image_ids = np.arange(len(targets), dtype=np.int32)
    times, new_pairs = [], []
    for m in range(args.models):
        top5, conf = synthetic_model(rng, targets, confusers, accuracy=rng.uniform(0.55, 0.9))
        rows = publish.prediction_table(image_ids, top5[:, 0], top5=top5, top5_confidence=conf)
        record = publish.ModelRecord(f"synthetic-{m:04d}", "import", arch="synthetic", family="cnn",
                                     training_data="ImageNet-1k", params=1)
        t = time.perf_counter()
        out = publish.publish_predictions(con, record, "imagenet-val", rows)
        times.append(time.perf_counter() - t)
        new_pairs.append(out["new_pairs"])
        if (m + 1) % 20 == 0 or m == 0:
            print(f"model {m + 1}/{args.models}: {times[-1]:.2f} s, {out['new_pairs']} new pairs", file=sys.stderr)
    con.execute("CHECKPOINT")
    pairs = database.first(con, "SELECT count(*) FROM pair_categories")[0]
    export_times = _export_times(con, args.models)
    con.close()
    total_bytes = path.stat().st_size
    rows_total = args.models * len(targets)
    times = np.array(times)
    figures = {
        "models": args.models, "images per model": len(targets), "prediction rows": rows_total,
        "distinct (image, prediction) pairs classified": pairs,
        "build (reference tables)": f"{build_s:.1f} s",
        "classify-and-store, whole zoo": f"{times.sum():.1f} s",
        "import rows/s (whole zoo)": f"{rows_total / times.sum():,.0f}",
        "first model (classifies most pairs)": f"{times[0]:.2f} s ({new_pairs[0]} pairs)",
        "later models, median": f"{np.median(times[1:]) if len(times) > 1 else times[0]:.2f} s "
                                f"({int(np.median(new_pairs[1:])) if len(new_pairs) > 1 else new_pairs[0]} new pairs)",
        "store bytes per model": f"{(total_bytes - base_bytes) / args.models / 1e6:.2f} MB "
                                 f"(reference tables {base_bytes / 1e6:.1f} MB, total {total_bytes / 1e6:.1f} MB)",
    }
    figures.update(export_times)
    lines = [f"- {k}: {v}" for k, v in figures.items()]
    print("\n".join(lines))
    if not args.no_write:
        update_section("store", "\n".join([
            "## Store (`benchmarks/bench_store.py`)", "",
            f"Synthetic zoo published model by model through `publish.publish_predictions` (one transaction each, "
            f"top-5 and confidences stored); machine: {machine()}.", "",
            f"Command: `python benchmarks/bench_store.py --models {args.models} --images {len(targets)}`", "", *lines]))
    if args.keep is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

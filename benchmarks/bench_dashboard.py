"""Latency of the queries behind each dashboard page on a synthetic zoo store (p50 / p95 per query).

Builds a temporary store with `analysis.store` (reference tables), bulk-inserts a synthetic zoo
(default 200 models × 50,000 validation images; each image has a few likely confusions that the
models share, as real mistakes do), classifies the distinct (image, prediction) pairs with
`analysis.taxonomy.classify.classify_pairs`, fills the per-model summary (`summary.refresh_summary`), then times every `analysis.store.views` query and the first page of
`analysis.store.export.errors_frame`. Target: p95 < 300 ms per query. Writes `docs/PERFORMANCE.md`
section `<!-- bench:dashboard -->`.

    python benchmarks/bench_dashboard.py [--models 200] [--images 50000] [--repeat 15] [--db FILE]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from report import update_section  # noqa: E402

from analysis.knowledge import classes
from analysis.store import database, export, reference, summary, views
from analysis.store.filters import ErrorFilter  # noqa: E402
from analysis.taxonomy import agreement, classify, labelsets  # noqa: E402

TARGET_P95_MS = 300.0
FAMILIES = ("cnn", "transformer", "mlp", "hybrid")
TRAINING = ("ImageNet-1k (1.2M)", "ImageNet-21k (14M)", "LAION-2B (2B)", "Instagram (3.6B)")
SECTION = "dashboard"


def _top5(pred: np.ndarray, cand: np.ndarray) -> pa.ListArray:
    # top-1 first, then the image's candidate confusions (distinct enough for a realistic row size)
    values = np.concatenate([pred[:, None], cand[:, :4]], axis=1).astype(np.int16)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, values.size + 1, 5, dtype=np.int32)),
                                    pa.array(values.reshape(-1)))


def build_synthetic_store(path: Path, *, models: int, images: int, seed: int = 0) -> dict:
    """A store at `path` with `models` synthetic models on the first `images` validation images; returns counts."""
    t0 = time.perf_counter()
    reference.build(path, progress=False)
    t_build = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    targets = classes.val_targets()[:images].astype(np.int64)
    # Each image's likely confusions: mostly neighbouring class ids (often the same superclass), some random.
    cand = np.where(rng.random((images, 5)) < 0.7,
                    np.clip(targets[:, None] + rng.integers(-4, 5, (images, 5)), 0, 999),
                    rng.integers(0, 1000, (images, 5)))
    cand[cand == targets[:, None]] = (cand[cand == targets[:, None]] + 1) % 1000
    t1 = time.perf_counter()
    con = database.connect(path)
    try:
        ids = np.arange(images, dtype=np.int32)
        model_rows = []
        for m in range(models):
            model_id = f"synthetic-{m:03d}"
            rate = rng.uniform(0.10, 0.45)
            difficulty = rng.random(images)  # shared across models: hard images are wrong for many models
            wrong = (difficulty * 0.5 + rng.random(images) * 0.5) < rate
            choice = np.minimum(rng.geometric(0.6, images) - 1, 4)
            pred = np.where(wrong, cand[np.arange(images), choice], targets).astype(np.int16)
            conf = rng.uniform(0.2, 0.99, images).astype(np.float32)
            table = pa.table({"image_id": pa.array(ids), "prediction": pa.array(pred), "top5": _top5(pred, cand),
                              "confidence": pa.array(conf)})
            con.register("_synthetic", table)
            con.execute("""
                INSERT INTO predictions (model_id, dataset, image_id, prediction, top5, confidence)
                SELECT $model, 'imagenet-val', image_id, prediction, top5, confidence FROM _synthetic
            """, {"model": model_id})
            con.unregister("_synthetic")
            model_rows.append((model_id, f"arch-{m % 37}", FAMILIES[m % len(FAMILIES)], TRAINING[m % len(TRAINING)],
                               int(rng.integers(5, 600) * 1_000_000), "import"))
        con.executemany("INSERT INTO models (model_id, arch, family, training_data, params, source) "
                        "VALUES (?, ?, ?, ?, ?, ?)", model_rows)
        t_insert = time.perf_counter() - t1
        t2 = time.perf_counter()
        pairs = con.execute("""
            SELECT image_id, prediction, count(*)::INTEGER AS models FROM predictions
            WHERE dataset = 'imagenet-val' GROUP BY ALL ORDER BY image_id, prediction
        """).fetchnumpy()
        result = classify.classify_pairs(np.asarray(pairs["image_id"]), np.asarray(pairs["prediction"]),
                                         labelsets.real())
        frame = pa.table({"image_id": pa.array(result["image_id"].to_numpy(np.int32)),
                          "prediction": pa.array(result["prediction"].to_numpy(np.int16)),
                          "category": pa.array(result["category"].astype(str).tolist()),
                          "reason": pa.array(result["reason"].astype(str).tolist()),
                          "models": pa.array(np.asarray(pairs["models"], dtype=np.int32))})
        con.register("_pairs", frame)
        con.execute("INSERT INTO pair_categories (dataset, image_id, prediction, category, reason, models) "
                    "SELECT 'imagenet-val', image_id, prediction, category, reason, models FROM _pairs")
        con.unregister("_pairs")
        t_classify = time.perf_counter() - t2
        t3 = time.perf_counter()
        with database.transaction(con):  # the bulk insert bypassed publish_predictions: summarise every model at once
            summary.refresh_summary(con)
        t_summary = time.perf_counter() - t3
        con.execute("CHECKPOINT")
        n_pred = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
    finally:
        con.close()
    return {"predictions": int(n_pred), "pairs": len(frame), "build_s": t_build, "insert_s": t_insert,
            "classify_s": t_classify, "summary_s": t_summary, "bytes": os.path.getsize(path)}


def page_queries(con, model_a: str, model_b: str, dataset: str) -> dict[str, tuple[str, callable]]:
    """name -> (page, zero-argument call) for every query a page issues."""
    flt = ErrorFilter(dataset=dataset)
    flt_model = ErrorFilter(dataset=dataset, models=(model_a,))
    flt_narrow = ErrorFilter(dataset=dataset, categories=("fine_grained",), min_models=20, class_search="dog")
    detail_image = int(con.execute(
        "SELECT image_id FROM predictions WHERE model_id = ? AND dataset = ? AND prediction <> 0 LIMIT 1",
        [model_a, dataset]).fetchone()[0])
    return {
        "datasets": ("sidebar", lambda: views.datasets(con)),
        "models": ("sidebar", lambda: views.models(con)),
        "superclass_options": ("sidebar", lambda: views.superclass_options(con)),
        "family_options": ("sidebar", lambda: views.family_options(con)),
        "model_metrics": ("overview", lambda: views.model_metrics(con, model_a, dataset=dataset)),
        "composition": ("overview", lambda: views.composition(con, model_a, dataset=dataset)),
        "top_confusions": ("overview", lambda: views.top_confusions(con, model_a, dataset=dataset, limit=25)),
        "count_errors (all models)": ("browse", lambda: export.count_errors(con, flt)),
        "errors_frame page 1 (all models)": ("browse", lambda: export.errors_frame(con, flt, limit=12)),
        "count_errors (one model)": ("browse", lambda: export.count_errors(con, flt_model)),
        "errors_frame page 1 (one model)": ("browse", lambda: export.errors_frame(con, flt_model, limit=12)),
        "errors_frame page 1 (category, k>=20, search)": ("browse",
                                                          lambda: export.errors_frame(con, flt_narrow, limit=12)),
        "error_detail": ("browse", lambda: views.error_detail(con, model_a, dataset, detail_image)),
        "transition_matrix": ("compare", lambda: views.transition_matrix(con, model_a, model_b, dataset=dataset)),
        "compare_counts": ("compare", lambda: views.compare_counts(con, model_a, model_b, dataset=dataset)),
        "compare_images only_a (500)": ("compare", lambda: views.compare_images(
            con, model_a, model_b, dataset=dataset, kind="only_a", limit=500)),
        "compare_images cell (500)": ("compare", lambda: views.compare_images(
            con, model_a, model_b, dataset=dataset, kind="cell", category_a="correct",
            category_b="model_failure", limit=500)),
        "agreement.compare (ViT-3B)": ("experts", lambda: agreement.compare("vit3b")),
        "zoo_points (paper + stored)": ("zoo", lambda: views.zoo_points(con, category="fine_grained", x="mla")),
        "superclass_confusions": ("zoo", lambda: views.superclass_confusions(con, model_a, dataset=dataset)),
    }


def time_queries(con, queries: dict, *, repeat: int) -> list[dict]:
    rows = []
    for name, (page, call) in queries.items():
        call()  # warm-up (plans, caches of the OS page cache)
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            call()
            times.append((time.perf_counter() - t) * 1000)
        rows.append({"page": page, "query": name, "p50": float(np.percentile(times, 50)),
                     "p95": float(np.percentile(times, 95))})
        print(f"{page:9s} {name:48s} p50 {rows[-1]['p50']:7.1f} ms   p95 {rows[-1]['p95']:7.1f} ms", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--db", type=Path, default=None, help="keep the synthetic store here (default: a temp dir)")
    parser.add_argument("--reuse", action="store_true", help="time an existing --db store without rebuilding it")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/PERFORMANCE.md")
    args = parser.parse_args(argv)
    if args.models < 2 or not 1 <= args.images <= classes.NUM_VAL:
        parser.error("--models must be >= 2 and --images within 1..50000")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "zoo.duckdb"
        info = {}
        if not (args.reuse and path.is_file()):
            if path.exists():
                path.unlink()
            print(f"building a synthetic store: {args.models} models x {args.images} images -> {path}", flush=True)
            info = build_synthetic_store(path, models=args.models, images=args.images)
            print(f"  {info['predictions']:,} predictions, {info['pairs']:,} distinct pairs; build {info['build_s']:.1f} s,"
                  f" insert {info['insert_s']:.1f} s, classify {info['classify_s']:.1f} s,"
                  f" summary {info['summary_s']:.1f} s,"
                  f" {info['bytes'] / 2**20:.0f} MiB", flush=True)
        con = database.connect(path, read_only=True)
        try:
            n_models = con.execute("SELECT count(DISTINCT model_id) FROM predictions").fetchone()[0]
            n_pred = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
            rows = time_queries(con, page_queries(con, "synthetic-000", "synthetic-001", "imagenet-val"),
                                repeat=args.repeat)
        finally:
            con.close()
    worst = max(rows, key=lambda r: r["p95"])
    ok = worst["p95"] < TARGET_P95_MS
    print(f"worst p95: {worst['query']} {worst['p95']:.0f} ms -> target p95 < {TARGET_P95_MS:.0f} ms "
          f"{'met' if ok else 'NOT met'}")
    if not args.no_write:
        lines = [
            "## Dashboard queries",
            "",
            f"`python benchmarks/bench_dashboard.py --models {args.models} --images {args.images} "
            f"--repeat {args.repeat}`: a synthetic store of {n_models} models × {args.images:,} validation images "
            f"({n_pred:,} predictions"
            + (f", {info['pairs']:,} distinct classified pairs, {info['bytes'] / 2**20:.0f} MiB" if info else "")
            + f"), read-only connection, {args.repeat} timed runs per query after one warm-up, on "
            f"{platform.machine()} with {os.cpu_count()} CPUs, DuckDB {__import__('duckdb').__version__}. "
            f"Target: p95 < {TARGET_P95_MS:.0f} ms for every query "
            f"({'met' if ok else 'NOT met: worst ' + worst['query']}).",
            "",
            "| page | query | p50 ms | p95 ms |",
            "|---|---|---:|---:|",
            *[f"| {r['page']} | {r['query']} | {r['p50']:.1f} | {r['p95']:.1f} |" for r in rows],
        ]
        misses = [r for r in rows if r["p95"] >= TARGET_P95_MS]
        if misses:
            lines += ["", "Over target: " + ", ".join(f"{r['query']} ({r['p95']:.0f} ms)" for r in misses) + ". "
                      "The dashboard caches every query result per store version (`st.cache_data`), so each is paid "
                      "once per store change."]
        if info:
            lines += ["", f"Building the synthetic store: reference tables {info['build_s']:.1f} s, bulk insert "
                          f"{info['insert_s']:.1f} s, classifying the distinct pairs {info['classify_s']:.1f} s, "
                          f"the per-model summary (`model_summary`, all models at once) {info['summary_s']:.1f} s."]
        update_section(SECTION, "\n".join(lines))
        print("updated docs/PERFORMANCE.md (bench:dashboard)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Classify a synthetic model zoo at the paper's scale end to end and compare with the per-row reference.

A zoo of `--models` models (default 962, the paper's) × 50,000 validation images with error rates
drawn between 10% and 45%. Mistakes repeat across models as real ones do: each image has a small
set of likely confusions (classes sharing a superclass with the target, classes that co-occur with
it in ReaL, random classes), harder images are missed by more models, and each model's wrong
prediction is drawn from the image's set. Pipeline: distinct (image, prediction) pairs → classify
(with reasons) → broadcast → per-model category counts. The per-row reference is timed on random
samples and extrapolated. Figures go to the `bench:classify` section of docs/PERFORMANCE.md.

    python benchmarks/bench_classify.py [--models N] [--sample 3000] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis import classify, labelsets, metrics  # noqa: E402
from analysis import taxonomy as tx  # noqa: E402
from analysis.superclasses import shares_superclass  # noqa: E402

SECTION = "classify"
CONFUSIONS = 6


def synthetic_zoo(labelset: labelsets.LabelSet, n_models: int, seed: int) -> np.ndarray:
    """Top-1 predictions `(n_models, N)` int16 with repeating, image-specific mistakes."""
    rng = np.random.default_rng(seed)
    n = len(labelset)
    targets = labelset.targets.astype(np.int64)
    share, counts = shares_superclass(), labelset.cooccurrence
    # Per target class: candidate confusions (same superclass, then co-occurring, then random).
    per_class = []
    for c in range(1000):
        near = np.flatnonzero(share[c] & (np.arange(1000) != c))
        cooc = np.flatnonzero((counts[c] > 0) & (np.arange(1000) != c))
        pool = np.concatenate([near, cooc]) if len(near) + len(cooc) else np.array([(c + 1) % 1000])
        per_class.append(pool)
    confusions = np.empty((n, CONFUSIONS), dtype=np.int16)
    for i in range(n):
        pool = per_class[targets[i]]
        picks = pool[rng.integers(0, len(pool), CONFUSIONS - 2)]
        randoms = rng.integers(0, 1000, 2)
        randoms[randoms == targets[i]] = (targets[i] + 1) % 1000
        confusions[i] = np.concatenate([picks, randoms])
    difficulty = rng.beta(0.6, 2.0, n)
    difficulty /= difficulty.mean()
    weights = 0.5 ** np.arange(CONFUSIONS)
    weights /= weights.sum()
    preds = np.empty((n_models, n), dtype=np.int16)
    for m in range(n_models):
        rate = rng.uniform(0.10, 0.45)
        wrong = rng.random(n) < np.minimum(1.0, rate * difficulty)
        choice = rng.choice(CONFUSIONS, size=n, p=weights)
        preds[m] = np.where(wrong, confusions[np.arange(n), choice], targets)
    return preds


def run_pipeline(preds: np.ndarray, labelset: labelsets.LabelSet) -> dict:
    """Distinct pairs → classify → broadcast → per-model counts; returns timings and results."""
    n_models, n = preds.shape
    times = {}
    start = time.perf_counter()
    # Rows grouped by image (as the store orders predictions): the bitmap of distinct_pairs stays in cache.
    image_ids = np.repeat(np.arange(n, dtype=np.int32), n_models)
    pair_ids, pair_preds, inverse = classify.distinct_pairs(image_ids, np.ascontiguousarray(preds.T).reshape(-1), n)
    del image_ids
    times["distinct"] = time.perf_counter() - start
    t = time.perf_counter()
    codes, reasons = classify.classify_codes(pair_ids, pair_preds, labelset)
    times["classify"] = time.perf_counter() - t
    t = time.perf_counter()
    row_codes = codes[inverse]
    del inverse
    times["broadcast"] = time.perf_counter() - t
    t = time.perf_counter()
    model_index = np.tile(np.arange(n_models, dtype=np.int16), n)
    counts = metrics.category_counts(model_index, row_codes, n_models)
    times["counts"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - start
    return {"times": times, "pairs": len(pair_ids), "pair_ids": pair_ids, "pair_preds": pair_preds,
            "codes": codes, "reasons": reasons, "counts": counts}


def time_reference(ids: np.ndarray, preds: np.ndarray, labelset: labelsets.LabelSet) -> tuple[float, list]:
    start = time.perf_counter()
    out = [classify.classify_one(i, p, labelset) for i, p in zip(ids, preds)]
    return (time.perf_counter() - start) / len(ids), out


def write_section(text: str, path: Path = ROOT / "docs" / "PERFORMANCE.md") -> None:
    begin, end = f"<!-- bench:{SECTION} -->", f"<!-- /bench:{SECTION} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    current = path.read_text() if path.exists() else "# Performance\n\nFigures written by the scripts in `benchmarks/`.\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    updated = pattern.sub(lambda _: block, current) if pattern.search(current) else current.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=962, help="models in the zoo (default 962, the paper's)")
    parser.add_argument("--sample", type=int, default=3000, help="pairs/rows to time the per-row reference on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    args = parser.parse_args(argv)
    if args.models < 1 or args.sample < 1:
        parser.error("--models and --sample must be positive")

    t = time.perf_counter()
    labelset = labelsets.real()
    # Build the cached matrices (labels, superclasses, collapsed pairs) outside the timing.
    classify.classify_codes(np.arange(10), np.arange(10), labelset)
    load = time.perf_counter() - t
    t = time.perf_counter()
    preds = synthetic_zoo(labelset, args.models, args.seed)
    generate = time.perf_counter() - t
    rows = preds.size
    errors = int((preds != labelset.targets[None, :]).sum())

    # Peak RSS (not tracemalloc, whose per-object hooks slow the Python-level reason formatting 10×).
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_pipeline(preds, labelset)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = result["times"]

    rng = np.random.default_rng(args.seed + 1)
    pick = rng.choice(result["pairs"], size=min(args.sample, result["pairs"]), replace=False)
    per_pair, ref = time_reference(result["pair_ids"][pick], result["pair_preds"][pick], labelset)
    got = list(zip(tx.ids_of(result["codes"][pick]), result["reasons"][pick]))
    mismatches = sum(a != b for a, b in zip(ref, got))
    flat = rng.choice(rows, size=min(args.sample, rows), replace=False)
    per_row, _ = time_reference(flat % preds.shape[1], preds.reshape(-1)[flat], labelset)

    ref_pairs = per_pair * result["pairs"]
    ref_rows = per_row * rows
    totals = result["counts"].sum(axis=0)
    figures = {
        "models × images": f"{args.models} × {preds.shape[1]:,} = {rows:,} rows ({errors:,} top-1 errors)",
        "distinct (image, prediction) pairs": f"{result['pairs']:,} ({rows / result['pairs']:.0f} rows per pair)",
        "end to end (distinct → classify → broadcast → counts)": f"{times['total']:.2f} s",
        "  distinct pairs": f"{times['distinct']:.2f} s",
        "  classify distinct pairs, with reasons": f"{times['classify']:.2f} s "
                                                   f"({times['classify'] / result['pairs'] * 1e6:.2f} µs/pair)",
        "  broadcast to rows": f"{times['broadcast']:.2f} s",
        "  per-model category counts": f"{times['counts']:.2f} s",
        "peak RSS of the process (getrusage; incl. the zoo and the label set)": f"{rss_after / 2**10:,.0f} MiB",
        "  of which added by the pipeline": f"{(rss_after - rss_before) / 2**10:,.0f} MiB",
        "per-row reference": f"{per_pair * 1e6:.1f} µs/pair on {len(pick):,} random distinct pairs "
                             f"({mismatches} disagreements), {per_row * 1e6:.1f} µs/row on {len(flat):,} random rows",
        "speed-up, classify vs reference on the distinct pairs": f"{ref_pairs / times['classify']:.0f}× "
                                                                 f"(reference ≈ {ref_pairs:.0f} s)",
        "speed-up, end to end vs reference on every row": f"{ref_rows / times['total']:.0f}× "
                                                          f"(reference ≈ {ref_rows / 60:.0f} min)",
        "setup (not timed above)": f"label set {load:.1f} s, zoo generation {generate:.1f} s",
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores (load average "
                   f"{os.getloadavg()[0]:.1f}: shared with other jobs, timings vary ~2×), "
                   f"Python {platform.python_version()}, numpy {np.__version__}",
        "rows per category": ", ".join(f"{c} {int(totals[tx.code_of(c)]):,}" for c in tx.IDS if totals[tx.code_of(c)]),
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if mismatches:
        print(f"ERROR: vectorised and reference disagree on {mismatches} sampled pairs", file=sys.stderr)
    if not args.no_write:
        lines = ["## Classification of a model zoo (`benchmarks/bench_classify.py`)", "",
                 f"Synthetic zoo at the paper's scale, run `python benchmarks/bench_classify.py --models {args.models}`"
                 f" on {time.strftime('%Y-%m-%d')}. Targets: whole zoo < 60 s, ≥ 100× the per-row reference.", "",
                 "| figure | value |", "|---|---|"]
        lines += [f"| {k.strip()} | {v} |" for k, v in figures.items()]
        write_section("\n".join(lines))
        print("wrote the bench:classify section of docs/PERFORMANCE.md")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

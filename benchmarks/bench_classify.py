"""Classify a synthetic model zoo at the paper's scale end to end and compare with the per-row reference.

A zoo of `--models` models (default 962, the paper's) × 50,000 validation images with error rates
drawn between 10% and 45%. Mistakes repeat across models as real ones do: each image has a small
set of likely confusions (classes sharing a superclass with the target, classes that co-occur with
it in ReaL, random classes), harder images are missed by more models, and each model's wrong
prediction is drawn from the image's set. Pipeline, on the whole zoo: distinct (image, prediction)
pairs (`classify.zoo_pairs`) → classify them with reasons (`classify.classify_codes`) → per-model
category counts (`classify.zoo_category_counts`).

The per-row reference (`classify.classify_one`) classifies every row of a random sample of rows and
every pair of a random sample of distinct pairs; the pipeline's verdicts on the same samples must
agree. Speed-ups extrapolate the reference's time per row (per pair) to all rows (pairs):
end to end = reference µs/row × rows / pipeline seconds; distinct pairs = reference µs/pair × pairs /
classify seconds. The pipeline and the reference run in alternating rounds in one process (same
load); the figures are the medians over rounds. Figures go to the `bench:classify` section of
docs/PERFORMANCE.md.

    python benchmarks/bench_classify.py [--models N] [--rows 20000] [--pairs 5000] [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from report import update_section  # noqa: E402

from analysis.knowledge.superclasses import shares_superclass  # noqa: E402
from analysis.taxonomy import categories as tx  # noqa: E402
from analysis.taxonomy import classify, labelsets, metrics  # noqa: E402

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
    """Distinct pairs → classify with reasons → per-model counts on the whole zoo; wall and CPU seconds."""
    wall, cpu = {}, {}
    marks = [(time.perf_counter(), time.process_time())]

    def lap(name: str) -> None:
        marks.append((time.perf_counter(), time.process_time()))
        wall[name] = marks[-1][0] - marks[-2][0]
        cpu[name] = marks[-1][1] - marks[-2][1]

    pair_ids, pair_preds = classify.zoo_pairs(preds)
    lap("distinct")
    codes, reasons = classify.classify_codes(pair_ids, pair_preds, labelset)
    lap("classify")
    counts = classify.zoo_category_counts(preds, pair_ids, pair_preds, codes)
    lap("counts")
    wall["total"], cpu["total"] = marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]
    return {"wall": wall, "cpu": cpu, "pairs": len(pair_ids), "pair_ids": pair_ids, "pair_preds": pair_preds,
            "codes": codes, "reasons": reasons, "counts": counts}


def run_reference(ids: np.ndarray, preds: np.ndarray, labelset: labelsets.LabelSet) -> tuple[float, float, list]:
    """classify_one on every (image, prediction): wall and CPU seconds per call, and the verdicts."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = [classify.classify_one(i, p, labelset) for i, p in zip(ids.tolist(), preds.tolist())]
    return (time.perf_counter() - wall) / len(ids), (time.process_time() - cpu) / len(ids), out


def pipeline_verdicts(result: dict, ids: np.ndarray, preds: np.ndarray) -> list:
    """The pipeline's (category, reason) of given rows, looked up in its distinct pairs."""
    at = np.searchsorted(result["pair_ids"] * 1000 + result["pair_preds"], ids.astype(np.int64) * 1000 + preds)
    return list(zip(tx.ids_of(result["codes"][at]), result["reasons"][at]))


def counts_by_rows(preds: np.ndarray, result: dict, models: np.ndarray) -> np.ndarray:
    """Per-model counts of some models the plain way (a per-row code array + metrics.category_counts)."""
    n = preds.shape[1]
    at = np.searchsorted(result["pair_ids"] * 1000 + result["pair_preds"],
                         np.tile(np.arange(n, dtype=np.int64) * 1000, len(models)) + preds[models].reshape(-1))
    index = np.repeat(np.arange(len(models)), n)
    return metrics.category_counts(index, result["codes"][at], len(models))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=962, help="models in the zoo (default 962, the paper's)")
    parser.add_argument("--rows", type=int, default=20_000, help="random rows the per-row reference classifies")
    parser.add_argument("--pairs", type=int, default=5_000, help="random distinct pairs the reference classifies")
    parser.add_argument("--rounds", type=int, default=3, help="alternating pipeline/reference rounds (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    args = parser.parse_args(argv)
    if min(args.models, args.rows, args.pairs, args.rounds) < 1:
        parser.error("--models, --rows, --pairs and --rounds must be positive")

    t = time.perf_counter()
    labelset = labelsets.real()
    # Build the cached matrices (labels, superclasses, collapsed pairs) outside the timing.
    classify.classify_codes(np.arange(10), np.arange(10), labelset)
    load = time.perf_counter() - t
    t = time.perf_counter()
    preds = synthetic_zoo(labelset, args.models, args.seed)
    generate = time.perf_counter() - t
    n_models, n = preds.shape
    rows = preds.size
    errors = int((preds != labelset.targets[None, :]).sum())

    rng = np.random.default_rng(args.seed + 1)
    flat = rng.choice(rows, size=min(args.rows, rows), replace=False)
    row_ids, row_preds = flat % n, preds.reshape(-1)[flat]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs, ref_rows, ref_pairs = [], [], []
    pick = None
    for _ in range(args.rounds):
        result = run_pipeline(preds, labelset)
        runs.append(result)
        if pick is None:
            rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            pick = rng.choice(result["pairs"], size=min(args.pairs, result["pairs"]), replace=False)
        ref_rows.append(run_reference(row_ids, row_preds, labelset))
        ref_pairs.append(run_reference(result["pair_ids"][pick], result["pair_preds"][pick], labelset))

    result = runs[-1]
    row_mismatches = sum(a != b for a, b in zip(ref_rows[-1][2], pipeline_verdicts(result, row_ids, row_preds)))
    pair_mismatches = sum(a != b for a, b in zip(ref_pairs[-1][2],
                                                 pipeline_verdicts(result, result["pair_ids"][pick],
                                                                   result["pair_preds"][pick])))
    checked = np.unique(np.r_[0, n_models - 1, rng.integers(0, n_models, 3)])
    counts_ok = bool((counts_by_rows(preds, result, checked) == result["counts"][checked]).all()
                     and result["counts"].sum() == rows)

    def median(values) -> float:
        return statistics.median(values)

    wall = {k: median([r["wall"][k] for r in runs]) for k in runs[0]["wall"]}
    cpu_total = median([r["cpu"]["total"] for r in runs])
    cpu_classify = median([r["cpu"]["classify"] for r in runs])
    per_row, per_row_cpu = median([r[0] for r in ref_rows]), median([r[1] for r in ref_rows])
    per_pair, per_pair_cpu = median([r[0] for r in ref_pairs]), median([r[1] for r in ref_pairs])
    pairs = result["pairs"]
    end_to_end = per_row * rows / wall["total"]
    totals = result["counts"].sum(axis=0)
    figures = {
        "models × images": f"{n_models} × {n:,} = {rows:,} rows ({errors:,} top-1 errors)",
        "distinct (image, prediction) pairs": f"{pairs:,} ({rows / pairs:.0f} rows per pair)",
        "end to end (distinct → classify → per-model counts)": f"{wall['total']:.2f} s "
                                                               f"({wall['total'] / rows * 1e9:.0f} ns/row; "
                                                               f"CPU {cpu_total:.2f} s)",
        "  distinct pairs": f"{wall['distinct']:.2f} s",
        "  classify distinct pairs, with reasons": f"{wall['classify']:.2f} s "
                                                   f"({wall['classify'] / pairs * 1e6:.2f} µs/pair)",
        "  per-model category counts": f"{wall['counts']:.2f} s",
        "peak RSS of the process (getrusage; incl. the zoo and the label set)": f"{rss_after / 2**10:,.0f} MiB",
        "  of which added by the pipeline": f"{(rss_after - rss_before) / 2**10:,.0f} MiB",
        "per-row reference, rows": f"{per_row * 1e6:.2f} µs/row on {len(flat):,} random rows "
                                   f"({row_mismatches} disagreements with the pipeline)",
        "per-row reference, distinct pairs": f"{per_pair * 1e6:.2f} µs/pair on {len(pick):,} random distinct pairs "
                                             f"({pair_mismatches} disagreements)",
        "per-model counts checked against per-row codes": f"{'agree' if counts_ok else 'DISAGREE'} "
                                                          f"(models {', '.join(map(str, checked))}; all rows counted)",
        "speed-up, end to end vs reference on every row": f"**{end_to_end:.0f}×** (reference ≈ "
                                                          f"{per_row * rows / 60:.1f} min; CPU time: "
                                                          f"{per_row_cpu * rows / cpu_total:.0f}×)",
        "speed-up, classify vs reference on the distinct pairs": f"{per_pair * pairs / wall['classify']:.0f}× "
                                                                 f"(reference ≈ {per_pair * pairs:.1f} s; CPU time: "
                                                                 f"{per_pair_cpu * pairs / cpu_classify:.0f}×)",
        "method": f"medians of {args.rounds} alternating rounds (pipeline, reference on the rows, reference "
                  f"on the pairs) in one process; the reference gets Python ints (its fastest input)",
        "setup (not timed above)": f"label set {load:.1f} s, zoo generation {generate:.1f} s",
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores (load average "
                   f"{os.getloadavg()[0]:.1f}: shared with other jobs, timings vary ~2×), "
                   f"Python {platform.python_version()}, numpy {np.__version__}",
        "rows per category": ", ".join(f"{c} {int(totals[tx.code_of(c)]):,}" for c in tx.IDS if totals[tx.code_of(c)]),
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value.replace('**', '')}")
    failed = row_mismatches or pair_mismatches or not counts_ok
    if failed:
        print(f"ERROR: pipeline and reference disagree ({row_mismatches} rows, {pair_mismatches} pairs, "
              f"counts {'ok' if counts_ok else 'differ'})", file=sys.stderr)
    if not args.no_write:
        lines = ["## Classification of a model zoo (`benchmarks/bench_classify.py`)", "",
                 f"Synthetic zoo at the paper's scale, run `python benchmarks/bench_classify.py --models {args.models}`"
                 f" on {time.strftime('%Y-%m-%d')}. Targets: whole zoo < 60 s, ≥ 100× the per-row reference "
                 "end to end. The reference's time per row (per pair) is measured on random samples and "
                 "extrapolated to every row (pair); the pipeline runs on the whole zoo.", "",
                 "| figure | value |", "|---|---|"]
        lines += [f"| {k.strip()} | {v} |" for k, v in figures.items()]
        update_section(SECTION, "\n".join(lines))
        print("wrote the bench:classify section of docs/PERFORMANCE.md")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

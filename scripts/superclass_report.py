"""Compare the superclass definitions with the paper's figures and its common-error rows; rebuild them.

Usage: .venv/bin/python scripts/superclass_report.py [--members] [--misses] [--cv] [--build]

Prints the statistics of the active definitions (`analysis.knowledge.superclasses`; `--superclasses FILE` or
$IMAGENET_ERRORS_SUPERCLASSES to choose) next to the paper's (161 superclasses, 74 classes without one, 5,476
pairs), and per category of the paper's dev rows (`../shared/reference/paper_common_errors_dev.csv`) the share
of rows whose prediction shares a superclass with a label (target included): near 1 for fine-grained, near 0
otherwise. Those figures are on the rows the committed map was fitted on.

--cv prints the figures that count: the procedure of scripts/superclass_rules.py fitted on part of the rows and
measured on the rest (5 folds and 2 folds by image, 5 folds by class pair). --build refits it on every dev row
and writes data/superclasses.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import superclass_rules  # noqa: E402

from analysis import paths  # noqa: E402
from analysis.knowledge import classes, superclasses  # noqa: E402

PAPER = {"superclasses": 161, "classes_without_superclass": 74, "same_superclass_pairs": 5476,
         "superclasses_per_group": {"organism": 50, "artifact": 101, "other": 16}}
CATEGORIES = (superclass_rules.POSITIVE, *superclass_rules.NEGATIVE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", action="store_true", help="list each superclass's classes")
    parser.add_argument("--misses", action="store_true", help="list dev rows on the wrong side")
    parser.add_argument("--cv", action="store_true", help="cross-validated figures of the procedure (the ones that count)")
    parser.add_argument("--build", action="store_true", help="refit on every dev row and write data/superclasses.json")
    parser.add_argument("--superclasses", type=Path, default=None, help="report on this definition file instead")
    args = parser.parse_args()
    if args.superclasses:
        superclasses.use(args.superclasses)
    if args.build:
        print("fitting on every dev row (about 20 s) ...", file=sys.stderr, flush=True)
        data = superclass_rules.write()
        print(f"wrote {paths.SUPERCLASSES_JSON}: {len(data['superclasses'])} superclasses")
    if args.cv:
        rows = superclass_rules.read_rows()
        print("cross-validating: 12 fits of about 12 s each ...", file=sys.stderr, flush=True)
        for title, folds in (("5 folds by image", superclass_rules.image_folds(rows, 5)),
                             ("2 folds by image", superclass_rules.image_folds(rows, 2)),
                             ("5 folds by class pair", superclass_rules.pair_folds(rows, 5))):
            cv = superclass_rules.cross_validate(rows, folds)
            print(f"cross-validated, {title}: fine-grained {cv['fine_grained']:.3f}, negative {cv['negative']:.3f} "
                  f"(OOV {cv['fine-grained OOV']:.3f}, spurious {cv['spurious correlation']:.3f}, "
                  f"non-prototypical {cv['non-prototypical']:.3f}, model failure {cv['model failure']:.3f})", flush=True)
        return 0
    stats = superclasses.statistics()
    for key, paper in PAPER.items():
        print(f"{key}: {stats[key]} (paper {paper})")
    print(f"sizes: {stats['superclass_size_min']}..{stats['superclass_size_max']}, median {stats['superclass_size_median']}")
    rows = superclass_rules.read_rows()
    print("dev rows, in sample (the committed map was fitted on them; --cv gives the held-out figures):")
    hit = superclass_rules.joined(rows, superclasses.membership())
    for cat in CATEGORIES:
        of = rows.category == cat
        print(f"{cat:22s} shares a superclass: {hit[of].sum()}/{of.sum()} = {hit[of].mean():.3f}")
    names = [c.name for c in classes.classes()]
    if args.members:
        m = superclasses.membership()
        for j, sc in enumerate(superclasses.definitions()):
            print(f"{sc.id} [{m[:, j].sum()}] {sc.name}: {', '.join(names[i] for i in np.flatnonzero(m[:, j]))}")
    if args.misses:
        for cat, labels, prediction, h in zip(rows.category, rows.labels, rows.prediction, hit):
            if cat in CATEGORIES and h != (cat == superclass_rules.POSITIVE):
                print(f"{cat}: {[names[l] for l in labels]} -> {names[prediction]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

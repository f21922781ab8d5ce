"""Automatic vs expert categories on the mistakes the experts reviewed (ViT-3B, Greedy Soups).

Each reviewed mistake (image, the expert file's top prediction) is classified and compared with the
expert's category: confusion table, agreement rate and Cohen's kappa. Label sets (`LABEL_CHOICES`):

- `expert_verdict` (default): ReaL labels ∪ {target} minus the reviewed prediction. Every entry of the
  Vasudevan files is a mistake, i.e. the experts' own multi-label set did not accept the prediction, so
  this compares on the experts' terms and evaluates every reviewed mistake.
- `real`: the ReaL label set as the store uses it; images outside its evaluation set (no ReaL labels, or
  ReaL without the target) are `not_evaluated`, and where ReaL lists the prediction the mistake is
  `multi_label` although the experts said otherwise.
- `real_with_target`: ReaL labels plus the target, every reviewed mistake evaluated.

Our `non_prototypical` check uses the experts' own non-prototypical marks, so agreement on that category
is circular by construction; `compare(..., non_prototypical_check=False)` leaves the check out.
"""

from __future__ import annotations

import argparse
import copy
import json

import numpy as np
import pandas as pd

from analysis.knowledge import experts
from analysis.taxonomy import categories as tx
from analysis.taxonomy import classify, labelsets


def _without_non_prototypical(labelset: labelsets.LabelSet) -> labelsets.LabelSet:
    out = copy.copy(labelset)
    out.non_prototypical = np.zeros(len(labelset), dtype=bool)
    return out


LABEL_CHOICES = ("expert_verdict", "real", "real_with_target")
LABEL_DESCRIPTIONS = {
    "expert_verdict": "ReaL labels and the target, minus the reviewed prediction: every entry of the expert files "
                      "is a mistake the experts' own label set did not accept, so every one is evaluated",
    "real": "the ReaL label set the store uses: mistakes on images without ReaL labels, or whose ReaL labels lack "
            "the target, are not evaluated, and a prediction ReaL lists counts as multi-label",
    "real_with_target": "ReaL labels plus the target: every reviewed mistake evaluated, but a prediction ReaL lists "
                        "still counts as multi-label",
}


def _expert_verdict(ids: np.ndarray, preds: np.ndarray) -> labelsets.LabelSet:
    """A label set over the reviewed mistakes only: row k = image `ids[k]`, labels (ReaL ∪ target) − `preds[k]`."""
    real = labelsets.real()
    targets = real.targets[ids]
    labels = [sorted((set(real.real[i] or ()) | {int(t)}) - {int(p)}) for i, t, p in zip(ids, targets, preds)]
    return labelsets.given(targets, labels, val_indices=ids.astype(np.int32))


def compare(expert: str, *, labels: str = "expert_verdict", non_prototypical_check: bool = True,
            oov=None) -> pd.DataFrame:
    """One row per reviewed mistake: file_name, image_index, target, prediction, expert, automatic, reason, agree.

    `labels`: one of `LABEL_CHOICES` (see the module docstring). `oov`: as in `classify.classify_pairs`
    (None: check off); with `expert_verdict` its rows are the reviewed mistakes in file order.
    """
    if labels not in LABEL_CHOICES:
        raise ValueError(f"labels={labels!r} must be one of {', '.join(LABEL_CHOICES)}")
    reviewed = experts.load_expert(expert)
    ids = reviewed["image_index"].to_numpy(dtype=np.int64)
    preds = reviewed["prediction"].to_numpy(dtype=np.int64)
    rows = ids
    if labels == "expert_verdict":
        labelset = _expert_verdict(ids, preds)
        rows = np.arange(len(ids))
    else:
        labelset = labelsets.real()
        if labels == "real_with_target":
            labelset = labelsets.given(labelset.targets, [r for r in labelset.real],
                                       val_indices=np.arange(len(labelset)))
    if not non_prototypical_check:
        labelset = _without_non_prototypical(labelset)
    result = classify.classify_pairs(rows, preds, labelset, oov=oov)
    out = pd.DataFrame({
        "file_name": reviewed["file_name"].to_numpy(),
        "image_index": ids,
        "target": labelset.targets[rows].astype(np.int16),
        "prediction": preds.astype(np.int16),
        "expert": reviewed["category"].to_numpy(),
        "expert_severity": reviewed["severity"].to_numpy(),
        "automatic": result["category"].to_numpy(),
        "reason": result["reason"].to_numpy(),
    })
    out["agree"] = out["expert"] == out["automatic"]
    out.attrs["clip"] = result.attrs["clip"]
    return out


def confusion(comparison: pd.DataFrame, *, order: tuple[str, ...] = tx.IDS) -> pd.DataFrame:
    """Expert (rows) × automatic (columns) counts, both in `order` (default: taxonomy order), only categories that
    occur."""
    present = set(comparison["expert"]) | set(comparison["automatic"])
    order = [c for c in order if c in present]
    table = pd.crosstab(comparison["expert"], comparison["automatic"])
    return table.reindex(index=[c for c in order if c in set(comparison["expert"])], columns=order, fill_value=0)


def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two label sequences `(N,)` (1: perfect agreement, 0: chance level)."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"a {a.shape} and b {b.shape} must be non-empty 1-D sequences of the same length")
    categories = sorted(set(a) | set(b))
    index = {c: i for i, c in enumerate(categories)}
    table = np.zeros((len(categories), len(categories)))
    np.add.at(table, ([index[x] for x in a], [index[x] for x in b]), 1)
    table /= table.sum()
    observed = np.trace(table)
    expected = float(table.sum(axis=1) @ table.sum(axis=0))
    return float((observed - expected) / (1 - expected)) if expected < 1 else 1.0


BLOCKS = {
    "expert_verdict": ("expert_verdict", True),
    "expert_verdict_without_non_prototypical": ("expert_verdict", False),
    "real": ("real", True),
    "real_without_non_prototypical": ("real", False),
    "real_with_target": ("real_with_target", True),
    "real_with_target_without_non_prototypical": ("real_with_target", False),
}
BLOCK_TITLES = {
    "expert_verdict": "Expert verdict (ReaL labels + target − the reviewed prediction: every reviewed mistake "
                      "evaluated), with the non-prototypical check (it uses the experts' own marks: circular)",
    "expert_verdict_without_non_prototypical": "Expert verdict label set, without the non-prototypical check",
    "real": "ReaL label set, with the non-prototypical check (it uses the experts' own marks: circular)",
    "real_without_non_prototypical": "ReaL label set, without the non-prototypical check",
    "real_with_target": "ReaL labels + target (every reviewed mistake evaluated), with the non-prototypical check",
    "real_with_target_without_non_prototypical": "ReaL labels + target, without the non-prototypical check",
}


def summary(expert: str) -> dict:
    """Agreement figures per block of `BLOCKS`: label set × with/without the (circular) non-prototypical check."""
    out: dict = {"expert": expert, "expert_name": experts.EXPERT_NAMES[expert]}
    for key, (labels, check) in BLOCKS.items():
        comparison = compare(expert, labels=labels, non_prototypical_check=check)
        evaluated = comparison[comparison["automatic"] != "not_evaluated"]
        out[key] = {
            "mistakes": len(comparison),
            "agreement": float(comparison["agree"].mean()),
            "kappa": cohen_kappa(comparison["expert"], comparison["automatic"]),
            "evaluated": len(evaluated),
            "agreement_evaluated": float(evaluated["agree"].mean()) if len(evaluated) else float("nan"),
            "kappa_evaluated": cohen_kappa(evaluated["expert"], evaluated["automatic"]) if len(evaluated) else float("nan"),
            "confusion": confusion(comparison),
        }
        out["clip"] = comparison.attrs["clip"]
    return out


def _print_block(title: str, block: dict) -> None:
    print(f"\n{title}")
    print(f"  mistakes: {block['mistakes']}  agreement: {block['agreement']:.1%}  Cohen's kappa: {block['kappa']:.3f}")
    print(f"  evaluated: {block['evaluated']}  agreement: {block['agreement_evaluated']:.1%}  "
          f"kappa: {block['kappa_evaluated']:.3f}")
    print("  expert (rows) x automatic (columns):")
    print("    " + block["confusion"].to_string().replace("\n", "\n    "))


def cli_agreement(args: argparse.Namespace) -> int:
    """Print the confusion table, agreement and kappa for one expert; optionally the per-image CSV or JSON."""
    result = summary(args.expert)
    if args.csv:
        compare(args.expert, labels=args.labels).to_csv(args.csv, index=False)
    if args.json:
        payload = {k: v for k, v in result.items() if not isinstance(v, dict)}
        for key in BLOCKS:
            block = dict(result[key])
            block["confusion"] = {e: {a: int(n) for a, n in row.items()} for e, row in block["confusion"].iterrows()}
            payload[key] = block
        print(json.dumps(payload, indent=1))
        return 0
    print(f"{result['expert_name']}: automatic vs expert categories; "
          f"fine-grained OOV check {'on' if result['clip'] else 'off (no CLIP)'}")
    for key in BLOCKS:
        _print_block(BLOCK_TITLES[key], result[key])
    if args.csv:
        print(f"\nwrote {args.csv}")
    return 0

"""Classify (image, prediction) pairs into the error categories of `analysis.taxonomy.categories` (DESIGN §1).

`classify_one` is the readable per-row reference; `classify_codes` is the same rules over arrays;
`classify_pairs` classifies each distinct pair once and broadcasts back. For a dense model zoo
(model × image), `zoo_pairs` finds its distinct pairs and `zoo_category_counts` turns their codes into
per-model counts without materialising a code per row. Every result carries a
machine-readable reason: `none`, `excluded:<why>`, `pair:<target>-><prediction>`, `label:<class>`,
`superclass:<superclass id>@label:<class>`, `oov:...` (open-world check), `cooc:label=<class>,images=<n>`,
`expert:non_prototypical`. Labels are looked at in `LabelSet.labels(i)` order (target first), and a
superclass reason names the first shared superclass in definition order.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from analysis.knowledge.classes import NUM_CLASSES, check_class_ids
from analysis.knowledge.cooccurrence import MIN_IMAGES, loo_count
from analysis.knowledge.superclasses import active, overlapping
from analysis.taxonomy import categories as tx
from analysis.taxonomy.labelsets import LabelSet


def _oov_reason(reason) -> str:
    reason = str(reason)
    return reason if reason.startswith("oov:") else f"oov:{reason}"


def classify_one(image_id: int, prediction: int, labelset: LabelSet, *,
                 oov: tuple[bool, str] | None = None) -> tuple[str, str]:
    """(category id, reason) of one pair — the readable reference of the rules; `oov` = (is_oov, reason) or None."""
    i, p = int(image_id), int(prediction)
    if not 0 <= i < len(labelset):
        raise ValueError(f"image_id={image_id!r} is outside the label set's 0..{len(labelset) - 1}")
    if not 0 <= p < NUM_CLASSES:
        raise ValueError(f"prediction={prediction!r} is not a class id 0..{NUM_CLASSES - 1}")
    if not labelset.evaluated[i]:
        return "not_evaluated", f"excluded:{labelset.exclusion[i]}"
    target = int(labelset.targets[i])
    labels = labelset.labels(i)
    if p == target:
        return "correct", "none"
    if overlapping()[target, p]:
        return "overlapping_classes", f"pair:{target}->{p}"
    if p in labels:
        return "multi_label", f"label:{p}"
    sc = active()  # one snapshot of the definitions for the whole row
    for label in labels:
        shared = np.flatnonzero(sc.membership[label] & sc.membership[p])
        if len(shared):
            return "fine_grained", f"superclass:{sc.definitions[shared[0]].id}@label:{label}"
    if oov is not None and oov[0]:
        return "fine_grained_oov", _oov_reason(oov[1])
    for label in labels:
        images = loo_count(labelset.cooccurrence, labelset.counted[i], label, p)
        if images >= MIN_IMAGES and not sc.shares[label, p]:
            return "spurious_correlation", f"cooc:label={label},images={images}"
    if labelset.non_prototypical[i]:
        return "non_prototypical", "expert:non_prototypical"
    return "model_failure", "none"


def _check_pairs(image_ids, predictions, labelset: LabelSet) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(labelset, LabelSet):
        raise TypeError(f"labelset={labelset!r} must be an analysis.taxonomy.labelsets.LabelSet (labelsets.real(), ...)")
    ids, preds = np.asarray(image_ids), np.asarray(predictions)
    if ids.ndim != 1 or preds.shape != ids.shape:
        raise ValueError(f"image_ids {ids.shape} and predictions {preds.shape} must be 1-D of the same length")
    for name, arr, high in (("image_ids", ids, len(labelset)), ("predictions", preds, NUM_CLASSES)):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} has dtype {arr.dtype}; pass integers")
        if arr.size and (arr.min() < 0 or arr.max() >= high):
            bad = int(np.flatnonzero((arr < 0) | (arr >= high))[0])
            raise ValueError(f"{name}[{bad}]={int(arr[bad])} is outside 0..{high - 1}")
    return ids.astype(np.int64), preds.astype(np.int64)


def _first_true(mask: np.ndarray) -> np.ndarray:
    return mask.argmax(axis=1)


def _distinct(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Zoo-sized inputs repeat few (first, second) values: work on each once, then gather with `inverse`.
    key = (first.astype(np.int64) << 32) | second.astype(np.int64)
    unique, inverse = np.unique(key, return_inverse=True)
    return unique >> 32, unique & 0xFFFFFFFF, inverse.reshape(-1)


def _format_distinct(template: str, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    a, b, inverse = _distinct(first, second)
    return np.array([template.format(x, y) for x, y in zip(a.tolist(), b.tolist())], dtype=object)[inverse]


def classify_codes(image_ids: np.ndarray, predictions: np.ndarray, labelset: LabelSet, *,
                   oov_mask: np.ndarray | None = None, oov_reasons: Sequence[str] | None = None,
                   with_reasons: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Vectorised rules: int8 category codes `(N,)` and reasons `(N,)` (object; None without reasons).

    `image_ids (N,)`, `predictions (N,)`; `oov_mask (N,)` bool and `oov_reasons (N,)` from an open-world
    check (None: the check is off and fine_grained_oov never fires).
    """
    ids, p = _check_pairs(image_ids, predictions, labelset)
    n = len(ids)
    if oov_mask is not None and np.shape(oov_mask) != (n,):
        raise ValueError(f"oov_mask has shape {np.shape(oov_mask)}; expected ({n},), one per pair")
    codes = np.full(n, tx.MODEL_FAILURE, dtype=np.int8)
    reasons = None
    if with_reasons:
        reasons = np.empty(n, dtype=object)
        reasons[:] = "none"             # one shared str; np.full would make a str object per row

    evaluated = labelset.evaluated[ids]
    codes[~evaluated] = tx.NOT_EVALUATED
    if with_reasons and not evaluated.all():
        reasons[~evaluated] = ["excluded:" + e for e in labelset.exclusion[ids[~evaluated]]]
    t = labelset.targets[ids].astype(np.int64)
    correct = evaluated & (p == t)
    codes[correct] = tx.CORRECT

    # From here on work on the rows still open, narrowing `rows` after each check.
    rows = np.flatnonzero(evaluated & ~correct)
    hit = overlapping()[t[rows], p[rows]]
    codes[rows[hit]] = tx.OVERLAPPING
    if with_reasons:
        reasons[rows[hit]] = _format_distinct("pair:{0}->{1}", t[rows[hit]], p[rows[hit]])
    rows = rows[~hit]

    labels = labelset.label_matrix[ids[rows]]                           # (R, L) int16, -1 padded
    pr = p[rows].astype(labels.dtype)
    hit = (labels == pr[:, None]).any(axis=1)
    codes[rows[hit]] = tx.MULTI_LABEL
    if with_reasons:
        reasons[rows[hit]] = _format_distinct("label:{1}", pr[hit], pr[hit])
    rows, labels, pr = rows[~hit], labels[~hit], pr[~hit]

    valid = labels >= 0
    safe = np.where(valid, labels, 0)
    flat = safe * np.intp(NUM_CLASSES) + pr[:, None]                     # (R, L) index of (label, prediction)
    sc = active()  # one snapshot of the definitions for the whole batch
    shares = np.take(sc.shares, flat) & valid
    hit = shares.any(axis=1)
    codes[rows[hit]] = tx.FINE_GRAINED
    if with_reasons and hit.any():
        label, prediction, inverse = _distinct(safe[hit, _first_true(shares[hit])], pr[hit])
        superclass = _first_true(sc.membership[label] & sc.membership[prediction])
        names = [d.id for d in sc.definitions]
        text = [f"superclass:{names[s]}@label:{l}" for s, l in zip(superclass.tolist(), label.tolist())]
        reasons[rows[hit]] = np.array(text, dtype=object)[inverse]
    keep = ~hit
    rows, safe, flat, common, pr = rows[keep], safe[keep], flat[keep], valid[keep] & ~shares[keep], pr[keep]

    if oov_mask is not None:
        hit = np.asarray(oov_mask, dtype=bool)[rows]
        codes[rows[hit]] = tx.FINE_GRAINED_OOV
        if with_reasons:
            reasons[rows[hit]] = [_oov_reason(oov_reasons[r]) if oov_reasons is not None else "oov:"
                                  for r in rows[hit]]
        keep = ~hit
        rows, safe, flat, common, pr = rows[keep], safe[keep], flat[keep], common[keep], pr[keep]

    counts = np.take(labelset.cooccurrence, flat)                       # (R, L)
    own = labelset.counted_matrix[ids[rows]]                            # (R, C)
    pred_counted = (own == pr[:, None]).any(axis=1)
    if pred_counted.any():
        label_counted = (safe[pred_counted, :, None] == own[pred_counted, None, :]).any(axis=2)
        counts[pred_counted] -= label_counted
    common &= counts >= MIN_IMAGES
    hit = common.any(axis=1)
    codes[rows[hit]] = tx.SPURIOUS
    if with_reasons and hit.any():
        col = _first_true(common[hit])
        picked = np.arange(int(hit.sum()))
        reasons[rows[hit]] = _format_distinct("cooc:label={0},images={1}",
                                              safe[hit][picked, col], counts[hit][picked, col])
    rows = rows[~hit]

    hit = labelset.non_prototypical[ids[rows]]
    codes[rows[hit]] = tx.NON_PROTOTYPICAL
    if with_reasons:
        reasons[rows[hit]] = "expert:non_prototypical"
    return codes, reasons


def distinct_pairs(image_ids: np.ndarray, predictions: np.ndarray, n_images: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (image, prediction) pairs: `pair_images (M,)`, `pair_predictions (M,)`, `inverse (N,)`.

    `pair_images[inverse] == image_ids`; pairs come sorted by (image, prediction). Large inputs use a
    bitmap over all `n_images * 1000` keys instead of a sort (fastest with rows grouped by image).
    """
    image_ids, predictions = np.asarray(image_ids), np.asarray(predictions)
    space = int(n_images) * NUM_CLASSES
    if len(image_ids) > 2_000_000 and space <= 1 << 27:
        # A bitmap and its running count replace a sort. Keys are int32 (space <= 2**27) and made per
        # chunk, twice, which keeps them in cache and the memory small.
        chunk = 1 << 20

        def keys(start: int) -> np.ndarray:
            out = image_ids[start:start + chunk].astype(np.int32) * np.int32(NUM_CLASSES)
            out += predictions[start:start + chunk]
            return out

        seen = np.zeros(space, dtype=bool)
        for start in range(0, len(image_ids), chunk):
            seen[keys(start)] = True
        lookup = np.cumsum(seen, dtype=np.int32) - 1
        unique = np.flatnonzero(seen)
        del seen
        inverse = np.empty(len(image_ids), dtype=np.int32)
        for start in range(0, len(image_ids), chunk):
            inverse[start:start + chunk] = lookup[keys(start)]
        del lookup
    else:
        keys = image_ids.astype(np.int64) * NUM_CLASSES + predictions.astype(np.int64)
        unique, inverse = np.unique(keys, return_inverse=True)
    return unique // NUM_CLASSES, unique % NUM_CLASSES, inverse.reshape(-1)


ZOO_CHUNK = 64  # images per chunk of a dense zoo: the chunk's (64 × 1000) key table stays in L2 cache


def _check_zoo(predictions) -> np.ndarray:
    zoo = check_class_ids("predictions", predictions, ndim=2, shape_hint="a dense zoo (models, images)")
    return zoo.astype(np.int64) if zoo.dtype == np.uint64 else zoo


def _zoo_chunks(zoo: np.ndarray, chunk: int):
    # Yields (first image, keys (M, c)) per chunk, key = (image - first) * 1000 + prediction, in one reused buffer.
    offsets = np.arange(chunk, dtype=np.intp) * NUM_CLASSES
    keys = np.empty((zoo.shape[0], chunk), dtype=np.intp)       # reused: indexing with intp needs no cast
    for start in range(0, zoo.shape[1], chunk):
        block = zoo[:, start:start + chunk]
        out = keys[:, :block.shape[1]]
        np.add(block, offsets[:block.shape[1]], out=out)
        yield start, out


def zoo_pairs(predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (image, prediction) pairs of a dense zoo `predictions (M, N)` (model × image, top-1 ids).

    Returns `pair_images (P,)`, `pair_predictions (P,)` sorted by (image, prediction). A zoo has few
    distinct predictions per image, so a per-chunk bitmap (cache-sized) replaces a sort of all M·N rows.
    """
    zoo = _check_zoo(predictions)
    seen = np.zeros(ZOO_CHUNK * NUM_CLASSES, dtype=bool)
    found = []
    for start, keys in _zoo_chunks(zoo, ZOO_CHUNK):
        seen[keys] = True
        local = np.flatnonzero(seen)
        seen[local] = False
        found.append(local + start * NUM_CLASSES)
    unique = np.concatenate(found) if found else np.empty(0, dtype=np.intp)
    return unique // NUM_CLASSES, unique % NUM_CLASSES


def zoo_category_counts(predictions: np.ndarray, pair_images: np.ndarray, pair_predictions: np.ndarray,
                        codes: np.ndarray) -> np.ndarray:
    """Rows of each category per model, int64 `(M, categories)`, of a dense zoo `predictions (M, N)`.

    `pair_images (P,)`, `pair_predictions (P,)` are its distinct pairs as `zoo_pairs` returns them and
    `codes (P,)` their int8 categories (`classify_codes`); no per-row array of M·N codes is built.
    """
    zoo = _check_zoo(predictions)
    pair_images, pair_predictions, codes = (np.asarray(a) for a in (pair_images, pair_predictions, codes))
    if not (pair_images.shape == pair_predictions.shape == codes.shape) or codes.ndim != 1:
        raise ValueError(f"pair_images {pair_images.shape}, pair_predictions {pair_predictions.shape} and codes "
                         f"{codes.shape} must be 1-D of the same length; pass zoo_pairs(predictions) and its codes")
    k = len(tx.CATEGORIES)
    if codes.size and (codes.min() < 0 or codes.max() >= k):
        raise ValueError(f"codes must lie in 0..{k - 1}; pass classify_codes(...)[0]")
    pair_keys = pair_images.astype(np.int64) * NUM_CLASSES + pair_predictions
    if np.any(np.diff(pair_keys) <= 0):
        raise ValueError("pair_images/pair_predictions are not sorted distinct pairs; pass zoo_pairs(predictions)")
    # Each category gets a `bits`-wide field of one uint64: summing a chunk's rows along the images axis
    # counts every category of every model at once; a chunk of < 2**bits images cannot overflow a field.
    bits = 64 // k
    chunk = min(ZOO_CHUNK, (1 << bits) - 1)
    shifts = np.arange(k, dtype=np.uint64) * np.uint64(bits)
    one_hot = np.uint64(1) << shifts
    table = np.zeros(chunk * NUM_CLASSES, dtype=np.uint64)
    bounds = np.searchsorted(pair_keys, np.arange(0, zoo.shape[1] + chunk, chunk, dtype=np.int64) * NUM_CLASSES)
    counts = np.zeros((zoo.shape[0], k), dtype=np.uint64)
    for n, (start, keys) in enumerate(_zoo_chunks(zoo, chunk)):
        local = pair_keys[bounds[n]:bounds[n + 1]] - start * NUM_CLASSES
        table[local] = one_hot[codes[bounds[n]:bounds[n + 1]]]
        packed = table[keys].sum(axis=1)
        counts += (packed[:, None] >> shifts) & np.uint64((1 << bits) - 1)
        table[local] = 0
    if (counts.sum(axis=1) != zoo.shape[1]).any():
        raise ValueError("some rows of predictions have no pair in pair_images/pair_predictions; "
                         "pass zoo_pairs(predictions)")
    return counts.astype(np.int64)


def _oov_for_pairs(oov, pair_ids: np.ndarray, pair_preds: np.ndarray, inverse: np.ndarray, labelset: LabelSet,
                   candidates: np.ndarray, images: Callable | None) -> tuple[np.ndarray, np.ndarray] | None:
    m = len(pair_ids)
    if oov is None:
        return None
    if hasattr(oov, "check"):
        if images is None:
            raise ValueError("images=None: an open-world check needs images, a callable image_id -> PIL.Image")
        mask, reasons = np.zeros(m, dtype=bool), np.full(m, "oov:not_checked", dtype=object)
        rows = np.flatnonzero(candidates)
        if len(rows):
            found, why = oov.check(pair_ids[rows].tolist(), images, labelset.targets[pair_ids[rows]],
                                   pair_preds[rows])
            mask[rows], reasons[rows] = np.asarray(found, dtype=bool), np.asarray(why, dtype=object)
        return mask, reasons
    if isinstance(oov, tuple) and len(oov) == 2:
        row_mask, row_reasons = np.asarray(oov[0], dtype=bool), np.asarray(oov[1], dtype=object)
        if row_mask.shape != inverse.shape or row_reasons.shape != inverse.shape:
            raise ValueError(f"oov=(is_oov, reasons) must hold {len(inverse)} entries each, one per input row")
        mask, reasons = np.zeros(m, dtype=bool), np.full(m, "oov:", dtype=object)
        mask[inverse[row_mask]] = True
        reasons[inverse[row_mask]] = row_reasons[row_mask]
        return mask, reasons
    raise TypeError(f"oov={oov!r} must be None, (is_oov (N,), reasons (N,)) or an object with .check(...)")


def classify_pairs(image_ids: np.ndarray, predictions: np.ndarray, labelset: LabelSet, *, oov=None,
                   images: Callable | None = None) -> pd.DataFrame:
    """Category and reason of each row: columns image_id, prediction, category, reason (`(N,)` rows).

    Each distinct (image, prediction) pair is classified once and broadcast back. `oov`: None (open-world
    check off; `df.attrs['clip']` is False), `(is_oov (N,), reasons (N,))` per row, or an
    `analysis.taxonomy.openworld.OpenWorldCheck` (then `images` maps an image id to a PIL image).
    """
    ids, preds = _check_pairs(image_ids, predictions, labelset)
    pair_ids, pair_preds, inverse = distinct_pairs(ids, preds, len(labelset))
    oov_pairs = None
    if oov is not None:
        # Only errors that no earlier check explains go to the (costly) open-world check.
        codes, _ = classify_codes(pair_ids, pair_preds, labelset, with_reasons=False)
        candidates = codes >= tx.FINE_GRAINED_OOV
        candidates &= codes != tx.NOT_EVALUATED
        oov_pairs = _oov_for_pairs(oov, pair_ids, pair_preds, inverse, labelset, candidates, images)
    codes, reasons = classify_codes(pair_ids, pair_preds, labelset,
                                    oov_mask=None if oov_pairs is None else oov_pairs[0],
                                    oov_reasons=None if oov_pairs is None else oov_pairs[1])
    out = pd.DataFrame({
        "image_id": ids,
        "prediction": preds.astype(np.int16),
        "category": tx.ids_of(codes)[inverse],
        "reason": reasons[inverse],
    })
    out.attrs["clip"] = oov is not None
    return out

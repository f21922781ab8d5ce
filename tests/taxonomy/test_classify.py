import numpy as np
import pytest

from analysis.knowledge.experts import non_prototypical_images
from analysis.knowledge.superclasses import overlapping, shares_superclass
from analysis.taxonomy import categories as tx
from analysis.taxonomy import classify, labelsets


@pytest.fixture(scope="module")
def real():
    return labelsets.real()


def _unrelated(a, counts, avoid=()):
    """A class that shares nothing with `a`: no superclass, no co-occurrence, no collapsed pair."""
    share, over = shares_superclass(), overlapping()
    for b in range(1000):
        if b != a and b not in avoid and not share[a, b] and not over[a, b] and counts[a, b] == 0:
            return b
    raise AssertionError(f"no class unrelated to {a}")


def _one(target, labels, prediction, **kwargs):
    ls = labelsets.given(np.array([target]), [labels], **kwargs)
    return classify.classify_one(0, prediction, ls), classify.classify_pairs(np.array([0]), np.array([prediction]), ls)


def test_correct_and_overlapping():
    assert _one(5, [5], 5)[0] == ("correct", "none")
    (category, reason), df = _one(836, [836], 837)                        # sunglass -> sunglasses
    assert (category, reason) == ("overlapping_classes", "pair:836->837")
    assert df.loc[0, "category"] == category and df.loc[0, "reason"] == reason


def test_multi_label_fires_for_any_label():
    assert _one(1, [1, 5, 700], 700)[0] == ("multi_label", "label:700")


def test_fine_grained_names_superclass_and_first_label_in_order():
    share, over = shares_superclass(), overlapping()
    a, b = next((a, b) for a in range(1000) for b in range(1000)
                if a != b and share[a, b] and not over[a, b])
    (category, reason), _ = _one(a, [a], b)
    assert category == "fine_grained" and reason.startswith("superclass:") and reason.endswith(f"@label:{a}")
    # The target shares nothing with the prediction, another label does: that label is named.
    t = _unrelated(b, labelsets.real_cooccurrence(), avoid=(a,))
    (category, reason), df = _one(t, [a], b)
    assert category == "fine_grained" and reason.endswith(f"@label:{a}") and df.loc[0, "reason"] == reason


def test_spurious_correlation_needs_two_other_images():
    counts, share, over = labelsets.real_cooccurrence(), shares_superclass(), overlapping()
    pairs = np.argwhere((counts >= 3) & ~share & ~over)
    l, p = (int(x) for x in pairs[pairs[:, 0] != pairs[:, 1]][0])
    (category, reason), _ = _one(l, [l], p)
    assert (category, reason) == ("spurious_correlation", f"cooc:label={l},images={counts[l, p]}")
    # A pair seen in exactly two images: classifying one of them leaves one other image -> not common.
    pairs = np.argwhere((counts == 2) & ~share & ~over)
    l, p = (int(x) for x in pairs[pairs[:, 0] != pairs[:, 1]][0])
    own = labelsets.real().counted
    image = next(i for i, c in enumerate(own) if l in c and p in c)
    assert _one(l, [l], p)[0][0] == "spurious_correlation"
    assert _one(l, [l], p, val_indices=np.array([image]))[0] == ("model_failure", "none")


def test_non_prototypical_uses_the_expert_marks(real):
    image = sorted(non_prototypical_images())[0]
    t = int(real.targets[image])
    p = _unrelated(t, real.cooccurrence)
    assert _one(t, [t], p, val_indices=np.array([image]))[0] == ("non_prototypical", "expert:non_prototypical")
    assert _one(t, [t], p)[0] == ("model_failure", "none")


def test_images_outside_the_evaluation_set_are_not_evaluated(real):
    empty = int(np.flatnonzero(real.exclusion == "no_real_labels")[0])
    assert classify.classify_one(empty, int(real.targets[empty]), real) == ("not_evaluated", "excluded:no_real_labels")
    df = classify.classify_pairs(np.array([empty]), np.array([3]), real)
    assert df.loc[0, "category"] == "not_evaluated"


def test_precomputed_oov_fires_after_fine_grained_only():
    share = shares_superclass()
    t = 5
    p = _unrelated(t, labelsets.real_cooccurrence())
    a = next(b for b in range(1000) if b != t and share[t, b] and not overlapping()[t, b])
    ls = labelsets.given(np.array([t, t]), [[t], [t]])
    df = classify.classify_pairs(np.array([0, 1]), np.array([p, a]), ls,
                                 oov=(np.array([True, True]), np.array(["oov:best=n1:x", "oov:best=n2:y"], dtype=object)))
    assert list(df["category"]) == ["fine_grained_oov", "fine_grained"]
    assert df.loc[0, "reason"] == "oov:best=n1:x" and df.attrs["clip"] is True
    assert classify.classify_one(0, p, ls, oov=(True, "best=n1:x")) == ("fine_grained_oov", "oov:best=n1:x")
    assert classify.classify_pairs(np.array([0]), np.array([p]), ls).attrs["clip"] is False


class _MarkEverything:
    """An open-world check with OpenWorldCheck's interface that calls every error it sees OOV."""

    def __init__(self):
        self.seen = []

    def check(self, image_keys, images, targets, predictions):
        self.seen.append((list(image_keys), list(predictions)))
        return np.ones(len(image_keys), dtype=bool), np.array(["oov:best=n0:thing"] * len(image_keys), dtype=object)


def test_an_open_world_check_sees_only_distinct_unexplained_errors():
    t = 5
    p = _unrelated(t, labelsets.real_cooccurrence())
    ls = labelsets.given(np.array([t, t]), [[t], [t, 9]])
    check = _MarkEverything()
    df = classify.classify_pairs(np.array([0, 0, 1, 1]), np.array([p, p, 9, t]), ls, oov=check, images=lambda k: None)
    assert list(df["category"]) == ["fine_grained_oov", "fine_grained_oov", "multi_label", "correct"]
    assert check.seen == [([0], [p])]
    with pytest.raises(ValueError, match="images"):
        classify.classify_pairs(np.array([0]), np.array([p]), ls, oov=check)


def test_classify_pairs_keeps_row_order_and_validates(real):
    ids = np.array([10, 3, 10, 3])
    preds = np.array([1, 2, 1, int(real.targets[3])])
    df = classify.classify_pairs(ids, preds, real)
    assert list(df.columns) == ["image_id", "prediction", "category", "reason"]
    assert list(df["image_id"]) == list(ids) and list(df["prediction"]) == list(preds)
    assert df.loc[0, "category"] == df.loc[2, "category"]
    with pytest.raises(ValueError, match=r"image_ids\[0\]=50000"):
        classify.classify_pairs(np.array([50_000]), np.array([1]), real)
    with pytest.raises(ValueError, match="same length"):
        classify.classify_pairs(np.array([1, 2]), np.array([1]), real)
    with pytest.raises(TypeError, match="dtype"):
        classify.classify_pairs(np.array([1]), np.array([1.5]), real)
    with pytest.raises(TypeError, match="LabelSet"):
        classify.classify_pairs(np.array([1]), np.array([1]), "real")


def test_distinct_pairs_bitmap_and_sort_agree():
    rng = np.random.default_rng(1)
    ids, preds = rng.integers(0, 3000, 2_500_000), rng.integers(0, 1000, 2_500_000)
    big = classify.distinct_pairs(ids, preds, 3000)          # > 2M rows: bitmap path
    small = classify.distinct_pairs(ids[:1000], preds[:1000], 3000)
    for pair_ids, pair_preds, inverse, n in (big + (None,), small + (1000,)):
        assert (pair_ids[inverse] == ids[:n]).all() and (pair_preds[inverse] == preds[:n]).all()
    keys = big[0] * 1000 + big[1]
    assert (np.diff(keys) > 0).all() and len(keys) == len(np.unique(ids * 1000 + preds))


def _random_rows(ls, n, rng):
    """Random (image, prediction) rows that reach every rule: targets, labels, superclass and ReaL partners."""
    share, counts, over = shares_superclass(), ls.cooccurrence, overlapping()
    ids = rng.integers(0, len(ls), n)
    kind = rng.integers(0, 6, n)
    preds = rng.integers(0, 1000, n)
    for row in np.flatnonzero(kind < 5):
        i = ids[row]
        labels = ls.labels(i) or (int(ls.targets[i]),)
        anchor = labels[rng.integers(len(labels))]
        pool = {0: [int(ls.targets[i])], 1: list(labels), 2: np.flatnonzero(share[anchor]),
                3: np.flatnonzero(counts[anchor] >= 2), 4: np.flatnonzero(over[int(ls.targets[i])])}[kind[row]]
        if len(pool):
            preds[row] = pool[rng.integers(len(pool))]
    return ids, preds


@pytest.mark.parametrize("mode", ["real", "given"])
def test_reference_and_vectorised_agree_on_random_rows(mode, real):
    rng = np.random.default_rng(7)
    if mode == "real":
        ls = real
    else:
        n = 3000
        vals = rng.integers(0, 50_000, n)
        labels = [list(rng.integers(0, 1000, rng.integers(0, 4))) for _ in range(n)]
        ls = labelsets.given(real.targets[vals], labels, val_indices=np.where(rng.random(n) < 0.9, vals, -1),
                             exclude_from_counts=vals[:500])
        ls.non_prototypical[rng.random(n) < 0.05] = True
    ids, preds = _random_rows(ls, 10_000, rng)
    oov_mask = rng.random(len(ids)) < 0.05
    # Per row: one verdict per distinct pair (the first row's), as classify_pairs guarantees.
    first = {}
    for row, key in enumerate(zip(ids, preds)):
        first.setdefault(key, row)
    oov_mask = np.array([oov_mask[first[key]] for key in zip(ids, preds)])
    reasons = np.array([f"oov:best=n{row}:x" for row in range(len(ids))], dtype=object)
    reasons = np.array([reasons[first[key]] for key in zip(ids, preds)], dtype=object)
    df = classify.classify_pairs(ids, preds, ls, oov=(oov_mask, reasons))
    expected = [classify.classify_one(i, p, ls, oov=(m, r)) for i, p, m, r in zip(ids, preds, oov_mask, reasons)]
    assert list(zip(df["category"], df["reason"])) == expected
    assert set(df["category"]) >= {"correct", "multi_label", "fine_grained", "spurious_correlation",
                                   "model_failure", "fine_grained_oov"}


def test_zoo_pairs_and_counts_match_the_per_row_path(real):
    rng = np.random.default_rng(3)
    n_models, n = 7, 300                      # 300 images: several chunks of ZOO_CHUNK and a partial one
    targets = real.targets[:n].astype(np.int64)
    zoo = np.where(rng.random((n_models, n)) < 0.3, rng.integers(0, 1000, (n_models, n)), targets).astype(np.int16)
    pair_images, pair_predictions = classify.zoo_pairs(zoo)
    keys = np.arange(n)[None, :] * 1000 + zoo
    assert (pair_images * 1000 + pair_predictions == np.unique(keys)).all()
    codes, _ = classify.classify_codes(pair_images, pair_predictions, real, with_reasons=False)
    counts = classify.zoo_category_counts(zoo, pair_images, pair_predictions, codes)
    ids = np.tile(np.arange(n), n_models)
    per_row = tx.codes_of(classify.classify_pairs(ids, zoo.reshape(-1), real)["category"].tolist())
    expected = np.stack([np.bincount(per_row[m * n:(m + 1) * n], minlength=len(tx.CATEGORIES))
                         for m in range(n_models)])
    assert counts.shape == (n_models, len(tx.CATEGORIES)) and (counts == expected).all()
    assert counts[:, tx.CORRECT].sum() > 0 and (counts.sum(axis=1) == n).all()


def test_zoo_functions_validate(real):
    zoo = np.array([[1, 2], [1, 3]], dtype=np.int16)
    with pytest.raises(ValueError, match="dense zoo"):
        classify.zoo_pairs(zoo[0])
    with pytest.raises(ValueError, match=r"predictions\[1, 0\]=1000"):
        classify.zoo_pairs(np.array([[1, 2], [1000, 3]]))
    with pytest.raises(TypeError, match="dtype"):
        classify.zoo_pairs(zoo.astype(float))
    pair_images, pair_predictions = classify.zoo_pairs(zoo)
    codes = np.zeros(len(pair_images), dtype=np.int8)
    with pytest.raises(ValueError, match="no pair"):
        classify.zoo_category_counts(zoo, pair_images[:-1], pair_predictions[:-1], codes[:-1])
    with pytest.raises(ValueError, match="not sorted"):
        classify.zoo_category_counts(zoo, pair_images[::-1], pair_predictions[::-1], codes)
    with pytest.raises(ValueError, match="same length"):
        classify.zoo_category_counts(zoo, pair_images, pair_predictions, codes[:-1])

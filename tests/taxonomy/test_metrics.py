import numpy as np
import pytest
import torch
from timm.data import RealLabelsImagenet
from timm.utils import accuracy

from analysis.knowledge.classes import val_file_name
from analysis.taxonomy import categories as tx
from analysis.taxonomy import classify, labelsets, metrics


@pytest.fixture(scope="module")
def real():
    return labelsets.real()


def _random_model(real, seed):
    """Random top-5 per validation image; the top-1 is the target for ~70% of images."""
    rng = np.random.default_rng(seed)
    others = np.stack([rng.permutation(999)[:5] for _ in range(len(real))])
    top5 = others + (others >= real.targets[:, None])          # five distinct classes, none the target
    correct = rng.random(len(real)) < 0.7
    top5[correct, 0] = real.targets[correct]
    return top5


def test_top1_and_real_accuracy_equal_timm(real):
    top5 = _random_model(real, 0)
    evaluator = RealLabelsImagenet([val_file_name(i) for i in range(len(real))], topk=(1, 5))
    top1_hits = []
    for start in range(0, len(real), 5000):
        chunk = top5[start:start + 5000]
        scores = torch.zeros(len(chunk), 1000)
        scores.scatter_(1, torch.from_numpy(chunk), torch.arange(5, 0, -1, dtype=torch.float32).expand(len(chunk), 5))
        evaluator.add_result(scores)
        target = torch.from_numpy(real.targets[start:start + 5000].astype(np.int64))
        top1_hits.append(accuracy(scores, target, topk=(1,))[0].item() * len(chunk))
    ids = np.arange(len(real))
    df = classify.classify_pairs(ids, top5[:, 0], real)
    row = metrics.model_metrics(ids, top5[:, 0], df["category"], real).set_index("grp").loc["all"]
    assert row["real_accuracy"] == pytest.approx(evaluator.get_accuracy(1), abs=1e-9)
    assert row["top1"] == pytest.approx(sum(top1_hits) / len(real), abs=1e-4)


def test_mla_averages_per_class_then_over_classes():
    # class 1: one image, right; class 2: three images, one right -> MLA (1 + 1/3) / 2, not 2/4.
    ls = labelsets.given(np.array([1, 2, 2, 2]), [[1], [2, 7], [2], [2]])
    ids, preds = np.arange(4), np.array([1, 7, 600, 601])
    df = classify.classify_pairs(ids, preds, ls)
    row = metrics.model_metrics(ids, preds, df["category"], ls).set_index("grp").loc["all"]
    assert row["mla"] == pytest.approx(100 * (1 + 1 / 3) / 2)
    assert row["top1"] == pytest.approx(25.0)
    assert row["errors"] == 3 and row["count_multi_label"] == 1
    assert np.isnan(row["real_accuracy"])          # no validation images: ReaL accuracy undefined


def test_counts_portions_and_groups_add_up(real):
    top5 = _random_model(real, 1)
    ids = np.arange(len(real))
    codes, _ = classify.classify_codes(ids, top5[:, 0], real, with_reasons=False)
    table = metrics.model_metrics(ids, top5[:, 0], codes, real).set_index("grp")
    assert list(table.index) == ["all", "organism", "artifact", "other"]
    every = table.loc["all"]
    assert every["images"] == 50_000 and every["evaluated"] == real.evaluated.sum()
    counts = [every[f"count_{c}"] for c in tx.ERROR_IDS]
    assert sum(counts) == every["errors"] == ((codes != tx.CORRECT) & (codes != tx.NOT_EVALUATED)).sum()
    assert sum(every[f"portion_{c}"] for c in tx.ERROR_IDS) == pytest.approx(1.0)
    for column in ("images", "evaluated", "errors", "count_fine_grained"):
        assert table.loc[["organism", "artifact", "other"], column].sum() == every[column]
    assert every["mla"] <= every["mla_minor"] <= every["mla_explainable"] <= 100


def test_category_counts_per_model():
    counts = metrics.category_counts(np.array([0, 0, 1, 1, 1]), np.array([0, 7, 7, 7, 3], dtype=np.int8), 3)
    assert counts.shape == (3, len(tx.CATEGORIES))
    assert counts[0, 0] == 1 and counts[0, 7] == 1 and counts[1, 7] == 2 and counts[1, 3] == 1 and counts[2].sum() == 0
    with pytest.raises(ValueError, match="model_index"):
        metrics.category_counts(np.array([3]), np.array([0]), 3)


def test_model_metrics_validates_shapes(real):
    with pytest.raises(ValueError, match="same length"):
        metrics.model_metrics(np.arange(3), np.arange(2), ["correct"] * 3, real)
    with pytest.raises(ValueError, match="unknown"):
        metrics.model_metrics(np.arange(1), np.arange(1), ["wrong"], real)

"""The paper's 962-model tables on the real fetched files."""

import pytest

from analysis.knowledge import zoo


def test_models_summary():
    models = zoo.load_models()
    assert len(models) == 962 and models.model_id.is_unique
    assert "ImageNet-1k" in set(models.dataset)


def test_stats_all_groups_and_counts_add_up():
    stats = zoo.load_stats("imagenet", "all")
    assert len(stats) == 962
    counts = stats[[f"count_{c}" for c in zoo.COUNT_COLUMNS.values()]].sum(axis=1)
    assert (counts == stats.num_all_top1_errors).mean() > 0.99
    assert stats.mla_all.between(50, 100).all()


def test_all_stats_stacked():
    stats = zoo.load_all_stats()
    assert set(stats.dataset) == {"imagenet", "imagenet-a"} and set(stats.group) == set(zoo.ZOO_GROUPS)


def test_bad_arguments_and_missing_columns(tmp_path):
    with pytest.raises(ValueError, match="imagenet-a"):
        zoo.load_stats("imagenet-v2")
    bad = tmp_path / "s.csv"
    bad.write_text("model_dir_id,x\na,1\n")
    with pytest.raises(ValueError, match=r"s\.csv: missing columns"):
        zoo.load_stats(path=bad)

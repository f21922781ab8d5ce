import json

import numpy as np
import pytest

from analysis.cli import main
from analysis.knowledge import experts
from analysis.taxonomy import agreement


def test_cohen_kappa_hand_example():
    assert agreement.cohen_kappa(["x", "x", "y", "y"], ["x", "y", "y", "y"]) == pytest.approx(0.5)
    assert agreement.cohen_kappa(["x", "y"], ["x", "y"]) == pytest.approx(1.0)
    assert agreement.cohen_kappa(["x", "y", "x", "y"], ["y", "x", "y", "x"]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same length"):
        agreement.cohen_kappa(["x"], ["x", "y"])


@pytest.mark.parametrize("expert", ["vit3b", "greedysoups"])
def test_compare_classifies_every_reviewed_mistake(expert):
    reviewed = experts.load_expert(expert)
    df = agreement.compare(expert)
    assert len(df) == len(reviewed) and (df["file_name"] == reviewed["file_name"]).all()
    assert (df["agree"] == (df["expert"] == df["automatic"])).all()
    assert not (df["automatic"] == "correct").any()            # every reviewed image is a mistake
    table = agreement.confusion(df)
    assert table.to_numpy().sum() == len(df)
    assert sum(table.loc[c, c] for c in table.index if c in table.columns) == df["agree"].sum()


def test_non_prototypical_check_is_circular_and_can_be_left_out():
    marked = experts.non_prototypical_images()
    with_check = agreement.compare("vit3b", labels="real_with_target")
    assert set(with_check.loc[with_check["automatic"] == "non_prototypical", "image_index"]) <= marked
    assert (with_check["automatic"] == "non_prototypical").any()
    without = agreement.compare("vit3b", labels="real_with_target", non_prototypical_check=False)
    assert not (without["automatic"] == "non_prototypical").any()
    assert (with_check["automatic"] != "not_evaluated").all()    # target added: every mistake evaluated


@pytest.mark.parametrize("expert", ["vit3b", "greedysoups"])
def test_agreement_cli_prints_json(expert, capsys, tmp_path):
    out = tmp_path / "cmp.csv"
    assert main(["agreement", "--expert", expert, "--json", "--csv", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    block = payload["real"]
    assert block["mistakes"] == len(experts.load_expert(expert))
    assert 0 <= block["agreement"] <= 1 and -1 <= block["kappa"] <= 1
    assert sum(sum(row.values()) for row in block["confusion"].values()) == block["mistakes"]
    assert payload["clip"] is False and out.read_text().startswith("file_name,")
    assert np.isclose(payload["real_with_target"]["agreement"], payload["real_with_target"]["agreement_evaluated"])


@pytest.mark.parametrize("expert", ["vit3b", "greedysoups"])
def test_expert_verdict_evaluates_every_mistake_and_never_accepts_the_prediction(expert):
    from analysis.taxonomy import labelsets

    verdict = agreement.compare(expert)  # the default label set
    real = agreement.compare(expert, labels="real")
    assert (verdict["automatic"] != "not_evaluated").all() and (real["automatic"] == "not_evaluated").any()
    assert not verdict["automatic"].isin(["correct", "multi_label"]).any()
    # where ReaL lists the reviewed prediction, ReaL calls the mistake multi-label; the experts did not
    listed = [p in set(labelsets.real().real[i] or ()) for i, p in zip(verdict["image_index"], verdict["prediction"])]
    assert any(listed)
    assert (real.loc[listed, "automatic"].isin(["multi_label", "not_evaluated"])).all()
    assert (verdict["target"] == real["target"]).all() and (verdict["file_name"] == real["file_name"]).all()


def test_agreement_json_has_an_expert_verdict_block_like_the_real_one(capsys):
    assert main(["agreement", "--expert", "vit3b", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["expert_verdict"]) == set(payload["real"])
    block = payload["expert_verdict"]
    assert block["evaluated"] == block["mistakes"] == 378
    assert block["agreement"] == pytest.approx(agreement.compare("vit3b")["agree"].mean())
    assert block["agreement"] > payload["real"]["agreement"]


def test_unknown_label_set_is_refused():
    with pytest.raises(ValueError, match="labels='given' must be one of expert_verdict, real, real_with_target"):
        agreement.compare("vit3b", labels="given")


# Floors of the expert-verdict agreement with the committed superclasses (measured 55.6% / 63.9%, no CLIP).
@pytest.mark.parametrize("expert, floor", [("vit3b", 0.55), ("greedysoups", 0.63)])
def test_expert_verdict_agreement_floor(expert, floor):
    assert agreement.compare(expert)["agree"].mean() >= floor


@pytest.mark.xfail(strict=True, reason="issue 9's targets (60% ViT-3B, 65% Greedy Soups) need better superclasses or "
                   "the CLIP check; docs/AGREEMENT.md")
def test_expert_verdict_agreement_targets():
    assert agreement.compare("vit3b")["agree"].mean() >= 0.60
    assert agreement.compare("greedysoups")["agree"].mean() >= 0.65

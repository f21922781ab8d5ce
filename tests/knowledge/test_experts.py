"""Expert labels of Vasudevan et al. on the real fetched files."""

import json

import pytest

from analysis.knowledge import experts


def test_vit3b_and_greedysoups_mapped_to_stable_ids():
    vit = experts.load_expert("vit3b")
    soups = experts.load_expert("greedysoups")
    assert len(vit) == 378 and len(soups) == 249
    allowed = {"fine_grained", "fine_grained_oov", "spurious_correlation", "non_prototypical", "multi_label"}
    assert set(vit.category) <= allowed and set(soups.category) <= allowed
    assert set(vit.severity) | set(soups.severity) == {"minor", "major"}
    assert (soups.category == "fine_grained_oov").sum() == 26  # both OOV spellings
    assert (vit.category == "multi_label").sum() == 1
    first = vit[vit.file_name == "ILSVRC2012_val_00000612.JPEG"].iloc[0]
    assert first.prediction == 192 and first.category == "fine_grained" and first.image_index == 611


def test_non_prototypical_images_are_validation_indices():
    images = experts.non_prototypical_images()
    assert len(images) == 36 and all(0 <= i < 50_000 for i in images)


def test_unknown_category_names_file_and_image(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"ILSVRC2012_val_00000001.JPEG": {
        "top_prediction": 3, "failure category": "Blurry", "failure severity": "Major"}}))
    with pytest.raises(ValueError, match=r"bad\.json.*ILSVRC2012_val_00000001.*Blurry"):
        experts.load_expert("vit3b", path)


def test_unknown_expert_rejected():
    with pytest.raises(ValueError, match="greedysoups"):
        experts.load_expert("human")

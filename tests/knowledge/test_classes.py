"""Classes, validation targets, ReaL labels and sample images, from the packages and the fetched files."""

import numpy as np
import pytest

from analysis.knowledge import classes


def test_classes_have_wnid_name_lemmas_definition():
    cls = classes.classes()
    assert len(cls) == 1000 and [c.id for c in cls] == list(range(1000))
    assert cls[0].wnid == "n01440764" and cls[0].name == "tench" and "Tinca tinca" in cls[0].lemmas
    assert "freshwater" in cls[0].definition
    assert list(classes.wnids()) == sorted(classes.wnids())  # ImageFolder order = id order


def test_val_targets_in_file_order():
    targets = classes.val_targets()
    assert targets.shape == (50_000,) and targets.min() >= 0 and targets.max() <= 999
    assert targets[0] == 65  # ILSVRC2012_val_00000001.JPEG is a sea snake
    assert np.bincount(targets, minlength=1000).tolist() == [50] * 1000


def test_real_labels_align_with_targets():
    real = classes.real_labels()
    assert len(real) == 50_000
    assert real[0] == ()  # no ReaL label for the first image
    assert set(real[2]) == {230, 231}
    assert sum(1 for r in real if r) == 46_837


def test_val_file_names_round_trip_and_reject_bad_names():
    assert classes.val_file_name(0) == "ILSVRC2012_val_00000001.JPEG"
    assert classes.val_index("ILSVRC2012_val_00050000.JPEG") == 49_999
    for bad in ["ILSVRC2012_val_00000000.JPEG", "ILSVRC2012_val_00050001.JPEG", "cat.jpg"]:
        with pytest.raises(ValueError, match="not an ImageNet validation file"):
            classes.val_index(bad)


def test_sample_images_one_per_class():
    samples = classes.sample_images()
    assert [cid for _, cid in samples] == list(range(1000))
    path, cid = samples[207]
    assert path.name.startswith("n02099601_") and path.stat().st_size > 1000


def test_check_class_ids_names_the_argument_and_the_bad_entry():
    assert classes.check_class_ids("targets", [0, 999], ndim=1, shape_hint="(N,)").tolist() == [0, 999]
    with pytest.raises(ValueError, match=r"predictions\[1, 0\]=1000 is not a class id"):
        classes.check_class_ids("predictions", [[1, 2], [1000, 3]], ndim=2, shape_hint="(models, images)")
    with pytest.raises(ValueError, match=r"targets has shape \(2, 1\); pass \(N,\)"):
        classes.check_class_ids("targets", [[1], [2]], ndim=1, shape_hint="(N,)")
    with pytest.raises(TypeError, match="dtype float64"):
        classes.check_class_ids("targets", [1.5], ndim=1, shape_hint="(N,)")


def test_class_metadata_equals_timms_imagenet_info():
    """Read from timm's package files without importing timm, the classes are exactly ImageNetInfo's."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    for cls in classes.classes():
        wnid = info.index_to_label_name(cls.id)
        detailed = info.label_name_to_description(wnid, detailed=True)
        assert cls.wnid == wnid
        assert cls.lemmas == tuple(s.strip() for s in info.label_name_to_description(wnid).split(","))
        assert cls.definition == detailed.split(": ", 1)[1]

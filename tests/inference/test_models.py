"""The model registry: names, metadata, preprocessing, local weights and clear messages without them."""

from __future__ import annotations

import re
import time

import pytest
import torch
from PIL import Image

from analysis.inference import models
from analysis.knowledge import classes


@pytest.mark.parametrize("name, size", [("efficientnet-lite0", 224), ("efficientnet-lite1", 240),
                                        ("efficientnet-lite2", 260)])
def test_lite_models_load_from_their_pypi_packages(name, size):
    spec = models.resolve(name)
    assert (spec.kind, spec.arch, spec.family, spec.training_data) == ("lite", name.replace("-", "_"), "cnn",
                                                                        "ImageNet-1k")
    loaded = models.load(spec)
    assert loaded.input_size == size and not loaded.module.training
    with Image.open(classes.sample_images()[0][0]) as img:
        x = loaded.transform(img.convert("RGB"))
    assert x.shape == (3, size, size)
    assert -1.0 <= float(x.min()) and float(x.max()) <= 1.0  # (x - 127) / 128 scaling
    with torch.inference_mode():
        assert int(loaded.module(x[None]).argmax()) == 0  # the tench sample is a tench
    assert 4_000_000 < loaded.params < 7_000_000


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"model='resnet50' is unknown; choose one of \['efficientnet-lite0'"):
        models.resolve("resnet50")
    with pytest.raises(ValueError, match="timm has no architecture 'no_such_net'"):
        models.resolve("timm:no_such_net")
    with pytest.raises(ValueError, match="torchvision has no model 'no_such_net'"):
        models.resolve("torchvision:no_such_net")
    with pytest.raises(ValueError, match="--checkpoint is for timm:/torchvision: models"):
        models.resolve("efficientnet-lite0", checkpoint=__file__)
    with pytest.raises(FileNotFoundError, match="--checkpoint /nonexistent.pth does not exist"):
        models.resolve("timm:resnet18", checkpoint="/nonexistent.pth")


def test_paper_zoo_metadata_is_reused_for_known_timm_models():
    spec = models.resolve("timm:convmixer_1024_20_ks9_p14.in1k")
    assert (spec.arch, spec.family, spec.training_data) == ("convmixer_1024_20_ks9_p14", "cnn", "ImageNet-1k")
    assert models.resolve("timm:vit_base_patch16_224.augreg_in21k").family == "transformer"


@pytest.mark.parametrize("name", ["timm:resnet18.a1_in1k", "torchvision:resnet18"])
def test_missing_weights_fail_fast_without_downloading(name, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"no pretrained weights in .* pass --checkpoint FILE"):
        models.load(models.resolve(name))
    assert time.monotonic() - start < 30  # no network attempt that hangs


@pytest.mark.parametrize("name, build", [
    ("timm:resnet18", lambda: __import__("timm").create_model("resnet18")),
    ("torchvision:resnet18", lambda: __import__("torchvision").models.resnet18()),
])
def test_checkpoint_files_are_loaded(name, build, tmp_path):
    torch.manual_seed(0)
    reference = build().eval()
    ckpt = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), ckpt)
    loaded = models.load(models.resolve(name, checkpoint=ckpt))
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        assert torch.allclose(loaded.module(x), reference(x), atol=1e-5)
    assert loaded.input_size == 224 and loaded.spec.checkpoint == ckpt
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, other)
    with pytest.raises(ValueError, match=re.escape(f"--checkpoint {other} cannot be loaded into {name}")):
        models.load(models.resolve(name, checkpoint=other))

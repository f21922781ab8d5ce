"""CLIP embedders for the open-world check, the embedding-cache protocol with an in-memory cache, and embedding
with a cache (the store's DuckDB cache is `analysis.store.embedding_cache`).

An embedder maps images and texts into one space of L2-normalised float32 vectors
(`embed_images(list[PIL.Image]) -> (N, D)`, `embed_texts(list[str]) -> (M, D)`); its `name`
keys the caches. `OpenClipEmbedder` loads an open_clip model from a local checkpoint only
(never a hub). Without a checkpoint the open-world check is off: `clip_status()` says why
(DESIGN §3) and nothing falls back silently.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from analysis import paths

if TYPE_CHECKING:
    from PIL import Image

MODEL_ENV = "IMAGENET_ERRORS_CLIP_MODEL"
# The paper's CLIP is OpenAI ViT-L/14@336px; OpenAI trained it with QuickGELU, so its weights
# need open_clip's "-quickgelu" config (same architecture as "ViT-L-14-336", matching activation).
DEFAULT_MODEL = "ViT-L-14-336-quickgelu"
NO_CHECKPOINT = f"no checkpoint: set {paths.CLIP_ENV} or pass --clip"
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


class OpenClipEmbedder:
    """An open_clip CLIP model from a local checkpoint file (state dict, safetensors or OpenAI TorchScript)."""

    def __init__(self, checkpoint: Path, *, model_name: str | None = None, device: str = "auto",
                 batch_size: int = 64) -> None:
        """Load `model_name` (default `$IMAGENET_ERRORS_CLIP_MODEL`, else DEFAULT_MODEL) with `checkpoint`'s weights."""
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"CLIP checkpoint {checkpoint} does not exist; pass an open_clip checkpoint file")
        if device not in DEVICES:
            raise ValueError(f"device={device!r} must be one of {', '.join(DEVICES)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        import open_clip

        model_name = model_name or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
        if model_name not in open_clip.list_models():
            raise ValueError(f"model_name={model_name!r} is not an open_clip model config; see open_clip.list_models()")
        self.device = _resolve_device(device)
        self.batch_size = batch_size
        self.model_name = model_name
        self.checkpoint = checkpoint.resolve()
        self.name = f"{model_name}@{self.checkpoint}"
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


def configured_checkpoint(checkpoint: Path | None = None) -> tuple[Path | None, str]:
    """The checkpoint to use (argument, else `$IMAGENET_ERRORS_CLIP`) and where it came from."""
    if checkpoint is not None:
        return Path(checkpoint), "argument"
    env = os.environ.get(paths.CLIP_ENV)
    return (Path(env), paths.CLIP_ENV) if env else (None, "")


def clip_status(checkpoint: Path | None = None, *, model_name: str | None = None) -> dict:
    """Whether the open-world check can run: {"enabled": bool, "reason" | "checkpoint", "model_name"}, for the store."""
    path, origin = configured_checkpoint(checkpoint)
    if path is None:
        return {"enabled": False, "reason": NO_CHECKPOINT}
    if not path.is_file():
        return {"enabled": False, "reason": f"checkpoint {path} (from {origin}) does not exist"}
    return {"enabled": True, "checkpoint": str(path.resolve()),
            "model_name": model_name or os.environ.get(MODEL_ENV) or DEFAULT_MODEL}


def open_embedder(checkpoint: Path | None = None, *, model_name: str | None = None,
                  device: str = "auto") -> OpenClipEmbedder | None:
    """The configured CLIP embedder, or None when no checkpoint is configured (check off); a bad path raises."""
    path, origin = configured_checkpoint(checkpoint)
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"CLIP checkpoint {path} (from {origin}) does not exist; fix the path or unset it")
    return OpenClipEmbedder(path, model_name=model_name, device=device)


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


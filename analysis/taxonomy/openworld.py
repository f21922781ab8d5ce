"""Open-world check for fine-grained OOV errors (DESIGN §3): does the image show a WordNet concept
outside the 1000 classes that is close to the prediction?

1. k-NN gate: the image's k nearest neighbours (cosine of CLIP image embeddings) in a reference
   pool (train set, else the evaluation set without the image) must have some superclass of the
   prediction among their targets' superclasses.
2. Proposals around the prediction from WordNet: the prediction, classes sharing a superclass
   with it, its siblings, its ancestors below broad concepts (`STOP_CONCEPTS`); never a strict
   ancestor of the target.
3. CLIP scores "A photo of a {lemma}." against the image (a proposal's score is the max over its
   lemmas); the error is fine-grained OOV when the best proposal is not one of the 1000 classes.

Reasons are machine-readable: `gate_closed`, `not_oov:best_in_vocab=<class id>`, `oov:best=<wnid>:<lemma>`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from analysis.knowledge import superclasses, wordnet
from analysis.knowledge.classes import NUM_CLASSES
from analysis.taxonomy.embedders import Embedder, EmbeddingCache, embed_images, embed_texts

if TYPE_CHECKING:
    from PIL import Image

PROMPT = "A photo of a {}."
DEFAULT_K = 10
# Broad WordNet concepts (synset names): ancestors of the prediction are proposed only below the
# first of these on each hypernym path. The brief's list plus every concept above ~40 classes.
STOP_CONCEPTS = frozenset({
    "entity.n.01", "physical_entity.n.01", "abstraction.n.06", "object.n.01", "whole.n.02",
    "living_thing.n.01", "organism.n.01", "animal.n.01", "domestic_animal.n.01", "chordate.n.01",
    "vertebrate.n.01", "invertebrate.n.01", "arthropod.n.01", "mammal.n.01", "placental.n.01",
    "carnivore.n.01", "canine.n.02", "dog.n.01", "bird.n.01", "reptile.n.01", "diapsid.n.01",
    "artifact.n.01", "instrumentality.n.03", "device.n.01", "container.n.01", "covering.n.02",
    "conveyance.n.03", "vehicle.n.01", "wheeled_vehicle.n.01", "self-propelled_vehicle.n.01",
    "commodity.n.01", "consumer_goods.n.01", "structure.n.01", "equipment.n.01", "implement.n.01",
    "clothing.n.01", "matter.n.03", "substance.n.07", "solid.n.01", "food.n.01", "food.n.02",
    "natural_object.n.01", "plant_part.n.01", "plant_organ.n.01", "reproductive_structure.n.01",
})
GATE_CLOSED = "gate_closed"


@dataclass(frozen=True)
class Proposal:
    """A WordNet concept near the prediction: wnid, lemma names, whether it is one of the 1000 classes."""

    wnid: str
    lemmas: tuple[str, ...]
    in_vocabulary: bool
    class_id: int | None
    source: str  # prediction | superclass | sibling | ancestor

    @property
    def lemma(self) -> str:
        return self.lemmas[0]


def prompt(lemma: str) -> str:
    """The CLIP prompt for a WordNet lemma name (underscores become spaces)."""
    return PROMPT.format(lemma.replace("_", " "))


def _check_class(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 0 <= value < NUM_CLASSES:
        raise ValueError(f"{name}={value!r} must be a class id in 0..{NUM_CLASSES - 1}")
    return int(value)


def _ancestors_below_stops(graph: wordnet.WordNetGraph, wnid: str) -> list[str]:
    out = []
    for path in graph.hypernym_paths(wnid):
        for ancestor in reversed(path[:-1]):
            if graph.name(ancestor) in STOP_CONCEPTS:
                break
            out.append(ancestor)
    return out


@lru_cache(maxsize=100_000)
def _proposals(target: int, prediction: int) -> tuple[Proposal, ...]:
    graph = wordnet.load()
    class_of = {w: i for i, w in enumerate(graph.class_wnids)}
    pred_wnid, target_wnid = graph.class_wnids[prediction], graph.class_wnids[target]
    excluded = graph.ancestors(target_wnid) - {target_wnid}
    candidates = [(pred_wnid, "prediction")]
    candidates += [(graph.class_wnids[c], "superclass")
                   for c in np.flatnonzero(superclasses.shares_superclass()[prediction]) if c != prediction]
    candidates += [(s, "sibling") for parent in graph.hypernyms(pred_wnid) for s in graph.hyponyms(parent)]
    candidates += [(a, "ancestor") for a in _ancestors_below_stops(graph, pred_wnid)]
    seen: set[str] = set()
    out = []
    for wnid, source in candidates:
        if wnid in seen or wnid in excluded:
            continue
        seen.add(wnid)
        class_id = class_of.get(wnid)
        out.append(Proposal(wnid, tuple(graph.lemmas(wnid)), class_id is not None, class_id, source))
    return tuple(out)


def proposals(target: int, prediction: int) -> tuple[Proposal, ...]:
    """WordNet proposals around `prediction` (itself first), none a strict ancestor of `target`."""
    return _proposals(_check_class("target", target), _check_class("prediction", prediction))


def _class_array(name: str, values, n: int | None = None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or (n is not None and len(array) != n):
        raise ValueError(f"{name} must have shape ({n if n is not None else 'N'},), got {array.shape}")
    if len(array) and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() >= NUM_CLASSES):
        raise ValueError(f"{name} must hold integer class ids in 0..{NUM_CLASSES - 1}")
    return array.astype(np.int64)


class OpenWorldCheck:
    """Decides fine-grained OOV for batches of errors with one embedder and one reference pool."""

    def __init__(self, embedder: Embedder, *, pool_embeddings: np.ndarray, pool_targets: np.ndarray,
                 pool_keys: Sequence[Hashable] | None = None, k: int = DEFAULT_K,
                 cache: EmbeddingCache | None = None, batch_size: int = 64, progress: bool = True) -> None:
        """Pool: `pool_embeddings (P, D)` (same embedder), `pool_targets (P,)`, `pool_keys (P,)` to skip self."""
        if not all(hasattr(embedder, a) for a in ("name", "embed_images", "embed_texts")):
            raise TypeError(f"embedder={embedder!r} must have name, embed_images and embed_texts "
                            "(see analysis.taxonomy.embedders.Embedder)")
        pool = np.asarray(pool_embeddings, dtype=np.float32)
        if pool.ndim != 2 or pool.shape[0] == 0:
            raise ValueError(f"pool_embeddings must have shape (P, D) with P > 0, got {pool.shape}")
        self._targets = _class_array("pool_targets", pool_targets, pool.shape[0])
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r} must be a positive integer")
        index: dict[Hashable, list[int]] = defaultdict(list)
        if pool_keys is not None:
            pool_keys = list(pool_keys)
            if len(pool_keys) != pool.shape[0]:
                raise ValueError(f"pool_keys has {len(pool_keys)} keys for {pool.shape[0]} pool embeddings")
            for i, key in enumerate(pool_keys):
                index[key].append(i)
        self._index = dict(index)
        self._pool = pool / np.maximum(np.linalg.norm(pool, axis=1, keepdims=True), 1e-12)
        self.embedder, self.k, self.cache = embedder, k, cache
        self.batch_size, self.progress = batch_size, progress

    @classmethod
    def from_images(cls, embedder: Embedder, keys: Sequence[Hashable], images: Callable[[Hashable], Image.Image],
                    targets: np.ndarray, *, k: int = DEFAULT_K, cache: EmbeddingCache | None = None,
                    batch_size: int = 64, progress: bool = True) -> OpenWorldCheck:
        """A check whose pool is the images `keys (P,)` with `targets (P,)` (e.g. the evaluation set)."""
        keys = list(keys)
        targets = _class_array("targets", targets, len(keys))
        pool = embed_images(embedder, keys, images, cache=cache, batch_size=batch_size, progress=progress)
        return cls(embedder, pool_embeddings=pool, pool_targets=targets, pool_keys=keys, k=k, cache=cache,
                   batch_size=batch_size, progress=progress)

    def gate(self, embeddings: np.ndarray, keys: Sequence[Hashable], predictions: np.ndarray) -> np.ndarray:
        """`(N,)` bool: a superclass of `predictions (N,)` is among those of the k-NN targets of `embeddings (N, D)`."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        predictions = _class_array("predictions", predictions, embeddings.shape[0])
        keys = list(keys)
        if len(keys) != len(predictions):
            raise ValueError(f"keys has {len(keys)} keys for {len(predictions)} embeddings")
        membership = superclasses.membership()
        out = np.zeros(len(predictions), dtype=bool)
        k = min(self.k, self._pool.shape[0])
        for start in range(0, len(predictions), 256):
            sims = embeddings[start:start + 256] @ self._pool.T
            for row, key in enumerate(keys[start:start + 256]):
                sims[row, self._index.get(key, [])] = -np.inf
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            valid = np.take_along_axis(sims, top, axis=1) > -np.inf
            near = (membership[self._targets[top]] & valid[:, :, None]).any(axis=1)
            out[start:start + 256] = (near & membership[predictions[start:start + 256]]).any(axis=1)
        return out

    def _image_embeddings(self, keys: list[Hashable], images: Callable[[Hashable], Image.Image]) -> np.ndarray:
        # Images in the pool reuse their pool embedding; the rest are embedded (and cached) once each.
        outside = list(dict.fromkeys(k for k in keys if k not in self._index))
        vectors = dict(zip(outside, embed_images(self.embedder, outside, images, cache=self.cache,
                                                 batch_size=self.batch_size, progress=self.progress)))
        return np.stack([self._pool[self._index[k][0]] if k in self._index else vectors[k] for k in keys])

    def check(self, image_keys: Sequence[Hashable], images: Callable[[Hashable], Image.Image],
              targets: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(is_oov (N,), reasons (N,) object)` of errors `image_keys (N,)`, `targets (N,)`, `predictions (N,)`."""
        keys = list(image_keys)
        targets = _class_array("targets", targets, len(keys))
        predictions = _class_array("predictions", predictions, len(keys))
        if not callable(images):
            raise TypeError(f"images={images!r} must be a callable key -> PIL.Image")
        is_oov = np.zeros(len(keys), dtype=bool)
        reasons = np.full(len(keys), GATE_CLOSED, dtype=object)
        if not keys:
            return is_oov, reasons
        embeddings = self._image_embeddings(keys, images)
        open_rows = np.flatnonzero(self.gate(embeddings, keys, predictions))
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for row in open_rows:
            groups[(int(targets[row]), int(predictions[row]))].append(int(row))
        props = {pair: _proposals(*pair) for pair in groups}
        prompts = list(dict.fromkeys(prompt(l) for ps in props.values() for p in ps for l in p.lemmas))
        text = dict(zip(prompts, embed_texts(self.embedder, prompts, cache=self.cache, progress=self.progress)))
        for pair, rows in groups.items():
            lemmas = [(i, l) for i, p in enumerate(props[pair]) for l in p.lemmas]
            owner = np.array([i for i, _ in lemmas])
            starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            scores = embeddings[rows] @ np.stack([text[prompt(l)] for _, l in lemmas]).T   # (R, lemmas)
            best = np.maximum.reduceat(scores, starts, axis=1).argmax(axis=1)  # first max: the prediction wins ties
            for row, r_scores, b in zip(rows, scores, best):
                proposal = props[pair][b]
                if proposal.in_vocabulary:
                    reasons[row] = f"not_oov:best_in_vocab={proposal.class_id}"
                else:
                    segment = r_scores[starts[b]:starts[b] + len(proposal.lemmas)]
                    is_oov[row] = True
                    reasons[row] = f"oov:best={proposal.wnid}:{proposal.lemmas[int(segment.argmax())]}"
        return is_oov, reasons

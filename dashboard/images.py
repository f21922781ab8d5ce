"""Which picture to show for an evaluated image, and small cached thumbnails of it.

The validation image itself when `IMAGENET_DIR` (or the dataset's stored root) has it, else the
class sample images of the target and the prediction, labelled as such.
"""

from __future__ import annotations

import io
from pathlib import Path

import streamlit as st
from PIL import Image

from analysis import paths
from analysis.knowledge import classes


@st.cache_resource(show_spinner=False)
def _samples() -> dict[int, Path]:
    try:
        return {class_id: path for path, class_id in classes.sample_images()}
    except (FileNotFoundError, OSError):
        return {}


def sample_image(class_id: int) -> Path | None:
    """The class sample image of `class_id` (None when the sample images are not fetched)."""
    return _samples().get(int(class_id))


def _candidates(dataset: str, root: str | None, file_name: str, wnid: str) -> list[Path]:
    roots = [Path(root)] if root else []
    if dataset == "imagenet-val" and paths.imagenet_dir():
        roots.insert(0, paths.imagenet_dir())
    out = []
    for base in roots:
        out += [base / file_name, base / wnid / file_name, base / "val" / file_name, base / "val" / wnid / file_name]
    return out


def pictures(dataset: str, root: str | None, file_name: str, target: int, target_wnid: str,
             prediction: int) -> list[tuple[Path | None, str]]:
    """(path, caption) pairs to show for one image: the image itself when found, else the class samples."""
    found = next((p for p in _candidates(dataset, root, file_name, target_wnid) if p.is_file()), None)
    out: list[tuple[Path | None, str]] = []
    if dataset == "samples":
        out.append((found or sample_image(target), "the image (class sample image of the target)"))
    elif found is not None:
        out.append((found, "the evaluated image"))
    else:
        where = "set IMAGENET_DIR to see it" if dataset == "imagenet-val" else "image folder not found"
        out.append((sample_image(target), f"class sample image of the TARGET (not the evaluated image; {where})"))
    out.append((sample_image(prediction), "class sample image of the PREDICTION"))
    return out


@st.cache_data(show_spinner=False, max_entries=1024)
def thumbnail(path: str, size: int = 256) -> bytes:
    """A JPEG thumbnail (longest side `size`) of an image file."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def show(path: Path | None, caption: str, *, size: int = 256, container=st) -> None:
    """Show a thumbnail with its caption, or say that the picture is not available."""
    if path is None or not Path(path).is_file():
        container.caption(f"{caption}: not available (run `python -m analysis fetch` for the sample images)")
        return
    try:
        container.image(thumbnail(str(path), size), caption=caption)
    except OSError as exc:
        container.caption(f"{caption}: cannot read {Path(path).name} ({exc})")

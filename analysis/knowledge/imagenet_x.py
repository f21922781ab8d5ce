"""ImageNet-X (Idrissi et al., ICLR 2023): 16 factors of variation and a one-line justification per validation image.

The `imagenet-x` package on PyPI (0.0.7) bundles the annotations of 48,868 validation images; its file is located
with `importlib.util.find_spec` (the package itself is never imported: its modules pull in torch and plotting) and
checked against the sha256 pinned here. The annotations are licensed CC BY-NC 4.0 (non-commercial use only; the
package's LICENSE file, although its metadata says BSD), so every place that shows them says so.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.errors import UserError
from analysis.knowledge import fetch

PACKAGE = "imagenet_x"
VERSION = "0.0.7"
# The multi-factor file marks every factor the annotator saw; the top-factor file (same rows) the one that matters most.
MULTI_FACTOR = "annotations/imagenet_x_val_multi_factor.jsonl"
TOP_FACTOR = "annotations/imagenet_x_val_top_factor.jsonl"
SHA256 = {
    MULTI_FACTOR: "85b5a1fd60e627dd26b963530e31eea5906f25465e66e77f7295d726b23281e7",
    TOP_FACTOR: "083253dfe7c3491c76c4745d00d2c1c6eb19615f3935cfc80c6b914dcd4bd177",
}
IMAGES = 48_868
FACTORS: tuple[str, ...] = (
    "multiple_objects", "background", "color", "brighter", "darker", "style", "larger", "smaller",
    "object_blocking", "person_blocking", "partial_view", "pattern", "pose", "shape", "subcategory", "texture",
)
FACTOR_NAMES: dict[str, str] = {
    "multiple_objects": "Multiple objects", "background": "Background", "color": "Color", "brighter": "Brighter",
    "darker": "Darker", "style": "Style", "larger": "Larger", "smaller": "Smaller",
    "object_blocking": "Object blocking", "person_blocking": "Person blocking", "partial_view": "Partial view",
    "pattern": "Pattern", "pose": "Pose", "shape": "Shape", "subcategory": "Subcategory", "texture": "Texture",
}
LICENCE = ("ImageNet-X annotations: Idrissi et al., “ImageNet-X: Understanding Model Mistakes with Factor of "
           "Variation Annotations”, ICLR 2023 (Meta AI), licensed CC BY-NC 4.0 — non-commercial use only")
INSTALL = f"pip install imagenet-x=={VERSION}"


def annotation_dir() -> Path | None:
    """The installed package's folder (found without importing it), or None when `imagenet-x` is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def available() -> bool:
    """True when the package is installed with its validation annotation files."""
    folder = annotation_dir()
    return folder is not None and all((folder / name).is_file() for name in SHA256)


def verified_files(folder: Path | None = None) -> dict[str, Path]:
    """{relative name: path} of the two annotation files after their sha256 matched the pinned ones.

    FileNotFoundError when the package (or a file of it) is missing; UserError naming the file when a digest differs.
    """
    folder = annotation_dir() if folder is None else Path(folder)
    if folder is None:
        raise FileNotFoundError(f"the ImageNet-X annotations are not installed; run `{INSTALL}`")
    out = {}
    for name, expected in SHA256.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"ImageNet-X annotation file {path} is missing; reinstall with `{INSTALL}`")
        actual = fetch.sha256_of(path)
        if actual != expected:
            raise UserError(f"ImageNet-X annotation file {path} has sha256 {actual[:16]}…, not the pinned "
                            f"{expected[:16]}… of imagenet-x {VERSION}; reinstall it with `{INSTALL}`")
        out[name] = path
    return out


def _read(path: Path) -> pd.DataFrame:
    with open(path, encoding="utf-8") as handle:
        return pd.DataFrame.from_records([json.loads(line) for line in handle if line.strip()])


def load(folder: Path | None = None) -> pd.DataFrame:
    """One row per annotated validation image, ordered by image_id.

    Columns: image_id (0-based validation index), file_name, class_id, factors (list of `FACTORS` ids the
    annotator marked, in `FACTORS` order), top_factor (the one that matters most; None for the 2 images without
    one), justification and one_word (the annotator's words, stripped). Verified first (see `verified_files`).
    """
    from analysis.knowledge import classes

    files = verified_files(folder)
    multi = _read(files[MULTI_FACTOR])
    top = _read(files[TOP_FACTOR]).set_index("file_name").reindex(multi["file_name"])
    marks = multi[list(FACTORS)].to_numpy(dtype=bool)
    top_marks = top[list(FACTORS)].to_numpy(dtype=bool)
    names = np.array(FACTORS, dtype=object)
    frame = pd.DataFrame({
        "image_id": np.array([classes.val_index(f) for f in multi["file_name"]], dtype=np.int32),
        "file_name": multi["file_name"].astype(str),
        "class_id": multi["class"].astype(np.int16),
        "factors": [names[row].tolist() for row in marks],
        "top_factor": [names[row][0] if row.any() else None for row in top_marks],
        "justification": multi["justification"].fillna("").astype(str).str.strip(),
        "one_word": multi["one_word"].fillna("").astype(str).str.strip(),
    })
    return frame.sort_values("image_id", ignore_index=True)


def check_factors(values) -> tuple[str, ...]:
    """`values` as a tuple of known factor ids; ValueError naming the first unknown one."""
    if isinstance(values, str):
        raise TypeError(f"factors={values!r} must be a sequence of factor ids, e.g. ('pose',)")
    out = tuple(values)
    for value in out:
        if value not in FACTORS:
            raise ValueError(f"factor {value!r} is not an ImageNet-X factor; use one of {', '.join(FACTORS)}")
    return out

"""`predict` given bad input: one line `error: ...` naming what is wrong, exit code 2, the store as it was.

Requests refused before any work leave every table unchanged (run bookkeeping included); an image that cannot be
read stops the run with its name, publishes nothing and records the run as failed in `runs`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

from analysis import cli
from analysis.knowledge import classes
from analysis.store import database
from tests.bad_inputs import BadInput, cases

RUN_BOOKKEEPING = ("runs", "prediction_staging")


def _checksums(path, exclude=()):
    con = database.connect(path, read_only=True)
    try:
        return database.table_checksums(con, exclude=exclude)
    finally:
        con.close()


def _predict(capsys, store, args: list[str]) -> str:
    """Run `predict` through the CLI; assert exit 2 and exactly one `error:` line on stderr; return it."""
    code = cli.main(["predict", "--db", str(store), "--device", "cpu", *args])
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert "Traceback" not in captured.err and len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def _folder(tmp_path: Path, *names: str) -> Path:
    """An image folder: `names` are '<wnid-or-other>/<file>' paths, each a copy of the tench sample picture."""
    root = tmp_path / "images"
    root.mkdir()
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(classes.sample_images()[0][0], root / name)
    return root


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _state_dict(tmp_path: Path, name: str, obj) -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


TENCH = "n01440764"
SAMPLES = ["--model", "efficientnet-lite0", "--dataset", "samples", "--limit", "2", "--workers", "0"]


def _resnet(checkpoint: Path, model: str = "timm:resnet18") -> list[str]:
    return ["--model", model, "--model-id", "checkpointed", "--dataset", "samples", "--limit", "2", "--workers", "0",
            "--checkpoint", str(checkpoint)]


# case id -> the predict arguments, built in tmp_path
REFUSED_ARGS = {
    "run-unknown-model": lambda t: ["--model", "efficientnet-lite9", "--dataset", "samples"],
    "run-unknown-timm-model": lambda t: ["--model", "timm:no_such_net", "--dataset", "samples"],
    "run-unknown-torchvision-model": lambda t: ["--model", "torchvision:no_such_net", "--dataset", "samples"],
    "run-empty-model-name": lambda t: ["--model", "", "--dataset", "samples"],
    "run-unknown-dataset": lambda t: ["--model", "efficientnet-lite0", "--dataset", "cifar"],
    "run-shard-out-of-range": lambda t: [*SAMPLES, "--shard", "2/2"],
    "run-shard-not-i-of-n": lambda t: [*SAMPLES, "--shard", "half"],
    "run-limit-zero": lambda t: [*SAMPLES, "--limit", "0"],
    "run-limit-negative": lambda t: [*SAMPLES, "--limit", "-1"],
    "run-batch-size-zero": lambda t: [*SAMPLES, "--batch-size", "0"],
    "run-workers-negative": lambda t: [*SAMPLES, "--workers", "-1"],
    "run-folder-without-images": lambda t: ["--model", "efficientnet-lite0", "--dataset", "folder"],
    "run-folder-missing": lambda t: ["--model", "efficientnet-lite0", "--dataset", "folder", "--images",
                                     str(t / "nope")],
    "run-folder-is-a-file": lambda t: ["--model", "efficientnet-lite0", "--dataset", "folder", "--images",
                                       str(_file(t, "x.jpg", b"x"))],
    "run-folder-empty": lambda t: ["--model", "efficientnet-lite0", "--dataset", "folder", "--images",
                                   str(_folder(t))],
    "run-folder-not-wnid": lambda t: ["--model", "efficientnet-lite0", "--dataset", "folder", "--images",
                                      str(_folder(t, "cats/a.jpg"))],
    "run-folder-no-image-files": lambda t: ["--model", "efficientnet-lite0", "--dataset", "folder", "--images",
                                            str(_folder(t, f"{TENCH}/a.txt"))],
    "run-imagenet-val-no-folder": lambda t: ["--model", "efficientnet-lite0", "--dataset", "imagenet-val"],
    "run-imagenet-val-no-files": lambda t: ["--model", "efficientnet-lite0", "--dataset", "imagenet-val",
                                            "--images", str(_folder(t, "photo.JPEG"))],
    "run-checkpoint-missing": lambda t: _resnet(t / "nope.pth"),
    "run-checkpoint-directory": lambda t: _resnet(t),
    "run-checkpoint-for-lite": lambda t: [*SAMPLES, "--checkpoint", str(_file(t, "w.pth", b"x"))],
    "run-checkpoint-empty": lambda t: _resnet(_file(t, "empty.pth", b"")),
    "run-checkpoint-random-bytes": lambda t: _resnet(_file(t, "random.pth", bytes(range(256)) * 40)),
    "run-checkpoint-text": lambda t: _resnet(_file(t, "notes.pth", b"these are not weights\n"),
                                             "torchvision:resnet18"),
    "run-checkpoint-other-architecture": lambda t: _resnet(
        _state_dict(t, "mobilenet.pth", torchvision.models.mobilenet_v3_small().state_dict())),
    "run-checkpoint-not-a-state-dict": lambda t: _resnet(_state_dict(t, "list.pth", [1, 2, 3]),
                                                         "torchvision:resnet18"),
    "run-checkpoint-truncated-zip": lambda t: _resnet(
        _file(t, "cut.pth", _state_dict(t, "full.pth", {"w": torch.zeros(1000)}).read_bytes()[:600])),
}

REFUSED = cases(
    BadInput("run-unknown-model", "predict --model", "a name not in the registry", "is unknown; choose one of"),
    BadInput("run-unknown-timm-model", "predict --model timm:NAME", "timm has no such architecture",
             "timm has no architecture"),
    BadInput("run-unknown-torchvision-model", "predict --model torchvision:NAME", "torchvision has no such model",
             "torchvision has no model"),
    BadInput("run-empty-model-name", "predict --model", "empty", "must be a name such as efficientnet-lite0"),
    BadInput("run-unknown-dataset", "predict --dataset", "not samples, imagenet-val or folder",
             "dataset='cifar' is unknown"),
    BadInput("run-shard-out-of-range", "predict --shard", "2/2 (i must be below n)", "must be i/n with 0 <= i < n"),
    BadInput("run-shard-not-i-of-n", "predict --shard", "not of the form i/n", "must be i/n with 0 <= i < n"),
    BadInput("run-limit-zero", "predict --limit", "0", "limit=0 must be an integer >= 1"),
    BadInput("run-limit-negative", "predict --limit", "negative", "limit=-1 must be an integer >= 1"),
    BadInput("run-batch-size-zero", "predict --batch-size", "0", "batch_size=0 must be an integer >= 1"),
    BadInput("run-workers-negative", "predict --workers", "negative", "workers=-1 must be an integer >= 0"),
    BadInput("run-folder-without-images", "predict --dataset folder", "no --images folder given",
             "needs --images DIR"),
    BadInput("run-folder-missing", "predict --images (folder)", "does not exist", "is not a folder"),
    BadInput("run-folder-is-a-file", "predict --images (folder)", "a file, not a folder", "is not a folder"),
    BadInput("run-folder-empty", "predict --images (folder)", "an empty folder", "holds no images in wnid sub-folders"),
    BadInput("run-folder-not-wnid", "predict --images (folder)", "a sub-folder that is not a wnid",
             "is not an ImageNet-1k wnid"),
    BadInput("run-folder-no-image-files", "predict --images (folder)", "wnid sub-folders without image files",
             "holds no images in wnid sub-folders"),
    BadInput("run-imagenet-val-no-folder", "predict --dataset imagenet-val", "no --images and no IMAGENET_DIR",
             "set IMAGENET_DIR or pass --images"),
    BadInput("run-imagenet-val-no-files", "predict --images (imagenet-val)", "no ILSVRC2012_val_*.JPEG files",
             "holds no ILSVRC2012_val_*.JPEG files"),
    BadInput("run-checkpoint-missing", "predict --checkpoint", "does not exist", "does not exist or is not a file"),
    BadInput("run-checkpoint-directory", "predict --checkpoint", "a folder", "does not exist or is not a file"),
    BadInput("run-checkpoint-for-lite", "predict --checkpoint", "given for an EfficientNet-Lite model",
             "--checkpoint is for timm:/torchvision: models"),
    BadInput("run-checkpoint-empty", "predict --checkpoint", "an empty file", "is empty"),
    BadInput("run-checkpoint-random-bytes", "predict --checkpoint", "random bytes", "cannot be loaded into"),
    BadInput("run-checkpoint-text", "predict --checkpoint", "a text file", "cannot be loaded into"),
    BadInput("run-checkpoint-other-architecture", "predict --checkpoint",
             "the state dict of another architecture", "cannot be loaded into timm:resnet18"),
    BadInput("run-checkpoint-not-a-state-dict", "predict --checkpoint", "a pickled list, not a state dict",
             "cannot be loaded into"),
    BadInput("run-checkpoint-truncated-zip", "predict --checkpoint", "a torch.save file cut short",
             "cannot be loaded into"),
)


@pytest.mark.parametrize("case", REFUSED)
def test_bad_requests_are_refused_before_any_work(store_copy, tmp_path, capsys, monkeypatch, case):
    monkeypatch.delenv("IMAGENET_DIR", raising=False)
    args = REFUSED_ARGS[case.id](tmp_path)
    before = _checksums(store_copy)
    line = _predict(capsys, store_copy, args)
    assert case.message in line
    if "--checkpoint" in args and case.id != "run-checkpoint-for-lite":
        assert args[args.index("--checkpoint") + 1] in line  # the message names the file
    assert _checksums(store_copy) == before


def _png(path: Path, side: int) -> None:
    """A one-colour PNG of side x side pixels (a few kB on disk, whatever its dimensions)."""
    Image.new("1", (side, side)).save(path)


def _image(tmp_path: Path, case_id: str) -> Path:
    """A folder holding one good image and the bad one of the case (sorted after it); returns the bad file."""
    root = _folder(tmp_path, f"{TENCH}/a_good.JPEG")
    bad = root / TENCH / {"run-image-truncated": "b_truncated.JPEG", "run-image-not-an-image": "b_notes.jpg",
                          "run-image-empty": "b_empty.png", "run-image-over-pixel-limit": "b_large.png",
                          "run-image-decompression-bomb": "b_bomb.png"}[case_id]
    data = classes.sample_images()[0][0].read_bytes()
    if case_id == "run-image-truncated":
        bad.write_bytes(data[: len(data) // 3])
    elif case_id == "run-image-not-an-image":
        bad.write_text("not a picture\n")
    elif case_id == "run-image-empty":
        bad.write_bytes(b"")
    else:  # above Image.MAX_IMAGE_PIXELS (~89 Mpx) Pillow warns, above twice that it refuses
        _png(bad, 10_000 if case_id == "run-image-over-pixel-limit" else 20_000)
    return bad


_RUN_FAILED = "results unchanged, run logged as failed"
UNREADABLE = cases(
    BadInput("run-image-truncated", "image in the folder", "a JPEG cut short", "cannot read the image",
             store=_RUN_FAILED),
    BadInput("run-image-not-an-image", "image in the folder", "a text file named .jpg",
             "not an image format Pillow reads",
             store=_RUN_FAILED),
    BadInput("run-image-empty", "image in the folder", "an empty .png", "not an image format Pillow reads",
             store=_RUN_FAILED),
    BadInput("run-image-over-pixel-limit", "image in the folder", "10000x10000 pixels, above Pillow's limit",
             "above Pillow's limit (Image.MAX_IMAGE_PIXELS",
             store=_RUN_FAILED),
    BadInput("run-image-decompression-bomb", "image in the folder", "20000x20000 pixels, twice Pillow's limit",
             "above Pillow's limit (Image.MAX_IMAGE_PIXELS",
             store=_RUN_FAILED),
)


@pytest.mark.parametrize("case", UNREADABLE)
def test_an_unreadable_image_stops_the_run_with_its_name(store_copy, tmp_path, capsys, case):
    bad = _image(tmp_path, case.id)
    before = _checksums(store_copy, RUN_BOOKKEEPING)
    line = _predict(capsys, store_copy, ["--model", "efficientnet-lite0", "--dataset", "folder", "--images",
                                         str(bad.parents[1]), "--workers", "0", "--batch-size", "1"])
    assert str(bad) in line and case.message in line
    assert _checksums(store_copy, RUN_BOOKKEEPING) == before  # nothing published
    con = database.connect(store_copy, read_only=True)
    try:
        status, message = database.first(con, "SELECT status, message FROM runs WHERE dataset LIKE 'folder:images-%'")
        assert status == "failed" and str(bad) in message
        # the good image before it stays staged for the next run, with the identity of its file
        assert con.execute("SELECT file_name, file_size FROM prediction_staging").fetchall() == [
            (f"{TENCH}/a_good.JPEG", (bad.parent / "a_good.JPEG").stat().st_size)]
    finally:
        con.close()

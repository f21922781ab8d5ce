"""Run: predict with a registered model on an image set, with a progress bar, then browse its errors."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from analysis import paths
from analysis.errors import UserError
from analysis.inference import models, runner
from analysis.store import reference
from dashboard import access, db, state

DEVICES = {"auto": "auto (GPU when present)", "cpu": "CPU", "cuda": "GPU (CUDA)"}
DATASETS = {"samples": "class sample images (1000, one per class)",
            "imagenet-val": "ImageNet validation (IMAGENET_DIR or a folder)",
            "folder": "a folder of class folders (<wnid>/image.jpg)"}

# The fix of a bad argument in this page's words (runner.ArgumentError names the argument; its message the CLI's).
PAGE_FIX = {"images": f"set {paths.IMAGENET_ENV} when starting the dashboard, or give an “Image folder”",
            "device": "choose the device CPU or auto",
            "model_id": "choose another “Store as model id”",
            "model": "choose a model from the list, or give a “Checkpoint file” (a state dict) for a timm: or "
                     "torchvision: model",
            "checkpoint": "give a “Checkpoint file” of this architecture saved with torch.save, or leave it empty"}


def in_page_words(exc: Exception) -> str:
    """A runner error as this page says it: the problem, then the fix naming this page's inputs."""
    if isinstance(exc, runner.ArgumentError) and exc.argument in PAGE_FIX:
        return f"{exc.problem}. Fix: {PAGE_FIX[exc.argument]}."
    return str(exc)


def default_model_id(name: str, checkpoint: str) -> str:
    """The model id a run is stored under when the field is empty: the model name (+ the checkpoint's file name)."""
    return f"{name}+{Path(checkpoint).stem}" if checkpoint else name


def _fresh_model_id() -> None:
    """A changed model or checkpoint starts from its own default id, never from one typed for another model."""
    st.session_state["run_model_id"] = ""


st.title("Run a model")
if access.read_only():  # not in the navigation then; this guards a direct link all the same
    st.error("This dashboard is read-only: it runs no model and builds no store.", icon=":material/lock:")
    st.stop()
path = db.store_path()
if not path.is_file():
    st.warning(f"There is no store at `{path}` yet.", icon=":material/database:")
    if st.button("Build the store now", key="run_build"):
        try:
            with db.writing(), st.spinner("Building the reference tables (classes, superclasses, images, experts, "
                                          "paper zoo)…"):
                reference.build(path, progress=False)
        except (UserError, ValueError, FileNotFoundError, OSError) as exc:
            st.error(f"Build failed: {exc}", icon=":material/error:")
            st.stop()
        st.rerun()
    st.stop()

cols = st.columns(2)
with cols[0]:
    choice = st.selectbox("Model", models.registered(), key="run_model", on_change=_fresh_model_id)
    other = st.text_input("…or another registry name (`timm:<name>`, `torchvision:<name>`; weights must be cached "
                          "locally or given as a checkpoint)", key="run_other", on_change=_fresh_model_id).strip()
    checkpoint = st.text_input("Checkpoint file (optional: a state dict for a timm: or torchvision: model, under "
                               "an allowed folder)", key="run_checkpoint", on_change=_fresh_model_id).strip()
    default_id = default_model_id(other or choice, checkpoint)
    model_id = st.text_input("Store as model id", key="run_model_id", placeholder=default_id,
                             help=f"Empty: `{default_id}`. A model id already stored on this image set only gets "
                                  "its missing images predicted.").strip()
with cols[1]:
    dataset = st.radio("Image set", list(DATASETS), format_func=DATASETS.get, key="run_dataset")
    folder = ""
    if dataset != "samples":
        default = str(paths.imagenet_dir() or "") if dataset == "imagenet-val" else ""
        folder = st.text_input("Image folder", value=default, key=f"run_folder_{dataset}").strip()
        st.caption("Only folders under " + ", ".join(f"`{r}`" for r in paths.image_roots()) +
                   f" (more: `{paths.IMAGE_ROOTS_ENV}=dir1:dir2` when starting the dashboard).")
    device = st.radio("Device", list(DEVICES), format_func=DEVICES.get, horizontal=True, key="run_device")
    limit = st.number_input("Only the first N images (0 = all)", min_value=0, value=50, step=10, key="run_limit")

name = other or choice
label = f"Run {name}" + (f" as {model_id or default_id}" if (model_id or default_id) != name else "")
if st.button(label, type="primary", key="run_go"):
    images = None
    try:
        if dataset == "folder" and not folder:
            raise UserError("Give the “Image folder”: a folder with one sub-folder per wnid (e.g. n01440764/).")
        if folder:
            images = access.allowed_folder(folder)
        checkpoint_file = None
        if checkpoint:
            refused = UserError(f"Checkpoint file {checkpoint!r} is not a file under an allowed folder: the Run page "
                                f"reads only files under {', '.join(str(r) for r in paths.image_roots())}.")
            try:
                checkpoint_file = access.allowed_folder(str(Path(checkpoint).parent)) / Path(checkpoint).name
            except UserError:
                raise refused from None
            if not checkpoint_file.is_file():
                raise refused
    except UserError as exc:
        st.error(str(exc), icon=":material/error:")
        st.stop()
    bar = st.progress(0.0, text="loading the model…")

    def _report(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"{done} / {total} images")

    started = time.perf_counter()
    try:
        with db.writing(pause=False):  # minutes long: copies go on meanwhile, the run's writes wait for them
            result = runner.predict(name, dataset, images=images, db=path, device=device,
                                    checkpoint=checkpoint_file, limit=int(limit) or None,
                                    model_id=model_id or default_id, progress=_report)
    except (UserError, ValueError, FileNotFoundError, OSError, RuntimeError, ImportError) as exc:
        bar.empty()
        st.error(f"The run failed: {in_page_words(exc)}", icon=":material/error:")
        st.stop()
    bar.progress(1.0, text="done")
    if result.run_id is None:
        st.warning(f"`{result.model_id}` already predicted: nothing to run. All {result.selected} selected images "
                   f"of `{result.dataset}` are stored under that model id; to run {name} again, choose another "
                   "“Store as model id”.", icon=":material/info:")
    else:
        top1 = "" if result.top1 is None else f", top-1 {100 * result.top1:.1f}% over its stored predictions"
        st.success(f"`{result.model_id}`: {result.predicted} images of `{result.dataset}` predicted in "
                   f"{time.perf_counter() - started:.1f} s on {result.device}{top1}.", icon=":material/check_circle:")
    st.session_state["run_last"] = (result.model_id, result.dataset)

if st.session_state.get("run_last"):
    last_model, last_dataset = st.session_state["run_last"]

    def _browse() -> None:
        st.session_state[state.FILTER_KEYS["dataset"]] = last_dataset
        st.session_state[state.FILTER_KEYS["models"]] = [last_model]
        st.session_state["br_page"] = 1

    if st.button(f"Browse the errors of {last_model}", key="run_browse", on_click=_browse):
        st.switch_page("app_pages/browse.py")

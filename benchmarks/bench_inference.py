"""Inference benchmark: images/s of the runner against a plain single-process loop on the same images.

The plain loop opens, preprocesses and classifies one image at a time (batch 1, no workers, no store).
The runner batches, uses DataLoader workers and (on CUDA) bf16 autocast, channels_last and pinned
memory, and also stores and classifies the predictions. GPU figures are added when a GPU is present.
Figures go to docs/PERFORMANCE.md, section `bench:inference`.

    python benchmarks/bench_inference.py [--images 200] [--models efficientnet-lite0 ...] [--device auto]
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args(argv)

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

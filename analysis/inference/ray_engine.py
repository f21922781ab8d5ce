"""`predict --engine ray`: the runner's inference on a Ray cluster with Ray Data (docs/SCALE.md).

The image set becomes `ray.data.from_items` of (position, path); `map_batches` sends batches to a pool of actors,
each holding one copy of the model (on one GPU slice when `gpus_per_worker` > 0, on a CPU otherwise), which runs
exactly the local engine's `runner.infer_batches` (same transform, same bf16 autocast on CUDA, same top-5). The
driver yields the same (positions, top-5, confidences, file identity) batches as the local engine, so the runner
stages and publishes them through the same path. Ray is imported here only, inside functions.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from analysis.errors import one_line
from analysis.inference.models import ModelSpec

ENGINES = ("local", "ray")
CONNECT_TIMEOUT = 3.0  # seconds to reach a cluster's address before giving up
_ADDRESS_RE = re.compile(r"(?:ray://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


@dataclass
class RayPlan:
    """A cluster: its address (None: a local one), actors, GPUs per actor, device, whether `start` called ray.init
    (then `stop` shuts Ray down: a local cluster ends, a remote one is only disconnected from)."""

    address: str | None
    workers: int
    gpus_per_worker: float
    device: str
    started: bool


def check_options(address: str | None, workers: int | None, gpus_per_worker: float | None) -> None:
    """ValueError for a bad --address (malformed or unreachable), --workers < 1 or --gpus-per-worker < 0; no Ray."""
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise ValueError(f"workers={workers!r} must be an integer >= 1 with --engine ray (the number of actors, each "
                         "holding one model copy)")
    gpus = gpus_per_worker
    if gpus is not None and (not isinstance(gpus, (int, float)) or isinstance(gpus, bool) or not gpus >= 0):
        raise ValueError(f"gpus_per_worker={gpus_per_worker!r} must be a number >= 0 (0: CPU actors; 0.5: two actors "
                         "share a GPU)")
    if address is None or address == "auto":
        return
    match = _ADDRESS_RE.fullmatch(str(address).strip())
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"address={address!r} must be HOST:PORT (the head's GCS, e.g. 10.0.0.5:6379), "
                         "ray://HOST:PORT (Ray Client) or auto")
    host, port = match.group(1).strip("[]"), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise ValueError(f"address={address!r}: no Ray cluster answers there ({exc.strerror or exc}); start one with "
                         "`ray start --head` or pass the head's address") from None


def start(address: str | None, workers: int | None, gpus_per_worker: float | None, device: str) -> RayPlan:
    """Connect to the cluster at `address` (or start a local one) and size the actor pool; ValueError when it cannot.

    `device`: auto (GPUs when the cluster has them), cpu or cuda. Defaults: one GPU per actor when the cluster has
    GPUs, one actor per GPU (or per CPU on a CPU cluster).
    """
    check_options(address, workers, gpus_per_worker)
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={device!r} must be auto, cpu or cuda")
    import ray

    started = False
    if not ray.is_initialized():
        try:
            with _quiet():  # Ray's notices (token authentication on, ...) are not the user's business here
                if address is None:
                    # "local": a new cluster, even where `ray start` left one that ray.init() would join
                    ray.init("local", include_dashboard=False, log_to_driver=False, configure_logging=False,
                             runtime_env={"env_vars": {"PYTHONPATH": _pythonpath()}})
                else:
                    ray.init(address=address, log_to_driver=False, configure_logging=False,
                             runtime_env={"py_modules": [str(Path(__file__).resolve().parents[1])]})
                started = True
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            raise ValueError(f"address={address!r}: cannot connect to a Ray cluster ({one_line(exc)}); start one "
                             "with `ray start --head` or pass the head's address") from None
    try:
        return _plan(ray.cluster_resources(), address, workers, gpus_per_worker, device, started)
    except ValueError:
        if started:
            ray.shutdown()
        raise


def _plan(resources: dict, address, workers, gpus_per_worker, device: str, started: bool) -> RayPlan:
    gpus, cpus = float(resources.get("GPU", 0)), float(resources.get("CPU", 0))
    if device == "cuda" and gpus == 0:
        raise ValueError("device=cuda but the Ray cluster has no GPU; use --device cpu or auto")
    if gpus_per_worker is None:
        gpus_per_worker = 0.0 if device == "cpu" or gpus == 0 else 1.0
    if gpus_per_worker > gpus:
        raise ValueError(f"gpus_per_worker={gpus_per_worker!r} is more than the Ray cluster's {gpus:g} GPUs; pass "
                         f"--gpus-per-worker between 0 and {gpus:g}")
    if gpus_per_worker > 0 and device == "cpu":
        raise ValueError(f"gpus_per_worker={gpus_per_worker!r} with device=cpu; pass --gpus-per-worker 0 or --device "
                         "auto")
    if workers is None:
        workers = max(1, int(gpus // gpus_per_worker) if gpus_per_worker > 0 else int(cpus))
    return RayPlan(address, workers, float(gpus_per_worker), "cuda" if gpus_per_worker > 0 else "cpu", started)


def stop(plan: RayPlan) -> None:
    """Shut Ray down when `start` initialised it: a local cluster ends, a remote one keeps running."""
    if plan.started:
        import ray

        ray.shutdown()


def _pythonpath() -> str:
    """The folder holding `analysis` first, then the driver's PYTHONPATH (local actors import our modules)."""
    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join([root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


@contextmanager
def _quiet():
    """Ray's loggers at ERROR inside the block (its INFO/WARNING notices would break the CLI's one-line output)."""
    loggers = [logging.getLogger(name) for name in ("ray", "ray.data")]  # ray.data has its own level once configured
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


class _Predictor:
    """A Ray Data actor: one model copy; each batch of (position, path) goes through `runner.infer_batches`.

    `spec`, `device` and `batch_size` are class attributes of a subclass (`_predictor`), so the actor has no
    constructor arguments in the object store (Ray then warns that a restarted actor could lose them).
    """

    spec: ModelSpec
    device: str
    batch_size: int

    def __init__(self) -> None:
        from analysis.inference import models

        self.loaded = models.load(self.spec)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from analysis.inference import runner

        positions = np.asarray(batch["position"], dtype=np.int64)
        files = [Path(str(p)) for p in batch["path"]]
        parts, error = [], ""
        try:
            for part in runner.infer_batches(self.loaded, files, device=self.device, batch_size=self.batch_size,
                                             workers=0):
                parts.append(part)
        except ValueError as exc:  # an unreadable image: the rows before it, then the message
            error = str(exc)
        done = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        n = len(done) + (1 if error else 0)
        out = {
            "position": np.concatenate([positions[done], positions[len(done):][:1]]) if error else positions[done],
            "top5": np.zeros((n, 5), np.int16), "confidence": np.zeros((n, 5), np.float32),
            "file": np.full((n, 2), -1, np.int64), "error": np.array([""] * len(done) + ([error] if error else [])),
        }
        if parts:
            for name, k in (("top5", 1), ("confidence", 2), ("file", 3)):
                out[name][: len(done)] = np.concatenate([p[k] for p in parts])
        return out


def _predictor(spec: ModelSpec, device: str, batch_size: int) -> type[_Predictor]:
    """A `_Predictor` subclass carrying the model, device and batch size (pickled by value with it)."""
    return type("Predictor", (_Predictor,), {"spec": spec, "device": device, "batch_size": batch_size})


def infer_batches(spec: ModelSpec, files: list[Path], plan: RayPlan, *, batch_size: int = 32
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield what `runner.infer_batches` yields — (positions (B,), top5 (B, 5) int16, confidences (B, 5) float32,
    file size and mtime in ns (B, 2) int64) — computed by `plan.workers` actors; batches arrive in any order.

    Raises ValueError naming the first unreadable image found (the good rows of its batch come first).
    """
    import ray.data  # noqa: F401 (before _quiet: importing it configures its loggers)

    with _quiet():
        yield from _run(spec, files, plan, batch_size)


def _run(spec: ModelSpec, files: list[Path], plan: RayPlan, batch_size: int
         ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the runner shows its own
    context.print_on_execution_start = False
    items = [{"position": i, "path": str(p)} for i, p in enumerate(files)]
    blocks = max(1, min(len(items), max(plan.workers * 4, len(items) // 1024)))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    with warnings.catch_warnings():  # ray 2.60 deprecates extra remote args (removed in 2.64); its own code uses them
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        predicted = dataset.map_batches(
            _predictor(spec, plan.device, batch_size), batch_size=batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=plan.workers), num_gpus=plan.gpus_per_worker or None, num_cpus=1,
            max_restarts=0)  # a lost actor fails the run (it resumes), and Ray does not warn about restarts
    for batch in predicted.iter_batches(batch_size=None, batch_format="numpy"):
        errors = np.asarray(batch["error"])
        good = errors == ""
        if good.any():
            yield (np.asarray(batch["position"])[good], np.asarray(batch["top5"])[good].astype(np.int16),
                   np.asarray(batch["confidence"])[good].astype(np.float32), np.asarray(batch["file"])[good])
        if not good.all():
            raise ValueError(str(errors[~good][0]))

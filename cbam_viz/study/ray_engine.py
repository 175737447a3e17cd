"""The Ray engine (``--engine ray``): the local engine's batches, measured by Ray Data actors, one per model.

The run is planned exactly as the local engine plans it (``engine.open_study``: the same checks, folder, shards and
batches, a batch never spanning two shards), so each image meets the same batch mates and gets the same numbers.
Ray Data then streams those batches (one dataset row per batch, in order):

1. ``prepare``: tasks that decode and prepare a batch's pictures (what the local engine's DataLoader workers do);
2. one ``map_batches`` stage per model, a callable class (``ModelRows``) run as an actor pool, so that each actor
   loads its model once; it asks for a share of a GPU when the cluster has GPUs;
3. the driver joins each batch's per-model rows (``measure.merge``) and hands them to the local engine's
   ``ShardWriter``: the same shard files, atlas sums and ``finish`` (``images.parquet``, ``summary.json``), so a Ray
   run is as resumable as a local one and its tables are identical. (Ray's ``write_parquet`` would write its blocks
   under its own names and in its own order: the shard writer keeps the table row for row and the resume.)

``RAY_ADDRESS`` set: the run joins that cluster (whose nodes must have ``cbam_viz[ray]`` installed and the weights
and the data at the same paths); otherwise it starts a small local instance and shuts it down at the end.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cbam_viz.errors import CbamVizError
from cbam_viz.study import engine

INSTALL = "--engine ray needs Ray: pip install 'cbam_viz[ray]' (or pip install -r requirements-ray.txt)"
LOCAL_CPUS = 2  # a local instance's CPUs: the models' actors and the decoding tasks share them


def require_ray() -> None:
    """One line saying how to install Ray when it is absent."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError:
        raise CbamVizError(INSTALL) from None


@contextmanager
def connected() -> Iterator[bool]:
    """Join ``RAY_ADDRESS``'s cluster, or start a small local instance; leave only what this run started. Yields
    whether the workers run on this machine (a local instance)."""
    import ray

    if ray.is_initialized():  # the caller's own session: use it, leave it
        yield not os.environ.get("RAY_ADDRESS")
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, logging_level=logging.WARNING)
        local = False
    else:
        local = True
        package_root = str(Path(__file__).resolve().parents[2])  # workers import this very cbam_viz
        path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        ray.init(
            num_cpus=LOCAL_CPUS,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
        )
    try:
        yield local
    finally:
        ray.shutdown()


def prepare(batch: dict[str, Any], *, preprocesses: Sequence[Any], view: str) -> dict[str, Any]:
    """Ray Data stage: a batch's items -> its pictures prepared (``measure.Prepared``) or skipped, pickled."""
    import numpy as np

    from cbam_viz.study import measure

    prepared = []
    for blob in batch["items"]:
        items = pickle.loads(blob)
        preparing = measure.Preparing(items, preprocesses, view)
        prepared.append(pickle.dumps([preparing[i] for i in range(len(items))]))
    return {"batch": batch["batch"], "prepared": np.array(prepared, dtype=object)}


class ModelRows:
    """Ray Data stage, one per model: the actor loads its model once and measures every batch it is given."""

    def __init__(
        self,
        arch: str,
        *,
        weights: str,
        weights_dir: Path | None,
        device: str | None,
        method: str,
        stage: int,
        categories: Sequence[str],
        sweep: bool = False,
        threads: int | None = None,
    ) -> None:
        import torch

        from cbam_viz.analysis.models import get_models

        if threads is not None:  # the local engine's count: CPU kernels round differently with another one
            torch.set_num_threads(threads)
        self.arch, self.method, self.stage, self.categories = arch, method, stage, list(categories)
        self.sweep = sweep
        self.models = get_models((arch,), weights, device, weights_dir=weights_dir).models

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        import torch

        from cbam_viz.study import measure

        rows = []
        with torch.inference_mode(False):
            for blob in batch["prepared"]:
                results = measure.measure_batch(
                    pickle.loads(blob),
                    self.models,
                    method=self.method,
                    stage=self.stage,
                    categories=self.categories,
                    sweep=self.sweep,
                )
                rows.append(pickle.dumps(results))
        return {**batch, f"rows|{self.arch}": np.array(rows, dtype=object)}


def _resources(models: int) -> tuple[float, float, int]:
    """(CPUs and GPUs per model actor, actors per model) for the cluster at hand: every model's actor and a decoding
    task fit at once (three actors of one CPU each would never start on two CPUs); a GPU is shared by the models."""
    import ray

    available = ray.cluster_resources()
    cpus, gpus = float(available.get("CPU", 1)), float(available.get("GPU", 0))
    cpu_share = min(1.0, cpus / (models + 1))
    if gpus:
        return cpu_share, min(1.0, gpus / models), max(1, int(gpus // models))
    return cpu_share, 0.0, max(1, int(cpus // (models + 1)))


def run_study_ray(data: str, out: Path, *, progress: bool = True, **options: Any) -> engine.StudyResult:
    """``engine.run_study`` on Ray Data: the same options, checks, files and numbers (``workers`` is unused: Ray
    schedules the decoding tasks)."""
    require_ray()
    device = options.pop("device", None)
    plan = engine.open_study(data, out, device="cpu", **options)  # the driver only checks; actors load on `device`
    writer = engine.ShardWriter(plan, progress)
    try:
        with connected() as local:
            _stream(plan, writer, device, local)
    finally:
        writer.close()
    return writer.result()


def _stream(plan: engine.Plan, writer: engine.ShardWriter, device: str | None, local: bool) -> None:
    import ray.data
    import torch

    if not plan.batches:
        return
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # batches come back in the order the shard writer needs
    context.enable_progress_bars = False  # the study's own bar counts images
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan and timing lines, and that warning
    archs = list(plan.options.models)
    cpus, gpus, actors = _resources(len(archs))
    rows = [
        {"batch": j, "items": pickle.dumps([plan.items[i] for i in indices])}
        for j, (_, indices) in enumerate(plan.batches)
    ]
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
    dataset = dataset.map_batches(
        prepare,
        batch_size=1,
        num_cpus=cpus,
        fn_kwargs={"preprocesses": plan.preprocesses, "view": plan.options.view},
    )
    for arch in archs:
        dataset = dataset.map_batches(
            ModelRows,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
            num_cpus=cpus,
            num_gpus=gpus,
            fn_constructor_args=(arch,),
            fn_constructor_kwargs={
                "weights": plan.weights,
                "weights_dir": plan.weights_dir,
                "device": device,
                "method": plan.options.method,
                "stage": plan.options.stage,
                "categories": list(plan.categories),
                "sweep": plan.options.sweep,
                # on this machine, the local engine's thread count, so that both give the same table
                "threads": torch.get_num_threads() if local else None,
            },
        )
    dataset = dataset.drop_columns(["prepared"])
    for expected, record in enumerate(dataset.iter_rows()):
        j = int(record["batch"])
        if j != expected:
            raise RuntimeError(f"Ray returned batch {j} where batch {expected} was due")
        k, indices = plan.batches[j]
        writer.add(k, indices, _joined(record, archs))


def _joined(record: dict[str, Any], archs: Sequence[str]) -> list[Any]:
    from cbam_viz.study import measure

    return measure.merge([pickle.loads(record[f"rows|{arch}"]) for arch in archs])

"""The local study engine: sharded, resumable, bad input listed and skipped, only running aggregates in memory.

A study folder ``DIR`` holds:

* ``study.json``: what was asked (data, models, weights, method, stage, view, subset, sweep, shard size) and a digest of
  the image list. A run into a folder holding another study is refused with one line; the same command continues.
* ``shards/part-<k>.parquet``: the rows of images [k * SHARD_SIZE, (k + 1) * SHARD_SIZE), written atomically
  when the shard is finished, with ``part-<k>.skipped.csv``, ``part-<k>.atlas.npz`` (its running sums) and, with
  ``--sweep``, ``part-<k>.sweep.json`` (the gates-off sweep's running sums) written first. A shard whose parquet
  exists is done; Ctrl-C loses at most the shard in flight.
* ``images.parquet`` (every shard's rows, one per image and model, and ``box_iou``: the IoU at the dataset's
  MaxBoxAccV2 threshold for IoU 50 %), ``skipped.csv`` (``image_id,reason``), ``summary.json``
  (``study.summary``), ``atlas.npz`` and a figure per section of the summary (``figure-<name>.png``,
  ``study.figures``): written once every shard is done.

Memory: a shard's rows and pictures while it runs, the atlas's per-class sums and the sweep's sums; never maps of
past images.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from cbam_viz.errors import CbamVizError
from cbam_viz.study import sources
from cbam_viz.vocab import STAGES, Lineup, quote

SHARD_SIZE = 64
STUDY_VERSION = 1
STUDY_FILE = "study.json"
SHARDS = "shards"
LOCK_FILE = ".lock"  # in SHARDS: held by the run writing into the folder
DEFAULT_BATCH_SIZE = 16  # on the CPU (and on a GPU whose memory cannot be read)
GPU_MEMORY_SHARE = 0.6  # of the GPU's free memory, for a batch chosen by memory: the rest for the allocator's slack
MAX_GPU_BATCH = 256
ADDED_OPTIONS = {"sweep": False}  # options added after version 1: what a study.json without them asked for


@dataclass(frozen=True)
class StudyOptions:
    """What a study measures: everything that changes its numbers (not the device, batch size or workers)."""

    data: str  # "shapes" or the ImageFolder's absolute path
    models: tuple[str, ...]  # model ids: architectures, or a model card's ids
    weights: str  # as resolved ("demo", "paper", an entry, a file, a model card's absolute path)
    method: str = "gradcam"
    stage: int = 4
    view: str = "crop"
    limit: int | None = None
    per_class: int | None = None
    sweep: bool = False  # the gates-off sweep (measure.sweep_pass) of the models with attention gates

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "models": list(self.models)}


def schema() -> Any:
    """The table's columns (one schema for every shard, so that null-only columns keep their types)."""
    import pyarrow as pa

    columns = [
        ("image_id", pa.string()),
        ("arch", pa.string()),  # the model's id: its architecture for the paper's models, its card's id otherwise
        ("label", pa.int32()),
        ("label_name", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("predicted", pa.int32()),
        ("predicted_name", pa.string()),
        ("top5", pa.list_(pa.int32())),
        ("top5_probs", pa.list_(pa.float32())),
        ("top1_correct", pa.bool_()),
        ("top5_correct", pa.bool_()),
        ("target_prob", pa.float64()),
        ("region", pa.string()),
        ("pointing", pa.bool_()),
        ("pointing_15px", pa.bool_()),
        ("energy", pa.float64()),
        ("area_share", pa.float64()),
        ("box_ious", pa.list_(pa.float32())),
        *[(f"spatial_pointing_{stage}", pa.bool_()) for stage in STAGES],
        *[(f"spatial_energy_{stage}", pa.float64()) for stage in STAGES],
        ("note", pa.string()),
    ]
    return pa.schema(columns)


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    partial = path.with_name(path.name + ".tmp")
    write(partial)
    os.replace(partial, path)


def _write_table(rows: list[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=schema())
    _write_atomically(path, lambda partial: pq.write_table(table, partial))


def _write_skipped(rows: Sequence[tuple[str, str]], path: Path) -> None:
    def write(partial: Path) -> None:
        with partial.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image_id", "reason"])
            writer.writerows(rows)

    _write_atomically(path, write)


def _read_skipped(path: Path) -> list[tuple[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [(row[0], row[1]) for row in list(csv.reader(handle))[1:]]


def claim_folder(out: Path, options: StudyOptions, items: Sequence[sources.Item], shard_size: int = SHARD_SIZE) -> None:
    """Write ``study.json``, or check that the one there is this study; a different one is refused in one line."""
    digest = hashlib.sha256("\n".join(f"{i.image_id}\t{i.label}" for i in items).encode()).hexdigest()
    wanted = {"version": STUDY_VERSION, **options.to_json(), "shard_size": shard_size, "images": len(items)}
    wanted["items_sha256"] = digest
    file = out / STUDY_FILE
    if file.is_file():
        try:
            found = json.loads(file.read_text())
        except (OSError, ValueError):
            raise CbamVizError(f"{file} is unreadable: delete the folder or choose another --out") from None
        found = {**ADDED_OPTIONS, **found} if isinstance(found, dict) else {}
        if found != wanted:
            changed = [key for key in wanted if found.get(key) != wanted[key]]
            what = ", ".join(
                f"{key} {quote(found.get(key), 40)} there, {quote(wanted[key], 40)} now" for key in changed[:2]
            )
            raise CbamVizError(
                f"{out} holds a different study ({what}): choose another --out, or delete it to start again"
            )
        return
    if out.exists() and any(out.iterdir()):
        raise CbamVizError(f"{out} is not empty and holds no study: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    _write_atomically(file, lambda partial: partial.write_text(json.dumps(wanted, indent=2) + "\n"))


@dataclass
class StudyResult:
    """What a finished (or continued) run did."""

    out: Path
    images: int
    measured: int
    skipped: int
    shards_run: int
    summary: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # e.g. a figure not written over a file of the user's


@dataclass
class Plan:
    """A run, checked and claimed, before its first image: what both engines measure and how it is cut.

    ``batches`` are ``(shard, item indices)`` of the pending shards, in order; a batch never spans two shards, so
    every engine gives each image the same batch mates (the same float rounding) and writes the same shards."""

    out: Path
    options: StudyOptions
    weights: str  # as the user gave it, checked: what workers load
    weights_dir: Path | None
    device: str | None
    items: list[sources.Item]
    shard_size: int
    shard_count: int
    done: set[int]
    batches: list[tuple[int, list[int]]]
    model_set: Any  # analysis.models.ModelSet
    stop_after: int | None
    lock: IO[bytes] | None = None  # the folder's lock, held while this run writes into it (``hold_folder``)
    batch_note: str = ""  # how a batch size the user left open was chosen (on a GPU, by its memory)

    @property
    def categories(self) -> Sequence[str]:
        return self.model_set.categories

    @property
    def preprocesses(self) -> list[Any]:
        return list(dict.fromkeys(model.weights_info.preprocess for model in self.model_set.models.values()))

    def shard_length(self, k: int) -> int:
        return min(self.shard_size, len(self.items) - k * self.shard_size)


def open_study(
    data: str,
    out: Path,
    *,
    models: Sequence[str],
    weights: str | None = None,
    method: str = "gradcam",
    stage: int = 4,
    view: str = "crop",
    limit: int | None = None,
    per_class: int | None = None,
    sweep: bool = False,
    batch_size: int | None = None,
    device: str | None = None,
    weights_dir: Path | None = None,
    shard_size: int = SHARD_SIZE,
    workers: int = 0,
    stop_after: int | None = None,
) -> Plan:
    """Every check a user can fail, the models loaded (on ``device``), the folder claimed and the batches cut.

    ``batch_size`` None: ``DEFAULT_BATCH_SIZE`` on the CPU, and on a GPU as many images as its free memory holds
    (``probe_batch_size``)."""
    from cbam_viz.analysis.models import get_models
    from cbam_viz.analysis.options import AnalysisOptions
    from cbam_viz.weights.load import resolve_weights

    for name, value, least in (
        ("--batch-size", batch_size, 1),
        ("--shard-size", shard_size, 1),
        ("--workers", workers, 0),
    ):
        if value is not None and value < least:
            raise CbamVizError(f"{name} must be at least {least}, got {value}")
    if weights is None:
        weights = "demo" if data == sources.SHAPES else "auto"
    asked = AnalysisOptions(weights=weights, method=method, stage=stage, view=view)  # the words, before any file
    choice = resolve_weights(asked.weights, weights_dir)  # a model card is read here: its ids are the models to check
    recorded = choice.name
    if choice.card is not None:  # what workers load and study.json records, wherever the same card is named from
        weights = recorded = str(choice.card.path.resolve())
    checked = asked.with_(models=models, weights=choice)
    model_set = get_models(checked.models, choice, device, weights_dir=weights_dir)
    data_key = data if data == sources.SHAPES else str(Path(data).expanduser().resolve())
    items = sources.list_items(data, model_set.categories, limit=limit, per_class=per_class)
    if not items:
        raise CbamVizError(f"{quote(data)} holds no picture to study ({', '.join(sources.IMAGE_SUFFIXES)})")
    options = StudyOptions(
        data_key,
        checked.models,
        recorded,
        checked.method,
        checked.stage,
        checked.view,
        limit,
        per_class,
        bool(sweep),
    )
    claim_folder(out, options, items, shard_size)
    (out / SHARDS).mkdir(exist_ok=True)
    lock = hold_folder(out)
    batch_note = ""
    if batch_size is None:
        preprocesses = list(dict.fromkeys(model.weights_info.preprocess for model in model_set.models.values()))
        batch_size, batch_note = probe_batch_size(
            items, model_set.models, preprocesses, checked.view, method=checked.method, stage=checked.stage,
            categories=model_set.categories, sweep=bool(sweep),
        )  # fmt: skip
    shard_count = -(-len(items) // shard_size)
    done = {k for k in range(shard_count) if _shard_file(out, k, ".parquet").is_file()}
    pending = [k for k in range(shard_count) if k not in done]
    if stop_after is not None:
        pending = pending[:stop_after]
    batches = []
    for k in pending:
        length = min(shard_size, len(items) - k * shard_size)
        for first in range(0, length, batch_size):
            batches.append((k, list(range(k * shard_size + first, k * shard_size + min(first + batch_size, length)))))
    return Plan(
        out, options, weights, weights_dir, device, items, shard_size, shard_count, done, batches, model_set,
        stop_after, lock, batch_note,
    )  # fmt: skip


def gpu_batch_size(free_bytes: int, per_image_bytes: int) -> int:
    """The most images whose passes fit in ``GPU_MEMORY_SHARE`` of ``free_bytes``, between 1 and ``MAX_GPU_BATCH``."""
    return max(1, min(MAX_GPU_BATCH, int(free_bytes * GPU_MEMORY_SHARE) // max(1, per_image_bytes)))


def probe_batch_size(
    items: Sequence[sources.Item],
    models: dict[str, Any],
    preprocesses: Sequence[Any],
    view: str,
    *,
    method: str,
    stage: int,
    categories: Sequence[str],
    sweep: bool,
    memory: Any = None,
) -> tuple[int, str]:
    """-> (batch size, a note). On the CPU ``DEFAULT_BATCH_SIZE``; on a GPU, one measured pass of two pictures (the
    study's own: hooked passes, CAMs, the sweep when asked) gives the peak memory per image, which sets how many fit
    in the free memory. ``memory``: ``torch.cuda`` (tests pass a stand-in)."""
    import torch

    from cbam_viz.study import measure

    if memory is None:
        if next(next(iter(models.values())).parameters()).device.type != "cuda":
            return DEFAULT_BATCH_SIZE, ""
        memory = torch.cuda
    sample = []
    for item in items:
        try:
            sample.append(measure.prepare(sources.load(item), preprocesses, view))
        except CbamVizError:
            continue  # an unusable picture: the study skips it later, with its reason
        if len(sample) == 2:
            break
    if not sample:
        return DEFAULT_BATCH_SIZE, ""
    memory.synchronize()
    memory.reset_peak_memory_stats()
    before = memory.memory_allocated()
    with torch.inference_mode(False):
        measure.measure(sample, models, method=method, stage=stage, categories=categories, sweep=sweep)
    memory.synchronize()
    per_image = (memory.max_memory_allocated() - before) // len(sample)
    free, _ = memory.mem_get_info()
    chosen = gpu_batch_size(free, per_image)
    note = (
        f"batch size {chosen}, chosen by the GPU's free memory ({free / 2**30:.1f} GiB free, about "
        f"{per_image / 2**20:.0f} MiB per image); --batch-size N sets it"
    )
    return chosen, note


def hold_folder(out: Path) -> IO[bytes]:
    """The study folder's lock, held until the run's process lets go of it (or ends): a second run into the same
    folder, from another terminal, is refused in one line instead of measuring and writing the same shards."""
    handle = (out / SHARDS / LOCK_FILE).open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise CbamVizError(
            f"another study is writing into {out} now: wait for it to end (the same command then continues it if "
            "it was stopped), or choose another --out"
        ) from None
    return handle


def _shard_file(out: Path, k: int, suffix: str) -> Path:
    return out / SHARDS / f"part-{k:05d}{suffix}"


class ShardWriter:
    """Takes a run's measured batches in order and writes each shard when its last batch is in (its skipped list,
    its atlas sums, then its rows): the one writer of both engines, so that their tables and sums are the same."""

    def __init__(self, plan: Plan, progress: bool) -> None:
        from tqdm import tqdm

        from cbam_viz.study.summary import Atlas, GateSweep

        self.plan, self._atlas_type, self._sweep_type = plan, Atlas, GateSweep
        self.archs = list(plan.options.models)
        self.bar = tqdm(
            total=len(plan.items),
            initial=sum(plan.shard_length(k) for k in plan.done),
            unit="img",
            desc="study",
            disable=not progress,
            dynamic_ncols=True,
        )
        self.rows: list[dict[str, Any]] = []
        self.skipped: list[tuple[str, str]] = []
        self.atlas = Atlas()
        self.sweep = GateSweep()
        self.written = 0

    def add(self, k: int, indices: Sequence[int], results: Sequence[Any]) -> None:
        """One batch's results (``measure.Measured`` or ``measure.Skipped``, in the batch's order)."""
        from cbam_viz.study.measure import Skipped

        for one in results:
            if isinstance(one, Skipped):
                self.skipped.append((one.image_id, one.reason))
                continue
            for arch in self.archs:
                self.rows.append(one.rows[arch])
                if arch in one.channel:
                    self.atlas.add(arch, one.label, one.channel[arch])
                if arch in one.sweep:
                    row = one.rows[arch]
                    self.sweep.add(arch, (row["top1_correct"], row["target_prob"]), one.sweep[arch])
        self.bar.update(len(indices))
        if indices[-1] == k * self.plan.shard_size + self.plan.shard_length(k) - 1:  # the shard's last batch
            _write_skipped(self.skipped, _shard_file(self.plan.out, k, ".skipped.csv"))
            self.atlas.save(_shard_file(self.plan.out, k, ".atlas.npz"))
            if self.plan.options.sweep:
                self.sweep.save(_shard_file(self.plan.out, k, ".sweep.json"))
            _write_table(self.rows, _shard_file(self.plan.out, k, ".parquet"))
            self.rows, self.skipped, self.atlas, self.sweep = [], [], self._atlas_type(), self._sweep_type()
            self.written += 1

    def close(self) -> None:
        self.bar.close()

    def result(self) -> StudyResult:
        """The run's files joined and summarised, or (``stop_after``, shards still missing) only what it ran."""
        plan = self.plan
        if plan.stop_after is not None and len(plan.done) + self.written < plan.shard_count:
            return StudyResult(plan.out, len(plan.items), 0, 0, self.written, {})
        models, card = plan.model_set.models, plan.model_set.weights.card
        # a card's model is the operator's own: no publisher's figure applies to it, whatever its id
        published = {
            model_id: None if card is not None else published_accuracy(model.weights_info.entry)
            for model_id, model in models.items()
        }
        count, written, lineup = plan.shard_count, self.written, plan.model_set.lineup
        done = finish(
            plan.out, plan.options, count, items=len(plan.items), shards_run=written, published=published, lineup=lineup
        )
        done.notes[:0] = [plan.batch_note] if plan.batch_note else []
        return done


def run_study(
    data: str,
    out: Path,
    *,
    models: Sequence[str],
    weights: str | None = None,
    method: str = "gradcam",
    stage: int = 4,
    view: str = "crop",
    limit: int | None = None,
    per_class: int | None = None,
    sweep: bool = False,
    batch_size: int | None = None,
    device: str | None = None,
    progress: bool = True,
    weights_dir: Path | None = None,
    shard_size: int = SHARD_SIZE,
    workers: int = 0,
    stop_after: int | None = None,
) -> StudyResult:
    """Run (or continue) a study of ``data`` ("shapes", an ImageFolder or a flat ImageNet val folder) into ``out``.

    Every check a user can fail happens before the first image. ``workers`` DataLoader processes decode and
    prepare pictures while the models run (0: in this process). ``sweep``: also the gates-off sweep of SE and CBAM
    (``measure.sweep_pass``). ``stop_after`` shards (tests: an interruption)
    returns early without the final files. ``shard_size`` is recorded: a study continues only with its own.
    """
    import torch

    from cbam_viz.study import measure

    plan = open_study(
        data, out, models=models, weights=weights, method=method, stage=stage, view=view, limit=limit,
        per_class=per_class, sweep=sweep, batch_size=batch_size, device=device, weights_dir=weights_dir,
        shard_size=shard_size, workers=workers, stop_after=stop_after,
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(
        measure.Preparing(plan.items, plan.preprocesses, plan.options.view),
        batch_sampler=[indices for _, indices in plan.batches],
        collate_fn=list,
        num_workers=workers,
    )
    writer = ShardWriter(plan, progress)
    options = plan.options
    try:
        with torch.inference_mode(False):
            for (k, indices), batch in zip(plan.batches, loader, strict=True):
                results = measure.measure_batch(
                    batch,
                    plan.model_set.models,
                    method=options.method,
                    stage=options.stage,
                    categories=plan.categories,
                    sweep=options.sweep,
                )
                writer.add(k, indices, results)
    finally:
        writer.close()
    return writer.result()


def published_accuracy(entry: str | None) -> dict[str, Any] | None:
    """The ImageNet-1k val top-1/top-5 its publisher reports for a registry entry, as fractions (None: unknown)."""
    from cbam_viz.weights.registry import ENTRIES

    known = ENTRIES.get(entry or "")
    if known is None or "imagenet_top1" not in known.metrics:
        return None
    top5 = known.metrics.get("imagenet_top5")
    return {
        "top1": known.metrics["imagenet_top1"] / 100,
        "top5": None if top5 is None else top5 / 100,
        "entry": known.name,
        "eval_transform": f"resize {known.preprocess.resize}, centre crop {known.preprocess.crop}, "
        f"{known.preprocess.interpolation}",
    }


def finish(
    out: Path,
    options: StudyOptions,
    shard_count: int,
    *,
    items: int,
    shards_run: int,
    published: dict[str, dict[str, Any] | None] | None = None,
    lineup: Lineup | None = None,
) -> StudyResult:
    """Join the shards into ``images.parquet``, ``skipped.csv``, ``atlas.npz`` and ``summary.json``, and draw the
    figures. ``lineup`` (``vocab.Lineup``) gives each model's family and title (None: the models are architectures)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from cbam_viz.study import figures, measures
    from cbam_viz.study.measure import SWEEP_HOW
    from cbam_viz.study.summary import Atlas, GateSweep, summarise

    parts = [pq.read_table(_shard_file(out, k, ".parquet"), schema=schema()) for k in range(shard_count)]
    table = pa.concat_tables(parts)
    skipped = [row for k in range(shard_count) for row in _read_skipped(_shard_file(out, k, ".skipped.csv"))]
    atlas = Atlas()
    for k in range(shard_count):
        atlas.merge(Atlas.load(_shard_file(out, k, ".atlas.npz")))
    swept = None
    if options.sweep:
        sweep = GateSweep()
        for k in range(shard_count):
            sweep.merge(GateSweep.load(_shard_file(out, k, ".sweep.json")))
        swept = sweep.summary(SWEEP_HOW)
    header = {"study": options.to_json(), "eval_transform": _transform_words(options)}
    summary = summarise(
        table, list(options.models), skipped=len(skipped), atlas=atlas, header=header, sweep=swept, lineup=lineup
    )
    for arch, numbers in (published or {}).items():
        summary["models"][arch]["published"] = numbers
    box_iou = np.full(table.num_rows, np.nan)
    archs = np.asarray(table.column("arch").to_numpy(zero_copy_only=False))
    for arch, model in summary["models"].items():
        best = model["maxboxacc_v2"]["best_threshold"].get("50")
        if best is not None:
            at = pc.list_element(table.column("box_ious"), int(np.argmin(np.abs(measures.THRESHOLDS - best))))
            values = pc.fill_null(pc.cast(at, pa.float64()), float("nan")).to_numpy()
            box_iou = np.where(archs == arch, values, box_iou)
    table = table.append_column("box_iou", pa.array(box_iou, type=pa.float64(), from_pandas=True))
    _write_atomically(out / "images.parquet", lambda partial: pq.write_table(table, partial))
    _write_skipped(skipped, out / "skipped.csv")
    means = atlas.class_means()
    _write_atomically(out / "atlas.npz", lambda partial: _save_npz(partial, means))
    text = json.dumps(summary, indent=2, allow_nan=False) + "\n"
    _write_atomically(out / "summary.json", lambda partial: partial.write_text(text))
    names = dict(zip(table.column("label").to_pylist(), table.column("label_name").to_pylist(), strict=True))
    drawn = figures.draw(summary, means, lambda label: str(names.get(label, label)))
    notes = figures.write(out, drawn)
    return StudyResult(out, items, summary["count"], len(skipped), shards_run, summary, notes)


def _save_npz(path: Path, arrays: dict[str, Any]) -> None:
    import numpy as np

    with path.open("wb") as handle:
        np.savez_compressed(handle, **arrays)


def _transform_words(options: StudyOptions) -> str:
    if options.view == "crop":
        return "the weights' own evaluation transform: shorter side resized, then the centre crop (imaging.plan_view)"
    return "the whole picture, shorter side at the weights' input size (imaging.plan_view 'whole')"

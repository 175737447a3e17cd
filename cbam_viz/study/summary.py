"""A study's aggregates: ``summary.json`` from the per-image table, and the attention atlas from running sums.

``summarise(table, ...)`` reads only scalar columns of ``images.parquet`` (and the IoU curves for MaxBoxAccV2).
Keys a script can rely on (values are fractions in [0, 1]; every ``ci`` is a 95 % percentile-bootstrap interval over
images, ``[low, high]``):

* ``count``: images measured (``skipped``: images listed in ``skipped.csv``);
* ``models.<id>`` per model, keyed by its id (the architecture for the paper's models, the card's id for a model
  card's): ``.family`` (its architecture) and ``.title`` (its name for people; summaries written before model cards have
  neither, and readers take the key as the architecture), ``.top1``, ``.top5``, ``.target_prob``, and over the images
  with a box or mask (``localised``) ``.pointing``, ``.pointing_15px``, ``.energy`` (each ``{value, ci, n}``),
  ``.area_share`` (what a map blind to the object would get as energy), ``.maxboxacc_v2`` (``value``, ``ci``, ``by_iou``
  {30, 50, 70}, ``best_threshold``), and for the CBAM family ``.spatial.<stage>`` (the stage's last block: ``energy``,
  ``pointing``); ``.published``: the publisher's ImageNet top-1/top-5 of these weights and its eval transform (null for
  the demo set, a file or a model card's model: nothing published applies to them);
* ``comparisons.<idA>|<idB>`` for every pair, the model with more attention first (``cbam_resnet50|resnet50``; of two
  models of one family, the later one): ``.top1``, ``.pointing``, ``.pointing_15px``, ``.energy`` each with
  ``difference`` (A minus B, over the images both have), ``ci`` (paired bootstrap), and for hit/miss columns ``p_value``
  (McNemar), ``test``, ``first_only`` (A hits, B misses) and ``second_only``; ``.disagreements``: the images where the
  two differ most;
* ``per_class.<class name>.<id>``: ``n``, ``top1``, ``pointing``, ``energy`` (plain means);
* ``atlas.<id>.<block>``: ``class_specificity`` (the between-class share of the variance of the block's channel
  excitations over images, eta squared: 0 = the same excitation for every class, 1 = fully set by the class),
  ``chance`` (what eta squared gives a class-blind block with this many classes and images), ``mean`` (mean
  excitation over channels and images), ``classes`` and ``images``. ``atlas.npz`` holds the per-class mean
  excitation of every block (``<id>/<block>``: classes x channels; ``<id>/<block>/classes``: their indices;
  ``<id>/<block>/images``: how many images each class had);
* with ``--sweep``, ``models.<id>.sweep`` for the SE and CBAM families (running sums, no interval): ``images``, ``how``
  (``one``), ``base`` (``top1``, ``mean_probability``: the gates as they are) and ``<stage>.<gate>`` (``channel``, and
  ``spatial`` for CBAM) with ``spec``, ``top1``, ``mean_probability``, ``top1_change`` and ``probability_change``
  (against ``base``) when that stage's gates of that kind are set to ``one``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from cbam_viz.analysis.options import Intervention
from cbam_viz.study import measures, stats
from cbam_viz.vocab import ARCH_TITLES, STAGES, Lineup, attention_rank, has_spatial_attention, recorded_lineup

MAXBOX_RESAMPLES = 500  # MaxBoxAccV2 is re-evaluated per resample over the whole IoU matrix: fewer draws
DISAGREEMENTS = 12


class Atlas:
    """Running sums of channel excitations per model, block and class: never per-image tensors."""

    def __init__(self) -> None:
        # model -> block -> class -> [images, (C,) sum]; model -> block -> (C,) sum of squares over all images
        self.sums: dict[str, dict[str, dict[int, list]]] = {}
        self.squares: dict[str, dict[str, np.ndarray]] = {}

    def add(self, arch: str, label: int, channel: dict[str, np.ndarray]) -> None:
        for block, vector in channel.items():
            self._add(arch, block, label, 1, np.asarray(vector, dtype=np.float64), None)

    def _add(self, arch: str, block: str, label: int, count: int, total: np.ndarray, squares: np.ndarray | None):
        entry = self.sums.setdefault(arch, {}).setdefault(block, {}).setdefault(label, [0, 0.0])
        entry[0] += count
        entry[1] = entry[1] + total
        by_block = self.squares.setdefault(arch, {})
        by_block[block] = by_block.get(block, 0.0) + (total * total if squares is None else squares)

    def merge(self, other: Atlas) -> None:
        for arch, blocks in other.sums.items():
            for block, per_class in blocks.items():
                for position, (label, (count, total)) in enumerate(sorted(per_class.items())):
                    squares = other.squares[arch][block] if position == 0 else np.zeros_like(total)
                    self._add(arch, block, label, count, total, squares)

    def save(self, path: Path) -> None:
        """One npz of these sums (only the classes seen), written atomically."""
        arrays: dict[str, np.ndarray] = {}
        for arch, blocks in self.sums.items():
            for block, per_class in blocks.items():
                labels = sorted(per_class)
                arrays[f"{arch}|{block}|labels"] = np.array(labels, dtype=np.int64)
                arrays[f"{arch}|{block}|counts"] = np.array([per_class[k][0] for k in labels], dtype=np.int64)
                arrays[f"{arch}|{block}|sums"] = np.stack([per_class[k][1] for k in labels])
                arrays[f"{arch}|{block}|squares"] = self.squares[arch][block]
        partial = path.with_name(path.name + ".tmp")
        with partial.open("wb") as handle:
            np.savez(handle, **arrays)
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> Atlas:
        atlas = cls()
        with np.load(path) as data:
            for key in data.files:
                arch, block, kind = key.split("|")
                if kind != "labels":
                    continue
                counts, sums = data[f"{arch}|{block}|counts"], data[f"{arch}|{block}|sums"]
                atlas.sums.setdefault(arch, {})[block] = {
                    int(label): [int(count), total] for label, count, total in zip(data[key], counts, sums, strict=True)
                }
                atlas.squares.setdefault(arch, {})[block] = data[f"{arch}|{block}|squares"]
        return atlas

    def _stacked(self, arch: str, block: str) -> tuple[list[int], np.ndarray, np.ndarray]:
        per_class = self.sums[arch][block]
        labels = sorted(per_class)
        counts = np.array([per_class[k][0] for k in labels], dtype=np.float64)
        return labels, counts, np.stack([np.asarray(per_class[k][1], dtype=np.float64) for k in labels])

    def class_means(self) -> dict[str, np.ndarray]:
        """``"<arch>/<block>"`` -> (classes seen, C) mean excitation per class; ``"<arch>/<block>/classes"`` (their
        indices) and ``"<arch>/<block>/images"`` (their images)."""
        means: dict[str, np.ndarray] = {}
        for arch, blocks in self.sums.items():
            for block in blocks:
                labels, counts, sums = self._stacked(arch, block)
                means[f"{arch}/{block}/classes"] = np.array(labels, dtype=np.int64)
                means[f"{arch}/{block}/images"] = counts.astype(np.int64)
                means[f"{arch}/{block}"] = (sums / counts[:, None]).astype(np.float32)
        return means

    def summary(self) -> dict[str, dict[str, dict[str, float | int | None]]]:
        """Per model and block: class specificity (eta squared), its chance level, mean excitation, classes seen.

        Eta squared is biased upwards with few images per class: with k classes and n images, a block whose
        excitations ignore the class still scores about (k - 1) / (n - 1) (``chance``)."""
        result: dict[str, dict[str, dict[str, float | int | None]]] = {}
        for arch, blocks in self.sums.items():
            result[arch] = {}
            for block in sorted(blocks, key=_block_order):
                labels, counts, sums = self._stacked(arch, block)
                total = counts.sum()
                grand = sums.sum(axis=0) / total
                between = float((counts[:, None] * (sums / counts[:, None] - grand) ** 2).sum())
                spread = float((self.squares[arch][block] - total * grand * grand).sum())
                result[arch][block] = {
                    "class_specificity": between / spread if spread > 1e-12 else None,
                    "chance": (len(labels) - 1) / (total - 1) if total > 1 else None,
                    "mean": float(grand.mean()),
                    "classes": len(labels),
                    "images": int(total),
                }
        return result


class GateSweep:
    """Running sums of the gates-off sweep per model: images, top-1 hits and true-class probabilities, for the gates
    as they are (``base``) and for each swept spec. Sums, so shards join by adding them, in shard order."""

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, list[float]]] = {}  # model -> "base" | spec -> [images, hits, probabilities]

    def add(self, arch: str, base: tuple[bool, float], swept: dict[str, tuple[bool, float]]) -> None:
        for key, (hit, probability) in {"base": base, **swept}.items():
            entry = self.sums.setdefault(arch, {}).setdefault(key, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += float(hit)
            entry[2] += float(probability)

    def merge(self, other: GateSweep) -> None:
        for arch, specs in other.sums.items():
            for key, (count, hits, probabilities) in specs.items():
                entry = self.sums.setdefault(arch, {}).setdefault(key, [0, 0.0, 0.0])
                entry[0] += count
                entry[1] += hits
                entry[2] += probabilities

    def save(self, path: Path) -> None:
        """One small JSON of these sums, written atomically (floats as Python writes them: read back exactly)."""
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(self.sums))
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> GateSweep:
        sweep = cls()
        sweep.sums = {
            str(arch): {str(key): [int(v[0]), float(v[1]), float(v[2])] for key, v in specs.items()}
            for arch, specs in json.loads(path.read_text()).items()
        }
        return sweep

    def summary(self, how: str) -> dict[str, dict[str, Any]]:
        """Per model: images, the base and, per stage and gate kind, the swept top-1 and mean probability."""
        result: dict[str, dict[str, Any]] = {}
        for arch, specs in self.sums.items():
            count, hits, probabilities = specs["base"]
            base = {"top1": hits / count, "mean_probability": probabilities / count}
            model: dict[str, Any] = {"images": int(count), "how": how, "base": base}
            for spec, (n, swept_hits, swept_probabilities) in specs.items():
                if spec == "base":
                    continue
                intervention = Intervention.parse(spec)
                top1, probability = swept_hits / n, swept_probabilities / n
                model.setdefault(intervention.where.removeprefix("layer"), {})[intervention.gate] = {
                    "spec": spec,
                    "top1": top1,
                    "mean_probability": probability,
                    "top1_change": top1 - base["top1"],
                    "probability_change": probability - base["mean_probability"],
                }
            result[arch] = model
        return result


def _block_order(block: str) -> tuple[int, int]:
    stage, index = block.removeprefix("layer").split(".")
    return int(stage), int(index)


# -------------------------------------------------------------------------------------------------- the table


def _column(table: Any, name: str) -> np.ndarray:
    """A column as float64, null as NaN (booleans as 0/1)."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pc.fill_null(pc.cast(table.column(name), pa.float64()), float("nan"))
    return np.asarray(values.to_numpy(), dtype=np.float64)


def _per_model(table: Any, archs: Sequence[str]) -> dict[str, Any]:
    import pyarrow.compute as pc

    return {arch: table.filter(pc.equal(table.column("arch"), arch)) for arch in archs}


def _max_box(curves: np.ndarray) -> dict[str, Any]:
    """MaxBoxAccV2 and its bootstrap interval (resampling images, re-choosing the best thresholds each time)."""
    result = measures.max_box_accuracy(curves)
    if result["value"] is None:
        return {**result, "ci": [None, None]}
    n = curves.shape[0]
    hits = np.concatenate([(curves >= delta - 1e-9) for delta in measures.IOU_DELTAS], axis=1).astype(np.float64)
    rng = np.random.default_rng(stats.SEED)
    values = []
    for start in range(0, MAXBOX_RESAMPLES, 100):
        draws = rng.integers(0, n, size=(min(100, MAXBOX_RESAMPLES - start), n))
        weights = np.stack([np.bincount(row, minlength=n) for row in draws]).astype(np.float64)
        accuracy = (weights @ hits / n).reshape(len(draws), len(measures.IOU_DELTAS), -1)
        values.append(accuracy.max(axis=2).mean(axis=1))
    tail = (1 - stats.CONFIDENCE) / 2 * 100
    low, high = np.percentile(np.concatenate(values), [tail, 100 - tail])
    return {**result, "ci": [float(low), float(high)]}


def _curves(table: Any) -> np.ndarray:
    import pyarrow.compute as pc

    curves = table.column("box_ious")
    present = curves.filter(pc.is_valid(curves)).combine_chunks()
    return np.asarray(present.flatten().to_numpy(), dtype=np.float32).reshape(-1, len(measures.THRESHOLDS))


def model_summary(table: Any, family: str, title: str | None = None) -> dict[str, Any]:
    """One model's block of ``summary.json`` from its rows; ``family`` is its architecture."""
    localised = ~np.isnan(_column(table, "energy"))
    result: dict[str, Any] = {
        "family": family,
        "title": title or ARCH_TITLES.get(family, family),
        "images": table.num_rows,
        "localised": int(localised.sum()),
        **{key: stats.bootstrap_mean(_column(table, column)) for key, column in _MEANS.items()},
        "area_share": _mean(_column(table, "area_share")),
        "maxboxacc_v2": _max_box(_curves(table)),
    }
    if has_spatial_attention(family):
        result["spatial"] = {
            str(stage): {
                "energy": stats.bootstrap_mean(_column(table, f"spatial_energy_{stage}")),
                "pointing": stats.bootstrap_mean(_column(table, f"spatial_pointing_{stage}")),
            }
            for stage in STAGES
        }
    return result


_MEANS = {
    "top1": "top1_correct",
    "top5": "top5_correct",
    "target_prob": "target_prob",
    "pointing": "pointing",
    "pointing_15px": "pointing_15px",
    "energy": "energy",
}
_COMPARED = ("top1", "pointing", "pointing_15px", "energy")


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def comparison_pairs(lineup: Lineup) -> list[tuple[str, str]]:
    """Every pair of the study's models, in its order, the one with more attention first (of two models of one
    family, the later one): for the paper's three, SE and CBAM against the baseline, then CBAM against SE."""
    ranks = {spec.id: attention_rank(spec.family) for spec in lineup.models}
    return [
        (second, first) if ranks[second] >= ranks[first] else (first, second)
        for first, second in combinations(lineup.ids, 2)
    ]


def compare(first: Any, second: Any, first_arch: str, second_arch: str) -> dict[str, Any]:
    """Paired differences of two models' rows (the same images in the same order)."""
    ids = first.column("image_id").to_pylist()
    if ids != second.column("image_id").to_pylist():
        raise ValueError("the two models' rows are not the same images in the same order")
    result: dict[str, Any] = {
        key: stats.paired_difference(_column(first, _MEANS[key]), _column(second, _MEANS[key])) for key in _COMPARED
    }
    hit_a, hit_b = _column(first, "pointing"), _column(second, "pointing")
    energy_a, energy_b = _column(first, "energy"), _column(second, "energy")
    prob_a, prob_b = _column(first, "target_prob"), _column(second, "target_prob")
    gap = np.where(np.isnan(energy_a - energy_b), 0.0, np.abs(energy_a - energy_b))
    key = (np.nan_to_num(hit_a != hit_b).astype(float) + gap) + np.abs(prob_a - prob_b) * 1e-3
    order = np.argsort(-key, kind="stable")[:DISAGREEMENTS]
    names = first.column("label_name").to_pylist()
    result["disagreements"] = [
        {
            "image_id": ids[i],
            "label_name": names[i],
            first_arch: _numbers(hit_a[i], energy_a[i], prob_a[i]),
            second_arch: _numbers(hit_b[i], energy_b[i], prob_b[i]),
        }
        for i in order
        if key[i] > 0
    ]
    return result


def _numbers(hit: float, energy: float, prob: float) -> dict[str, Any]:
    return {
        "pointing": None if np.isnan(hit) else bool(hit),
        "energy": None if np.isnan(energy) else float(energy),
        "target_prob": float(prob),
    }


def per_class(tables: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per class name and model: images, top-1, pointing and energy (plain means, no interval)."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for arch, table in tables.items():
        names = np.array(table.column("label_name").to_pylist(), dtype=object)
        columns = {key: _column(table, _MEANS[key]) for key in ("top1", "pointing", "energy")}
        for name in sorted(set(names)):
            chosen = names == name
            row = {"n": int(chosen.sum())}
            row.update({key: _mean(values[chosen]) for key, values in columns.items()})
            result.setdefault(str(name), {})[arch] = row
    return result


def summarise(
    table: Any,
    archs: Sequence[str],
    *,
    skipped: int,
    atlas: Atlas | None,
    header: dict,
    sweep: dict[str, dict[str, Any]] | None = None,
    lineup: Lineup | None = None,
) -> dict:
    """The whole ``summary.json`` (see the module docstring) from the study's table (and the sweep's summary);
    ``lineup`` gives each model's family and title (None: ``archs`` are architectures)."""
    tables = _per_model(table, archs)
    count = tables[archs[0]].num_rows if archs else 0
    known = recorded_lineup({arch: {} for arch in archs}) if lineup is None else lineup
    specs = [known.spec(arch) for arch in archs]
    studied = Lineup(tuple(specs))
    summary: dict[str, Any] = {
        **header,
        "count": count,
        "skipped": skipped,
        "confidence": stats.CONFIDENCE,
        "bootstrap_resamples": stats.RESAMPLES,
        "models": {spec.id: model_summary(tables[spec.id], spec.family, spec.title) for spec in specs},
        "comparisons": {f"{a}|{b}": compare(tables[a], tables[b], a, b) for a, b in comparison_pairs(studied)},
        "per_class": per_class(tables),
    }
    for arch, swept in (sweep or {}).items():
        summary["models"][arch]["sweep"] = swept
    if atlas is not None:
        summary["atlas"] = atlas.summary()
    return summary

"""``--engine ray``: on a local Ray instance, the same table, skipped list, atlas and summary as the local engine."""

from __future__ import annotations

from pathlib import Path

import _models
import numpy as np
import pyarrow.parquet as pq
import pytest

from cbam_viz.model.resnet import ARCHS
from cbam_viz.study.engine import run_study

ray = pytest.importorskip("ray", reason="requirements-test.txt installs Ray (requirements-ray.txt)")


def _files(out: Path) -> tuple[list[dict], str, str, dict[str, np.ndarray]]:
    with np.load(out / "atlas.npz") as atlas:
        arrays = {key: atlas[key] for key in atlas.files}
    summary = (out / "summary.json").read_text()
    return pq.read_table(out / "images.parquet").to_pylist(), (out / "skipped.csv").read_text(), summary, arrays


@pytest.mark.slow
def test_ray_and_local_give_identical_tables(tmp_path: Path) -> None:
    from cbam_viz.study.ray_engine import run_study_ray

    weights_dir = _models.tiny_demo_set(tmp_path / "weights")
    options = dict(models=tuple(ARCHS), weights="demo", limit=12, batch_size=2, shard_size=4, progress=False)
    local = run_study("shapes", tmp_path / "local", weights_dir=weights_dir, device="cpu", **options)
    assert not ray.is_initialized()
    remote = run_study_ray("shapes", tmp_path / "ray", weights_dir=weights_dir, device="cpu", **options)
    assert not ray.is_initialized()  # the local instance it started is shut down
    assert remote.measured == local.measured == 12 and remote.shards_run == 3
    rows, skipped, summary, atlas = _files(tmp_path / "local")
    ray_rows, ray_skipped, ray_summary, ray_atlas = _files(tmp_path / "ray")
    assert len(rows) == 36 and rows[0]["pointing"] is not None
    assert ray_rows == rows
    assert ray_skipped == skipped and ray_summary == summary
    assert ray_atlas.keys() == atlas.keys() and all(np.array_equal(ray_atlas[k], atlas[k]) for k in atlas)
    for k in range(3):  # the same shards: a Ray run continues a local one and the other way round
        name = f"part-{k:05d}.parquet"
        assert pq.read_table(tmp_path / "ray" / "shards" / name) == pq.read_table(tmp_path / "local" / "shards" / name)

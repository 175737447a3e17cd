"""``--engine ray``: on a local Ray instance, the same table, skipped list, atlas and summary as the local engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from cbam_viz.study.engine import run_study
from tests.helpers import models as _models

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
    # the plain and the CBAM model (rows, comparisons, the atlas, the gates-off sweep), 8 shapes in 2 shards: well
    # under a minute
    models = ("resnet50", "cbam_resnet50")
    options = dict(models=models, weights="demo", limit=8, batch_size=2, shard_size=4, sweep=True, progress=False)
    local = run_study("shapes", tmp_path / "local", weights_dir=weights_dir, device="cpu", **options)
    assert not ray.is_initialized()
    remote = run_study_ray("shapes", tmp_path / "ray", weights_dir=weights_dir, device="cpu", **options)
    assert not ray.is_initialized()  # the local instance it started is shut down
    assert remote.measured == local.measured == 8 and remote.shards_run == 2
    rows, skipped, summary, atlas = _files(tmp_path / "local")
    ray_rows, ray_skipped, ray_summary, ray_atlas = _files(tmp_path / "ray")
    assert len(rows) == 16 and rows[0]["pointing"] is not None
    assert ray_rows == rows
    assert ray_skipped == skipped and ray_summary == summary
    assert remote.summary["models"]["cbam_resnet50"]["sweep"]["images"] == 8  # the sweep came back from the actors too
    assert ray_atlas.keys() == atlas.keys() and all(np.array_equal(ray_atlas[k], atlas[k]) for k in atlas)
    for k in range(2):  # the same shards: a Ray run continues a local one and the other way round
        name = f"part-{k:05d}.parquet"
        assert pq.read_table(tmp_path / "ray" / "shards" / name) == pq.read_table(tmp_path / "local" / "shards" / name)


def test_per_model_results_join_into_the_rows_of_one_pass() -> None:
    """What the Ray driver does with each batch's per-model parts: one image's rows in model order, the skipped
    items where they were (a skipped picture is skipped by every model)."""
    from cbam_viz.study.measure import Measured, Skipped, measure_batch, merge

    gate = {"layer1.0": np.ones(4)}
    bad = Skipped("bad.gif", "not a picture")
    plain = [bad, Measured(3, {"resnet50": {"arch": "resnet50"}}, {})]
    cbam = [bad, Measured(3, {"cbam_resnet50": {"arch": "cbam_resnet50"}}, {"cbam_resnet50": gate})]
    joined = merge([plain, cbam])
    assert joined[0] is bad and isinstance(joined[1], Measured)
    assert list(joined[1].rows) == ["resnet50", "cbam_resnet50"] and joined[1].channel == {"cbam_resnet50": gate}
    assert measure_batch([bad], {}, method="gradcam", stage=4, categories=[]) == [bad]

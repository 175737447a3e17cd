"""``python -m cbam_viz study``: runs on the bundled demo set, refuses in one line, and --help stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_help_imports_no_torch() -> None:
    shown = _python("-m", "cbam_viz", "study", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--per-class" in shown.stdout and "--engine" in shown.stdout and "``" not in shown.stdout
    probe = (
        "import sys; from cbam_viz.cli import main\n"
        "try:\n    main.main(['study', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('imported:', sorted(m for m in ('torch', 'numpy', 'PIL', 'pyarrow') if m in sys.modules))"
    )
    checked = _python("-c", probe)
    assert checked.stdout.strip().splitlines()[-1] == "imported: []", checked.stderr


def test_ray_is_refused_in_one_line(tmp_path: Path) -> None:
    refused = _python("-m", "cbam_viz", "study", "shapes", "--out", str(tmp_path / "s"), "--engine", "ray")
    assert refused.returncode == 2
    assert refused.stderr.strip() == "error: --engine ray is not available yet: use --engine local (the default)"
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_shapes_study_with_the_bundled_demo_set(tmp_path: Path) -> None:
    out = tmp_path / "study"
    done = _python("-m", "cbam_viz", "study", "shapes", "--out", str(out), "--limit", "4", "--batch-size", "4")
    assert done.returncode == 0, done.stderr
    assert "studied 4 of 4 image(s)" in done.stdout and "CBAM-ResNet-50" in done.stdout
    assert "img/s" in done.stderr or "s/img" in done.stderr  # the progress bar's rate
    summary = json.loads((out / "summary.json").read_text())
    assert summary["count"] == 4 and summary["study"]["weights"] == "demo"
    for arch in ("resnet50", "se_resnet50", "cbam_resnet50"):
        for key in ("top1", "top5", "pointing", "energy"):
            block = summary["models"][arch][key]
            assert 0 <= block["value"] <= 1 and len(block["ci"]) == 2
    pointing = summary["comparisons"]["cbam_resnet50|resnet50"]["pointing"]
    assert {"difference", "ci", "p_value"} <= set(pointing)
    assert pq.read_table(out / "images.parquet").num_rows == 12
    again = _python("-m", "cbam_viz", "study", "shapes", "--out", str(out), "--limit", "5", "--quiet")
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "holds a different study" in again.stderr

"""``python -m cbam_viz study``: runs on the bundled demo set, refuses in one line, and --help stays light."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.helpers.processes import as_at_a_terminal

ROOT = Path(__file__).resolve().parent.parent


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_help_imports_no_torch() -> None:
    shown = _python("-m", "cbam_viz", "study", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "--per-class" in shown.stdout and "--engine" in shown.stdout and "``" not in shown.stdout
    assert "--sweep" in shown.stdout and "ILSVRC2012_devkit_t12" in shown.stdout
    probe = (
        "import sys; from cbam_viz.cli import main\n"
        "try:\n    main.main(['study', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('imported:', sorted(m for m in ('torch', 'numpy', 'PIL', 'pyarrow') if m in sys.modules))"
    )
    checked = _python("-c", probe)
    assert checked.stdout.strip().splitlines()[-1] == "imported: []", checked.stderr


def test_ray_without_ray_installed_says_how_to_install_it(tmp_path: Path) -> None:
    out = tmp_path / "s"
    probe = (
        "import sys; sys.modules['ray'] = None  # as if Ray were not installed\n"
        "from cbam_viz.cli import main\n"
        f"sys.exit(main.main(['study', 'shapes', '--out', {str(out)!r}, '--engine', 'ray']))"
    )
    refused = _python("-c", probe)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error: --engine ray needs Ray: pip install 'cbam_viz[ray]' (or pip install -r requirements-ray.txt)"
    )
    assert not out.exists()


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


def test_the_default_shard_size_is_the_engine_s() -> None:
    from cbam_viz.cli import study as study_cli
    from cbam_viz.study import engine

    assert study_cli.SHARD_SIZE == engine.SHARD_SIZE


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_shards_and_the_same_command_continues(tmp_path: Path) -> None:
    out = tmp_path / "study"
    command = [sys.executable, "-m", "cbam_viz", "study", "shapes", "--out", str(out), "--limit", "60"]
    command += ["--shard-size", "2", "--batch-size", "2", "--models", "resnet50", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    running = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=as_at_a_terminal,
    )
    first = out / "shards" / "part-00000.parquet"
    deadline = time.monotonic() + 300
    while not first.exists() and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    running.send_signal(signal.SIGINT)
    _, stderr = running.communicate(timeout=120)
    assert running.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].endswith("run the same command to continue")
    kept = sorted((out / "shards").glob("*.parquet"))
    assert 1 <= len(kept) < 30 and not (out / "summary.json").exists()
    continued = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert continued.returncode == 0, continued.stderr
    assert "studied 60 of 60 image(s)" in continued.stdout
    table = pq.read_table(out / "images.parquet")
    assert table.num_rows == 60 and len(set(table.column("image_id").to_pylist())) == 60

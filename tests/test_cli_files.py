"""The command line never destroys a user's file: interrupted work leaves the shipped files as they were, and
``analyze`` writes only files of its own."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRESS = re.compile(r"evaluate:\s*\d+%.*?\|\s*([1-9]\d*)/\d+")


def _wait_for_progress(log: Path, process: subprocess.Popen, timeout: float = 240.0) -> None:
    """Until the evaluation's progress bar shows at least one finished image."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the run ended before it was interrupted: {log.read_text()[-2000:]}")
        if PROGRESS.search(log.read_text(errors="replace")):
            return
        time.sleep(0.2)
    raise AssertionError(f"no progress within {timeout} s: {log.read_text()[-2000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_evaluation_leaves_the_demo_metadata_as_it_was(tmp_path: Path, signum: int) -> None:
    demo = tmp_path / "weights" / "demo"
    shutil.copytree(ROOT / "weights" / "demo", demo, ignore=shutil.ignore_patterns(".train"))
    before = {path.name: path.read_bytes() for path in demo.iterdir()}
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cbam_viz", "train-demo", "--eval-only", "--out", str(demo), "--heldout", "400"]
    with log.open("w") as stderr:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            _wait_for_progress(log, process)
            process.send_signal(signum)
            stdout, _ = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    errors = log.read_text()
    assert process.returncode == 130, errors[-2000:]
    assert errors.rstrip().endswith("interrupted") and "Traceback" not in errors
    assert "wrote" not in stdout
    assert {path.name: path.read_bytes() for path in demo.iterdir()} == before  # byte for byte, nothing left over


@pytest.mark.slow
def test_a_completed_evaluation_rewrites_the_metadata_of_the_weights_in_out(tmp_path: Path) -> None:
    """--out names the demo folder that is evaluated (not the repository's) and its recipe is kept."""
    import json

    demo = tmp_path / "weights" / "demo"
    shutil.copytree(ROOT / "weights" / "demo", demo, ignore=shutil.ignore_patterns(".train"))
    recorded = json.loads((demo / "metadata.json").read_text())
    recorded["recipe"]["train_images"] = 1234  # marks this copy's recipe apart from the default one
    (demo / "metadata.json").write_text(json.dumps(recorded, indent=2) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "cbam_viz", "train-demo", "--eval-only", "--out", str(demo), "--heldout", "2"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads((demo / "metadata.json").read_text())
    assert written["heldout"]["heldout_images"] == 2 and written["recipe"]["train_images"] == 1234
    assert set(written["models"]["cbam_resnet50"]["metrics"]) >= {"top1", "pointing_game"}
    assert written["models"] == {
        arch: {**record, "metrics": written["models"][arch]["metrics"]} for arch, record in recorded["models"].items()
    }
    assert sorted(path.name for path in demo.iterdir()) == sorted(
        ["metadata.json", "resnet50.safetensors", "se_resnet50.safetensors", "cbam_resnet50.safetensors"]
    )

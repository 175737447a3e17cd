"""``python app.py`` as a user runs it: the first start looks for the ImageNet weights, and never hangs without them."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.ports import free_port

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "weights" / "demo"


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, list[str], float]:
    """Run app.py until it says where to open it (or exits); -> the process, its output lines, seconds taken."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(REPO / "app.py"), *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip())
        if line.startswith("open http://"):
            break
    return process, lines, time.monotonic() - started


@pytest.fixture
def weights_dir(tmp_path: Path) -> Path:
    shutil.copytree(DEMO, tmp_path / "demo")
    return tmp_path


def test_first_run_without_network_starts_on_the_demo_set_and_says_why(weights_dir: Path) -> None:
    env = {"CBAM_VIZ_WEIGHTS_MIRROR": "http://weights-mirror.invalid/", "CBAM_VIZ_OFFLINE": ""}
    process, lines, seconds = _start(["--weights-dir", str(weights_dir), "--port", str(free_port())], env)
    try:
        output = "\n".join(lines)
        assert any(line.startswith("open http://") for line in lines), output
        first = next(line for line in lines if line.startswith("weights: no network"))
        assert "using the demo set" in first and "weights download paper" in first
        assert "weights: demo (no network" in output  # the reason travels on to the banner
        assert seconds < 60  # the network check itself takes a fraction of a second; the rest is loading models
        assert not (weights_dir / "imagenet").exists() or not any((weights_dir / "imagenet").iterdir())
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_offline_mode_never_looks_for_the_network(weights_dir: Path) -> None:
    process, lines, _ = _start(
        ["--weights-dir", str(weights_dir), "--port", str(free_port()), "--offline"],
        {"CBAM_VIZ_WEIGHTS_MIRROR": "http://weights-mirror.invalid/"},
    )
    try:
        output = "\n".join(lines)
        assert "offline mode" in output and "no network" not in output, output
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_port_in_use_is_one_line_before_any_model_loads(weights_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(REPO / "app.py"), "--weights-dir", str(weights_dir), "--port", str(port), "--offline"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--port" in done.stderr and "Traceback" not in done.stderr
    assert "weights:" not in done.stdout  # refused before loading anything
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_app_owns_its_temp_folder_clears_leftovers_and_removes_it_on_stop(
    weights_dir: Path, tmp_path: Path, stop: signal.Signals
) -> None:
    root = tmp_path / "tmp" / "cbam_viz"
    stale = root / "run-999999" / "gradio" / "abc"
    stale.mkdir(parents=True)
    (stale / "old-upload.png").write_bytes(b"left by a killed run")
    other = root / "run-1"  # a running instance's folder: its lock is held, so it stays
    other.mkdir()
    with open(other / ".lock", "ab") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        port = free_port()
        process, lines, _ = _start(
            ["--weights-dir", str(weights_dir), "--port", str(port), "--offline"],
            {"CBAM_VIZ_TEMP": str(tmp_path / "tmp")},
        )
        try:
            output = "\n".join(lines)
            own = root / f"run-{process.pid}"
            assert f"temporary files: {own} (1 left by earlier runs removed)" in output, output
            assert not (root / "run-999999").exists() and other.exists() and own.is_dir()
            boundary = "cbamviz"
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="mine.png"\r\n'
                    "Content-Type: image/png\r\n\r\n"
                ).encode()
                + b"\x89PNG picture"
                + f"\r\n--{boundary}--\r\n".encode()
            )
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/gradio_api/upload",
                data=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            deadline = time.monotonic() + 120  # "open http://" is printed just before the server listens
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)
            with urllib.request.urlopen(request, timeout=30) as answer:
                shown = json.loads(answer.read())[0]
            assert shown.startswith("@cache/")  # the answer never shows the server's folder
            stored = own / "gradio" / shown.removeprefix("@cache/")
            assert own / "gradio" in stored.parents and stored.exists()  # uploads land in the app's own folder
            process.send_signal(stop)
            assert process.wait(timeout=30) == 128 + stop
            assert not own.exists() and other.exists()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)

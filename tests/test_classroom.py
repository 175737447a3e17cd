"""A classroom's worth of trouble, in small: hostile files through the app and the CLI, a short soak, concurrent
students who must each get their own answer, and a full queue that says "busy" instead of hanging.

The full-size runs are ``benchmarks/load.py`` (40 users x 3 images) and ``benchmarks/soak.py`` (1000 analyses).
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from benchmarks import load, soak
from cbam_viz.cli import main as cli
from cbam_viz.demo import shapes
from cbam_viz.imaging.limits import MAX_FILE_BYTES
from cbam_viz.ui.sections import results as results_section
from cbam_viz.ui.server.engine import ServeSettings
from cbam_viz.weights import files as weights
from tests.helpers.app import launched_app, shape_file
from tests.helpers.hostile import EXPECTED

CLI_DECODABLE = ("exif_rotate_6_jpeg", "cmyk_jpeg")  # the CLI also writes a figure per image: two are enough here


def test_hostile_files_through_the_app(app_url: str, hostile_files: dict[str, Path], tmp_path: Path) -> None:
    client = Client(app_url, verbose=False, download_files=str(tmp_path))
    try:
        for key, path in hostile_files.items():
            expected = EXPECTED[key]
            if expected.decodes:
                document, _ = client.predict(handle_file(path), models=["cbam_resnet50"], api_name="/analyze")
                width, height = expected.size
                assert (document["image"]["width"], document["image"]["height"]) == (width, height), key
            else:
                with pytest.raises(AppError) as caught:
                    client.predict(handle_file(path), models=["cbam_resnet50"], api_name="/analyze")
                message = str(caught.value)
                assert expected.error.lower() in message.lower(), (key, message)
                assert "\n" not in message and "Traceback" not in message and str(path.parent) not in message, key
        document, _ = client.predict(handle_file(shape_file(tmp_path, 0)), api_name="/analyze")  # still serving
        assert len(document["models"]) == 3
    finally:
        client.close()


def test_a_file_over_the_size_limit_is_refused(app_url: str, tmp_path: Path) -> None:
    big = tmp_path / "poster.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(MAX_FILE_BYTES))
    client = Client(app_url, verbose=False, download_files=str(tmp_path))
    try:
        with pytest.raises(ValueError, match="exceeds the maximum file size of 25000000 bytes"):
            client.predict(handle_file(big), api_name="/analyze")  # the client reads the limit from the server
        with big.open("rb") as handle:  # a client that ignores it is refused by the server, before any decoding
            answer = httpx.post(f"{app_url.rstrip('/')}/gradio_api/upload", files={"files": handle}, timeout=60)
        assert answer.status_code == 413
        document, _ = client.predict(handle_file(shape_file(tmp_path, 1)), api_name="/analyze")
        assert document["models"]
    finally:
        client.close()


def test_hostile_files_through_the_cli(
    demo_weights: Path,
    hostile_files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(weights, "WEIGHTS_DIR", demo_weights)
    chosen = {key: path for key, path in hostile_files.items() if not EXPECTED[key].decodes or key in CLI_DECODABLE}
    code = cli.main(
        [
            "analyze",
            *map(str, chosen.values()),
            "--out",
            str(tmp_path / "out"),
            "--weights",
            "demo",
            "--models",
            "cbam_resnet50",
            "--maps",
            "none",
        ]
    )
    errors = capsys.readouterr().err
    assert code == 1
    for key, path in chosen.items():
        if EXPECTED[key].decodes:
            assert (tmp_path / "out" / f"{path.stem}.json").is_file(), key
        else:
            lines = [line for line in errors.splitlines() if line.startswith(f"error: {path}:")]
            assert len(lines) == 1 and EXPECTED[key].error.lower() in lines[0].lower(), (key, errors)
    assert "Traceback" not in errors


def test_concurrent_students_each_get_their_own_answer(app_url: str, tmp_path: Path) -> None:
    pictures = load.write_pictures(tmp_path, 4, size=96)
    report = load.run_load(app_url, pictures, users=6, images_per_user=2, deadline_s=600)
    assert report.ok, report
    assert report.answered == 12 and report.mismatched == 0 and report.latency_s["p95"] > 0


def test_a_full_queue_says_busy_and_the_server_recovers(
    demo_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_analyze = results_section.analyze

    def slow_analyze(*args: object, **kwargs: object) -> object:  # a slow model keeps the one queue place taken
        time.sleep(1.5)
        return real_analyze(*args, **kwargs)

    monkeypatch.setattr(results_section, "analyze", slow_analyze)
    settings = ServeSettings(concurrency=1, queue_size=1, render_concurrency=1)
    picture = shape_file(tmp_path, shapes.CLASSES.index("cross"))
    with launched_app(demo_weights, settings=settings) as (url, _, _):
        clients = [Client(url, verbose=False, download_files=str(tmp_path)) for _ in range(5)]
        try:
            jobs = [client.submit(handle_file(picture), api_name="/analyze") for client in clients]
            answered, busy = 0, []
            for job in jobs:
                try:
                    job.result(timeout=300)
                    answered += 1
                except Exception as error:  # noqa: BLE001 - sorted below by what the student was told
                    busy.append(str(error))
            assert answered >= 1 and busy, (answered, busy)
            assert answered + len(busy) == len(jobs)
            assert all("queue is full" in message.lower() and "try again" in message.lower() for message in busy)
            document, _ = clients[0].predict(handle_file(picture), api_name="/analyze")  # the server recovered
            assert document["models"]
        finally:
            for client in clients:
                client.close()


def test_short_soak_leaks_nothing(demo_weights: Path, tmp_path: Path) -> None:
    report = soak.run_soak(
        30,
        warmup=10,
        weights="demo",
        weights_dir=demo_weights,
        delete_cache=(2, 3),
        export_every=15,
        render_every=30,
        work_dir=tmp_path,
    )
    assert report.ok, report.failures
    assert report.hooks_end == report.hooks_after_warmup == 0
    assert report.cache_files_end <= report.cache_files_before

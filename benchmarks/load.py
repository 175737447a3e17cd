"""Classroom load test: N students each analyse M pictures at once through the app's API, and nothing gets lost.

    python -m benchmarks.load --users 40 --images 3            # starts `python app.py` itself on a free port
    python -m benchmarks.load --url http://127.0.0.1:7860/ ...  # or drives a running app

Every student is one ``gradio_client.Client`` (one browser session) in its own thread and sends its pictures one
after the other, as a student clicking *Analyse* would. Before the crowd arrives, each distinct picture is analysed
alone; every answer under load must equal that answer (same top-5, same explained class), so a response that was
lost, mixed up with another student's or computed on the wrong picture is counted, not missed. The run is bounded in
count (users x images) and in time (``--deadline``); it reports throughput, p50/p95/p99 latency, errors, rejections
("queue full", the visitor's "busy, try again") and mismatches, and exits non-zero if any request failed.

GPU servers: the app runs up to 4 analyses at once there (``ServeSettings``). Batching requests (Gradio's
``batch=True, max_batch_size=8`` on a dedicated endpoint) would raise throughput further only once the engine runs one
forward and one backward for a whole batch: per-sample gradients of ``sum_i y_i[target_i]`` are each sample's own,
because eval-mode models do not mix samples. ``capture.capture_pass`` takes one image today, so this stays a design.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from cbam_viz.demo import shapes
from tests.helpers.ports import free_port

REPO = Path(__file__).resolve().parent.parent

PICTURE_SEED = 11  # held out from the demo training streams (1 and 2)


@dataclass
class LoadReport:
    """What the crowd experienced."""

    users: int
    images_per_user: int
    requests: int
    answered: int = 0
    errors: int = 0
    rejected: int = 0  # "queue full": the server said busy instead of making the student wait forever
    mismatched: int = 0  # answered, but not what the same picture gets alone
    unanswered: int = 0  # still pending at the deadline
    wall_s: float = 0.0
    throughput_per_s: float = 0.0
    latency_s: dict[str, float] = field(default_factory=dict)  # p50, p95, p99, max
    error_messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.answered == self.requests and not (self.errors or self.rejected or self.mismatched)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (no interpolation: every reported latency is one a student really waited)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def write_pictures(folder: Path, count: int, size: int = 256) -> list[Path]:
    """``count`` distinct held-out shape pictures as PNG files (class cycles, so every class appears)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        label = index % len(shapes.CLASSES)
        path = folder / f"student-picture-{index:03d}-{shapes.CLASSES[label]}.png"
        Image.fromarray(shapes.render_sample(PICTURE_SEED, index, width=size, label=label).image).save(path)
        paths.append(path)
    return paths


def fingerprint(document: dict) -> dict:
    """The parts of an answer that must not change with load: every model's top-5 and explained class."""
    return {
        arch: ([(row["label"], round(row["prob"], 4)) for row in model["top5"]], model["target"]["label"])
        for arch, model in document["models"].items()
    }


def analyse(client: Client, picture: Path) -> dict:
    document, _ = client.predict(handle_file(str(picture)), api_name="/analyze")
    return document


def run_load(url: str, pictures: list[Path], users: int, images_per_user: int, deadline_s: float = 900.0) -> LoadReport:
    """The crowd against a running app at ``url``; pictures are dealt so neighbours never send the same one together."""
    reference_client = Client(url, verbose=False)
    try:
        reference = {picture: fingerprint(analyse(reference_client, picture)) for picture in pictures}
    finally:
        reference_client.close()
    report = LoadReport(users, images_per_user, users * images_per_user)
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline_s

    def student(index: int) -> None:
        client = Client(url, verbose=False)
        try:
            for turn in range(images_per_user):
                if time.monotonic() > stop_at:
                    return
                picture = pictures[(index * images_per_user + turn) % len(pictures)]
                started = time.monotonic()
                outcome = "answered"
                message = ""
                try:
                    answer = fingerprint(analyse(client, picture))
                    if answer != reference[picture]:
                        outcome, message = "mismatched", f"{picture.name}: answer differs from the lone run"
                except AppError as error:
                    outcome, message = "errors", str(error)
                except Exception as error:  # noqa: BLE001 - a load test records every failure kind, it must not stop
                    rejected = "queue is full" in str(error).lower()
                    outcome, message = ("rejected" if rejected else "errors"), f"{type(error).__name__}: {error}"
                elapsed = time.monotonic() - started
                with lock:
                    if outcome in ("answered", "mismatched"):
                        latencies.append(elapsed)
                        report.answered += 1
                    if outcome != "answered":
                        setattr(report, outcome, getattr(report, outcome) + 1)
                        if len(report.error_messages) < 10:
                            report.error_messages.append(message)
        finally:
            client.close()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=users) as pool:
        futures = [pool.submit(student, index) for index in range(users)]
        for future in as_completed(futures, timeout=deadline_s + 120):
            future.result()
    report.wall_s = time.monotonic() - started
    report.unanswered = report.requests - report.answered - report.errors - report.rejected
    report.throughput_per_s = report.answered / report.wall_s if report.wall_s else 0.0
    report.latency_s = {
        "p50": percentile(latencies, 0.50),
        "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies, default=math.nan),
    }
    return report


def start_app(port: int, weights: str, queue_size: int | None, startup_s: float) -> subprocess.Popen:
    """``python app.py`` in its own process (as in a classroom), returned once its page answers."""
    command = [sys.executable, str(REPO / "app.py"), "--port", str(port), "--weights", weights]
    if queue_size:
        command += ["--queue-size", str(queue_size)]
    server = subprocess.Popen(command, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    limit = time.monotonic() + startup_s
    while time.monotonic() < limit:
        if server.poll() is not None:
            raise SystemExit(f"error: the app exited with code {server.returncode} while starting")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    stop_app(server)
    raise SystemExit(f"error: the app did not answer within {startup_s:.0f} s")


def stop_app(server: subprocess.Popen) -> None:
    """Stop the app we started (its own process group), politely first."""
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--url", help="a running app; default: start `python app.py` on a free port")
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--images", type=int, default=3, help="pictures per user, sent one after the other")
    parser.add_argument("--pictures", type=int, default=12, help="distinct pictures shared out among the users")
    parser.add_argument("--weights", default="demo", help="weights set for the app this script starts")
    parser.add_argument("--queue-size", type=int, default=None, help="queue size for the app this script starts")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds before pending requests count as lost")
    parser.add_argument("--startup", type=float, default=900.0, help="seconds to wait for the app to start")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    port = free_port()
    server = None if args.url else start_app(port, args.weights, args.queue_size, args.startup)
    url = args.url or f"http://127.0.0.1:{port}/"
    try:
        with tempfile.TemporaryDirectory(prefix="cbam_viz-load-") as folder:
            pictures = write_pictures(Path(folder), args.pictures)
            report = run_load(url, pictures, args.users, args.images, args.deadline)
    finally:
        if server is not None:
            stop_app(server)
    document = {**asdict(report), "ok": report.ok}
    print(json.dumps(document, indent=2))
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

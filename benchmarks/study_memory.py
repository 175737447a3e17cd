"""Does a study's memory stay flat as it grows? (a script, not a test)

The study keeps only running aggregates in memory (the rows go to shards on disk), so its peak RSS should not grow
with the number of images. This runs the same study twice, each in a fresh process (``python -m cbam_viz study
shapes``): once on ``--small`` held-out shapes and once on ``--large``, and prints each process's peak RSS (the
kernel's ``ru_maxrss``, read by ``os.wait4``) and the growth between them, side by side in one run.

    python -m benchmarks.study_memory [--small 1000] [--large 20000] [--batch-size 32] [--models ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb(images: int, out: Path, batch_size: int, models: list[str]) -> tuple[float, float]:
    """One study of ``images`` shapes in a fresh process: -> (its peak RSS in MB, seconds)."""
    command = [sys.executable, "-m", "cbam_viz", "study", "shapes", "--out", str(out), "--limit", str(images)]
    command += ["--batch-size", str(batch_size), "--quiet", "--models", *models]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as said:  # a file, not a pipe: a chatty study never blocks on a full pipe
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=said)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            said.seek(0)
            raise SystemExit(f"the study of {images} images failed: {said.read().decode().strip()[-300:]}")
    return usage.ru_maxrss / 1024, seconds  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=["resnet50", "se_resnet50", "cbam_resnet50"])
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for images in (args.small, args.large):
            rss, seconds = peak_rss_mb(images, Path(folder) / f"study-{images}", args.batch_size, args.models)
            rows.append((images, rss, seconds))
            print(f"{images:>6} images: peak RSS {rss:7.1f} MB in {seconds:7.1f} s ({images / seconds:.1f} images/s)")
    growth = rows[1][1] - rows[0][1]
    print(f"growth from {args.small} to {args.large} images: {growth:+.1f} MB (target < 100 MB)")


if __name__ == "__main__":
    main()

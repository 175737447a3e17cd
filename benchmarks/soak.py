"""Soak test: many sequential analyses in ONE process (the app and its client), checking that nothing accumulates.

    python -m benchmarks.soak --count 1000
    python -m benchmarks.soak --count 600 --sessions --size 1600x1200 --rss-limit 150   # benchmarks/README.md

It launches the real app in-process (``app.build_demo`` + ``app.serve``) with its Gradio cache in a fresh folder,
sends ``--warmup`` analyses (exporting and drawing every panel every 5th), then ``--count`` analyses through the API
one after the other (an export every ``--export-every``, and every ``--render-every`` it also draws all panels
in-process, as the page's follow-up events would), and checks. With ``--sessions`` every analysis comes from a new
browser session (a fresh session hash), as 600 visitors would, each leaving its state behind; ``--size`` sets the
pictures' size (JPEG photos of that size instead of 256 px PNG shapes):

* memory: resident set size after the warm-up grows by at most ``--rss-limit`` MB (default 50);
* hooks: the number of module hooks on the cached models is the same before and after (no leaked grad-cam hooks);
* files: once ``delete_cache`` has run, the Gradio cache holds no more files than before the first request (the
  example pictures), and the app's export copies older than ``export.EXPORT_KEEP_S`` are gone.

Linux only (reads /proc/self/statm). Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from cbam_viz.demo import shapes
from tests.helpers.ports import free_port

PICTURE_SEED = 13  # held out from the demo training streams (1 and 2)


@dataclass
class SoakReport:
    analyses: int
    warmup: int
    sessions: bool = False  # each analysis from a new session
    picture_size: str = "256 px shapes"
    seconds: float = 0.0
    rss_mb_after_warmup: float = 0.0
    rss_mb_end: float = 0.0
    rss_growth_mb: float = 0.0
    rss_limit_mb: float = 50.0
    rss_mb_checkpoints: list[float] = field(default_factory=list)  # every 100 analyses: a leak climbs, caches level
    hooks_after_warmup: int = -1
    hooks_end: int = -1
    cache_files_before: int = 0  # the example pictures, which Gradio keeps
    cache_files_end: int = 0  # after delete_cache ran
    stale_export_files: int = 0  # export copies older than EXPORT_KEEP_S (pruned on the next export)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def rss_mb() -> float:
    """Resident set size of this process in MB (Linux: /proc/self/statm, in pages)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def count_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


@contextlib.contextmanager
def gradio_cache(folder: Path) -> Iterator[Path]:
    """Point Gradio's upload/output cache at ``folder`` for the app built inside the block."""
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    try:
        yield folder
    finally:
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous


def soak_pictures(folder: Path, size: tuple[int, int] | None) -> list[Path]:
    """The five pictures the soak cycles through: 256 px shapes as PNG, or at ``size`` as JPEG (a photo's format)."""
    folder.mkdir(parents=True, exist_ok=True)
    pictures = []
    for index in range(5):
        shape = Image.fromarray(shapes.render_sample(PICTURE_SEED, index, width=256).image)
        path = folder / (f"soak-{index}.png" if size is None else f"soak-{index}.jpg")
        if size is None:
            shape.save(path)
        else:  # a photo's size and format: the decoded picture, the display copy and the maps are what they would be
            shape.resize(size, Image.Resampling.BICUBIC).save(path, quality=85)
        pictures.append(path)
    return pictures


def run_soak(
    count: int,
    *,
    warmup: int = 50,
    weights: str = "demo",
    weights_dir: Path | None = None,
    delete_cache: tuple[int, int] = (5, 5),
    export_every: int = 50,
    render_every: int = 25,
    rss_limit_mb: float = 50.0,
    work_dir: Path | None = None,
    sessions: bool = False,
    size: tuple[int, int] | None = None,
) -> SoakReport:
    """``count`` sequential API analyses against an in-process app; see the module docstring for the checks."""
    from gradio_client import Client, handle_file

    from cbam_viz.analysis.capture import count_hooks
    from cbam_viz.analysis.models import get_models
    from cbam_viz.ui import export, layout
    from cbam_viz.ui.panels import registry as panels
    from cbam_viz.ui.sections import results as results_section
    from cbam_viz.ui.sections.request import PageRequest
    from cbam_viz.ui.server import engine as ui_engine
    from cbam_viz.vocab import ARCH_ORDER

    ui_engine.limit_malloc_arenas()  # as app.py does at start-up
    if warmup < 5:
        raise ValueError(f"the warm-up needs at least 5 analyses (one export and one panel drawing), got {warmup}")
    report = SoakReport(count, warmup, sessions, "256 px shapes" if size is None else f"{size[0]}x{size[1]} JPEG")
    report.rss_limit_mb = rss_limit_mb
    work = Path(work_dir or tempfile.mkdtemp(prefix="cbam_viz-soak-"))
    pictures = soak_pictures(work / "pictures", size)
    downloads = work / "client-downloads"
    with gradio_cache(work / "gradio-cache") as cache:
        engine = ui_engine.Engine.start(weights, None, weights_dir)
        demo = layout.build_demo(engine, delete_cache=delete_cache)
        _, url, _ = layout.serve(demo, "127.0.0.1", free_port(), prevent_thread_lock=True, probe_localhost=False)
        models = get_models(ARCH_ORDER, engine.weights, engine.device, weights_dir=weights_dir).models.values()
        client = Client(url, verbose=False, download_files=str(downloads))
        try:
            report.cache_files_before = count_files(cache)

            def one(index: int, export_every: int, render_every: int) -> None:
                picture = pictures[index % len(pictures)]
                if sessions:
                    client.reset_session()  # a new visitor: Gradio keeps the previous session's state
                client.predict(handle_file(str(picture)), api_name="/analyze")
                if export_every and index % export_every == export_every - 1:
                    client.predict(api_name="/export")
                if render_every and index % render_every == render_every - 1:
                    asked = PageRequest(str(picture), list(ARCH_ORDER), "auto", "top1", "", "gradcam", 4, "whole")
                    result, _, _ = results_section.run_analysis(engine, asked, False)
                    panels.render_all(result.analysis, panels.Display.checked("jet", 0.5, False, 4))
                    panels.render_all(result.analysis, panels.Display.checked("viridis", 0.6, True, 2), "drill")

            # Warm-up: every path (analysis, export, panels) runs several times, so one-time caches (fonts, glyphs,
            # allocator arenas of the server's threads) are full before the baseline is taken.
            for index in range(warmup):
                one(index, 5, 5)
            gc.collect()
            report.rss_mb_after_warmup = rss_mb()
            report.hooks_after_warmup = sum(count_hooks(model) for model in models)
            started = time.monotonic()
            for index in range(count):
                one(index, export_every, render_every)
                if index % 100 == 99:
                    gc.collect()
                    report.rss_mb_checkpoints.append(round(rss_mb(), 1))
            report.seconds = time.monotonic() - started
            gc.collect()
            report.rss_mb_end = rss_mb()
            report.hooks_end = sum(count_hooks(model) for model in models)
            time.sleep(sum(delete_cache) + 2)  # let delete_cache's next pass remove everything older than its age
            report.cache_files_end = count_files(cache)
            export.EXPORTS.prune()
            now = time.time()
            report.stale_export_files = sum(
                1
                for path in export.EXPORTS.folder.rglob("*")
                if path.is_file() and now - path.stat().st_mtime > export.EXPORT_KEEP_S
            )
        finally:
            client.close()
            demo.close()
            shutil.rmtree(downloads, ignore_errors=True)
    report.rss_growth_mb = report.rss_mb_end - report.rss_mb_after_warmup
    if report.rss_growth_mb > rss_limit_mb:
        report.failures.append(f"memory grew by {report.rss_growth_mb:.1f} MB after the warm-up (limit {rss_limit_mb})")
    if report.hooks_end != report.hooks_after_warmup:
        report.failures.append(f"hooks changed from {report.hooks_after_warmup} to {report.hooks_end}")
    if report.cache_files_end > report.cache_files_before:
        report.failures.append(
            f"{report.cache_files_end - report.cache_files_before} files left in the Gradio cache after delete_cache"
        )
    if report.stale_export_files:
        report.failures.append(f"{report.stale_export_files} stale export copies were not pruned")
    if work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--weights", default="demo")
    parser.add_argument("--weights-dir", type=Path, default=None)
    parser.add_argument("--export-every", type=int, default=50)
    parser.add_argument("--render-every", type=int, default=25)
    parser.add_argument("--rss-limit", type=float, default=50.0, help="MB of growth allowed after the warm-up")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--sessions", action="store_true", help="every analysis from a new session")
    parser.add_argument("--size", help="pictures of WIDTHxHEIGHT px as JPEG photos (default: 256 px PNG shapes)")
    args = parser.parse_args(argv)
    size = None
    if args.size:
        width, _, height = args.size.lower().partition("x")
        size = (int(width), int(height))
    report = run_soak(
        args.count,
        warmup=args.warmup,
        weights=args.weights,
        weights_dir=args.weights_dir,
        export_every=args.export_every,
        render_every=args.render_every,
        rss_limit_mb=args.rss_limit,
        sessions=args.sessions,
        size=size,
    )
    document = {**asdict(report), "ok": report.ok}
    print(json.dumps(document, indent=2))
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Time, in a real browser, from the Analyse click to the last main panel painted (demo models, median of N).

Launches the app in-process on a loopback port, drives Debian's chromium through Playwright, and for each run clicks
Analyse on a fresh picture, then waits until every main panel shows the new result (top-5, CAM images loaded, spatial
and channel images loaded, numbers, agreement). Prints each run and the median. Loopback only, bounded in count.

    .venv/bin/python -m benchmarks.browser_timing [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cbam_viz.demo import shapes
from cbam_viz.vocab import ARCH_ORDER
from cbam_viz.weights.files import WEIGHTS_DIR
from tests.helpers.app import launched_app, shape_file
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, PANELS_READY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--width", type=int, default=1440)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="cbam_viz-browser-timing-"))
    pictures = [shape_file(folder, shapes.CLASSES.index("star"), seed=100, size=256)]
    expectations = [list(ARCH_ORDER), ["cbam_resnet50"], ["se_resnet50", "cbam_resnet50"], None]
    timings = []
    with launched_app(WEIGHTS_DIR, weights="demo") as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": args.width, "height": 1000})
        page.goto(url, wait_until="domcontentloaded")
        page.locator("#input-image").wait_for()
        page.locator("#input-image input[type=file]").set_input_files(str(pictures[0]))
        expectations[-1] = None
        page.wait_for_function(PANELS_READY, arg=expectations, timeout=240_000)
        for index in range(args.runs + 1):
            previous = page.evaluate(
                "archs => Object.fromEntries(archs.map(a => [a, document.querySelector(`#cam-${a} img`).src]))",
                list(ARCH_ORDER),
            )
            expectations[-1] = previous
            # Another stage each time, so every click paints new maps (same maps would keep the same image URLs).
            page.locator("#analysis-stage").get_by_text(str(3 if index % 2 == 0 else 4), exact=True).click()
            started = time.perf_counter()
            page.locator("#analyse").click()
            page.wait_for_function(PANELS_READY, arg=expectations, timeout=240_000)
            seconds = time.perf_counter() - started
            if index:  # the first run warms the browser and the server's caches
                timings.append(seconds)
                print(f"run {index}: {seconds * 1000:.0f} ms from the Analyse click to the last main panel painted")
        browser.close()
    print(f"median of {len(timings)}: {statistics.median(timings) * 1000:.0f} ms (demo models, {args.width} px wide)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How fast is live mode? Debian's chromium with a fake camera drives the live view of a launched app.

    python -m benchmarks.live [--seconds 20] [--models resnet50 se_resnet50 cbam_resnet50]

The camera plays a generated Y4M clip (``tests/helpers/camera.py``: a star crossing a cluttered scene, 10 fps, each
frame numbered in a strip along its bottom). In the page, a script reads the number of every frame the webcam component
captures (its canvas) and of every overlay shown (the live view's first tile, drawn at opacity 0 so the strip stays
readable), with the page's clock. It prints:

* frames shown per second (distinct overlays painted per second over the run);
* capture-to-overlay latency: for each overlay, the time since that frame was captured (p50, p95);
* beside it, in the same run, the engine's own time per frame (``live.analyse_frame``) for the demo models and for
  ImageNet-size models with random weights (224 px), which bounds what any page can show on this machine.

Targets (demo models, 2-core CPU): at least 8 fps with three models, p95 at most 400 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cbam_viz.vocab import ARCH_ORDER, ARCH_TITLES
from cbam_viz.weights.files import WEIGHTS_DIR
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, LIVE_ARGS
from tests.helpers.camera import FRAME_NUMBER_JS, clip_frames, write_y4m

HOOKS = f"""
(() => {{
  window.__frameNumber = {FRAME_NUMBER_JS};
  window.__captured = {{}};
  window.__shown = [];
  const draw = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (...args) {{
    const result = draw.apply(this, args);
    if (args[0] instanceof HTMLVideoElement && !this.__probe) {{
      const number = window.__frameNumber(this, 0, 0, this.canvas.width, this.canvas.height);
      if (number !== null) window.__captured[number] = performance.now();
    }}
    return result;
  }};
}})();
"""
WATCH = """
() => {
  let last = null;
  const probe = document.createElement('canvas');
  const context = probe.getContext('2d');
  context.__probe = true;
  const look = () => {
    const img = document.querySelector('#live-view img');
    if (img && img.complete && img.naturalWidth && img.src !== last) {
      last = img.src;
      const now = performance.now();
      probe.width = img.naturalWidth; probe.height = img.naturalHeight;
      context.drawImage(img, 0, 0);
      const number = window.__frameNumber(context, 6, img.naturalHeight - 6 - 192, 256, 192);
      if (number !== null && window.__captured[number] !== undefined) {
        window.__shown.push([now, now - window.__captured[number]]);
      }
    }
    requestAnimationFrame(look);
  };
  requestAnimationFrame(look);
}
"""


def engine_ms(models: dict, preprocess: dict, frames: int = 12) -> float:
    """Median milliseconds of live mode's per-frame work (``live.frame_row`` on a ``LIVE_SIDE`` frame)."""
    from cbam_viz.ui import live

    clip = [live.frame_picture(frame) for frame in clip_frames(count=frames)]
    times = []
    for index, picture in enumerate(clip[:2] + clip):
        started = time.perf_counter()
        live.frame_row(picture, models, preprocess)
        if index >= 2:
            times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def demo_models(archs: list[str]) -> tuple[dict, dict]:
    from cbam_viz.analysis.models import get_models

    loaded = get_models(archs, "demo").models
    return loaded, {arch: model.weights_info.preprocess for arch, model in loaded.items()}


def imagenet_models(archs: list[str]) -> tuple[dict, dict]:
    """Random ImageNet-size models (1000 classes), fed 224 px on the shorter side as the ImageNet sets are."""
    from cbam_viz.model.resnet import ArchConfig
    from cbam_viz.weights.registry import Preprocess
    from tests.helpers.models import random_model

    imagenet = Preprocess(224, None, "bilinear", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    models = {arch: random_model(arch, seed, config=ArchConfig()) for seed, arch in enumerate(archs)}
    return models, {arch: imagenet for arch in archs}


def browser_run(seconds: float, models: list[str]) -> tuple[float, list[float], int]:
    """-> (overlays shown per second, capture-to-overlay latencies in ms, frames captured)."""
    from playwright.sync_api import sync_playwright

    from tests.helpers.app import launched_app

    clip = write_y4m(Path(tempfile.mkdtemp(prefix="cbam_viz-live-")) / "clip.y4m", clip_frames(count=90), fps=30)
    args = [*CHROMIUM_ARGS, *LIVE_ARGS, f"--use-file-for-fake-video-capture={clip}"]
    from cbam_viz.ui.server.engine import fit_torch_threads

    fit_torch_threads("cpu", "demo")  # as `python app.py` does for the demo set on a CPU
    with launched_app(WEIGHTS_DIR, weights="demo") as (url, _, _), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1000}, permissions=["camera"])
            context.add_init_script(HOOKS)
            page = context.new_page()
            page.goto(url, wait_until="domcontentloaded", timeout=240_000)
            page.locator("#input-image").wait_for(timeout=240_000)
            chosen = page.locator("input[aria-label='number input for Map opacity']")
            chosen.fill("0")
            chosen.press("Enter")
            for arch in ARCH_ORDER:
                if arch not in models:
                    page.get_by_label(ARCH_TITLES[arch]).uncheck()
            page.get_by_text("Live: point a webcam and watch the attention move").click()
            page.locator("#live-cam").get_by_text("Click to Access Webcam").click()
            page.locator("#live-cam button.capture-button").click(timeout=240_000)
            page.locator("#live-status").get_by_text("fps").wait_for(timeout=240_000)
            page.wait_for_timeout(2000)  # warm-up: the first frames pay one-time costs
            page.evaluate(WATCH)
            page.wait_for_timeout(seconds * 1000)
            shown = page.evaluate("() => window.__shown")
            captured = len(page.evaluate("() => Object.keys(window.__captured)"))
        finally:
            browser.close()
    if len(shown) < 2:
        raise RuntimeError(f"only {len(shown)} overlays could be followed from capture to screen")
    span = (shown[-1][0] - shown[0][0]) / 1000
    return (len(shown) - 1) / span, [latency for _, latency in shown], captured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--models", nargs="+", default=list(ARCH_ORDER))
    args = parser.parse_args(argv)
    import torch

    imagenet_ms = engine_ms(*imagenet_models(args.models), frames=6)  # torch's own threads, as the app leaves them
    fps, latencies, captured = browser_run(args.seconds, args.models)  # from here on, the app's demo threads
    demo_ms = engine_ms(*demo_models(args.models))
    p50, p95 = np.percentile(latencies, [50, 95])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU; {len(args.models)} models\n")
    print("| | frames shown / s (≥ 8) | capture → overlay p50 | p95 (≤ 400 ms) | engine per frame |")
    print("|---|---|---|---|---|")
    print(f"| demo models, browser | **{fps:.1f}** | {p50:.0f} ms | **{p95:.0f} ms** | {demo_ms:.0f} ms |")
    print(
        f"| ImageNet size (random weights), engine only | at most {1000 / imagenet_ms:.1f} | | | {imagenet_ms:.0f} ms |"
    )
    print(f"\n{len(latencies)} overlays followed over {args.seconds:.0f} s; {captured} distinct frame numbers captured")
    return 0 if fps >= 8 and p95 <= 400 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Debian's chromium as the browser tests and the browser benchmarks drive it, and what they wait for on the page."""

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# live mode: a fake camera, allowed without asking (add --use-file-for-fake-video-capture=<clip>.y4m)
LIVE_ARGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]

# PANELS_MISSING(archs, with spatial maps, with channel plots, previous CAM srcs or null): what the page still lacks
# before every chosen model's main panels are painted (and changed since ``previous``), or "" once they are
PANELS_MISSING = """
([archs, withSpatial, withChannel, previous]) => {
    const image = (id) => document.querySelector(`#${id} img`);
    // Gradio's images load lazily, as a visitor scrolls to them: ask for them now instead of scrolling.
    const ready = (id) => {
        const i = image(id);
        if (i && i.loading === 'lazy') i.loading = 'eager';
        return i && i.complete && i.naturalWidth > 0;
    };
    for (const arch of archs) {
        if (!ready(`cam-${arch}`)) return `no painted CAM for ${arch}`;
        if (previous && image(`cam-${arch}`).src === previous[arch]) return `the CAM of ${arch} is the previous one`;
        const top5 = document.querySelector(`#top5-${arch}`);
        if (!top5 || !top5.innerText.includes('%')) return `no top-5 for ${arch}`;
        const numbers = document.querySelector(`#numbers-${arch}`);
        if (!numbers || !numbers.innerText.includes('probability of the explained class')) {
            return `no numbers for ${arch}`;
        }
    }
    for (const arch of withSpatial) if (!ready(`spatial-${arch}`)) return `no spatial map for ${arch}`;
    for (const arch of withChannel) if (!ready(`channel-${arch}`)) return `no channel plot for ${arch}`;
    const agreement = document.querySelector('#agreement');
    return agreement && agreement.innerText.includes('CAM correlation') ? '' : 'no agreement table';
}
"""
# page.wait_for_function(PANELS_READY, arg=[...as above...]): true once nothing is missing
PANELS_READY = f"(args) => ({PANELS_MISSING.strip()})(args) === ''"


def wait_for_panels(page, expectations: list, timeout_ms: float) -> None:
    """Wait for PANELS_READY; on a timeout, fail with what was missing and what the page said instead."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(PANELS_READY, arg=expectations, timeout=timeout_ms)
    except PlaywrightTimeout:
        missing = page.evaluate(PANELS_MISSING, expectations)
        said = page.evaluate(
            """() => ['#results-status', '#image-notes', '#input-image'].map(
                id => `${id}: ${(document.querySelector(id)?.innerText ?? '(absent)').slice(0, 300)}`).join(' | ')"""
        )
        raise AssertionError(f"panels not ready after {timeout_ms / 1000:.0f} s: {missing}; {said}") from None


def small_png(path) -> None:
    """A screenshot for the docs made small: an 8-bit palette (dithered, so gradients and heat maps keep their look),
    saved with PNG's best compression."""
    from PIL import Image

    with Image.open(path) as shot:
        picture = shot.convert("RGB")
    palette = picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
    palette.save(path, optimize=True)

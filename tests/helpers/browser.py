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

# page.wait_for_function(PANELS_READY, arg=[archs, with spatial maps, with channel plots, previous CAM srcs or null]):
# true once every chosen model's main panels are painted (and changed since ``previous``)
PANELS_READY = """
([archs, withSpatial, withChannel, previous]) => {
    const image = (id) => document.querySelector(`#${id} img`);
    // Gradio's images load lazily, as a visitor scrolls to them: ask for them now instead of scrolling.
    const ready = (id) => {
        const i = image(id);
        if (i && i.loading === 'lazy') i.loading = 'eager';
        return i && i.complete && i.naturalWidth > 0;
    };
    for (const arch of archs) {
        if (!ready(`cam-${arch}`)) return false;
        if (previous && image(`cam-${arch}`).src === previous[arch]) return false;
        const top5 = document.querySelector(`#top5-${arch}`);
        if (!top5 || !top5.innerText.includes('%')) return false;
        const numbers = document.querySelector(`#numbers-${arch}`);
        if (!numbers || !numbers.innerText.includes('probability of the explained class')) return false;
    }
    for (const arch of withSpatial) if (!ready(`spatial-${arch}`)) return false;
    for (const arch of withChannel) if (!ready(`channel-${arch}`)) return false;
    const agreement = document.querySelector('#agreement');
    return Boolean(agreement && agreement.innerText.includes('CAM correlation'));
}
"""

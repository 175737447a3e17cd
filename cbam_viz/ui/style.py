"""The page's styles: its own CSS, and the presenter view (``?presenter=1``, a projector in a lecture hall).

The presenter view shows large type and the three models side by side at full width, without control panels: the
picture, its examples and the Analyse button stay, as large buttons. What it hides is read off the sections.
"""

from __future__ import annotations

from collections.abc import Iterable

from cbam_viz.ui.panels.registry import PANELS, Panel
from cbam_viz.ui.sections import SECTIONS
from cbam_viz.ui.sections.common import Section

CSS = """
#banner {border-left: 4px solid var(--color-accent); padding: 4px 12px; background: var(--block-background-fill);}
.panel-caption p {margin: 0; font-size: 0.95em;}
/* A model not chosen has every cell hidden, which leaves its column empty: it gives its width to the chosen ones
   (a model card may list more models than the three shown). */
.model-column:not(:has(*)) {display: none;}
#results-status {min-height: 1.5em;}
/* A refused action says why in one line (a toast, or the line under the picture); Gradio's "Error" badge on each
   output of that event only covered the panels' own text (a phone's pointing table). */
[data-testid="status-tracker"] .clear-status, [data-testid="status-tracker"] span.error {display: none;}
[id^="pointing-"] td:first-child {white-space: nowrap;} /* "CAM" whole in a phone's narrow first column */
/* The pointing table breaks between words only ("stag e", "peak insid e?" at 1280 px and on a phone before);
   a table wider than its cell scrolls sideways inside it. */
[id^="pointing-"] th, [id^="pointing-"] td {word-break: normal !important; overflow-wrap: normal !important;
    hyphens: none;}
[id^="pointing-"] table {display: block; overflow-x: auto; max-width: 100%;}
/* The examples wrap into as many rows as the width needs, every one in sight: on a phone five fixed columns ran
   past the edge, and a fixed-height box hid rows without a cue that it scrolls. */
#examples .grid-container {grid-template-columns: repeat(auto-fill, minmax(88px, 1fr)) !important;}
#examples .grid-wrap {height: auto !important; max-height: none !important; overflow: visible !important;}
#examples, #examples .grid-wrap {min-height: 0 !important; height: auto !important;} /* no blank under the rows */
/* Each example's name under its picture, and the gallery's title above the pictures, never over them: Gradio lays
   both over the thumbnails, where they hid part of the shapes. */
#examples .thumbnail-item {aspect-ratio: auto !important; height: auto !important; display: flex !important;
    flex-direction: column; align-items: stretch;}
#examples .thumbnail-item img {aspect-ratio: 1 / 1; height: auto !important; flex: none;}
#examples [data-testid="block-label"] {position: static !important; margin-bottom: 4px;}
#examples .icon-button-wrapper {display: none !important;} /* a download button over the third shape's corner */
#examples .caption-label {position: static !important; max-width: 100% !important; border: none !important;
    background: none !important; text-align: center; opacity: 1 !important; padding: 0 2px 2px !important;}
"""


def readable_css(panels: Iterable[Panel] = PANELS) -> str:
    """Figures with words (``Panel.readable_width``) at their own height, never narrower than their words allow: at
    most their natural size, shrunk to the cell, but below that width the cell scrolls sideways (a phone)."""
    rules = []
    for panel in panels:
        if panel.readable_width is None:
            continue
        cell = f"#{panel.key}" if panel.page_wide else f'[id^="{panel.key}-"].panel-image'
        rules.append(
            f"{cell} {{height: auto !important; overflow-x: auto !important;}}\n"
            f"{cell} .image-container, {cell} .image-container > button, {cell} .image-frame"
            " {height: auto !important; display: block !important;}\n"  # centred, but scrolled from its left edge
            f"{cell} img {{display: block; margin: 0 auto; width: auto !important; height: auto !important;"
            f" max-width: 100% !important; max-height: none !important;"
            f" min-width: {panel.readable_width}px !important;}}\n"
        )
    return "".join(rules)


PRESENTER_JS = """
() => {
    if (new URLSearchParams(location.search).get('presenter') !== '1') return;
    document.body.classList.add('presenter');
    const fit = () => document.body.classList.toggle('short-screen', innerHeight <= 800);
    fit();
    addEventListener('resize', fit);
}
"""
PRESENTER_TYPE = """
body.presenter, body.presenter .gradio-container {
    --text-xxs: 14px; --text-xs: 16px; --text-sm: 18px; --text-md: 22px; --text-lg: 26px; --text-xl: 32px;
    --text-xxl: 40px; --block-label-text-size: 18px; --block-title-text-size: 22px;
}
body.presenter .panel-caption p {font-size: 28px !important;}
body.presenter .panel-image {height: 520px !important;}
body.presenter .panel-image img {object-fit: contain !important; width: 100% !important; height: 100% !important;}
body.presenter #analyse {font-size: 1.6em; min-height: 3em;}
body.presenter h1 {font-size: 2.2em;}
body.presenter h4 {font-size: 1.6em;}
"""
PRESENTER_LAYOUT = """
/* The first screen shows results: the picture beside its Analyse button and the examples, not above them */
body.presenter #picture-column {display: grid !important; grid-template-columns: minmax(240px, 1fr) 3fr;
    column-gap: 16px; align-items: start;}
body.presenter #picture-column > * {grid-column: 2; min-width: 0;}
body.presenter #picture-column > #input-image {grid-column: 1; grid-row: 1 / span 3; height: 240px !important;}
body.presenter #input-image [data-testid="block-label"] {display: none;}
body.presenter #picture-column #examples .grid-container {
    grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)) !important;}
body.presenter #picture-column #examples .caption-label {font-size: 16px !important;}
body.presenter [id^="header-"] {display: none !important;} /* each top-5 is captioned with its model's name */
/* a 1280x720 projector (PRESENTER_JS marks a short screen): the results begin on the first screen all the same */
body.presenter.short-screen h1 {font-size: 1.6em;}
body.presenter.short-screen #page-heading p {display: none;}
body.presenter.short-screen #results-status p {font-size: 18px !important; line-height: 1.35;}
body.presenter.short-screen #picture-column > #input-image {height: 170px !important;}
body.presenter.short-screen #picture-column #examples .grid-container {
    grid-template-columns: repeat(auto-fill, minmax(80px, 1fr)) !important;}
body.presenter.short-screen #picture-column #examples .caption-label {font-size: 14px !important;}
/* The top-5, read from the back of a lecture hall */
body.presenter [id^="top5-"] .output-class {font-size: 44px !important; padding: 4px 0 !important;}
body.presenter [id^="top5-"] .confidence-set {font-size: 26px !important;}
body.presenter [id^="top5-"] .confidence-set dl, body.presenter [id^="top5-"] .confidence-set dt,
body.presenter [id^="top5-"] .confidence-set dd {font-size: 26px !important;}
"""


def presenter_css(sections: Iterable[Section] = SECTIONS) -> str:
    """The presenter's type sizes, what it hides (each section's accordion and named parts, every "What am I
    looking at?" box and Gradio's footer), then its layout."""
    hidden = [f"#{elem_id}" for section in sections for elem_id in section.hidden_for_presenter()]
    selectors = ",\n".join(f"body.presenter {selector}" for selector in (*hidden, ".explain", "footer"))
    return f"{PRESENTER_TYPE}{selectors}\n    {{display: none !important;}}\n{PRESENTER_LAYOUT}"


PRESENTER_CSS = presenter_css()
READABLE_CSS = readable_css()

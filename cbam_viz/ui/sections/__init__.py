"""The page's sections, top to bottom: ``SECTIONS`` is the one list of them.

The layout builds and wires them in this order; the presenter's CSS, the lesson links (which accordions a link may
open) and the redraws (which accordions are open) read the same records. See ``common.Section``.
"""

from __future__ import annotations

from cbam_viz.ui.sections import (
    credits,
    drill,
    export,
    gate,
    header,
    inputs,
    intervene,
    lesson,
    live,
    results,
    study,
    trust,
)
from cbam_viz.ui.sections.common import Section

SECTIONS: tuple[Section, ...] = (
    header.SECTION,
    inputs.SECTION,
    live.SECTION,
    lesson.SECTION,
    results.SECTION,
    drill.SECTION,
    gate.SECTION,
    intervene.SECTION,
    trust.SECTION,
    study.SECTION,
    export.SECTION,
    credits.SECTION,
)

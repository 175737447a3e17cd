"""The drill-down: every block of one stage, per model, drawn from the cached analysis while the accordion is open."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from cbam_viz.ui.i18n import T
from cbam_viz.ui.sections import results
from cbam_viz.ui.sections.common import Box, Page, Parts, Section, accordion, explanation, track
from cbam_viz.vocab import STAGES


@dataclass
class Drill:
    """The drill-down's accordion and its stage picker."""

    box: Box
    stage: gr.Radio


def build(parts: Parts) -> Drill:
    """The accordion: its stage picker over one column of cells per model."""
    with accordion(SECTION) as box:
        explanation(T("explain.blocks"))
        stage = gr.Radio(list(STAGES), value=4, label=T("page.drill_stage"))
        with gr.Row(equal_height=False):
            for model_id in parts.cells.lineup.ids:  # one column per model, its panels stacked
                with gr.Column(min_width=240, elem_classes="model-column"):
                    for panel in parts.panels(SECTION):
                        parts.cells.add(panel, model_id)
    return Drill(box, stage)


def wire(page: Page) -> None:
    """A new stage, or opening the accordion, redraws its panels."""
    parts, handle = page.parts, page.drill
    outputs = parts.cells.outputs(parts.panels(SECTION))
    draw = partial(results.redraw, parts.cells, "drill")
    inputs = [parts.state, *results.draw_inputs(page)]
    handle.stage.input(draw, inputs, outputs, api_name="drill", api_visibility="private", **parts.render_queue())
    track(handle.box).then(
        draw, inputs, outputs, api_name="drill_opened", api_visibility="private", **parts.render_queue()
    )


SECTION = Section("drill", build, wire, title="page.drill", elem_id="drill", remembered=True)

"""Inside the gate: one block's attention gate of one model, step by step, with its equations and raw numbers.

The panels draw from the cached analysis; a gate the analysis did not record (it ran with the accordion closed)
is recorded by running the picked model once more on the same picture.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from cbam_viz.analysis import gates
from cbam_viz.pipeline import analyze
from cbam_viz.ui.errors import one_line_errors
from cbam_viz.ui.i18n import T
from cbam_viz.ui.panels import gate as gate_view
from cbam_viz.ui.panels.cells import Cells
from cbam_viz.ui.panels.gate import GatePick
from cbam_viz.ui.panels.registry import PAGE
from cbam_viz.ui.results import Result
from cbam_viz.ui.sections import results
from cbam_viz.ui.sections.common import Box, Page, Parts, Section, accordion, explanation, track
from cbam_viz.ui.sections.request import PageRequest
from cbam_viz.ui.server.engine import Engine
from cbam_viz.ui.uploads import decode_upload
from cbam_viz.vocab import STAGE_DEPTHS, all_blocks, block_name


@dataclass
class Gate:
    """The gate picker (model, block, channel), the raw numbers and the accordion."""

    box: Box
    model: gr.Dropdown
    block: gr.Dropdown
    channel: gr.Textbox  # empty: the strongest channel
    raw: gr.Button
    json: gr.JSON


def build(parts: Parts) -> Gate:
    """The accordion: the pickers, the gate's panels and its raw numbers."""
    with accordion(SECTION) as box:
        explanation(T("explain.gate"))
        with gr.Row():
            gated = gate_view.gated(parts.engine.lineup)
            model = gr.Dropdown(
                [(parts.engine.lineup.title(name), name) for name in gated],
                value=gate_view.first_gate(parts.engine.lineup),
                allow_custom_value=True,  # the API's one-line answer for a model without gates
                label=T("page.model"),
                elem_id="gate-model",
            )
            block = gr.Dropdown(
                all_blocks(),
                value=gate_view.default_block(4),
                allow_custom_value=True,
                label=T("page.gate_block"),
                elem_id="gate-block",
            )
            channel = gr.Textbox(  # a Number cannot be empty, and empty means "the strongest"
                "",
                max_lines=1,
                max_length=8,
                label=T("page.gate_channel"),
                elem_id="gate-channel",
            )
        for panel in parts.panels(SECTION):
            parts.cells.add(panel, PAGE)
        with gr.Accordion(T("page.gate_raw_box"), open=False):
            raw = gr.Button(T("page.gate_raw"), size="sm", elem_id="gate-raw")
            json = gr.JSON(label="/gate_steps", elem_id="gate-json")
    return Gate(box, model, block, channel, raw, json)


@one_line_errors
def show_gate(
    engine: Engine,
    cells: Cells,
    result: Result | None,
    image: str | bytes | None,
    cmap: str,
    opacity: float,
    shared_scale: bool,
    drill_stage: int,
    drill_open: bool,
    gate_open: bool,
    gate_model: str,
    gate_block: str | None,
    gate_channel: str | float | None,
) -> dict[Any, Any]:
    """Draw the picked gate; when the analysis ran with the panel closed, run the picked model once more on the
    same picture with the gate recorders on (the first pass kept nothing of the gates' insides)."""
    if result is None or not gate_open:
        return cells.unchanged([panel for panel in cells.panels if panel.section == SECTION.key])
    pick = GatePick.checked(gate_model, gate_block, gate_channel, engine.lineup)
    analysis = result.analysis
    model = analysis.models.get(pick.model_id)
    if model is not None and not model.gate_steps:
        picture, _ = decode_upload(image)
        gate_view.ensure_steps(analysis, pick.model_id, picture, engine.device, engine.weights_dir)
    values = (cmap, opacity, shared_scale, drill_stage, drill_open, gate_open, gate_model, gate_block)
    return results.redraw(cells, "gate", result, *values, gate_channel)


@one_line_errors
def gate_steps_api(
    engine: Engine, image: str | bytes | None, model: str, block: str, channel: float | None, weights: str, view: str
) -> dict:
    """The ``/gate_steps`` answer: one block's gate, step by step, on this picture (``gates.steps_json``)."""
    pick = GatePick.checked(model, block, channel, engine.lineup)
    asked = PageRequest(image, [pick.model_id], weights, "top1", "", "gradcam", 4, view)
    picture, _ = asked.picture()
    options = asked.options(engine)
    name = pick.block or block_name(4, STAGE_DEPTHS[-1] - 1)  # the API's default: the last block
    options = dataclasses.replace(options, gate_steps=(name,))
    analysis = analyze(picture, options, device=engine.device, weights_dir=engine.weights_dir)
    _, steps = gate_view.steps_for(analysis, dataclasses.replace(pick, block=name))
    return {"model": pick.model_id, "weights": analysis.weights_set, **gates.steps_json(steps, pick.channel)}


def wire(page: Page) -> None:
    """Opening the accordion or picking another gate draws it; the raw button answers /gate_steps."""
    parts, handle = page.parts, page.gate
    engine = parts.engine
    show = partial(show_gate, engine, parts.cells)
    inputs = [parts.state, page.inputs.image, *results.draw_inputs(page)]
    outputs = parts.cells.outputs(parts.panels(SECTION))
    track(handle.box).then(
        show, inputs, outputs, api_name="gate_opened", api_visibility="private", **parts.models_queue()
    )
    for name, trigger in (
        ("model", handle.model.input),
        ("block", handle.block.input),
        ("channel", handle.channel.submit),
        ("channel_blur", handle.channel.blur),
    ):
        trigger(
            show,
            inputs,
            outputs,
            api_name=f"gate_{name}",
            api_visibility="private",
            trigger_mode="always_last",
            **parts.models_queue(),
        )

    # the API's parameter names (no docstring: it would become the endpoint's description)
    def steps(image: Any, model: Any, block: Any, channel: Any, weights: Any, view: Any) -> Any:
        return gate_steps_api(engine, image, model, block, channel, weights, view)

    handle.raw.click(
        steps,
        [page.inputs.image, handle.model, handle.block, handle.channel, page.inputs.weights, page.inputs.view],
        [handle.json],
        api_name="gate_steps",
        **parts.models_queue(),
    )


SECTION = Section("gate", build, wire, title="page.gate", elem_id="gate", remembered=True)

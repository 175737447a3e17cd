"""Interventions: switch a gate off, hold it at its mean, shuffle it or keep its top k, and see what the model
answers then; or sweep every stage's gates at once. The pickers spell the CLI's spec, which can also be typed."""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from cbam_viz.analysis.intervene import Intervention
from cbam_viz.errors import CbamVizError
from cbam_viz.pipeline import analyze
from cbam_viz.ui.errors import escape, one_line_errors
from cbam_viz.ui.i18n import T
from cbam_viz.ui.panels import interventions as intervene_view
from cbam_viz.ui.panels.cells import Cells
from cbam_viz.ui.panels.registry import Display, redrawn_by
from cbam_viz.ui.results import Result
from cbam_viz.ui.sections.common import Box, Page, Parts, Section, accordion, explanation, panel_row, track
from cbam_viz.ui.sections.request import PageRequest, api_event, components
from cbam_viz.ui.server import engine as engine_module
from cbam_viz.ui.server.engine import Engine
from cbam_viz.vocab import STAGE_DEPTHS, STAGES, quote

LOGGER = logging.getLogger("cbam_viz.app")
GATES = ("channel", "spatial", "both")  # the page's words: the catalogue's ``gate.which.<gate>``


@dataclass
class Intervene:
    """The intervention's pickers, spec, buttons, result and accordion."""

    box: Box
    pickers: dict[str, Any]  # gate, where, stage, block, how, k: ``intervention_spec``'s parameters, in order
    spec: gr.Textbox
    spec_note: gr.Markdown  # why a typed spec cannot be shown on the pickers, or why the pickers make no spec
    sweep_spec: gr.State  # "sweep": what the Sweep button asks for
    run: gr.Button
    sweep: gr.Button
    state: gr.State  # the tab's intervened analysis (a ``ui.results.Result``)
    json: gr.JSON


def build(parts: Parts) -> Intervene:
    """The accordion: the pickers, the spec, the buttons, the panels and the raw JSON."""
    with accordion(SECTION) as box:
        explanation(T("explain.intervene"))
        pickers = _pickers()
        spec = gr.Textbox(
            intervene_view.DEFAULT_SPEC, label=T("page.iv_spec"), max_length=200, elem_id="intervene-spec"
        )
        spec_note = gr.Markdown(elem_id="intervene-spec-note")
        sweep_spec = gr.State("sweep")
        with gr.Row():
            run = gr.Button(T("page.iv_run"), variant="primary", elem_id="intervene-run")
            sweep = gr.Button(T("page.sweep_run"), elem_id="sweep-run")
        state = gr.State(None, time_to_live=engine_module.STATE_TTL_S)
        for panel in parts.panels(SECTION):
            panel_row(panel, parts.cells)
        with gr.Accordion(T("page.iv_raw_box"), open=False):
            json = gr.JSON(label="/intervene", elem_id="intervene-json")
    return Intervene(box, pickers, spec, spec_note, sweep_spec, run, sweep, state, json)


def _pickers() -> dict[str, Any]:
    pickers: dict[str, Any] = {}
    with gr.Row():
        pickers["gate"] = gr.Radio(
            [(T(f"gate.which.{gate}"), gate) for gate in GATES], value="channel", label=T("page.iv_gate")
        )
        pickers["where"] = gr.Radio(
            [(T(f"where.{where}"), where) for where in intervene_view.WHERE_CHOICES],
            value="stage",
            label=T("page.iv_where"),
        )
        pickers["stage"] = gr.Radio(list(STAGES), value=4, label=T("page.iv_stage"))
        pickers["block"] = gr.Slider(0, STAGE_DEPTHS[3] - 1, value=2, step=1, label=T("page.iv_block"))  # stage 4
    with gr.Row():
        pickers["how"] = gr.Radio(
            [(T(f"how.{how}"), how) for how in intervene_view.HOWS], value="one", label=T("page.iv_how")
        )
        pickers["k"] = gr.Slider(1, 512, value=16, step=1, label=T("page.iv_k"))
    return pickers


def intervention_spec(
    gate: str, where: str, stage: int, block: int | None, how: str, k: float | None
) -> tuple[Any, Any, str]:
    """The pickers' choice spelled as the CLI's intervention spec; -> (spec, the block picker, a note).

    The block picker offers only the chosen stage's blocks (a pick past the last one becomes the last); a pick that
    makes no spec leaves the spec box as it is and says why, in one line under it."""
    depth = STAGE_DEPTHS[int(stage) - 1] if stage in STAGES else max(STAGE_DEPTHS)
    index = min(int(block), depth - 1) if isinstance(block, int | float) else depth - 1
    slider = gr.update(maximum=depth - 1, value=index)
    try:
        return intervene_view.spec_from_controls(gate, where, stage, index, how, k), slider, ""
    except CbamVizError as error:
        return gr.skip(), slider, f"⚠️ {escape(str(error))}"


def pickers_from_spec(spec: str) -> tuple[Any, ...]:
    """A spec typed by hand, shown on the pickers (gate, where, stage, block, how, k) with an empty note; a spec
    that cannot be read leaves the pickers and says why, in one line."""
    try:
        parsed = Intervention.parse(spec)
    except CbamVizError as error:
        return (*(gr.skip() for _ in range(6)), f"⚠️ {escape(str(error))}")
    where, stage, block = "all", gr.skip(), gr.skip()
    if parsed.where != "all":
        stage_text, _, block_text = parsed.where.removeprefix("layer").partition(".")
        stage = int(stage_text)
        depth = STAGE_DEPTHS[stage - 1]
        where = "block" if block_text else "stage"
        block = gr.update(maximum=depth - 1, value=int(block_text) if block_text else depth - 1)
    k = parsed.k if parsed.k is not None else gr.skip()
    return parsed.gate, where, stage, block, parsed.how, k, ""


@one_line_errors  # shown as a toast: this section has no note of its own under the picture
def run_intervention(
    engine: Engine,
    asked: PageRequest,
    spec: str,
    request: gr.Request = None,  # noqa: RUF013 - Gradio injects it by this annotation
) -> tuple[Result, dict]:
    """The analysis again with one intervention (or "sweep") in place: -> (cached result, its JSON)."""
    picture, name = asked.picture()
    options = asked.options(engine)
    options = dataclasses.replace(options, interventions=(spec,) if isinstance(spec, str) else spec)
    started = time.perf_counter()
    analysis = analyze(picture, options, device=engine.device, weights_dir=engine.weights_dir)
    LOGGER.info("intervention %s on %s in %.2f s", quote(spec), ",".join(options.models), time.perf_counter() - started)
    return Result.keep(analysis, name), analysis.to_json()


@one_line_errors
def show_intervention(cells: Cells, result: Result | None, cmap: str, opacity: float) -> dict[Any, Any]:
    """The intervention's panels, or the sweep's, from the intervened analysis (the others keep theirs)."""
    if result is None:
        return cells.unchanged([panel for panel in cells.panels if panel.section == SECTION.key])
    display = Display.checked(cmap, opacity, False)
    analysis = result.analysis
    event = "sweep" if analysis.options.interventions == ("sweep",) else "intervene"
    return cells.draw(redrawn_by(event, panels=cells.panels), analysis, display, result.picture)


def show_event(page: Page) -> Any:
    """Draw the tab's intervention into its panels."""
    return partial(show_intervention, page.parts.cells)


def show_inputs(page: Page) -> list[Any]:
    """What ``show_event`` reads: the intervened analysis and the display controls."""
    return [page.intervene.state, page.inputs.cmap, page.inputs.opacity]


def outputs(page: Page) -> list[Any]:
    """Every cell of this section's panels."""
    return page.parts.cells.outputs(page.parts.panels(SECTION))


def wire(page: Page) -> None:
    """The pickers spell the spec; Intervene and Sweep run the analysis again, then draw it."""
    parts, handle = page.parts, page.intervene
    pickers = list(handle.pickers.values())
    for name, control in handle.pickers.items():
        (control.release if isinstance(control, gr.Slider) else control.input)(
            intervention_spec,
            pickers,
            [handle.spec, handle.pickers["block"], handle.spec_note],
            api_name=f"intervene_{name}",
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
    for name, typed in (("submit", handle.spec.submit), ("blur", handle.spec.blur)):
        typed(
            pickers_from_spec,
            [handle.spec],
            [*pickers, handle.spec_note],
            api_name=f"intervene_spec_{name}",
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
    run = api_event(partial(run_intervention, parts.engine), "spec", visitor=True)
    for name, button, spec in (("intervene", handle.run, handle.spec), ("sweep", handle.sweep, handle.sweep_spec)):
        button.click(
            run,
            [*components(page.inputs), spec],
            [handle.state, handle.json],
            api_name=name,
            show_progress_on=outputs(page)[:1],
            **(parts.expensive_queue() if name == "sweep" else parts.models_queue()),
        ).success(
            show_event(page),
            show_inputs(page),
            outputs(page),
            api_name=f"{name}_panels",
            api_visibility="private",
            **parts.render_queue(),
        )
    track(handle.box)


SECTION = Section("intervene", build, wire, title="page.intervene", elem_id="intervene", remembered=True, own_runs=True)

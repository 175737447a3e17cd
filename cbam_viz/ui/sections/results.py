"""The results under the picture: one row per panel of this section, and the analysis that fills them.

An analysis runs when the Analyse button is pressed or the picture changes; its panels are drawn by a second event
that reads the tab's cached analysis (``draw_inputs``), which display controls also trigger (``redraw``). The
order of ``draw_inputs`` is the order of ``redraw``'s parameters: both are here.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from cbam_viz.analysis.results import Analysis
from cbam_viz.checks import pointing as checks_pointing
from cbam_viz.i18n import explain
from cbam_viz.i18n.language import has, listed, said, sentences, text
from cbam_viz.pipeline import analyze
from cbam_viz.ui import gallery, live
from cbam_viz.ui.banner import banner_markdown
from cbam_viz.ui.errors import escape, one_line_errors, pop_message
from cbam_viz.ui.i18n import T
from cbam_viz.ui.panels import gate as gate_view
from cbam_viz.ui.panels import trust as trust_view
from cbam_viz.ui.panels.cells import Cells
from cbam_viz.ui.panels.gate import GatePick
from cbam_viz.ui.panels.registry import Display, Event, redrawn_by
from cbam_viz.ui.results import Result
from cbam_viz.ui.sections.common import Page, Parts, Section, explanation, panel_row
from cbam_viz.ui.sections.request import PageRequest, api_event, components
from cbam_viz.ui.server.engine import BIG_PICTURE_PIXELS, Engine, release_memory
from cbam_viz.ui.server.guard import EXPENSIVE_TWIN
from cbam_viz.vocab import all_blocks, method_label

LOGGER = logging.getLogger("cbam_viz.app")


@dataclass
class Results:
    """The status line and the method's note (the panels' cells are in ``Parts.cells``)."""

    status: gr.Markdown
    method_note: gr.Markdown | None  # under the row of the panel that asks for it (the CAM)


def build(parts: Parts) -> Results:
    """The status line, a row per panel of this section, and the faithfulness note."""
    status = gr.Markdown(elem_id="results-status")
    method_note = None
    for panel in parts.panels(SECTION):
        panel_row(panel, parts.cells)
        if panel.method_note:
            method_note = explanation(T("method.gradcam.note"), elem_id="method-note")
    with gr.Accordion(T("page.faithfulness_box"), open=False, elem_classes="explain"):
        explanation(T("explain.faithfulness"))
    return Results(status, method_note)


# ---------------------------------------------------------------------------------------------------- handlers


@one_line_errors(toast=False)
def run_analysis(
    engine: Engine,
    asked: PageRequest,
    faithfulness: bool = False,
    gate_open: bool = False,
    box: str | None = None,
    request: gr.Request = None,  # noqa: RUF013 - Gradio injects it by this annotation
) -> tuple[Result, dict, str]:
    """Decode the upload once and analyse it with the chosen models; -> (cached result, its JSON, the banner).

    With "Inside the gate" open, the same pass also records every gate's steps (``gate_open``)."""
    picture, name = asked.picture()
    options = asked.options(engine, faithfulness)
    options = dataclasses.replace(options, box=box, gate_steps=tuple(all_blocks()) if gate_open else ())
    started = time.perf_counter()
    with live.photo_turn():  # live frames step aside meanwhile
        analysis = analyze(picture, options, device=engine.device, weights_dir=engine.weights_dir)
    LOGGER.info(
        "analysed %dx%d with %s in %.2f s", *picture.size, ",".join(options.models), time.perf_counter() - started
    )
    if options.box is None and analysis.is_demo:  # a gallery shape: its true outline is known
        mask = trust_view.example_mask(picture, name, gallery.EXAMPLE_SEED, gallery.EXAMPLE_SIZE)
        if mask is not None:
            analysis.pointing = checks_pointing.mask_game(analysis, mask)
    if picture.width * picture.height > BIG_PICTURE_PIXELS:
        del picture
        release_memory()  # the decoded copy is gone: give its pages back, or the server stays that much larger
    return Result.keep(analysis, name), analysis.to_json(), analysis_banner(engine, analysis)


def analysis_if_image(engine: Engine, asked: PageRequest, **options: Any) -> tuple[Any, Any, Any]:
    """The same analysis, run when the picture changes; a cleared picture changes nothing (no error)."""
    if asked.image is None:
        return gr.skip(), gr.skip(), gr.skip()
    return run_analysis(engine, asked, **options)


def analysis_banner(engine: Engine, analysis: Analysis | None) -> str:
    """The banner for the weights that answered ``analysis`` (the start-up set's before any analysis)."""
    if analysis is None or analysis.weights is None:
        return banner_markdown(engine.choice, engine.device, engine.parameters, engine.weights_dir)
    parameters = engine.parameters if analysis.weights == engine.choice else {}
    return banner_markdown(analysis.weights, analysis.device, parameters, engine.weights_dir)


def image_notes(analysis: Analysis) -> str:
    """What decoding and preprocessing did, in plain words (rotation, transparency, what the models saw)."""
    width, height = analysis.original_size
    notes = escape(sentences(said(note) for note in (*analysis.notes, analysis.view.note)))
    return f"<small>{text('notes.picture', width=width, height=height, notes=notes)}</small>"


def demo_photo_note(analysis: Analysis) -> str:
    """Beside the results: demo models know 10 shapes only, which matters most when a photograph is analysed."""
    return text("status.demo_photo") if analysis.is_demo else ""


def results_status(result: Result) -> str:
    """The line above the results: which picture, which models, which method and stage."""
    analysis = result.analysis
    models = listed(result.title for result in analysis.models.values())
    method = method_label(analysis.method)
    picture = text(f"shape.{result.picture}") if has(f"shape.{result.picture}") else result.picture  # an example
    words = text("status.results", picture=escape(picture), models=models, method=method, stage=analysis.stage)
    return words + demo_photo_note(analysis)


def open_sections(opened: Mapping[str, bool]) -> set[str]:
    """The sections a redraw reaches: this one always, a closed accordion never (its cells stay as they were)."""
    return {SECTION.key} | {key for key, is_open in opened.items() if is_open}


def after_analysis(
    cells: Cells,
    result: Result | None,
    display: Display,
    opened: Mapping[str, bool],
    targets: Mapping[str, Any],
    own_runs: Iterable[str] = (),
) -> dict[Any, Any]:
    """Every panel an analysis redraws (an accordion's only while open), the notes, the method note, the status;
    the panels of runs of their own (interventions, checks) are cleared: they answered another analysis.

    ``targets`` names the components written besides the cells (those it lacks are left alone); ``own_runs`` are
    the keys of the sections whose panels show runs of their own."""
    if result is None:
        return cells.unchanged(cells.panels)
    analysis = result.analysis
    sections = open_sections(opened)
    panels = [panel for panel in redrawn_by("analysis", panels=cells.panels) if panel.section in sections]
    own_runs = set(own_runs)
    updates = cells.clear([panel for panel in cells.panels if panel.section in own_runs])
    updates.update(cells.draw(panels, analysis, display, result.picture))
    updates[targets["notes"]] = image_notes(analysis)
    if "method_note" in targets:
        updates[targets["method_note"]] = explain.method_note(analysis.method)
    updates[targets["status"]] = results_status(result)
    updates[targets["drill_stage"]] = analysis.stage
    if "gate_block" in targets:
        updates[targets["gate_block"]] = gate_view.default_block(analysis.stage)
    if "box_picture" in targets:
        box = analysis.options.box
        updates[targets["box_picture"]] = trust_view.picture_with_box(analysis, box)
        updates[targets["box"]] = trust_view.box_text(box) if box is not None else gr.skip()
        updates[targets["box_corner"]] = None
    return updates


def failure_outputs(cells: Cells, targets: Mapping[str, Any], request: gr.Request | None) -> dict[Any, Any]:
    """After a refused run: the message once, under the picture, and no stale results anywhere; except when the
    picture on screen was cleared from the server: its results stay, and the status line asks for it again."""
    message = pop_message(request)
    if message == text("error.upload_cleared"):
        return {targets["notes"]: f"⚠️ **{escape(message)}**", targets["status"]: text("status.upload_cleared")}
    updates = cells.clear(cells.panels)
    updates[targets["notes"]] = f"⚠️ **{escape(message)}**"
    updates[targets["status"]] = text("status.failed")
    updates[targets["state"]] = None
    return updates


def forget_picture(
    cells: Cells, targets: Mapping[str, Any], runs: Iterable[Any], analysing: bool = True
) -> dict[Any, Any]:
    """The picture changed: every result of the last one goes at once (cells, captions, checks, interventions, the
    export's JSON), and the tab forgets its analysis, so no later redraw or check draws it under the new picture.

    ``runs`` are the components that hold other runs of the last picture (its intervention's state, raw JSON);
    ``analysing``: a new picture is there (not a cleared input), and its analysis follows."""
    updates = cells.clear(cells.panels)
    updates[targets["status"]] = text("status.analysing") if analysing else ""
    updates[targets["state"]] = None
    if "box_picture" in targets:  # a box drawn on the last picture is not this one's
        updates[targets["box_picture"]] = None
        updates[targets["box_corner"]] = None
        updates[targets["box"]] = ""
    for component in runs:
        updates[component] = None
    return updates


@one_line_errors
def redraw(
    cells: Cells,
    event: Event,
    result: Result | None,
    cmap: str,
    opacity: float,
    shared_scale: bool,
    drill_stage: int,
    drill_open: bool,
    gate_open: bool = False,
    gate_model: str = "cbam_resnet50",
    gate_block: str | None = None,
    gate_channel: str | float | None = None,
) -> dict[Any, Any]:
    """The panels a display, drill-down or gate change redraws, from the cached analysis (no model runs).

    A "drill" or "gate" event redraws only that accordion's panels, and only while it is open."""
    if result is None:
        return cells.unchanged(redrawn_by(event, panels=cells.panels))
    gate = GatePick.checked(gate_model, gate_block, gate_channel, cells.lineup) if gate_open else None
    display = Display.checked(cmap, opacity, shared_scale, drill_stage, gate)
    sections = open_sections({"drill": drill_open, "gate": gate_open})
    panels = [panel for panel in redrawn_by(event, panels=cells.panels) if panel.section in sections]
    if event in ("drill", "gate"):
        panels = [panel for panel in panels if panel.section == event]
    if not panels:  # its accordion is closed
        return cells.unchanged(redrawn_by(event, panels=cells.panels))
    return cells.draw(panels, result.analysis, display, result.picture)


# ------------------------------------------------------------------------------------------------------ wiring


def draw_inputs(page: Page) -> list[Any]:
    """What a redraw reads after the tab's analysis, in the order of ``redraw``'s parameters after ``result``."""
    inputs, drill, gate = page.inputs, page.drill, page.gate
    return [
        inputs.cmap,
        inputs.opacity,
        inputs.shared_scale,
        drill.stage,
        drill.box.opened,
        gate.box.opened,
        gate.model,
        gate.block,
        gate.channel,
    ]


def targets(page: Page) -> dict[str, Any]:
    """The components an analysis writes besides the cells, by name (``after_analysis``, ``failure_outputs``)."""
    named = {
        "notes": page.inputs.notes,
        "method_note": page.results.method_note,
        "status": page.results.status,
        "drill_stage": page.drill.stage,
        "state": page.parts.state,
        "gate_block": page.gate.block,
        "box_picture": page.trust.picture,
        "box": page.trust.text,
        "box_corner": page.trust.corner,
    }
    return {name: component for name, component in named.items() if component is not None}


def show_inputs(page: Page) -> list[Any]:
    """What ``show_event`` reads: the tab's analysis, ``draw_inputs`` and the accordions' open states."""
    return [page.parts.state, *draw_inputs(page), *page.opened()]


def show_outputs(page: Page) -> list[Any]:
    """Every cell, and what an analysis writes besides them."""
    written = [component for name, component in targets(page).items() if name != "state"]
    return [*page.parts.cells.outputs(page.parts.cells.panels), *written]


def show_event(page: Page, new_analysis: bool = True) -> Any:
    """Draw the tab's analysis into every panel it redraws: after an analysis, whose panels of runs of their own
    (interventions, sweeps, checks) are cleared; or after a language switch (``new_analysis=False``), which keeps
    them (their own events redraw them in the new language)."""
    cells = page.parts.cells
    keys = [box.section.key for box in page.boxes()]
    named = targets(page)
    own_runs = [section.key for section in page.sections if section.own_runs] if new_analysis else []

    @one_line_errors
    def show(
        result: Any,
        cmap: str,
        opacity: float,
        shared_scale: bool,
        drill_stage: int,
        drill_open: bool,
        gate_open: bool,
        gate_model: str,
        gate_block: str,
        gate_channel: str | None,
        *opened: bool,
    ) -> dict:
        if result is None:
            return cells.unchanged(cells.panels)
        gate = GatePick.checked(gate_model, None, gate_channel, cells.lineup) if gate_open else None
        display = Display.checked(cmap, opacity, shared_scale, result.analysis.stage, gate)
        return after_analysis(cells, result, display, dict(zip(keys, opened, strict=True)), named, own_runs)

    return show


def wire(page: Page) -> None:
    """The analysis and the display controls' redraws."""
    _wire_analysis(page)
    _wire_display(page)


def _wire_analysis(page: Page) -> None:
    """The Analyse button and a new picture run the analysis, then draw it (or clear the page and say why)."""
    parts, inputs = page.parts, page.inputs
    cells = parts.cells
    named = targets(page)
    analysis_inputs = [*components(inputs), inputs.faithfulness, page.trust.text, page.gate.box.opened]
    analysis_outputs = [parts.state, page.export.result_json, page.header.banner]
    progress_on = cells.value_components(panel for panel in parts.panels(SECTION) if panel.progress)
    show = show_event(page)

    def failed(request: gr.Request) -> dict:
        return failure_outputs(cells, named, request)

    def after(event: Any, name: str) -> None:
        event.success(
            show,
            show_inputs(page),
            show_outputs(page),
            api_name=f"{name}_panels",
            api_visibility="private",
            show_progress_on=progress_on,
            **parts.render_queue(),
        )
        event.failure(
            failed,
            None,
            [*cells.outputs(cells.panels), named["notes"], named["status"], named["state"]],
            api_name=f"{name}_failed",
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )

    after_names = ("faithfulness", "box", "gate_open")
    analyse_now = api_event(partial(run_analysis, parts.engine), *after_names, visitor=True)
    analyse_changed = api_event(partial(analysis_if_image, parts.engine), *after_names, visitor=True)
    clicked = inputs.analyse.click(
        analyse_now,
        analysis_inputs,
        analysis_outputs,
        api_name="analyze",
        show_progress_on=progress_on,
        **parts.models_queue(),
    )
    after(clicked, "analyze")
    runs = [page.intervene.state, page.intervene.json, page.trust.sanity_json, page.trust.curves_json]
    runs += [page.export.result_json, page.export.figure_file, page.export.json_file]
    forgotten = [*cells.outputs(cells.panels), named["status"], named["state"], *runs]
    forgotten += [named[name] for name in ("box_picture", "box_corner", "box") if name in named]

    def forget(image: Any) -> dict:
        return forget_picture(cells, named, runs, image is not None)

    changed = inputs.image.change(  # first forget the last picture's results (and box), then analyse this one
        forget,
        [inputs.image],
        forgotten,
        api_name="forget_picture",
        api_visibility="private",
        queue=False,
        show_progress="hidden",
        trigger_mode="always_last",
    ).then(
        analyse_changed,
        analysis_inputs,
        analysis_outputs,
        api_name="analyze_on_change",
        api_visibility="private",
        show_progress_on=progress_on,
        trigger_mode="always_last",
        **parts.models_queue(),
    )
    after(changed, "analyze_on_change")
    # Their twins in the expensive group: the guard sends a Score-CAM or ROAD analysis here (``guard.EXPENSIVE_TWIN``),
    # so it never takes photo mode's slot; the page chains its panels on the event it asked for.
    twin_trigger = gr.Button(visible=False, elem_id="analyse-expensive")
    for name, handler in (("analyze", analyse_now), ("analyze_on_change", analyse_changed)):
        twin_trigger.click(
            handler,
            analysis_inputs,
            analysis_outputs,
            api_name=f"{name}{EXPENSIVE_TWIN}",
            api_visibility="private",
            show_progress_on=progress_on,
            **parts.expensive_queue(),
        )


def _wire_display(page: Page) -> None:
    """The display controls redraw what depends on them, from the cached analysis."""
    parts, inputs = page.parts, page.inputs
    outputs = parts.cells.outputs(redrawn_by("display", panels=parts.cells.panels))
    for name, trigger in (
        ("cmap", inputs.cmap.input),
        ("shared_scale", inputs.shared_scale.input),
        ("opacity", inputs.opacity.change),  # however it changed: dragged, typed with Enter, arrow keys
    ):
        trigger(
            partial(redraw, parts.cells, "display"),
            [parts.state, *draw_inputs(page)],
            outputs,
            api_name=f"redraw_{name}",
            api_visibility="private",
            show_progress="minimal",
            trigger_mode="always_last",  # a drag asks for many: the last one is drawn
            **parts.render_queue(),
        )


SECTION = Section("results", build, wire)

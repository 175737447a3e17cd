"""Can we trust the map? The checks: the pointing game on a drawn or typed box (or a gallery shape's own outline),
the randomisation checks, and deletion and insertion curves. Each check fills its panels from the tab's analysis."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from cbam_viz.analysis.options import checked_box
from cbam_viz.checks import curves as checks_curves
from cbam_viz.checks import randomisation as checks_randomisation
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import text
from cbam_viz.pipeline import pointing_on_box
from cbam_viz.ui.errors import one_line_errors
from cbam_viz.ui.i18n import T
from cbam_viz.ui.panels import trust as trust_view
from cbam_viz.ui.panels.cells import Cells
from cbam_viz.ui.panels.registry import IMAGE_HEIGHT, Display, redrawn_by
from cbam_viz.ui.results import Result
from cbam_viz.ui.sections.common import Box, Page, Parts, Section, accordion, explanation, panel_row, track
from cbam_viz.ui.sections.request import PageRequest, api_event, components
from cbam_viz.ui.server.engine import Engine
from cbam_viz.vocab import Lineup

SANITY_GPU_ONLY = frozenset({"scorecam"})  # one pass per channel, for every randomised layer: minutes on a CPU


@dataclass
class Trust:
    """The box picture and its controls, the checks' buttons, their raw JSON and the accordion."""

    box: Box
    picture: gr.Image  # the analysed picture, to draw the box on with two clicks
    text: gr.Textbox  # the box as four numbers
    score: gr.Button
    sanity: gr.Button
    curves: gr.Button
    corner: gr.State  # the first click's corner, until the second
    sanity_json: gr.JSON
    curves_json: gr.JSON


def build(parts: Parts) -> Trust:
    """The accordion: the picture to draw a box on, the checks' buttons, the panels and the raw JSON."""
    with accordion(SECTION) as box:
        explanation(T("explain.trust"))
        with gr.Row():
            with gr.Column(scale=3):
                picture = gr.Image(
                    interactive=False,
                    label=T("page.box_picture"),
                    height=IMAGE_HEIGHT,
                    buttons=[],
                    elem_id="box-picture",
                )
            with gr.Column(scale=2):
                typed = gr.Textbox("", max_lines=1, max_length=100, label=T("page.box"), elem_id="box")
                score = gr.Button(T("page.box_score"), size="sm", elem_id="box-score")
                sanity = gr.Button(T("page.sanity_run"), elem_id="sanity-run")
                curves = gr.Button(T("page.curves_run"), elem_id="curves-run")
        corner = gr.State(None)
        for panel in parts.panels(SECTION):
            panel_row(panel, parts.cells)
        with gr.Accordion(T("page.trust_raw_box"), open=False):
            sanity_json = gr.JSON(label="/sanity", elem_id="sanity-json")
            curves_json = gr.JSON(label="/deletion_insertion", elem_id="curves-json")
    return Trust(box, picture, typed, score, sanity, curves, corner, sanity_json, curves_json)


# ---------------------------------------------------------------------------------------------------- handlers


@one_line_errors
def run_sanity(
    engine: Engine, asked: PageRequest, result: Result | None = None, progress: gr.Progress | None = None
) -> dict:
    """Cascading and independent randomisation and the random logit, model by model (a progress step each); the
    report joins the tab's cached analysis when there is one. Score-CAM is refused on a CPU server (a per-call cost
    bound: ``SANITY_GPU_ONLY``), before the picture is even decoded."""
    options = asked.options(engine)
    if options.method in SANITY_GPU_ONLY and not engine.device.startswith("cuda"):
        raise CbamVizError(text("error.sanity_scorecam_cpu"))
    picture, _ = asked.picture()
    reports = {}
    for arch in _steps(progress, options.models, engine.lineup, "progress.sanity"):
        one = checks_randomisation.sanity_report(
            picture,
            options.with_(models=(arch,)),
            independent=True,
            device=engine.device,
            weights_dir=engine.weights_dir,
        )
        reports.update(one.models)
    report = checks_randomisation.SanityReport(options.method, options.stage, 0, one.weights_set, reports)
    _attach(result, sanity=report)
    return report.to_json()


@one_line_errors
def run_curves(
    engine: Engine, asked: PageRequest, result: Result | None = None, progress: gr.Progress | None = None
) -> dict:
    """Deletion and insertion at 20 steps for every model, each ranked by its own CAM, against a random order."""
    picture, _ = asked.picture()
    options = asked.options(engine)
    curves = {}
    for arch in _steps(progress, options.models, engine.lineup, "progress.curves"):
        one = checks_curves.curves_report(
            picture, options.with_(models=(arch,)), device=engine.device, weights_dir=engine.weights_dir
        )
        curves.update(one.models)
    report = checks_curves.CurvesReport(one.steps, one.seed, one.deletion_fill, one.blur, one.weights_set, curves)
    _attach(result, curves=report)
    return report.to_json()


def _steps(progress: gr.Progress | None, models: tuple[str, ...], lineup: Lineup, doing: str) -> Iterator[str]:
    """The models one by one, the progress bar saying which one is being checked."""
    for index, arch in enumerate(models):
        if progress is not None:
            progress((index, len(models)), desc=text(doing, model=lineup.title(arch)))
        yield arch


def _attach(result: Result | None, **reports: Any) -> None:
    """A check's report onto the tab's analysis, when the tab has one (an API call alone has none)."""
    if result is None:
        return
    try:
        analysis = result.analysis
    except CbamVizError:
        return  # dropped from the cache: the check's own answer still stands
    for name, report in reports.items():
        setattr(analysis, name, report)


@one_line_errors
def show_trust(cells: Cells, result: Result | None, cmap: str, opacity: float) -> dict[Any, Any]:
    """The checks' panels from the tab's analysis (what was run of them)."""
    panels = [panel for panel in cells.panels if panel.section == SECTION.key]
    if result is None:
        return cells.unchanged(panels)
    display = Display.checked(cmap, opacity, False)
    return cells.draw(panels, result.analysis, display, result.picture)


@one_line_errors
def box_clicked(
    cells: Cells,
    targets: Mapping[str, Any],
    result: Result | None,
    corner: list | None,
    cmap: str,
    opacity: float,
    selection: gr.SelectData,
) -> dict[Any, Any]:
    """A click on the picture: the first corner is marked; the second closes the box and scores it at once."""
    if result is None:
        raise CbamVizError(text("error.box_analyse_first"))
    analysis = result.analysis
    point = selection.index if isinstance(selection.index, list | tuple) else None
    if point is None or len(point) != 2:
        return {targets["box_picture"]: gr.skip()}
    if corner is None:
        return {
            targets["box_picture"]: trust_view.picture_with_box(analysis, None, point),
            targets["box_corner"]: list(point),
        }
    box = trust_view.box_text(trust_view.corners_to_box(corner, point, analysis))
    scored = score_box(cells, targets, result, box, cmap, opacity)
    return {**scored, targets["box"]: box, targets["box_corner"]: None}


@one_line_errors
def score_box(
    cells: Cells, targets: Mapping[str, Any], result: Result | None, box: str, cmap: str, opacity: float
) -> dict[Any, Any]:
    """The pointing game on the typed or drawn box, from the cached analysis (no model runs)."""
    if result is None:
        raise CbamVizError(text("error.box_mark_first"))
    checked = checked_box(box)
    if checked is None:
        raise CbamVizError(text("error.box_draw_first"))
    analysis = result.analysis
    analysis.pointing = pointing_on_box(analysis, checked)
    display = Display.checked(cmap, opacity, False)
    updates = cells.draw(redrawn_by("box", panels=cells.panels), analysis, display, result.picture)
    updates[targets["box_picture"]] = trust_view.picture_with_box(analysis, checked)
    return updates


# ------------------------------------------------------------------------------------------------------ wiring


def wire(page: Page) -> None:
    """Opening the accordion draws the checks run so far; each check runs, then draws; a box is scored."""
    parts, handle = page.parts, page.trust
    cells = parts.cells
    show = partial(show_trust, cells)
    shown = [parts.state, page.inputs.cmap, page.inputs.opacity]
    outputs = cells.outputs(parts.panels(SECTION))
    track(handle.box).then(
        show, shown, outputs, api_name="trust_opened", api_visibility="private", **parts.render_queue()
    )
    for name, run, check, button, output in (
        ("sanity", run_sanity, "sanity", handle.sanity, handle.sanity_json),
        ("deletion_insertion", run_curves, "curves", handle.curves, handle.curves_json),
    ):
        filled = redrawn_by(check, SECTION.key, cells.panels)
        button.click(
            api_event(partial(run, parts.engine), "result", progress=True),
            [*components(page.inputs), parts.state],
            [output],
            api_name=name,
            show_progress_on=cells.value_components(panel for panel in filled if panel.progress),  # where it shows
            **parts.expensive_queue(),
        ).success(show, shown, outputs, api_name=f"{name}_panels", api_visibility="private", **parts.render_queue())
    _wire_box(page)


def _wire_box(page: Page) -> None:
    """Two clicks on the picture, or four typed numbers, score the pointing game on that box."""
    parts, handle = page.parts, page.trust
    cells = parts.cells
    targets = {"box_picture": handle.picture, "box": handle.text, "box_corner": handle.corner}
    pointing = cells.outputs(redrawn_by("box", panels=cells.panels))

    def clicked(result: Any, corner: Any, cmap: str, opacity: float, selection: gr.SelectData) -> dict:
        return box_clicked(cells, targets, result, corner, cmap, opacity, selection)

    display = [page.inputs.cmap, page.inputs.opacity]
    handle.picture.select(
        clicked,
        [parts.state, handle.corner, *display],
        [handle.picture, handle.text, handle.corner, *pointing],
        api_name="box_click",
        api_visibility="private",
        show_progress="hidden",  # an overlay on the picture would catch the second click
        **parts.render_queue(),
    )
    for name, trigger in (("box_score", handle.score.click), ("box_submit", handle.text.submit)):
        trigger(
            partial(score_box, cells, targets),
            [parts.state, handle.text, *display],
            [handle.picture, *pointing],
            api_name=name,
            api_visibility="private",
            **parts.render_queue(),
        )


SECTION = Section("trust", build, wire, title="page.trust", elem_id="trust", remembered=True, own_runs=True)

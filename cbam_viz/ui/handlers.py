"""What each event does: analyse an upload, redraw panels from the cached analysis, export, and weights helpers.

Handlers return dicts keyed by component, built from ``panels.PANELS`` and the ``Cells`` the layout made, so no
ordering contract spans two files. Every handler that a visitor triggers sits behind ``errors.one_line_errors``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio import processing_utils
from gradio import utils as gradio_utils
from PIL import Image

from cbam_viz.analysis.options import AnalysisOptions, target_mode_value
from cbam_viz.analysis.results import Analysis
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n import explain, language
from cbam_viz.i18n.language import said, text
from cbam_viz.pipeline import analyze
from cbam_viz.render import export as render
from cbam_viz.ui import gallery, lesson, live
from cbam_viz.ui.banner import banner_markdown
from cbam_viz.ui.errors import escape, one_line_errors, pop_message
from cbam_viz.ui.export import EXPORTS, export_name
from cbam_viz.ui.i18n import class_choices, class_from_name
from cbam_viz.ui.panels import gate as gate_view
from cbam_viz.ui.panels import interventions as intervene_view
from cbam_viz.ui.panels import trust as trust_view
from cbam_viz.ui.panels.gate import GatePick
from cbam_viz.ui.panels.registry import PAGE, PANELS, Display, Event, Panel, Section, Shown, model_caption, redrawn_by
from cbam_viz.ui.results import Result
from cbam_viz.ui.server.engine import BIG_PICTURE_PIXELS, Engine, release_memory
from cbam_viz.ui.uploads import decode_upload
from cbam_viz.vocab import ARCH_ORDER, ARCH_TITLES, STAGE_DEPTHS, all_blocks, block_name, method_label, quote
from cbam_viz.weights.registry import SETS

LOGGER = logging.getLogger("cbam_viz.app")


@dataclass
class Cells:
    """The components the layout made for each panel: (panel key, arch or PAGE) -> caption and value."""

    captions: dict[tuple[str, str], Any] = field(default_factory=dict)
    values: dict[tuple[str, str], Any] = field(default_factory=dict)
    panels: tuple[Panel, ...] = PANELS

    def keys(self, panels: Iterable[Panel]) -> list[tuple[str, str]]:
        return [key for panel in panels for key in self._keys(panel)]

    def _keys(self, panel: Panel) -> list[tuple[str, str]]:
        return [(panel.key, PAGE)] if panel.page_wide else [(panel.key, arch) for arch in ARCH_ORDER]

    def outputs(self, panels: Iterable[Panel]) -> list[Any]:
        """Every component the given panels write to (captions and values)."""
        components = []
        for key in self.keys(panels):
            if key in self.captions:
                components.append(self.captions[key])
            components.append(self.values[key])
        return components

    def draw(
        self, panels: Iterable[Panel], analysis: Analysis, display: Display, picture: str = "image"
    ) -> dict[Any, Any]:
        """Updates for every cell of ``panels``: the model's value, its note, or hidden when not chosen. Images are
        saved under their download name, ``<picture>-<model>-<panel>-stage<S>.webp``."""
        updates: dict[Any, Any] = {}
        for panel in panels:
            shown = panel.render(analysis, display)
            for key in self._keys(panel):
                arch = key[1]
                chosen = panel.page_wide or arch in analysis.models
                value = self.values[key]
                caption = self.captions.get(key)
                if not chosen:
                    updates[value] = gr.update(visible=False)
                    if caption is not None:
                        updates[caption] = gr.update(visible=False)
                    continue
                cell: Shown | None = shown.get(arch)
                if caption is not None:
                    default = "" if panel.page_wide else model_caption(arch)
                    updates[caption] = gr.update(value=cell.caption if cell else default, visible=True)
                if cell is None:  # the model does not have this panel: its note stays
                    updates[value] = gr.update(visible=True)
                elif isinstance(cell.value, Image.Image) and isinstance(value, gr.Image):
                    name = export_name(picture, "webp", model=arch, panel=panel.key, stage=cell.stage)
                    updates[value] = gr.update(value=_named_image(cell.value, value, name), visible=True)
                else:
                    updates[value] = gr.update(value=cell.value, visible=True)
        return updates

    def unchanged(self, panels: Iterable[Panel]) -> dict[Any, Any]:
        """Updates that change nothing (Gradio reads an empty dict as one value, not as "no updates")."""
        key = self.keys(panels)[0]
        return {self.values[key]: gr.skip()}

    def clear(self, panels: Iterable[Panel]) -> dict[Any, Any]:
        """Empty every cell that shows results, so a failed run never leaves the previous picture's numbers."""
        updates: dict[Any, Any] = {}
        for panel in panels:
            for key in self._keys(panel):
                if panel.page_wide or panel.applies(key[1]):
                    updates[self.values[key]] = gr.update(value=None)
        return updates


def _named_image(image: Image.Image, component: gr.Image, name: str) -> str:
    """The image written into Gradio's own cache under ``name``: the browser's download button uses the file name
    (a PIL value would be saved as ``image.webp``). Gradio's cache is cleaned by ``delete_cache`` like any output."""
    stem = name.rsplit(".", 1)[0]
    return processing_utils.save_pil_to_cache(image, component.GRADIO_CACHE, name=stem, format="webp")


# --------------------------------------------------------------------------------------------------- analysis


def request_options(
    models: Any,
    weights: Any,
    target_mode: Any,
    target_class: Any,
    method: Any,
    stage: Any,
    view: Any,
    faithfulness: Any,
    engine: Engine,
) -> AnalysisOptions:
    """The page's or the API's raw values as one checked request (weights "auto" is the start-up set)."""
    return AnalysisOptions.from_request(
        models=[] if models is None else models,
        weights=engine.choice_for(weights),  # the start-up choice keeps its note (why auto chose it)
        target_mode=target_mode_value(target_mode),
        target_class=class_from_name(target_class),
        method=method,
        stage=stage,
        view=view,
        faithfulness=bool(faithfulness),
    )


@one_line_errors(toast=False)
def run_analysis(
    engine: Engine,
    image: str | bytes | None,
    models: list[str],
    weights: str,
    target_mode: str,
    target_class: str | None,
    method: str,
    stage: int,
    view: str,
    faithfulness: bool,
    gate_open: bool = False,
    box: str | None = None,
    request: gr.Request = None,  # noqa: RUF013 - Gradio injects it by this annotation
) -> tuple[Result, dict, str]:
    """Decode the upload once and analyse it with the chosen models; -> (cached result, its JSON, the banner).

    With "Inside the gate" open, the same pass also records every gate's steps (``gate_open``)."""
    picture, name = decode_upload(image)
    options = request_options(models, weights, target_mode, target_class, method, stage, view, faithfulness, engine)
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
            from cbam_viz.checks import pointing as checks_pointing

            analysis.pointing = checks_pointing.mask_game(analysis, mask)
    if picture.width * picture.height > BIG_PICTURE_PIXELS:
        del picture
        release_memory()  # the decoded copy is gone: give its pages back, or the server stays that much larger
    return Result.keep(analysis, name), analysis.to_json(), analysis_banner(engine, analysis)


def analysis_banner(engine: Engine, analysis: Analysis | None) -> str:
    """The banner for the weights that answered ``analysis`` (the start-up set's before any analysis)."""
    if analysis is None or analysis.weights is None:
        return banner_markdown(engine.choice, engine.device, engine.parameters, engine.weights_dir)
    parameters = engine.parameters if analysis.weights == engine.choice else {}
    return banner_markdown(analysis.weights, analysis.device, parameters, engine.weights_dir)


def analysis_if_image(engine: Engine, image: str | bytes | None, *options: Any) -> tuple[Any, Any, Any]:
    """The same analysis, run when the picture changes; a cleared picture changes nothing (no error).

    ``options`` are ``run_analysis``'s after the image, the visitor's request last.
    """
    if image is None:
        return gr.skip(), gr.skip(), gr.skip()
    return run_analysis(engine, image, *options)


def image_notes(analysis: Analysis) -> str:
    """What decoding and preprocessing did, in plain words (rotation, transparency, what the models saw)."""
    width, height = analysis.original_size
    notes = " ".join(escape(said(note)) for note in (*analysis.notes, analysis.view.note))
    return f"<small>{text('notes.picture', width=width, height=height, notes=notes)}</small>"


def demo_photo_note(analysis: Analysis) -> str:
    """Beside the results: demo models know 10 shapes only, which matters most when a photograph is analysed."""
    return text("status.demo_photo") if analysis.is_demo else ""


def results_status(result: Result) -> str:
    analysis = result.analysis
    models = ", ".join(ARCH_TITLES[arch] for arch in analysis.models)
    method = method_label_of(analysis)
    words = text("status.results", picture=escape(result.picture), models=models, method=method, stage=analysis.stage)
    return words + demo_photo_note(analysis)


def method_label_of(analysis: Analysis) -> str:
    return method_label(analysis.method)


def page_outputs_after_analysis(
    cells: Cells,
    result: Result | None,
    display: Display,
    drill_open: bool,
    page: dict[str, Any],
    gate_open: bool = False,
    trust_open: bool = False,
) -> dict[Any, Any]:
    """Every panel an analysis redraws (the drill-down, the gate and the checks only while open), the notes, the
    method note, the status; the interventions and checks of the previous analysis are cleared (another run's)."""
    if result is None:
        return cells.unchanged(cells.panels)
    sections = open_sections(drill_open, gate_open, trust_open)
    panels = [panel for panel in redrawn_by("analysis", panels=cells.panels) if panel.section in sections]
    updates = cells.clear([panel for panel in cells.panels if panel.section in ("intervene", "trust")])
    updates.update(cells.draw(panels, result.analysis, display, result.picture))
    updates[page["notes"]] = image_notes(result.analysis)
    updates[page["method_note"]] = explain.method_note(result.analysis.method)
    updates[page["status"]] = results_status(result)
    updates[page["drill_stage"]] = result.analysis.stage
    if "gate_block" in page:
        updates[page["gate_block"]] = gate_view.default_block(result.analysis.stage)
    if "box_picture" in page:
        analysis = result.analysis
        box = analysis.options.box
        updates[page["box_picture"]] = trust_view.picture_with_box(analysis, box)
        updates[page["box"]] = trust_view.box_text(box) if box is not None else gr.skip()
        updates[page["box_corner"]] = None
    return updates


def open_sections(drill_open: bool, gate_open: bool, trust_open: bool = False) -> set[Section]:
    """The sections a redraw reaches: the main rows always, a closed accordion never (its cells stay as they were)."""
    opened = {"drill": drill_open, "gate": gate_open, "trust": trust_open}
    return {"main"} | {section for section, is_open in opened.items() if is_open}


def failure_outputs(cells: Cells, page: dict[str, Any], request: gr.Request | None) -> dict[Any, Any]:
    """After a refused run: the message once, under the picture, and no stale results anywhere."""
    message = pop_message(request)
    updates = cells.clear(cells.panels)
    updates[page["notes"]] = f"⚠️ **{escape(message)}**"
    updates[page["status"]] = text("status.failed")
    updates[page["state"]] = None
    return updates


def stale_status(result: Result | None) -> Any:
    """An analysis setting changed: the shown results no longer match the controls."""
    return gr.skip() if result is None else text("status.stale")


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
    """The panels a display, drill-down or gate change redraws, from the cached analysis (no model runs)."""
    if result is None:
        return cells.unchanged(redrawn_by(event, panels=cells.panels))
    gate = GatePick.checked(gate_model, gate_block, gate_channel) if gate_open else None
    display = Display.checked(cmap, opacity, shared_scale, drill_stage, gate)
    sections = open_sections(drill_open, gate_open)
    panels = [panel for panel in redrawn_by(event, panels=cells.panels) if panel.section in sections]
    if event in ("drill", "gate"):
        panels = [panel for panel in panels if panel.section == event]
    if not panels:  # its accordion is closed
        return cells.unchanged(redrawn_by(event, panels=cells.panels))
    return cells.draw(panels, result.analysis, display, result.picture)


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
        return cells.unchanged([panel for panel in cells.panels if panel.section == "gate"])
    pick = GatePick.checked(gate_model, gate_block, gate_channel)
    analysis = result.analysis
    model = analysis.models.get(pick.arch)
    if model is not None and not model.gate_steps:
        picture, _ = decode_upload(image)
        gate_view.ensure_steps(analysis, pick.arch, picture, engine.device, engine.weights_dir)
    values = (cmap, opacity, shared_scale, drill_stage, drill_open, gate_open, gate_model, gate_block)
    return redraw(cells, "gate", result, *values, gate_channel)


@one_line_errors
def gate_steps_api(
    engine: Engine, image: str | bytes | None, model: str, block: str, channel: float | None, weights: str, view: str
) -> dict:
    """The ``/gate_steps`` answer: one block's gate, step by step, on this picture (``gates.steps_json``)."""
    from cbam_viz.analysis import gates

    pick = GatePick.checked(model, block, channel)
    picture, _ = decode_upload(image)
    options = request_options([pick.arch], weights, "top1", "", "gradcam", 4, view, False, engine)
    name = pick.block or block_name(4, STAGE_DEPTHS[-1] - 1)  # the API's default: the last block
    options = dataclasses.replace(options, gate_steps=(name,))
    analysis = analyze(picture, options, device=engine.device, weights_dir=engine.weights_dir)
    _, steps = gate_view.steps_for(analysis, dataclasses.replace(pick, block=name))
    return {"model": pick.arch, "weights": analysis.weights_set, **gates.steps_json(steps, pick.channel)}


# ------------------------------------------------------------------------------------------- interventions


@one_line_errors
def intervention_spec(gate: str, where: str, stage: int, block: int | None, how: str, k: float | None) -> str:
    return intervene_view.spec_from_controls(gate, where, stage, block, how, k)


@one_line_errors  # shown as a toast: this section has no note of its own under the picture
def run_intervention(
    engine: Engine,
    image: str | bytes | None,
    models: list[str],
    weights: str,
    target_mode: str,
    target_class: str | None,
    method: str,
    stage: int,
    view: str,
    spec: str,
    request: gr.Request = None,  # noqa: RUF013 - Gradio injects it by this annotation
) -> tuple[Result, dict]:
    """The analysis again with one intervention (or "sweep") in place: -> (cached result, its JSON)."""
    picture, name = decode_upload(image)
    options = request_options(models, weights, target_mode, target_class, method, stage, view, False, engine)
    options = dataclasses.replace(options, interventions=(spec,) if isinstance(spec, str) else spec)
    started = time.perf_counter()
    analysis = analyze(picture, options, device=engine.device, weights_dir=engine.weights_dir)
    LOGGER.info("intervention %s on %s in %.2f s", quote(spec), ",".join(options.models), time.perf_counter() - started)
    return Result.keep(analysis, name), analysis.to_json()


@one_line_errors
def show_intervention(cells: Cells, result: Result | None, cmap: str, opacity: float) -> dict[Any, Any]:
    """The intervention panels from the intervened analysis (the sweep's cells keep theirs, and the other way round)."""
    if result is None:
        return cells.unchanged([panel for panel in cells.panels if panel.section == "intervene"])
    display = Display.checked(cmap, opacity, False)
    analysis = result.analysis
    swept = analysis.options.interventions == ("sweep",)
    panels = [panel for panel in cells.panels if panel.section == "intervene" and (panel.key == "sweep") == swept]
    return cells.draw(panels, analysis, display, result.picture)


# ------------------------------------------------------------------------------------------------ language


def page_words(engine: Engine, words: dict[str, Any], result: Result | None, weights: str) -> dict[Any, Any]:
    """What the server writes into the page outside the panels, in the visitor's language: on page load and when the
    language switch changes (the panels follow through the usual redraw). ``words`` names the components."""
    try:
        demo = engine.resolve(weights) == "demo"
        categories = engine.categories(weights)
    except CbamVizError:
        demo, categories = engine.is_demo, engine.categories(engine.weights)
    try:
        analysis = result.analysis if result is not None else None
    except CbamVizError:
        analysis = None  # dropped from the cache: the start-up banner
    return {
        words["language"]: language.current(),
        words["banner"]: analysis_banner(engine, analysis),
        words["examples"]: gr.update(value=gallery.items_for(engine.examples, demo), label=gallery.title_for(demo)),
        words["weights"]: gr.update(choices=engine.weight_choices()),
        words["target_class"]: gr.update(choices=class_choices(categories, demo)),
        words["credits"]: gallery.credits_markdown(engine.examples),
    }


# ------------------------------------------------------------------------------------------------ lessons


def apply_lesson(
    engine: Engine,
    controls: dict[str, Any],
    accordions: dict[str, Any],
    opened: dict[str, Any],
    current: Any,
    request: gr.Request | None,
) -> dict[Any, Any]:
    """The page opened on a lesson link: its settings into the controls (the example then analyses itself).

    The picture input always gets a value (the example, or what it holds): a property update, ``gr.skip()``
    included, would make Gradio rebuild it for the session without ``uploads.image_input``'s preprocessing."""
    query = dict(getattr(request, "query_params", None) or {})
    gradios = {"__theme", "view", "presenter", "lang"}  # Gradio's own (?view=api), and the page's own switches
    query = {key: value for key, value in query.items() if key not in gradios}
    if not query:
        return {controls["image"]: current}
    examples = lesson.example_names(gallery.items_for(engine.examples, engine.is_demo))
    choices = [value for _, value in engine.weight_choices()]
    found = lesson.read(query, examples, choices)
    updates: dict[Any, Any] = {controls["note"]: f"<small>{escape(found.note())}</small>" if found.ignored else ""}
    updates[controls["image"]] = current
    for key, name in (("models", "models"), ("weights", "weights"), ("method", "method"), ("stage", "stage")):
        if getattr(found, key) is not None:
            updates[controls[name]] = getattr(found, key)
    for key, name in (("sees", "view"), ("cmap", "cmap"), ("opacity", "opacity"), ("shared", "shared")):
        if getattr(found, key) is not None:
            updates[controls[name]] = getattr(found, key)
    if found.target is not None:
        updates[controls["target_mode"]] = "shared"
        updates[controls["target_class"]] = gr.update(value=found.target, interactive=True)
    if found.panel is not None:
        updates[accordions[found.panel]] = gr.update(open=True)
        updates[opened[found.panel]] = True
    if found.example is not None:
        updates[controls["image"]] = found.example  # set last: its change event analyses with the settings above
    return updates


def lesson_link(
    engine: Engine,
    image: str | None,
    models: list[str],
    weights: str,
    method: str,
    stage: int,
    target_mode: str,
    target_class: str | None,
    view: str,
    cmap: str,
    opacity: float,
    shared: bool,
    opened: dict[str, bool],
) -> tuple[str, str]:
    """The query of the view on the page (``lesson.write``) and what the link leaves out."""
    examples = lesson.example_names(gallery.items_for(engine.examples, engine.is_demo))
    target = target_class if target_mode_value(target_mode) == "shared" else None
    panel = next((name for name, is_open in opened.items() if is_open), None)
    query, note = lesson.write(
        picture=image if isinstance(image, str) else None,
        examples=examples,
        models=list(models or []),
        weights=str(weights or "auto"),
        method=str(method),
        stage=int(stage),
        target=target,
        view=str(view),
        cmap=str(cmap),
        opacity=float(opacity),
        shared=bool(shared),
        panel=panel,
        language=language.current(),
    )
    return query, f"<small>{escape(note)}</small>" if note else ""


# ---------------------------------------------------------------------------------------------------- live


@one_line_errors
def live_step(
    engine: Engine,
    slots: live.LiveSlots,
    frame: Any,
    models: list[str],
    weights: str,
    stage: int,
    cmap: str,
    opacity: float,
    clock: live.FrameClock | None,
    request: gr.Request = None,  # noqa: RUF013 - Gradio injects it by this annotation
) -> tuple[Any, Any, Any, Any]:
    """One webcam frame: -> (the row of overlays, the status line, the tab's frame clock, the frame for Freeze).

    A frame that arrives while photo mode analyses is skipped; one beyond the live slots gets the busy line."""
    if frame is None:
        return gr.skip(), gr.skip(), clock, gr.skip()
    session = getattr(request, "session_hash", None) or "local"
    if not slots.hold(session):
        return gr.skip(), text("live.busy", count=slots.capacity), clock, gr.skip()
    if live.photo_waiting():
        return gr.skip(), gr.skip(), clock, gr.skip()
    options = request_options(models, weights, "top1", "", "gradcam", stage, "whole", False, engine)
    display = Display.checked(cmap, opacity, False)
    shown = live.analyse_frame(
        frame,
        options.models,
        options.weights,
        stage=options.stage,
        cmap=display.cmap,
        alpha=display.opacity,
        device=engine.device,
        weights_dir=engine.weights_dir,
    )
    clock = clock or live.FrameClock()
    return shown.image, live.status_line(shown, clock.tick()), clock, shown.picture


def live_stopped(slots: live.LiveSlots, request: gr.Request = None) -> None:  # noqa: RUF013
    """The webcam stopped: its slot is free at once (not only after the lease runs out)."""
    slots.release(getattr(request, "session_hash", None) or "local")


@one_line_errors
def freeze_frame(picture: Image.Image | None) -> str:
    """The last live frame into the picture input, which analyses it in full (every panel below)."""
    if picture is None:
        raise CbamVizError(text("error.freeze_first"))
    cache = gradio_utils.get_upload_folder()  # where Gradio keeps its files (every component's GRADIO_CACHE)
    return processing_utils.save_pil_to_cache(picture, cache, name="webcam-frame", format="png")


# --------------------------------------------------------------------------------------------- trust checks


def _checked_request(engine: Engine, image: Any, values: tuple) -> tuple[Image.Image, AnalysisOptions]:
    picture, _ = decode_upload(image)
    return picture, request_options(*values, False, engine)


@one_line_errors
def run_sanity(
    engine: Engine,
    result: Result | None,
    image: str | bytes | None,
    *values: Any,
    progress: gr.Progress | None = None,
) -> dict:
    """Cascading and independent randomisation and the random logit, model by model (a progress step each); the
    report joins the tab's cached analysis when there is one. ``values``: ``request_options``' up to the view."""
    from cbam_viz.checks import randomisation as checks_randomisation

    picture, options = _checked_request(engine, image, values)
    reports = {}
    for arch in _steps(progress, options.models, "progress.sanity"):
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
    engine: Engine,
    result: Result | None,
    image: str | bytes | None,
    *values: Any,
    progress: gr.Progress | None = None,
) -> dict:
    """Deletion and insertion at 20 steps for every model, each ranked by its own CAM, against a random order."""
    from cbam_viz.checks import curves as checks_curves

    picture, options = _checked_request(engine, image, values)
    curves = {}
    for arch in _steps(progress, options.models, "progress.curves"):
        one = checks_curves.curves_report(
            picture, options.with_(models=(arch,)), device=engine.device, weights_dir=engine.weights_dir
        )
        curves.update(one.models)
    report = checks_curves.CurvesReport(one.steps, one.seed, one.deletion_fill, one.blur, one.weights_set, curves)
    _attach(result, curves=report)
    return report.to_json()


def _steps(progress: gr.Progress | None, models: tuple[str, ...], doing: str) -> Iterator[str]:
    """The models one by one, the progress bar saying which one is being checked."""
    for index, arch in enumerate(models):
        if progress is not None:
            progress((index, len(models)), desc=text(doing, model=ARCH_TITLES[arch]))
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
    if result is None:
        return cells.unchanged([panel for panel in cells.panels if panel.section == "trust"])
    display = Display.checked(cmap, opacity, False)
    panels = [panel for panel in cells.panels if panel.section == "trust"]
    return cells.draw(panels, result.analysis, display, result.picture)


@one_line_errors
def box_clicked(
    cells: Cells,
    page: dict[str, Any],
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
        return {page["box_picture"]: gr.skip()}
    if corner is None:
        return {
            page["box_picture"]: trust_view.picture_with_box(analysis, None, point),
            page["box_corner"]: list(point),
        }
    box = trust_view.box_text(trust_view.corners_to_box(corner, point, analysis))
    return {**score_box(cells, page, result, box, cmap, opacity), page["box"]: box, page["box_corner"]: None}


@one_line_errors
def score_box(
    cells: Cells, page: dict[str, Any], result: Result | None, box: str, cmap: str, opacity: float
) -> dict[Any, Any]:
    """The pointing game on the typed or drawn box, from the cached analysis (no model runs)."""
    from cbam_viz.analysis.options import checked_box
    from cbam_viz.pipeline import pointing_on_box

    if result is None:
        raise CbamVizError(text("error.box_mark_first"))
    checked = checked_box(box)
    if checked is None:
        raise CbamVizError(text("error.box_draw_first"))
    analysis = result.analysis
    analysis.pointing = pointing_on_box(analysis, checked)
    display = Display.checked(cmap, opacity, False)
    pointing = [panel for panel in cells.panels if panel.key == "pointing"]
    updates = cells.draw(pointing, analysis, display, result.picture)
    updates[page["box_picture"]] = trust_view.picture_with_box(analysis, checked)
    return updates


# ------------------------------------------------------------------------------------------------------ export


@one_line_errors
def export_files(result: Result | None, cmap: str, opacity: float, shared_scale: bool) -> tuple[str, str]:
    """The comparison figure (PNG) and the analysis (JSON), named after the picture."""
    if result is None:
        raise CbamVizError(text("error.export_first"))
    display = Display.checked(cmap, opacity, shared_scale)
    analysis = result.analysis
    figure = render.comparison_figure(
        analysis, cmap=display.cmap, alpha=display.opacity, shared_scale=display.shared_scale
    )
    document = json.dumps(analysis.to_json(), indent=2, ensure_ascii=False).encode("utf-8")
    return (
        EXPORTS.write(export_name(result.picture, "png"), figure),
        EXPORTS.write(export_name(result.picture, "json"), document),
    )


# ----------------------------------------------------------------------------------------------------- weights


def target_choices(engine: Engine, weights: str) -> tuple[Any, str, Any]:
    """The class list and gallery of the chosen set and a status line; a set that is not here says how to get it."""
    try:
        categories = engine.categories(weights)
    except CbamVizError as error:
        return gr.update(choices=[], value=""), f"⚠️ {escape(str(error))}", gr.skip()
    set_name = engine.resolve(weights)
    demo = set_name == "demo"
    items = gallery.items_for(engine.examples, demo)
    return (
        gr.update(choices=class_choices(categories, demo), value=""),
        text("weights.using", name=set_name, count=len(categories)),
        gr.update(value=items, label=gallery.title_for(demo)),
    )


def target_mode_changed(mode: str) -> Any:
    """The class picker is only used when one class is explained in every model."""
    try:
        return gr.update(interactive=target_mode_value(mode) == "shared")
    except CbamVizError:
        return gr.skip()


_DOWNLOADING = threading.Lock()


@one_line_errors
def download_weights(
    engine: Engine,
    weights: str,
    progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 - Gradio's idiom
) -> tuple[str, Any, Any]:
    """Download a named ImageNet set with a progress bar (only on servers started with --allow-download)."""
    from cbam_viz.weights.download import download_set

    requested = weights or "auto"
    if weights in (None, "", "auto"):
        weights = "paper"
    if weights == "demo":
        raise CbamVizError(text("error.demo_not_downloaded"))
    if weights not in SETS:
        raise CbamVizError(text("error.unknown_set", name=quote(weights), choices=", ".join(SETS)))
    if not _DOWNLOADING.acquire(blocking=False):
        raise CbamVizError(text("error.download_running"))
    try:
        progress(0, desc=text("progress.download", name=weights))
        files = download_set(weights, engine.weights_dir, progress=True)
    finally:
        _DOWNLOADING.release()
    engine.refresh_examples()
    status = text("weights.downloaded", count=len(files), name=weights)
    demo = engine.resolve(requested) == "demo"  # the gallery follows the set the dropdown now means
    items = gallery.items_for(engine.examples, demo)
    return status, gr.update(choices=engine.weight_choices()), gr.update(value=items, label=gallery.title_for(demo))

"""The picture and the controls: the input with its examples, and what an analysis is asked for (the request's
settings), how it is drawn (the display options) and with which weights.

Its events keep the controls honest: a changed setting marks the results as stale, the class picker follows the
target mode, the weights choice brings its classes and gallery, and an operator may allow a download of weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from cbam_viz.analysis.options import target_mode_value
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import listed, text
from cbam_viz.ui import gallery
from cbam_viz.ui.errors import escape, one_line_errors
from cbam_viz.ui.i18n import T, class_choices
from cbam_viz.ui.panels.registry import COLORMAPS
from cbam_viz.ui.results import Result
from cbam_viz.ui.sections.common import Page, Parts, Section, explanation
from cbam_viz.ui.sections.request import FIELDS
from cbam_viz.ui.server.engine import Engine
from cbam_viz.ui.uploads import image_input, uploaded_source
from cbam_viz.vocab import CAM_METHODS, STAGES, TARGET_MODES, VIEWS, quote
from cbam_viz.weights import download
from cbam_viz.weights.registry import SETS


@dataclass
class Inputs:
    """The picture, the request's settings (named as ``request.PageRequest``'s fields), display and weights."""

    image: gr.Image
    analyse: gr.Button
    notes: gr.Markdown  # under the picture: what decoding did, or why a run was refused
    examples: gr.Gallery
    models: gr.CheckboxGroup
    target_mode: gr.Radio
    target_class: gr.Dropdown
    method: gr.Dropdown
    stage: gr.Radio
    view: gr.Radio
    faithfulness: gr.Checkbox
    cmap: gr.Dropdown
    opacity: gr.Slider
    shared_scale: gr.Checkbox
    weights: gr.Dropdown
    weights_status: gr.Markdown
    download: gr.Button | None  # only on servers started with --allow-download


def build(parts: Parts) -> Inputs:
    """The picture column and the controls column."""
    engine = parts.engine
    with gr.Row():
        with gr.Column(scale=5, elem_id="picture-column"):
            picture = _picture(engine)
        with gr.Column(scale=6, elem_id="controls"):
            controls = _controls(engine)
    return Inputs(**picture, **controls)


def _picture(engine: Engine) -> dict[str, Any]:
    image = image_input(
        sources=["upload", "webcam", "clipboard"],
        type="filepath",
        image_mode=None,
        label=T("page.picture"),
        height=320,
        elem_id="input-image",
    )
    gr.Markdown(T("page.upload_limit"), elem_id="upload-limit")  # the README says it in the same words
    analyse = gr.Button(T("page.analyse"), variant="primary", elem_id="analyse")
    notes = gr.Markdown(elem_id="image-notes")
    examples = gr.Gallery(
        gallery.items_for(engine.examples, engine.is_demo),
        label=gallery.title_for(engine.is_demo),
        columns=5,
        height="auto",
        allow_preview=False,
        elem_id="examples",
    )
    return {"image": image, "analyse": analyse, "notes": notes, "examples": examples}


def _controls(engine: Engine) -> dict[str, Any]:
    made: dict[str, Any] = {}
    lineup = engine.lineup  # at most MAX_SHOWN of them at once (a card may list more)
    made["models"] = gr.CheckboxGroup(
        [(spec.title, spec.id) for spec in lineup.models],
        value=list(lineup.default_ids),
        label=T("page.models"),
        elem_id="models",
    )
    with gr.Row():
        made["target_mode"] = gr.Radio(
            [(T(f"target_mode.{mode}"), mode) for mode in TARGET_MODES], value="top1", label=T("page.explain")
        )
        made["target_class"] = gr.Dropdown(
            list(engine.categories(engine.weights)),
            value="",
            filterable=True,
            allow_custom_value=True,
            interactive=False,
            label=T("page.target_class"),
        )
    with gr.Row():
        made["method"] = gr.Dropdown(
            [(method.label, name) for name, method in CAM_METHODS.items()], value="gradcam", label=T("page.method")
        )
        made["stage"] = gr.Radio(list(STAGES), value=4, label=T("page.stage"), elem_id="analysis-stage")
    with gr.Row():
        made["view"] = gr.Radio([(T(f"view.{view}"), view) for view in VIEWS], value="whole", label=T("page.view"))
        made["faithfulness"] = gr.Checkbox(False, label=T("page.faithfulness"))
    with gr.Accordion(T("page.display"), open=True):
        with gr.Row():
            made["cmap"] = gr.Dropdown(list(COLORMAPS), value="jet", label=T("page.cmap"))
            made["opacity"] = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label=T("page.opacity"))
        # a row of its own: squeezed beside the slider it was cut to nothing between 768 and 1000 px
        made["shared_scale"] = gr.Checkbox(False, label=T("page.shared_scale"), elem_id="shared-scale")
        with gr.Accordion(T("page.what_do_these_change"), open=False):
            explanation(T("explain.display"))
            explanation(T("explain.view"))
    with gr.Accordion(T("page.weights"), open=False):
        made["weights"] = gr.Dropdown(engine.weight_choices(), value="auto", label=T("page.weights_set"))
        made["weights_status"] = gr.Markdown(T("explain.weights_sources") if engine.is_demo else "")
        made["download"] = (
            gr.Button(T("page.download"), size="sm", elem_id="download")
            if engine.allow_download and engine.card is None  # a card's server serves its models only
            else None
        )
    return made


# ---------------------------------------------------------------------------------------------------- handlers


def pick_example(engine: Engine, weights: str, current: Any, selection: gr.SelectData) -> Any:
    """A click on a gallery thumbnail puts that picture into the input (which starts its analysis).

    The input only ever gets a value, never ``gr.skip()`` or another property update: Gradio answers those by
    building the component anew for the session, and the rebuilt one would lose ``uploads.image_input``'s own
    preprocessing (Pillow would then open uploads before the app's decoder sees them)."""
    demo = engine.resolve(weights) == "demo"
    items = gallery.items_for(engine.examples, demo)
    index = selection.index if isinstance(selection.index, int) else 0
    if not 0 <= index < len(items):
        return current
    return items[index][0]


def stale_status(result: Result | None, image: Any = None) -> Any:
    """An analysis setting changed: the shown results no longer match the controls; and when the server has already
    cleared the upload on screen, the page says so now, before the click that would need it."""
    if upload_expired(image):
        return text("status.upload_cleared")
    return gr.skip() if result is None else text("status.stale")


def upload_expired(image: Any) -> bool:
    """The picture input holds an upload whose file the server's cache has removed (``engine.DELETE_CACHE``)."""
    try:
        source = uploaded_source(image)
    except CbamVizError:
        return False
    return isinstance(source, str) and not Path(source).is_file()


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


@one_line_errors
def download_weights(
    engine: Engine,
    weights: str,
    progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 - Gradio's idiom
) -> tuple[str, Any, Any]:
    """Download a named ImageNet set with a progress bar (only on servers started with --allow-download)."""
    requested = weights or "auto"
    if weights in (None, "", "auto"):
        weights = "paper"
    if weights == "demo":
        raise CbamVizError(text("error.demo_not_downloaded"))
    if weights not in SETS:
        raise CbamVizError(text("error.unknown_set", name=quote(weights), choices=listed(SETS)))
    if download.download_running():  # its own lock refuses a second download; this says so in the page's words
        raise CbamVizError(text("error.download_running"))
    progress(0, desc=text("progress.download", name=weights))
    files = download.download_set(weights, engine.weights_dir, progress=True)
    engine.refresh_examples()
    status = text("weights.downloaded", count=len(files), name=weights)
    demo = engine.resolve(requested) == "demo"  # the gallery follows the set the dropdown now means
    items = gallery.items_for(engine.examples, demo)
    return status, gr.update(choices=engine.weight_choices()), gr.update(value=items, label=gallery.title_for(demo))


# ------------------------------------------------------------------------------------------------------ wiring


def wire(page: Page) -> None:
    parts, inputs = page.parts, page.inputs
    engine = parts.engine

    def pick(weights: str, current: Any, selection: gr.SelectData) -> Any:
        return pick_example(engine, weights, current, selection)

    inputs.examples.select(
        pick,
        [inputs.weights, inputs.image],
        [inputs.image],
        api_name="pick_example",
        api_visibility="private",
        queue=False,
    )
    settings = [name for name in FIELDS if name != "image"] + ["faithfulness"]
    for name in settings:
        getattr(inputs, name).input(
            stale_status,
            [parts.state, inputs.image],
            [page.results.status],
            api_name=f"stale_{name}",
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
    inputs.target_mode.change(
        target_mode_changed,
        [inputs.target_mode],
        [inputs.target_class],
        api_name="target_mode",
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )
    inputs.weights.input(
        partial(target_choices, engine),
        [inputs.weights],
        [inputs.target_class, inputs.weights_status, inputs.examples],
        api_name="weights_choice",
        api_visibility="private",
        **parts.models_queue(),
    )
    if inputs.download is not None:
        inputs.download.click(
            partial(download_weights, engine),
            [inputs.weights],
            [inputs.weights_status, inputs.weights, inputs.examples],
            api_name="download_weights",
            concurrency_id="download",
            concurrency_limit=1,
            queue=False,
        )


SECTION = Section("inputs", build, wire, presenter_hides=("controls", "upload-limit"))

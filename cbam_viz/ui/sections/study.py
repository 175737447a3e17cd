"""The Study section: a study of a whole dataset (``python -m cbam_viz study``), opened from the server's list.

Closed by default. Opening it, or picking another study, shows the study's summary table with intervals and its
accuracy and localisation figures, the paired comparisons in sentences, the gates-off sweep over the dataset (a study
made with ``--sweep``), the attention atlas's two figures, the per-class table and the pictures where two models
disagree most;
a click on one of those puts it into the picture input with the study's settings, which analyses it like an example.
A visitor picks a study from the list the server was started with (``ui.study.Shelf``); nothing here starts a study
or reads a folder off that list.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import text, using
from cbam_viz.ui import study as studies
from cbam_viz.ui.errors import one_line_errors
from cbam_viz.ui.i18n import T
from cbam_viz.ui.sections.common import Box, Page, Parts, Section, accordion, explained
from cbam_viz.ui.server import tempdir
from cbam_viz.ui.server.engine import Engine

SCROLL_JS = "() => { const input = document.querySelector('#input-image'); if (input) input.scrollIntoView(); }"


@dataclass
class StudyView:
    """The study picker and what a study shows; ``ids``: the image ids of the gallery's pictures, in order."""

    box: Box
    choice: gr.Dropdown
    about: gr.Markdown
    table: gr.Markdown
    words: gr.Markdown
    atlas: gr.Image
    per_class: gr.Markdown
    pair: gr.Dropdown
    gallery: gr.Gallery
    ids: gr.State
    sweep: gr.Markdown
    accuracy: gr.Image
    localisation: gr.Image
    excitation: gr.Image


def build(parts: Parts) -> StudyView:
    """The closed accordion: the picker, the tables and figures, the sentences, the sweep, the atlas and the gallery of
    disagreements."""
    shelf = parts.studies
    with accordion(SECTION) as box:
        explained("study")
        choice = gr.Dropdown(shelf.choices(), value=shelf.first(), label=T("page.study_choice"), elem_id="study-choice")
        about = gr.Markdown(elem_id="study-about")
        table = gr.Markdown(elem_id="study-table")
        with gr.Row():
            accuracy = _figure("page.study_accuracy", "study-accuracy")
            localisation = _figure("page.study_localisation", "study-localisation")
        words = gr.Markdown(elem_id="study-words")
        sweep = gr.Markdown(elem_id="study-sweep")
        with gr.Row():
            atlas = _figure("page.study_atlas", "study-atlas")
            excitation = _figure("page.study_excitation", "study-excitation")
        per_class = gr.Markdown(elem_id="study-per-class")
        pair = gr.Dropdown([], label=T("page.study_pair"), elem_id="study-pair")
        gallery = gr.Gallery(
            label=T("page.study_gallery"), columns=6, height="auto", allow_preview=False, elem_id="study-gallery"
        )
        ids = gr.State([])
    return StudyView(
        box,
        choice,
        about,
        table,
        words,
        atlas,
        per_class,
        pair,
        gallery,
        ids,
        sweep,
        accuracy,
        localisation,
        excitation,
    )


def _figure(label: str, elem_id: str) -> gr.Image:
    return gr.Image(label=T(label), interactive=False, format="png", elem_id=elem_id)


# ---------------------------------------------------------------------------------------------------- handlers


@one_line_errors
def show_study(shelf: studies.Shelf, key: Any) -> tuple[Any, ...]:
    """Everything the section shows of the study listed under ``key`` (one-line error for any other key): the about
    line, the table, the sentences, the atlas, the per-class table, the pair, the gallery and its ids, then the sweep
    and the accuracy, localisation and excitation figures."""
    if not shelf.folders:
        return text("study.none"), "", "", None, "", gr.update(choices=[], value=None), [], [], "", None, None, None
    study = shelf.open(key)
    atlas = study.summary.get("atlas") or {}
    drawn = studies.figures(study)
    pairs = studies.pair_choices(study)
    pair = pairs[0][1] if pairs else None
    items, ids = studies.gallery_items(study, pair, tempdir.current())
    about = studies.about(study) + ("" if items else "\n\n" + text("study.no_disagreement"))
    return (
        about,
        studies.summary_table(study),
        studies.all_comparison_words(study),
        drawn.get("atlas"),
        (text("study.no_atlas") + "\n\n" if not atlas else "") + studies.per_class_table(study),
        gr.update(choices=pairs, value=pair),
        items,
        ids,
        studies.sweep_table(study),
        drawn.get("accuracy"),
        drawn.get("localisation"),
        drawn.get("excitation"),
    )


@one_line_errors
def show_pair(shelf: studies.Shelf, key: Any, pair: Any) -> tuple[Any, list[str]]:
    """The gallery of another pair's disagreements."""
    items, ids = studies.gallery_items(shelf.open(key), pair, tempdir.current())
    return items, ids


@one_line_errors
def open_picture(
    engine: Engine, shelf: studies.Shelf, key: Any, ids: Any, index: Any, targets: dict[str, Any]
) -> dict[Any, Any]:
    """The clicked disagreement into the picture input, with the study's models, method, stage, view and weights;
    the input's change event then analyses it. ``targets`` names the controls written."""
    study = shelf.open(key)
    if not isinstance(ids, list) or not isinstance(index, int) or not 0 <= index < len(ids):
        raise CbamVizError(text("error.study_picture", reason=f"no picture {index!r} in the gallery"))
    path = studies.picture_file(study, ids[index], tempdir.current())
    settings = studies.analysis_settings(study, [value for _, value in engine.weight_choices()], engine.lineup.ids)
    updates = {targets[name]: value for name, value in settings.items()}
    updates[targets["image"]] = path  # a value, never a property update (see inputs.pick_example)
    return updates


# ------------------------------------------------------------------------------------------------------ wiring


def wire(page: Page) -> None:
    """Opening the section or picking a study shows it; another pair redraws the gallery; a click analyses."""
    parts, handle, inputs = page.parts, page.study, page.inputs
    shelf = parts.studies
    shown = [
        handle.about,
        handle.table,
        handle.words,
        handle.atlas,
        handle.per_class,
        handle.pair,
        handle.gallery,
        handle.ids,
        handle.sweep,
        handle.accuracy,
        handle.localisation,
        handle.excitation,
    ]
    show = partial(show_study, shelf)
    opened = gr.State(False)  # this tab's: a language switch redraws the section only while it is open
    handle.box.accordion.expand(
        lambda: True, None, opened, api_name="study_opened", api_visibility="private", queue=False
    ).then(show, [handle.choice], shown, api_name="study_open", api_visibility="private", **parts.render_queue())
    handle.box.accordion.collapse(
        lambda: False, None, opened, api_name="study_closed", api_visibility="private", queue=False
    )

    def switched(language_: Any, is_open: bool, key: Any) -> tuple[Any, ...]:
        if not is_open:
            return tuple(gr.skip() for _ in shown)
        with using(str(language_)):
            return show(key)

    page.header.language.input(
        switched,
        [page.header.language, opened, handle.choice],
        shown,
        api_name="study_language",
        api_visibility="private",
        **parts.render_queue(),
    )
    handle.choice.input(
        show, [handle.choice], shown, api_name="study", api_visibility="private", **parts.render_queue()
    )
    handle.pair.input(
        partial(show_pair, shelf),
        [handle.choice, handle.pair],
        [handle.gallery, handle.ids],
        api_name="study_pair",
        api_visibility="private",
        **parts.render_queue(),
    )
    targets = {name: getattr(inputs, name) for name in ("image", "models", "method", "stage", "view", "weights")}

    def pick(key: Any, ids: Any, selection: gr.SelectData) -> dict:
        index = selection.index if isinstance(selection.index, int) else None
        return open_picture(parts.engine, shelf, key, ids, index, targets)

    handle.gallery.select(
        pick,
        [handle.choice, handle.ids],
        list(targets.values()),
        api_name="study_pick",
        api_visibility="private",
        **parts.render_queue(),
    ).success(None, None, None, js=SCROLL_JS, api_name="study_pick_scroll", api_visibility="private", queue=False)


SECTION = Section("study", build, wire, title="page.study_box", elem_id="study")

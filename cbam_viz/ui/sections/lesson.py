"""Lesson links: a button that puts the view on the page into a link (and the clipboard), and the page opening on
such a link. What a link may say, and how it is checked, is ``ui.lesson``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gradio as gr

from cbam_viz.analysis.options import target_mode_value
from cbam_viz.i18n import language
from cbam_viz.i18n.language import LANGUAGES
from cbam_viz.ui import gallery, lesson
from cbam_viz.ui.errors import escape
from cbam_viz.ui.i18n import T
from cbam_viz.ui.sections.common import Box, Page, Parts, Section
from cbam_viz.ui.sections.request import FIELDS, PageRequest, components
from cbam_viz.ui.server.engine import Engine

COPY_JS = (
    "(query) => { const link = location.origin + location.pathname + query; "
    "navigator.clipboard && navigator.clipboard.writeText(link).catch(() => {}); return link; }"
)


@dataclass
class LessonLink:
    """The link button, the link and its note."""

    button: gr.Button
    link: gr.Textbox
    note: gr.Markdown  # what a link left out, or what the page could not read of one
    example: gr.Textbox  # hidden: the example a link names; its change puts the picture into the input


def build(parts: Parts) -> LessonLink:
    """The link row and its note."""
    with gr.Row():
        button = gr.Button(T("page.copy_link"), size="sm", scale=0, elem_id="lesson-link-button")
        link = gr.Textbox(
            show_label=False,
            placeholder=T("page.link_placeholder"),
            buttons=["copy"],
            max_lines=1,
            scale=4,
            elem_id="lesson-link",
        )
    note = gr.Markdown(elem_id="lesson-note")
    example = gr.Textbox(visible=False, elem_id="lesson-example")
    return LessonLink(button, link, note, example)


def lesson_in(engine: Engine, request: gr.Request | None, openable: list[str]) -> lesson.Lesson | None:
    """The lesson the page's URL holds (None: the query names no setting); an unknown ``?lang=`` is noted too."""
    query = dict(getattr(request, "query_params", None) or {})
    gradios = {"__theme", "view", "presenter"}  # Gradio's own (?view=api), and the page's own view switch
    query = {key: value for key, value in query.items() if key not in gradios}  # ``lang`` stays: read notes a bad one
    if set(query) <= {lesson.LANGUAGE_KEY} and query.get(lesson.LANGUAGE_KEY, "en") in LANGUAGES:
        return None  # nothing but a known language: no lesson
    examples = _examples(engine)
    choices = [value for _, value in engine.weight_choices()]
    return lesson.read(query, examples, choices, openable, engine.lineup.ids)


def apply_lesson(
    engine: Engine,
    controls: Mapping[str, Any],
    boxes: Mapping[str, Box],
    request: gr.Request | None,
) -> dict[Any, Any]:
    """The page opened on a lesson link: its settings into the controls, and the example's name into the hidden
    ``example`` box, whose change then puts the picture into the input (``lesson_example``), which analyses it.

    The picture input is never among this event's outputs: a page load whose answer arrives after a quick visitor's
    upload would otherwise put back the empty picture the load started with (and any update of it, ``gr.skip()``
    included, makes Gradio rebuild it for the session without ``uploads.image_input``'s preprocessing). The example
    comes in a second event for a second reason: a control's new value (the class picker's, above all) reaches the
    browser's state a moment after the event's outputs are applied, so a change event fired by the same update
    would read the old value. ``controls`` maps a ``Lesson`` field (``sees``: the view) to its control, ``note`` to
    the note, ``example`` to the hidden box."""
    found = lesson_in(engine, request, list(boxes))
    if found is None:
        return {controls["note"]: ""}
    updates: dict[Any, Any] = {controls["note"]: f"<small>{escape(found.note())}</small>" if found.ignored else ""}
    for key in ("models", "weights", "method", "stage", "sees", "cmap", "opacity", "shared"):
        if getattr(found, key) is not None:
            updates[controls[key]] = getattr(found, key)
    if found.target is not None:
        updates[controls["target_mode"]] = "shared"
        updates[controls["target_class"]] = gr.update(value=found.target, interactive=True)
    if found.panel is not None:
        updates[boxes[found.panel].accordion] = gr.update(open=True)
        updates[boxes[found.panel].opened] = True
    if found.example is not None:
        updates[controls["example"]] = next(name for name, path in _examples(engine).items() if path == found.example)
    return updates


def _examples(engine: Engine) -> dict[str, str]:
    """The gallery's pictures by the names links use."""
    return lesson.example_names(gallery.items_for(engine.examples, engine.is_demo))


def lesson_example(engine: Engine, name: str) -> str | None:
    """The path of the example a link named (the hidden box changed to its name), for the picture input."""
    return _examples(engine).get(name)


def lesson_link(
    engine: Engine,
    asked: PageRequest,
    cmap: str,
    opacity: float,
    shared: bool,
    opened: Mapping[str, bool],
) -> tuple[str, str]:
    """The query of the view on the page (``lesson.write``) and what the link leaves out."""
    examples = _examples(engine)
    target = asked.target_class if target_mode_value(asked.target_mode) == "shared" else None
    panel = next((name for name, is_open in opened.items() if is_open), None)
    query, note = lesson.write(
        picture=asked.image if isinstance(asked.image, str) else None,
        examples=examples,
        models=list(asked.models or []),
        weights=str(asked.weights or "auto"),
        method=str(asked.method),
        stage=int(asked.stage),
        target=target,
        view=str(asked.view),
        cmap=str(cmap),
        opacity=float(opacity),
        shared=bool(shared),
        panel=panel,
        openable=list(opened),
        language=language.current(),
        model_ids=engine.lineup.ids,
    )
    return query, f"<small>{escape(note)}</small>" if note else ""


def wire(page: Page) -> None:
    """A page opened on a link takes its settings; the button writes the link of the view on the page."""
    parts, inputs, handle = page.parts, page.inputs, page.lesson
    engine = parts.engine
    controls = {name: getattr(inputs, name) for name in ("models", "weights", "method", "stage")}
    controls |= {"target_mode": inputs.target_mode, "target_class": inputs.target_class, "sees": inputs.view}
    controls |= {"cmap": inputs.cmap, "opacity": inputs.opacity, "shared": inputs.shared_scale, "note": handle.note}
    boxes = {box.section.key: box for box in page.boxes()}

    controls["example"] = handle.example  # never the picture input itself: see ``apply_lesson``

    def on_load(request: gr.Request) -> dict:
        return apply_lesson(engine, controls, boxes, request)

    def example(name: str) -> str | None:
        return lesson_example(engine, name)

    outputs = [*controls.values(), *page.opened()]
    outputs += [box.accordion for box in boxes.values()]
    parts.blocks.load(on_load, None, outputs, api_name="lesson", api_visibility="private", queue=False)
    handle.example.change(
        example, [handle.example], [inputs.image], api_name="lesson_example", api_visibility="private", queue=False
    )

    def link_to_view(*values: Any) -> tuple[str, str]:  # the request's fields, cmap, opacity, shared, the boxes
        asked, display, opened = values[: len(FIELDS)], values[len(FIELDS) : len(FIELDS) + 3], values[len(FIELDS) + 3 :]
        return lesson_link(engine, PageRequest(*asked), *display, dict(zip(boxes, opened, strict=True)))

    handle.button.click(
        link_to_view,
        [*components(inputs), inputs.cmap, inputs.opacity, inputs.shared_scale, *page.opened()],
        [handle.link, handle.note],
        api_name="lesson_link",
        api_visibility="private",
        queue=False,
    ).then(
        None,
        [handle.link],
        [handle.link],
        js=COPY_JS,
        api_name="lesson_link_full",
        api_visibility="private",
        queue=False,
    )


SECTION = Section("lesson", build, wire, presenter_hides=("lesson-link-button", "lesson-link"))

"""Lesson links: every setting that defines a view, in the page's URL query, and back.

``?example=star&models=se_resnet50,cbam_resnet50&weights=demo&method=gradcam++&stage=3&target=star&sees=whole
&cmap=viridis&opacity=0.6&shared=1&panel=gate`` (``sees``: what the models see, whole or crop; Gradio keeps
``view`` for its own ``?view=api``) opens the page on that view: the example picture (by name, from
the gallery of the weights in use), the models, the weights set, the CAM method, the stage, the class explained in
every model, what the models see, the display options and the accordion to open. Uploaded pictures are never put in
a link (the link says so). A value this page does not know is left out with a one-line note; nothing of the query
reaches a handler unchecked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from cbam_viz.i18n.language import LANGUAGES, listed, text
from cbam_viz.ui.panels.registry import COLORMAPS
from cbam_viz.vocab import ARCH_ORDER, CAM_METHODS, MAX_CLASS_NAME, MAX_SHOWN, STAGES, VIEWS, quote

KEYS = ("example", "models", "weights", "method", "stage", "target", "sees", "cmap", "opacity", "shared", "panel")
LANGUAGE_KEY = "lang"
MAX_QUERY = 2000  # characters of a query this page reads at all


@dataclass
class Lesson:
    """The checked settings of a link (None: not in the link, the page's default stays)."""

    example: str | None = None  # a gallery picture's path
    models: list[str] | None = None
    weights: str | None = None
    method: str | None = None
    stage: int | None = None
    target: str | None = None
    sees: str | None = None
    cmap: str | None = None
    opacity: float | None = None
    shared: bool | None = None
    panel: str | None = None
    ignored: list[str] = field(default_factory=list)  # one short note per value left out

    def note(self) -> str:
        """What the link left out, in one line of Markdown whose values are plain text (never a link, never emphasis);
        empty when it left nothing out."""
        if not self.ignored:
            return ""
        return text("lesson.left_out", parts=plain_markdown("; ".join(self.ignored)))


_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:])")


def plain_markdown(words: str) -> str:
    """``words`` as Markdown that renders them as they are: ASCII punctuation backslash-escaped, so ``[x](http://…)``
    is no link and a bare ``http://`` no autolink (``<``, ``>`` and ``&`` are left to the page's HTML escaping)."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", words)


def read(
    query: Mapping[str, str],
    examples: Mapping[str, str],
    weight_choices: list[str],
    openable: Sequence[str],
    model_ids: Sequence[str] = ARCH_ORDER,
) -> Lesson:
    """The lesson in a URL query; ``examples`` maps a gallery picture's name to its path, ``openable`` names the
    accordions a link may open (the page's remembered sections), ``model_ids`` the page's models (a card's ids)."""
    lesson = Lesson()
    if sum(len(key) + len(str(value)) for key, value in query.items()) > MAX_QUERY:
        lesson.ignored.append(text("lesson.too_long", limit=MAX_QUERY))
        return lesson
    for key, value in query.items():
        if key == LANGUAGE_KEY:  # the page's own switch, read by the front end: only an unknown value is noted
            if str(value) not in LANGUAGES:
                lesson.ignored.append(
                    f"{key}={quote(str(value), 40)} ({text('lesson.choose', choices=listed(LANGUAGES, 'or'))})"
                )
            continue
        if key not in KEYS:
            lesson.ignored.append(text("lesson.not_a_setting", key=quote(key, 30)))
            continue
        try:
            setattr(lesson, key, _checked(key, str(value), examples, weight_choices, openable, model_ids))
        except ValueError as error:
            lesson.ignored.append(f"{key}={quote(str(value), 40)} ({error})")
    return lesson


def _checked(
    key: str,
    value: str,
    examples: Mapping[str, str],
    weight_choices: list[str],
    openable: Sequence[str],
    model_ids: Sequence[str],
) -> object:
    value = value.strip()
    if key == "example":
        if value not in examples:
            raise ValueError(text("lesson.examples_are", names=listed(sorted(examples))))
        return examples[value]
    if key == "models":
        models = [name for name in model_ids if name in value.split(",")]
        if not models or len(models) != len(set(value.split(","))) or len(models) > MAX_SHOWN:
            raise ValueError(text("lesson.models_are", names=listed(model_ids)))
        return models
    if key == "weights":
        return _one_of(value, weight_choices)
    if key == "method":
        return _one_of(value, list(CAM_METHODS))
    if key == "stage":
        return int(_one_of(value, [str(stage) for stage in STAGES]))
    if key == "target":
        if len(value) > MAX_CLASS_NAME or not value:
            raise ValueError(text("lesson.class_length", limit=MAX_CLASS_NAME))
        return value
    if key == "sees":
        return _one_of(value, list(VIEWS))
    if key == "cmap":
        return _one_of(value, list(COLORMAPS))
    if key == "opacity":
        number = float(value)
        if not math.isfinite(number) or not 0 <= number <= 1:
            raise ValueError(text("lesson.opacity"))
        return number
    if key == "shared":
        return _one_of(value, ["0", "1"]) == "1"
    return _one_of(value, list(openable))


def _one_of(value: str, choices: list[str]) -> str:
    if value not in choices:
        raise ValueError(text("lesson.choose", choices=listed(choices, "or")))
    return value


def write(
    *,
    picture: str | None,
    examples: Mapping[str, str],
    models: list[str],
    weights: str,
    method: str,
    stage: int,
    target: str | None,
    view: str,
    cmap: str,
    opacity: float,
    shared: bool,
    panel: str | None,
    openable: Sequence[str] = (),
    language: str | None = None,
    model_ids: Sequence[str] = ARCH_ORDER,
) -> tuple[str, str]:
    """The query of the page's view, and a note: uploads stay out of links (an example is named instead). The page's
    language travels too (``lang``), so the class reads the lesson in the teacher's language."""
    values: dict[str, str] = {}
    note = ""
    example = example_name(picture, examples)
    if example is not None:
        values["example"] = example
    elif picture:
        note = text("lesson.no_upload")
    values |= {"models": ",".join(name for name in model_ids if name in models), "weights": weights}
    values |= {"method": method, "stage": str(stage), "sees": view, "cmap": cmap, "opacity": f"{opacity:g}"}
    values["shared"] = "1" if shared else "0"
    if target:
        values["target"] = target
    if panel in openable:
        values["panel"] = panel
    if language in LANGUAGES:
        values["lang"] = language
    return "?" + urlencode(values), note


def example_name(picture: str | None, examples: Mapping[str, str]) -> str | None:
    """The gallery name of the picture in the input, when it is an example's very file (same bytes)."""
    if not picture or not Path(picture).is_file():
        return None
    data = Path(picture).read_bytes()
    for name, path in examples.items():
        candidate = Path(path)
        if candidate.is_file() and candidate.stat().st_size == len(data) and candidate.read_bytes() == data:
            return name
    return None


def example_names(items: list[tuple[str, str]]) -> dict[str, str]:
    """Gallery items (path, caption) by the name a link uses: the file's stem (``star``, ``chelsea``)."""
    return {Path(path).stem: path for path, _ in items}

"""The app's own words in English and Chinese: one catalogue file per language, one language per visitor's event.

``cbam_viz/locales/<language>.json`` maps a key to a text; ``{name}`` marks a value filled in at run time and the
equations are the same in every language. Static page text (labels, headings, explanations) goes to the browser as
``gr.I18n`` keys, which the page translates itself. Text made while an event runs (banners, captions, notes,
errors) is looked up here with ``text(key)``, in the language the event runs under (``using``): the web app sets it
from the visitor's choice, the CLI and the API's JSON stay English.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path

LANGUAGES: tuple[str, ...] = ("en", "zh")  # the first is the default and the fallback
LANGUAGE_NAMES = {"en": "English", "zh": "中文"}  # each in its own language: what a switch shows
LOCALES = Path(__file__).with_name("locales")

_CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("cbam_viz_language", default=None)
_visitor: Callable[[], str | None] = lambda: None  # noqa: E731 - the web app's "whose event is this?"


@cache
def catalogue(language: str) -> dict[str, str]:
    """Every text of one language, key -> text (read once)."""
    if language not in LANGUAGES:
        raise KeyError(f"no catalogue for language {language!r}")
    return json.loads((LOCALES / f"{language}.json").read_text(encoding="utf-8"))


def current() -> str:
    """The language of the code running now: ``using``'s, else the visitor's of the web event, else English."""
    return _CURRENT.get() or _visitor() or LANGUAGES[0]


def follow_visitors(visitor_language: Callable[[], str | None]) -> None:
    """Let the web app say which language the event running now is for (None: not in an event)."""
    global _visitor
    _visitor = visitor_language


@contextlib.contextmanager
def using(language: str) -> Iterator[str]:
    """Run the body in ``language`` (an unknown one is the default); the previous language is restored after."""
    token = _CURRENT.set(language if language in LANGUAGES else LANGUAGES[0])
    try:
        yield current()
    finally:
        _CURRENT.reset(token)


def text(key: str, /, **values: object) -> str:
    """The text of ``key`` in the current language, its ``{name}`` fields filled in; English where a translation is
    missing. An unknown key is a programming error and raises ``KeyError``."""
    template = catalogue(current()).get(key)
    if template is None:
        template = catalogue(LANGUAGES[0])[key]
    return template.format(**values) if values else template


class Message(str):
    """A catalogue text made before anyone's language is known (at start-up, in the library, for the console).

    It is the English text wherever a plain string goes (the console, logs, the API's JSON, ``==`` in tests), and
    keeps its key and values so that ``said`` can word it again in the language of the visitor who reads it.
    """

    key: str
    values: dict[str, object]

    def __new__(cls, key: str, /, **values: object) -> Message:
        with using(LANGUAGES[0]):
            english = text(key, **values)
        message = super().__new__(cls, english)
        message.key, message.values = key, values
        return message

    def __reduce__(self) -> tuple[Callable[..., Message], tuple[str, dict[str, object]]]:
        return _rebuilt, (self.key, self.values)


def _rebuilt(key: str, values: dict[str, object]) -> Message:
    return Message(key, **values)


def said(words: str) -> str:
    """``words`` in the current language when they are a ``Message`` (and its ``Message`` values), else unchanged."""
    if not isinstance(words, Message):
        return words
    values = {name: said(value) if isinstance(value, str) else value for name, value in words.values.items()}
    return text(words.key, **values)


def has(key: str) -> bool:
    """Whether the catalogues have ``key`` (looked up in the first language's, English)."""
    return key in catalogue(LANGUAGES[0])


def listed(items: Iterable[object], conjunction: str | None = None) -> str:
    """Items as one phrase in the current language, ``a, b or c`` or ``a、b或c``; with no conjunction (``"and"``,
    ``"or"``) only separated, as a list of names is."""
    words = [str(item) for item in items]
    separator = text("list.separator")
    if conjunction is None or len(words) < 2:
        return separator.join(words)
    return separator.join(words[:-1]) + text(f"list.{conjunction}") + words[-1]


def sentence(words: str) -> str:
    """A note as a sentence of the current language: its first letter capital, its end stop added if missing."""
    words = words.strip()
    if not words:
        return words
    words = words[0].upper() + words[1:]
    return words if words[-1] in ".!?。！？" else words + text("list.stop")


def sentences(notes: Iterable[str]) -> str:
    """Notes as sentences one after another, as the current language writes them (a space between, or none)."""
    said = ""
    for note in notes:
        said = text("list.sentences", first=said, second=sentence(note)) if said else sentence(note)
    return said


def class_name(label: str, demo: bool) -> str:
    """A class as the page names it: the demo's shapes in the current language, ImageNet's classes in English
    (their names are the dataset's; the top-5 caption says so)."""
    key = f"shape.{label}"
    return text(key) if demo and has(key) else label


def pick(*choices: str | None) -> str:
    """The first of ``choices`` that names a language ("zh", "zh-CN", an Accept-Language header); else English.

    A header is read in its own order of preference (``q`` weights): ``fr;q=1, zh;q=0.8, en;q=0.5`` is Chinese.
    """
    for choice in choices:
        if not choice:
            continue
        weighted = []
        for position, part in enumerate(str(choice).split(",")):
            tag, _, params = part.strip().partition(";")
            weight = 1.0
            if params.strip().startswith("q="):
                try:
                    weight = float(params.strip()[2:])
                except ValueError:
                    weight = 0.0
            weighted.append((-weight, position, tag.strip().lower()))
        for _, _, tag in sorted(weighted):
            primary = tag.split("-")[0]
            if primary in LANGUAGES:
                return primary
    return LANGUAGES[0]

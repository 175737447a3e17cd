"""The page in the visitor's language: Gradio's ``gr.I18n`` for static text, the same catalogues for event text.

The browser picks the page's language from its own locale (Gradio's I18n) unless the page's URL says ``?lang=zh`` or
``?lang=en``; the language switch rewrites that parameter and tells Gradio's front end to change its locale, so the
page changes at once. Every event reads the same parameter (or, without it, the browser's Accept-Language header),
so what the server writes during the event (captions, notes, banners, errors) is in the page's language too.
"""

from __future__ import annotations

import json
import math
from typing import Any

import gradio as gr
from gradio.context import LocalContext
from gradio.i18n import I18nData

from cbam_viz.i18n import language
from cbam_viz.i18n.language import LANGUAGE_NAMES, LANGUAGES, class_name, text

QUERY_KEY = "lang"
FRONT_END_LOCALE = {"en": "en", "zh": "zh-CN"}  # Gradio's own words (Upload, Clear, ...) come in zh-CN
# The page's locale follows ``?lang=``: the switch sets it, a lesson link carries it. Gradio keeps its locale in
# the ``changeLocale`` export of its core module; the page reaches it through the module the browser already loaded.
LANGUAGE_JS = """
() => {
    const wanted = new URLSearchParams(location.search).get('lang');
    const locales = __LOCALES__;
    // the page's language on <html>, for the rules Gradio's own words need (TOAST_CSS): the query's, else the
    // browser's first one that has a catalogue, as the server picks it from Accept-Language
    const browser = (navigator.languages || [navigator.language]).map((tag) => tag.split('-')[0].toLowerCase());
    const known = (code) => Object.prototype.hasOwnProperty.call(locales, code);  // not '__proto__'
    const first = browser.find(known) || 'en';
    document.documentElement.dataset.cbamLang = known(wanted) ? wanted : first;
    window.cbamVizLanguage = async (lang) => {
        if (!known(lang)) return false;
        document.documentElement.dataset.cbamLang = lang;
        const query = new URLSearchParams(location.search);
        query.set('lang', lang);
        history.replaceState(null, '', location.pathname + '?' + query.toString() + location.hash);
        const core = performance.getEntriesByType('resource').map((entry) => entry.name)
            .find((name) => /\\/assets\\/core-[^/]*\\.js$/.test(name));
        if (!core) return false;
        (await import(core)).changeLocale(locales[lang]);
        return true;
    };
    if (known(wanted)) window.cbamVizLanguage(wanted);
}
""".replace("__LOCALES__", json.dumps(FRONT_END_LOCALE))


def _toast_css() -> str:
    """Gradio titles an error toast with its own English word ("Error"), whatever the message's title: on a page
    in another language that word is hidden and the catalogue's ``error.title`` shown in its place."""
    rules = []
    for code in LANGUAGES[1:]:
        page = f'html[data-cbam-lang="{code}"] .toast-title.error'
        word = json.dumps(language.catalogue(code)["error.title"], ensure_ascii=False)
        rules += [
            f"{page} {{ font-size: 0; }}",
            f"{page}::before {{ content: {word}; font-size: var(--text-lg); }}",
            f"{page} .toast-count {{ font-size: var(--text-lg); }}",
        ]
    return "\n".join(rules) + "\n"


TOAST_CSS = _toast_css()


def catalogues() -> gr.I18n:
    """Every language's catalogue, for ``launch(i18n=...)``: Gradio's front end translates the static text."""
    return gr.I18n(**{code: language.catalogue(code) for code in LANGUAGES})


def T(key: str) -> Any:  # noqa: N802 - reads like the conventional gettext marker
    """A static text of the page, translated by the browser (``gr.I18n``); the key must exist in the catalogue."""
    if not language.has(key):
        raise KeyError(f"no text {key!r} in the English catalogue")
    return I18nData(key)


def visitor_language(request: Any) -> str | None:
    """The language of one visitor's event: the page's ``?lang=``, else the browser's Accept-Language."""
    if request is None:
        return None
    query = getattr(request, "query_params", None) or {}
    headers = getattr(request, "headers", None) or {}
    return language.pick(query.get(QUERY_KEY), headers.get("accept-language"))


def follow_visitors() -> None:
    """From now on, text written during a Gradio event is in that visitor's language."""
    language.follow_visitors(lambda: visitor_language(LocalContext.request.get(None)))


def switch() -> gr.Radio:
    """The language switch at the top of the page (each language named in its own words)."""
    return gr.Radio(
        [(LANGUAGE_NAMES[code], code) for code in LANGUAGES],
        value=None,
        interactive=True,
        show_label=False,
        container=False,
        elem_id="language",
    )


# the switch event runs this in the browser first: its inputs are (language, ...), handed on to the server unchanged
SWITCH_JS = "async (lang, ...rest) => { await window.cbamVizLanguage(lang); return [lang, ...rest]; }"


def class_choices(categories: tuple[str, ...] | list[str], demo: bool) -> list[tuple[str, str]]:
    """The class picker's entries: each class as the page names it, its value the model's own name."""
    return [(class_name(name, demo), name) for name in categories]


def class_from_name(name: object) -> object:
    """A demo shape typed as the page names it, in any language (``星形``), as the models' own class name; any
    other value is left for the analysis to check."""
    if not isinstance(name, str):
        return name
    wanted = name.strip()
    for code in LANGUAGES:
        for key, value in language.catalogue(code).items():
            if key.startswith("shape.") and value == wanted:
                return key.removeprefix("shape.")
    return name


def number(value: float | None, digits: int = 2) -> str:
    """A number as the page writes it; a missing or not finite one as the catalogue's word for it."""
    return text("number.missing") if value is None or not math.isfinite(value) else f"{value:.{digits}f}"

"""Gradio's refusal of a value outside a choice list, made short and quiet.

Gradio's Dropdown, Radio and CheckboxGroup refuse a value that is not one of their choices with
"Value: 'AAAA…' (type: <class 'str'>) is not in the list of choices: [...]", the value whole (a 1 MB value made a
1 MB answer) and a traceback in the log for each. ``install`` wraps their ``preprocess`` once per process, so the
refusal is one line quoting at most ``guard.QUOTE_CHARS`` characters, without a traceback; the guard shortens the
same words in event streams too, for any component this does not reach.
"""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr

from cbam_viz.ui.server.guard import choice_refusal

_MARK = "_cbam_viz_short_refusal"


def install() -> None:
    """Wrap the choice components' ``preprocess`` (idempotent)."""
    for component in (gr.Dropdown, gr.Radio, gr.CheckboxGroup):
        original = component.preprocess
        if getattr(original, _MARK, False):
            continue
        component.preprocess = _short_refusals(original)


def _short_refusals(original: Any) -> Any:
    @functools.wraps(original)
    def preprocess(self: Any, payload: Any) -> Any:
        try:
            return original(self, payload)
        except gr.Error as error:
            short = choice_refusal(str(getattr(error, "message", error)))
            if short is None:
                raise
            raise gr.Error(short, print_exception=False) from None

    setattr(preprocess, _MARK, True)
    return preprocess

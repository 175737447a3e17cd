"""The one boundary between the app and its visitors: every failure becomes one line, and the page keeps it.

API callers get the line as the event's error. The page shows it once, in the note under the picture, where it stays
(a toast would vanish and, with several outputs, appear twice): the boundary records the line for the visitor's
session and the page's failure handler reads it back (``pop_message``).
"""

from __future__ import annotations

import functools
import html
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import gradio as gr
import torch

from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import text

LOGGER = logging.getLogger("cbam_viz.app")
P = ParamSpec("P")
R = TypeVar("R")
MESSAGE_LIMIT = 400  # characters of one message: ours are shorter; anything longer was built from user input
_SESSIONS_KEPT = 512

_LAST_MESSAGES: OrderedDict[str, str] = OrderedDict()
_LAST_LOCK = threading.Lock()


def one_line(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """Whitespace folded to single spaces and the length bounded: what a message may be."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def escape(text: str) -> str:
    """User-facing text made safe for Markdown/HTML: ``<urlopen error ...>`` must show, not vanish as a tag."""
    return html.escape(text, quote=False)


def _session(args: tuple, kwargs: dict) -> str | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, gr.Request):
            return getattr(value, "session_hash", None)
    return None


def remember(session: str | None, message: str) -> None:
    """Keep a session's last failure, for the page's failure handler to show once."""
    if not session:
        return
    with _LAST_LOCK:
        _LAST_MESSAGES[session] = message
        _LAST_MESSAGES.move_to_end(session)
        while len(_LAST_MESSAGES) > _SESSIONS_KEPT:
            _LAST_MESSAGES.popitem(last=False)


def pop_message(request: gr.Request | None) -> str:
    """The last failure of this visitor's session (and forget it); a generic line if none was recorded."""
    session = getattr(request, "session_hash", None)
    with _LAST_LOCK:
        message = _LAST_MESSAGES.pop(session, None) if session else None
    return message or text("error.try_again")


def one_line_errors(handler: Callable[P, R] | None = None, *, toast: bool = True) -> Any:
    """Turn every failure of a handler into ``gr.Error`` with one line: ours verbatim, anything else named and logged.

    Visitors must never see a traceback or a server path; the full traceback of an unexpected failure goes to the
    server log instead, so nothing is swallowed. ``toast=False`` keeps the page from showing a toast: the page's
    failure handler shows the line under the picture instead (API callers still receive it).
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except gr.Error as error:
                message = one_line(error.message)
            except CbamVizError as error:
                message = one_line(str(error))
                LOGGER.info("%s refused: %s", function.__name__, message[:200])
            except torch.cuda.OutOfMemoryError:
                LOGGER.exception("%s ran out of GPU memory", function.__name__)
                message = text("error.gpu_memory")
            except Exception as error:  # noqa: BLE001 - the boundary between the app and its visitors
                LOGGER.exception("%s failed", function.__name__)
                message = text("error.unexpected", kind=type(error).__name__)
            remember(_session(args, kwargs), message)
            raise gr.Error(message, title=text("error.title"), print_exception=False, visible=toast) from None

        return wrapper

    return decorate(handler) if handler is not None else decorate

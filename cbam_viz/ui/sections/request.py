"""The request an analysis answers: the picture and the seven settings the page's controls and the API send.

``PageRequest`` holds them unchecked, as they arrive; ``options`` checks them once. ``api_event`` turns a handler
that takes a ``PageRequest`` into an event function whose parameters are the API's named parameters (``image``,
``models``, ..., ``view``, then the event's own), so the names are written here once for every endpoint.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image

from cbam_viz.analysis.options import AnalysisOptions, target_mode_value
from cbam_viz.ui.i18n import class_from_name
from cbam_viz.ui.server.engine import Engine
from cbam_viz.ui.uploads import decode_upload


@dataclass(frozen=True)
class PageRequest:
    """The picture and the analysis settings, as the page or an API call sent them (nothing checked yet)."""

    image: str | bytes | None
    models: Any
    weights: Any
    target_mode: Any
    target_class: Any
    method: Any
    stage: Any
    view: Any

    def options(self, engine: Engine, faithfulness: Any = False) -> AnalysisOptions:
        """The settings as one checked request (weights "auto" is the start-up set, with its note)."""
        return AnalysisOptions.from_request(
            models=[] if self.models is None else self.models,
            weights=engine.choice_for(self.weights),  # the start-up choice keeps its note (why auto chose it)
            target_mode=target_mode_value(self.target_mode),
            target_class=class_from_name(self.target_class),
            method=self.method,
            stage=self.stage,
            view=self.view,
            faithfulness=bool(faithfulness),
        )

    def picture(self) -> tuple[Image.Image, str]:
        """The upload decoded once, and its name (for download names)."""
        return decode_upload(self.image)


FIELDS = tuple(field.name for field in dataclasses.fields(PageRequest))  # the API's first parameters, in order


def components(controls: Any) -> list[Any]:
    """The page's controls for a request (``controls`` has one attribute per field), in the API's order."""
    return [getattr(controls, name) for name in FIELDS]


def api_event(
    call: Callable[..., Any], *after: str, visitor: bool = False, progress: bool = False
) -> Callable[..., Any]:
    """``call(PageRequest, **after)`` as an event function with the API's named parameters: the request's fields,
    then ``after``. Gradio reads the names (the API's keyword names) and the annotations that make it pass the
    visitor's ``gr.Request`` (``visitor``, as ``request=``) or a progress bar (``progress``, as ``progress=``)."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    names = (*FIELDS, *after)
    parameters = [inspect.Parameter(name, kind, annotation=Any) for name in names]
    annotations: dict[str, Any] = dict.fromkeys(names, Any)
    if visitor:
        parameters.append(inspect.Parameter("request", kind, annotation=gr.Request))
        annotations["request"] = gr.Request
    if progress:
        parameters.append(inspect.Parameter("progress", kind, default=gr.Progress(), annotation=gr.Progress))
        annotations["progress"] = gr.Progress
    signature = inspect.Signature(parameters)

    def event(*values: Any) -> Any:
        arguments = signature.bind(*values).arguments
        asked = PageRequest(*(arguments.pop(name) for name in FIELDS))
        return call(asked, **arguments)

    event.__signature__ = signature  # type: ignore[attr-defined]
    event.__annotations__ = annotations
    named = getattr(call, "func", call)  # a partial is named after its function
    event.__name__ = event.__qualname__ = getattr(named, "__name__", "event")
    return event

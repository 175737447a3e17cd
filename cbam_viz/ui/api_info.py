"""The API page's and ``gradio_client.view_api()``'s description of the endpoints, in the words a caller needs.

Gradio describes each parameter from its component: a label given as a catalogue key (``gr.I18n``) arrives as an
object the API page prints as "[object Object]", an output without a label is called ``value_<id>``, and a Radio of
numbers (the stage) is said to take strings, so the generated snippets pass ``stage="4"``, which the Radio then
refuses. ``describe(blocks)`` makes ``blocks.get_api_info`` answer with English labels, the element id for an
unlabelled output, and integers where every choice is one.
"""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr
from gradio.i18n import I18nData

from cbam_viz.i18n.language import catalogue


def label_text(label: Any, blocks: gr.Blocks | None = None) -> Any:
    """A catalogue key's English text; ``value_<id>`` (no label) as that component's element id; else as is."""
    if isinstance(label, I18nData):
        return catalogue("en").get(label.key, label.key)
    if isinstance(label, dict) and label.get("_type") == "translation_metadata":
        return catalogue("en").get(str(label.get("key")), str(label.get("key")))
    if blocks is not None and isinstance(label, str) and label.startswith(("value_", "parameter_")):
        number = label.rsplit("_", 1)[-1]
        block = blocks.blocks.get(int(number)) if number.isdigit() else None
        if block is not None and getattr(block, "elem_id", None):
            return str(block.elem_id).replace("-", "_")
    return label


def integer_choices(info: Any) -> Any:
    """A string enum whose choices are all integers, said to be an integer enum (else unchanged)."""
    if not isinstance(info, dict) or info.get("type") != "string":
        return info
    choices = info.get("enum")
    if not choices or not all(isinstance(choice, int) and not isinstance(choice, bool) for choice in choices):
        return info
    return {**info, "type": "integer"}


def fixed(api: dict, blocks: gr.Blocks | None = None) -> dict:
    """Gradio's API description with readable labels and integer stages (see the module's docstring)."""
    for group in ("named_endpoints", "unnamed_endpoints"):
        for endpoint in api.get(group, {}).values():
            for entry in [*endpoint.get("parameters", []), *endpoint.get("returns", [])]:
                entry["label"] = label_text(entry.get("label"), blocks)
                info = integer_choices(entry.get("type"))
                if info is not entry.get("type"):
                    entry["type"] = info
                    entry["python_type"] = {
                        **entry.get("python_type", {}),
                        "type": f"Literal[{', '.join(str(choice) for choice in info['enum'])}]",
                    }
                    if isinstance(entry.get("parameter_default"), str) and entry["parameter_default"].isdigit():
                        entry["parameter_default"] = int(entry["parameter_default"])
    return api


def describe(blocks: gr.Blocks) -> None:
    """From now on ``blocks.get_api_info`` (the API page, ``view_api``) answers with ``fixed``'s description."""
    original = blocks.get_api_info

    @functools.wraps(original)
    def get_api_info(*args: Any, **kwargs: Any) -> Any:
        return fixed(original(*args, **kwargs), blocks)

    blocks.get_api_info = get_api_info  # type: ignore[method-assign]

"""Upload plumbing: the image input hands the handler the uploaded file untouched, and ``decode_image`` decodes it.

``gr.Image`` opens every upload with Pillow before the handler runs, with no format allow-list, so a broken or hostile
file would fail there with Pillow's words and the server's path. The input made here returns the cached path (or the
bytes of a pasted data URL) instead; ``imaging.decode_image`` does all decoding, once, with its limits and its
one-line messages, and the decoded picture (with its notes) is what the analysis receives.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import text
from cbam_viz.imaging.decode import decode_image
from cbam_viz.imaging.limits import MAX_FILE_BYTES
from cbam_viz.ui.gallery import is_plain_file


def image_input(**options: Any) -> gr.Image:
    """A ``gr.Image`` (upload, webcam, clipboard) whose preprocessing hands the handler the uploaded file untouched.

    ``gr.Image`` opens every upload with Pillow before the handler runs, with no format allow-list, so a broken or
    hostile file would fail there with Pillow's words and the server's path. This input returns the cached path
    (or the bytes of a pasted data URL) instead; ``imaging.decode_image`` does all decoding, with its limits and its
    one-line messages. (An instance attribute rather than a subclass: Gradio writes a .pyi file next to the module of
    every Component subclass it sees.)
    """
    component = gr.Image(**options)
    component.preprocess = raw_image_payload
    return component


def raw_image_payload(payload: Any) -> str | bytes | None:
    """The upload's cached path, or the bytes of a data URL; ``gr.Error`` with one line for anything else."""
    if payload is None:
        return None
    if payload.path is None and payload.url and payload.url.startswith("data:"):
        try:
            return data_url_bytes(payload.url)
        except CbamVizError as error:
            raise gr.Error(str(error), print_exception=False) from None
    if payload.path is None:
        raise gr.Error(text("error.no_file"), print_exception=False)
    return str(payload.path)


def uploaded_source(value: str | bytes | None) -> str | bytes:
    """What the image input handed over, checked: a cached upload path, or bytes of a pasted data URL."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CbamVizError(text("error.no_image"))
    return value


def data_url_bytes(url: str) -> bytes:
    """Bytes of a ``data:image/...;base64,`` URL (how pastes may arrive), size-checked before decoding."""
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        raise CbamVizError(text("error.paste_not_base64"))
    if len(payload) > MAX_FILE_BYTES * 4 // 3 + 4:
        raise CbamVizError(text("error.paste_too_large", limit=f"{MAX_FILE_BYTES / 1e6:g}"))
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise CbamVizError(text("error.paste_damaged")) from error


def decode_upload(value: str | bytes | None) -> tuple[Image.Image, str]:
    """The upload decoded once (notes kept on the picture) and a short name for files made from it."""
    source = uploaded_source(value)
    if isinstance(source, str):
        if not is_plain_file(Path(source)):  # the cache keeps uploads a few minutes (engine.DELETE_CACHE); no links
            raise CbamVizError(text("error.upload_cleared"))
        return decode_image(source), safe_stem(Path(source).stem)
    return decode_image(source, name=text("upload.pasted")), "pasted"


def safe_stem(stem: str, limit: int = 60) -> str:
    """A file-name stem made only of letters, digits, '-' and '_' (what download names may carry)."""
    cleaned = "".join(char if char.isalnum() or char in "-_" else "_" for char in stem).strip("_")
    return cleaned[:limit] or "picture"

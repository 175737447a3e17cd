"""The web app's logic as plain functions: app.py lays the page out and wires components to these.

Everything a visitor can trigger is here: start-up (load the models once, warm them, write the example pictures),
the analysis handler (upload -> ``analysis.analyze`` -> the JSON answer and a cached ``Analysis``), the renderers that
turn a cached ``Analysis`` into panel values (so display-only controls never re-run a model), the export files, the
weights helpers and the launch settings. Handlers raise ``gr.Error`` with one line; no traceback reaches a page.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import ctypes
import functools
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import gradio as gr
import torch
from PIL import Image

from cbam_viz import explain, render, shapes
from cbam_viz.analysis import (
    ARCH_ORDER,
    CAM_METHODS,
    Analysis,
    ModelResult,
    analyze,
    get_models,
    resolve_device,
)
from cbam_viz.errors import CbamVizError, WeightsError
from cbam_viz.imaging import MAX_FILE_BYTES, decode_image, decode_notes, display_image
from cbam_viz.resnet import STAGE_DEPTHS
from cbam_viz.vocab import method_label
from cbam_viz.weights import (
    ARCH_TITLES,
    DEMO_SUFFIX,
    SET_NAMES,
    SETS,
    read_demo_metadata,
    resolve_weights,
)

LOGGER = logging.getLogger("cbam_viz.app")
P = ParamSpec("P")
R = TypeVar("R")

# ------------------------------------------------------------------------------------------------ choices

TARGET_TOP1 = "Each model's top-1"
TARGET_SHARED = "One class for all models"
TARGET_MODES = (TARGET_TOP1, TARGET_SHARED)
VIEW_CHOICES = (("Whole image", "whole"), ("Centre crop (as evaluated)", "crop"))
METHOD_CHOICES = tuple((method_label(name), name) for name in CAM_METHODS)
COLORMAPS = ("jet", "turbo", "inferno", "viridis", "magma", "cividis")
STAGES = tuple(range(1, len(STAGE_DEPTHS) + 1))
MODEL_CHOICES = tuple((ARCH_TITLES[arch], arch) for arch in ARCH_ORDER)
WEIGHT_CHOICES = ("auto", *SET_NAMES)

# ------------------------------------------------------------------------------------------------ limits

MAX_UPLOAD = MAX_FILE_BYTES  # bytes: the limit decode_image applies, enforced by the server before any decoding
DELETE_CACHE = (300, 900)  # every 5 minutes, delete uploads and rendered panels older than 15 minutes
STATE_SESSIONS = 256  # cached analyses kept (one per browser tab); a tab evicted beyond that analyses again
STATE_TTL_S = 3600
EXPORT_KEEP_S = 120  # export files are copied into Gradio's cache on return; our copy is pruned after this
DISPLAY_SIDE = 512  # overlays are drawn at most this large: a third of a page, crisp on high-DPI screens

# --------------------------------------------------------------------------------------------- examples

EXAMPLE_SEED = 7  # shapes streams 1 and 2 train and validate the demo models: seed 7 was never seen by them
EXAMPLE_SIZE = 256
PHOTOS = (  # scikit-image's bundled photographs; licences from the docstrings of skimage.data
    ("chelsea.png", "Chelsea the cat", "Stefan van der Walt, CC0"),
    ("coffee.png", "Coffee cup", "Rachel Michetti (courtesy of Pikolo Espresso Bar), CC0"),
    ("astronaut.png", "Eileen Collins, astronaut", "NASA, public domain"),
    ("rocket.jpg", "Falcon 9 launching DSCOVR", "SpaceX, released into the public domain"),
    (
        "motorcycle_left.png",
        "Motorcycle",
        "Middlebury 2014 stereo dataset (Scharstein et al.), as shipped with scikit-image",
    ),
)
PHOTO_ATTRIBUTION = "Photographs bundled with scikit-image: " + "; ".join(
    f"{caption} ({credit})" for _, caption, credit in PHOTOS
)
PHOTO_GALLERY = "Photographs for the ImageNet models"
SHAPE_GALLERY = "Shapes for the demo models (never seen in training)"
PAPERS = (
    "Papers: ResNet (He et al. 2016), SE (Hu et al. 2018), CBAM (Woo et al. 2018). CAMs computed with the grad-cam "
    "library."
)

NO_ATTENTION_NOTES = {
    ("spatial", "resnet50"): "**No spatial attention.** Plain ResNet-50 has no attention module.",
    ("spatial", "se_resnet50"): "**No spatial attention.** SE re-weights whole channels, never places.",
    ("channel", "resnet50"): "**No channel attention.** Plain ResNet-50 has no attention module.",
}

# Per-model panels, in the order app.py creates and wires them. "main" panels are redrawn after every analysis,
# "overlay" panels also when a display control changes, "drill" panels when the drill-down stage changes.
MAIN_PANELS = ("header", "top5", "cam", "spatial", "channel", "numbers")
OVERLAY_PANELS = ("cam", "spatial")
DRILL_PANELS = ("drill_spatial", "drill_channel")


def panel_keys(panels: Sequence[str]) -> list[tuple[str, str]]:
    """(panel, arch) pairs in wiring order: every model of the first panel, then the next panel."""
    return [(panel, arch) for panel in panels for arch in ARCH_ORDER]


def has_panel(panel: str, arch: str) -> bool:
    """Whether ``arch`` has anything to show in ``panel`` (the baseline has no attention, SE no spatial map)."""
    kind = panel.removeprefix("drill_")
    return (kind, arch) not in NO_ATTENTION_NOTES


def note_for(panel: str, arch: str) -> str:
    """The sentence shown in place of a panel the model does not have."""
    return NO_ATTENTION_NOTES[(panel.removeprefix("drill_"), arch)]


# ------------------------------------------------------------------------------------------------ errors


def one_line_errors(handler: Callable[P, R]) -> Callable[P, R]:
    """Turn every failure of a handler into ``gr.Error`` with one line: ours verbatim, anything else named and logged.

    Visitors must never see a traceback or a server path; the full traceback of an unexpected failure goes to the
    server log instead, so nothing is swallowed.
    """

    @functools.wraps(handler)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except CbamVizError as error:
            LOGGER.info("%s refused: %s", handler.__name__, error)
            raise gr.Error(str(error), print_exception=False) from None
        except torch.cuda.OutOfMemoryError:
            LOGGER.exception("%s ran out of GPU memory", handler.__name__)
            raise gr.Error("the GPU is out of memory right now: try again in a moment", print_exception=False) from None
        except Exception as error:  # noqa: BLE001 - the boundary between the app and its visitors
            LOGGER.exception("%s failed", handler.__name__)
            raise gr.Error(
                f"something went wrong ({type(error).__name__}); try again or another image. "
                "The details are in the server log.",
                print_exception=False,
            ) from None

    return wrapper


# ------------------------------------------------------------------------------------------------ engine


@dataclass
class Engine:
    """The models every visitor shares: resolved and loaded once at start-up, then served from the model cache."""

    weights: str  # the start-up set, as resolved ("demo", "paper", ...)
    weights_note: str  # resolve_weights' one-line reason
    device: str  # "cpu" | "cuda:0"
    weights_dir: Path | None = None
    examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # gallery title -> [(path, caption)]
    parameters: dict[str, int] = field(default_factory=dict)  # arch -> parameter count of the start-up set

    @classmethod
    def start(
        cls, weights: str = "auto", device: str | None = None, weights_dir: Path | None = None, warm: bool = True
    ) -> Engine:
        """Resolve and load the three models (GPU when present), write the example pictures, run one warm-up pass.

        Raises ``CbamVizError`` when no weights can be loaded; app.py prints it as one line and exits.
        """
        target = resolve_device(device)
        model_set = get_models(ARCH_ORDER, weights, target, weights_dir=weights_dir)
        engine = cls(
            weights=model_set.weights_set,
            weights_note=model_set.weights_note,
            device=model_set.device,
            weights_dir=weights_dir,
            parameters={arch: sum(p.numel() for p in m.parameters()) for arch, m in model_set.models.items()},
        )
        engine.examples = write_examples(engine.available_sets(), example_root())
        if warm:
            engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """One full analysis, so the first visitor does not pay for lazy initialisation (allocator, kernels)."""
        started = time.perf_counter()
        picture = Image.fromarray(shapes.render_sample(EXAMPLE_SEED, 0, width=EXAMPLE_SIZE).image)
        analyze(picture, weights=self.weights, device=self.device, weights_dir=self.weights_dir)
        LOGGER.info("warm-up analysis took %.2f s", time.perf_counter() - started)

    def available_sets(self) -> list[str]:
        """The named weight sets whose files are here (each loadable without a download)."""
        available = []
        for name in SET_NAMES:
            try:
                resolve_weights(name, self.weights_dir)
            except WeightsError:
                continue
            available.append(name)
        return available

    def resolve(self, weights: str) -> str:
        """The set a visitor picked, checked: "auto" means the start-up set; file paths are not accepted here."""
        if weights in (None, "", "auto"):
            return self.weights
        if weights not in SET_NAMES:
            raise CbamVizError(f"unknown weights set {weights!r}: choose one of {', '.join(WEIGHT_CHOICES)}")
        return weights

    def categories(self, weights: str) -> tuple[str, ...]:
        """Class names of a set (loads and caches its models if this is the first use)."""
        return get_models(ARCH_ORDER, self.resolve(weights), self.device, weights_dir=self.weights_dir).categories

    def weight_choices(self) -> list[tuple[str, str]]:
        """Dropdown entries that say which sets are ready and which would need a download."""
        ready = set(self.available_sets())
        labels = [(f"auto (now: {self.weights})", "auto")]
        for name in SET_NAMES:
            kind = "shapes demo" if name == "demo" else "ImageNet"
            state = "ready" if name in ready else ("train it first" if name == "demo" else "not downloaded")
            labels.append((f"{name} ({kind}, {state})", name))
        return labels


# --------------------------------------------------------------------------------------------- examples


def example_root() -> Path:
    """Where the example pictures are written: under the system temp folder, which Gradio may serve from."""
    return Path(tempfile.gettempdir()) / "cbam_viz-examples"


def write_examples(available_sets: Sequence[str], root: Path) -> dict[str, list[tuple[str, str]]]:
    """Write the gallery pictures that fit the loaded weights; -> {gallery title: [(path, caption), ...]}.

    Shapes (one per class, from a seed the demo models never trained on) for the demo set; scikit-image's
    photographs for ImageNet sets. Files are rewritten only when missing, so restarts are instant.
    """
    galleries: dict[str, list[tuple[str, str]]] = {}
    if "demo" in available_sets:
        folder = root / f"shapes-seed{EXAMPLE_SEED}-{EXAMPLE_SIZE}px"
        folder.mkdir(parents=True, exist_ok=True)
        items = []
        for label, name in enumerate(shapes.CLASSES):
            path = folder / f"{name}.png"
            if not path.is_file():
                sample = shapes.render_sample(EXAMPLE_SEED, label, width=EXAMPLE_SIZE, label=label)
                _write_atomically(path, lambda target, s=sample: Image.fromarray(s.image).save(target, format="PNG"))
            items.append((str(path), name))
        galleries[SHAPE_GALLERY] = items
    if any(name in SETS for name in available_sets):
        import skimage.data

        folder = root / "photos"
        folder.mkdir(parents=True, exist_ok=True)
        items = []
        for file_name, caption, _ in PHOTOS:
            source = Path(skimage.data.data_dir) / file_name
            if not source.is_file():
                LOGGER.warning("scikit-image's %s is missing; the photo gallery skips it", file_name)
                continue
            path = folder / file_name
            if not path.is_file():
                _write_atomically(path, lambda target, s=source: shutil.copyfile(s, target))
            items.append((str(path), caption))
        galleries[PHOTO_GALLERY] = items
    return galleries


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> None:
    """Write through a temporary name, so two apps starting at once never read a half-written example."""
    temporary = path.with_name(f".{path.name}.{threading.get_ident()}.part")
    write(temporary)
    temporary.replace(path)


def credits_markdown(examples: dict[str, list[tuple[str, str]]]) -> str:
    """The page's small print: the papers, and the photographs' credits when their gallery is shown."""
    photos = f"{PHOTO_ATTRIBUTION}. " if PHOTO_GALLERY in examples else ""
    return f"<small>{photos}{PAPERS}</small>"


# ---------------------------------------------------------------------------------------------- banners


def banner_markdown(
    weights_set: str,
    weights_note: str,
    device: str,
    parameters: dict[str, int] | None = None,
    weights_dir: Path | None = None,
) -> str:
    """The always-visible line that says which weights answer and on what device, honestly for the demo set."""
    device_words = device
    if device.startswith("cuda") and torch.cuda.is_available():
        device_words = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    if weights_set == "demo" or weights_set.endswith(DEMO_SUFFIX):
        what = demo_description(parameters or {}, weights_dir)
    else:
        what = f"**ImageNet weights ({weights_set})**: the published models, 1000 ImageNet classes."
    return f"{what}  \n<small>Why these weights: {weights_note}. · Device: **{device_words}**.</small>"


def demo_description(parameters: dict[str, int], weights_dir: Path | None = None) -> str:
    """What the demo models are, from weights/demo/metadata.json and the loaded parameter counts."""
    metadata = read_demo_metadata(weights_dir)
    base_width = int(metadata["arch_config"].get("base_width", 64))
    size = int(metadata["preprocess"]["resize"])
    classes = len(metadata["classes"])
    width = f"1/{64 // base_width}-width " if base_width < 64 else ""
    counts = sorted(parameters.values())
    if counts:
        low, high = counts[0] / 1e6, counts[-1] / 1e6
        millions = f"{low:.2f} M" if math.isclose(low, high, rel_tol=0.005) else f"{low:.2f}-{high:.2f} M"
        size_words = f" ({millions} parameters each, against 25.6 M for a full ResNet-50)"
    else:
        size_words = ""
    trained_to_point = any(metadata.get("recipe", {}).get("cycle_localisation", ()))
    pointing_words = (
        " Their last training epoch also rewarded a Grad-CAM peak on the shape, so their CAMs point at it by training;"
        " the SE and CBAM attention was never supervised."
        if trained_to_point
        else ""
    )
    return (
        f"**Demo weights, not ImageNet**: three {width}ResNet-50s{size_words}, trained here on {classes} generated "
        f"shape classes at {size}x{size} px. They recognise shapes only; use the shape examples.{pointing_words}"
    )


# -------------------------------------------------------------------------------------------- uploads


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
        raise gr.Error("the image arrived without a file: upload it again", print_exception=False)
    return str(payload.path)


def uploaded_source(value: str | bytes | None) -> str | bytes:
    """What the image input handed over, checked: a cached upload path, or bytes of a pasted data URL."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise CbamVizError("choose an image first: upload one, use the webcam, paste one or click an example")
    return value


def data_url_bytes(url: str) -> bytes:
    """Bytes of a ``data:image/...;base64,`` URL (how pastes may arrive), size-checked before decoding."""
    header, _, payload = url.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        raise CbamVizError("the pasted image is not base64 data: upload the file instead")
    if len(payload) > MAX_FILE_BYTES * 4 // 3 + 4:
        raise CbamVizError(f"the pasted image is larger than {MAX_FILE_BYTES / 1e6:g} MB: upload a smaller one")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as error:
        raise CbamVizError("the pasted image is damaged (bad base64): copy it again or upload the file") from error


# -------------------------------------------------------------------------------------------- analysis


@one_line_errors
def run_analysis(
    engine: Engine,
    image: str | bytes | None,
    models: Sequence[str],
    weights: str,
    target_mode: str,
    target_class: str | None,
    method: str,
    stage: int,
    view: str,
    faithfulness: bool,
) -> tuple[Analysis, dict, str]:
    """Decode the upload and analyse it with the chosen models; -> (cached Analysis, its JSON, the banner)."""
    picture = decode_image(uploaded_source(image))
    if not models:
        raise CbamVizError("no model chosen: tick at least one of ResNet-50, SE-ResNet-50 and CBAM-ResNet-50")
    target = None
    if target_mode == TARGET_SHARED:
        if not target_class:
            raise CbamVizError('pick the class to explain in every model, or choose "Each model\'s top-1"')
        target = target_class
    elif target_mode not in TARGET_MODES:
        raise CbamVizError(f"unknown target mode {target_mode!r}: choose {TARGET_TOP1!r} or {TARGET_SHARED!r}")
    weights_set = engine.resolve(weights)
    started = time.perf_counter()
    result = analyze(
        picture,
        weights=weights_set,
        models=list(models),
        method=method,
        target=target,
        stage=int(stage),
        view=view,
        faithfulness=bool(faithfulness),
        device=engine.device,
        weights_dir=engine.weights_dir,
    )
    LOGGER.info("analysed %dx%d with %s in %.2f s", *picture.size, ",".join(models), time.perf_counter() - started)
    if weights in (None, "", "auto"):
        result.weights_note = engine.weights_note  # why "auto" chose this set, as decided at start-up
    parameters = engine.parameters if weights_set == engine.weights else {}
    banner = banner_markdown(result.weights_set, result.weights_note, result.device, parameters, engine.weights_dir)
    return result, result.to_json(), banner


def analysis_if_image(engine: Engine, image: str | bytes | None, *options: Any) -> tuple[Any, Any, Any]:
    """The same analysis, run when the picture changes; a cleared picture changes nothing (no error toast)."""
    if image is None:
        return gr.skip(), gr.skip(), gr.skip()
    return run_analysis(engine, image, *options)


# --------------------------------------------------------------------------------------------- display


@dataclass(frozen=True)
class Display:
    """The display-only controls: changing them redraws from the cached analysis, never re-runs a model."""

    cmap: str = "jet"
    opacity: float = 0.5
    shared_scale: bool = False

    @classmethod
    def checked(cls, cmap: str, opacity: float, shared_scale: bool) -> Display:
        if cmap not in COLORMAPS:
            raise CbamVizError(f"unknown colormap {cmap!r}: choose one of {', '.join(COLORMAPS)}")
        opacity = float(opacity)
        if not 0.0 <= opacity <= 1.0:
            raise CbamVizError(f"opacity must be between 0 and 1, got {opacity:g}")
        return cls(cmap, opacity, bool(shared_scale))


def _view_of(analysis: Analysis, result: ModelResult) -> Any:
    return result.view if result.view is not None else analysis.view


def cam_panels(analysis: Analysis, display: Display) -> dict[str, Any]:
    """arch -> the CAM overlay update (label: method, explained class, its probability), with a colour bar."""
    base = display_image(analysis.image, DISPLAY_SIDE)
    results = list(analysis.models.values())
    limits = render.colour_limits([result.cam for result in results], display.shared_scale)
    method = method_label(analysis.method)
    panels = {}
    for result, (low, high) in zip(results, limits, strict=True):
        picture = render.overlay(
            base, result.cam, _view_of(analysis, result), cmap=display.cmap, alpha=display.opacity, vmin=low, vmax=high
        )
        legend = render.colorbar_image(display.cmap, low, high, width=picture.width, label="CAM value")
        label = f"{method}, stage {analysis.stage}: “{result.target_label}” (p = {result.target_prob:.1%})"
        panels[result.arch] = gr.update(value=_stack(picture, legend), label=label, visible=True)
    return panels


def spatial_panels(analysis: Analysis, display: Display, stage: int | None = None) -> dict[str, Any]:
    """arch -> CBAM's spatial attention laid over the picture: the last block of every stage, or every block of one."""
    panels = {}
    for arch, result in analysis.models.items():
        if not result.spatial_attention:
            continue
        grid = render.spatial_attention_grid(
            result.spatial_attention,
            _view_of(analysis, result),
            analysis.image,
            stage=stage,
            cmap=display.cmap,
            alpha=display.opacity,
            shared_scale=display.shared_scale,
            tile=220,
            columns=2 if stage is None else 3,
        )
        where = "last block of each stage" if stage is None else f"every block of stage {stage}"
        panels[arch] = gr.update(value=grid, label=f"Spatial attention Ms, {where}", visible=True)
    return panels


def channel_panels(analysis: Analysis, stage: int) -> dict[str, Any]:
    """arch -> the channel attention plot of one stage (one strip per block), for SE and CBAM."""
    panels = {}
    for arch, result in analysis.models.items():
        if not result.channel_attention:
            continue
        plot = render.channel_attention_plot(result.channel_attention, stage, width_px=720)
        blocks = STAGE_DEPTHS[stage - 1]
        panels[arch] = gr.update(value=plot, label=f"Channel attention, stage {stage} ({blocks} blocks)", visible=True)
    return panels


def _stack(top: Image.Image, bottom: Image.Image) -> Image.Image:
    sheet = Image.new("RGB", (max(top.width, bottom.width), top.height + bottom.height), (255, 255, 255))
    sheet.paste(top, (0, 0))
    sheet.paste(bottom, (0, top.height))
    return sheet


def header_markdown(arch: str, result: ModelResult) -> str:
    return f"### {ARCH_TITLES[arch]}\n<small>{result.weights}</small>"


def top5_value(result: ModelResult) -> dict[str, float]:
    return {label: float(prob) for label, prob in result.top5}


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


METRIC_LABELS = {
    "target_prob": "probability of the explained class",
    "cam_spatial_correlation": "CAM vs own spatial attention: correlation",
    "cam_spatial_top20_iou": "CAM vs own spatial attention: top-20 % IoU",
    "faithfulness_morf": "faithfulness, ROAD MoRF (more negative = better)",
    "faithfulness_lerf": "faithfulness, ROAD LeRF (near 0 = better)",
    "faithfulness_road": "faithfulness, ROAD combined (higher = better)",
}


def numbers_markdown(result: ModelResult) -> str:
    """The model's own numbers as a short list (the explanation sits in the row's "what am I looking at")."""
    return "\n".join(
        f"- {METRIC_LABELS.get(name, name)}: **{_number(value, 3)}**" for name, value in result.metrics.items()
    )


def agreement_markdown(analysis: Analysis) -> str:
    """Pairwise CAM agreement as a table; one model alone has nothing to agree with."""
    if not analysis.agreement:
        return "Pick at least two models to compare where their evidence lies."
    rows = []
    for pair, values in analysis.agreement.items():
        first, second = pair.split("|")
        rows.append(
            f"| {ARCH_TITLES[first]} vs {ARCH_TITLES[second]} | {_number(values.get('cam_correlation'))} "
            f"| {_number(values.get('top20_iou'))} |"
        )
    return "| models | CAM correlation | top-20 % IoU |\n|---|---|---|\n" + "\n".join(rows)


def image_notes(analysis: Analysis) -> str:
    """What decoding and preprocessing did, in plain words (rotation, transparency, what the models saw)."""
    notes = [*decode_notes(analysis.image), analysis.view.note]
    width, height = analysis.original_size
    return f"<small>Your picture: {width}x{height} px. " + " ".join(notes) + "</small>"


@one_line_errors
def render_main(analysis: Analysis | None, cmap: str, opacity: float, shared_scale: bool) -> list[Any]:
    """Every main panel for a fresh analysis, in ``panel_keys(MAIN_PANELS)`` order, then agreement, notes, method."""
    if analysis is None:
        return [gr.skip()] * (len(panel_keys(MAIN_PANELS)) + 3)
    display = Display.checked(cmap, opacity, shared_scale)
    cams = cam_panels(analysis, display)
    spatial = spatial_panels(analysis, display)
    channel = channel_panels(analysis, analysis.stage)
    values = []
    for panel, arch in panel_keys(MAIN_PANELS):
        result = analysis.models.get(arch)
        if result is None:
            values.append(gr.update(visible=False))
        elif panel == "header":
            values.append(gr.update(value=header_markdown(arch, result), visible=True))
        elif panel == "top5":
            values.append(gr.update(value=top5_value(result), visible=True))
        elif panel == "cam":
            values.append(cams[arch])
        elif panel == "numbers":
            values.append(gr.update(value=numbers_markdown(result), visible=True))
        elif not has_panel(panel, arch):
            values.append(gr.update(visible=True))
        else:
            values.append((spatial if panel == "spatial" else channel)[arch])
    return [*values, agreement_markdown(analysis), image_notes(analysis), explain.method_note(analysis.method)]


@one_line_errors
def render_overlays(analysis: Analysis | None, cmap: str, opacity: float, shared_scale: bool) -> list[Any]:
    """Only the panels a display control changes (``panel_keys(OVERLAY_PANELS)``), from the cached analysis."""
    keys = panel_keys(OVERLAY_PANELS)
    if analysis is None:
        return [gr.skip()] * len(keys)
    display = Display.checked(cmap, opacity, shared_scale)
    drawn = {"cam": cam_panels(analysis, display), "spatial": spatial_panels(analysis, display)}
    return [drawn[panel].get(arch, gr.skip()) for panel, arch in keys]


@one_line_errors
def render_drill(
    analysis: Analysis | None,
    stage: int | None,
    cmap: str,
    opacity: float,
    shared_scale: bool,
    channels: bool = True,
) -> list[Any]:
    """The drill-down: every block of one stage (spatial maps for CBAM, channel strips for SE and CBAM).

    ``channels=False`` redraws only the spatial maps (a display control changed; the channel plots do not use it).
    """
    keys = panel_keys(DRILL_PANELS)
    if analysis is None:
        return [gr.skip()] * len(keys)
    stage = int(stage or analysis.stage)
    if stage not in STAGES:
        raise CbamVizError(f"stage must be 1, 2, 3 or 4 (got {stage})")
    display = Display.checked(cmap, opacity, shared_scale)
    drawn = {
        "drill_spatial": spatial_panels(analysis, display, stage),
        "drill_channel": channel_panels(analysis, stage) if channels else {},
    }
    values = []
    for panel, arch in keys:
        if arch not in analysis.models:
            values.append(gr.update(visible=False))
        elif not has_panel(panel, arch):
            values.append(gr.update(visible=True))
        else:
            values.append(drawn[panel].get(arch, gr.skip()))
    return values


def render_drill_if_open(
    analysis: Analysis | None, is_open: bool, stage: int | None, cmap: str, opacity: float, shared_scale: bool
) -> list[Any]:
    """The drill-down after a new analysis, only while its accordion is open (it costs two plots per model)."""
    if not is_open:
        return [gr.skip()] * len(panel_keys(DRILL_PANELS))
    return render_drill(analysis, stage, cmap, opacity, shared_scale)


def redraw_drill_overlays(
    analysis: Analysis | None, is_open: bool, stage: int | None, cmap: str, opacity: float, shared_scale: bool
) -> list[Any]:
    """The drill-down's spatial maps after a display change, only while its accordion is open."""
    if not is_open:
        return [gr.skip()] * len(panel_keys(DRILL_PANELS))
    return render_drill(analysis, stage, cmap, opacity, shared_scale, channels=False)


def set_open() -> bool:
    return True


def set_closed() -> bool:
    return False


def drill_stage_value(analysis: Analysis | None) -> Any:
    """The drill-down starts at the analysed stage."""
    return gr.skip() if analysis is None else analysis.stage


# ---------------------------------------------------------------------------------------------- export


class ExportFiles:
    """A private folder for export files: Gradio copies each returned file into its own cache (which
    ``delete_cache`` cleans), so our copy is only needed briefly; older ones are pruned and the folder is removed
    at exit."""

    def __init__(self, keep_seconds: float = EXPORT_KEEP_S) -> None:
        self.keep_seconds = keep_seconds
        self.folder = Path(tempfile.mkdtemp(prefix="cbam_viz-export-"))
        self._lock = threading.Lock()
        atexit.register(shutil.rmtree, self.folder, True)

    def write(self, name: str, data: bytes) -> str:
        with self._lock:
            self.prune()
            folder = Path(tempfile.mkdtemp(dir=self.folder))  # one folder per export keeps the friendly file name
            path = folder / name
            path.write_bytes(data)
            return str(path)

    def prune(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for folder in self.folder.iterdir():
            if now - folder.stat().st_mtime > self.keep_seconds:
                shutil.rmtree(folder, ignore_errors=True)

    def count(self) -> int:
        return sum(1 for path in self.folder.rglob("*") if path.is_file())


EXPORTS = ExportFiles()


@one_line_errors
def export_files(analysis: Analysis | None, cmap: str, opacity: float, shared_scale: bool) -> tuple[str, str]:
    """The comparison figure (PNG) and the analysis (JSON) as downloadable files."""
    if analysis is None:
        raise CbamVizError("nothing to export yet: analyse an image first")
    display = Display.checked(cmap, opacity, shared_scale)
    figure = render.comparison_figure(
        analysis, cmap=display.cmap, alpha=display.opacity, shared_scale=display.shared_scale
    )
    document = json.dumps(analysis.to_json(), indent=2, ensure_ascii=False).encode("utf-8")
    stem = f"cbam_viz-{analysis.method}-stage{analysis.stage}"
    return EXPORTS.write(f"{stem}.png", figure), EXPORTS.write(f"{stem}.json", document)


# --------------------------------------------------------------------------------------------- weights


def target_choices(engine: Engine, weights: str) -> tuple[Any, str]:
    """The class list of the chosen set and a status line; a set that is not here says how to get it (no error)."""
    try:
        categories = engine.categories(weights)
    except CbamVizError as error:
        return gr.update(choices=[], value=""), f"⚠️ {error}"
    set_name = engine.resolve(weights)
    return gr.update(choices=list(categories), value=""), f"Using **{set_name}**: {len(categories)} classes."


def target_mode_changed(mode: str) -> Any:
    """The class picker is only used when one class is explained in every model."""
    return gr.update(interactive=mode == TARGET_SHARED)


@one_line_errors
def download_weights(
    engine: Engine,
    weights: str,
    progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 - Gradio's idiom
) -> tuple[str, Any]:
    """Download a named ImageNet set with a progress bar; with no network, the one-line reason."""
    from cbam_viz.download import download_set

    if weights in (None, "", "auto"):
        raise CbamVizError("pick the ImageNet set to download (paper or pytorchcv) in the weights list first")
    if weights == "demo":
        raise CbamVizError("the demo set is trained here, not downloaded: run `python -m cbam_viz train-demo`")
    if weights not in SETS:
        raise CbamVizError(f"unknown weights set {weights!r}: choose one of {', '.join(SETS)}")
    progress(0, desc=f"downloading the {weights} set")
    files = download_set(weights, engine.weights_dir, progress=True)
    engine.examples = write_examples(engine.available_sets(), example_root())
    status = f"Downloaded and converted {len(files)} files of the **{weights}** set; pick it to use it."
    return status, gr.update(choices=engine.weight_choices())


# ---------------------------------------------------------------------------------------------- launch


MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (what MALLOC_ARENA_MAX=2 does); -> whether the cap was set.

    glibc gives each thread that allocates its own heap arena, so a server's memory climbs in steps as more of
    Gradio's worker threads get used, and stays there. Measured over 1000 analyses after warm-up: +51 MB with
    the default arenas, flat (-46 MB) with two, at the same speed. A MALLOC_ARENA_MAX already set wins.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, for instance): nothing to cap
        return False
    return bool(libc.mallopt(_M_ARENA_MAX, arenas))


@dataclass(frozen=True)
class ServeSettings:
    """Queue and concurrency limits that fit the device: one analysis at a time per 2 CPU cores; more on a GPU."""

    concurrency: int
    queue_size: int
    render_concurrency: int

    @classmethod
    def for_device(cls, device: str, queue_size: int | None = None) -> ServeSettings:
        if device.startswith("cuda"):
            return cls(concurrency=4, queue_size=queue_size or 256, render_concurrency=4)
        return cls(concurrency=1, queue_size=queue_size or 64, render_concurrency=1)


def launch_options(host: str, port: int, share: bool = False) -> dict[str, Any]:
    """``launch`` keywords that make the server safe to open to a classroom."""
    return {
        "server_name": host,
        "server_port": port,
        "share": share,
        "max_file_size": MAX_UPLOAD,
        "show_error": True,  # messages are one line from gr.Error: no tracebacks to hide
        "enable_monitoring": False,
        "allowed_paths": [],  # only Gradio's own cache (uploads, rendered panels, examples) is served
        "footer_links": ["api"],
        "state_session_capacity": STATE_SESSIONS,
        "quiet": True,
    }

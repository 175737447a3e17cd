"""The project's vocabulary, written once: architectures, stages and blocks, views, CAM methods, target modes.

Every other module (engine, renderers, app, CLI) imports these names from here. This module imports nothing heavy
(no torch, no grad-cam, no Gradio), so ``python -m cbam_viz --help`` and the CLI parsers can use it for free.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

# ------------------------------------------------------------------------------------------------- architectures

AttentionKind = Literal["se", "cbam"] | None

ARCH_ATTENTION: dict[str, AttentionKind] = {"resnet50": None, "se_resnet50": "se", "cbam_resnet50": "cbam"}
ARCH_ORDER: tuple[str, ...] = tuple(ARCH_ATTENTION)  # the order of every display, table and JSON document
ARCH_TITLES: dict[str, str] = {
    "resnet50": "ResNet-50",
    "se_resnet50": "SE-ResNet-50",
    "cbam_resnet50": "CBAM-ResNet-50",
}


def has_channel_attention(arch: str) -> bool:
    return ARCH_ATTENTION.get(arch) is not None


def has_spatial_attention(arch: str) -> bool:
    return ARCH_ATTENTION.get(arch) == "cbam"


# ------------------------------------------------------------------------------------------------ stages, blocks

STAGE_DEPTHS: tuple[int, ...] = (3, 4, 6, 3)  # ResNet-50's bottlenecks per stage
STAGES: tuple[int, ...] = tuple(range(1, len(STAGE_DEPTHS) + 1))


def block_name(stage: int, index: int) -> str:
    """``"layer3.5"``: the module path of block ``index`` (from 0) of ``stage`` (from 1), as in every checkpoint."""
    return f"layer{stage}.{index}"


def split_block(name: str) -> tuple[int, int]:
    """``"layer3.5"`` -> (3, 5)."""
    stage, index = name.removeprefix("layer").split(".", 1)
    return int(stage), int(index)


def stage_blocks(maps: Mapping[str, Any] | Iterable[str], stage: int) -> list[str]:
    """The block names of ``stage`` present in ``maps`` (a dict keyed by block name, or names), in block order."""
    names = [name for name in maps if name.startswith(f"layer{stage}.")]
    return sorted(names, key=lambda name: split_block(name)[1])


def last_block(maps: Mapping[str, Any] | Iterable[str], stage: int) -> str | None:
    """The last block of ``stage`` present in ``maps``, or None (a model without that attention)."""
    blocks = stage_blocks(maps, stage)
    return blocks[-1] if blocks else None


def all_blocks() -> list[str]:
    pairs = zip(STAGES, STAGE_DEPTHS, strict=True)
    return [block_name(stage, index) for stage, depth in pairs for index in range(depth)]


# --------------------------------------------------------------------------------------------------------- views

VIEWS: tuple[str, ...] = ("whole", "crop")
VIEW_LABELS: dict[str, str] = {"whole": "Whole image", "crop": "Centre crop (as evaluated)"}

# ------------------------------------------------------------------------------------------------ target modes

TARGET_MODES: tuple[str, ...] = ("top1", "shared")  # stable API values
TARGET_MODE_LABELS: dict[str, str] = {"top1": "Each model's top-1", "shared": "One class for all models"}
MAX_CLASS_NAME = 200  # characters: a class name longer than this is refused before any lookup

# --------------------------------------------------------------------------------------------------- CAM methods


@dataclass(frozen=True)
class CamMethod:
    """One CAM method: the grad-cam class that computes it, its label, and one line on what it does."""

    name: str  # stable value used by the API, the CLI and the JSON
    label: str
    grad_cam_class: str  # attribute of the ``pytorch_grad_cam`` package
    note: str  # one line for the page, Markdown with $...$ maths
    class_dependent: bool = True  # False: the map is the same whatever class is explained (EigenCAM)


_SAME_AT_LAST_STAGE = (
    " At the last stage of a ResNet the class score is a plain average of the stage's output, so the gradient is "
    "the same at every position and Grad-CAM, HiResCAM and XGrad-CAM give the same map there."
)

CAM_METHODS: dict[str, CamMethod] = {
    method.name: method
    for method in (
        CamMethod(
            "gradcam",
            "Grad-CAM",
            "GradCAM",
            "Grad-CAM: channel weights are the mean of the gradients, $\\alpha_k = \\frac{1}{Z}\\sum_{ij} "
            "\\partial y / \\partial A^k_{ij}$." + _SAME_AT_LAST_STAGE,
        ),
        CamMethod(
            "gradcam++",
            "Grad-CAM++",
            "GradCAMPlusPlus",
            "Grad-CAM++: like Grad-CAM, but weights positive gradients pixel by pixel, which helps when the class "
            "appears several times.",
        ),
        CamMethod(
            "hirescam",
            "HiResCAM",
            "HiResCAM",
            "HiResCAM: multiplies gradients and activations element-wise before summing, "
            "$L = \\mathrm{ReLU}(\\sum_k \\partial y/\\partial A^k \\odot A^k)$, so the map follows exactly what the "
            "score used." + _SAME_AT_LAST_STAGE,
        ),
        CamMethod(
            "xgradcam",
            "XGrad-CAM",
            "XGradCAM",
            "XGrad-CAM: gradients weighted by the normalised activations, chosen so the map satisfies two "
            "sensitivity axioms." + _SAME_AT_LAST_STAGE,
        ),
        CamMethod(
            "layercam",
            "LayerCAM",
            "LayerCAM",
            "LayerCAM: keeps only positive gradients, pixel by pixel, $L = \\mathrm{ReLU}(\\sum_k "
            "\\mathrm{ReLU}(\\partial y/\\partial A^k) \\odot A^k)$; sharper on early stages.",
        ),
        CamMethod(
            "eigencam",
            "EigenCAM",
            "EigenCAM",
            "EigenCAM: the first principal component of the feature maps; it uses no gradient and does not depend "
            "on the chosen class.",
            class_dependent=False,
        ),
        CamMethod(
            "scorecam",
            "Score-CAM",
            "ScoreCAM",
            "Score-CAM: masks the image with each feature map and weights the maps by the class score they keep; "
            "no gradient, but one forward pass per channel (slow on a CPU).",
        ),
    )
}


def method_label(name: str) -> str:
    method = CAM_METHODS.get(name)
    return method.label if method else name


# ------------------------------------------------------------------------------------------------- bounded text


def quote(value: object, limit: int = 100) -> str:
    """``repr`` of what a user sent, cut to ``limit`` characters, for error messages and logs."""
    text = repr(value) if not isinstance(value, str) else repr(value[: limit + 1])
    return text if len(text) <= limit + 2 else text[:limit] + "...'"

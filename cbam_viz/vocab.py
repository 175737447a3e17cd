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


MAX_SHOWN = 3  # models compared side by side at once, whatever a lineup holds


def family_of(attention: AttentionKind) -> str:
    """The architecture whose blocks carry ``attention`` (a built model's ``config.attention``)."""
    return next(arch for arch, kind in ARCH_ATTENTION.items() if kind == attention)


@dataclass(frozen=True)
class ModelSpec:
    """One model a page or a run can compare: its key, its architecture (family) and its title.

    The key names the model in the JSON's ``models``, the page's element ids and lesson links; for the paper's models it
    is the architecture itself, for a model card's model the card's ``id``.
    """

    id: str
    family: str  # a key of ARCH_ATTENTION
    title: str


@dataclass(frozen=True)
class Lineup:
    """The models one page or one run can compare, in display order: the paper's three, or a model card's."""

    models: tuple[ModelSpec, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        """The models' keys in display order."""
        return tuple(spec.id for spec in self.models)

    def spec(self, model_id: str) -> ModelSpec:
        """The model called ``model_id`` (KeyError when the lineup has none)."""
        for spec in self.models:
            if spec.id == model_id:
                return spec
        raise KeyError(model_id)

    def title(self, model_id: str) -> str:
        """The model's title; the key itself for a model the lineup does not hold (old summaries, hand-built runs)."""
        return self.spec(model_id).title if model_id in self.ids else ARCH_TITLES.get(model_id, model_id)

    def family(self, model_id: str) -> str:
        """The model's architecture."""
        return self.spec(model_id).family

    @property
    def default_ids(self) -> tuple[str, ...]:
        """What a page or run shows when nobody chose: the first ``MAX_SHOWN`` models."""
        return self.ids[:MAX_SHOWN]

    @property
    def is_paper(self) -> bool:
        """Whether these are the paper's three architectures, keyed by architecture."""
        return self == PAPER_LINEUP


PAPER_LINEUP = Lineup(tuple(ModelSpec(arch, arch, ARCH_TITLES[arch]) for arch in ARCH_ORDER))


def recorded_lineup(models: Mapping[str, Any]) -> Lineup:
    """The models a study's ``summary.json`` records (its ``models`` block), in its own order, each with the family
    and title it records; a summary written before model cards records neither, and its keys are architectures."""
    specs = []
    for model_id, block in models.items():
        found = block if isinstance(block, Mapping) else {}
        family = str(found.get("family") or model_id)
        specs.append(ModelSpec(str(model_id), family, str(found.get("title") or ARCH_TITLES.get(family, model_id))))
    return Lineup(tuple(specs))


def attention_rank(family: str) -> int:
    """How much attention an architecture's blocks carry: 0 none, 1 SE's channel gates, 2 CBAM's two gates."""
    return ARCH_ORDER.index(family) if family in ARCH_ORDER else 0


def has_channel_attention(arch: str) -> bool:
    """Whether ``arch`` has channel gates (SE or CBAM)."""
    return ARCH_ATTENTION.get(arch) is not None


def has_spatial_attention(arch: str) -> bool:
    """Whether ``arch`` has spatial gates (CBAM only)."""
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
    """Every block name of a ResNet-50, ``layer1.0`` to ``layer4.2``, in order."""
    pairs = zip(STAGES, STAGE_DEPTHS, strict=True)
    return [block_name(stage, index) for stage, depth in pairs for index in range(depth)]


# --------------------------------------------------------------------------------------------------------- views

VIEWS: tuple[str, ...] = ("whole", "crop")

# ------------------------------------------------------------------------------------------------ target modes

TARGET_MODES: tuple[str, ...] = ("top1", "shared")  # stable API values
MAX_CLASS_NAME = 200  # characters: a class name longer than this is refused before any lookup

# --------------------------------------------------------------------------------------------------- CAM methods


@dataclass(frozen=True)
class CamMethod:
    """One CAM method: the grad-cam class that computes it and its label (its one-line note is in the catalogues)."""

    name: str  # stable value used by the API, the CLI and the JSON
    label: str
    grad_cam_class: str  # attribute of the ``pytorch_grad_cam`` package
    class_dependent: bool = True  # False: the map is the same whatever class is explained (EigenCAM)


CAM_METHODS: dict[str, CamMethod] = {
    method.name: method
    for method in (
        CamMethod("gradcam", "Grad-CAM", "GradCAM"),
        CamMethod("gradcam++", "Grad-CAM++", "GradCAMPlusPlus"),
        CamMethod("hirescam", "HiResCAM", "HiResCAM"),
        CamMethod("xgradcam", "XGrad-CAM", "XGradCAM"),
        CamMethod("layercam", "LayerCAM", "LayerCAM"),
        CamMethod("eigencam", "EigenCAM", "EigenCAM", class_dependent=False),
        CamMethod("scorecam", "Score-CAM", "ScoreCAM"),
    )
}


def method_label(name: str) -> str:
    """A CAM method's display label (its name when unknown)."""
    method = CAM_METHODS.get(name)
    return method.label if method else name


# ------------------------------------------------------------------------------------------------- bounded text


MAX_DIGITS = 9  # a number a visitor types (a class index, keep-top-k's K) has at most this many digits


def whole_number(value: str) -> int | None:
    """ASCII digits (at most ``MAX_DIGITS``) as an int, else None: ``str.isdigit`` accepts "²", which ``int``
    refuses, and ``int`` refuses more than 4 300 digits; both would surface as a bare ValueError."""
    value = value.strip()
    if not value or len(value) > MAX_DIGITS or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def quote(value: object, limit: int = 100) -> str:
    """``repr`` of what a user sent, cut to ``limit`` characters, for error messages and logs."""
    text = repr(value) if not isinstance(value, str) else repr(value[: limit + 1])
    return text if len(text) <= limit + 2 else text[:limit] + "...'"

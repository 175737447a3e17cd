"""Fine-tuned-like checkpoints for model cards: random weights with a 5-class head, each saved the way its publisher's
code saves it, with an oracle that computes the publisher's own logits.

* ``cbam_flowers``: the official CBAM release's layout (``{'state_dict': ...}`` with DataParallel's ``module.``),
  oracle: the equations read straight from those tensors (``reference_cbam_resnet50``);
* ``resnet_flowers``: torchvision's ``resnet50(num_classes=5)``, its ``state_dict`` saved as is; oracle: that model;
* ``se_flowers``: timm's ``seresnet50(num_classes=5)``, its ``state_dict`` saved as is; oracle: that model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from cbam_viz.vocab import ARCH_TITLES
from tests.helpers.checkpoint_layouts import (
    official_cbam_tensors,
    randomize_batchnorm,
    reference_cbam_resnet50,
    save_official,
)

FLOWERS = ("daisy", "dandelion", "rose", "sunflower", "tulip")


@dataclass
class CardModelFile:
    """One checkpoint on disk and the function that gives its publisher's logits."""

    id: str
    family: str
    path: Path
    oracle: Callable[[torch.Tensor], torch.Tensor]


def cbam_official(folder: Path, seed: int = 5) -> CardModelFile:
    tensors = official_cbam_tensors(seed=seed, num_classes=len(FLOWERS))
    path = save_official(folder / "cbam_flowers.pth", tensors, extras=True, legacy=False)
    return CardModelFile("cbam_flowers", "cbam_resnet50", path, lambda x: reference_cbam_resnet50(tensors, x))


def resnet_torchvision(folder: Path, seed: int = 6) -> CardModelFile:
    import torchvision

    torch.manual_seed(seed)
    model = randomize_batchnorm(torchvision.models.resnet50(num_classes=len(FLOWERS)), seed)
    path = folder / "resnet_flowers.pth"
    torch.save(model.state_dict(), path)
    return CardModelFile("resnet_flowers", "resnet50", path, model)


def se_timm(folder: Path, seed: int = 7) -> CardModelFile:
    import timm

    torch.manual_seed(seed)
    model = randomize_batchnorm(timm.create_model("seresnet50", pretrained=False, num_classes=len(FLOWERS)), seed)
    path = folder / "se_flowers.pth"
    torch.save(model.state_dict(), path)
    return CardModelFile("se_flowers", "se_resnet50", path, model)


def write_labels(folder: Path, names: tuple[str, ...] = FLOWERS) -> Path:
    path = folder / "labels.txt"
    path.write_text("".join(f"{name}\n" for name in names), encoding="utf-8")
    return path


def write_card(
    folder: Path,
    models: list[CardModelFile],
    extra: str = "",
    name: str = "models.toml",
    resize: int = 256,
    crop: int = 224,
) -> Path:
    """A card listing ``models`` with the labels file and a preprocessing table each; ``extra`` is appended to the
    first model's table (before its preprocess). A small ``resize`` and ``crop`` keep CPU tests quick."""
    write_labels(folder)
    tables = []
    for number, model in enumerate(models):
        lines = [
            "[[model]]",
            f'id = "{model.id}"',
            f'file = "{model.path.name}"',
            f'title = "{ARCH_TITLES[model.family]}, {model.id.removesuffix("_flowers")} flowers"',
            'labels = "labels.txt"',
        ]
        if number == 0 and extra:
            lines.append(extra)
        lines += ["[model.preprocess]", f"resize = {resize}", f"crop = {crop}", 'interpolation = "bilinear"']
        tables.append("\n".join(lines))
    path = folder / name
    path.write_text("\n\n".join(tables) + "\n", encoding="utf-8")
    return path

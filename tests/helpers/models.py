"""Models for tests: small, frozen, with random BatchNorm statistics so that every gate computes something real."""

from pathlib import Path

import torch
from safetensors.torch import save_file

from cbam_viz.demo.shapes import CLASSES
from cbam_viz.model.resnet import ARCHS, ArchConfig, build_resnet
from cbam_viz.weights.demo_set import demo_dir, model_record, write_demo_metadata
from cbam_viz.weights.registry import IMAGENET_MEAN, IMAGENET_STD

TINY = ArchConfig(base_width=8, stem_pool="none", num_classes=len(CLASSES))
"""The demo set's layout at 1/8 width (no stem pool, the ten shapes): small enough for any test to build."""
NARROW = ArchConfig(base_width=8)
"""ImageNet's layout (stem pool, 1000 classes) at 1/8 width: a paper checkpoint's keys, small enough to write."""


def random_model(arch: str, seed: int = 0, *, config: ArchConfig = TINY, frozen: bool = True) -> torch.nn.Module:
    """``arch`` with random weights and random BatchNorm statistics (a fresh BatchNorm is the identity)."""
    torch.manual_seed(seed)
    model = build_resnet(arch, config)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval().requires_grad_(not frozen)


def write_demo_set(root: Path, models: dict[str, torch.nn.Module], resize: int) -> Path:
    """A weights folder holding ``models`` (built with ``TINY``) as a demo set in the bundled set's file layout."""
    demo = demo_dir(root)
    demo.mkdir(parents=True, exist_ok=True)
    records = {}
    for arch, model in models.items():
        tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(demo / f"{arch}.safetensors"), metadata={"arch": arch})
        records[arch] = model_record(demo / f"{arch}.safetensors")
    write_demo_metadata(
        demo,
        classes=list(CLASSES),
        preprocess={
            "resize": resize,
            "crop": None,
            "interpolation": "bilinear",
            "mean": IMAGENET_MEAN,
            "std": IMAGENET_STD,
        },
        arch_config={"base_width": TINY.base_width, "stem_pool": TINY.stem_pool, "num_classes": TINY.num_classes},
        models=records,
    )
    return root


def tiny_demo_set(root: Path) -> Path:
    """A demo set of random 1/8-width models at 48 px (fast studies), in the real demo set's layout."""
    return write_demo_set(root, {arch: random_model(arch, seed) for seed, arch in enumerate(ARCHS)}, resize=48)


def tiny_input(size: int = 48, seed: int = 1) -> torch.Tensor:
    """A seeded random (1, 3, size, size) input for the tiny models."""
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))

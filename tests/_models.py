"""Models for tests: small, frozen, with random BatchNorm statistics so that every gate computes something real."""

from pathlib import Path

import torch
from safetensors.torch import save_file

from cbam_viz.demo.shapes import CLASSES
from cbam_viz.model.resnet import ARCHS, ArchConfig, build_resnet
from cbam_viz.weights.demo_set import demo_dir, model_record, write_demo_metadata
from cbam_viz.weights.registry import IMAGENET_MEAN, IMAGENET_STD


def random_model(arch: str, config: ArchConfig, seed: int = 0, *, frozen: bool = True) -> torch.nn.Module:
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
    """A weights folder holding ``models`` as a demo set in the bundled set's layout (1/8 width, no stem pool)."""
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
        arch_config={"base_width": 8, "stem_pool": "none", "num_classes": len(CLASSES)},
        models=records,
    )
    return root


def tiny_demo_set(root: Path) -> Path:
    """A demo set of random 1/8-width models at 48 px (fast studies), in the real demo set's layout."""
    models = {}
    for seed, arch in enumerate(ARCHS):
        torch.manual_seed(seed)
        model = build_resnet(arch, ArchConfig(base_width=8, stem_pool="none", num_classes=len(CLASSES)))
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.3, 0.3)
        models[arch] = model
    return write_demo_set(root, models, resize=48)

"""Models for tests: small, frozen, with random BatchNorm statistics so that every gate computes something real."""

import torch

from cbam_viz.resnet import ArchConfig, build_resnet


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

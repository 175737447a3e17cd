"""Demo training: a few steps lower the loss and an interrupted run resumes where it stopped."""

from pathlib import Path

import numpy as np
import torch

from cbam_viz.shapes import generate
from cbam_viz.train import Recipe, train_one


def _tiny() -> tuple[Recipe, tuple[np.ndarray, np.ndarray]]:
    recipe = Recipe(image_size=32, base_width=4, train_images=32, cycle_epochs=(40,), cycle_lrs=(3e-3,), batch_size=16,
                    warmup_steps=1)
    images, labels, _ = generate(0, 32, 32)
    return recipe, (images, labels)


def test_a_few_steps_lower_the_loss(tmp_path: Path) -> None:
    recipe, data = _tiny()
    _, losses = train_one("cbam_resnet50", recipe, data, None, tmp_path, torch.device("cpu"), max_steps=40)
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    recipe, data = _tiny()
    train_one("se_resnet50", recipe, data, None, tmp_path, torch.device("cpu"), max_steps=4, checkpoint_every=2)
    state = torch.load(tmp_path / "se_resnet50.state.pt", weights_only=True)
    assert state["step"] == 4
    _, losses = train_one("se_resnet50", recipe, data, None, tmp_path, torch.device("cpu"), max_steps=3)
    assert len(losses) == 3
    assert torch.load(tmp_path / "se_resnet50.state.pt", weights_only=True)["step"] == 7

"""Demo training: a few steps lower the loss, an interrupted run resumes where it stopped, and the localisation term
rewards exactly the cells the app draws on the object."""

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cbam_viz.analysis.cam import cam_method_for, compute_cam
from cbam_viz.analysis.capture import capture_pass
from cbam_viz.demo.shapes import generate
from cbam_viz.demo.train import Recipe, _resumable, class_map, localisation_loss, train_one
from cbam_viz.imaging.view import ModelView, cell_centre_pixels, map_to_image
from tests.helpers.models import random_model


def _tiny(localisation: float = 0.0) -> tuple[Recipe, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    recipe = Recipe(
        image_size=32,
        base_width=4,
        train_images=32,
        cycle_epochs=(40,),
        cycle_lrs=(3e-3,),
        cycle_localisation=(localisation,),
        batch_size=16,
        warmup_steps=1,
    )
    return recipe, generate(0, 32, 32)


def test_a_few_steps_lower_the_loss(tmp_path: Path) -> None:
    recipe, data = _tiny()
    _, losses = train_one("cbam_resnet50", recipe, data, None, tmp_path, torch.device("cpu"), max_steps=40)
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_a_few_steps_with_the_localisation_term_lower_the_loss(tmp_path: Path) -> None:
    recipe, data = _tiny(localisation=1.0)
    _, losses = train_one("resnet50", recipe, data, None, tmp_path, torch.device("cpu"), max_steps=40)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def test_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    recipe, data = _tiny()
    train_one("se_resnet50", recipe, data, None, tmp_path, torch.device("cpu"), max_steps=4, checkpoint_every=2)
    state = torch.load(tmp_path / "se_resnet50.state.pt", weights_only=True)
    assert state["step"] == 4
    _, losses = train_one("se_resnet50", recipe, data, None, tmp_path, torch.device("cpu"), max_steps=3)
    assert len(losses) == 3
    assert torch.load(tmp_path / "se_resnet50.state.pt", weights_only=True)["step"] == 7


def test_a_finished_run_resumes_into_an_appended_cycle_only() -> None:
    saved = asdict(Recipe(cycle_epochs=(3, 2), cycle_lrs=(2e-3, 1e-3), cycle_localisation=(0.0, 0.0)))
    assert _resumable(
        saved, Recipe(cycle_epochs=(3, 2, 1), cycle_lrs=(2e-3, 1e-3, 5e-4), cycle_localisation=(0.0, 0.0, 1.0))
    )
    assert not _resumable(
        saved, Recipe(cycle_epochs=(3, 2, 1), cycle_lrs=(2e-3, 1e-3, 5e-4), cycle_localisation=(0.0, 1.0, 1.0))
    )  # a finished cycle changed
    assert not _resumable(
        saved,
        replace(Recipe(cycle_epochs=(3, 2), cycle_lrs=(2e-3, 1e-3), cycle_localisation=(0.0, 0.0)), batch_size=32),
    )


def test_recipe_cycles_must_have_one_entry_each() -> None:
    with pytest.raises(ValueError, match="one entry per cycle"):
        Recipe(cycle_epochs=(3, 2), cycle_lrs=(1e-3,), cycle_localisation=(0.0, 0.0))


def test_training_samples_the_mask_where_the_app_draws_each_cell() -> None:
    """A one-hot 6x6 map drawn by map_to_image peaks exactly on the pixel the localisation term samples."""
    view = ModelView("whole", (96, 96), (0.0, 0.0, 1.0, 1.0), "")
    centres = cell_centre_pixels(6, 96)
    assert list(centres) == [0, 16, 32, 48, 64, 80]  # receptive-field centres of a stride-16 grid
    for row, col in [(0, 0), (2, 5), (4, 1)]:
        cam = np.zeros((6, 6), dtype=np.float32)
        cam[row, col] = 1.0
        drawn = map_to_image(cam, view, (96, 96))
        assert np.unravel_index(np.nanargmax(drawn), drawn.shape) == (centres[row], centres[col])


def test_localisation_loss_rewards_the_peak_on_the_object() -> None:
    masks = torch.zeros(1, 96, 96, dtype=torch.bool)
    masks[0, 28:40, 28:40] = True  # covers the centre of cell (2, 2) only: pixel (32, 32)
    on, off = torch.zeros(1, 6, 6), torch.zeros(1, 6, 6)
    on[0, 2, 2], off[0, 0, 5] = 10.0, 10.0
    assert localisation_loss(on, masks) < 0.01 < localisation_loss(off, masks)
    cam = torch.zeros(1, 6, 6, requires_grad=True)
    localisation_loss(cam, masks).backward()
    assert cam.grad[0, 2, 2] < 0 and (cam.grad[0].flatten()[torch.arange(36) != 14] > 0).all()


def test_localisation_loss_leaves_out_objects_between_cell_centres() -> None:
    masks = torch.zeros(2, 96, 96, dtype=torch.bool)
    masks[0, 4:12, 4:12] = True  # between the centres at 0 and 16: no cell can point at it
    masks[1, 40:56, 40:56] = True  # holds the centre of cell (3, 3)
    cam = torch.randn(2, 6, 6)
    assert torch.isclose(localisation_loss(cam, masks), localisation_loss(cam[1:], masks[1:]))
    assert localisation_loss(cam[:1], masks[:1]).item() == 0.0


def test_the_trained_class_map_is_the_grad_cam_the_app_shows() -> None:
    """The localisation term must move the very map the app draws: grad-cam's Grad-CAM at stage 4 of a GAP + linear
    head is the class map, ReLU'd and divided by the number of cells."""
    model = random_model("cbam_resnet50", config=Recipe().arch_config())
    x = torch.randn(1, 3, 96, 96)
    captured = capture_pass(model, x, stage=4, target=3)
    shown = compute_cam(cam_method_for("gradcam", model), model, x, captured, stage=4)
    with torch.no_grad():
        trained = class_map(model.forward_features(x), model.fc, torch.tensor([3]))[0]
    np.testing.assert_allclose(shown, trained.clamp(min=0).numpy() / trained.numel(), rtol=1e-4, atol=1e-6)
    assert shown.max() > 0

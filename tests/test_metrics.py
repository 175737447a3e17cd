"""The sanity checks' numbers, against cases computed by hand: ranks, SSIM, deletion/insertion, boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cbam_viz.analysis import metrics
from cbam_viz.checks.curves import perturbation_curve


def test_spearman_is_a_rank_correlation_and_nan_for_a_flat_map() -> None:
    base = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert metrics.spearman(base, base**3) == pytest.approx(1.0)  # any increasing transform keeps the ranks
    assert metrics.spearman(base, -base) == pytest.approx(-1.0)
    # ranks (1, 2, 3) against (1, 3, 2): 1 - 6 * (0 + 1 + 1) / (3 * 8) = 0.5
    assert metrics.spearman(np.array([[1.0, 2.0, 3.0]]), np.array([[10.0, 30.0, 20.0]])) == pytest.approx(0.5)
    assert math.isnan(metrics.spearman(base, np.zeros_like(base)))  # an all-zero CAM has no ranking
    with_nan = np.array([[1.0, 2.0, 3.0, np.nan]])
    assert metrics.spearman(with_nan, np.array([[1.0, 2.0, 3.0, -50.0]])) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.spearman(base, np.ones((3, 3)))


def test_ssim_compares_shapes_not_units() -> None:
    rng = np.random.default_rng(0)
    first = rng.random((12, 12))
    assert metrics.ssim(first, 5 * first + 2) == pytest.approx(1.0)  # min-max scaled first
    assert metrics.ssim(first, rng.random((12, 12))) < 0.5
    assert math.isnan(metrics.ssim(first, np.ones((12, 12))))
    assert math.isnan(metrics.ssim(first[:2, :2], first[:2, :2]))  # no 3x3 window fits
    assert metrics.ssim(first[:5, :6], first[:5, :6]) == pytest.approx(1.0)  # a 5x5 window on a small grid


def test_pixel_ranking_ties_are_seeded_and_nan_comes_last() -> None:
    saliency = np.array([[0.0, 3.0], [np.nan, 0.0]])
    order = metrics.rank_pixels(saliency, seed=0)
    assert order[0] == 1 and order[-1] == 2 and set(order[1:3]) == {0, 3}
    ties = np.zeros((8, 8))
    assert np.array_equal(metrics.rank_pixels(ties, 3), metrics.rank_pixels(ties, 3))
    assert not np.array_equal(metrics.rank_pixels(ties, 3), metrics.rank_pixels(ties, 4))
    assert not np.array_equal(metrics.rank_pixels(ties, 3), np.arange(64))  # not row by row
    assert sorted(metrics.random_ranking(10, 1)) == list(range(10))


def test_step_counts_and_blend_switch_whole_pixels() -> None:
    assert metrics.step_counts(10, 3).tolist() == [0, 3, 7, 10]
    start, end = np.zeros((2, 2, 2)), np.ones((2, 2, 2))
    order = np.array([3, 0, 1, 2])
    batch = metrics.blend_steps(start, end, order, steps=4)
    assert batch.shape == (5, 2, 2, 2)
    assert batch[1].tolist() == [[[0, 0], [0, 1]]] * 2  # pixel 3 (row 1, col 1) first, in both channels
    assert batch[2].tolist() == [[[1, 0], [0, 1]]] * 2
    assert batch[0].sum() == 0 and batch[4].sum() == 8
    with pytest.raises(ValueError):
        metrics.blend_steps(start, end, np.array([0, 1]), steps=4)


def test_deletion_and_insertion_of_a_toy_model_match_the_hand_computation() -> None:
    """A 2x2 image, a "model" whose probability is the mean of its pixels, a grey (zero) substrate, 4 steps."""
    image = np.array([[0.4, 0.3], [0.2, 0.1]])
    saliency = np.array([[9.0, 5.0], [2.0, 1.0]])  # ranks the pixels 0.4, 0.3, 0.2, 0.1
    order = metrics.rank_pixels(saliency)

    def probability(batch: np.ndarray) -> np.ndarray:
        return batch.reshape(len(batch), -1).mean(axis=1)

    deletion = perturbation_curve(probability, image, np.zeros_like(image), order, steps=4)
    insertion = perturbation_curve(probability, np.zeros_like(image), image, order, steps=4)
    assert deletion.probs == pytest.approx([0.25, 0.15, 0.075, 0.025, 0.0])
    assert insertion.probs == pytest.approx([0.0, 0.1, 0.175, 0.225, 0.25])
    # trapezoids of width 1/4: (0.25/2 + 0.15 + 0.075 + 0.025 + 0/2) / 4 and (0 + 0.1 + 0.175 + 0.225 + 0.125) / 4
    assert deletion.auc == pytest.approx(0.09375)
    assert insertion.auc == pytest.approx(0.15625)
    assert metrics.curve_auc(np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert metrics.curve_auc(np.array([0.0, 1.0, 1.0]), np.array([0.0, 0.1, 1.0])) == pytest.approx(0.95)


def test_monotone_violation_is_the_largest_step_against_the_direction() -> None:
    assert metrics.monotone_violation(np.array([1.0, 0.5, 0.6, 0.2]), decreasing=True) == pytest.approx(0.1)
    assert metrics.monotone_violation(np.array([1.0, 0.5, 0.2]), decreasing=True) == 0.0
    assert metrics.monotone_violation(np.array([0.0, 0.5, 0.3, 0.9]), decreasing=False) == pytest.approx(0.2)


def test_box_mask_counts_pixel_centres() -> None:
    mask = metrics.box_mask((1.0, 0.0, 3.0, 2.0), (4, 3))  # 4 wide, 3 high: centres x 1.5, 2.5 and y 0.5, 1.5
    assert mask.tolist() == [[False, True, True, False], [False, True, True, False], [False, False, False, False]]
    assert metrics.box_mask((-10, -10, 100, 100), (4, 3)).all()  # clipped to the picture
    for bad in ((3, 0, 1, 2), (0, 0, math.nan, 2), (10, 10, 20, 20), (1.1, 0, 1.4, 2), (0, 1, 2)):
        with pytest.raises(ValueError):
            metrics.box_mask(bad, (4, 3))


def test_pointing_and_energy_on_a_box_by_hand() -> None:
    cam = np.zeros((6, 8))
    cam[1, 2], cam[4, 6] = 3.0, 1.0
    mask = metrics.box_mask((2, 1, 4, 3), (8, 6))  # covers (row 1, col 2), the peak
    assert metrics.pointing_hit(cam, mask) and metrics.energy_inside(cam, mask) == pytest.approx(0.75)
    other = metrics.box_mask((5, 3, 8, 6), (8, 6))
    assert not metrics.pointing_hit(cam, other) and metrics.energy_inside(cam, other) == pytest.approx(0.25)


def test_pointing_game_counts_a_hit_when_any_tied_maximum_is_inside() -> None:
    """Two pixels share the maximum: the first in reading order lies outside the mask, the second inside. A hit,
    whichever comes first; with no tied maximum inside (nor within the tolerance), a miss."""
    cam = np.zeros((6, 8))
    cam[0, 7], cam[4, 1] = 2.0, 2.0  # (0, 7) comes first in reading order
    inside_second = metrics.box_mask((0, 3, 3, 6), (8, 6))  # covers (row 4, col 1) only
    assert metrics.pointing_hit(cam, inside_second)
    assert metrics.pointing_hit(cam[::-1].copy(), inside_second[::-1].copy())
    neither = metrics.box_mask((3, 0, 5, 2), (8, 6))  # rows 0-1, cols 3-4: no tied maximum inside
    assert not metrics.pointing_hit(cam, neither)
    assert metrics.pointing_hit(cam, neither, tolerance=3.0)  # (0, 7) is 3 pixels from (0, 4), (4, 1) farther
    assert not metrics.pointing_hit(cam, neither, tolerance=2.5)

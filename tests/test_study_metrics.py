"""A study's numbers on hand-made cases: pointing with tolerance, energy, MaxBoxAccV2, McNemar, the bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cbam_viz.study import measures, stats


def test_pointing_counts_the_tolerance_in_pixels() -> None:
    values = np.zeros((12, 20), dtype=np.float32)
    values[2, 10] = 1.0  # the peak, 6 px right of the mask's last column (4)
    mask = np.zeros((12, 20), dtype=bool)
    mask[:, :5] = True
    strict = measures.pointing_and_energy(values, measures.mask_region(mask, tolerance=5.0))
    assert strict["pointing"] is False and strict["pointing_tolerant"] is False
    tolerant = measures.pointing_and_energy(values, measures.mask_region(mask, tolerance=6.0))
    assert tolerant["pointing"] is False and tolerant["pointing_tolerant"] is True
    values[5, 3] = 2.0  # now the peak is inside: strict hit
    assert measures.pointing_and_energy(values, measures.mask_region(mask, tolerance=0.0))["pointing"] is True


def test_energy_is_the_share_of_mass_above_the_minimum_inside_the_region() -> None:
    values = np.full((4, 4), 1.0)
    values[0, 0] = 4.0  # mass above the minimum: 3 inside, and 1 + 1 outside
    values[3, 3] = 2.0
    values[3, 2] = 2.0
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2, :2] = True
    assert measures.pointing_and_energy(values, measures.mask_region(mask))["energy"] == pytest.approx(3 / 5)
    with_nan = values.copy()
    with_nan[3, 3] = np.nan  # unseen pixels do not count
    assert measures.pointing_and_energy(with_nan, measures.mask_region(mask))["energy"] == pytest.approx(3 / 4)
    region = measures.box_region([(0, 0, 2, 2)], (4, 4))  # pixel centres 0.5 and 1.5 lie in it: the same 2x2
    assert np.array_equal(region.mask, mask) and region.boxes.tolist() == [[0, 0, 1, 1]]
    assert measures.area_share(with_nan, region) == pytest.approx(4 / 15)


def test_box_iou_counts_pixels_inclusively() -> None:
    assert measures.box_iou(np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 9]]))[0, 0] == 1.0
    # 10x10 and the 10x5 half: 50 / 100
    assert measures.box_iou(np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 4]]))[0, 0] == pytest.approx(0.5)
    assert measures.box_iou(np.array([[0, 0, 1, 1]]), np.array([[5, 5, 6, 6]]))[0, 0] == 0.0


def test_box_iou_curve_on_a_two_level_map() -> None:
    """A 0.5 plateau (rows 4-11, cols 2-13: 8x12) holding a peak of 1 (rows 5-6, cols 3-4: 2x2) and a far speck."""
    values = np.zeros((16, 20))
    values[4:12, 2:14] = 0.5
    values[5:7, 3:5] = 1.0
    values[14, 18] = 0.3  # a separate component: its own box, never the best one
    truth = np.array([[2, 4, 13, 11]])  # the plateau's box
    curve = measures.box_iou_curve(values, truth)
    assert curve.shape == measures.THRESHOLDS.shape
    below = measures.THRESHOLDS < 0.5
    assert np.allclose(curve[below], 1.0)  # the plateau's component is exactly the true box
    assert np.allclose(curve[~below], 4 / 96)  # only the 2x2 peak is strictly above 0.5
    assert measures.box_iou_curve(np.zeros((5, 5)), truth).max() == 0.0  # a flat map has no box


def test_box_iou_curve_of_a_large_picture_runs_at_the_protocol_s_resolution() -> None:
    values = np.zeros((400, 600))
    values[100:300, 150:450] = 1.0  # a 300x200 plateau: its box at 224/600 scale is the true box scaled alike
    truth = np.array([[150, 100, 449, 299]])
    curve = measures.box_iou_curve(values, truth)
    assert curve[0] == pytest.approx(1.0, abs=0.02) and curve[50] == pytest.approx(1.0, abs=0.02)
    wider = np.array([[150, 100, 599, 299]])  # 450 px wide: IoU 2/3 at any scale
    assert measures.box_iou_curve(values, wider)[50] == pytest.approx(2 / 3, abs=0.02)


def test_max_box_accuracy_takes_the_best_threshold_per_delta() -> None:
    thresholds = np.array([0.1, 0.5, 0.9])
    curves = np.array(
        [
            [0.8, 0.4, 0.1],
            [0.2, 0.6, 0.1],
            [0.1, 0.75, 0.35],
        ]
    )
    result = measures.max_box_accuracy(curves, thresholds)
    # delta 0.3: [2/3, 3/3, 1/3] -> 1 at 0.5; delta 0.5: [1/3, 2/3, 0] -> 2/3 at 0.5; delta 0.7: [1/3, 1/3, 0] -> 1/3
    assert result["by_iou"] == pytest.approx({"30": 1.0, "50": 2 / 3, "70": 1 / 3})
    assert result["best_threshold"] == {"30": 0.5, "50": 0.5, "70": 0.1}
    assert result["value"] == pytest.approx((1 + 2 / 3 + 1 / 3) / 3)


def test_mcnemar_against_textbook_examples() -> None:
    # Agresti, Categorical Data Analysis: presidential approval, b = 150, c = 86 (corrected chi-square 16.82)
    test = stats.mcnemar(150, 86)
    assert test.statistic == pytest.approx(63**2 / 236) and test.statistic == pytest.approx(16.818, abs=1e-3)
    assert test.p_value == pytest.approx(4.115e-5, rel=1e-2) and "chi-square" in test.test
    # few discordant pairs: exact two-sided binomial, P = 2 * (C(7,0) + C(7,1)) / 2^7 = 0.125
    small = stats.mcnemar(1, 6)
    assert small.test == "exact binomial" and small.p_value == pytest.approx(0.125)
    assert stats.mcnemar(0, 0).p_value == 1.0 and stats.mcnemar(3, 3).p_value == pytest.approx(1.0)


def test_paired_difference_keeps_the_pairs() -> None:
    first = np.array([1, 1, 1, 0, 1, 0, 1, 1, 1, 1] * 4, dtype=float)
    second = np.array([1, 0, 1, 0, 0, 0, 1, 0, 1, 1] * 4, dtype=float)
    result = stats.paired_difference(first, second, resamples=500)
    assert result["difference"] == pytest.approx(0.3) and result["n"] == 40
    low, high = result["ci"]
    assert low <= 0.3 <= high and low >= 0.0  # second never hits where first misses: no resample goes negative
    assert result["first_only"] == 12 and result["second_only"] == 0
    assert result["p_value"] == pytest.approx(stats.mcnemar(12, 0).p_value)
    floats = stats.paired_difference(first + 0.5, second, resamples=100)
    assert floats["p_value"] is None and floats["difference"] == pytest.approx(0.8)
    with pytest.raises(ValueError):
        stats.paired_difference(first, second[:-1])


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(7)
    truth, trials, covered = 0.3, 300, 0
    for trial in range(trials):
        sample = rng.random(80) < truth
        low, high = stats.bootstrap_mean(sample, resamples=400, seed=trial)["ci"]
        covered += low <= truth <= high
    assert 0.89 <= covered / trials <= 0.99


def test_bootstrap_of_nothing_and_of_one() -> None:
    empty = stats.bootstrap_mean(np.array([np.nan]))
    assert empty == {"value": None, "ci": [None, None], "n": 0}
    one = stats.bootstrap_mean(np.array([0.25]))
    assert one["value"] == 0.25 and one["ci"] == [0.25, 0.25] and not math.isnan(one["ci"][0])


def test_atlas_class_specificity_on_hand_made_excitations(tmp_path) -> None:
    from cbam_viz.study.summary import Atlas

    agnostic, specific = Atlas(), Atlas()
    for label in (0, 1, 2):
        for noise in (-0.1, 0.1):
            # the same excitation for every class, spread only within classes: specificity 0
            agnostic.add("se_resnet50", label, {"layer1.0": np.array([0.5 + noise, 0.5 - noise])})
            # set by the class alone: specificity 1
            specific.add("se_resnet50", label, {"layer4.2": np.array([0.2 * label, 1.0 - 0.2 * label])})
    assert agnostic.summary()["se_resnet50"]["layer1.0"]["class_specificity"] == pytest.approx(0.0, abs=1e-12)
    assert specific.summary()["se_resnet50"]["layer4.2"]["class_specificity"] == pytest.approx(1.0)
    mixed = Atlas()  # class means 0.2 apart, each with a within-class spread of +-0.1
    for label, centre in ((0, 0.4), (1, 0.6)):
        for noise in (-0.1, 0.1):
            mixed.add("cbam_resnet50", label, {"layer2.0": np.array([centre + noise])})
    # grand mean 0.5; between = 4 * 0.1^2 = 0.04; total = 4 * 0.1^2 + 4 * 0.1^2 = 0.08 (corner values 0.3,0.5,0.5,0.7)
    assert mixed.summary()["cbam_resnet50"]["layer2.0"]["class_specificity"] == pytest.approx(0.5)
    specific.save(tmp_path / "a.npz")
    loaded = Atlas.load(tmp_path / "a.npz")
    loaded.merge(agnostic)
    assert loaded.summary()["se_resnet50"]["layer4.2"]["images"] == 6
    assert loaded.summary()["se_resnet50"]["layer1.0"]["chance"] == pytest.approx(2 / 5)
    assert np.allclose(loaded.class_means()["se_resnet50/layer4.2"][:, 0], [0.0, 0.2, 0.4])
    assert loaded.summary()["se_resnet50"]["layer4.2"]["class_specificity"] == pytest.approx(1.0)
    assert np.allclose(loaded.class_means()["se_resnet50/layer1.0"], 0.5)


def test_published_accuracies_come_from_the_weights_registry() -> None:
    from cbam_viz.study.engine import published_accuracy

    assert published_accuracy("resnet50.tv_v1")["top1"] == pytest.approx(0.7613)
    official = published_accuracy("cbam_resnet50.official")
    assert official["top1"] == pytest.approx(0.77622) and official["top5"] == pytest.approx(0.93948)
    assert "centre crop 224" in official["eval_transform"]
    assert published_accuracy(None) is None and published_accuracy("cbam_resnet50.demo") is None

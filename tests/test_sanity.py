"""Sanity checks of the maps: randomisation, random logit, deletion/insertion, pointing on a region."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_analysis import validate

from cbam_viz.analysis import metrics
from cbam_viz.analysis.models import get_models
from cbam_viz.analysis.results import Analysis, ModelResult
from cbam_viz.analysis.run import run_model
from cbam_viz.analysis.schema import ANALYSIS_JSON_SCHEMA
from cbam_viz.checks import common as checks_common
from cbam_viz.checks import curves as checks_curves
from cbam_viz.checks import pointing as checks_pointing
from cbam_viz.checks import randomisation as checks_randomisation
from cbam_viz.demo.evaluate import HELDOUT_SEED
from cbam_viz.demo.shapes import CLASSES, render_sample
from cbam_viz.errors import CbamVizError
from cbam_viz.imaging.view import ModelView, prepare_input
from cbam_viz.model.resnet import ARCHS
from cbam_viz.weights.files import WEIGHTS_DIR
from tests.helpers.models import random_model, tiny_input, write_demo_set

REAL_DEMO = WEIGHTS_DIR / "demo" / "metadata.json"
needs_demo = pytest.mark.skipif(not REAL_DEMO.is_file(), reason=f"{REAL_DEMO} is absent")


def checksum(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def demo_inputs(arch: str, count: int) -> list[tuple[torch.Tensor, int, np.ndarray]]:
    model = get_models([arch], "demo", "cpu").models[arch]
    samples = [render_sample(HELDOUT_SEED, index, width=96) for index in range(count)]
    prepared = [prepare_input(Image.fromarray(s.image), model.weights_info.preprocess)[0] for s in samples]
    return [(x, s.label, s.mask) for x, s in zip(prepared, samples, strict=True)]


# ------------------------------------------------------------------------------------------------ randomisation


def test_randomising_a_layer_changes_exactly_that_layer_of_the_copy_with_default_init() -> None:
    model = random_model("cbam_resnet50")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    duplicate = checks_common.private_copy(model)
    checks_randomisation.randomise_layer_(duplicate, "layer3", seed=0)
    after = duplicate.state_dict()
    for key, value in before.items():
        changed = not torch.equal(value, after[key])
        if key.startswith("layer3.") and key.endswith(("weight", "running_mean", "running_var")):
            assert changed or key.endswith("bn.weight"), key  # the spatial gate's BN weight is 1 before and after
        elif not key.startswith("layer3."):
            assert not changed, key
    assert torch.all(after["layer3.0.bn1.running_mean"] == 0) and torch.all(after["layer3.0.bn1.running_var"] == 1)
    assert torch.all(after["layer3.0.bn3.weight"] == 1)  # BatchNorm's own default, not the ResNet's zero bn3
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the original is untouched
    again = checks_common.private_copy(model)
    checks_randomisation.randomise_layer_(again, "layer3", seed=0)
    assert torch.equal(again.layer3[1].conv2.weight, duplicate.layer3[1].conv2.weight)  # repeatable
    checks_randomisation.randomise_layer_(again, "layer3", seed=1)
    assert not torch.equal(again.layer3[1].conv2.weight, duplicate.layer3[1].conv2.weight)
    checks_randomisation.randomise_layer_(again, "stem", seed=0)
    assert not torch.equal(again.conv1.weight, model.conv1.weight) and torch.all(again.bn1.running_var == 1)


def test_signed_cam_after_relu_is_the_apps_cam() -> None:
    model, x = random_model("cbam_resnet50"), tiny_input()
    for method in ("gradcam", "gradcam++", "layercam", "eigencam"):
        shown = run_model("cbam_resnet50", model, x, method=method, stage=3, target=2, categories=CLASSES).cam
        found = checks_common.cam_pass(model, x, method, 3, 2)
        assert np.array_equal(found.cam, shown), method
        assert np.allclose(np.maximum(found.signed, 0), shown, atol=1e-6), method


def test_cascade_reports_every_step_and_independent_steps_restore_the_trained_weights() -> None:
    model, x = random_model("cbam_resnet50"), tiny_input()
    report = checks_randomisation.model_sanity(
        "cbam_resnet50", model, x, target=3, independent=True, categories=CLASSES
    )
    assert [step.step for step in report.cascading] == list(checks_randomisation.CASCADE_ORDER)
    assert report.cascading[2].randomised == ("fc", "layer4", "layer3")
    assert [step.randomised for step in report.independent] == [(name,) for name in checks_randomisation.CASCADE_ORDER]
    # same seed scheme: randomising only fc is the cascade's first step, whatever the mode
    assert np.array_equal(report.independent[0].cam, report.cascading[0].cam)
    # independent layer4 alone starts again from trained weights, so it differs from the cascade fc + layer4
    assert not np.array_equal(report.independent[1].cam, report.cascading[1].cam)
    document = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert document["target"]["label"] == CLASSES[3] and len(document["cascading"]) == 6
    assert set(report.maps()) >= {"cam", "cascading.fc", "independent.stem", "random_logit"}


def test_randomisation_never_changes_the_served_weights_while_another_thread_analyses() -> None:
    model, x = random_model("cbam_resnet50"), tiny_input()
    expected = run_model("cbam_resnet50", model, x, stage=3)
    before = checksum(model)
    seen: list = []
    stop = threading.Event()

    def analyse() -> None:
        while not stop.is_set():
            seen.append(run_model("cbam_resnet50", model, x, stage=3))

    worker = threading.Thread(target=analyse)
    worker.start()
    try:
        for _ in range(2):
            checks_randomisation.model_sanity("cbam_resnet50", model, x, stage=3, independent=True)
    finally:
        stop.set()
        worker.join()
    assert checksum(model) == before
    assert len(seen) >= 2
    for result in seen:
        assert np.array_equal(result.cam, expected.cam)
        assert result.top5 == expected.top5
        assert all(np.array_equal(result.spatial_attention[k], v) for k, v in expected.spatial_attention.items())


def test_random_logit_is_never_the_target_and_eigencam_is_class_independent() -> None:
    for seed in range(20):
        assert checks_randomisation.random_other_class(4, 10, seed) != 4
    assert len({checks_randomisation.random_other_class(4, 10, seed) for seed in range(40)}) == 9
    model, x = random_model("se_resnet50"), tiny_input()
    report = checks_randomisation.model_sanity("se_resnet50", model, x, method="eigencam", target=1, cascading=False)
    logit = report.random_logit
    assert logit.index != 1 and not logit.class_dependent and logit.comparison.spearman == pytest.approx(1.0)
    with pytest.raises(CbamVizError):
        checks_randomisation.model_sanity("se_resnet50", model, x, method="nope")


def test_random_other_classes_are_drawn_per_picture_and_never_the_target() -> None:
    """Seeded by the seed and the picture's content: another picture draws another class (the old draw, seeded by
    the seed alone, was the same class for every picture), the same picture the same one."""
    pictures = [checks_randomisation.content_key(tiny_input(seed=seed)) for seed in range(40)]
    assert len(set(pictures)) == 40
    firsts = [checks_randomisation.random_other_class(4, 10, 0, key) for key in pictures]
    assert 4 not in firsts and len(set(firsts)) == 9  # every other class turns up over 40 pictures
    assert checks_randomisation.random_other_class(4, 10, 0, pictures[0]) == firsts[0]  # repeatable
    assert [checks_randomisation.random_other_class(4, 10, seed, pictures[0]) for seed in range(20)].count(
        firsts[0]
    ) < 10  # the seed matters too
    several = checks_randomisation.random_other_classes(4, 10, 0, pictures[1], count=5)
    assert len(set(several)) == 5 and 4 not in several and several[0] == firsts[1]
    assert sorted(checks_randomisation.random_other_classes(4, 10, 0, pictures[1], count=50)) == [
        0,
        1,
        2,
        3,
        5,
        6,
        7,
        8,
        9,
    ]
    with pytest.raises(CbamVizError, match="whole number"):
        checks_randomisation.random_other_classes(4, 10, 0, pictures[1], count=0)


def test_randomisation_over_several_draws_reports_mean_and_spread_of_different_networks() -> None:
    model, x = random_model("cbam_resnet50"), tiny_input()
    one = checks_randomisation.model_sanity("cbam_resnet50", model, x, target=3, independent=True)
    report = checks_randomisation.model_sanity(
        "cbam_resnet50", model, x, target=3, independent=True, draws=3, other_classes=4, categories=CLASSES
    )
    for mode in ("cascading", "independent"):
        for first, step in zip(getattr(one, mode), getattr(report, mode), strict=True):
            assert len(step.draws) == 3 and np.array_equal(step.cam, first.cam)  # draw 0 is the one-draw network
            assert step.draws[0].spearman == first.spearman or not np.isfinite(first.spearman)
            assert not np.array_equal(step.draws[1].cam, step.draws[2].cam)  # each draw another random network
            values = [draw.spearman for draw in step.draws if np.isfinite(draw.spearman)]
            if values:
                assert step.spearman == pytest.approx(np.mean(values))
            if len(values) > 1:
                assert step.spread("spearman").sd == pytest.approx(np.std(values, ddof=1))
            assert step.empty_share == np.mean([draw.cam_empty for draw in step.draws])
    seeds = {checks_randomisation.draw_seed(0, draw, "layer3") for draw in range(3)}
    assert len(seeds) == 3 and checks_randomisation.draw_seed(1, 0, "layer3") not in seeds
    logit = report.random_logit
    assert len(logit.classes) == 4 and len({other.index for other in logit.classes}) == 4
    assert all(other.index != 3 and other.label == CLASSES[other.index] for other in logit.classes)
    document = json.loads(json.dumps(report.to_json(), allow_nan=False))
    model_schema = ANALYSIS_JSON_SCHEMA["properties"]["sanity"]["properties"]["models"]["additionalProperties"]
    assert validate(document, model_schema) == []
    assert document["draws"] == 3 and document["cascading"][0]["draws"] == 3
    assert len(document["cascading"][0]["spread"]["spearman"]["values"]) == 3
    assert [entry["index"] for entry in document["random_logit"]["classes"]] == [o.index for o in logit.classes]
    assert document["random_logit"]["count"] == 4 and document["random_logit"]["index"] == logit.classes[0].index
    single = json.loads(json.dumps(one.to_json(), allow_nan=False))
    assert single["cascading"][0]["spread"]["spearman"]["sd"] is None  # one draw has no spread
    with pytest.raises(CbamVizError, match="whole number"):
        checks_randomisation.model_sanity("cbam_resnet50", model, x, draws=0)


@needs_demo
@pytest.mark.parametrize("arch", ARCHS)
def test_randomising_the_whole_network_decorrelates_a_trained_demo_cam(arch: str) -> None:
    """Spearman of the fully randomised model's CAM (fc down to the stem) below 0.5 on at least 15 of 20 shapes.
    An all-zero CAM (NaN correlation) counts as decorrelated: the map is gone."""
    model = get_models([arch], "demo", "cpu").models[arch]
    before = checksum(model)
    values = []
    for x, label, _ in demo_inputs(arch, 20):
        last = checks_randomisation.model_sanity(arch, model, x, target=label, random_logit=False).cascading[-1]
        values.append(last.spearman)
    low = sum(1 for value in values if not value >= 0.5)  # NaN is not >= 0.5
    assert low >= 15, values
    assert checksum(model) == before


# ------------------------------------------------------------------------------------------ deletion / insertion


def test_each_curve_is_one_batched_forward() -> None:
    model, x = random_model("cbam_resnet50"), tiny_input()
    batches: list[int] = []
    handle = model.register_forward_pre_hook(lambda module, inputs: batches.append(inputs[0].shape[0]))
    try:
        curves = checks_curves.model_curves(model, x, np.random.default_rng(0).random((6, 6)), 2, steps=20)
    finally:
        handle.remove()
    assert batches == [21, 21, 21, 21]  # deletion, insertion, and their random-order baselines
    assert curves.fractions.tolist() == pytest.approx(np.linspace(0, 1, 21).tolist(), abs=1e-3)
    probs = checks_curves.class_probabilities(model, x.numpy(), 2)
    assert curves.deletion.probs[0] == pytest.approx(probs[0], abs=1e-5)  # 0 % touched: the picture itself
    assert curves.insertion.probs[-1] == pytest.approx(probs[0], abs=1e-5)  # 100 % revealed: the picture
    document = json.loads(json.dumps(curves.to_json(), allow_nan=False))
    assert len(document["deletion"]["cam"]["probs"]) == 21 and "random" in document["insertion"]
    with pytest.raises(CbamVizError):
        checks_curves.model_curves(model, x, np.ones((6, 6)), 2, steps=0)
    with pytest.raises(CbamVizError):
        checks_curves.model_curves(model, x, np.ones((6, 6)), 2, deletion_fill="black")


@needs_demo
@pytest.mark.parametrize("arch", ARCHS)
def test_the_true_mask_beats_a_random_order_and_its_curves_are_monotone(arch: str) -> None:
    """Oracle = the true object mask as the saliency map. Monotone means here: the oracle's insertion curve never
    falls by more than 0.1 in one step (``monotone_violation(..., decreasing=False) <= 0.1``) on every shape; its
    deletion curve is NOT monotone step by step on every shape (a half-blurred shape can briefly look like its class
    again), but the MEAN deletion curve over the shapes never rises by more than 0.1 in one step."""
    model = get_models([arch], "demo", "cpu").models[arch]
    deletion, insertion, deletion_random, insertion_random, mean_deletion = [], [], [], [], []
    for x, label, mask in demo_inputs(arch, 5):
        oracle = checks_curves.model_curves(model, x, mask.astype(np.float32), label)
        deletion.append(oracle.deletion.auc)
        insertion.append(oracle.insertion.auc)
        deletion_random.append(oracle.deletion_random.auc)
        insertion_random.append(oracle.insertion_random.auc)
        mean_deletion.append(oracle.deletion.probs)
        assert metrics.monotone_violation(oracle.insertion.probs, decreasing=False) <= 0.1
        assert oracle.deletion.probs[-1] < oracle.deletion.probs[0]
    assert np.mean(deletion) < np.mean(deletion_random) and np.mean(insertion) > np.mean(insertion_random)
    assert sum(np.less(deletion, deletion_random)) >= 4 and sum(np.greater(insertion, insertion_random)) >= 4
    assert metrics.monotone_violation(np.mean(mean_deletion, axis=0), decreasing=True) <= 0.1


# ---------------------------------------------------------------------------------------- pointing on a region


def hand_analysis() -> Analysis:
    """A 16x12 picture seen whole at 16x12: maps of that size land on it pixel for pixel."""
    view = ModelView("whole", (16, 12), (0.0, 0.0, 1.0, 1.0), "test")
    cam = np.zeros((12, 16), dtype=np.float32)
    cam[3, 5], cam[9, 12] = 3.0, 1.0
    early = np.full((12, 16), 0.5, dtype=np.float32)
    early[10, 1] = 0.9
    last = np.full((12, 16), 0.5, dtype=np.float32)
    last[4, 6] = 0.9
    spatial = {"layer1.0": early, "layer1.2": last}
    result = ModelResult("cbam_resnet50", "w", [("a", 1.0)], 0, "a", 1.0, cam, 4, {}, spatial, {}, view)
    models = {"cbam_resnet50": result}
    return Analysis(Image.new("RGB", (16, 12)), (32, 24), (), view, "gradcam", 4, models, {}, "t", "", "cpu")


def test_box_game_matches_a_hand_made_case() -> None:
    report = checks_pointing.box_game(
        hand_analysis(), (4, 2, 8, 6)
    ).to_json()  # holds (row 3, col 5) and (row 4, col 6)
    scores = report["models"]["cbam_resnet50"]
    assert scores["cam"] == {"hit": True, "energy": pytest.approx(0.75)}
    assert scores["spatial"]["1"]["block"] == "layer1.2" and scores["spatial"]["1"]["hit"] is True
    assert scores["spatial"]["1"]["energy"] == pytest.approx(1.0)  # all of the map's mass above its floor is there
    assert scores["blocks"]["layer1.0"] == {"hit": False, "energy": 0.0}
    assert report["region"] == {"kind": "box", "box": [4.0, 2.0, 8.0, 6.0], "area_share": pytest.approx(16 / 192)}
    json.dumps(report, allow_nan=False)
    for bad in ((8, 2, 4, 6), (100, 100, 200, 200), ("a", 1, 2, 3), (1, 2)):
        with pytest.raises(CbamVizError, match="box"):
            checks_pointing.box_game(hand_analysis(), bad)


def test_mask_game_takes_the_displayed_or_original_size() -> None:
    mask = np.zeros((12, 16), dtype=bool)
    mask[9:11, 11:14] = True  # holds the CAM's second peak only
    shown = checks_pointing.mask_game(hand_analysis(), mask).to_json()["models"]["cbam_resnet50"]["cam"]
    assert shown == {"hit": False, "energy": pytest.approx(0.25)}
    original = np.kron(mask, np.ones((2, 2), dtype=bool))  # the 32x24 original
    assert checks_pointing.mask_game(hand_analysis(), original).to_json()["models"]["cbam_resnet50"]["cam"] == shown
    with pytest.raises(CbamVizError, match="mask"):
        checks_pointing.mask_game(hand_analysis(), np.ones((5, 5), dtype=bool))
    with pytest.raises(CbamVizError, match="empty"):
        checks_pointing.mask_game(hand_analysis(), np.zeros((12, 16), dtype=bool))


# ------------------------------------------------------------------------------------------- per-picture reports


def test_picture_reports_are_plain_json_with_maps(tmp_path: Path) -> None:
    models = {arch: random_model(arch, seed) for seed, arch in enumerate(ARCHS)}
    root = write_demo_set(tmp_path, models, resize=48)
    picture = Image.fromarray(render_sample(HELDOUT_SEED, 0, width=48).image)
    report = checks_randomisation.sanity_report(
        picture, weights="demo", weights_dir=root, device="cpu", stage=3, target=2, other_classes=2
    )
    document = json.loads(json.dumps(report.to_json(), allow_nan=False))
    assert validate(document, ANALYSIS_JSON_SCHEMA["properties"]["sanity"]) == []
    assert list(document["models"]) == list(ARCHS) and document["grids"] == {"spearman": "native", "ssim": "input"}
    assert all(model["target"]["index"] == 2 for model in document["models"].values())
    assert document["draws"] == 1 and document["other_classes"] == 2 and "SeedSequence" in document["seeds"]
    drawn = {tuple(c["index"] for c in model["random_logit"]["classes"]) for model in document["models"].values()}
    assert len(drawn) == 1 and 2 not in next(iter(drawn))  # one picture: the same random classes for every model
    maps = report.maps()
    assert maps["cbam_resnet50.cascading.stem"].shape == maps["cbam_resnet50.cam"].shape
    curves = checks_curves.curves_report(picture, weights="demo", weights_dir=root, device="cpu", steps=10)
    document = json.loads(json.dumps(curves.to_json(), allow_nan=False))
    assert len(document["fractions"]) == 11 and document["deletion_fill"] == "blur"
    assert all(len(model["insertion"]["random"]["probs"]) == 11 for model in document["models"].values())

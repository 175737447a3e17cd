"""The analysis engine: grad-cam methods on the captured tensors, targets, metrics, JSON schema, threads, alignment."""

from __future__ import annotations

import copy
import io
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from cbam_viz.analysis import metrics
from cbam_viz.analysis import models as analysis
from cbam_viz.analysis.cam import GRADCAM_CLASSES, resolve_target
from cbam_viz.analysis.capture import count_hooks
from cbam_viz.analysis.models import get_models
from cbam_viz.analysis.run import run_model
from cbam_viz.analysis.schema import ANALYSIS_JSON_SCHEMA
from cbam_viz.demo.shapes import CLASSES, render_sample
from cbam_viz.errors import CbamVizError, ImageError
from cbam_viz.imaging.view import map_to_image
from cbam_viz.model.resnet import ARCHS
from cbam_viz.pipeline import analyze
from cbam_viz.weights.files import WEIGHTS_DIR
from tests.helpers.models import random_model
from tests.helpers.schema import validate

REAL_DEMO = WEIGHTS_DIR / "demo" / "metadata.json"
needs_demo = pytest.mark.skipif(
    not REAL_DEMO.is_file(), reason=f"{REAL_DEMO} is absent: train the demo weights (python -m cbam_viz train)"
)


def sample_image(seed: int, index: int, width: int = 64, height: int | None = None) -> Image.Image:
    return Image.fromarray(render_sample(seed, index, width, height).image)


# --------------------------------------------------------------------------------------------------- CAM methods


@pytest.mark.parametrize("method", sorted(GRADCAM_CLASSES))
def test_every_method_equals_grad_cams_own_object_and_leaves_no_hook(method: str) -> None:
    model = random_model("cbam_resnet50", seed=1)
    slow = method == "scorecam"  # one forward per channel: a small input and the 64-channel stage 2
    size, stage = (32, 2) if slow else (64, 3)
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(3))
    result = run_model("cbam_resnet50", model, x, method=method, stage=stage, target=2, categories=CLASSES)
    assert count_hooks(model) == 0
    native = size // 2 // 2 ** (stage - 1)
    assert result.cam.shape == (native, native) and result.cam.dtype == np.float32
    assert np.isfinite(result.cam).all() and result.cam.min() >= 0 and result.cam.max() > 0
    oracle = copy.deepcopy(model).requires_grad_(True)  # grad-cam's own hooks need a graph through the layer
    with GRADCAM_CLASSES[method](oracle, [getattr(oracle, f"layer{stage}")]) as cam:
        expected = cam(x, [ClassifierOutputTarget(2)])
    # grad-cam min-max scales at input size, then once more when it aggregates layers: do the same to ours
    ours = scale_cam_image(scale_cam_image(result.cam[None], (size, size)))
    np.testing.assert_allclose(ours, expected, atol=1e-5)


@pytest.mark.parametrize("scale", [1e-4, 1e-3, 1.0, 1e3])
def test_grad_cam_plus_plus_weights_are_the_closed_form_at_any_gradient_scale(scale: float) -> None:
    """alpha = g^2 / (2 g^2 + sum(A) g^3) = 1 / (2 + sum(A) g) where g > 0; grad-cam's absolute eps of 1e-6 bends
    it when gradients are small (the demo models'), a scale-relative one does not."""
    rng = np.random.default_rng(7)
    activations = rng.random((1, 8, 6, 6)).astype(np.float32)
    grads = (rng.standard_normal((1, 8, 6, 6)) * scale).astype(np.float32)
    total = activations.astype(np.float64).sum(axis=(2, 3), keepdims=True)
    g = grads.astype(np.float64)
    closed = (np.maximum(g, 0) / (2 + total * np.where(g > 0, g, 0))).sum(axis=(2, 3))
    weights = GRADCAM_CLASSES["gradcam++"].get_cam_weights(None, None, None, None, activations, grads)
    np.testing.assert_allclose(weights, closed, rtol=1e-4)


def test_cams_are_raw_scores_not_normalised() -> None:
    model = random_model("se_resnet50", seed=2)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    base = run_model("se_resnet50", model, x, target=1, categories=CLASSES).cam
    model.fc.weight.data *= 10  # every class score is 10x larger, so is its gradient: a raw CAM scales with it
    model.fc.bias.data *= 10
    scaled = run_model("se_resnet50", model, x, target=1, categories=CLASSES).cam
    assert base.max() > 0 and not math.isclose(float(base.max()), 1.0, rel_tol=1e-3)
    np.testing.assert_allclose(scaled, 10 * base, rtol=1e-4, atol=1e-7)


def test_run_model_reports_top5_target_and_attention() -> None:
    model = random_model("cbam_resnet50", seed=5)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(6))
    result = run_model("cbam_resnet50", model, x, categories=CLASSES)
    probs = [p for _, p in result.top5]
    assert len(result.top5) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    assert result.target_label == result.top5[0][0] and result.target_prob == pytest.approx(probs[0])
    assert result.target_label == CLASSES[result.target_index]
    assert len(result.channel_attention) == 16 and len(result.spatial_attention) == 16
    assert result.channel_attention["layer4.2"].shape == (8 * 8 * 4,)
    assert result.spatial_attention["layer1.0"].shape == (32, 32)
    for grid in [*result.channel_attention.values(), *result.spatial_attention.values()]:
        assert grid.dtype == np.float32 and grid.min() > 0 and grid.max() < 1
    expected = metrics.cam_spatial_agreement(result.cam, result.spatial_attention["layer4.2"])
    assert result.metrics["cam_spatial_correlation"] == pytest.approx(expected["cam_spatial_correlation"])
    plain = run_model("resnet50", random_model("resnet50"), x, categories=CLASSES)
    assert plain.channel_attention == {} and plain.spatial_attention == {}
    assert set(plain.metrics) == {"target_prob"}


@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # inside grad-cam's ROAD imputer
def test_faithfulness_scores_follow_road() -> None:
    model = random_model("resnet50", seed=7)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    result = run_model("resnet50", model, x, faithfulness=True, categories=CLASSES)
    scores = {k: v for k, v in result.metrics.items() if k.startswith("faithfulness_")}
    assert set(scores) == {"faithfulness_morf", "faithfulness_lerf", "faithfulness_road"}
    assert all(math.isfinite(v) and -1 <= v <= 1 for v in scores.values())
    assert scores["faithfulness_road"] == pytest.approx((scores["faithfulness_lerf"] - scores["faithfulness_morf"]) / 2)
    again = run_model("resnet50", model, x, faithfulness=True, categories=CLASSES).metrics
    assert again["faithfulness_road"] == scores["faithfulness_road"]  # the imputation noise is seeded
    assert count_hooks(model) == 0


# ---------------------------------------------------------------------------------------------------------- targets


def test_targets_by_index_digit_string_and_name() -> None:
    assert resolve_target(None, CLASSES) is None and resolve_target(" ", CLASSES) is None
    assert resolve_target(3, CLASSES) == 3 and resolve_target("7", CLASSES) == 7
    assert resolve_target("Hexagon", CLASSES) == CLASSES.index("hexagon")
    assert resolve_target("tiger_cat", ("tabby", "tiger cat")) == 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (10, r"target class 10 does not exist: these weights have 10 classes \(0-9\)"),
        ("hexagn", r"unknown target class 'hexagn': did you mean 'hexagon'"),
        ("zebra", r"unknown target class 'zebra': give a class index 0-9"),
        (True, "class index or name"),
        ("Circle", r"'Circle' names 2 classes \(0, 10\): give the index instead"),
    ],
)
def test_bad_targets_get_one_line_errors(target: object, message: str) -> None:
    with pytest.raises(CbamVizError, match=message) as caught:
        resolve_target(target, (*CLASSES, "circle") if target == "Circle" else CLASSES)
    assert "\n" not in str(caught.value)


# ---------------------------------------------------------------------------------------------------------- metrics


def test_bilinear_resampling_matches_torch() -> None:
    grid = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    expected = torch.nn.functional.interpolate(
        torch.from_numpy(grid)[None, None], size=(13, 9), mode="bilinear", align_corners=False
    )[0, 0].numpy()
    np.testing.assert_allclose(metrics.resize_bilinear(grid, (13, 9)), expected, atol=1e-6)


def test_agreement_metrics() -> None:
    ramp = np.arange(25, dtype=np.float32).reshape(5, 5)
    assert metrics.pearson(ramp, 2 * ramp + 1) == pytest.approx(1.0)
    assert metrics.pearson(ramp, -ramp) == pytest.approx(-1.0)
    assert math.isnan(metrics.pearson(ramp, np.ones_like(ramp)))
    assert metrics.top_region(ramp).sum() == 5 and metrics.top_region(ramp)[-1].all()
    assert metrics.top_region_iou(ramp, ramp) == 1.0 and metrics.top_region_iou(ramp, -ramp) == 0.0
    sparse = np.zeros((10, 10), dtype=np.float32)
    sparse[0, 0] = 1.0  # a ReLU'd CAM that is mostly zero still has a top region of exactly 20 pixels
    assert metrics.top_region(sparse).sum() == 20
    coarse = metrics.cam_agreement(ramp, metrics.resize_bilinear(ramp, (10, 10)))
    assert coarse["cam_correlation"] == pytest.approx(1.0, abs=1e-6) and coarse["top20_iou"] > 0.6
    with_nan = ramp.copy()
    with_nan[0] = np.nan
    assert metrics.pearson(with_nan, ramp) == pytest.approx(1.0)


def test_pointing_and_energy() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2, :2] = True
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[1, 1], cam[3, 3] = 3.0, 1.0
    assert metrics.pointing_hit(cam, mask) and not metrics.pointing_hit(cam.T[::-1, ::-1], mask)
    assert not metrics.pointing_hit(np.ones((4, 4)), mask)  # a flat map points nowhere
    assert metrics.energy_inside(cam, mask) == pytest.approx(0.75)
    assert metrics.energy_inside(cam + 0.5, mask) == pytest.approx(0.75)  # a constant floor is not mass
    cam[0, :] = np.nan  # pixels the model did not see are ignored
    assert metrics.energy_inside(cam, mask) == pytest.approx(0.75)
    assert metrics.energy_inside(np.zeros((4, 4)), mask) == 0.0
    corner = np.zeros((4, 4), dtype=np.float32)
    corner[3, 3] = 1.0  # 2.83 px from the mask's nearest pixel (1, 1)
    assert not metrics.pointing_hit(corner, mask) and not metrics.pointing_hit(corner, mask, tolerance=2.8)
    assert metrics.pointing_hit(corner, mask, tolerance=2.9)
    with pytest.raises(ValueError, match="differs from mask shape"):
        metrics.pointing_hit(cam, mask[:2])


# ------------------------------------------------------------------------------------------- analyze, end to end


def test_analyze_end_to_end_and_json_schema(demo_weights: Path) -> None:
    picture = sample_image(5, 0, width=1200, height=720)
    result = analyze(picture, weights="demo", weights_dir=demo_weights, target="star")
    assert list(result.models) == list(ARCHS)
    assert result.original_size == (1200, 720) and result.image.size == (1024, 614)
    assert result.view.mode == "whole" and result.view.input_size == (107, 64)
    assert result.weights_set == "demo" and result.device == "cpu" and result.method == "gradcam"
    for model in result.models.values():
        assert model.target_label == "star" and model.target_index == CLASSES.index("star")
        assert model.cam.shape == (4, 7)  # 64x107 input, no stem pool: stage 4 has stride 16
        assert count_hooks(get_models(weights="demo", weights_dir=demo_weights).models[model.model_id]) == 0
    assert set(result.agreement) == {"resnet50|se_resnet50", "resnet50|cbam_resnet50", "se_resnet50|cbam_resnet50"}
    pair = result.agreement["resnet50|cbam_resnet50"]
    assert pair == metrics.cam_agreement(result.models["resnet50"].cam, result.models["cbam_resnet50"].cam)
    document = result.to_json()
    json.dumps(document, allow_nan=False)
    assert validate(document, ANALYSIS_JSON_SCHEMA) == []
    assert document["models"]["cbam_resnet50"]["target"]["label"] == "star"
    assert document["models"]["se_resnet50"]["spatial_attention"] == {}
    assert document["models"]["se_resnet50"]["channel_attention"]["layer2.0"]["channels"] == 64
    broken = copy.deepcopy(document)
    del broken["models"]["resnet50"]["top5"]
    broken["stage"] = 5
    assert validate(broken, ANALYSIS_JSON_SCHEMA) == ["$.stage: 5 > 4", "$.models.resnet50: missing 'top5'"]


def test_analyze_with_interventions_and_sweep(demo_weights: Path) -> None:
    picture = sample_image(5, 1)
    plain = analyze(picture, weights="demo", weights_dir=demo_weights)
    specs = ["layer3:spatial=one", "all:channel=mean", "sweep"]
    result = analyze(picture, weights="demo", weights_dir=demo_weights, interventions=specs)
    for arch in ARCHS:  # the un-intervened numbers are unchanged
        assert result.models[arch].target_prob == plain.models[arch].target_prob
        assert count_hooks(get_models(weights="demo", weights_dir=demo_weights).models[arch]) == 0
    cbam, se, base = (result.models[a] for a in ("cbam_resnet50", "se_resnet50", "resnet50"))
    assert [done.spec for done in cbam.interventions] == specs[:2] and cbam.sweep is not None
    assert len(cbam.sweep.entries) == 8 and len(se.sweep.entries) == 4 and base.sweep is None
    assert [done.spec for done in se.interventions] == ["all:channel=mean"]
    assert "no spatial gate" in se.intervention_notes["layer3:spatial=one"]
    assert set(base.intervention_notes) == set(specs) and base.interventions == []
    first = cbam.interventions[0]
    assert first.target_prob_change == pytest.approx(first.target_prob - cbam.target_prob)
    document = result.to_json()
    json.dumps(document, allow_nan=False)
    assert document["schema_version"] == 6 and validate(document, ANALYSIS_JSON_SCHEMA) == []
    entry = document["models"]["cbam_resnet50"]["interventions"][0]
    assert entry["spec"] == "layer3:spatial=one" and entry["top5"][0]["label"] in CLASSES
    assert entry["target"]["label"] == cbam.target_label and -1 <= entry["cam"]["correlation"] <= 1
    assert len(document["models"]["resnet50"]["interventions"]) == 3
    assert "interventions" not in plain.to_json()["models"]["cbam_resnet50"]
    with pytest.raises(CbamVizError, match="no attention gates"):
        analyze(picture, weights="demo", weights_dir=demo_weights, models=["resnet50"], interventions=["sweep"])
    with pytest.raises(CbamVizError, match="bad intervention"):
        analyze(picture, weights="demo", weights_dir=demo_weights, interventions=["layer3-spatial"])


def test_analyze_options_and_errors(demo_weights: Path) -> None:
    picture = sample_image(6, 1)
    crop = analyze(
        picture,
        weights="demo",
        weights_dir=demo_weights,
        models=["cbam_resnet50"],
        view="crop",
        stage=2,
        method="layercam",
    )
    assert list(crop.models) == ["cbam_resnet50"] and crop.agreement == {} and crop.stage == 2
    assert crop.models["cbam_resnet50"].cam.shape == (16, 16)
    for kwargs, message in [
        ({"method": "gradcam+"}, "unknown CAM method 'gradcam\\+'"),
        ({"stage": 0}, "stage must be 1, 2, 3 or 4"),
        ({"view": "zoom"}, "view must be 'whole' or 'crop'"),
        ({"models": ["vgg16"]}, "unknown model 'vgg16'"),
        ({"models": []}, "no model chosen"),
        ({"target": "octagon"}, "unknown target class 'octagon'"),
    ]:
        with pytest.raises(CbamVizError, match=message):
            analyze(picture, weights="demo", weights_dir=demo_weights, **kwargs)
    with pytest.raises(ImageError):
        analyze(b"not an image at all", weights="demo", weights_dir=demo_weights)


def test_models_are_loaded_once_and_cached(demo_weights: Path) -> None:
    first = get_models(weights="demo", weights_dir=demo_weights)
    second = get_models(["cbam_resnet50"], weights="demo", weights_dir=demo_weights)
    assert second.models["cbam_resnet50"] is first.models["cbam_resnet50"]
    assert all(not p.requires_grad for model in first.models.values() for p in model.parameters())
    analysis.clear_model_cache()
    assert get_models(weights="demo", weights_dir=demo_weights).models["resnet50"] is not first.models["resnet50"]


def test_concurrent_analyses_get_the_results_each_would_get_alone(demo_weights: Path) -> None:
    pictures = {"a": sample_image(8, 0), "b": sample_image(8, 1)}
    alone = {name: analyze(p, weights="demo", weights_dir=demo_weights) for name, p in pictures.items()}
    assert not np.allclose(alone["a"].models["cbam_resnet50"].cam, alone["b"].models["cbam_resnet50"].cam)
    together: dict[str, list] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        barrier.wait()
        for _ in range(3):
            together[name].append(analyze(pictures[name], weights="demo", weights_dir=demo_weights))

    threads = [threading.Thread(target=work, args=(name,)) for name in pictures]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, runs in together.items():
        assert len(runs) == 3
        for run in runs:
            for arch, model in run.models.items():
                reference = alone[name].models[arch]
                assert [label for label, _ in model.top5] == [label for label, _ in reference.top5]
                np.testing.assert_allclose([p for _, p in model.top5], [p for _, p in reference.top5], rtol=1e-5)
                np.testing.assert_allclose(model.cam, reference.cam, rtol=1e-4, atol=1e-7)
                for block, grid in reference.spatial_attention.items():
                    np.testing.assert_allclose(model.spatial_attention[block], grid, rtol=1e-5, atol=1e-6)
                for block, vector in reference.channel_attention.items():
                    np.testing.assert_allclose(model.channel_attention[block], vector, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------ alignment on the real demo weights

POINTING_TOLERANCE = 15 / 224  # the pointing game's tolerance (Zhang et al.): 15 pixels at 224, as a share of the side


HALF_CELL = 8  # pixels: half a stage-4 cell of the demo models (stride 16 at 96 px)


def localisation(samples: list, arch: str) -> dict[str, float]:
    """Pointing rates (with the usual tolerance; strict: the CAM maximum inside the mask itself; strict for the map
    moved half a cell down and right), the CAM's mean energy inside the mask and the mask's mean area share."""
    rates: dict[str, list[float]] = {"tolerant": [], "strict": [], "strict_shifted": [], "energy": [], "area": []}
    for sample in samples:
        result = analyze(Image.fromarray(sample.image), weights="demo", models=[arch], target=sample.label)
        cam = map_to_image(result.models[arch].cam, result.view, result.original_size)
        assert cam.shape == sample.mask.shape
        rates["tolerant"].append(metrics.pointing_hit(cam, sample.mask, POINTING_TOLERANCE * min(sample.mask.shape)))
        rates["strict"].append(metrics.pointing_hit(cam, sample.mask))
        shifted = np.roll(cam, (HALF_CELL, HALF_CELL), axis=(0, 1))
        rates["strict_shifted"].append(metrics.pointing_hit(shifted, sample.mask))
        rates["energy"].append(metrics.energy_inside(cam, sample.mask))
        rates["area"].append(float(sample.mask.mean()))
    return {name: float(np.mean(values)) for name, values in rates.items()}


@needs_demo
@pytest.mark.parametrize("arch", list(ARCHS))
def test_cam_peak_lands_on_the_object_and_a_misplaced_map_would_miss(arch: str) -> None:
    """The demo models were trained to point at the object (docs/demo-models.md), so this is a test of the map
    geometry: the same maps drawn half a cell off lose a large share of their hits."""
    found = localisation([render_sample(77, index) for index in range(40)], arch)
    assert found["tolerant"] >= 0.95, f"{arch}: the CAM peak is near the object in only {found['tolerant']:.0%}"
    assert found["strict"] >= 0.9, f"{arch}: the CAM peak is inside the object in only {found['strict']:.0%}"
    assert found["strict_shifted"] <= found["strict"] - 0.25, f"{arch}: pointing does not notice a misplaced map"
    assert found["energy"] >= 2 * found["area"], (
        f"{arch}: {found['energy']:.0%} of the CAM lies on objects covering {found['area']:.0%} of the image"
    )


def exif_rotated_png(upright: np.ndarray) -> bytes:
    """The picture stored turned by 90 degrees with EXIF orientation 6 ("rotate 90 CW to view"), as phones do."""
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright, k=1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="PNG", exif=exif)
    return buffer.getvalue()


@needs_demo
def test_exif_rotated_storage_gives_exactly_the_upright_maps() -> None:
    for index in range(3):
        sample = render_sample(78, index, width=144, height=96)
        turned = analyze(exif_rotated_png(sample.image), weights="demo")
        upright = analyze(Image.fromarray(sample.image), weights="demo")
        assert turned.original_size == upright.original_size == (144, 96)
        for arch, model in upright.models.items():
            np.testing.assert_allclose(turned.models[arch].cam, model.cam, rtol=1e-5, atol=1e-7)
            for block, grid in model.spatial_attention.items():
                np.testing.assert_allclose(turned.models[arch].spatial_attention[block], grid, rtol=1e-5, atol=1e-7)


@needs_demo
def test_alignment_holds_for_non_square_and_large_images() -> None:
    samples = [render_sample(78, index, width=144, height=96) for index in range(12)]
    samples += [render_sample(80, index, width=96, height=144) for index in range(12)]
    samples += [render_sample(79, index, width=1280, height=960) for index in range(4)]  # beyond the display cap
    found = localisation(samples, "cbam_resnet50")
    assert found["strict"] >= 0.85, f"the CAM peak is inside the object in only {found['strict']:.0%} of them"
    assert found["energy"] >= 2 * found["area"], (
        f"{found['energy']:.0%} of the CAM lies on objects covering {found['area']:.0%} of the images"
    )


def test_score_cam_draws_no_progress_bar(capfd: pytest.CaptureFixture[str]) -> None:
    """grad-cam's Score-CAM would print a tqdm bar per CAM; a server's log must stay readable."""
    import pytorch_grad_cam.score_cam

    list(pytorch_grad_cam.score_cam.tqdm.tqdm(range(3)))
    assert capfd.readouterr().err == ""


def test_gate_steps_ride_on_the_analysis_pass_only_when_asked(demo_weights: Path) -> None:
    picture = sample_image(5, 2)
    plain = analyze(picture, weights="demo", weights_dir=demo_weights, models=["cbam_resnet50"])
    asked = analyze(
        picture, weights="demo", weights_dir=demo_weights, models=["cbam_resnet50"], gate_steps=["layer4.2"]
    )
    assert plain.models["cbam_resnet50"].gate_steps == {}
    assert set(asked.models["cbam_resnet50"].gate_steps) == {"layer4.2"}
    assert asked.models["cbam_resnet50"].target_prob == plain.models["cbam_resnet50"].target_prob
    with pytest.raises(CbamVizError, match="block names like layer4.2"):
        analyze(picture, weights="demo", weights_dir=demo_weights, gate_steps=["layer9"])

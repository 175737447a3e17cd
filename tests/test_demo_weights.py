"""The bundled demo weights, measured as the README reports them, on fixed held-out batches never used in training."""

from cbam_viz.evaluate import HELDOUT_SEED, REFERENCE_SEED, _generator_sample, _reference_sample, evaluate


def test_demo_models_classify_and_their_cam_peak_is_on_the_object_for_most_images() -> None:
    report = evaluate(_generator_sample(HELDOUT_SEED, 96), 150, progress=False)
    for arch, numbers in report.items():
        assert numbers["top1"] >= 0.95, f"{arch}: top-1 {numbers['top1']:.1%} on held-out shapes"
        # strict pointing game: the CAM maximum inside the object mask, no tolerance
        assert numbers["pointing_game"] > 0.5, f"{arch}: CAM peak on the object in {numbers['pointing_game']:.0%}"
    cbam = report["cbam_resnet50"]
    for stage in range(1, 5):
        assert cbam[f"spatial_energy_stage{stage}"] > cbam["mask_area_share"]


def test_demo_models_recognise_shapes_from_an_independent_renderer() -> None:
    report = evaluate(_reference_sample(REFERENCE_SEED, 96), 100, localisation=False, progress=False)
    for arch, numbers in report.items():
        assert numbers["top1"] >= 0.95, f"{arch}: top-1 {numbers['top1']:.1%} on the reference renderer"

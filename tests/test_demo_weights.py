"""The bundled demo weights, measured as docs/demo-models.md reports them, on fixed held-out batches never used in
training."""

from pathlib import Path

from cbam_viz.demo.evaluate import HELDOUT_SEED, REFERENCE_SEED, _generator_sample, _reference_sample, evaluate
from cbam_viz.ui.banner import demo_description
from cbam_viz.weights.demo_set import held_out_percent
from cbam_viz.weights.load import ARCH_TITLES, read_demo_metadata

DEMO_MODELS = Path(__file__).resolve().parent.parent / "docs" / "demo-models.md"


def test_demo_models_classify_and_their_cam_peak_is_on_the_object_for_most_images() -> None:
    report = evaluate(_generator_sample(HELDOUT_SEED, 96), 150, progress=False)
    for arch, numbers in report.items():
        assert numbers["top1"] >= 0.95, f"{arch}: top-1 {numbers['top1']:.1%} on held-out shapes"
        # strict pointing game: the CAM maximum inside the object mask, no tolerance
        assert numbers["pointing_game"] >= 0.9, f"{arch}: CAM peak on the object in {numbers['pointing_game']:.0%}"
    cbam = report["cbam_resnet50"]
    for stage in range(1, 5):
        assert cbam[f"spatial_energy_stage{stage}"] > cbam["mask_area_share"]


def test_the_bundled_metadata_records_what_the_readme_reports() -> None:
    metadata = read_demo_metadata()
    assert metadata["heldout"]["heldout_seed"] == HELDOUT_SEED and metadata["heldout"]["heldout_images"] >= 500
    for arch, entry in metadata["models"].items():
        assert entry["size_bytes"] <= 10_000_000, f"{arch}: {entry['size_bytes']} bytes"
        assert entry["metrics"]["top1"] >= 0.95 and entry["metrics"]["pointing_game"] >= 0.9
        assert entry["metrics"]["top1_reference_renderer"] >= 0.95
    cbam = metadata["models"]["cbam_resnet50"]["metrics"]
    assert all(f"spatial_energy_stage{stage}" in cbam for stage in range(1, 5))
    readme = DEMO_MODELS.read_text(encoding="utf-8")
    for arch, entry in metadata["models"].items():
        numbers = entry["metrics"]
        keys = ("top1", "top1_reference_renderer", "pointing_game")
        row = " | ".join(held_out_percent(numbers[key]) for key in keys)  # the model headers' own rounding
        assert f"| {ARCH_TITLES[arch]} (1/4 width) | {row} |" in readme, (
            f"docs/demo-models.md's {arch} row differs from metadata"
        )


def test_each_model_header_gives_the_top1_the_docs_give() -> None:
    """The model headers and docs/demo-models.md round the held-out top-1 the same way (99.6 %, never 100 %)."""
    from cbam_viz.weights.load import load_model

    docs = DEMO_MODELS.read_text(encoding="utf-8")
    for arch, entry in read_demo_metadata()["models"].items():
        header = str(load_model(arch, "demo").weights_info.description)
        shown = held_out_percent(entry["metrics"]["top1"])
        assert f"top-1 {shown} on held-out shapes" in header, header
        assert f"| {ARCH_TITLES[arch]} (1/4 width) | {shown} |" in docs


def test_the_banner_says_the_demo_cams_were_trained_to_point() -> None:
    """The last training cycle supervised where the CAM peaks; the app must not present that as emergent."""
    words = demo_description({})
    assert "point at it by training" in words and "attention was never supervised" in words


def test_demo_models_recognise_shapes_from_an_independent_renderer() -> None:
    report = evaluate(_reference_sample(REFERENCE_SEED, 96), 100, localisation=False, progress=False)
    for arch, numbers in report.items():
        assert numbers["top1"] >= 0.95, f"{arch}: top-1 {numbers['top1']:.1%} on the reference renderer"

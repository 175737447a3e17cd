"""The Study section: the bundled study's table and sentences, "significant" decided by the interval and McNemar's p,
the allow-list (no folder off it is ever read), and a gallery click that puts the study's picture into the input."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from cbam_viz.demo.shapes import render_sample
from cbam_viz.errors import CbamVizError
from cbam_viz.i18n.language import using
from cbam_viz.study import sources
from cbam_viz.ui import layout
from cbam_viz.ui import study as studies
from cbam_viz.ui.sections import SECTIONS
from cbam_viz.ui.sections import study as section
from cbam_viz.vocab import PAPER_LINEUP

PAIR = "cbam_resnet50|resnet50"


def made_study(pointing: dict, top1: dict | None = None) -> studies.Study:
    """A study whose CBAM/baseline comparison is the given one (values as fractions)."""
    measure = {"value": 0.5, "ci": [0.4, 0.6], "n": 300}
    models = {
        "resnet50": {"pointing": {**measure, "value": 0.966}, "top1": measure, "energy": measure},
        "cbam_resnet50": {"pointing": {**measure, "value": 0.970}, "top1": measure, "energy": measure},
    }
    nothing = {"difference": 0.0, "ci": [-0.01, 0.01], "p_value": None}
    summary = {
        "study": {"data": "shapes", "weights": "demo", "method": "gradcam", "stage": 4, "view": "crop"},
        "count": 300,
        "models": models,
        "comparisons": {PAIR: {"pointing": pointing, "top1": top1 or nothing, "energy": nothing}},
    }
    return studies.Study("made", Path("."), summary)


def test_the_bundled_study_is_on_the_list_and_its_table_has_every_model_with_intervals() -> None:
    shelf = studies.Shelf.of()
    assert shelf.first() == studies.BUNDLED_KEY
    study = shelf.open(studies.BUNDLED_KEY)
    summary = json.loads((studies.BUNDLED / "summary.json").read_text())
    table = studies.summary_table(study)
    for title in ("ResNet-50", "SE-ResNet-50", "CBAM-ResNet-50"):
        assert f"| {title} |" in table
    top1 = summary["models"]["cbam_resnet50"]["top1"]
    low, high = (f"{value * 100:.1f}" for value in top1["ci"])
    assert f"{top1['value'] * 100:.1f} % ({low}–{high})" in table
    assert "MaxBoxAccV2" in table and f"{summary['count']} images" in studies.about(study)
    words = studies.all_comparison_words(study)
    assert "CBAM's map points at the object in" in words and "the baseline's in" in words
    verdict = "significant" if studies.significant(summary["comparisons"][PAIR]["pointing"]) else "not significant"
    assert f", {verdict} (McNemar p = " in words.split("\n\n")[0]
    with using("zh"):
        assert "的热图在" in studies.all_comparison_words(study)
    per_class = studies.per_class_table(study)
    assert all(f"| {name} |" in per_class for name in ("star", "ring", "circle"))
    answer = section.show_study(shelf, studies.BUNDLED_KEY)
    assert answer[1] == table and isinstance(answer[3], np.ndarray) and answer[3].ndim == 3
    assert answer[5]["value"] == PAIR and len(answer[7]) == len(answer[6]) > 0
    assert answer[8] == studies.sweep_table(study) and "| as they are |" in answer[8]  # made with --sweep
    assert all(isinstance(figure, np.ndarray) and figure.ndim == 3 for figure in answer[9:12])  # the section figures


def test_the_gates_off_sweep_is_a_table_of_stages_and_gates() -> None:
    study = made_study({"difference": 0.0, "ci": [-0.01, 0.01], "p_value": 1.0})
    assert studies.sweep_table(study) == ""
    swept = {"images": 300, "how": "one", "base": {"top1": 0.98, "mean_probability": 0.9}}
    for stage in (1, 2, 3, 4):
        for gate in ("channel", "spatial"):
            numbers = {"top1": 0.98 - stage / 10, "mean_probability": 0.5, "spec": f"layer{stage}:{gate}=one"}
            swept[str(stage)] = {**swept.get(str(stage), {}), gate: {**numbers}}
            swept[str(stage)][gate].update(top1_change=-stage / 10, probability_change=-0.4)
    study.summary["models"]["cbam_resnet50"]["sweep"] = swept
    table = studies.sweep_table(study)
    assert "**Gates off over the dataset** (300 images)" in table
    assert "| Gates | CBAM-ResNet-50 top-1 | CBAM-ResNet-50 true-class probability |" in table
    assert "| as they are | 98.0 % | 90.0 % |" in table
    assert "| stage 3, spatial set to 1 | 68.0 % (−30.0) | 50.0 % (−40.0) |" in table
    with using("zh"):
        assert "第 3 阶段，空间设为 1" in studies.sweep_table(study)


def test_the_sentence_says_significant_only_when_interval_and_p_agree() -> None:
    unclear = made_study({"difference": 0.004, "ci": [-0.008, 0.016], "p_value": 0.62})
    assert studies.comparison_words(unclear, PAIR, "pointing") == (
        "CBAM's map points at the object in 97.0 % of images, the baseline's in 96.6 %: difference +0.4 points, "
        "95 % interval −0.8 to +1.6, not significant (McNemar p = 0.62)."
    )
    clear = made_study({"difference": 0.004, "ci": [0.001, 0.009], "p_value": 0.003})
    assert studies.comparison_words(clear, PAIR, "pointing").endswith("+0.9, significant (McNemar p = 0.003).")
    with using("zh"):
        assert "，显著（McNemar p = 0.003）" in studies.comparison_words(clear, PAIR, "pointing")
        assert "不显著" in studies.comparison_words(unclear, PAIR, "pointing")
    disagreeing = made_study({"difference": 0.004, "ci": [0.001, 0.009], "p_value": 0.2})  # the test says no
    assert "not significant (McNemar p = 0.20)" in studies.comparison_words(disagreeing, PAIR, "pointing")
    fewer = made_study({"difference": -0.03, "ci": [-0.05, -0.01], "p_value": 0.0004})
    assert "difference −3.0 points, 95 % interval −5.0 to −1.0, significant (McNemar p < 0.001)" in (
        studies.comparison_words(fewer, PAIR, "pointing")
    )


def write_study(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text((studies.BUNDLED / "summary.json").read_text())
    return folder


def test_no_folder_off_the_allow_list_can_be_opened(tmp_path: Path) -> None:
    listed = write_study(tmp_path / "listed")
    secret = write_study(tmp_path / "secret")
    shelf = studies.Shelf.of([listed])
    assert set(shelf.folders) == {studies.BUNDLED_KEY, "listed"}
    assert shelf.open("listed").folder == listed.resolve()
    for key in (str(secret), "secret", "../secret", "listed/../secret", str(listed), "", None, 3, ["listed"]):
        with pytest.raises(CbamVizError, match="no study named"):
            shelf.open(key)
    with pytest.raises(gr.Error, match="no study named"):
        section.show_study(shelf, str(secret))
    with pytest.raises(gr.Error, match="no study named"):
        section.show_pair(shelf, "../secret", PAIR)
    with pytest.raises(CbamVizError, match="no summary.json"):
        studies.Shelf.of([tmp_path / "nothing"])
    args = layout.parse_args(["--study", f"{listed},{secret}", "--study", str(tmp_path / "third")])
    assert [folder for group in args.study for folder in group] == [listed, secret, tmp_path / "third"]
    assert [choice for _, choice in studies.Shelf.of([], bundled=None).choices()] == []


def test_a_folder_studys_picture_stays_inside_its_data_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "star").mkdir(parents=True)
    Image.new("RGB", (20, 20), "red").save(data / "star" / "a.png")
    Image.new("RGB", (20, 20), "blue").save(tmp_path / "outside.png")
    (data / "star" / "link.png").symlink_to(tmp_path / "outside.png")
    assert sources.picture_of(str(data), "star/a.png").size == (20, 20)
    for image_id in ("../outside.png", str(tmp_path / "outside.png"), "star/../../outside.png", "star/link.png"):
        with pytest.raises(CbamVizError):
            sources.picture_of(str(data), image_id)
    with pytest.raises(CbamVizError, match="not a shapes image id"):
        sources.picture_of("shapes", "../../etc/passwd")


def test_a_gallery_click_puts_the_studys_picture_and_settings_into_the_input(tmp_path: Path) -> None:
    shelf = studies.Shelf.of()
    study = shelf.open(studies.BUNDLED_KEY)
    items, ids = studies.gallery_items(study, PAIR, tmp_path)
    assert len(items) == len(ids) == len(study.disagreements(PAIR))
    engine = SimpleNamespace(weight_choices=lambda: [("auto", "auto"), ("demo", "demo")], lineup=PAPER_LINEUP)
    targets = {name: name for name in ("image", "models", "method", "stage", "view", "weights")}
    updates = section.open_picture(engine, shelf, studies.BUNDLED_KEY, ids, 1, targets)
    assert updates["method"] == "gradcam" and updates["stage"] == 4 and updates["view"] == "crop"
    assert updates["weights"] == "demo" and updates["models"] == ["resnet50", "se_resnet50", "cbam_resnet50"]
    assert Path(updates["image"]).stem == ids[1]
    seed, index = (int(part) for part in ids[1].split("-")[1:])
    expected = render_sample(seed, index, sources.SHAPES_SIZE).image
    assert np.array_equal(np.asarray(Image.open(updates["image"]).convert("RGB")), expected)
    with pytest.raises(gr.Error):
        section.open_picture(engine, shelf, studies.BUNDLED_KEY, ids, len(ids), targets)
    other = studies.Study("made", Path("."), copy.deepcopy(study.summary) | {"study": {"data": "shapes"}})
    assert "weights" not in studies.analysis_settings(other, ["auto"])


def test_the_study_section_is_registered_closed_with_named_events(demo_blocks: gr.Blocks) -> None:
    keys = [item.key for item in SECTIONS]
    assert "study" in keys and keys.index("study") < keys.index("export")
    assert section.SECTION.title and not section.SECTION.remembered
    accordion = next(block for block in demo_blocks.blocks.values() if getattr(block, "elem_id", None) == "study")
    assert isinstance(accordion, gr.Accordion) and accordion.open is False
    named = {fn.api_name for fn in demo_blocks.fns.values()}
    assert {"study", "study_open", "study_pair", "study_pick", "study_pick_scroll", "study_language"} <= named
    assert all(fn.api_name for fn in demo_blocks.fns.values())


@pytest.fixture(scope="module")
def demo_blocks(tmp_path_factory: pytest.TempPathFactory) -> gr.Blocks:
    from cbam_viz.ui.server.engine import Engine
    from tests.helpers.app import write_random_demo

    weights_dir = write_random_demo(tmp_path_factory.mktemp("weights"))
    engine = Engine.start("demo", "cpu", weights_dir, warm=False, offline=True)
    return layout.build_demo(engine)


def test_imagenet_weights_bring_their_published_top1_beside_the_table() -> None:
    study = made_study({"difference": 0.0, "ci": [-0.01, 0.01], "p_value": 1.0})
    assert "Published" not in studies.summary_table(study)  # the demo set has no published figure
    known = {"top1": 0.7613, "top5": 0.92862, "entry": "x", "eval_transform": "resize 256, centre crop 224, bilinear"}
    study.summary["models"]["resnet50"]["published"] = known
    table = studies.summary_table(study)
    assert (
        "Published ImageNet top-1 of these weights (resize 256, centre crop 224, bilinear): ResNet-50 76.13 %" in table
    )

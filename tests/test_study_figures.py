"""A study's figures: one per section of the summary (accuracy, localisation, the atlas's two), drawn from its numbers
(another number, another picture), never blank, and in Chinese without a missing glyph on the Chinese page."""

from __future__ import annotations

import copy
import json
import os
import warnings

import numpy as np
import pytest

from cbam_viz.i18n.language import using
from cbam_viz.render import fonts
from cbam_viz.render.atlas import excitation_figure, late_block
from cbam_viz.render.study import accuracy_figure, localisation_figure
from cbam_viz.study import figures
from cbam_viz.ui import study as studies

IN_CI = os.environ.get("CI", "").lower() == "true"
needs_han = pytest.mark.skipif(
    not IN_CI and fonts.han_faces() is None, reason="no Chinese font on this machine (apt-get install fonts-noto-cjk)"
)


@pytest.fixture(scope="module")
def bundled() -> tuple[dict, dict[str, np.ndarray]]:
    """The bundled study's summary and atlas sums: real numbers of every section."""
    summary = json.loads((studies.BUNDLED / "summary.json").read_text())
    return summary, figures.read_means(studies.BUNDLED)


def _drawn(picture: np.ndarray | None) -> np.ndarray:
    """A figure, checked to be an RGB picture with something drawn on it (not one colour, not mostly empty)."""
    assert isinstance(picture, np.ndarray) and picture.ndim == 3 and picture.shape[2] == 3
    assert picture.std() > 10 and (picture < 200).any(axis=2).mean() > 0.01
    return picture


def _differs(first: np.ndarray, second: np.ndarray) -> bool:
    return first.shape != second.shape or bool((first != second).any())


def test_each_figure_is_drawn_and_follows_its_numbers(bundled: tuple[dict, dict[str, np.ndarray]]) -> None:
    summary, means = bundled
    models = summary["models"]
    accuracy = _drawn(accuracy_figure(models))
    localisation = _drawn(localisation_figure(models))
    excitation = _drawn(excitation_figure(means, str))
    changed = copy.deepcopy(models)
    changed["cbam_resnet50"]["top1"]["value"] -= 0.3
    assert _differs(accuracy_figure(changed), accuracy)
    changed["cbam_resnet50"]["pointing"]["ci"] = [0.2, 0.99]  # only an interval
    assert _differs(localisation_figure(changed), localisation)
    block = late_block([key.split("/")[1] for key in means if key.startswith("se_resnet50/") and key.count("/") == 1])
    assert block == "layer3.5"  # the last block of the second-to-last stage, SENet's SE_4_6
    shifted = dict(means)
    shifted[f"se_resnet50/{block}"] = means[f"se_resnet50/{block}"] * 0.5
    assert _differs(excitation_figure(shifted, str), excitation)
    published = copy.deepcopy(models)
    published["resnet50"]["published"] = {"top1": 0.7613, "top5": 0.92862, "eval_transform": "resize 256"}
    assert _differs(accuracy_figure(published), accuracy)  # the publisher's figures are marked
    nothing = {arch: {key: {"value": None, "ci": [None, None]} for key in ("pointing", "energy")} for arch in models}
    assert localisation_figure(nothing) is None and excitation_figure({}, str) is None


def test_the_study_folder_gets_its_figures_and_a_file_of_the_users_is_kept(tmp_path, bundled) -> None:
    summary, means = bundled
    drawn = figures.draw(summary, means, str)
    assert set(drawn) == set(figures.FIGURES)
    user = figures.figure_file(tmp_path, "localisation")
    user.write_bytes(b"my own picture")
    notes = figures.write(tmp_path, drawn)
    assert notes == [f"figure-localisation.png in {tmp_path} is not a figure of this study: left as it is"]
    assert user.read_bytes() == b"my own picture"
    assert figures._ours(figures.figure_file(tmp_path, "accuracy"))
    assert figures.write(tmp_path, {"accuracy": drawn["accuracy"]}) == []  # its own figure: drawn again
    assert not list(tmp_path.glob("*.tmp"))


@needs_han
def test_the_figures_speak_chinese_without_a_missing_glyph(bundled: tuple[dict, dict[str, np.ndarray]]) -> None:
    summary, means = bundled
    study = studies.Shelf.of().open(studies.BUNDLED_KEY)
    with using("zh"), warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" would fail here
        drawn = studies.figures(study)
    assert set(drawn) == set(figures.FIGURES)
    with using("en"):
        english = studies.figures(study)
    for name in figures.FIGURES:
        assert _differs(_drawn(drawn[name]), english[name]), name  # the words changed language

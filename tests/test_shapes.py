"""The generated dataset: deterministic, the mask is the drawn target, and each class's mask has its class's form."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import regionprops

from cbam_viz.demo.shapes import CLASSES, CLUTTER_MAX_EXTENT, EXTENT_RANGE, generate, render_sample
from cbam_viz.demo.shapes_reference import render_reference

CONVEX = {"circle", "square", "triangle", "pentagon", "hexagon"}


def test_same_seed_and_index_give_the_same_sample() -> None:
    a, b = render_sample(4, 17, 80), render_sample(4, 17, 80)
    assert np.array_equal(a.image, b.image) and a.label == b.label and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(render_sample(5, 17, 80).image, a.image)


def test_generate_matches_render_sample_and_any_start() -> None:
    images, labels, masks = generate(3, 4, 64, start=10)
    for i in range(4):
        sample = render_sample(3, 10 + i, 64)
        assert np.array_equal(images[i], sample.image) and labels[i] == sample.label
        assert np.array_equal(masks[i], sample.mask)


@pytest.mark.parametrize("name", CLASSES)
def test_mask_has_the_form_of_its_class(name: str) -> None:
    label = CLASSES.index(name)
    for index in range(6):
        sample = render_sample(11, index, 128, label=label)
        assert sample.label == label and sample.name == name
        props = regionprops(sample.mask.astype(np.uint8))[0]
        extent = max(props.bbox[2] - props.bbox[0], props.bbox[3] - props.bbox[1]) / 128
        assert EXTENT_RANGE[0] - 0.03 <= extent <= EXTENT_RANGE[1] + 0.03
        rows, cols = np.nonzero(sample.mask)
        assert rows.min() >= 0 and cols.max() < 128  # fully inside
        holes = ndimage.binary_fill_holes(sample.mask).sum() - sample.mask.sum()
        if name == "ring":
            assert holes > 0.15 * sample.mask.sum()
        else:
            assert holes < 0.02 * sample.mask.sum()
        if name in CONVEX:
            assert props.solidity > 0.93
        elif name in {"star", "cross", "crescent", "arrow"}:
            assert props.solidity < 0.9
        # the mask is what was drawn: one flat colour inside, and it stands out from its surroundings
        inner = ndimage.binary_erosion(sample.mask, iterations=2)
        ring_outside = ndimage.binary_dilation(sample.mask, iterations=3) & ~sample.mask
        inside = sample.image[inner].astype(float)
        assert inside.std(axis=0).max() < 2.0
        assert np.linalg.norm(inside.mean(0) - sample.image[ring_outside].astype(float).mean(0)) > 40


def test_any_aspect_ratio() -> None:
    for width, height in [(160, 64), (48, 200)]:
        sample = render_sample(2, 0, width, height)
        assert sample.image.shape == (height, width, 3) and sample.mask.shape == (height, width)
        assert sample.mask.any()


def test_clutter_is_small_and_present() -> None:
    """Pixels that are neither background gradient nor target exist, and no distractor forms a large component."""
    sample = render_sample(9, 3, 128)
    edges = np.abs(np.diff(sample.image.astype(int), axis=1)).sum(-1) > 120
    edges &= ~sample.mask[:, 1:] & ~sample.mask[:, :-1]
    assert edges.sum() > 0
    labelled, count = ndimage.label(edges)
    sizes = [max(s[0].stop - s[0].start, s[1].stop - s[1].start) for s in ndimage.find_objects(labelled)]
    assert max(sizes) <= CLUTTER_MAX_EXTENT * 128 * 1.2 + 2


def test_reference_renderer_is_independent_and_consistent() -> None:
    image, label, mask = render_reference(1, 2, 96)
    assert image.shape == (96, 96, 3) and mask.any() and 0 <= label < len(CLASSES)
    assert np.array_equal(render_reference(1, 2, 96)[0], image)

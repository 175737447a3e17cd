"""Shapes-in-clutter: a generated dataset with one target shape per image and its exact object mask.

Each sample is a pure function of ``(seed, index)``, so any subset is reproducible and a held-out seed is truly
unseen. Shape proportions (star depth, ring thickness, arrow head, ...) vary widely on purpose, so that a model
trained here recognises shapes that any renderer following the same description draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "pentagon", "hexagon", "star", "cross", "ring", "crescent", "arrow")
EXTENT_RANGE = (0.30, 0.55)  # target extent as a fraction of the shorter image side
CLUTTER_RANGE = (3, 12)
CLUTTER_MAX_EXTENT = 0.09  # each distractor stays under 10 % of the shorter side
MIN_CONTRAST = 90.0  # RGB distance between the target and the mean background under it
SUPERSAMPLE = 2  # polygons are drawn at this factor and box-filtered down: anti-aliased edges


@dataclass(frozen=True)
class Sample:
    """One generated picture, its target class and the target's exact pixel mask."""

    image: np.ndarray  # H x W x 3, uint8
    label: int
    mask: np.ndarray  # H x W, bool: the target's pixels

    @property
    def name(self) -> str:
        """The target class's name."""
        return CLASSES[self.label]


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    angles = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _shape_parts(label: int, rng: np.random.Generator) -> list[tuple[np.ndarray, bool]]:
    """Polygons in unit coordinates; True adds to the shape, False cuts a hole (drawn in order)."""
    name = CLASSES[label]
    if name == "circle":
        return [(_regular(64), True)]
    if name in ("square", "triangle", "pentagon", "hexagon"):
        return [(_regular({"square": 4, "triangle": 3, "pentagon": 5, "hexagon": 6}[name]), True)]
    if name == "star":
        inner = rng.uniform(0.36, 0.52)
        radii = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return [(_regular(10) * radii[:, None], True)]
    if name == "cross":
        t = rng.uniform(0.18, 0.34)
        quarter = [(1, t), (t, t), (t, 1)]
        points = []
        for k in range(4):
            c, s = math.cos(k * math.pi / 2), math.sin(k * math.pi / 2)
            points += [(x * c - y * s, x * s + y * c) for x, y in quarter]
        return [(np.array(points), True)]
    if name == "ring":
        return [(_regular(64), True), (_regular(64) * rng.uniform(0.45, 0.72), False)]
    if name == "crescent":
        cut_radius = rng.uniform(0.75, 1.0)
        offset = rng.uniform(0.35, 0.65)
        return [(_regular(64), True), (_regular(64) * cut_radius + [offset, 0.0], False)]
    if name == "arrow":
        shaft, head, neck = rng.uniform(0.12, 0.24), rng.uniform(0.42, 0.62), rng.uniform(-0.05, 0.35)
        points = [(-1, -shaft), (neck, -shaft), (neck, -head), (1, 0), (neck, head), (neck, shaft), (-1, shaft)]
        return [(np.array(points, dtype=float), True)]
    raise ValueError(f"unknown class index {label}")


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random two-colour gradient plus noise or a texture, as float32 in [0, 255]."""
    start, end = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (xs / max(width - 1, 1) - 0.5) * math.cos(angle) + (ys / max(height - 1, 1) - 0.5) * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    image = start + (end - start) * t[..., None]
    texture = rng.integers(4)
    if texture == 1:  # stripes
        period = rng.uniform(4, 16)
        phase = (xs * math.cos(angle + 1) + ys * math.sin(angle + 1)) * 2 * np.pi / period
        image += rng.uniform(8, 30) * np.sin(phase)[..., None]
    elif texture == 2:  # low-frequency blotches
        coarse = rng.normal(0, 1, (max(2, height // 8), max(2, width // 8), 3)).astype(np.float32)
        blotch = (
            np.asarray(
                Image.fromarray(((coarse + 3) * 40).clip(0, 255).astype(np.uint8)).resize(
                    (width, height), Image.BICUBIC
                ),
                dtype=np.float32,
            )
            - 120
        )
        image += rng.uniform(0.2, 0.5) * blotch
    image += rng.normal(0, rng.uniform(2, 14), image.shape)
    return np.clip(image, 0, 255).astype(np.float32)


def _to_pixels(points: np.ndarray, scale: float) -> list[tuple[float, float]]:
    return [(float(x) * scale, float(y) * scale) for x, y in points]


def _draw_clutter(rng: np.random.Generator, canvas: Image.Image, short_side: int) -> None:
    """3-12 distractors, none of them a target class: thin segments, dots and irregular blobs."""
    draw = ImageDraw.Draw(canvas)
    width, height = canvas.size
    limit = CLUTTER_MAX_EXTENT * short_side * SUPERSAMPLE
    for _ in range(rng.integers(CLUTTER_RANGE[0], CLUTTER_RANGE[1] + 1)):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        kind = rng.integers(3)
        if kind == 0:
            length, angle = rng.uniform(0.4, 1.0) * limit, rng.uniform(0, np.pi)
            dx, dy = 0.5 * length * math.cos(angle), 0.5 * length * math.sin(angle)
            line_width = int(rng.integers(1, 3)) * SUPERSAMPLE
            draw.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=colour, width=line_width)
        elif kind == 1:
            r = rng.uniform(0.6, 1.6) * SUPERSAMPLE
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        else:
            n = int(rng.integers(7, 12))
            radius = rng.uniform(0.2, 0.45) * limit
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = radius * rng.uniform(0.55, 1.0, n)
            outline = [(cx + r * math.cos(a), cy + r * math.sin(a)) for a, r in zip(angles, radii, strict=True)]
            draw.polygon(outline, fill=colour)


def _target_mask(rng: np.random.Generator, label: int, width: int, height: int) -> np.ndarray:
    """The target's anti-aliased coverage (float in [0, 1]) at a random rotation, extent and position."""
    parts = _shape_parts(label, rng)
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    parts = [(points @ rotation.T, add) for points, add in parts]
    outline = np.concatenate([points for points, add in parts if add])
    low, high = outline.min(axis=0), outline.max(axis=0)
    short_side = min(width, height)
    extent = rng.uniform(*EXTENT_RANGE) * short_side
    scale = extent / float((high - low).max())
    size = (high - low) * scale
    origin = np.array([rng.uniform(0, width - size[0]), rng.uniform(0, height - size[1])])
    big = Image.new("L", (width * SUPERSAMPLE, height * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(big)
    for points, add in parts:
        placed = (points - low) * scale + origin
        draw.polygon(_to_pixels(placed, SUPERSAMPLE), fill=255 if add else 0)
    coverage = big.resize((width, height), Image.BOX)
    return np.asarray(coverage, dtype=np.float32) / 255.0


def _target_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A random colour far enough from the background it covers to stay visible."""
    for _ in range(32):
        colour = rng.uniform(0, 255, 3)
        if np.linalg.norm(colour - under) >= MIN_CONTRAST:
            return colour
    return np.where(under > 127, 0.0, 255.0)  # the opposite corner of the RGB cube is always far enough


def backdrop(seed: int, index: int, width: int, height: int) -> np.ndarray:
    """The background and clutter of a sample without its target shape (uint8 RGB): a scene to move a shape across,
    as the live mode's fake camera does."""
    rng = np.random.default_rng([seed, index, 1])
    background = _background(rng, height, width)
    clutter = Image.fromarray(background.astype(np.uint8)).resize((width * SUPERSAMPLE, height * SUPERSAMPLE))
    _draw_clutter(rng, clutter, min(width, height))
    return np.asarray(clutter.resize((width, height), Image.BOX), dtype=np.uint8)


def render_sample(
    seed: int, index: int, width: int = 96, height: int | None = None, label: int | None = None
) -> Sample:
    """Render sample ``index`` of the stream ``seed``; the same arguments always give the same pixels."""
    height = width if height is None else height
    if min(width, height) < 16:
        raise ValueError(f"image side must be at least 16 pixels, got {width}x{height}")
    rng = np.random.default_rng([seed, index])
    label = int(rng.integers(len(CLASSES))) if label is None else label
    background = _background(rng, height, width)
    clutter = Image.fromarray(background.astype(np.uint8)).resize((width * SUPERSAMPLE, height * SUPERSAMPLE))
    _draw_clutter(rng, clutter, min(width, height))
    image = np.asarray(clutter.resize((width, height), Image.BOX), dtype=np.float32)
    coverage = _target_mask(rng, label, width, height)
    mask = coverage >= 0.5
    colour = _target_colour(rng, image[mask].mean(axis=0))
    image = image * (1 - coverage[..., None]) + colour * coverage[..., None]
    return Sample(image=np.clip(image + 0.5, 0, 255).astype(np.uint8), label=label, mask=mask)


def generate(
    seed: int, count: int, width: int = 96, height: int | None = None, start: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``count`` samples of stream ``seed`` as arrays: images (N,H,W,3 uint8), labels (N,), masks (N,H,W bool)."""
    samples = [render_sample(seed, start + i, width, height) for i in range(count)]
    return (
        np.stack([s.image for s in samples]),
        np.array([s.label for s in samples], dtype=np.int64),
        np.stack([s.mask for s in samples]),
    )

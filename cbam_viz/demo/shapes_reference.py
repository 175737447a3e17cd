"""A second, independent renderer of the shapes-in-clutter description, used only to check generalisation.

It shares no code with ``shapes.py``: shapes are rasterised by scikit-image without anti-aliasing, proportions are
fixed at other values inside the description, the background uses other textures and the clutter other primitives.
A demo model that only learned the training generator's quirks fails here.
"""

from __future__ import annotations

import numpy as np
from skimage.draw import disk, line, polygon

from cbam_viz.demo.shapes import CLASSES


def _polygon(n: int, rotation: float, radius_pattern: tuple[float, ...] = (1.0,)) -> np.ndarray:
    angles = rotation + 2 * np.pi * np.arange(n) / n
    radii = np.resize(np.array(radius_pattern), n)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def _outline(name: str, rotation: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(filled polygons, holes) in unit coordinates around the origin."""
    turn = np.array([[np.cos(rotation), -np.sin(rotation)], [np.sin(rotation), np.cos(rotation)]])
    sides = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}
    if name in sides:
        return [_polygon(sides[name], rotation)], []
    if name == "circle":
        return [_polygon(90, 0.0)], []
    if name == "star":
        return [_polygon(10, rotation, (1.0, 0.42))], []
    if name == "cross":
        arm = np.array([[-1, -0.27], [1, -0.27], [1, 0.27], [-1, 0.27]])
        return [arm @ turn.T, arm[:, ::-1] @ turn.T], []
    if name == "ring":
        return [_polygon(90, 0.0)], [_polygon(90, 0.0) * 0.6]
    if name == "crescent":
        return [_polygon(90, 0.0)], [(_polygon(90, 0.0) * 0.85 + [0.45, 0.0]) @ turn.T]
    if name == "arrow":
        shape = np.array([[-1, -0.16], [0.2, -0.16], [0.2, -0.5], [1, 0], [0.2, 0.5], [0.2, 0.16], [-1, 0.16]])
        return [shape @ turn.T], []
    raise ValueError(f"unknown shape {name!r}")


def render_reference(
    seed: int, index: int, width: int = 96, height: int | None = None
) -> tuple[np.ndarray, int, np.ndarray]:
    """One sample as (image HxWx3 uint8, label, mask HxW bool)."""
    height = height or width
    rng = np.random.default_rng([seed, index, 7])
    label = int(rng.integers(len(CLASSES)))
    # background: a vertical or horizontal two-colour ramp, then a checkerboard or uniform noise
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    ramp = np.linspace(0, 1, width if rng.random() < 0.5 else height)
    ramp = ramp[None, :, None] if len(ramp) == width else ramp[:, None, None]
    image = np.broadcast_to(a + (b - a) * ramp, (height, width, 3)).astype(np.float64).copy()
    if rng.random() < 0.5:
        cell = int(rng.integers(3, 9))
        ys, xs = np.mgrid[0:height, 0:width]
        image += np.where(((ys // cell) + (xs // cell)) % 2 == 0, 12.0, -12.0)[..., None]
    else:
        image += rng.uniform(-20, 20, image.shape)
    # clutter: short lines and small dots, each under 10 % of the shorter side
    short = min(width, height)
    for _ in range(int(rng.integers(3, 13))):
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        colour = rng.integers(0, 256, 3)
        if rng.random() < 0.5:
            dy, dx = rng.integers(-int(0.08 * short), int(0.08 * short) + 1, 2)
            rr, cc = line(y, x, int(np.clip(y + dy, 0, height - 1)), int(np.clip(x + dx, 0, width - 1)))
        else:
            rr, cc = disk((y, x), max(1.0, 0.02 * short), shape=(height, width))
        image[rr, cc] = colour
    # the target, 30-55 % of the shorter side, fully inside, far from the background it covers
    filled, holes = _outline(CLASSES[label], rng.uniform(0, 2 * np.pi))
    points = np.concatenate(filled)
    span = (points.max(axis=0) - points.min(axis=0)).max()
    scale = rng.uniform(0.30, 0.55) * short / span
    low, high = points.min(axis=0) * scale, points.max(axis=0) * scale
    centre = np.array([rng.uniform(-low[0], width - high[0]), rng.uniform(-low[1], height - high[1])])
    mask = np.zeros((height, width), dtype=bool)
    for part, value in [(p, True) for p in filled] + [(h, False) for h in holes]:
        xy = part * scale + centre
        rr, cc = polygon(xy[:, 1], xy[:, 0], shape=(height, width))
        mask[rr, cc] = value
    under = image[mask].mean(axis=0)
    colour = 255.0 - under if np.abs(255.0 - 2 * under).sum() > 150 else rng.integers(0, 256, 3).astype(float)
    if np.linalg.norm(colour - under) < 90:
        colour = np.where(under > 127, 0.0, 255.0)
    image[mask] = colour
    return np.clip(image, 0, 255).astype(np.uint8), label, mask

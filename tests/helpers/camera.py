"""A fake webcam for Chromium: a Y4M (YUV4MPEG2, 4:2:0) clip of a shape crossing a cluttered picture.

Chromium plays it with ``--use-fake-device-for-media-stream --use-file-for-fake-video-capture=<clip>.y4m``, looping.
Used by the live-mode browser test and ``benchmarks/live.py``; each frame carries its number in a strip of black and
white cells along its bottom edge (``frame_number`` reads it back), so a frame can be followed from the camera to the
screen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cbam_viz.demo import shapes

WIDTH, HEIGHT = 320, 240
BITS = 10  # frame numbers up to 1023 in the strip
CELL = WIDTH // (BITS + 2)  # px per cell; a white cell at each end marks the strip
STRIP = 12  # px tall


def clip_frames(count: int = 30, shape: str = "star", side: int = 110, seed: int = 3) -> list[np.ndarray]:
    """``count`` RGB frames: ``shape`` (a held-out demo shape, cut out by its mask) moving left to right across the
    clutter of another held-out sample; -> frames, the shape's centre x going from 20 % to 80 % of the width."""
    label = shapes.CLASSES.index(shape)
    backdrop = shapes.backdrop(seed, 0, WIDTH, HEIGHT)
    sample = shapes.render_sample(7, label, width=side, label=label)
    sprite = Image.fromarray(sample.image)
    mask = Image.fromarray((sample.mask * 255).astype(np.uint8))
    frames = []
    for index in range(count):
        centre = 0.2 + 0.6 * index / max(1, count - 1)
        picture = Image.fromarray(backdrop.copy())
        picture.paste(sprite, (round(centre * WIDTH - side / 2), (HEIGHT - STRIP - side) // 2), mask)
        frames.append(stamp(np.asarray(picture).copy(), index))
    return frames


def shape_centres(count: int = 30) -> list[float]:
    """The shape's centre x in each frame of ``clip_frames(count)``, as a share of the width."""
    return [0.2 + 0.6 * index / max(1, count - 1) for index in range(count)]


def stamp(frame: np.ndarray, number: int) -> np.ndarray:
    """Write ``number`` into the frame's bottom strip: white end cells, then BITS cells, most significant first."""
    frame[-STRIP:, :] = 0
    cells = [1] + [(number >> bit) & 1 for bit in reversed(range(BITS))] + [1]
    for position, value in enumerate(cells):
        frame[-STRIP:, position * CELL : (position + 1) * CELL] = 255 * value
    return frame


def frame_number(frame: np.ndarray) -> int | None:
    """The number ``stamp`` wrote, read from any size the frame was scaled to; None if the strip is not there."""
    height, width = frame.shape[:2]
    row = frame[round(height * (1 - STRIP / 2 / HEIGHT)), :, :3].astype(float).mean(axis=1)
    cell = width * CELL / WIDTH
    values = [row[min(width - 1, int((position + 0.5) * cell))] > 127 for position in range(BITS + 2)]
    if not (values[0] and values[-1]):
        return None
    return int("".join("1" if value else "0" for value in values[1:-1]), 2)


# The same reading in a page's JavaScript: frameNumber(context, x, y, width, height) of a frame drawn at (x, y) with
# that size on a canvas context (the live-mode browser test and benchmarks/live.py).
FRAME_NUMBER_JS = f"""
(context, x, y, width, height) => {{
    const row = context.getImageData(x, y + Math.round(height * (1 - {STRIP / 2} / {HEIGHT})), width, 1).data;
    const cells = [];
    for (let i = 0; i < {BITS + 2}; i++) {{
        const at = Math.min(width - 1, Math.floor((i + 0.5) * width * {CELL} / {WIDTH})) * 4;
        cells.push((row[at] + row[at + 1] + row[at + 2]) / 3 > 127 ? 1 : 0);
    }}
    if (!cells[0] || !cells[{BITS + 1}]) return null;
    return parseInt(cells.slice(1, {BITS + 1}).join(''), 2);
}}
"""


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    """The frames as a 4:2:0 Y4M clip (BT.601, full range), which Chromium's fake camera reads."""
    height, width = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            rgb = frame[..., :3].astype(np.float32)
            y = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
            u = 128 - 0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2]
            v = 128 + 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2]
            sub = [plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)) for plane in (u, v)]
            out.write(b"FRAME\n")
            for plane in (y, *sub):
                out.write(np.clip(np.rint(plane), 0, 255).astype(np.uint8).tobytes())
    return path

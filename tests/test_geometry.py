"""Where each layout's feature cells lie, measured on the network itself and compared with what map_to_image draws.

Oracle: an all-positive LINEAR copy of the layout at a tiny width (ReLUs removed, the stem's max pool an average
pool of the same window, stride, padding and rounding, every conv kernel constant over its window with random
positive channel weights, BatchNorm the identity, no attention: SE and CBAM gates act per position or through a
same-padded stride-1 conv and move no cell). Every kernel is then symmetric about its centre, so the gradient of one
interior cell with respect to the input is symmetric about that cell's receptive-field centre, and its centre of mass
IS that centre. A cell whose gradient reaches the input's border is not interior (zero padding cuts its field) and
is not measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cbam_viz.imaging.view import CellGeometry, ModelView, map_to_image, model_geometry
from cbam_viz.model.resnet import ArchConfig, Bottleneck, build_resnet
from cbam_viz.weights.demo_set import read_demo_metadata
from cbam_viz.weights.registry import ENTRIES

SIZES = ((224, 224), (512, 512), (517, 515))  # the odd width: the Caffe stem's stage-1 grid is 129, not ceil(517/4)
TOLERANCE = 0.05  # input pixels


def _layouts() -> dict[str, ArchConfig]:
    """Every registry entry's layout and the demo set's."""
    layouts = {name: entry.config for name, entry in ENTRIES.items()}
    layouts["demo"] = ArchConfig(
        **read_demo_metadata(Path(__file__).resolve().parent.parent / "weights")["arch_config"]
    )
    return layouts


LAYOUTS = _layouts()
GEOMETRIES: dict[tuple, list[str]] = {}  # layouts that differ only in what moves no cell are measured once
for _name, _config in sorted(LAYOUTS.items()):
    GEOMETRIES.setdefault((_config.stride_in, _config.stem_pool, _config.last_stage_stride), []).append(_name)


def linear_copy(config: ArchConfig) -> nn.Module:
    """The layout at width 4 as an all-positive linear network (see the module docstring), in float64."""
    torch.manual_seed(0)
    model = build_resnet("resnet50", config.with_(base_width=4, num_classes=2))
    model.relu = nn.Identity()
    for module in model.modules():
        if isinstance(module, Bottleneck):
            module.relu = nn.Identity()
    pool = model.maxpool
    if isinstance(pool, nn.MaxPool2d):
        model.maxpool = nn.AvgPool2d(pool.kernel_size, pool.stride, pool.padding, ceil_mode=pool.ceil_mode)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                out, inp, kh, kw = module.weight.shape
                channel = torch.rand(out, inp, 1, 1) + 0.5
                weight = channel.expand(out, inp, kh, kw)
                module.weight.copy_(weight / weight.sum(dim=(1, 2, 3), keepdim=True))
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                module.reset_running_stats()
    return model.eval()


def measured(config: ArchConfig, size: tuple[int, int]) -> dict[int, tuple[int, int, float, float, tuple]]:
    """{stage: (row, column, centre x, centre y, grid shape)} of the interior cell of each stage whose field fits."""
    model = linear_copy(config)
    width, height = size
    x = torch.zeros(1, 3, height, width, requires_grad=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        hidden = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        found = {}
        for stage, layer in enumerate(model.stages, start=1):
            hidden = layer(hidden)
            row, col = hidden.shape[2] // 2, hidden.shape[3] // 2
            (grad,) = torch.autograd.grad(hidden[0, :, row, col].sum(), x, retain_graph=True)
            weight = grad[0].sum(0).double().numpy()
            assert weight.min() >= 0 and weight.sum() > 0
            border = np.concatenate([weight[0], weight[-1], weight[:, 0], weight[:, -1]])
            if border.max() > 0:
                continue  # the field reaches past the input: not an interior cell at this size
            found[stage] = (row, col, _centre_of_mass(weight), _centre_of_mass(weight.T), tuple(hidden.shape[2:]))
    finally:
        torch.set_num_threads(threads)
    return found


def _centre_of_mass(weight: np.ndarray) -> float:
    """The x centre of mass, in input pixel indices, of a (height, width) non-negative map."""
    columns = weight.sum(axis=0)
    return float((columns * np.arange(columns.size)).sum() / columns.sum())


@pytest.mark.parametrize("size", SIZES, ids=lambda size: f"{size[0]}x{size[1]}")
@pytest.mark.parametrize("layouts", list(GEOMETRIES.values()), ids=lambda names: "+".join(names))
def test_map_to_image_draws_each_cell_on_the_networks_own_centre(layouts: list[str], size: tuple[int, int]) -> None:
    config = LAYOUTS[layouts[0]]
    centres = measured(config, size)
    assert set(centres) >= ({1, 2, 3, 4} if min(size) >= 512 else {1, 2}), sorted(centres)
    for name in layouts:  # what map_to_image draws for each layout of this geometry
        view = ModelView("whole", size, (0.0, 0.0, 1.0, 1.0), "", CellGeometry.of(LAYOUTS[name]))
        for stage, (row, col, network_x, network_y, grid) in centres.items():
            hot = np.zeros(grid, dtype=np.float32)
            hot[row, col] = 1.0
            drawn = map_to_image(hot, view, size)
            drawn_x, drawn_y = _centre_of_mass(drawn), _centre_of_mass(drawn.T)
            assert abs(drawn_x - network_x) <= TOLERANCE, (name, stage, drawn_x, network_x)
            assert abs(drawn_y - network_y) <= TOLERANCE, (name, stage, drawn_y, network_y)


def test_the_caffe_stem_shifts_every_stage_by_two_pixels_and_the_padded_ones_by_none() -> None:
    """The geometry is computed from the layout, and a model carries its own (``model_geometry``)."""
    offsets = {layout: CellGeometry.of(config).offset for layout, config in LAYOUTS.items()}
    assert offsets["se_resnet50.caffe"] == 2.0
    assert {offsets[name] for name in ("demo", "resnet50.tv_v1", "cbam_resnet50.official")} == {0.0}
    caffe = LAYOUTS["se_resnet50.caffe"]
    model = build_resnet("se_resnet50", caffe.with_(base_width=4, num_classes=2))
    assert model_geometry(model) == CellGeometry.of(caffe) != model_geometry(nn.Linear(1, 1))
    plain = ModelView("whole", (224, 224), (0.0, 0.0, 1.0, 1.0), "")
    assert plain.for_model(model).geometry.offset == 2.0 and plain.geometry.offset == 0.0

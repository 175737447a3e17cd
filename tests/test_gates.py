"""Inside the gate: the steps are the tensors the gate really computed, they recompose to its output, and the
equations print this picture's numbers."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cbam_viz.analysis.capture import AttentionCapture, capture_pass, count_hooks, stage_layer
from cbam_viz.analysis.gates import (
    ChannelSteps,
    GateSteps,
    SpatialSteps,
    channel_equation,
    channel_order,
    recompose,
    spatial_equation,
)
from cbam_viz.errors import CbamVizError
from cbam_viz.model.resnet import ArchConfig
from cbam_viz.weights.load import load_model
from tests.helpers.models import random_model

GATED = ("se_resnet50", "cbam_resnet50")


def image_tensor(seed: int, size: int = 64) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


@functools.cache
def imagenet_model(arch: str) -> torch.nn.Module:
    """ImageNet-size (full width, 1000 classes) with random weights and random BN statistics: real variation."""
    return random_model(arch, seed=1, config=ArchConfig())


@pytest.mark.parametrize("arch", GATED)
@pytest.mark.parametrize("weights", ["imagenet-random", "demo"])
def test_recomposed_gates_equal_the_captured_gates_in_every_block(arch: str, weights: str) -> None:
    model = imagenet_model(arch) if weights == "imagenet-random" else load_model(arch, "demo")
    captured = capture_pass(model, image_tensor(2, 96), gate_steps=True)
    assert sorted(captured.gate_steps) == sorted(captured.channel) and len(captured.gate_steps) == 16
    for block, steps in captured.gate_steps.items():
        mc, ms = recompose(steps)
        np.testing.assert_allclose(mc, captured.channel[block], rtol=0, atol=1e-6, err_msg=block)
        if arch == "cbam_resnet50":
            np.testing.assert_allclose(ms, captured.spatial[block], rtol=0, atol=1e-6, err_msg=block)
            assert float(ms.std()) > 1e-4, f"{block}: the spatial check compares a constant map"
        else:
            assert ms is None and steps.spatial is None
        assert float(mc.std()) > 1e-4, f"{block}: the channel check compares a constant vector"
    assert count_hooks(model) == 0


def test_cbam_steps_are_the_gates_real_inputs_and_intermediates() -> None:
    model = random_model("cbam_resnet50", seed=3)
    attn = model.layer3[2].attn
    seen: dict[str, torch.Tensor] = {}
    handles = [
        attn.register_forward_pre_hook(lambda module, inputs: seen.__setitem__("F", inputs[0].detach())),
        attn.spatial.register_forward_pre_hook(lambda module, inputs: seen.__setitem__("F'", inputs[0].detach())),
    ]
    try:
        steps = capture_pass(model, image_tensor(5), gate_steps={"layer3.2"}).gate_steps["layer3.2"]
    finally:
        for handle in handles:
            handle.remove()
    x, refined = seen["F"][0], seen["F'"][0]
    channel, spatial = steps.channel, steps.spatial
    assert channel.kind == "cbam" and spatial is not None
    np.testing.assert_allclose(channel.avg, x.mean(dim=(1, 2)).numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(channel.max, x.amax(dim=(1, 2)).numpy(), rtol=0, atol=0)  # the order avg, max holds
    gate = attn.channel
    with torch.no_grad():
        for descriptor, output in ((channel.avg, channel.mlp_avg), (channel.max, channel.mlp_max)):
            np.testing.assert_allclose(output, gate.mlp(torch.from_numpy(descriptor)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(channel.logits, channel.mlp_avg + channel.mlp_max, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(spatial.max_map, refined.amax(dim=0).numpy(), rtol=0, atol=0)
    np.testing.assert_allclose(spatial.mean_map, refined.mean(dim=0).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(spatial.kernel_max, attn.spatial.conv.weight[0, 0].numpy())  # [max, mean]
    np.testing.assert_array_equal(spatial.kernel_mean, attn.spatial.conv.weight[0, 1].numpy())
    pooled = torch.from_numpy(np.stack([spatial.max_map, spatial.mean_map]))[None]
    conv = F.conv2d(pooled, attn.spatial.conv.weight, padding=3)[0, 0].numpy()
    np.testing.assert_allclose(spatial.conv, conv, rtol=1e-5, atol=1e-5)
    scale, shift = spatial.bn_affine()
    np.testing.assert_allclose(spatial.bn, scale * spatial.conv + shift, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(spatial.gate, 1 / (1 + np.exp(-spatial.bn)), rtol=1e-6, atol=1e-6)
    assert spatial.bn_eps == pytest.approx(attn.spatial.bn.eps) and spatial.padding == 3


def test_se_steps_are_squeeze_excitation_sigmoid() -> None:
    model = random_model("se_resnet50", seed=4)
    attn = model.layer2[0].attn
    seen: dict[str, torch.Tensor] = {}
    handle = attn.register_forward_pre_hook(lambda module, inputs: seen.__setitem__("F", inputs[0].detach()))
    try:
        captured = capture_pass(model, image_tensor(6), gate_steps=["layer2.0"])
    finally:
        handle.remove()
    steps = captured.gate_steps["layer2.0"]
    assert list(captured.gate_steps) == ["layer2.0"] and steps.spatial is None
    squeeze = seen["F"].mean(dim=(2, 3), keepdim=True)
    with torch.no_grad():
        excitation = attn.fc2(attn.act(attn.fc1(squeeze))).flatten()
    assert steps.channel.kind == "se" and steps.channel.max is None and steps.channel.mlp_max is None
    np.testing.assert_allclose(steps.channel.squeeze, squeeze.flatten().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(steps.channel.excitation, excitation.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(steps.channel.gate, captured.channel["layer2.0"])


def test_gate_steps_are_off_by_default_and_change_no_number() -> None:
    model = random_model("cbam_resnet50", seed=5)
    x = image_tensor(7)
    plain = capture_pass(model, x)
    stepped = capture_pass(model, x, gate_steps=True)
    assert plain.gate_steps == {} and len(stepped.gate_steps) == 16
    np.testing.assert_array_equal(plain.logits, stepped.logits)
    np.testing.assert_array_equal(plain.gradients, stepped.gradients)
    for block in plain.channel:
        np.testing.assert_array_equal(plain.channel[block], stepped.channel[block])
        np.testing.assert_array_equal(plain.spatial[block], stepped.spatial[block])
    with AttentionCapture(model, stage_layer(model, 4)):
        assert count_hooks(model) == 16 + 16 + 1  # off: no step recorder at all
    with AttentionCapture(model, stage_layer(model, 4), gate_steps={"layer1.0", "layer4.2"}):
        assert count_hooks(model) == 16 + 16 + 1 + 2 * 3  # per CBAM block: fc1, fc2 and the spatial conv
    assert count_hooks(model) == 0


def test_bad_gate_step_blocks_are_one_line_errors_and_leave_no_hook() -> None:
    cbam = random_model("cbam_resnet50")
    with pytest.raises(CbamVizError, match=r"'layer4\.3' is no block of ResNet-50"):
        capture_pass(cbam, image_tensor(0), gate_steps={"layer4.3"})
    plain = random_model("resnet50")
    with pytest.raises(CbamVizError, match="has no attention gate"):
        capture_pass(plain, image_tensor(0), gate_steps={"layer4.2"})
    assert capture_pass(plain, image_tensor(0), gate_steps=True).gate_steps == {}
    assert count_hooks(cbam) == 0 and count_hooks(plain) == 0


def test_steps_record_the_computed_gate_while_channel_holds_the_applied_one() -> None:
    model = random_model("cbam_resnet50", seed=6)
    x = image_tensor(8)
    normal = capture_pass(model, x, gate_steps={"layer2.1"})
    replaced = capture_pass(
        model, x, gate_steps={"layer2.1"}, replace={("layer2.1", "channel"): lambda gate, logits: torch.ones_like(gate)}
    )
    np.testing.assert_array_equal(replaced.channel["layer2.1"], np.ones_like(normal.channel["layer2.1"]))
    np.testing.assert_array_equal(replaced.gate_steps["layer2.1"].channel.gate, normal.channel["layer2.1"])
    assert not np.allclose(
        replaced.gate_steps["layer2.1"].spatial.max_map, normal.gate_steps["layer2.1"].spatial.max_map
    )


def _cbam_steps(mlp_avg: list[float], mlp_max: list[float]) -> GateSteps:
    avg, mx = np.asarray(mlp_avg, np.float32), np.asarray(mlp_max, np.float32)
    gate = 1 / (1 + np.exp(-(avg + mx)))
    channel = ChannelSteps("cbam", avg * 0, mx * 0, avg, mx, avg + mx, gate.astype(np.float32))
    return GateSteps("layer4.2", channel, None)


def test_channel_equation_fills_in_this_pictures_numbers() -> None:
    steps = _cbam_steps([1.32, -0.2, 0.0], [0.85, -0.4, -1.0])
    assert channel_equation(steps, 0) == "Mc[0] = σ(MLP(avg)[0] + MLP(max)[0]) = σ(1.32 + 0.85) = 0.90"
    assert channel_equation(steps, 1) == "Mc[1] = σ(MLP(avg)[1] + MLP(max)[1]) = σ(-0.20 - 0.40) = 0.35"
    assert channel_equation(steps, np.int64(2), digits=3).endswith("= σ(0.000 - 1.000) = 0.269")
    excitation = np.asarray([1.32], np.float32)
    se = GateSteps(
        "layer1.0", ChannelSteps("se", excitation, None, excitation, None, excitation, np.float32([0.789])), None
    )
    assert channel_equation(se, 0) == "Mc[0] = σ(MLP(squeeze)[0]) = σ(1.32) = 0.79"
    for bad in (3, -1, True, "0"):
        with pytest.raises(CbamVizError, match=r"channel must be 0-2 in layer4\.2"):
            channel_equation(steps, bad)


def test_spatial_equation_is_the_bn_affine_form_of_the_captured_numbers() -> None:
    model = random_model("cbam_resnet50", seed=7)
    steps = capture_pass(model, image_tensor(9), gate_steps={"layer1.1"}).gate_steps["layer1.1"]
    spatial = steps.spatial
    text = spatial_equation(steps, 2, 5, digits=4)
    scale, shift = spatial.bn_affine()
    assert text.startswith("Ms[2,5] = σ(BN(conv7x7([max; mean])[2,5])) = σ(")
    assert f"{scale:.4f}·" in text and f"= {spatial.gate[2, 5]:.4f}" in text and f"σ({spatial.bn[2, 5]:.4f})" in text
    with pytest.raises(CbamVizError, match="position must be within"):
        spatial_equation(steps, 99, 0)
    se = random_model("se_resnet50")
    with pytest.raises(CbamVizError, match="no spatial gate"):
        spatial_equation(capture_pass(se, image_tensor(9), gate_steps={"layer1.1"}).gate_steps["layer1.1"], 0, 0)


def test_channel_order_sorts_once_and_marks_ten_strongest_and_weakest() -> None:
    values = np.random.default_rng(0).random(64).astype(np.float32)
    order = channel_order(values)
    assert np.all(np.diff(values[order.order]) <= 0) and sorted(order.order) == list(range(64))
    assert list(order.strongest) == list(np.argsort(-values)[:10])
    assert list(order.weakest) == list(np.argsort(values)[:10])
    assert order.mark(int(order.strongest[0])) == "strong" and order.mark(int(order.weakest[0])) == "weak"
    assert order.mark(int(order.order[30])) == ""
    assert len(channel_order(values[:12]).strongest) == 6  # small gates: the marks never overlap
    steps = _cbam_steps([0.1, 3.0, -2.0, 0.5], [0, 0, 0, 0])
    assert list(channel_order(steps, marked=1).strongest) == [1] and list(channel_order(steps, marked=1).weakest) == [2]


def test_spatial_steps_dataclass_has_the_kernel_in_conv_order() -> None:
    fields = list(SpatialSteps.__dataclass_fields__)
    assert fields.index("kernel_max") < fields.index("kernel_mean")

"""The hook owner and the single pass: hooks never outlive a pass, gates are captured exactly, backward stays short."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cbam_viz.analysis.capture import AttentionCapture, capture_pass, count_hooks, model_lock, stage_layer
from tests.helpers.models import random_model


def image_tensor(seed: int, size: int = 64) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_hooks_live_only_inside_the_capture_and_removal_is_idempotent() -> None:
    model = random_model("cbam_resnet50")
    assert count_hooks(model) == 0
    capture = AttentionCapture(model, stage_layer(model, 4))
    with capture:
        assert count_hooks(model) == 16 + 16 + 1  # channel gates, spatial gates, the CAM layer
        model(image_tensor(0))
    assert count_hooks(model) == 0
    capture.remove()  # a second removal is harmless
    assert count_hooks(model) == 0
    assert sorted(capture.channel) == sorted(capture.spatial)
    assert len(capture.channel) == 16 and capture.cam_activations is not None


def test_hooks_are_removed_and_the_model_released_after_an_exception_mid_forward() -> None:
    model = random_model("se_resnet50")

    def explode(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        raise RuntimeError("failure inside layer3")

    handle = model.layer3.register_forward_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="failure inside layer3"):
            capture_pass(model, image_tensor(0))
    finally:
        handle.remove()
    assert count_hooks(model) == 0
    acquired = []

    def try_lock() -> None:
        lock = model_lock(model)
        acquired.append(lock.acquire(timeout=5))
        if acquired[-1]:
            lock.release()

    worker = threading.Thread(target=try_lock)
    worker.start()
    worker.join()
    assert acquired == [True], "the capture kept the model locked after the exception"


def test_cbam_gates_equal_the_paper_equations_computed_by_hand() -> None:
    model = random_model("cbam_resnet50", seed=3)
    block = model.layer2[1]
    seen: dict[str, torch.Tensor] = {}
    handle = block.attn.register_forward_pre_hook(lambda module, inputs: seen.__setitem__("x", inputs[0].detach()))
    try:
        captured = capture_pass(model, image_tensor(5))
    finally:
        handle.remove()
    x = seen["x"]
    channel, spatial = block.attn.channel, block.attn.spatial

    def mlp(descriptor: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(F.linear(descriptor, channel.fc1.weight, channel.fc1.bias))
        return F.linear(hidden, channel.fc2.weight, channel.fc2.bias)

    mc = torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))  # Mc = sigma(MLP(avg) + MLP(max))
    refined = x * mc[:, :, None, None]
    pooled = torch.cat([refined.amax(dim=1, keepdim=True), refined.mean(dim=1, keepdim=True)], dim=1)  # [max; mean]
    conv = F.conv2d(pooled, spatial.conv.weight, padding=3)
    bn = spatial.bn
    normalised = (conv - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var + bn.eps)[
        None, :, None, None
    ]
    ms = torch.sigmoid(normalised * bn.weight[None, :, None, None] + bn.bias[None, :, None, None])

    np.testing.assert_allclose(captured.channel["layer2.1"], mc[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(captured.spatial["layer2.1"], ms[0, 0].numpy(), rtol=1e-5, atol=1e-6)
    assert captured.spatial["layer2.1"].shape == (16, 16)  # 64 px: the stem conv halves it, stage 2 halves again
    assert float(mc.std()) > 1e-3 and float(ms.std()) > 1e-3  # the check compares real variation, not constants


def test_se_gate_equals_the_squeeze_excitation_equation() -> None:
    model = random_model("se_resnet50", seed=4)
    block = model.layer3[0]
    seen: dict[str, torch.Tensor] = {}
    handle = block.attn.register_forward_pre_hook(lambda module, inputs: seen.__setitem__("x", inputs[0].detach()))
    try:
        captured = capture_pass(model, image_tensor(6))
    finally:
        handle.remove()
    squeezed = seen["x"].mean(dim=(2, 3), keepdim=True)
    hidden = F.relu(F.conv2d(squeezed, block.attn.fc1.weight, block.attn.fc1.bias))
    expected = torch.sigmoid(F.conv2d(hidden, block.attn.fc2.weight, block.attn.fc2.bias)).flatten()
    np.testing.assert_allclose(captured.channel["layer3.0"], expected.numpy(), rtol=1e-5, atol=1e-6)
    assert captured.spatial == {}
    assert len(captured.channel) == 16


def test_plain_resnet_has_no_attention_but_a_cam_input() -> None:
    captured = capture_pass(random_model("resnet50"), image_tensor(1), stage=3)
    assert captured.channel == {} and captured.spatial == {}
    assert captured.activations.shape == (1, 8 * 4 * 4, 8, 8)  # stage 3: 128 channels on an 8x8 grid (64 px / 8)
    assert captured.gradients is not None and captured.gradients.shape == captured.activations.shape


def test_backward_stops_at_the_cam_layer_even_with_trainable_parameters() -> None:
    model = random_model("cbam_resnet50", frozen=False)
    fired: list[str] = []

    def watch(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        output.register_hook(lambda grad: fired.append("layer3"))

    handle = model.layer3.register_forward_hook(watch)
    try:
        captured = capture_pass(model, image_tensor(2, size=32), stage=4)
        assert fired == [], "the CAM backward reached layer3"
        assert all(p.grad is None for p in model.parameters()), "the CAM backward accumulated parameter gradients"
        assert np.abs(captured.gradients).sum() > 0
        model(image_tensor(2, size=32))[0, 0].backward()  # the control: an ordinary backward does reach layer3
        assert fired == ["layer3"]
    finally:
        handle.remove()
    assert count_hooks(model) == 0


def test_frozen_model_builds_no_graph_before_the_cam_layer() -> None:
    model = random_model("resnet50")
    needs_grad: dict[str, bool] = {}
    handles = [
        getattr(model, name).register_forward_hook(
            lambda module, inputs, output, name=name: needs_grad.__setitem__(name, output.requires_grad)
        )
        for name in ("layer1", "layer2", "layer3")
    ]
    try:
        capture_pass(model, image_tensor(3), stage=4)
    finally:
        for handle in handles:
            handle.remove()
    assert needs_grad == {"layer1": False, "layer2": False, "layer3": False}


def test_gradients_equal_an_ordinary_full_backward() -> None:
    model = random_model("se_resnet50", seed=7)
    x = image_tensor(8, size=32)
    captured = capture_pass(model, x, stage=3, target=4)
    kept: dict[str, torch.Tensor] = {}

    def keep(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        output.retain_grad()
        kept["out"] = output

    handle = model.layer3.register_forward_hook(keep)
    try:
        model.requires_grad_(True)
        model(x)[0, 4].backward()
    finally:
        handle.remove()
        model.requires_grad_(False)
    np.testing.assert_allclose(captured.gradients, kept["out"].grad.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(captured.activations, kept["out"].detach().numpy(), rtol=1e-5, atol=1e-6)
    assert captured.target_index == 4


def test_concurrent_passes_on_one_model_get_their_own_results() -> None:
    model = random_model("cbam_resnet50", seed=9)
    inputs = {name: image_tensor(seed) for name, seed in (("a", 11), ("b", 12))}
    alone = {name: capture_pass(model, x) for name, x in inputs.items()}
    assert not np.allclose(alone["a"].spatial["layer4.2"], alone["b"].spatial["layer4.2"], atol=1e-3)
    results: dict[str, list] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        barrier.wait()
        for _ in range(6):
            results[name].append(capture_pass(model, inputs[name]))

    threads = [threading.Thread(target=work, args=(name,)) for name in inputs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, runs in results.items():
        assert len(runs) == 6
        for run in runs:
            np.testing.assert_allclose(run.logits, alone[name].logits, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(run.gradients, alone[name].gradients, rtol=1e-4, atol=1e-6)
            for block in alone[name].spatial:
                np.testing.assert_allclose(run.spatial[block], alone[name].spatial[block], rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(run.channel[block], alone[name].channel[block], rtol=1e-5, atol=1e-6)
    assert count_hooks(model) == 0


def test_a_forward_from_another_thread_is_not_recorded() -> None:
    model = random_model("cbam_resnet50", seed=10)
    mine, other = image_tensor(20), image_tensor(21)
    with AttentionCapture(model, stage_layer(model, 4)) as capture:
        model(mine)
        recorded = capture.spatial["layer4.2"].clone()
        worker = threading.Thread(target=lambda: model(other))
        worker.start()
        worker.join()
        assert torch.equal(capture.spatial["layer4.2"], recorded)


def test_one_image_at_a_time() -> None:
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        capture_pass(random_model("resnet50"), torch.zeros(2, 3, 32, 32))


def test_the_pass_works_inside_the_callers_no_grad_or_inference_mode() -> None:
    model = random_model("cbam_resnet50", seed=13)
    x = image_tensor(14, size=32)
    reference = capture_pass(model, x)
    with torch.no_grad():
        under_no_grad = capture_pass(model, x)
    with torch.inference_mode():
        under_inference = capture_pass(model, x.clone())
    for captured in (under_no_grad, under_inference):
        assert captured.gradients is not None and np.abs(captured.gradients).sum() > 0
        np.testing.assert_allclose(captured.gradients, reference.gradients, rtol=1e-5, atol=1e-8)

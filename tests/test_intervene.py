"""Gate interventions: specs parse once, each kind of replacement does what it says, `one` everywhere is the model
without attention, nothing leaks to other threads or outlives a failure, and the sweep equals single interventions."""

from __future__ import annotations

import copy
import functools
import re
import threading

import numpy as np
import pytest
import torch

from cbam_viz.analysis.capture import capture_pass, count_hooks, model_lock
from cbam_viz.analysis.gates import channel_order, position_order, strongest_position
from cbam_viz.analysis.intervene import Intervention, check, replacements, run_interventions, sweep
from cbam_viz.analysis.run import run_model
from cbam_viz.errors import CbamVizError
from cbam_viz.model.resnet import ArchConfig, ResNet, build_resnet
from cbam_viz.weights.load import load_model
from tests.helpers.models import random_model


def image_tensor(seed: int, size: int = 32) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


@functools.cache
def imagenet_model(arch: str) -> torch.nn.Module:
    return random_model(arch, seed=2, config=ArchConfig())


# ------------------------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "spec, where, gate, how, k",
    [
        ("layer3:spatial=one", "layer3", "spatial", "one", None),
        ("all:channel=mean", "all", "channel", "mean", None),
        ("layer4.2:both=one", "layer4.2", "both", "one", None),
        ("layer2:channel=keep-top-k:16", "layer2", "channel", "keep-top-k", 16),
        (" Layer1.0 : Spatial = Shuffle ", "layer1.0", "spatial", "shuffle", None),
    ],
)
def test_specs_parse_once_into_a_frozen_value_that_round_trips(
    spec: str, where: str, gate: str, how: str, k: int | None
) -> None:
    parsed = Intervention.parse(spec)
    assert (parsed.where, parsed.gate, parsed.how, parsed.k) == (where, gate, how, k)
    assert Intervention.parse(parsed.spec) == parsed and Intervention.parse(parsed) is parsed
    with pytest.raises(AttributeError):
        parsed.how = "mean"  # type: ignore[misc]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("layer3", "expected <where>:<gate>=<how>"),
        ("layer3:spatial", "expected <where>:<gate>=<how>"),
        ("layer5:channel=one", "stages layer1-layer4"),
        ("layer4.3:channel=one", r"layer4 has blocks \.0-\.2"),
        ("layer:channel=one", "where must be all"),
        ("all:gates=one", "gate must be channel, spatial or both"),
        ("all:channel=zero", "how must be one, mean, shuffle or keep-top-k"),
        ("all:channel=keep-top-k", "keep-top-k needs K"),
        ("all:channel=keep-top-k:0", "whole number K >= 1"),
        ("all:channel=keep-top-k:x", "keep-top-k needs K"),
        ("all:channel=one:3", "how must be"),
    ],
)
def test_bad_specs_are_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(CbamVizError, match=message) as error:
        Intervention.parse(spec)
    assert "\n" not in str(error.value)


def test_a_long_hostile_spec_is_quoted_short() -> None:
    spec = "all:channel=" + "x" * 5000 + "\nrm -rf /"
    with pytest.raises(CbamVizError) as error:
        Intervention.parse(spec)
    assert len(str(error.value)) < 250 and "\n" not in str(error.value)
    with pytest.raises(CbamVizError, match="must be a string"):
        Intervention.parse(3)  # type: ignore[arg-type]


def test_gates_the_model_lacks_are_one_line_errors_never_silent() -> None:
    plain, se = random_model("resnet50"), random_model("se_resnet50")
    with pytest.raises(CbamVizError, match="^ResNet-50 has no attention gates to switch off"):
        run_interventions(plain, image_tensor(0), ["all:channel=one"])
    with pytest.raises(CbamVizError, match="^SE-ResNet-50 has no spatial gate"):
        run_interventions(se, image_tensor(0), ["layer3:spatial=mean"])
    with pytest.raises(CbamVizError, match="no attention gates"):
        sweep(plain, image_tensor(0))
    with pytest.raises(CbamVizError, match="no spatial gate"):  # checked before any pass: the first spec is fine
        check(se, ["layer1:channel=one", "layer1:spatial=one"])
    assert count_hooks(plain) == 0 and count_hooks(se) == 0


def test_both_on_se_switches_every_gate_it_has_its_channel_gate() -> None:
    se = random_model("se_resnet50", seed=5)
    assert set(replacements(Intervention.parse("layer3:both=mean"), se)) == set(
        replacements(Intervention.parse("layer3:channel=mean"), se)
    )
    [both] = run_interventions(se, image_tensor(0), ["all:both=one"])
    [channel] = run_interventions(se, image_tensor(0), ["all:channel=one"])
    assert both.target_prob == pytest.approx(channel.target_prob, abs=1e-6)
    assert both.target_prob_change != 0.0  # it did switch something off


def test_a_refusal_names_only_the_chosen_models() -> None:
    """A spec no chosen model can take gives each chosen model's reason and advises no model that was not chosen;
    the note of a gateless model beside a gated one names no other model either."""
    from cbam_viz.pipeline import intervention_plan
    from cbam_viz.vocab import ARCH_TITLES

    plain, se, cbam = (random_model(arch, seed=5) for arch in ("resnet50", "se_resnet50", "cbam_resnet50"))

    def named(line: str) -> set[str]:  # "ResNet-50" alone, not inside "SE-ResNet-50"
        return {arch for arch, title in ARCH_TITLES.items() if re.search(rf"(?<![\w-]){re.escape(title)}", line)}

    for models, spec in (
        ({"resnet50": plain}, "layer3:channel=one"),
        ({"resnet50": plain}, "sweep"),
        ({"resnet50": plain, "se_resnet50": se}, "layer3:spatial=one"),
        ({"se_resnet50": se}, "all:spatial=mean"),
    ):
        with pytest.raises(CbamVizError) as refused:
            intervention_plan(models, [spec])
        line = str(refused.value)
        assert named(line) == set(models), (models, line)
        assert "\n" not in line and len(line) < 300
    plan = intervention_plan({"resnet50": plain, "cbam_resnet50": cbam}, ["layer3:channel=one"])
    assert plan["cbam_resnet50"]["layer3:channel=one"] is None
    assert named(plan["resnet50"]["layer3:channel=one"]) == {"resnet50"}
    with pytest.raises(CbamVizError, match="^bad intervention"):  # a spec that cannot be read says that first
        intervention_plan({"resnet50": plain, "se_resnet50": se}, ["layer3-spatial"])


# -------------------------------------------------------------------------------------------- what each one does


def applied(model: torch.nn.Module, x: torch.Tensor, spec: str | None):
    replace = replacements(Intervention.parse(spec), model) if spec else None
    return capture_pass(model, x, replace=replace, gradients=False)


def test_each_replacement_does_what_its_name_says() -> None:
    model, x = random_model("cbam_resnet50", seed=3), image_tensor(4)
    base = applied(model, x, None)
    mc, ms = base.channel["layer3.1"], base.spatial["layer3.1"]
    one = applied(model, x, "layer3.1:both=one")
    assert np.all(one.channel["layer3.1"] == 1) and np.all(one.spatial["layer3.1"] == 1)
    mean = applied(model, x, "layer3.1:channel=mean")
    np.testing.assert_allclose(mean.channel["layer3.1"], np.full_like(mc, mc.mean()), rtol=1e-6)
    mean = applied(model, x, "layer3.1:spatial=mean")  # the channel gate is untouched, so Ms is the base's
    np.testing.assert_allclose(mean.spatial["layer3.1"], np.full_like(ms, ms.mean()), rtol=1e-6)
    assert np.ptp(ms) > 1e-3
    shuffled = applied(model, x, "layer3.1:channel=shuffle").channel["layer3.1"]
    assert not np.array_equal(shuffled, mc) and np.array_equal(np.sort(shuffled), np.sort(mc))
    np.testing.assert_array_equal(applied(model, x, "layer3.1:channel=shuffle").channel["layer3.1"], shuffled)
    top = applied(model, x, "layer3.1:channel=keep-top-k:5").channel["layer3.1"]
    kept = np.flatnonzero(top)
    assert sorted(kept) == sorted(np.argsort(-mc)[:5]) and np.array_equal(top[kept], mc[kept])
    top_map = applied(model, x, "layer3.1:spatial=keep-top-k:7").spatial["layer3.1"]
    assert np.count_nonzero(top_map) == 7 and set(np.flatnonzero(top_map)) == set(np.argsort(-ms.ravel())[:7])
    everything = applied(model, x, "layer3.1:channel=keep-top-k:100000")  # K above the gate's size keeps all
    np.testing.assert_array_equal(everything.logits, base.logits)


def test_keep_top_k_keeps_the_k_the_gate_panel_marks_strongest_when_the_gate_saturates() -> None:
    """Half the channels of a CBAM gate and all its positions get Mc = Ms = 1.0 exactly in float32 (pre-sigmoid
    values from 30 to 80): only the sigmoid's input still ranks them, and keep-top-k must keep the panel's K."""
    model, x = random_model("cbam_resnet50", 5), image_tensor(4)
    attention = model.layer3[1].attn
    with torch.no_grad():
        count = attention.channel.fc2.bias.numel()
        saturated = torch.randperm(count, generator=torch.Generator().manual_seed(0))[: count // 2]
        attention.channel.fc2.bias[saturated] = torch.linspace(15.0, 40.0, count // 2)  # added twice: 30 to 80
        attention.spatial.bn.bias.fill_(40.0)
    steps = capture_pass(model, x, gate_steps={"layer3.1"}, gradients=False).gate_steps["layer3.1"]
    assert np.count_nonzero(steps.channel.gate == 1.0) >= count // 2 and np.all(steps.spatial.gate == 1.0)
    for k in (3, 10, 40):
        kept = np.flatnonzero(applied(model, x, f"layer3.1:channel=keep-top-k:{k}").channel["layer3.1"])
        assert sorted(kept) == sorted(channel_order(steps, marked=k).strongest), k
        assert sorted(kept) == sorted(saturated[torch.argsort(torch.linspace(15.0, 40.0, count // 2))][-k:].tolist())
        positions = np.flatnonzero(applied(model, x, f"layer3.1:spatial=keep-top-k:{k}").spatial["layer3.1"])
        assert sorted(positions) == sorted(position_order(steps)[:k]), k
    row, col = strongest_position(steps)
    assert row * steps.spatial.gate.shape[1] + col == position_order(steps)[0]
    assert steps.spatial.bn[row, col] == steps.spatial.bn.max()


def test_only_the_chosen_blocks_change() -> None:
    model, x = random_model("cbam_resnet50", seed=5), image_tensor(6)
    base = applied(model, x, None)
    stage3 = applied(model, x, "layer3:channel=one")
    for block in base.channel:
        if block.startswith(("layer1.", "layer2.")):
            np.testing.assert_array_equal(stage3.channel[block], base.channel[block])
            np.testing.assert_array_equal(stage3.spatial[block], base.spatial[block])
        elif block.startswith("layer3."):
            assert np.all(stage3.channel[block] == 1) and not np.all(stage3.spatial[block] == 1)
        else:
            assert not np.all(stage3.channel[block] == 1)
    block = applied(model, x, "layer4.2:spatial=one")
    assert np.all(block.spatial["layer4.2"] == 1) and not np.all(block.spatial["layer4.1"] == 1)
    np.testing.assert_array_equal(block.spatial["layer4.1"], base.spatial["layer4.1"])


# ---------------------------------------------------------------------- `one` everywhere = no attention at all


def without_attention(model: torch.nn.Module) -> torch.nn.Module:
    """A plain ResNet-50 of the same config holding every non-attention weight of ``model``."""
    plain = build_resnet("resnet50", model.config)
    state = {key: value for key, value in model.state_dict().items() if ".attn." not in key}
    plain.load_state_dict(state, strict=True)
    return plain.eval().requires_grad_(False)


@pytest.mark.parametrize("arch, spec", [("cbam_resnet50", "all:both=one"), ("se_resnet50", "all:channel=one")])
@pytest.mark.parametrize("weights", ["imagenet-random", "demo"])
def test_every_gate_at_one_gives_the_logits_of_the_model_without_attention(arch: str, spec: str, weights: str) -> None:
    model = imagenet_model(arch) if weights == "imagenet-random" else load_model(arch, "demo")
    x = image_tensor(7, 96)
    plain = without_attention(model)
    with torch.no_grad():
        expected = plain(x)[0].numpy()
    intervened = applied(model, x, spec).logits
    np.testing.assert_allclose(intervened, expected, rtol=0, atol=1e-6 * max(1.0, float(np.abs(expected).max())))
    normal = applied(model, x, None).logits
    assert np.abs(normal - expected).max() > 1e-3, "the attention changed nothing: the comparison proves nothing"
    if weights == "imagenet-random":
        return
    [result] = run_interventions(model, x, [spec], target_index=3)
    assert result.target_prob == pytest.approx(
        float(torch.softmax(torch.from_numpy(expected).double(), 0)[3]), abs=1e-6
    )


def test_score_cam_runs_its_own_forwards_with_the_intervention_in_place() -> None:
    model = random_model("cbam_resnet50", seed=8)
    x = image_tensor(9)
    plain = without_attention(model)  # stage 1: Score-CAM's forwards are one batch of its 32 channels
    [result] = run_interventions(model, x, ["all:both=one"], method="scorecam", stage=1, target_index=2)
    reference = run_model("resnet50", plain, x, method="scorecam", stage=1, target=2)
    np.testing.assert_allclose(result.cam, reference.cam, rtol=1e-4, atol=1e-6)
    assert count_hooks(model) == 0


# ----------------------------------------------------------------------------------------------- the results


def test_results_compare_with_the_base_and_serialise() -> None:
    model, x = random_model("cbam_resnet50", seed=10), image_tensor(11)
    base = run_model("cbam_resnet50", model, x, method="gradcam", stage=3)
    identity, switched = run_interventions(
        model, x, ["all:channel=keep-top-k:100000", "layer3:both=one"], stage=3, base=base
    )
    assert identity.target_index == switched.target_index == base.target_index
    assert identity.target_prob_change == pytest.approx(0, abs=1e-6)
    np.testing.assert_allclose(identity.cam, base.cam, rtol=1e-5, atol=1e-7)
    assert identity.cam_correlation == pytest.approx(1.0, abs=1e-6)
    assert switched.target_prob_change == pytest.approx(switched.target_prob - base.target_prob)
    assert abs(switched.target_prob_change) > 1e-4 and switched.cam_correlation < 0.9999
    assert switched.cam.shape == base.cam.shape == (4, 4)
    document = switched.to_json()
    assert list(document) == ["spec", "top5", "target_prob", "target_prob_change", "cam"]
    assert document["spec"] == "layer3:both=one" and len(document["top5"]) == 5
    assert set(document["top5"][0]) == {"index", "prob"}
    assert list(document["cam"]) == ["height", "width", "mean", "min", "max", "correlation"]
    assert document["cam"]["correlation"] == pytest.approx(switched.cam_correlation)
    probs = [entry["prob"] for entry in document["top5"]]
    assert probs == sorted(probs, reverse=True) and document["top5"][0]["index"] == switched.top5[0][0]
    with pytest.raises(ValueError, match="explains class"):
        run_interventions(model, x, ["layer3:both=one"], stage=3, base=base, target_index=(base.target_index + 1) % 10)
    with pytest.raises(ValueError, match="stage 3, not 4"):
        run_interventions(model, x, ["layer3:both=one"], stage=4, base=base)


def test_a_failed_intervention_leaves_no_hook_and_releases_the_model() -> None:
    model = random_model("cbam_resnet50")

    def explode(gate: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("replacement failed")

    with pytest.raises(RuntimeError, match="replacement failed"):
        capture_pass(model, image_tensor(0), replace={("layer2.1", "spatial"): explode}, gate_steps=True)
    assert count_hooks(model) == 0
    with pytest.raises(CbamVizError, match="no spatial gate in block 'layer9.9'"):
        capture_pass(model, image_tensor(0), replace={("layer9.9", "spatial"): explode})
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
    assert acquired == [True], "the failed intervention kept the model locked"


def test_an_intervention_never_leaks_into_other_threads_on_the_same_model() -> None:
    model = random_model("cbam_resnet50", seed=12)
    x_mine, x_other = image_tensor(13), image_tensor(14)
    normal = run_model("cbam_resnet50", model, x_other)
    with torch.no_grad():
        bare_normal = model(x_other).numpy()
    changed = run_interventions(model, x_mine, ["all:both=one"])[0]
    errors: list[str] = []
    barrier = threading.Barrier(3)

    def intervene() -> None:
        barrier.wait()
        for _ in range(6):
            again = run_interventions(model, x_mine, ["all:both=one"])[0]
            if abs(again.target_prob - changed.target_prob) > 1e-6:
                errors.append("the intervention itself changed")

    def analyse() -> None:
        barrier.wait()
        for _ in range(6):
            result = run_model("cbam_resnet50", model, x_other)
            if abs(result.target_prob - normal.target_prob) > 1e-6 or not np.allclose(result.cam, normal.cam):
                errors.append("an analysis saw the intervention")
            if np.all(result.spatial_attention["layer4.2"] == 1):
                errors.append("an analysis recorded a replaced gate")

    def bare() -> None:  # a forward outside any capture, running while the intervention's hooks are on the model
        barrier.wait()
        for _ in range(12):
            with torch.no_grad():
                if not np.allclose(model(x_other).numpy(), bare_normal, atol=1e-6):
                    errors.append("a bare forward saw the intervention")

    threads = [threading.Thread(target=work) for work in (intervene, analyse, bare)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count_hooks(model) == 0


# ---------------------------------------------------------------------------------------------------- the sweep


@pytest.mark.parametrize("arch, kinds", [("cbam_resnet50", ("channel", "spatial")), ("se_resnet50", ("channel",))])
def test_the_sweep_equals_one_intervention_per_stage_and_gate(arch: str, kinds: tuple[str, ...]) -> None:
    model, x = random_model(arch, seed=15), image_tensor(16)
    batched = sweep(model, x, target_index=4, batch="stages")
    alone = sweep(model, x, target_index=4, batch=False)
    whole = sweep(model, x, target_index=4, batch="whole")
    auto = sweep(model, x, target_index=4)  # this small picture: one whole batch
    assert [(e.stage, e.gate) for e in batched.entries] == [(s, g) for s in (1, 2, 3, 4) for g in kinds]
    base = run_model(arch, model, x, method="eigencam", target=4)  # the sweep has no CAM: take the cheapest
    assert batched.base_prob == pytest.approx(base.target_prob, abs=1e-6)
    singles = run_interventions(model, x, [e.spec for e in batched.entries], method="eigencam", base=base)
    for entry, single, unbatched in zip(batched.entries, singles, alone.entries, strict=True):
        assert entry.spec == f"layer{entry.stage}:{entry.gate}=one" == single.spec
        assert entry.change == pytest.approx(single.target_prob_change, abs=1e-6)
        assert entry.change == pytest.approx(unbatched.change, abs=1e-6)
        assert entry.top1 == single.top5[0][0] == unbatched.top1
    for other in (whole, auto):
        assert [e.change for e in other.entries] == pytest.approx([e.change for e in batched.entries], abs=1e-6)
        assert batched.change(entry.stage, entry.gate) == entry.change
    assert max(abs(e.change) for e in batched.entries) > 1e-4
    top1 = int(np.argmax(applied(model, x, None).logits))
    assert sweep(model, x).target_index == top1 == batched.base_top1  # the default target: the top-1
    document = batched.to_json()
    assert document["target_index"] == 4 and len(document["entries"]) == len(kinds) * 4
    assert count_hooks(model) == 0


def test_the_sweep_takes_another_how_and_checks_its_input() -> None:
    model, x = random_model("cbam_resnet50", seed=17), image_tensor(18)
    shuffled = sweep(model, x, how="shuffle", target_index=1)
    assert all(entry.spec.endswith("=shuffle") for entry in shuffled.entries)
    single = run_interventions(model, x, ["layer2:spatial=shuffle"], target_index=1)[0]
    assert shuffled.change(2, "spatial") == pytest.approx(single.target_prob_change, abs=1e-6)
    wrapped = copy.deepcopy(model)  # a forward of its own: the sweep cannot enter stages, so one batch goes through it
    wrapped.__class__ = type("Wrapped", (ResNet,), {"forward": lambda self, x: ResNet.forward(self, x)})
    through_forward = sweep(wrapped, x, how="shuffle", target_index=1)
    for entry, other in zip(shuffled.entries, through_forward.entries, strict=True):
        assert entry.change == pytest.approx(other.change, abs=1e-6) and entry.top1 == other.top1
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        sweep(model, torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="batch must be"):
        sweep(model, x, batch="sometimes")
    with pytest.raises(CbamVizError, match="target class 10 does not exist"):
        sweep(model, x, target_index=10)

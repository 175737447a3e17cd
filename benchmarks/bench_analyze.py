"""How fast is ``analyze`` for all three models, next to the floor and next to the usual way? (a script, not a test)

Contenders, timed in interleaved rounds so background load hits them equally, median of N warm runs:

* floor: a bare forward of the same three models, no hooks, no grad, no rendering;
* analyze: ``cbam_viz.pipeline.analyze`` (decode, preprocess, one hooked pass per model, CAM, attention, agreement);
* panels: what the page draws after each analysis (``app_panels``, the app's own
  ``cbam_viz.ui.panels.registry.render_all`` with the default display settings, for the rows shown while the drill-down,
  gate and check sections are closed, as they are when the page opens): per model the header, the top-5, the CAM overlay
  with its colour bar, CBAM's spatial grid (last block of each stage), the channel plot of the analysed stage for SE and
  CBAM, the numbers; the agreement table. Each round redraws the same analysis, so labels and colour bars come
  from render's caches; "panels, cold caches" clears them first, as for a picture whose numbers were never printed
  before (block names and titles would still recur);
* analyze + panels: the sum;
* usual way: per model a grad-cam ``GradCAM`` object in a ``with`` block (trainable parameters, so its backward runs
  through the whole network), a second forward with hooks to collect the attention maps, and a pyplot figure.

Sizes: ImageNet (224 px, full width, 1000 classes, random weights) and the demo models (96 px; the trained demo
weights when present, else random). Peak RSS with the three ImageNet-size models loaded is measured in a fresh
subprocess; GPU latency is measured when CUDA is available.

    python -m benchmarks.bench_analyze [--runs 15] [--demo-runs 40]
"""

from __future__ import annotations

import argparse
import copy
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cbam_viz import pipeline
from cbam_viz.analysis import models as model_cache
from cbam_viz.analysis import results
from cbam_viz.demo.shapes import CLASSES, render_sample
from cbam_viz.demo.train import IMAGENET_MEAN, IMAGENET_STD
from cbam_viz.imaging.view import prepare_input
from cbam_viz.model.attention import channel_gates, spatial_gates
from cbam_viz.model.resnet import ARCHS, ArchConfig, build_resnet
from cbam_viz.render import overlay as render
from cbam_viz.weights.demo_set import write_demo_metadata
from cbam_viz.weights.files import WEIGHTS_DIR

REPO = Path(__file__).resolve().parent.parent

TARGETS = {"analyze / floor": 1.6, "(analyze + panels) / usual way": 0.5, "peak RSS (GB)": 1.5, "GPU p50 (ms)": 25.0}
PANELS_TARGETS = {"imagenet": 0.5, "demo": 1.0}  # the panels' time budget, as a ratio to analyze's


def write_random_set(root: Path, config: ArchConfig, classes: list[str], preprocess: dict) -> Path:
    """A weights folder whose demo slot holds random models of ``config`` (the loader's real path, file layout)."""
    from safetensors.torch import save_file

    demo = root / "demo"
    demo.mkdir(parents=True, exist_ok=True)
    models = {}
    for seed, arch in enumerate(ARCHS):
        torch.manual_seed(seed)
        model = build_resnet(arch, config)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.data.uniform_(0.5, 1.5)
        tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(demo / f"{arch}.safetensors"), metadata={"arch": arch})
        models[arch] = {"file": f"{arch}.safetensors"}
    arch_config = {"base_width": config.base_width, "stem_pool": config.stem_pool, "num_classes": config.num_classes}
    write_demo_metadata(demo, classes=classes, preprocess=preprocess, arch_config=arch_config, models=models)
    return root


def app_panels(result: results.Analysis) -> dict[str, dict]:
    """Exactly what the page draws after an analysis: ``render_all`` for the analysis event, default display
    settings, the rows outside the closed sections (the drill-down, the gate and the checks redraw only while open).
    Imported here, not at the top, so the peak-RSS child does not load Gradio."""
    from cbam_viz.ui.panels import registry as panels

    shown = tuple(panels.panels_in("results"))
    return panels.render_all(result, panels.Display(), "analysis", shown)


def usual_way(models: dict[str, torch.nn.Module], x: torch.Tensor, picture: Image.Image) -> bytes:
    """The common recipe: grad-cam per model and call, a second hooked forward for attention, a pyplot figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.asarray(picture.resize((x.shape[-1], x.shape[-2])), dtype=np.float32) / 255.0
    figure, axes = plt.subplots(len(models), 6, figsize=(15, 2.6 * len(models)))
    for row, (arch, model) in enumerate(models.items()):
        with GradCAM(model=model, target_layers=[model.layer4]) as cam:
            heatmap = cam(input_tensor=x, targets=None)[0]
        channel: dict[str, torch.Tensor] = {}
        spatial: dict[str, torch.Tensor] = {}
        handles = [
            gate.register_forward_hook(lambda m, i, o, name=name, store=store: store.__setitem__(name, o.detach()))
            for gates, store in ((channel_gates(model), channel), (spatial_gates(model), spatial))
            for name, gate in gates.items()
        ]
        try:
            with torch.no_grad():
                model(x)
        finally:
            for handle in handles:
                handle.remove()
        axes[row, 0].imshow(show_cam_on_image(rgb, heatmap, use_rgb=True))
        axes[row, 0].set_title(arch)
        for stage in range(1, 5):
            maps = [value for name, value in spatial.items() if name.startswith(f"layer{stage}.")]
            if maps:
                axes[row, stage].imshow(maps[-1][0, 0].cpu().numpy(), cmap="jet")
        vectors = [value.flatten().cpu().numpy() for name, value in channel.items() if name.startswith("layer4.")]
        if vectors:
            axes[row, 5].plot(np.stack(vectors).T)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def interleaved(contenders: dict[str, Callable[[], object]], runs: int, warmup: int = 2) -> dict[str, list[float]]:
    """Time every contender once per round, rotating the order each round; -> seconds per contender."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_index in range(warmup + runs):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in order:
            started = time.perf_counter()
            contenders[name]()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
            if round_index >= warmup:
                times[name].append(elapsed)
    return times


def bench_section(
    title: str,
    weights_dir: Path | None,
    picture: Image.Image,
    view: str,
    runs: int,
    device: str = "cpu",
    panels_target: float | None = None,
) -> dict[str, float]:
    model_set = model_cache.get_models(weights="demo", device=device, weights_dir=weights_dir)
    models = model_set.models
    preprocess = next(iter(models.values())).weights_info.preprocess
    x, model_view = prepare_input(picture, preprocess, view)
    x = x.to(device)
    trainable = {arch: copy.deepcopy(model).requires_grad_(True) for arch, model in models.items()}
    holder: dict[str, results.Analysis] = {}

    def floor() -> None:
        with torch.inference_mode():
            for model in models.values():
                model(x)

    def run_analyze() -> None:
        holder["last"] = pipeline.analyze(picture, weights="demo", view=view, device=device, weights_dir=weights_dir)

    def panels() -> None:
        app_panels(holder["last"])

    def panels_cold() -> None:
        render.clear_caches()
        app_panels(holder["last"])

    def usual() -> None:
        usual_way(trainable, x, picture)

    contenders = {"floor": floor, "analyze": run_analyze, "panels": panels, "panels, cold caches": panels_cold}
    times = interleaved({**contenders, "usual way": usual}, runs)
    median = {name: statistics.median(values) for name, values in times.items()}
    median["analyze + panels"] = median["analyze"] + median["panels"]
    size = f"{model_view.input_size[0]}x{model_view.input_size[1]}"
    print(f"\n== {title}: input {size}, {device}, median of {runs} warm runs (interleaved) ==", flush=True)
    for name in ("floor", "analyze", "panels", "panels, cold caches", "analyze + panels", "usual way"):
        spread = ""
        if name in times:
            q1, q3 = np.percentile(times[name], [25, 75])
            spread = f"   (IQR {q1 * 1e3:7.1f} .. {q3 * 1e3:7.1f})"
        print(f"  {name:<20} {median[name] * 1e3:8.1f} ms{spread}")
    ratios = {
        "analyze / floor": median["analyze"] / median["floor"],
        "(analyze + panels) / usual way": median["analyze + panels"] / median["usual way"],
    }
    targets = dict(TARGETS)
    if panels_target is not None:
        ratios["panels / analyze"] = median["panels"] / median["analyze"]
        ratios["panels, cold caches / analyze"] = median["panels, cold caches"] / median["analyze"]
        targets["panels / analyze"] = targets["panels, cold caches / analyze"] = panels_target
    for name, value in ratios.items():
        verdict = "ok" if value <= targets[name] else "OVER TARGET"
        print(f"  {name:<32} {value:5.2f}   target <= {targets[name]}  {verdict}")
    started = time.perf_counter()
    pipeline.analyze(picture, weights="demo", view=view, device=device, weights_dir=weights_dir, faithfulness=True)
    print(f"  analyze with --faithfulness (ROAD, one run): {(time.perf_counter() - started) * 1e3:.0f} ms", flush=True)
    return {**median, **ratios}


def peak_rss_child(weights_dir: str) -> None:
    """Run in a fresh process: load the three models, analyse one photo, print the peak RSS in bytes.

    The peak is VmHWM, the high-water mark of this process image. ``getrusage``'s ``ru_maxrss`` would not do: Linux
    carries it over from the parent through fork + exec, so a child of this (large) benchmark reports the parent's peak.
    """
    from skimage import data

    picture = Image.fromarray(data.chelsea())
    model_cache.get_models(weights="demo", device="cpu", weights_dir=Path(weights_dir))
    pipeline.analyze(picture, weights="demo", view="crop", device="cpu", weights_dir=Path(weights_dir))
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                print(int(line.split()[1]) * 1024)  # kB
                return
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # no /proc: an upper bound (see above)


def peak_rss(weights_dir: Path) -> float:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_analyze", "--rss-child", str(weights_dir)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,  # the repository root: this checkout's package and benchmarks
    ).stdout
    gigabytes = int(output.strip().splitlines()[-1]) / 1e9
    verdict = "ok" if gigabytes <= TARGETS["peak RSS (GB)"] else "OVER TARGET"
    print(
        f"\n== peak RSS (VmHWM), fresh process: imports + three ImageNet-size models loaded + one analysis ==\n"
        f"  {gigabytes:.2f} GB   target <= {TARGETS['peak RSS (GB)']}  {verdict}",
        flush=True,
    )
    return gigabytes


def gpu_p50(weights_dir: Path, picture: Image.Image, runs: int) -> None:
    if not torch.cuda.is_available():
        print("\n== GPU ==\n  skipped: CUDA is not available on this machine")
        return
    device = f"cuda:{torch.cuda.current_device()}"
    result = bench_section(
        f"ImageNet size on {torch.cuda.get_device_name()}", weights_dir, picture, "crop", runs, device
    )
    verdict = "ok" if result["analyze"] * 1e3 <= TARGETS["GPU p50 (ms)"] else "OVER TARGET"
    print(f"  GPU analyze p50 {result['analyze'] * 1e3:.1f} ms   target <= {TARGETS['GPU p50 (ms)']}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=15, help="warm runs per contender at ImageNet size")
    parser.add_argument("--demo-runs", type=int, default=40, help="warm runs per contender for the demo models")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice; 1 on a busy machine)"
    )
    parser.add_argument("--rss-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        peak_rss_child(args.rss_child)
        return
    from skimage import data

    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    photo = Image.fromarray(data.chelsea())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as temporary:
        imagenet_dir = write_random_set(
            Path(temporary) / "imagenet-size",
            ArchConfig(),
            [f"class {i}" for i in range(1000)],
            {"resize": 256, "crop": 224, "interpolation": "bilinear", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        )
        print(f"random ImageNet-size weights written in {time.perf_counter() - started:.0f} s", flush=True)
        title = "ImageNet size (random weights)"
        bench_section(title, imagenet_dir, photo, "crop", args.runs, panels_target=PANELS_TARGETS["imagenet"])
        if (WEIGHTS_DIR / "demo" / "metadata.json").is_file():
            demo_dir, demo_title = None, "demo models (trained demo weights)"
        else:
            demo_dir = write_random_set(
                Path(temporary) / "demo-size",
                ArchConfig(base_width=8, stem_pool="none", num_classes=len(CLASSES)),
                list(CLASSES),
                {"resize": 96, "crop": None, "interpolation": "bilinear", "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
            )
            demo_title = "demo models (random weights: weights/demo absent)"
        shapes_picture = Image.fromarray(render_sample(20_261_121, 0, 96).image)
        bench_section(
            demo_title, demo_dir, shapes_picture, "whole", args.demo_runs, panels_target=PANELS_TARGETS["demo"]
        )
        model_cache.clear_model_cache()
        peak_rss(imagenet_dir)
        gpu_p50(imagenet_dir, photo, args.runs)


if __name__ == "__main__":
    main()

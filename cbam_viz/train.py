"""Train the three demo models (baseline, SE, CBAM) on generated shapes with one shared recipe and seed.

Resumable: the state of each model is saved every ``checkpoint_every`` steps under ``work_dir`` and picked up on the
next run. The finished weights go to ``weights/demo/<arch>.safetensors``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from cbam_viz.convert import save_project_safetensors
from cbam_viz.resnet import ARCHS, ArchConfig, build_resnet
from cbam_viz.shapes import CLASSES, generate
from cbam_viz.weights import IMAGENET_MEAN, IMAGENET_STD, Preprocess


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a demo model; recorded verbatim in the weights' metadata."""

    image_size: int = 96
    base_width: int = 16
    stem_pool: str = "pad"
    last_stage_stride: int = 1
    train_seed: int = 1
    val_seed: int = 2
    train_images: int = 40_000
    # Cosine cycles with warm restarts (epochs and peak learning rate of each): a run that finished its cycles can
    # be extended by appending one, and its saved state resumes into the new cycle.
    cycle_epochs: tuple[int, ...] = (3, 2, 2)
    cycle_lrs: tuple[float, ...] = (2e-3, 1.5e-3, 1e-3)
    batch_size: int = 64
    weight_decay: float = 0.05
    label_smoothing: float = 0.05
    warmup_steps: int = 100
    init_seed: int = 0

    def arch_config(self) -> ArchConfig:
        return ArchConfig(
            base_width=self.base_width,
            stem_pool=self.stem_pool,
            last_stage_stride=self.last_stage_stride,
            num_classes=len(CLASSES),
        )

    def preprocess(self) -> Preprocess:
        """The whole image, resized to the training size, normalised like ImageNet models."""
        return Preprocess(self.image_size, None, "bilinear", IMAGENET_MEAN, IMAGENET_STD)


def _generate_chunk(args: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    seed, start, count, size = args
    images, labels, _ = generate(seed, count, size, start=start)
    return images, labels


def dataset(seed: int, count: int, size: int, workers: int = 2, cache_dir: Path | None = None) -> tuple[
    np.ndarray, np.ndarray
]:
    """Images (N,H,W,3 uint8) and labels of stream ``seed``, rendered in parallel and cached as .npy if asked."""
    cache = cache_dir / f"shapes-s{seed}-n{count}-{size}px.npz" if cache_dir else None
    if cache and cache.exists():
        with np.load(cache) as stored:
            return stored["images"], stored["labels"]
    chunk = 500
    jobs = [(seed, start, min(chunk, count - start), size) for start in range(0, count, chunk)]
    with Pool(workers) as pool:
        parts = list(tqdm(pool.imap(_generate_chunk, jobs), total=len(jobs), desc=f"render seed {seed}", unit="chunk"))
    images, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, labels=labels)
    return images, labels


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW, the demo models' preprocessing."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    return (x - mean) / std


def _augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flips and quarter turns: every class is closed under them, and they cost nothing."""
    if torch.rand(1, generator=generator).item() < 0.5:
        batch = batch.flip(3)
    turns = int(torch.randint(4, (1,), generator=generator).item())
    return torch.rot90(batch, turns, dims=(2, 3))


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device, batch: int = 256) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch):
        logits = model(to_tensor(images[start : start + batch], device))
        correct += int((logits.argmax(1).cpu() == torch.from_numpy(labels[start : start + batch])).sum())
    return correct / len(images)


def _resumable(saved: dict, recipe: Recipe) -> bool:
    """A saved run resumes if its recipe is this one, or this one with cycles appended."""
    current = asdict(recipe)
    cycles = len(saved["cycle_epochs"])
    same_rest = all(saved[k] == v for k, v in current.items() if not k.startswith("cycle_"))
    return (
        same_rest
        and tuple(saved["cycle_epochs"]) == recipe.cycle_epochs[:cycles]
        and tuple(saved["cycle_lrs"]) == recipe.cycle_lrs[:cycles]
    )


def train_one(
    arch: str,
    recipe: Recipe,
    train_data: tuple[np.ndarray, np.ndarray],
    val_data: tuple[np.ndarray, np.ndarray],
    work_dir: Path,
    device: torch.device,
    max_steps: int | None = None,
    checkpoint_every: int = 100,
) -> tuple[nn.Module, list[float]]:
    """Train ``arch`` with ``recipe``; returns the model (eval mode) and the loss of every step taken in this call."""
    torch.manual_seed(recipe.init_seed)
    model = build_resnet(arch, recipe.arch_config()).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.cycle_lrs[0], weight_decay=recipe.weight_decay)
    images, labels = train_data
    steps_per_epoch = len(images) // recipe.batch_size
    cycle_bounds = np.cumsum([0, *recipe.cycle_epochs]) * steps_per_epoch
    total_steps = int(cycle_bounds[-1])

    def lr_at(step: int) -> float:
        cycle = int(np.searchsorted(cycle_bounds, step, side="right") - 1)
        start, end, peak = cycle_bounds[cycle], cycle_bounds[cycle + 1], recipe.cycle_lrs[cycle]
        local, length = step - start, end - start
        if local < recipe.warmup_steps:
            return peak * (local + 1) / recipe.warmup_steps
        progress = (local - recipe.warmup_steps) / max(1, length - recipe.warmup_steps)
        return float(peak * 0.5 * (1 + np.cos(np.pi * progress)))

    state_path = work_dir / f"{arch}.state.pt"
    step = 0
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        if _resumable(state["recipe"], recipe):
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            step = state["step"]
        else:
            print(f"{arch}: {state_path} was made by another recipe; starting from scratch")
    losses: list[float] = []
    criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    generator = torch.Generator().manual_seed(recipe.init_seed)
    end = total_steps if max_steps is None else min(total_steps, step + max_steps)
    model.train()
    progress = tqdm(range(step, end), initial=step, total=total_steps, desc=arch, unit="step")
    for step in progress:
        epoch, position = divmod(step, steps_per_epoch)
        order = np.random.default_rng([recipe.init_seed, epoch]).permutation(len(images))
        index = order[position * recipe.batch_size : (position + 1) * recipe.batch_size]
        x = _augment(to_tensor(images[index], device), generator)
        y = torch.from_numpy(labels[index]).to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        progress.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if (step + 1) % checkpoint_every == 0 or step + 1 == end:
            work_dir.mkdir(parents=True, exist_ok=True)
            tmp = state_path.with_suffix(".tmp")
            torch.save(
                {"recipe": asdict(recipe), "step": step + 1, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict()},
                tmp,
            )
            tmp.replace(state_path)
    model.eval()
    if val_data is not None and max_steps is None:
        print(f"{arch}: validation top-1 {accuracy(model, *val_data, device):.4f} on {len(val_data[0])} images")
    return model, losses


def train_demo(out_dir: Path, recipe: Recipe = Recipe(), archs: tuple[str, ...] = tuple(ARCHS)) -> dict[str, Path]:
    """Train every arch with the same recipe and write ``<arch>.safetensors`` (self-describing) to ``out_dir``."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"training on {device}; recipe {asdict(recipe)}")
    work_dir = out_dir / ".train"
    train_data = dataset(recipe.train_seed, recipe.train_images, recipe.image_size, cache_dir=work_dir)
    val_data = dataset(recipe.val_seed, 1000, recipe.image_size, cache_dir=work_dir)
    written = {}
    for arch in archs:
        target = out_dir / f"{arch}.safetensors"
        started = time.time()
        model, _ = train_one(arch, recipe, train_data, val_data, work_dir, device)
        save_project_safetensors(
            target, model, arch, recipe.arch_config(), CLASSES, recipe.preprocess(), extra={"recipe": asdict(recipe)}
        )
        print(f"{arch}: wrote {target} ({target.stat().st_size / 1e6:.1f} MB) in {time.time() - started:.0f} s")
        written[arch] = target
    return written

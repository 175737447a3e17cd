"""Train the three demo models (baseline, SE, CBAM) on generated shapes with one shared recipe and seed.

Resumable: the state of each model is saved every ``checkpoint_every`` steps under ``work_dir`` and picked up on the
next run. The finished weights go to ``weights/demo/<arch>.safetensors``.

The last cycle adds a localisation term (``localisation_loss``): the generator knows every object's mask, and the
term rewards a class map whose peak lies on the object. Classification alone leaves the peak on the object's outline,
half the time just outside it. The attention modules are never supervised: only the class map's peak is.
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

from cbam_viz.demo.shapes import CLASSES, generate
from cbam_viz.imaging.view import cell_centre_pixels
from cbam_viz.model.resnet import ARCHS, ArchConfig, build_resnet
from cbam_viz.weights.convert import save_project_safetensors
from cbam_viz.weights.registry import IMAGENET_MEAN, IMAGENET_STD, Preprocess


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
    cycle_epochs: tuple[int, ...] = (3, 2, 2, 1)
    cycle_lrs: tuple[float, ...] = (2e-3, 1.5e-3, 1e-3, 5e-4)
    # Weight of ``localisation_loss`` in each cycle: the last cycle teaches the class map's peak to sit on the object.
    cycle_localisation: tuple[float, ...] = (0.0, 0.0, 0.0, 1.0)
    batch_size: int = 64
    weight_decay: float = 0.05
    label_smoothing: float = 0.05
    warmup_steps: int = 100
    init_seed: int = 0

    def __post_init__(self) -> None:
        lengths = {len(self.cycle_epochs), len(self.cycle_lrs), len(self.cycle_localisation)}
        if len(lengths) != 1:
            raise ValueError("cycle_epochs, cycle_lrs and cycle_localisation need one entry per cycle")

    def arch_config(self) -> ArchConfig:
        """The architecture switches of the demo models this recipe trains."""
        return ArchConfig(
            base_width=self.base_width,
            stem_pool=self.stem_pool,
            last_stage_stride=self.last_stage_stride,
            num_classes=len(CLASSES),
        )

    def preprocess(self) -> Preprocess:
        """The whole image, resized to the training size, normalised like ImageNet models."""
        return Preprocess(self.image_size, None, "bilinear", IMAGENET_MEAN, IMAGENET_STD)


Samples = tuple[np.ndarray, np.ndarray, np.ndarray]  # images (N,H,W,3 uint8), labels (N,), masks (N,H,W bool)


def _generate_chunk(args: tuple[int, int, int, int]) -> Samples:
    seed, start, count, size = args
    return generate(seed, count, size, start=start)


def dataset(seed: int, count: int, size: int, workers: int = 2, cache_dir: Path | None = None) -> Samples:
    """Images, labels and object masks of stream ``seed``, rendered in parallel and cached as .npz if asked."""
    cache = cache_dir / f"shapes-s{seed}-n{count}-{size}px-masks.npz" if cache_dir else None
    if cache and cache.exists():
        with np.load(cache) as stored:
            masks = np.unpackbits(stored["packed_masks"], axis=-1, count=size).astype(bool)
            return stored["images"], stored["labels"], masks
    chunk = 500
    jobs = [(seed, start, min(chunk, count - start), size) for start in range(0, count, chunk)]
    with Pool(workers) as pool:
        parts = list(tqdm(pool.imap(_generate_chunk, jobs), total=len(jobs), desc=f"render seed {seed}", unit="chunk"))
    images, labels, masks = (np.concatenate([p[i] for p in parts]) for i in range(3))
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, labels=labels, packed_masks=np.packbits(masks, axis=-1))
    return images, labels, masks


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 NHWC -> normalised float NCHW, the demo models' preprocessing."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
    return (x - mean) / std


def _augment(batch: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Flips and quarter turns, of images (N,C,H,W) and masks (N,H,W) alike: every class is closed under them, and
    they cost nothing."""
    if torch.rand(1, generator=generator).item() < 0.5:
        batch, masks = batch.flip(3), masks.flip(2)
    turns = int(torch.randint(4, (1,), generator=generator).item())
    return torch.rot90(batch, turns, dims=(2, 3)), torch.rot90(masks, turns, dims=(1, 2))


def class_map(features: torch.Tensor, fc: nn.Linear, labels: torch.Tensor) -> torch.Tensor:
    """(N,h,w) evidence for each image's class at each cell: ``fc``'s row dotted with the features there.

    Behind a global average pool and one linear layer this is Grad-CAM of the last stage before its ReLU (the
    gradient of the logit is that row divided by h*w at every cell), so no second backward pass is needed.
    """
    return torch.einsum("nchw,nc->nhw", features, fc.weight[labels])


def localisation_loss(cam: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The pointing game made differentiable: -log of the softmax mass of ``cam`` (N,h,w) on cells whose centre
    lies on the object (``masks``: N,H,W bool, sampled where ``imaging.view.map_to_image`` draws each cell).

    Minimising it moves the map's maximum onto the object without asking the map to fill the object. Images with
    no cell centre on their object (a thin shape between grid points) cannot score and are left out.
    """
    rows = torch.from_numpy(cell_centre_pixels(cam.shape[1], masks.shape[1])).to(masks.device)
    cols = torch.from_numpy(cell_centre_pixels(cam.shape[2], masks.shape[2])).to(masks.device)
    on_object = masks[:, rows][:, :, cols].flatten(1)
    scoring = on_object.any(dim=1)
    if not scoring.any():
        return cam.sum() * 0.0
    flat = cam.flatten(1)[scoring]
    on_object = on_object[scoring]
    return (torch.logsumexp(flat, 1) - torch.logsumexp(flat.masked_fill(~on_object, float("-inf")), 1)).mean()


@torch.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray, device: torch.device, batch: int = 256) -> float:
    """Top-1 accuracy of ``model`` on ``images``, ``batch`` pictures per forward."""
    model.eval()
    correct = 0
    for start in range(0, len(images), batch):
        logits = model(to_tensor(images[start : start + batch], device))
        correct += int((logits.argmax(1).cpu() == torch.from_numpy(labels[start : start + batch])).sum())
    return correct / len(images)


def _resumable(saved: dict, recipe: Recipe) -> bool:
    """A saved run resumes if its recipe is this one, or this one with cycles appended."""
    current = asdict(recipe)
    if saved.keys() != current.keys():
        return False
    cycles = len(saved["cycle_epochs"])
    return all(tuple(saved[k]) == v[:cycles] if k.startswith("cycle_") else saved[k] == v for k, v in current.items())


def train_one(
    arch: str,
    recipe: Recipe,
    train_data: Samples,
    val_data: Samples | None,
    work_dir: Path,
    device: torch.device,
    max_steps: int | None = None,
    checkpoint_every: int = 100,
) -> tuple[nn.Module, list[float]]:
    """Train ``arch`` with ``recipe``; returns the model (eval mode) and the loss of every step taken in this call
    (classification plus the cycle's weighted localisation term)."""
    torch.manual_seed(recipe.init_seed)
    model = build_resnet(arch, recipe.arch_config()).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.cycle_lrs[0], weight_decay=recipe.weight_decay)
    images, labels, masks = train_data
    steps_per_epoch = len(images) // recipe.batch_size
    cycle_bounds = np.cumsum([0, *recipe.cycle_epochs]) * steps_per_epoch
    total_steps = int(cycle_bounds[-1])

    def cycle_of(step: int) -> int:
        return int(np.searchsorted(cycle_bounds, step, side="right") - 1)

    def lr_at(step: int) -> float:
        cycle = cycle_of(step)
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
        x, mask = _augment(to_tensor(images[index], device), torch.from_numpy(masks[index]).to(device), generator)
        y = torch.from_numpy(labels[index]).to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        features = model.forward_features(x)
        loss = criterion(model.fc(torch.flatten(model.avgpool(features), 1)), y)
        localisation_weight = recipe.cycle_localisation[cycle_of(step)]
        if localisation_weight:
            loss = loss + localisation_weight * localisation_loss(class_map(features, model.fc, y), mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        progress.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if (step + 1) % checkpoint_every == 0 or step + 1 == end:
            work_dir.mkdir(parents=True, exist_ok=True)
            tmp = state_path.with_suffix(".tmp")
            torch.save(
                {
                    "recipe": asdict(recipe),
                    "step": step + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                },
                tmp,
            )
            tmp.replace(state_path)
    model.eval()
    if val_data is not None and max_steps is None:
        val_images, val_labels, _ = val_data
        top1 = accuracy(model, val_images, val_labels, device)
        print(f"{arch}: validation top-1 {top1:.4f} on {len(val_images)} images")
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

"""Checkpoint layouts: read a file safely, recognise whose key layout it uses, convert it to this project's keys.

Each published layout (torchvision, timm, Cadene, pytorchcv, the official CBAM release, our own safetensors) has one
pure converter ``(state_dict, model) -> state_dict`` (timm's ``filter_fn`` style) and the architecture switches it
implies. Loading is strict: every tensor of the file is used, every parameter and buffer of the model is filled
(only ``num_batches_tracked`` may be absent: it is set to 0), shapes must agree. Files are read only with
``torch.load(weights_only=True)`` or safetensors, so no checkpoint can run code.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from cbam_viz.errors import WeightsError
from cbam_viz.model.resnet import ARCHS, ArchConfig, ResNet, build_resnet
from cbam_viz.weights.atomic import write_atomically

StateDict = dict[str, torch.Tensor]
Converter = Callable[[StateDict, nn.Module], StateDict]

PROJECT_FORMAT = "cbam_viz/1"  # value of the "format" metadata entry of the project's safetensors
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")  # where training scripts keep the tensors
BATCHES_TRACKED = "num_batches_tracked"
LIST_LIMIT = 3  # offending keys named in one error line

# Old training scripts store accuracies as numpy scalars; these rebuild a scalar from bytes and run no code.
_NUMPY_SCALAR_GLOBALS = [
    np._core.multiarray.scalar,
    np.dtype,
    *(type(np.dtype(kind)) for kind in (np.float64, np.float32, np.int64, np.int32)),
]


@dataclass
class Checkpoint:
    """The tensors of a file, once unwrapped, and what the file said about itself."""

    tensors: StateDict
    metadata: dict[str, str]  # safetensors metadata ({} for torch files)
    container: str  # "safetensors" | "torch" | "pytorchcv zip"
    name: str  # file name: pytorchcv file names tell v1 from v1.5
    ignored: tuple[str, ...] = ()  # wrapper entries that hold no weights (epoch, optimizer, ...)


@dataclass(frozen=True)
class Layout:
    """One published key layout: how to recognise it, how to convert it, which switches it implies."""

    name: str
    title: str
    detect: Callable[[Iterable[str]], bool]
    rename: Callable[[StateDict], StateDict]  # keys only: enough to read width and classes before building
    convert: Converter  # rename, then fit Linear <-> 1x1 conv shapes to the model
    switches: Mapping[str, str] = field(default_factory=dict)  # ArchConfig fields fixed by the layout


@dataclass
class LoadedCheckpoint:
    """A model filled from a checkpoint, with what was detected on the way."""

    model: ResNet
    layout: str
    config: ArchConfig
    notes: list[str]
    project_meta: dict[str, Any] | None  # arch/config/categories/preprocess/extra of a project safetensors


# ----------------------------------------------------------------------------------------------------------- reading


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read the tensors of ``path`` (safetensors, torch zip or legacy, pytorchcv ``.pth.zip``) without running code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist: check the path")
    try:
        if _is_safetensors(path):
            with safe_open(str(path), framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
            return Checkpoint(load_file(str(path)), metadata, "safetensors", path.name)
        container, payload = _torch_payload(path)
        with torch.serialization.safe_globals(_NUMPY_SCALAR_GLOBALS):
            loaded = torch.load(payload, map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except pickle.UnpicklingError as error:
        reason = next((line for line in str(error).splitlines() if "Unsupported" in line), str(error).split("\n")[0])
        raise WeightsError(
            f"{path.name} holds Python objects besides tensors, which cbam_viz never unpickles "
            f"({reason.strip()[:160]}): re-save its state_dict, or convert it where you trust it"
        ) from error
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, SafetensorError, OSError) as error:
        raise WeightsError(_unreadable(path, error)) from error
    except Exception as error:  # junk bytes reach torch's unpickler as anything (KeyError, IndexError, struct.error)
        raise WeightsError(_unreadable(path, error, with_type=True)) from error
    tensors, ignored = _unwrap(loaded, path.name)
    return Checkpoint(tensors, {}, container, path.name, ignored)


def _unreadable(path: Path, error: BaseException, *, with_type: bool = False) -> str:
    """One line for a file that is no checkpoint; the reader's own exception type is named when it says more."""
    text = str(error).strip()
    first = text.splitlines()[0][:160] if text else ""
    if with_type or not first:
        first = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return f"cannot read {path.name}: the file is truncated or not a checkpoint ({first}); download it again"


def _is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte header length followed by a JSON object."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return path.suffix == ".safetensors"
    size = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < size < path.stat().st_size


def _torch_payload(path: Path) -> tuple[str, Path | io.BytesIO]:
    """A torch archive is itself a zip (with ``data.pkl``); pytorchcv wraps one raw ``.pth`` in another zip."""
    if not zipfile.is_zipfile(path):
        return "torch", path
    with zipfile.ZipFile(path) as archive:
        names = [info.filename for info in archive.infolist() if not info.is_dir()]
        if any(name.endswith("data.pkl") for name in names):
            return "torch", path
        if len(names) != 1:
            raise WeightsError(
                f"{path.name} is a zip holding {len(names)} files; expected one .pth (the pytorchcv release format)"
            )
        return "pytorchcv zip", io.BytesIO(archive.read(names[0]))


def _unwrap(loaded: object, name: str) -> tuple[StateDict, tuple[str, ...]]:
    """Find the state_dict in a training wrapper and drop the DataParallel ``module.`` prefix."""
    ignored: tuple[str, ...] = ()
    if isinstance(loaded, Mapping) and not _all_tensors(loaded):
        inner = next((key for key in WRAPPER_KEYS if isinstance(loaded.get(key), Mapping)), None)
        if inner is None:
            raise WeightsError(
                f"{name} holds no state_dict (entries: {', '.join(map(str, list(loaded)[:6]))}): "
                "save model.state_dict() and try again"
            )
        ignored = tuple(str(key) for key in loaded if key != inner)
        loaded = loaded[inner]
    if not isinstance(loaded, Mapping) or not loaded:
        raise WeightsError(f"{name} holds no tensors: it is not a model checkpoint")
    if not _all_tensors(loaded):
        bad = next(str(key) for key, value in loaded.items() if not isinstance(value, torch.Tensor))
        raise WeightsError(f"{name}: entry {bad!r} of its state_dict is not a tensor; it is not a model checkpoint")
    tensors = {str(key): value for key, value in loaded.items()}
    if all(key.startswith("module.") for key in tensors):
        tensors = {key.removeprefix("module."): value for key, value in tensors.items()}
    return tensors, ignored


def _all_tensors(mapping: Mapping) -> bool:
    return all(isinstance(value, torch.Tensor) for value in mapping.values())


# -------------------------------------------------------------------------------------------------------- converters


Rule = tuple[str, str | Callable[[re.Match[str]], str]]


def rename(state_dict: StateDict, rules: Iterable[Rule]) -> StateDict:
    """Apply the first rule whose pattern matches the whole key; unmatched keys stay (the strict check names them)."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in rules]
    renamed: StateDict = {}
    for key, tensor in state_dict.items():
        new_key = key
        for pattern, replacement in compiled:
            match = pattern.fullmatch(key)
            if match:
                new_key = replacement(match) if callable(replacement) else match.expand(replacement)
                break
        renamed[new_key] = tensor
    return renamed


def fit_shapes(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Reshape Linear [o, i] <-> 1x1 conv [o, i, 1, 1] where the model wants the other form; leave real mismatches."""
    expected = model.state_dict()
    fitted = dict(state_dict)
    for key, tensor in state_dict.items():
        target = expected.get(key)
        if target is None or tensor.shape == target.shape:
            continue
        if tensor.numel() == target.numel() and _without_trailing_ones(tensor.shape) == _without_trailing_ones(
            target.shape
        ):
            fitted[key] = tensor.reshape(target.shape)
    return fitted


def _without_trailing_ones(shape: torch.Size) -> tuple[int, ...]:
    dims = list(shape)
    while len(dims) > 2 and dims[-1] == 1:
        dims.pop()
    return tuple(dims)


def rename_torchvision(state_dict: StateDict) -> StateDict:
    """torchvision ResNet-50 keys are ours already (the project keeps torchvision's names)."""
    return dict(state_dict)


def rename_timm_seresnet(state_dict: StateDict) -> StateDict:
    """timm ``seresnet50``: torchvision keys plus ``layerS.B.se.fc{1,2}`` (1x1 convs)."""
    return rename(state_dict, [(r"(layer\d\.\d+)\.se\.fc([12])\.(weight|bias)", r"\1.attn.fc\2.\3")])


def rename_cadene(state_dict: StateDict) -> StateDict:
    """Cadene ``pretrainedmodels`` / timm ``legacy_seresnet50``: ``layer0`` stem, ``se_module``, ``last_linear``."""
    rules = [
        (r"layer0\.conv1\.(.+)", r"conv1.\1"),
        (r"layer0\.bn1\.(.+)", r"bn1.\1"),
        (r"(layer\d\.\d+)\.se_module\.fc([12])\.(weight|bias)", r"\1.attn.fc\2.\3"),
        (r"last_linear\.(weight|bias)", r"fc.\1"),
    ]
    return rename(state_dict, rules)


def _pytorchcv_block(match: re.Match[str]) -> str:
    """``features.stageS.unitU.`` counts units from 1; our ``layerS.B`` counts blocks from 0."""
    stage, unit, rest = match.group(1), int(match.group(2)) - 1, match.group(3)
    for pattern, replacement in (
        (r"^body\.conv(\d)\.conv\.", r"conv\1."),
        (r"^body\.conv(\d)\.bn\.", r"bn\1."),
        (r"^identity_conv\.conv\.", "downsample.0."),
        (r"^identity_conv\.bn\.", "downsample.1."),
        (r"^se\.conv([12])\.", r"attn.fc\1."),
        (r"^cbam\.ch_gate\.mlp\.fc([12])\.", r"attn.channel.fc\1."),
        (r"^cbam\.sp_gate\.conv\.(conv|bn)\.", r"attn.spatial.\1."),
    ):
        rest = re.sub(pattern, replacement, rest)
    return f"layer{stage}.{unit}.{rest}"


def rename_pytorchcv(state_dict: StateDict) -> StateDict:
    """pytorchcv (osmr/imgclsmob): ``features.init_block``, ``features.stageS.unitU``, ``output``."""
    rules: list[Rule] = [
        (r"features\.init_block\.conv\.conv\.(.+)", r"conv1.\1"),
        (r"features\.init_block\.conv\.bn\.(.+)", r"bn1.\1"),
        (r"features\.stage(\d)\.unit(\d+)\.(.+)", _pytorchcv_block),
        (r"output\.(weight|bias)", r"fc.\1"),
    ]
    return rename(state_dict, rules)


def rename_official_cbam(state_dict: StateDict) -> StateDict:
    """Official CBAM release (Jongchan/attention-module): ``cbam.ChannelGate.mlp.{1,3}``, ``cbam.SpatialGate``."""
    rules = [
        (r"(layer\d\.\d+)\.cbam\.ChannelGate\.mlp\.1\.(weight|bias)", r"\1.attn.channel.fc1.\2"),
        (r"(layer\d\.\d+)\.cbam\.ChannelGate\.mlp\.3\.(weight|bias)", r"\1.attn.channel.fc2.\2"),
        (r"(layer\d\.\d+)\.cbam\.SpatialGate\.spatial\.(conv|bn)\.(.+)", r"\1.attn.spatial.\2.\3"),
    ]
    return rename(state_dict, rules)


def convert_torchvision(state_dict: StateDict, model: nn.Module) -> StateDict:
    """torchvision's keys -> ours."""
    return fit_shapes(rename_torchvision(state_dict), model)


def convert_project(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Our own safetensors: the keys are ours already; only shapes are fitted."""
    return fit_shapes(dict(state_dict), model)


def convert_timm_seresnet(state_dict: StateDict, model: nn.Module) -> StateDict:
    """timm's SE-ResNet keys -> ours."""
    return fit_shapes(rename_timm_seresnet(state_dict), model)


def convert_cadene(state_dict: StateDict, model: nn.Module) -> StateDict:
    """Cadene's pretrainedmodels SE-ResNet keys -> ours."""
    return fit_shapes(rename_cadene(state_dict), model)


def convert_pytorchcv(state_dict: StateDict, model: nn.Module) -> StateDict:
    """pytorchcv's keys -> ours."""
    return fit_shapes(rename_pytorchcv(state_dict), model)


def convert_official_cbam(state_dict: StateDict, model: nn.Module) -> StateDict:
    """The official CBAM release's keys -> ours."""
    return fit_shapes(rename_official_cbam(state_dict), model)


def _has(fragment: str) -> Callable[[Iterable[str]], bool]:
    return lambda keys: any(fragment in key for key in keys)


def _is_torchvision(keys: Iterable[str]) -> bool:
    keys = set(keys)
    attention = ("attn.", ".se.", "se_module", "cbam")
    return {"conv1.weight", "fc.weight"} <= keys and not any(mark in key for key in keys for mark in attention)


V15 = {"stride_in": "conv2", "stem_pool": "pad"}
CAFFE = {"stride_in": "conv1", "stem_pool": "ceil"}
# Each signature excludes the others, so at most one layout matches a file.
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("project", "cbam_viz keys", _has(".attn."), dict, convert_project, {}),
        Layout("torchvision", "torchvision ResNet-50", _is_torchvision, rename_torchvision, convert_torchvision, V15),
        Layout("timm_seresnet", "timm seresnet50", _has(".se.fc1."), rename_timm_seresnet, convert_timm_seresnet, V15),
        Layout(
            "cadene",
            "Cadene / timm legacy_seresnet50 (Caffe SE)",
            _has("layer0.conv1."),
            rename_cadene,
            convert_cadene,
            CAFFE,
        ),
        Layout(
            "pytorchcv",
            "pytorchcv (osmr/imgclsmob)",
            _has("features.init_block."),
            rename_pytorchcv,
            convert_pytorchcv,
            {"stem_pool": "pad"},
        ),
        Layout(
            "official_cbam",
            "official CBAM release",
            _has(".cbam.ChannelGate."),
            rename_official_cbam,
            convert_official_cbam,
            V15,
        ),
    )
}

# pytorchcv names its files ``<model>-<error>-<sha1[:8]>``: ``resnet50``/``seresnet50`` are v1 (stride in conv1),
# the ``b`` variants and ``cbam_resnet50`` are v1.5. The name is the only clue: shapes are the same either way.
_PYTORCHCV_NAME = re.compile(r"^(cbam_resnet50|seresnet50b?|resnet50b?)-\d{4}-[0-9a-f]{8}\.pth(\.zip)?$")


def pytorchcv_stride(file_name: str, arch: str, hint: str | None = None) -> tuple[str, str]:
    """-> (stride_in, how it was decided) for a pytorchcv file: explicit hint, then the file name, then v1.5."""
    if hint:
        return hint, f"stride in {hint} as requested"
    match = _PYTORCHCV_NAME.match(file_name)
    if match:
        model_name = match.group(1)
        stride = "conv1" if model_name in ("resnet50", "seresnet50") else "conv2"
        version = "v1" if stride == "conv1" else "v1.5"
        return stride, f"pytorchcv {model_name} is {version} (stride in {stride}), from the file name"
    if arch == "cbam_resnet50":
        return "conv2", "pytorchcv cbam_resnet50 always strides in conv2"
    return "conv2", (
        "file name does not say whether it is pytorchcv's v1 resnet50/seresnet50 or the v1.5 'b' variant: "
        "assumed v1.5 (stride in conv2); pass stride_in='conv1' (--stride-in conv1) for v1"
    )


def detect_layouts(keys: Iterable[str], metadata: Mapping[str, str] | None = None) -> list[str]:
    """Layouts whose key signature matches (a project file is recognised by its metadata too)."""
    keys = list(keys)
    if metadata and metadata.get("format") == PROJECT_FORMAT:
        return ["project"]
    return [name for name, layout in LAYOUTS.items() if layout.detect(keys)]


# ---------------------------------------------------------------------------------------------------- strict loading


def state_dict_problems(state_dict: StateDict, model: nn.Module) -> tuple[list[str], list[str], list[str]]:
    """(unexpected keys, missing keys, shape mismatches) of ``state_dict`` against ``model``."""
    expected = model.state_dict()
    unexpected = [key for key in state_dict if key not in expected]
    missing = [key for key in expected if key not in state_dict and not key.endswith(BATCHES_TRACKED)]
    shapes = [
        f"{key} {list(state_dict[key].shape)} in file vs {list(tensor.shape)} in model"
        for key, tensor in expected.items()
        if key in state_dict and state_dict[key].shape != tensor.shape
    ]
    return unexpected, missing, shapes


def load_strict(model: nn.Module, state_dict: StateDict) -> None:
    """Fill absent ``num_batches_tracked`` with 0, then ``load_state_dict(strict=True)``."""
    filled = dict(state_dict)
    for key, tensor in model.state_dict().items():
        if key.endswith(BATCHES_TRACKED) and key not in filled:
            filled[key] = torch.zeros_like(tensor)
    model.load_state_dict(filled, strict=True)


def guess_arch(state_dict: StateDict) -> str | None:
    """Which of our architectures a converted state_dict belongs to; None if it is no ResNet-50 of this family."""
    keys = set(state_dict)
    bottleneck_50 = "layer1.0.conv3.weight" in keys and any(key.startswith("layer3.5.") for key in keys)
    if not bottleneck_50 or any(key.startswith("layer3.6.") for key in keys):
        return None
    if any(".attn.channel." in key for key in keys):
        return "cbam_resnet50"
    if any(".attn.fc1." in key for key in keys):
        return "se_resnet50"
    return "resnet50"


def detect_family(checkpoint: Checkpoint) -> str | None:
    """The architecture a checkpoint holds: what a project file declares, else what its keys say in the first known
    layout that reads them as a ResNet-50 of this family; None when none does."""
    declared = checkpoint.metadata.get("arch")
    if declared in ARCHS:
        return declared
    for name in detect_layouts(checkpoint.tensors, checkpoint.metadata) or list(LAYOUTS):
        guess = guess_arch(LAYOUTS[name].rename(checkpoint.tensors))
        if guess is not None:
            return guess
    return None


def _listing(label: str, items: list[str]) -> str:
    more = f" (+{len(items) - LIST_LIMIT} more)" if len(items) > LIST_LIMIT else ""
    return f"{label} {', '.join(items[:LIST_LIMIT])}{more}"


def mismatch_message(name: str, arch: str, state_dict: StateDict, model: nn.Module, tried: list[str]) -> str:
    """One line naming the first offending keys, the layouts tried and, if it can tell, the right architecture."""
    unexpected, missing, shapes = state_dict_problems(state_dict, model)
    parts = [
        _listing(label, items)
        for label, items in (("unexpected keys", unexpected), ("missing keys", missing), ("shape mismatch", shapes))
        if items
    ]
    guess = guess_arch(state_dict)
    if guess is None:
        hint = "it is not a ResNet-50 of this project's family (resnet50, se_resnet50, cbam_resnet50)"
    elif guess != arch:
        hint = f"it looks like a {guess} checkpoint: load it as {guess}"
    else:
        hint = "the file may be damaged or of another variant"
    return f"{name} does not fit {arch} ({'; '.join(parts)}); layouts tried: {', '.join(tried)}; {hint}"


def infer_config(
    state_dict: StateDict, arch: str, layout: Layout, checkpoint_name: str, stride_in: str | None
) -> tuple[ArchConfig, list[str]]:
    """Architecture switches from the layout (or, for pytorchcv, the file name); width and classes from shapes."""
    notes: list[str] = []
    switches = dict(layout.switches)
    if layout.name == "pytorchcv":
        switches["stride_in"], how = pytorchcv_stride(checkpoint_name, arch, stride_in)
        notes.append(how)
    elif stride_in:
        switches["stride_in"] = stride_in
        notes.append(f"stride in {stride_in} as requested")
    elif layout.name == "project":
        notes.append(
            "no cbam_viz metadata: assumed torchvision's switches (stride in conv2, padded stem pool, "
            "layer4 stride 2); convert it with its metadata to use other switches"
        )
    conv1, fc = state_dict.get("conv1.weight"), state_dict.get("fc.weight")
    base_width = int(conv1.shape[0]) if conv1 is not None and conv1.ndim == 4 else 64
    num_classes = int(fc.shape[0]) if fc is not None and fc.ndim >= 2 else 1000
    return ArchConfig(base_width=base_width, num_classes=num_classes, **switches), notes


def load_into_model(
    checkpoint: Checkpoint,
    arch: str,
    *,
    layout: str | None = None,
    config: ArchConfig | None = None,
    stride_in: str | None = None,
) -> LoadedCheckpoint:
    """Build ``arch`` and strictly load ``checkpoint`` into it, auto-detecting the layout unless one is given.

    ``config`` (a registry entry's switches) overrides what the layout and shapes imply; ``stride_in`` is the hint
    for files whose layout cannot tell where a down-sampling block strides (anonymous pytorchcv files).
    """
    if arch not in ARCHS:
        raise WeightsError(f"unknown architecture {arch!r}: choose one of {', '.join(ARCHS)}")
    project_meta = read_project_metadata(checkpoint.metadata)
    declared = checkpoint.metadata.get("arch")
    if declared in ARCHS and declared != arch:
        raise WeightsError(f"{checkpoint.name} holds {declared} weights, not {arch}: load it as {declared}")
    candidates = [layout] if layout else detect_layouts(checkpoint.tensors, checkpoint.metadata) or list(LAYOUTS)
    failures: list[tuple[str, StateDict, nn.Module]] = []
    models: dict[ArchConfig, ResNet] = {}  # candidates implying the same switches share one (unfilled) model
    for name in candidates:
        chosen = LAYOUTS[name]
        notes: list[str] = []
        if config is not None:
            model_config = config
        elif project_meta is not None:
            model_config = project_meta["config"]
        else:
            renamed = chosen.rename(checkpoint.tensors)
            model_config, notes = infer_config(renamed, arch, chosen, checkpoint.name, stride_in)
        if model_config not in models:
            models[model_config] = build_resnet(arch, model_config)
        model = models[model_config]
        converted = chosen.convert(checkpoint.tensors, model)
        if any(state_dict_problems(converted, model)):
            failures.append((name, converted, model))
            continue
        load_strict(model, converted)
        if checkpoint.ignored:
            notes.append(f"ignored wrapper entries: {', '.join(checkpoint.ignored)}")
        return LoadedCheckpoint(model, name, model.config, notes, project_meta)
    _, converted, model = failures[0]
    tried = [name for name, _, _ in failures]
    raise WeightsError(mismatch_message(checkpoint.name, arch, converted, model, tried))


# ------------------------------------------------------------------------------------------ project safetensors


def save_project_safetensors(
    path: str | Path,
    model_or_state_dict: nn.Module | Mapping[str, torch.Tensor],
    arch: str,
    config: ArchConfig,
    categories: Iterable[str],
    preprocess: object,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write weights in our keys with everything needed to use them again, atomically (``write_atomically``).

    ``preprocess`` is a ``cbam_viz.weights.registry.Preprocess`` or a mapping with the same fields.
    """
    path = Path(path)
    source = model_or_state_dict.state_dict() if isinstance(model_or_state_dict, nn.Module) else model_or_state_dict
    tensors = {key: tensor.detach().to("cpu").contiguous().clone() for key, tensor in source.items()}
    preprocess_fields = asdict(preprocess) if is_dataclass(preprocess) else dict(preprocess)  # type: ignore[arg-type]
    config_fields = asdict(config)
    config_fields["attention"] = ARCHS[arch]
    metadata = {
        "format": PROJECT_FORMAT,
        "arch": arch,
        "config": json.dumps(config_fields),
        "categories": json.dumps(list(categories)),
        "preprocess": json.dumps(preprocess_fields),
        "extra": json.dumps(dict(extra or {})),
    }
    return write_atomically(path, lambda temporary: save_file(tensors, str(temporary), metadata=metadata))


def read_project_header(path: str | Path) -> dict[str, Any] | None:
    """The project metadata of a safetensors file read from its header alone (no tensor is loaded); None when the
    file is no project safetensors or cannot be read."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return read_project_metadata(dict(handle.metadata() or {}))
    except (SafetensorError, OSError, WeightsError):
        return None


def read_project_metadata(metadata: Mapping[str, str] | None) -> dict[str, Any] | None:
    """Decode the metadata of a project safetensors; None when the file is not one."""
    if not metadata or metadata.get("format") != PROJECT_FORMAT:
        return None
    try:
        config_fields = json.loads(metadata["config"])
        decoded = {
            "arch": metadata["arch"],
            "config": ArchConfig(**config_fields),
            "categories": tuple(json.loads(metadata["categories"])),
            "preprocess": json.loads(metadata["preprocess"]),
            "extra": json.loads(metadata.get("extra", "{}")),
        }
    except (KeyError, TypeError, ValueError) as error:
        raise WeightsError(f"the cbam_viz metadata of the file is damaged ({error}); convert it again") from error
    if decoded["arch"] not in ARCHS:
        raise WeightsError(f"cbam_viz metadata names an unknown architecture {decoded['arch']!r}")
    return decoded

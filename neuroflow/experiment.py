"""Config + checkpoint -> model + data loaders: the one place that turns a run into objects.

Used by training, evaluation, the energy estimate, NIR export and the chip emulator, none of which
has to import another for it. The layers below it (``config``, ``models``, ``data``) know nothing
about runs; the ones above it (``train``, ``energy``, ``nir``, ``emulator``) build on it.

Public names:

- checkpoints: :func:`save_checkpoint`, :func:`load_checkpoint` (``weights_only=True``; a
  missing, torn or foreign file is a :class:`~neuroflow.errors.CheckpointError` naming the path),
  :func:`load_model_state`, :func:`atomic_write`, :data:`CHECKPOINT_FORMAT`;
- models: :func:`build_model` (seeded, so initial weights depend on the seed only),
  :func:`load_trained_model` (eval mode, weights loaded), :func:`checkpoint_config`;
- data: :func:`build_datasets`, :func:`build_loader`, :func:`build_loaders`, :func:`sample_shape`;
- :func:`seed_everything`, :func:`select_device`, :func:`ensure_output_dir`.

A checkpoint is a dict of tensors and plain containers only (no pickled objects), so loading it
never runs code::

    format, format_version   "neuroflow-checkpoint", 1
    epoch, global_step       completed epochs / optimiser steps
    model, optimizer         state dicts
    model_io                 {"num_classes": int, "input_shape": [int, ...]} the model was built
                             for (lets export and emulation rebuild it without loading data;
                             absent in checkpoints written before it existed)
    scheduler                {"name", "step"} (the schedule is a pure function of the step)
    rng                      Python / NumPy / torch generator states
    best_val_accuracy, best_val_loss, best_epoch, wall_time_s
    config                   the resolved config as a dict (loadable by config_from_dict)
    versions                 neuroflow, torch, numpy, python
"""

from __future__ import annotations

import os
import platform
import random
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from neuroflow.config import ExperimentConfig, config_from_dict, to_dict
from neuroflow.errors import CheckpointError, ConfigError, NeuroflowError


class OutputPathError(NeuroflowError, OSError):
    """An output file or folder cannot be created or written (the message names the path)."""


CHECKPOINT_FORMAT = "neuroflow-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

SPLITS = ("train", "val", "test")

# ---------------------------------------------------------------------------------------------
# files


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path``.

    A reader (or a run killed half-way) sees either the old file or the complete new one, never a
    torn file: ``os.replace`` is atomic within one file system. A folder that cannot be created or
    written is a :class:`~neuroflow.errors.OutputPathError` naming ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        with open(tmp, "rb+") as fh:  # flush to disk so a crash after the rename keeps the data
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except (NotADirectoryError, FileExistsError, PermissionError, IsADirectoryError) as exc:
        raise OutputPathError(f"cannot write {path}: {_os_reason(exc)}") from None
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OutputPathError(f"cannot write {path}: {_os_reason(exc)}") from None
    finally:
        if tmp.exists():
            tmp.unlink()


def ensure_output_dir(path: str | Path) -> Path:
    """Create the output folder ``path`` (and its parents) and check that it can be written;
    an OutputPathError names the folder and what is wrong."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"cannot use {path} as output folder: it is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"cannot create output folder {path}: {_os_reason(exc)}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write into output folder {path}: permission denied")
    return path


def _os_reason(exc: OSError) -> str:
    """What went wrong, without Python's class name (the caller names the path)."""
    return exc.strerror or type(exc).__name__


def versions() -> dict[str, str]:
    """Versions of the software that wrote a checkpoint."""
    try:
        from importlib.metadata import version

        nf = version("neuroflow")
    except Exception:  # running from a source tree that is not installed
        nf = "unknown"
    return {
        "neuroflow": nf,
        "torch": str(torch.__version__),  # a TorchVersion object would not load weights_only
        "numpy": str(np.__version__),
        "python": platform.python_version(),
    }


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format tag and versions) atomically to ``path``."""
    payload = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_FORMAT_VERSION, **payload}
    payload.setdefault("versions", versions())
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with ``weights_only=True``.

    A missing, unreadable, torn or foreign file is a CheckpointError of one line naming ``path``
    (torch's own multi-paragraph weights_only text is reduced to the line saying what failed).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of garbage too
            warnings.simplefilter("ignore", UserWarning)
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({_os_reason(exc)})") from None
    except Exception as exc:  # a damaged file raises almost anything from inside the unpickler
        raise CheckpointError(f"{path}: not a readable checkpoint ({_torch_reason(exc)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a neuroflow checkpoint (no '{CHECKPOINT_FORMAT}' format tag)"
        )
    if ckpt.get("format_version", 0) > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {ckpt['format_version']} is newer than this neuroflow "
            f"understands ({CHECKPOINT_FORMAT_VERSION}); upgrade neuroflow"
        )
    if not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(f"{path}: the checkpoint holds no model weights ('model' entry)")
    return ckpt


_TORCH_ADVICE = (
    "weights only load failed",
    "please file an issue",
    "re-running",
    "check the documentation",
    "in pytorch 2.6",
    "(1)",
    "(2)",
)


def _torch_reason(exc: BaseException) -> str:
    """The one informative line of a torch.load failure (torch's weights_only message is a page
    of advice that does not apply to a damaged file; the line after "Unpickler error" says what
    failed)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if "Unpickler error:" in ln:
            rest = ln.split("Unpickler error:", 1)[1].strip()
            if rest:
                return rest
            if i + 1 < len(lines):
                return lines[i + 1]
    useful = [ln for ln in lines if not ln.lower().startswith(_TORCH_ADVICE)]
    if isinstance(exc, (KeyError, IndexError, TypeError, AttributeError)) or not useful:
        return f"damaged or not a torch file ({type(exc).__name__} {useful[0] if useful else ''})"
    return useful[0][:200]


def load_model_state(model: nn.Module, state: dict, source: str | Path, hint: str = "") -> None:
    """``model.load_state_dict(state)`` with a CheckpointError naming ``source`` on mismatch
    (``hint``, e.g. which config keys differ, is appended)."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]  # the first mismatch is enough
        raise CheckpointError(
            f"{source}: checkpoint does not match the model built from the config ({detail})"
            + (f"; {hint}" if hint else "")
        ) from None


# ---------------------------------------------------------------------------------------------
# seeds and devices


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds all CUDA devices


def select_device(cfg: ExperimentConfig, local_rank: int = 0) -> torch.device:
    """The device of config ``device`` (``auto``: this rank's GPU when there is one, else CPU)."""
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device': 'cuda' requested but no CUDA device is available")
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    return torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# data


def build_datasets(cfg: ExperimentConfig, require: Iterable[str] = ("train",)) -> dict:
    """``{"train", "val", "test"}`` datasets of the config's data section (split by its seed).

    Each split named in ``require`` must hold samples, otherwise a ConfigError says which split
    of which folder is empty.
    """
    from neuroflow.data import build_datasets as build_data

    datasets = build_data(cfg.data, cfg.seed)
    for split in require:
        if datasets.get(split) is None or len(datasets[split]) == 0:
            raise ConfigError(f"the {split!r} split of {cfg.data.root} is empty")
    return datasets


def sample_shape(dataset) -> tuple[int, ...]:
    """One sample's shape without a time axis: ``(C, H, W)`` for frames, ``(C,)`` (features per
    voxel) for point clouds."""
    shape = tuple(int(s) for s in dataset.input_shape)
    return shape[-3:] if len(shape) == 4 else shape


def build_loader(
    dataset: Dataset,
    cfg: ExperimentConfig,
    batch_size: int | None = None,
    sampler: Sampler | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | None = None,
) -> DataLoader:
    """A DataLoader batching ``dataset`` time-first (``[T, B, ...]``, or a SparseTensor for point
    clouds). Without ``sampler`` it visits the samples in order."""
    from neuroflow.data import collate_time_first

    # point clouds bring their own (they batch into a SparseTensor, which `.to(device)` moves)
    collate = getattr(dataset, "collate_fn", None) or collate_time_first
    return DataLoader(
        dataset,
        batch_size=batch_size or cfg.data.batch_size,
        sampler=sampler,
        shuffle=False,
        collate_fn=collate,
        num_workers=cfg.data.num_workers,
        pin_memory=device is not None and device.type == "cuda",
        generator=generator,
        drop_last=False,
    )


def build_loaders(
    cfg: ExperimentConfig, splits: Iterable[str] = ("test",), batch_size: int | None = None
) -> dict[str, DataLoader]:
    """In-order loaders of ``splits`` (each must hold samples) for evaluation in one process."""
    splits = tuple(splits)
    for split in splits:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r} (expected one of {', '.join(SPLITS)})")
    datasets = build_datasets(cfg, require=splits)
    return {s: build_loader(datasets[s], cfg, batch_size) for s in splits}


# ---------------------------------------------------------------------------------------------
# models


def build_model(
    cfg: ExperimentConfig,
    dataset=None,
    *,
    num_classes: int | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> nn.Module:
    """The configured model, built from a fresh seed so that its initial weights depend on the
    seed only (not on how much randomness the data pipeline consumed).

    Its output size and input shape come from ``num_classes`` / ``input_shape``, else from
    ``dataset``, else from the config's training split (which then gets loaded).
    """
    from neuroflow.models import build_model as build_registered

    if num_classes is None or input_shape is None:
        if dataset is None:
            dataset = build_datasets(cfg)["train"]
        num_classes = int(dataset.num_classes) if num_classes is None else num_classes
        input_shape = sample_shape(dataset) if input_shape is None else input_shape
    seed_everything(cfg.seed)
    return build_registered(
        cfg.model.name,
        cfg.model.params,
        num_classes=int(num_classes),
        input_shape=tuple(int(s) for s in input_shape),
    )


def model_io(dataset) -> dict[str, Any]:
    """The ``model_io`` checkpoint entry for a model built for ``dataset``."""
    return {"num_classes": int(dataset.num_classes), "input_shape": list(sample_shape(dataset))}


def checkpoint_config(ckpt: dict, source: str | Path = "checkpoint") -> ExperimentConfig:
    """The config a checkpoint was trained with (validated like a YAML file)."""
    raw = ckpt.get("config")
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: the checkpoint holds no config")
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise CheckpointError(f"{source}: its stored config is not valid here ({exc})") from None


def diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(a) + [k for k in b if k not in a]
        return [p for k in keys for p in diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def load_trained_model(
    cfg: ExperimentConfig | None,
    checkpoint: str | Path | dict,
    device: torch.device | str = "cpu",
    dataset=None,
) -> nn.Module:
    """The model of ``checkpoint`` with its weights, in eval mode, on ``device``.

    ``cfg`` None uses the checkpoint's own config. ``checkpoint`` is a path (read with
    ``weights_only=True``) or an already loaded checkpoint dict. The model's input shape and
    class count come from the checkpoint's ``model_io`` entry, else from ``dataset``, else from
    the config's data (older checkpoints). A mismatch names the checkpoint and the config keys
    that differ from the ones it was trained with.
    """
    source = checkpoint if not isinstance(checkpoint, dict) else "checkpoint"
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    if cfg is None:
        cfg = checkpoint_config(ckpt, source)
    io = ckpt.get("model_io") or {}
    if dataset is None and {"num_classes", "input_shape"} <= set(io):
        model = build_model(cfg, num_classes=io["num_classes"], input_shape=io["input_shape"])
    else:
        model = build_model(cfg, dataset)
    changed = diff_keys(ckpt.get("config", {}).get("model"), to_dict(cfg)["model"], "model.")
    hint = f"the checkpoint's config differs in {', '.join(changed)}" if changed else ""
    load_model_state(model, ckpt["model"], source, hint)
    return model.to(device).eval()


__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "OutputPathError",
    "SPLITS",
    "atomic_write",
    "build_datasets",
    "build_loader",
    "build_loaders",
    "build_model",
    "checkpoint_config",
    "diff_keys",
    "ensure_output_dir",
    "load_checkpoint",
    "load_model_state",
    "load_trained_model",
    "model_io",
    "sample_shape",
    "save_checkpoint",
    "seed_everything",
    "select_device",
    "versions",
]

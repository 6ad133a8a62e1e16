"""Checkpoint files: written atomically, read with ``weights_only=True``.

A checkpoint is a dict of tensors and plain containers only (no pickled objects), so loading it
never runs code::

    format, format_version   "neuroflow-checkpoint", 1
    epoch, global_step       completed epochs / optimiser steps
    model, optimizer         state dicts
    scheduler                {"name", "step"} (the schedule is a pure function of the step)
    rng                      Python / NumPy / torch generator states (see seeding.py)
    best_val_accuracy, best_epoch, wall_time_s
    config                   the resolved config as a dict (loadable by config_from_dict)
    versions                 neuroflow, torch, numpy, python
"""

from __future__ import annotations

import os
import pickle
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuroflow.errors import CheckpointError

FORMAT = "neuroflow-checkpoint"
FORMAT_VERSION = 1


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


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` then rename the temporary file over ``path``.

    A reader (or a run killed half-way) sees either the old file or the complete new one, never a
    torn file: ``os.replace`` is atomic within one file system.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:  # flush to disk so a crash after the rename keeps the data
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format tag and versions) atomically to ``path``."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    payload.setdefault("versions", versions())
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; a missing, torn or foreign file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        # torch's weights_only message is long; its "WeightsUnpickler error" line says what failed
        detail = next((ln for ln in lines if "Unpickler error" in ln), lines[0] if lines else "")
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({detail or type(exc).__name__})"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a neuroflow checkpoint (no '{FORMAT}' format tag)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {ckpt['format_version']} is newer than this neuroflow "
            f"understands ({FORMAT_VERSION}); upgrade neuroflow"
        )
    return ckpt


def load_model_state(model: torch.nn.Module, state: dict, source: str | Path, hint: str = "") -> None:
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

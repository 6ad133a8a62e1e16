"""Energy of a model over a dataset: run inference under an :class:`OpCounter`, price it on a
hardware profile. Behind ``neuroflow energy`` and the trainer's end-of-run summary."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from neuroflow.energy.counter import OpCounter
from neuroflow.energy.hardware import load_hardware
from neuroflow.energy.report import EnergyReport, energy_report
from neuroflow.errors import InvalidArgumentError
from neuroflow.experiment import (
    build_datasets,
    build_loader,
    load_checkpoint,
    load_trained_model,
    select_device,
)
from neuroflow.layers import SparseTensor


@torch.no_grad()
def estimate_energy(
    model: nn.Module,
    batches: Iterable,
    hardware: str = "cmos45nm",
    precision: str | None = None,
    max_samples: int | None = None,
    device: torch.device | str = "cpu",
) -> EnergyReport:
    """Count ``model``'s operations on ``batches`` of time-first inputs ``[T, B, ...]`` or
    :class:`~neuroflow.layers.SparseTensor` point clouds (or ``(inputs, labels)`` pairs) and price
    them on profile ``hardware``.

    ``max_samples`` stops after that many samples (the last batch is cut to fit). The model is put
    in eval mode; counts are per sample.
    """
    if max_samples is not None and max_samples < 1:
        raise InvalidArgumentError(f"max_samples must be >= 1, got {max_samples}")
    profile = load_hardware(hardware, precision)  # fail on a bad name before running anything
    model.eval()
    seen = 0
    with OpCounter(model) as counter:
        for batch in batches:
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            sparse = isinstance(x, SparseTensor)
            if max_samples is not None:
                x = first_samples(x, max_samples - seen) if sparse else x[:, : max_samples - seen]
            model(x.to(device))
            if sparse:  # no [T, B] axes for the counter to read the batch from
                counter.add_samples(x.batch_size)
            seen += x.batch_size if sparse else x.shape[1]
            if max_samples is not None and seen >= max_samples:
                break
    return energy_report(counter, profile)


def first_samples(x: SparseTensor, n: int) -> SparseTensor:
    """The voxels of ``x``'s first ``n`` samples (all of ``x`` when it holds no more)."""
    if n >= x.batch_size:
        return x
    keep = x.coords[:, 0] < n
    return SparseTensor(x.coords[keep], x.features[keep], x.spatial_shape, n)


def estimate_checkpoint(
    cfg,
    checkpoint: str | Path,
    hardware: str = "cmos45nm",
    precision: str | None = None,
    split: str = "test",
    max_samples: int | None = None,
) -> EnergyReport:
    """Energy of ``checkpoint`` (a model of experiment config ``cfg``) on one split of its data."""
    load_hardware(hardware, precision)  # a bad profile name fails before the data are loaded
    ckpt = load_checkpoint(checkpoint)  # a garbage file fails before the data are loaded
    device = select_device(cfg)
    datasets = build_datasets(cfg, require=("train", split))
    model = load_trained_model(cfg, ckpt, device, dataset=datasets["train"])
    loader = build_loader(datasets[split], cfg, device=device)
    return estimate_energy(model, loader, hardware, precision, max_samples, device)

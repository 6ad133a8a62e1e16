"""Losses on time-resolved logits ``[T, B, classes]`` with integer targets ``[B]``."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from neuroflow.config.schema import LossConfig
from neuroflow.errors import InputShapeError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.dim() != 3 or target.dim() != 1 or logits.shape[1] != target.shape[0]:
        raise InputShapeError(
            f"expected logits [T, B, classes] and targets [B], got {list(logits.shape)} "
            f"and {list(target.shape)}"
        )


def mean_ce(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy of the time-mean logits (the usual rate-coded readout). Scalar."""
    _check(logits, target)
    return F.cross_entropy(logits.mean(0), target, label_smoothing=label_smoothing)


def tet_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    label_smoothing: float = 0.0,
    lam: float = 0.0,
    phi: float = 1.0,
) -> torch.Tensor:
    """Temporal efficient training (Deng et al., ICLR 2022): the mean over time steps of the
    per-step cross-entropy, ``(1 - lam) * mean_t CE(O_t, y) + lam * MSE(O, phi)``. Scalar."""
    _check(logits, target)
    steps = logits.shape[0]
    # one cross_entropy over T*B rows is the mean over t of the per-step batch means
    ce = F.cross_entropy(
        logits.flatten(0, 1), target.repeat(steps), label_smoothing=label_smoothing
    )
    if lam == 0:
        return ce
    return (1 - lam) * ce + lam * F.mse_loss(logits, torch.full_like(logits, phi))


def build_loss(cfg: LossConfig) -> LossFn:
    """The training loss named by the config."""
    if cfg.name == "tet":
        return lambda o, y: tet_loss(o, y, cfg.label_smoothing, cfg.tet_lambda, cfg.tet_phi)
    return lambda o, y: mean_ce(o, y, cfg.label_smoothing)

"""Readouts fitted directly on fixed reservoir features (no trainer): closed-form ridge
regression and multinomial logistic regression (L-BFGS). Used by the robustness sweep and the
tuning helpers, where refitting a readout for every device setting must take seconds.

Features are standardised with the training split's mean and std (a constant feature keeps std
1) before fitting; :class:`FittedReadout` applies the same standardisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from neuroflow.errors import InputShapeError, InvalidArgumentError


@dataclass
class FittedReadout:
    """An affine readout ``logits = ((x - mean) / std) @ weight + bias``."""

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.double() - self.mean) / self.std) @ self.weight + self.bias

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Top-1 accuracy (fraction) on features ``x [B, F]`` and labels ``y [B]``."""
        return float((self.logits(x).argmax(1) == y).double().mean())


def _standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x.mean(0)
    std = x.std(0)
    return mean, torch.where(std > 0, std, torch.ones_like(std))


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise InputShapeError(
            f"readout: expected features [B, F] and labels [B], got "
            f"{list(x.shape)} and {list(y.shape)}"
        )


def fit_ridge(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, alpha: float = 1.0
) -> FittedReadout:
    """Ridge regression onto one-hot targets: ``W = (X^T X + alpha I)^-1 X^T Y`` (float64)."""
    _check(x, y)
    if alpha < 0:
        raise InvalidArgumentError(f"readout: ridge alpha must be >= 0, got {alpha}")
    x = x.double()
    mean, std = _standardise(x)
    z = (x - mean) / std
    targets = F.one_hot(y.long(), num_classes).double()
    bias = targets.mean(0)
    gram = z.T @ z + alpha * torch.eye(z.shape[1], dtype=torch.float64)
    weight = torch.linalg.solve(gram, z.T @ (targets - bias))
    return FittedReadout(mean, std, weight, bias)


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float = 1e-3, iterations: int = 100
) -> FittedReadout:
    """Multinomial logistic regression (cross-entropy + ``l2 |W|^2``) by L-BFGS, float64."""
    _check(x, y)
    x = x.double()
    mean, std = _standardise(x)
    z = (x - mean) / std
    weight = torch.zeros(z.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")
    target = y.long()

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ weight + bias, target) + l2 * (weight**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return FittedReadout(mean, std, weight.detach(), bias.detach())


READOUTS = {"ridge": fit_ridge, "logistic": fit_logistic}


def fit_readout(kind: str, x: torch.Tensor, y: torch.Tensor, num_classes: int) -> FittedReadout:
    """``kind`` = ``"ridge"`` or ``"logistic"`` with default regularisation."""
    if kind not in READOUTS:
        raise InvalidArgumentError(f"readout: kind must be one of {sorted(READOUTS)}, got {kind!r}")
    return READOUTS[kind](x, y, num_classes)

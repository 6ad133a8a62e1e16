"""One-pass statistics of a layer input on the CPU (numba), for counting at low overhead.

Counting needs, per input, whether it holds integers, its events per kept position and its
non-zeros. With torch that is four to five passes over the tensor (round, compare, range, sum,
count); this kernel reads it once. Used for contiguous float32 CPU tensors; anything else takes
the torch path in :mod:`neuroflow.energy.ops`.
"""

from __future__ import annotations

import numba
import numpy as np
import torch


@numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
def _row_stats(x):
    """``x [R, P]`` -> (sum |x| per column, non-zeros per column, all-integer flag)."""
    rows, cols = x.shape
    abs_sum = np.zeros(cols, np.float64)
    nonzero = np.zeros(cols, np.int64)
    integer = True
    for r in range(rows):
        for p in range(cols):
            v = x[r, p]
            if v != 0.0:
                abs_sum[p] += abs(v)
                nonzero[p] += 1
                if integer and v != np.floor(v):
                    integer = False
    return abs_sum, nonzero, integer


@numba.njit(cache=True, nogil=True, error_model="numpy", boundscheck=False)
def _all_integer(x):
    """Whether every element of the flat array ``x`` is an integer (stops at the first that is
    not)."""
    for i in range(x.size):
        v = x[i]
        if v != np.floor(v):
            return False
    return True


def all_integer(x: torch.Tensor) -> bool:
    """:func:`_all_integer` of a tensor accepted by :func:`fast_path` (real values exit early)."""
    return bool(_all_integer(x.detach().numpy().reshape(-1)))


def fast_path(x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous() and x.numel() > 0
    )


def column_stats(x: torch.Tensor, kept: int) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """For ``x`` whose last ``kept`` dimensions are kept (the leading ones reduced): sum of ``|x|``
    and non-zeros per kept position (float64, shaped like the kept dimensions) and whether every
    element is an integer. ``kept=0`` reduces everything (results of shape ``[]``)."""
    shape = x.shape[x.dim() - kept :]
    cols = int(np.prod(shape)) if kept else (x.shape[-1] if x.dim() else 1)
    a = x.detach().numpy().reshape(-1, cols)
    abs_sum, nonzero, integer = _row_stats(a)
    abs_sum, nonzero = torch.from_numpy(abs_sum), torch.from_numpy(nonzero).to(torch.float64)
    if not kept:
        abs_sum, nonzero = abs_sum.sum(), nonzero.sum()
    return abs_sum.reshape(shape), nonzero.reshape(shape), bool(integer)

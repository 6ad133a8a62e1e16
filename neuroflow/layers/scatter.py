"""Row scatter-add ``y[index[p]] += rows[p]``, the last step of every sparse convolution.

On the CPU a plain numba loop: measured ~0.04 ms for 7,000 rows of 32 floats, where
``Tensor.index_add_`` took 0.27 ms at best and, with 2 intra-op threads on a loaded 2-core
machine, a median of 160 ms. One thread writes every row in order, so the result does not
depend on the thread count. Other devices (and dtypes numba does not take) use ``index_add_``.
"""

from __future__ import annotations

import numba
import torch


@numba.njit(cache=True, nogil=True, boundscheck=False, error_model="numpy")
def _scatter_add_rows(y, index, rows):
    for p in range(index.shape[0]):
        yr = y[index[p]]
        rr = rows[p]
        for c in range(yr.shape[0]):
            yr[c] += rr[c]


def scatter_add_rows(y: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """In place ``y[index[p]] += rows[p]`` for ``y [M, C]``, ``index [P]`` int64, ``rows [P, C]``; returns ``y``.

    ``y`` must be contiguous; no autograd (used inside hand-written forward/backward passes).
    """
    if y.device.type == "cpu" and y.dtype in (torch.float32, torch.float64) and y.is_contiguous():
        _scatter_add_rows(y.numpy(), index.contiguous().numpy(), rows.contiguous().numpy())
        return y
    return y.index_add_(0, index, rows)

"""Operation counts of one layer call: pure functions on tensors.

Conventions (Spike-driven Transformer V1-V3, Yao et al.; E-3DSNN, Qiu et al., arXiv 2412.07360;
NeuroBench, Yik et al., Nature Communications 2025):

- An input is **spikes** when every element is an integer (binary 0/1, ternary -1/0/1 or integer
  multi-spikes). An integer ``k`` stands for ``|k|`` binary spikes, so it triggers ``|k|``
  accumulates per synapse; the layer's synaptic operations are **ACs**
  ``sum(|x|) x fan-out`` (E-3DSNN's "mean integer value" rule).
- Any other input is **real-valued** (the encoding layer): the layer does **MACs**, counted
  effectively as ``count_nonzero(x) x fan-out`` (NeuroBench's ``Effective_MACs``).
- The **dense** count is the same with every input element present (``numel(x) x fan-out``): the
  MACs of the equivalent ANN, one per weight tap that touches a real (non-padding) input element,
  as NeuroBench's ``Dense``. It differs from thop-style FLOPs only at zero-padded borders.
- Biases, BatchNorm (folded into the weights at inference) and element-wise ops are not counted;
  weights are assumed dense (a zero weight still counts, unlike NeuroBench's binarised weights).
- Pooling counts one accumulate (sum pooling) or comparison (max pooling) per input event and
  window containing it: ACs for the SNN and dense adds for the ANN. A real-valued pooling input
  (e.g. a BatchNorm output) is pooled densely: every element is an event.
- ``MultiSpike(normalize=True)`` emits ``k / D``, which is not integer: its consumers count as
  MAC layers. Count such models with ``normalize=False`` (the ``1 / D`` folds into the weights).

Event-count input (N-MNIST frames hold the number of events per pixel and bin) is integer-valued,
so it counts as spikes with ``k`` events -> ``k`` ACs: each event is one synaptic event on
neuromorphic hardware. NeuroBench instead classifies a layer whose input holds any value outside
{-1, 0, 1} as a MAC layer and counts each non-zero once; the two agree whenever inputs are binary
or real-valued.

All counts are per call; shapes follow PyTorch: conv input ``[N, C, *spatial]``, linear input
``[..., in_features]``, matmul operands ``[..., n, k] @ [..., k, m]``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import torch

from neuroflow.energy.cpu_stats import all_integer, column_stats, fast_path
from neuroflow.errors import InputShapeError, InvalidArgumentError


@dataclass
class OpCounts:
    """Operation counts of one layer (summed over calls).

    ``macs``/``acs``: effective multiply-accumulates / accumulates of the SNN. ``dense_macs`` /
    ``dense_acs``: the same layer as an ANN with every input present (pooling adds go to
    ``dense_acs``). ``neuron_updates``: neuron state updates (neurons x time steps x batch).
    ``spikes``: spikes emitted (integer spikes count their value). ``activity_sum`` /
    ``activity_nonzero`` / ``activity_elements``: events (``sum |x|`` for spikes, non-zeros for
    real values), non-zeros and size of the layer's input (of its output for neurons), for
    firing rates and sparsity. ``calls``: forward calls summed.
    """

    macs: float = 0.0
    acs: float = 0.0
    dense_macs: float = 0.0
    dense_acs: float = 0.0
    neuron_updates: float = 0.0
    spikes: float = 0.0
    activity_sum: float = 0.0
    activity_nonzero: float = 0.0
    activity_elements: float = 0.0
    calls: int = 0

    def __iadd__(self, other: OpCounts) -> OpCounts:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def scaled(self, factor: float) -> OpCounts:
        """Every count but ``calls`` times ``factor`` (``1 / samples``: per-sample counts)."""
        return OpCounts(**{k: v if k == "calls" else v * factor for k, v in asdict(self).items()})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: data_ptr -> weak reference of tensors known to hold spikes (outputs of spiking neurons, marked
#: by the counter), so that their consumers skip the integer test; a dead reference is ignored
_MARKED_SPIKES: dict[int, weakref.ref] = {}


def mark_spikes(t: torch.Tensor) -> None:
    """Record that ``t`` (and views sharing its data) holds integer spikes."""
    _MARKED_SPIKES[t.data_ptr()] = weakref.ref(t)


def _marked(x: torch.Tensor) -> bool:
    ref = _MARKED_SPIKES.get(x.data_ptr())
    return ref is not None and ref() is not None


def clear_marked_spikes() -> None:
    _MARKED_SPIKES.clear()


def is_spike_tensor(x: torch.Tensor) -> bool:
    """True when every element of ``x`` is an integer (binary, ternary or multi-spike)."""
    if not x.is_floating_point():
        return True
    if _marked(x):
        return True
    for view in (x, _channels_last_view(x)):
        if view is not None and fast_path(view):
            return all_integer(view)
    return bool(torch.equal(x, torch.round(x)))


def _channels_last_view(x: torch.Tensor) -> torch.Tensor | None:
    """``x [N, C, H, W]`` as ``[N, H, W, C]`` (contiguous when ``x`` is channels-last, as inside
    TimeDistributed's pooling stacks), else ``None``."""
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else None


def _input_events(x: torch.Tensor, spiking: bool | None, dims: tuple[int, ...]):
    """``(spiking, statistics, events)`` of a layer input: events summed over ``dims`` (float64),
    ``sum |x|`` for spikes (an integer ``k`` is ``k`` events), the number of non-zeros for real
    values (one MAC each, as NeuroBench).

    This runs on every layer, so it reads ``x`` as few times as it can: once with the numba
    kernel (float32 CPU tensors reduced over leading dimensions), otherwise with torch, where sums
    run in float32 (float64 reductions are several times slower; exact while a reduced entry holds
    fewer than 2**24 events) and binary spikes take their non-zero count from the sum.
    """
    x = x.detach()
    if not x.is_floating_point():
        x = x.to(torch.float32)
    kept = [n for d, n in enumerate(x.shape) if d not in dims]
    numel = x.numel()
    columns = None
    if fast_path(x) and tuple(dims) == tuple(range(len(dims))):
        columns = column_stats(x, x.dim() - len(dims))
    elif tuple(dims) == (0, 1) and (nhwc := _channels_last_view(x)) is not None and fast_path(nhwc):
        # channels-last input: the kernel reduces N over [H, W, C] columns, then C is summed away
        abs_sum, nonzero_per, integer = column_stats(nhwc, 3)
        columns = abs_sum.sum(-1), nonzero_per.sum(-1), integer
    if columns is not None:
        abs_sum, nonzero_per, integer = columns
        if spiking is None:
            spiking = integer or _marked(x)
        events = abs_sum if spiking else nonzero_per
        stats = OpCounts(
            activity_sum=float(events.sum()),
            activity_nonzero=float(nonzero_per.sum()),
            activity_elements=float(numel),
        )
        return spiking, stats, events
    spiking = is_spike_tensor(x) if spiking is None else spiking
    if numel == 0:
        return spiking, OpCounts(), torch.zeros(kept, dtype=torch.float64)
    if spiking:
        lo, hi = torch.aminmax(x)
        binary = bool(lo >= 0) and bool(hi <= 1)
        w = x if bool(lo >= 0) else x.abs()
        events = w.sum(dim=dims, dtype=torch.float32).to(torch.float64)
        total = float(events.sum())
        nonzero = total if binary else float(torch.count_nonzero(x))
    else:
        nonzero = float(torch.count_nonzero(x))
        if nonzero == numel:  # dense real input (the usual encoding layer): no per-element pass
            events = torch.full(kept, float(numel // max(1, math.prod(kept))), dtype=torch.float64)
        else:
            events = torch.count_nonzero(x, dim=dims).to(torch.float64)
        total = nonzero
    return (
        spiking,
        OpCounts(activity_sum=total, activity_nonzero=nonzero, activity_elements=float(numel)),
        events,
    )


def _charge(stats: OpCounts, effective: float, dense: float, spiking: bool) -> OpCounts:
    if spiking:
        stats.acs = effective
    else:
        stats.macs = effective
    stats.dense_macs = dense
    stats.calls = 1
    return stats


def linear_synaptic_ops(
    x: torch.Tensor, out_features: int, spiking: bool | None = None
) -> OpCounts:
    """A dense layer ``[..., in] -> [..., out]``: each input event reaches ``out_features``
    synapses.

    ``spiking``: whether ``x`` holds spikes, when the caller knows (else it is tested).
    """
    spiking, stats, _ = _input_events(x, spiking, tuple(range(x.dim())))
    return _charge(
        stats, stats.activity_sum * out_features, float(x.numel()) * out_features, spiking
    )


@lru_cache(maxsize=256)
def _fanout_map(
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> torch.Tensor:
    """How many kernel windows (output positions) read each input position, ``[*spatial]``.

    It is the input gradient of a sum-convolution with an all-ones kernel (a transposed
    convolution of ones), so zero padding, stride and dilation are honoured exactly; cached per
    geometry.
    """
    out = tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(spatial, kernel, stride, padding, dilation)
    )
    if min(out) < 1:
        raise InputShapeError(
            f"input {list(spatial)} is smaller than the kernel window {list(kernel)}"
        )
    grad_input = {
        1: torch.nn.grad.conv1d_input,
        2: torch.nn.grad.conv2d_input,
        3: torch.nn.grad.conv3d_input,
    }[len(spatial)]
    ones = torch.ones((1, 1, *kernel), dtype=torch.float64)
    grad = grad_input(
        (1, 1, *spatial),
        ones,
        torch.ones((1, 1, *out), dtype=torch.float64),
        stride,
        padding,
        dilation,
    )
    return grad[0, 0]


def _window_ops(
    x: torch.Tensor,
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    spiking: bool | None,
):
    """``(spiking, stats, events, effective, dense)`` of a sliding-window layer on
    ``x [N, C, *spatial]``: events per position weighted by the number of windows covering it,
    summed."""
    dims = len(kernel)
    if x.dim() != dims + 2:
        raise InputShapeError(f"expected a [N, C, {dims} spatial] input, got {list(x.shape)}")
    spiking, stats, events = _input_events(x, spiking, (0, 1))  # events per position [*spatial]
    fanout = _fanout_map(
        tuple(x.shape[2:]), tuple(kernel), tuple(stride), tuple(padding), tuple(dilation)
    )
    effective = float((events * fanout.to(events.device)).sum())
    dense = float(fanout.sum()) * x.shape[0] * x.shape[1]
    return spiking, stats, effective, dense


def conv_synaptic_ops(
    x: torch.Tensor,
    out_channels: int,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int = 1,
    spiking: bool | None = None,
) -> OpCounts:
    """A zero-padded Conv1d/2d/3d on ``x [N, C_in, *spatial]``.

    Each input event feeds ``out_channels / groups`` channels at every output position whose
    window covers it: ``ops = (C_out / groups) x sum_positions(events x windows covering it)``.
    """
    spiking, stats, effective, dense = _window_ops(
        x, kernel_size, stride, padding, dilation, spiking
    )
    per_group = out_channels / groups
    return _charge(stats, effective * per_group, dense * per_group, spiking)


def pool_ops(
    x: torch.Tensor,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int] | None = None,
    spiking: bool | None = None,
) -> OpCounts:
    """Sum/average or max pooling on ``x [N, C, *spatial]``: one accumulate (or comparison) per
    input event and window containing it; the ANN equivalent adds every element (``dense_acs``).

    Zero-skipping is a property of spikes: a real-valued input (e.g. a BatchNorm output) is
    pooled densely, every element counting as an event, which also spares a pass over it.
    """
    dilation = dilation if dilation is not None else (1,) * len(kernel_size)
    if x.dim() != len(kernel_size) + 2:
        raise InputShapeError(
            f"expected a [N, C, {len(kernel_size)} spatial] input, got {list(x.shape)}"
        )
    if spiking is None:
        spiking = is_spike_tensor(x.detach())
    if spiking:
        _, stats, effective, dense = _window_ops(x, kernel_size, stride, padding, dilation, True)
    else:
        fanout = _fanout_map(
            tuple(x.shape[2:]), tuple(kernel_size), tuple(stride), tuple(padding), tuple(dilation)
        )
        effective = dense = float(fanout.sum()) * x.shape[0] * x.shape[1]
        stats = OpCounts(
            activity_sum=float(x.numel()),
            activity_nonzero=float(x.numel()),
            activity_elements=float(x.numel()),
        )
    stats = _charge(stats, effective, 0.0, True)
    stats.dense_acs = dense
    return stats


def matmul_ops(a: torch.Tensor, b: torch.Tensor) -> OpCounts:
    """A product ``a [..., n, k] @ b [..., k, m]`` (batch dimensions broadcast; 1-D operands are
    treated as in ``torch.matmul``).

    - both operands integer-valued (spike-driven attention ``Q (K^T V)``): ``a``'s events each
      accumulate the non-zeros of one row of ``b``, ``sum_k colsum|a|[k] x nnz(b[k, :])`` ACs
      (an integer spike in ``a`` counts its value; ``b``'s values are what is accumulated, so an
      integer such as an entry of ``K^T V`` counts once). For binary operands this is exactly
      the number of non-zero products;
    - one operand spikes: each of its events accumulates a full row/column of the other
      (``sum|a| x m`` or ``sum|b| x n`` ACs), as for a weight matrix;
    - neither: ``count_nonzero(a) x m`` MACs.

    The dense count is ``batch x n x k x m``. The input statistics describe the spiking operand
    (``a`` when both or neither spike).
    """
    a, b = a.detach(), b.detach()
    if a.dim() == 0 or b.dim() == 0:
        raise InputShapeError("matmul operands must have at least one dimension")
    a2 = a.unsqueeze(0) if a.dim() == 1 else a
    b2 = b.unsqueeze(-1) if b.dim() == 1 else b
    if a2.shape[-1] != b2.shape[-2]:
        raise InputShapeError(f"matmul shapes do not match: {list(a.shape)} @ {list(b.shape)}")
    n, k, m = a2.shape[-2], a2.shape[-1], b2.shape[-1]
    batch_shape = torch.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    batch = 1
    for s in batch_shape:
        batch *= s
    dense = float(batch * n * k * m)
    b_spiking = is_spike_tensor(b2)
    a_spiking, a_stats, col_a = _input_events(a2, None, (a2.dim() - 2,))  # events per k, [..., k]
    if b_spiking and not a_spiking:  # each event of b accumulates a column of a (n entries)
        _, b_stats, row_b = _input_events(b2, True, (b2.dim() - 1,))  # [..., k]
        return _charge(b_stats, float((row_b * n).expand(*batch_shape, k).sum()), dense, True)
    if a_spiking and b_spiking:
        per_k = col_a * (b2 != 0).sum(dim=-1, dtype=torch.float64)
    else:  # a spikes against a dense b, or a real-valued product
        per_k = col_a * m
    return _charge(a_stats, float(per_k.expand(*batch_shape, k).sum()), dense, a_spiking)


def neuron_ops(spikes: torch.Tensor) -> OpCounts:
    """A spiking neuron layer's output ``[T, B, ...]``: one state update per element, and its
    spikes (an integer spike counts its value)."""
    _, stats, _ = _input_events(spikes, True, tuple(range(spikes.dim())))
    stats.neuron_updates, stats.spikes, stats.calls = float(spikes.numel()), stats.activity_sum, 1
    return stats


def sparse_conv_synaptic_ops(
    features: torch.Tensor,
    kernel_map: Sequence[tuple[torch.Tensor, torch.Tensor]],
    out_channels: int,
    spiking: bool | None = None,
) -> OpCounts:
    """A sparse (submanifold or strided) convolution from its kernel map.

    Args:
        features: ``[N_in, C_in]`` input features of the active sites.
        kernel_map: one ``(in_idx, out_idx)`` pair of index tensors ``[P_o]`` per kernel offset
            ``o``: active input site ``in_idx[p]`` contributes to output site ``out_idx[p]``.
        out_channels: ``C_out``.

    Every pair is one weight-tap application: its input site's events (``sum_c |f[in, c]|`` for
    spikes, the non-zero channels otherwise) each feed ``C_out`` outputs. The dense count is
    ``sum_o P_o x C_in x C_out`` (an ANN computing the same active sites). Equals a dense
    convolution's count restricted to the active output sites (tested).
    """
    if features.dim() != 2:
        raise InputShapeError(f"sparse conv features must be [N, C], got {list(features.shape)}")
    spiking, stats, per_site = _input_events(
        features, spiking, (1,)
    )  # events per active input site
    effective, pairs = 0.0, 0
    for offset, (in_idx, out_idx) in enumerate(kernel_map):
        if in_idx.shape != out_idx.shape:
            raise InvalidArgumentError(
                f"kernel map offset {offset}: in_idx {list(in_idx.shape)} and "
                f"out_idx {list(out_idx.shape)} differ in length"
            )
        effective += float(per_site[in_idx.to(per_site.device, torch.long)].sum())
        pairs += in_idx.numel()
    dense = float(pairs) * features.shape[1] * out_channels
    return _charge(stats, effective * out_channels, dense, spiking)

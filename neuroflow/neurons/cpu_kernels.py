"""Fused multi-step (P)LIF / IF kernels for the CPU (numba), forward and backward.

Why fused: a time loop in eager PyTorch runs ~8 tensor operations per step, each reading and
writing the whole ``[B, N]`` slice; the fused forward reads ``x`` once and writes the spikes once.
The backward does not store the membrane trace: it recomputes ``h[t]`` from ``x`` for a block of
neurons over all time steps (the block stays in L2), so its only memory traffic is ``x`` and the
spike gradient (read) and the input gradient (written).

The forward arithmetic is float32, in the same order as :func:`neuroflow.neurons.dynamics.charge`
and ``reset``, so spikes equal the torch reference (and SpikingJelly) bit for bit. The sigmoid
surrogate uses a vectorisable ``exp`` (:func:`_exp`) because libm's ``expf`` does not vectorise.

Layout: 2-D ``[T, M]`` arrays (``M`` = batch x neurons, C-contiguous). Each kernel works on a column
range ``lo:hi`` without the GIL; :func:`forward_columns` / :func:`backward_columns` run several
ranges on numba's parallel threads (:mod:`neuroflow.neurons.fused` picks one range per thread).

Performance notes (measured on the 2-core development VM): each inner loop is branch-free, with the
variant flags (charge kind, reset, detach, surrogate) tested *outside* the loop. A flag tested
inside kept LLVM from vectorising and cost ~10x. The column ranges run under ``prange`` rather than
on plain threads for the reason given above :func:`forward_columns`.

Codes: ``kind`` 0 LIF (decay_input), 1 LIF, 2 IF, 3 PLIF (decay_input), 4 PLIF; ``sg_kind`` 0
sigmoid, 1 atan, 2 rectangular. A neuron fires where ``h - th >= margin``: ``margin = 0`` fires on
``h >= th``; ``margin = nextafter(th, inf) - th`` (the spacing of float32 values above ``th``,
exact) fires on ``h > th`` (strict), because float32 subtraction is monotone and ``h > th`` means
``h >= nextafter(th, inf)``. The rule thus shares ``h - th`` with the surrogate and the soft reset
and costs no operation in the loops (a select between two comparisons cost the sigmoid backward
15%, a separate subtraction 5%, measured on the 2-core development VM). The codes are assigned,
and checked before a call, where the kernel is declared (:mod:`neuroflow.neurons.fused`).
"""

from __future__ import annotations

import numba
import numpy as np

f32 = np.float32
_OPTS = dict(cache=True, nogil=True, error_model="numpy", boundscheck=False)
# Gradients need 1e-5, not bit-exactness: let LLVM fuse multiply-adds and reorder the backward's
# arithmetic (measured 1.6x faster for the sigmoid surrogate). NaN/inf semantics are kept.
_GRAD_OPTS = dict(_OPTS, fastmath={"contract", "afn", "reassoc", "nsz", "arcp"})
#: Elements (time steps x neurons) of the backward's recomputed block: fits the 512 KiB L2 cache.
BLOCK_ELEMENTS = 1 << 15


@numba.njit(**_OPTS)
def block_columns(steps):
    """Neurons per backward block for ``steps`` time steps (a multiple of 64, at least 64)."""
    return max(64, (BLOCK_ELEMENTS // max(steps, 1)) // 64 * 64)


@numba.njit(inline="always", **_OPTS)
def _fire_reset(h, th, margin, vr, soft):
    """``(spike, v)`` after the charge ``h``; written as selects so that loops stay vectorised."""
    fire = (h - th) >= margin
    after = (h - th) if soft else vr
    return (f32(1.0) if fire else f32(0.0)), (after if fire else h)


@numba.njit(**_OPTS)
def _step_row(kind, soft, xt, v, ht, st, n, tau, q, th, margin, vr):
    """One time step of ``n`` neurons: charge ``ht = h[t]``, spikes ``st``, reset ``v``."""
    if kind == 0:
        for j in range(n):
            h = v[j] + (xt[j] - (v[j] - vr)) / tau
            ht[j] = h
            st[j], v[j] = _fire_reset(h, th, margin, vr, soft)
    elif kind == 1:
        for j in range(n):
            h = v[j] - (v[j] - vr) / tau + xt[j]
            ht[j] = h
            st[j], v[j] = _fire_reset(h, th, margin, vr, soft)
    elif kind == 2:
        for j in range(n):
            h = v[j] + xt[j]
            ht[j] = h
            st[j], v[j] = _fire_reset(h, th, margin, vr, soft)
    elif kind == 3:
        for j in range(n):
            h = v[j] + (xt[j] - (v[j] - vr)) * q
            ht[j] = h
            st[j], v[j] = _fire_reset(h, th, margin, vr, soft)
    else:
        for j in range(n):
            h = v[j] - (v[j] - vr) * q + xt[j]
            ht[j] = h
            st[j], v[j] = _fire_reset(h, th, margin, vr, soft)


@numba.njit(**_OPTS)
def forward(x, v0, spikes, v_out, lo, hi, kind, soft, tau, q, th, margin, vr):
    """Columns ``lo:hi`` of ``x [T, M]``, ``v0 [M]`` -> ``spikes [T, M]`` (0/1), ``v_out [M]``."""
    n = hi - lo
    v = v_out[lo:hi]
    v[:] = v0[lo:hi]
    hrow = np.empty(n, dtype=np.float32)
    for t in range(x.shape[0]):
        _step_row(kind, soft, x[t, lo:hi], v, hrow, spikes[t, lo:hi], n, tau, q, th, margin, vr)


@numba.njit(inline="always", **_OPTS)
def _exp(y):
    """``exp(y)`` for float32 ``y`` in [-87, 87]: Cody-Waite reduction ``y = k ln2 + r``, a degree-6
    polynomial for ``exp(r)`` and ``2^k`` written into the exponent bits. Relative error < 5e-7."""
    k = np.floor(y * f32(1.4426950408889634) + f32(0.5))
    r = y - k * f32(0.693359375)
    r = r - k * f32(-2.12194440e-4)
    p = f32(1.9875691500e-4)
    p = p * r + f32(1.3981999507e-3)
    p = p * r + f32(8.3334519073e-3)
    p = p * r + f32(4.1665795894e-2)
    p = p * r + f32(1.6666665459e-1)
    p = p * r + f32(5.0000001201e-1)
    p = p * r * r + r + f32(1.0)
    return p * np.int32((np.int32(k) + np.int32(127)) << np.int32(23)).view(np.float32)


@numba.njit(inline="always", **_OPTS)
def _reset_grad(h, sg, th, margin, vr, soft, detach):
    """``dv[t]/dh[t]``: hard ``1 - s + (v_reset - h) sg``, soft ``1 - v_th sg``; no ``sg`` term
    if detached."""
    fire = (h - th) >= margin
    hard = (f32(0.0) if fire else f32(1.0)) + (f32(0.0) if detach else (vr - h) * sg)
    sub = f32(1.0) if detach else f32(1.0) - th * sg
    return sub if soft else hard


@numba.njit(**_GRAD_OPTS)
def _backward_row(
    sg_kind, soft, detach, ht, gst, gxt, carry, gh, n, th, margin, vr, alpha, gx_scale, carry_scale
):
    """One reverse time step of ``n`` neurons.

    ``g_h = g_s sg(h - th) + g_v dv/dh``; ``g_x = g_h dh/dx``; ``carry <- g_h dh/dv`` (``g_v`` of
    step t-1). ``gx_scale = dh/dx`` and ``carry_scale = dh/dv`` are constants of the charge
    equation.
    The variant flags are loop-invariant selects; only the surrogate chooses the loop.
    """
    if sg_kind == 0:
        # sigmoid: (1 - s) s alpha with s = 1 / (1 + exp(-alpha u)), written as alpha e / (1 + e)^2
        # with e = exp(-alpha |u|) <= 1 (it is even in u): fewer operations (~20% faster) and no
        # cancellation in 1 - s for large |u| (max error vs float64 4.5e-7 instead of 1.1e-6)
        for j in range(n):
            h = ht[j]
            y = -abs(alpha * (h - th))
            e = _exp(y if y > f32(-87.0) else f32(-87.0))
            d = f32(1.0) + e
            sg = alpha * e / (d * d)
            g = gst[j] * sg + carry[j] * _reset_grad(h, sg, th, margin, vr, soft, detach)
            gh[j] = g
            gxt[j] = g * gx_scale
            carry[j] = g * carry_scale
    elif sg_kind == 1:
        # atan: z = u * (pi/2 alpha), g = (alpha / 2) / (1 + z^2)
        c = f32(np.pi / 2 * alpha)
        half = f32(alpha / 2)
        for j in range(n):
            h = ht[j]
            z = (h - th) * c
            sg = half / (f32(1.0) + z * z)
            g = gst[j] * sg + carry[j] * _reset_grad(h, sg, th, margin, vr, soft, detach)
            gh[j] = g
            gxt[j] = g * gx_scale
            carry[j] = g * carry_scale
    else:
        # rectangular (code 2; the caller passes only the codes of fused.SURROGATE_CODES):
        # 1 / width inside |u| < width / 2
        half = f32(alpha / 2)
        inv = f32(1.0) / alpha
        for j in range(n):
            h = ht[j]
            sg = inv if abs(h - th) < half else f32(0.0)
            g = gst[j] * sg + carry[j] * _reset_grad(h, sg, th, margin, vr, soft, detach)
            gh[j] = g
            gxt[j] = g * gx_scale
            carry[j] = g * carry_scale


@numba.njit(**_OPTS)
def _leak_grad_row(kind, xt, vprev, gh, n, vr):
    """``sum_j g_h dh/dq`` for one step (PLIF's learnable ``q = 1/tau``), in float64."""
    acc = 0.0
    if kind == 3:
        for j in range(n):
            acc += np.float64(gh[j]) * np.float64(xt[j] - (vprev[j] - vr))
    else:
        for j in range(n):
            acc -= np.float64(gh[j]) * np.float64(vprev[j] - vr)
    return acc


@numba.njit(**_OPTS)
def backward(
    x,
    v0,
    grad_spikes,
    grad_v_last,
    grad_x,
    grad_v0,
    grad_q,
    lo_cols,
    hi_cols,
    kind,
    soft,
    detach,
    sg_kind,
    tau,
    q,
    th,
    margin,
    vr,
    alpha,
):
    """Gradients of :func:`forward` for columns ``lo_cols:hi_cols``.

    ``grad_spikes`` is ``[T, M]``, or ``[T, 1]`` when the spike gradient is the same for every
    neuron (e.g. the loss is ``spikes.sum()``), which saves materialising a broadcast.
    ``grad_v_last`` is dL/dv_T. Writes dL/dx into ``grad_x``, dL/dv_0 into ``grad_v0`` and, for
    PLIF, dL/dq (``q = 1/tau``) into ``grad_q[0]``.
    """
    T = x.shape[0]
    block = block_columns(T)
    plif = kind >= 3
    hbuf = np.empty((T, block), dtype=np.float32)
    vprev = np.empty((T, block) if plif else (1, 1), dtype=np.float32)
    srow = np.empty(block, dtype=np.float32)
    v = np.empty(block, dtype=np.float32)
    carry = np.empty(block, dtype=np.float32)
    gh = np.empty(block, dtype=np.float32)
    broadcast = grad_spikes.shape[1] == 1
    gs_row = np.empty(block, dtype=np.float32)
    # dh/dx and dh/dv of the charge equation (see _step_row)
    leak = f32(1.0) / tau if kind <= 1 else q
    gx_scale = leak if kind == 0 or kind == 3 else f32(1.0)
    carry_scale = f32(1.0) if kind == 2 else f32(1.0) - leak
    acc = 0.0
    for lo in range(lo_cols, hi_cols, block):
        hi = min(lo + block, hi_cols)
        n = hi - lo
        v[:n] = v0[lo:hi]
        carry[:n] = grad_v_last[lo:hi]
        for t in range(T):  # recompute h[t] with the forward's float32 operations
            if plif:
                vprev[t, :n] = v[:n]
            _step_row(kind, soft, x[t, lo:hi], v, hbuf[t], srow, n, tau, q, th, margin, vr)
        for t in range(T - 1, -1, -1):
            if broadcast:
                gs_row[:n] = grad_spikes[t, 0]
            gst = gs_row[:n] if broadcast else grad_spikes[t, lo:hi]
            _backward_row(
                sg_kind,
                soft,
                detach,
                hbuf[t],
                gst,
                grad_x[t, lo:hi],
                carry,
                gh,
                n,
                th,
                margin,
                vr,
                alpha,
                gx_scale,
                carry_scale,
            )
            if plif:
                acc += _leak_grad_row(kind, x[t, lo:hi], vprev[t], gh, n, vr)
        grad_v0[lo:hi] = carry[:n]
    grad_q[0] = acc


# --- the kernels over several column ranges at once, on numba's parallel threads ------------------
# Why not plain Python threads: in training a neuron layer follows torch operations, after which
# torch's idle OpenMP workers keep spinning on the cores for a while, and a plain worker thread
# shares its core with a spinner. numba's prange threads (its OpenMP layer) are hardly slowed by
# the spinners, so a neuron step after torch operations is faster with them (figures in
# docs/benchmarks.md).


@numba.njit(parallel=True, **_OPTS)
def forward_columns(x, v0, spikes, v_out, bounds, kind, soft, tau, q, th, margin, vr):
    """:func:`forward` over the column ranges ``bounds[p]:bounds[p + 1]``, in parallel."""
    for p in numba.prange(bounds.shape[0] - 1):
        forward(x, v0, spikes, v_out, bounds[p], bounds[p + 1], kind, soft, tau, q, th, margin, vr)


@numba.njit(parallel=True, **_OPTS)
def backward_columns(
    x,
    v0,
    grad_spikes,
    grad_v_last,
    grad_x,
    grad_v0,
    grad_q,
    bounds,
    kind,
    soft,
    detach,
    sg_kind,
    tau,
    q,
    th,
    margin,
    vr,
    alpha,
):
    """:func:`backward` over the column ranges ``bounds[p]:bounds[p + 1]`` in parallel; range ``p``
    writes its PLIF gradient into ``grad_q[p]``."""
    for p in numba.prange(bounds.shape[0] - 1):
        backward(
            x,
            v0,
            grad_spikes,
            grad_v_last,
            grad_x,
            grad_v0,
            grad_q[p : p + 1],
            bounds[p],
            bounds[p + 1],
            kind,
            soft,
            detach,
            sg_kind,
            tau,
            q,
            th,
            margin,
            vr,
            alpha,
        )

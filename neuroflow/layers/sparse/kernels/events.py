"""numba kernels of the event-driven sparse convolution: the work follows the spikes.

* :func:`spiking_rows`: the row test, which input rows have a non-zero entry (their bits
  OR-reduced as integer words);
* :func:`event_conv`, the forward: a row test, then each product of a spiking input's pair (listed
  block by block, without a branch per pair) is added into its output row in place, accumulated in
  vector registers (:func:`_make_block_gemv`); no gather, no scatter. On the transposed map it
  also makes the input gradient (see :mod:`neuroflow.layers.sparse.conv`);
* :func:`event_weight_grad`, ``grad_W`` over the spiking inputs' pairs: per offset, gathered rows
  of the input and of the output gradient, multiplied in vector registers by the same intrinsic.

Both scale with the spikes, where the batched path pays a fixed layout, gather and matmul cost per
call, and both split over numba's threads in large layers (``prange``), with the one-thread result
bit for bit. The forward and the weight gradient share the vector intrinsic, so they share this
file: numba's disk cache keys a kernel by the content of its own source file only, and a kernel in
another file would keep a stale copy of an edited intrinsic. Measurements behind each choice:
``docs/sparse_convolution.md``.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types as nb_types
from numba.core import cgutils
from numba.extending import intrinsic

from neuroflow.parallel import OPTS, compiled, run_split


def _numpy(t: torch.Tensor) -> np.ndarray:
    """The memory of CPU tensor ``t`` as a numpy array, copied only where ``t`` is not contiguous
    (detached only where it needs a gradient: a ``detach`` costs a fixed share of a small layer)."""
    if t.requires_grad:
        t = t.detach()
    return t.numpy() if t.is_contiguous() else t.contiguous().numpy()


@numba.njit(**OPTS)
def _nonzero_words(bits, magnitude, out):
    # OR of each row's words, then drop the sign bits: -0.0 counts as zero. Indexing the flat
    # array (not bits[i, c]) lets LLVM vectorise the row. Returns the count.
    width = bits.shape[1]
    flat = bits.reshape(-1)
    count = 0
    for i in range(bits.shape[0]):
        acc = np.int64(0)  # int32 words sign-extend into it; the mask keeps their low 31 bits
        for c in range(width):
            acc |= flat[i * width + c]
        out[i] = (acc & magnitude) != 0
        count += out[i]
    return count


@numba.njit(**OPTS)
def _nonzero_rows(x, out):
    # rows of x [N, C] (float32/64, C-contiguous, C >= 1) read as integer words: int64 where the
    # row allows (two float32 lanes per word: half the loads of int32). Returns the count.
    if x.itemsize == 8:
        return _nonzero_words(x.view(np.int64), np.int64(0x7FFFFFFFFFFFFFFF), out)
    if x.shape[1] % 2 == 0:
        return _nonzero_words(x.view(np.int64), np.int64(0x7FFFFFFF7FFFFFFF), out)
    return _nonzero_words(x.view(np.int32), np.int32(0x7FFFFFFF), out)


# The parallel bodies below keep array expressions and numpy reductions (np.zeros, a.sum(),
# np.max, arithmetic on arrays) out of their own code and call these plain functions instead:
# numba's parallel compiler turns each such expression into a parallel region of its own, a
# hand-off of a few microseconds (the event forward at 10% spiking voxels had six regions where
# two do).


@numba.njit(**OPTS)
def _total(counts):
    return counts.sum()


@numba.njit(**OPTS)
def _largest_gap(ptr):
    """Largest ``ptr[k + 1] - ptr[k]`` (0 for fewer than two entries)."""
    return np.max(ptr[1:] - ptr[:-1]) if ptr.shape[0] > 1 else 0


def _spiking_rows_body(x, active, parts):
    # the row test split into `parts` ranges of rows; returns the count
    counts = np.empty(parts, np.int64)
    for t in numba.prange(parts):
        lo, hi = _part(x.shape[0], t, parts)
        counts[t] = _nonzero_rows(x[lo:hi], active[lo:hi])
    return _total(counts)


#: :func:`spiking_rows` splits over numba's threads from this many elements (2 MiB of float32);
#: below it a parallel step's hand-off eats the gain
_ROW_TEST_PARALLEL_MIN = 1 << 19


def spiking_rows(x: torch.Tensor, threads: int = 1) -> tuple[torch.Tensor, int]:
    """``([N] bool, count)``: the rows of ``x [N, C]`` with a non-zero entry, and how many; large
    inputs on up to ``threads`` of numba's threads. An OR-reduction of the rows' bits read as
    integer words, many times faster than ``x.ne(0).any(1)``; -0.0 counts as zero.
    """
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.shape[1] == 0:
        out = x.ne(0).any(1)
        return out, int(out.sum())
    out = torch.empty(x.shape[0], dtype=torch.bool)
    count = run_split(
        _spiking_rows,
        _spiking_rows_parallel,
        threads if x.numel() >= _ROW_TEST_PARALLEL_MIN else 1,
        _numpy(x),
        out.numpy(),
    )
    return out, int(count)


def nonzero_rows(x: torch.Tensor) -> torch.Tensor:
    """``[N]`` bool: rows of ``x [N, C]`` with a non-zero entry (see :func:`spiking_rows`)."""
    return spiking_rows(x)[0]


# --- the event kernels ---
# Each splits into ``parts`` independent ranges (prange: numba's threads when compiled with
# parallel=True, a plain loop otherwise), and every split gives the serial result bit for bit: each
# output row (or weight offset) is summed by one part, in the serial order.


@numba.njit(inline="always", **OPTS)
def _part(n, t, parts):
    """Range ``[lo, hi)`` of part ``t`` of ``parts`` over ``n`` items."""
    return n * t // parts, n * (t + 1) // parts


# --- y[q] += x[i] @ w[o] for one pair: a numba intrinsic, its accumulators in vector registers ---
# Why an intrinsic: written as numba loops, the same product ran at a fraction of a GEMM's rate
# (LLVM kept the accumulators in memory, or could not vectorise the fully unrolled loop for fear
# of aliasing between the output row and ``w``). Here each column block of ``8 n`` outputs is
# ``n`` vectors of 8 lanes held in registers over the whole ``Cin`` loop: one broadcast of
# ``x[i, k]`` and ``n`` vector multiply-adds per input channel (``llvm.fmuladd``: a fused
# multiply-add where the CPU has one): about the rate of a BLAS GEMM of a few dozen rows, without
# gathering the rows first or scattering the products.
# It lives in the file of every kernel that inlines it on purpose: numba's disk cache keys a
# kernel's compiled code by the content of the kernel's own source file, so an intrinsic edited in
# another file would leave the cached kernels that inline it stale (touching this file does not
# help either: the key is a content hash).

#: lanes per vector (8 float32 = one AVX register; LLVM splits or joins them for other widths)
_LANES = 8


def _block_gemv_codegen(vectors: int, rows: int, shared: bool, columns: bool):
    """Code of ``y[q_r, c0:c0 + 8 vectors] += x[i_r, :] @ w[o_r, :, c0:c0 + 8 vectors]`` for
    ``rows`` products (arguments ``y, x, w, c0, (q_1, i_1, o_1, q_2, ...)``), interleaved per input
    channel. Each product's accumulator chain is as long as ``Cin`` fused multiply-adds, which is
    what bounds one product; products into different rows in flight together measured faster, with
    the same bits (see :data:`_FOUR_PRODUCTS_MAX_COLUMNS`). ``shared``: every product takes
    ``o_1`` (the caller checked that the offsets are equal), so each vector of ``w[o, k]`` is loaded
    once for all of them: a product's loads, not its multiply-adds, are what bound it otherwise (two
    loads per cycle; see :func:`_listed_products`). ``columns``: ``x`` is read by columns,
    ``x[:, i_r]`` (the weight gradient, :func:`event_weight_grad`)."""

    def codegen(context, builder, signature, args):
        y_a, x_a, w_a = (
            context.make_array(signature.args[k])(context, builder, args[k]) for k in range(3)
        )
        dtype = signature.args[1].dtype
        vec = ir.VectorType(context.get_data_type(dtype), _LANES)

        def index(value):
            return ir.Constant(cgutils.intp_t, value)

        cin = builder.extract_value(w_a.shape, 1)  # the length of each product's sum
        cout = builder.extract_value(w_a.shape, 2)
        x_width = builder.extract_value(x_a.shape, 1)
        c0, qio = args[3], args[4]
        products = []
        for r in range(rows):
            q, i, o = (
                builder.extract_value(qio, 3 * (0 if shared and k == 2 else r) + k)
                for k in range(3)
            )
            products.append(
                (
                    builder.gep(x_a.data, [i if columns else builder.mul(i, cin)]),
                    builder.gep(
                        w_a.data, [builder.add(builder.mul(o, builder.mul(cin, cout)), c0)]
                    ),
                    builder.gep(y_a.data, [builder.add(builder.mul(q, cout), c0)]),
                    # stack slots in the entry block: LLVM promotes them to registers
                    [cgutils.alloca_once(builder, vec) for _ in range(vectors)],
                )
            )

        def as_vec(pointer, j):
            return builder.bitcast(builder.gep(pointer, [index(_LANES * j)]), vec.as_pointer())

        for _, _, y_block, slots in products:
            for j, slot in enumerate(slots):
                builder.store(builder.load(as_vec(y_block, j), align=1), slot)
        name = f"llvm.fmuladd.v{_LANES}{'f32' if dtype.bitwidth == 32 else 'f64'}"
        fmuladd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vec, [vec] * 3), name
        )
        lane0 = ir.Constant(ir.IntType(32), 0)
        broadcast = ir.Constant(ir.VectorType(ir.IntType(32), _LANES), [0] * _LANES)
        with cgutils.for_range(builder, cin) as loop:
            shared_w = None
            for x_row, w_block, _, slots in products:
                xk = builder.load(
                    builder.gep(
                        x_row, [builder.mul(loop.index, x_width) if columns else loop.index]
                    )
                )
                xk = builder.shuffle_vector(
                    builder.insert_element(ir.Constant(vec, ir.Undefined), xk, lane0),
                    ir.Constant(vec, ir.Undefined),
                    broadcast,
                )
                if shared_w is None:
                    w_row = builder.gep(w_block, [builder.mul(loop.index, cout)])
                    w_k = [builder.load(as_vec(w_row, j), align=1) for j in range(vectors)]
                    if shared:  # one load of w[o, k] per vector serves every product
                        shared_w = w_k
                else:
                    w_k = shared_w
                for slot, wk in zip(slots, w_k):
                    builder.store(builder.call(fmuladd, [xk, wk, builder.load(slot)]), slot)
        for _, _, y_block, slots in products:
            for j, slot in enumerate(slots):
                builder.store(builder.load(slot), as_vec(y_block, j), align=1)
        return context.get_dummy_value()

    return codegen


def _make_block_gemv(vectors: int, shared: bool = False, columns: bool = False):
    """The intrinsic ``block_gemv(y, x, w, c0, qio)``: for each triple ``(q, i, o)`` of the int
    tuple ``qio``, ``y[q, c0:c0 + 8 vectors] += x[i, :] @ w[o, :, c0:c0 + 8 vectors]`` (with
    ``columns``: ``x[:, i]``), all in flight together, for C-contiguous ``y [M, Cout]``,
    ``x [N, Cin]`` (``[Cin, N]``), ``w [K, Cin, Cout]`` of one float dtype. The caller guarantees
    ``c0 + 8 vectors <= Cout`` and different rows ``q`` (and, for ``shared`` or ``columns``, equal
    offsets ``o``)."""

    @intrinsic
    def block_gemv(typingctx, y, x, w, c0, qio):
        arrays = ((y, 2), (x, 2), (w, 3))
        if not all(
            isinstance(a, nb_types.Array) and a.layout == "C" and a.ndim == n for a, n in arrays
        ):
            return None
        if not (y.dtype == x.dtype == w.dtype and isinstance(x.dtype, nb_types.Float)):
            return None
        if not (
            isinstance(qio, nb_types.UniTuple)
            and isinstance(qio.dtype, nb_types.Integer)
            and len(qio) % 3 == 0
        ):
            return None
        sig = nb_types.void(y, x, w, nb_types.intp, nb_types.UniTuple(nb_types.intp, len(qio)))
        return sig, _block_gemv_codegen(vectors, len(qio) // 3, shared or columns, columns)

    return block_gemv


_block_gemv32 = _make_block_gemv(4)  # 32 columns
_block_gemv16 = _make_block_gemv(2)
_block_gemv8 = _make_block_gemv(1)
_block_gemv32_shared = _make_block_gemv(4, shared=True)
_block_gemv16_shared = _make_block_gemv(2, shared=True)
_block_gemv8_shared = _make_block_gemv(1, shared=True)
_block_gemv32_columns = _make_block_gemv(4, columns=True)
_block_gemv16_columns = _make_block_gemv(2, columns=True)
_block_gemv8_columns = _make_block_gemv(1, columns=True)


@numba.njit(inline="always", **OPTS)
def _products(y, x, w, qio, shared, columns):
    # y[q] += x[i] @ w[o] for each triple (q, i, o) of qio (different rows q), in flight together:
    # 32-column blocks for one or two products (four would need more than the 16 vector
    # registers), then 16- and 8-column blocks, the last Cout % 8 columns as plain loops
    cout = w.shape[2]
    c = 0
    if len(qio) <= 6:
        while c + 32 <= cout:
            if columns:
                _block_gemv32_columns(y, x, w, c, qio)
            elif shared:
                _block_gemv32_shared(y, x, w, c, qio)
            else:
                _block_gemv32(y, x, w, c, qio)
            c += 32
    while c + 16 <= cout:
        if columns:
            _block_gemv16_columns(y, x, w, c, qio)
        elif shared:
            _block_gemv16_shared(y, x, w, c, qio)
        else:
            _block_gemv16(y, x, w, c, qio)
        c += 16
    if c + 8 <= cout:
        if columns:
            _block_gemv8_columns(y, x, w, c, qio)
        elif shared:
            _block_gemv8_shared(y, x, w, c, qio)
        else:
            _block_gemv8(y, x, w, c, qio)
        c += 8
    if c < cout:
        for r in range(0, len(qio), 3):
            q, i, o = qio[r], qio[r + 1], qio[r + 2]
            for k in range(w.shape[1]):
                xk = x[k, i] if columns else x[i, k]
                for j in range(c, cout):
                    y[q, j] += xk * w[o, k, j]


#: up to this many output columns the event kernel computes four products at a time, else two:
#: ~8 accumulator vectors in flight either way (more would spill out of the 16 vector registers)
_FOUR_PRODUCTS_MAX_COLUMNS = 16


@numba.njit(inline="always", **OPTS)
def _listed_products(y, x, w, pair_out, pair_in, pair_offset, listed, n):
    # the products of pairs listed[:n], in order, four (narrow outputs) or two at a time where
    # their output rows differ (each output row still adds its products in list order), loading
    # the weights once where their offsets are equal too (a block's pairs come by offset: the
    # loads, not the multiply-adds, bound a product)
    four = w.shape[2] <= _FOUR_PRODUCTS_MAX_COLUMNS
    j = 0
    while j < n:
        a = np.uint32(listed[j])
        qa = pair_out[a]
        if four and j + 3 < n:
            b, c, d = np.uint32(listed[j + 1]), np.uint32(listed[j + 2]), np.uint32(listed[j + 3])
            qb, qc, qd = pair_out[b], pair_out[c], pair_out[d]
            if qa != qb and qa != qc and qa != qd and qb != qc and qb != qd and qc != qd:
                oa = pair_offset[a]
                _products(
                    y,
                    x,
                    w,
                    (
                        qa,
                        pair_in[a],
                        oa,
                        qb,
                        pair_in[b],
                        pair_offset[b],
                        qc,
                        pair_in[c],
                        pair_offset[c],
                        qd,
                        pair_in[d],
                        pair_offset[d],
                    ),
                    oa == pair_offset[b] and oa == pair_offset[c] and oa == pair_offset[d],
                    False,
                )
                j += 4
                continue
        if j + 1 < n and pair_out[np.uint32(listed[j + 1])] != qa:
            b = np.uint32(listed[j + 1])
            _products(
                y,
                x,
                w,
                (qa, pair_in[a], pair_offset[a], pair_out[b], pair_in[b], pair_offset[b]),
                pair_offset[a] == pair_offset[b],
                False,
            )
            j += 2
            continue
        _products(y, x, w, (qa, pair_in[a], pair_offset[a]), False, False)
        j += 1


@numba.njit(**OPTS)
def _even_split(block_ptr, parts):
    """Block bounds ``[parts + 1]`` that split the pairs (``block_ptr``) evenly over the parts (deep
    layers have few blocks)."""
    bounds = np.searchsorted(block_ptr, np.arange(parts + 1) * block_ptr[-1] // parts)
    bounds[-1] = block_ptr.shape[0] - 1
    return bounds


@numba.njit(**OPTS)
def _deal_offsets(offset_ptr, parts):
    """The part ``[K]`` that sums each offset: largest offsets first, each to the least loaded
    part."""
    sizes = offset_ptr[1:] - offset_ptr[:-1]
    owner = np.empty(sizes.shape[0], np.int64)
    load = np.zeros(parts, np.int64)
    for o in np.argsort(-sizes, kind="mergesort"):
        t = np.argmin(load)
        owner[o] = t
        load[t] += sizes[o]
    return owner


def _event_conv_body(
    x,
    w,
    block_ptr,
    pair_offset,
    pair_out,
    pair_in,
    block,
    num_out,
    max_active,
    active,
    count,
    parts,
):
    # the forward in one numba call: (y, active, True), or (an empty y, active, False) when more
    # than max_active rows spiked; the row test runs here unless the caller gives its result
    # (active [N] and count >= 0). The pairs come in blocks of `block` output rows, by
    # offset within a block. Per block: zero its output rows (they stay in L1 for the products),
    # list the pairs whose input spiked, then add each listed product into its output row in
    # place, two or four at a time (:func:`_listed_products`). Every output row adds its products
    # in offset order, and parts own whole blocks, so any split gives the same bits.
    if count < 0:
        active = np.empty(x.shape[0], np.bool_)
        count = _spiking_rows(x, active, parts)
    if count > max_active:
        return np.empty((0, w.shape[2]), x.dtype), active, False
    y = np.empty((num_out, w.shape[2]), x.dtype)
    flat = y.reshape(-1)
    cout = w.shape[2]
    bounds = _even_split(block_ptr, parts)
    most = _largest_gap(block_ptr)
    every = count == x.shape[0]
    for t in numba.prange(parts):
        listed = np.empty(most, np.int32)
        for b in range(bounds[t], bounds[t + 1]):
            flat[b * block * cout : min((b + 1) * block, num_out) * cout] = 0
            # list the spiking pairs without a branch, then the products: a branch per pair, taken
            # at random, cost more than the listing pass
            n = 0
            if every:
                for p in range(block_ptr[b], block_ptr[b + 1]):
                    listed[n] = p
                    n += 1
            else:  # unsigned indices: numba tests signed ones for a negative wraparound
                for p in range(np.uintp(block_ptr[b]), np.uintp(block_ptr[b + 1])):
                    listed[n] = p
                    n += active[np.uint32(pair_in[p])]
            _listed_products(y, x, w, pair_out, pair_in, pair_offset, listed, n)
    return y, active, True


#: pairs per gathered chunk of :func:`event_weight_grad` (32 channels: 32 KiB of input rows)
_WEIGHT_GRAD_CHUNK = 256


def _weight_grad_body(x, g, in_idx, out_idx, offset_ptr, active, every, grad_w, parts):
    # grad_w[o] = sum over offset o's pairs whose input spiked (every: all pairs) of x[i]^T g[q].
    # Offsets are dealt largest first to the least loaded part; per offset, its spiking pairs are
    # listed, then chunk by chunk their rows of x and g gathered and each row k of grad_w[o]
    # accumulated as x_rows[:, k] @ g_rows, several rows k at a time sharing g_rows' loads
    cin, cout = x.shape[1], g.shape[1]
    num_offsets = offset_ptr.shape[0] - 1
    owner = _deal_offsets(offset_ptr, parts)
    most = _largest_gap(offset_ptr)
    four = cout <= _FOUR_PRODUCTS_MAX_COLUMNS
    for t in numba.prange(parts):
        listed = np.empty(most, np.int64)
        x_rows = np.empty(_WEIGHT_GRAD_CHUNK * cin, x.dtype)
        g_rows = np.empty(_WEIGHT_GRAD_CHUNK * cout, g.dtype)
        for o in range(num_offsets):
            if owner[o] != t:
                continue
            gw = grad_w[o]
            gw[:] = 0
            m = 0
            for p in range(np.uintp(offset_ptr[o]), np.uintp(offset_ptr[o + 1])):
                listed[m] = p
                m += every or active[np.uintp(in_idx[p])]
            for first in range(0, m, _WEIGHT_GRAD_CHUNK):
                n = min(_WEIGHT_GRAD_CHUNK, m - first)
                xr = x_rows[: n * cin].reshape(n, cin)
                gr = g_rows[: n * cout].reshape(1, n, cout)
                for r in range(n):
                    p = np.uintp(listed[first + r])
                    i, q = np.uintp(in_idx[p]), np.uintp(out_idx[p])
                    for k in range(cin):  # element loops: row slices were slower here
                        xr[r, k] = x[i, k]
                    for j in range(cout):
                        gr[0, r, j] = g[q, j]
                k = 0
                while four and k + 3 < cin:
                    _products(
                        gw,
                        xr,
                        gr,
                        (k, k, 0, k + 1, k + 1, 0, k + 2, k + 2, 0, k + 3, k + 3, 0),
                        True,
                        True,
                    )
                    k += 4
                while k + 1 < cin:
                    _products(gw, xr, gr, (k, k, 0, k + 1, k + 1, 0), True, True)
                    k += 2
                if k < cin:
                    _products(gw, xr, gr, (k, k, 0), True, True)


_spiking_rows = compiled(_spiking_rows_body, "_spiking_rows")
_spiking_rows_parallel = compiled(_spiking_rows_body, "_spiking_rows_parallel", parallel=True)
_event_conv = compiled(_event_conv_body, "_event_conv")
_weight_grad = compiled(_weight_grad_body, "_weight_grad")
_weight_grad_parallel = compiled(_weight_grad_body, "_weight_grad_parallel", parallel=True)
_event_conv_parallel = compiled(
    _event_conv_body, "_event_conv_parallel", parallel=True, _spiking_rows=_spiking_rows_parallel
)


#: below this many multiply-adds (over all pairs) a layer runs on one thread: each of its few
#: parallel steps costs a hand-off of microseconds
_EVENT_PARALLEL_MIN_MACS = 1 << 20


def _event_threads(pairs: int, w: np.ndarray, threads: int) -> int:
    """Threads for an event-driven layer of ``pairs`` pairs: 1 below ``_EVENT_PARALLEL_MIN_MACS``
    multiply-adds, else ``threads`` (as :func:`~neuroflow.parallel.numba_parallel` allows)."""
    return threads if pairs * w.shape[1] * w.shape[2] >= _EVENT_PARALLEL_MIN_MACS else 1


#: the empty row mask the kernels take where the caller has none (event_conv: the row test is yet
#: to run; the weight gradient: every row counts)
_NOT_TESTED = np.empty(0, np.bool_)


def event_conv(
    x: torch.Tensor,
    w: torch.Tensor,
    pairs: tuple,
    block: int,
    num_out: int,
    threads: int,
    max_active: int,
    rows: tuple[torch.Tensor, int] | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The event-driven forward, if at most ``max_active`` rows of ``x`` spiked: ``(y [num_out,
    Cout], active [N])``; else ``(None, active)``, the row test for the caller's other path. No
    autograd. ``rows``: the row test's ``(active, count)`` (:func:`spiking_rows`) if the caller has
    it, else it runs here.

    ``y[q] = sum over q's pairs (i, o) whose input spiked of x[i] @ w[o]``, the pairs given in
    blocks of ``block`` output rows, by offset within a block (``arrays`` of
    :attr:`~neuroflow.layers.sparse.kernel_map.KernelMap.by_output`: ``block_ptr``, ``pair_offset``,
    ``pair_out``, ``pair_in``). Each product is added into its output row in place, accumulated in
    vector registers (:func:`_make_block_gemv`), so the work is the spiking inputs' pairs
    plus one pass over the inputs (row test), the pairs and the outputs. Large layers split the
    output blocks over numba's threads, with the one-thread result bit for bit. ``x [N, Cin]``,
    ``w [K, Cin, Cout]`` of one CPU float dtype.
    """
    x_np, w_np = _numpy(x), _numpy(w)
    active, count = (_NOT_TESTED, -1) if rows is None else (rows[0].numpy(), rows[1])
    y, active, done = run_split(
        _event_conv,
        _event_conv_parallel,
        _event_threads(pairs[1].shape[0], w_np, threads),
        x_np,
        w_np,
        *pairs,
        block,
        num_out,
        max_active,
        active,
        count,
    )
    return (torch.from_numpy(y) if done else None), (
        torch.from_numpy(active) if rows is None else rows[0]
    )


def event_weight_grad(
    x: torch.Tensor,
    grad_y: torch.Tensor,
    active: torch.Tensor | None,
    kmap_arrays: tuple,
    threads: int,
) -> torch.Tensor:
    """``grad_W [K, Cin, Cout]``, ``grad_W[o] = sum over offset o's pairs (i, q) whose input spiked
    of x[i]^T grad_y[q]`` (a silent row adds nothing); no autograd. ``x [N, Cin]``, ``grad_y [M,
    Cout]`` of one CPU float dtype; ``active [N]`` bool (None: every row); ``kmap_arrays``: the
    map's ``(in_idx, out_idx, offset_ptr)`` (pairs by offset) as numpy arrays.

    Per offset, chunks of its spiking pairs' rows of ``x`` and ``grad_y`` are gathered, and each
    row ``k`` of ``grad_W[o]`` is one product ``x_rows[:, k] @ g_rows`` accumulated in vector
    registers, two or four rows at a time sharing the loads of ``g_rows`` (:func:`_make_block_gemv`
    with ``columns``). Offsets are dealt to numba's threads largest first, each summed by one
    thread in pair order, so the result does not depend on the split.
    """
    in_idx, out_idx, offset_ptr = kmap_arrays
    g = _numpy(grad_y)
    grad_w = np.empty((offset_ptr.shape[0] - 1, x.shape[1], g.shape[1]), g.dtype)
    every = active is None
    run_split(
        _weight_grad,
        _weight_grad_parallel,
        _event_threads(in_idx.shape[0], grad_w, threads),
        _numpy(x),
        g,
        in_idx,
        out_idx,
        offset_ptr,
        _NOT_TESTED if every else active.numpy(),
        every,
        grad_w,
    )
    return torch.from_numpy(grad_w)

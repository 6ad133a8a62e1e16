"""numba loops of sparse convolution that beat tensor operations on the CPU.

* :func:`scatter_add_rows`, ``y[index[p]] += rows[p]``, the last step of every sparse convolution:
  measured ~0.04 ms for 7,000 rows of 32 floats, where ``Tensor.index_add_`` took 0.27 ms at best
  and, with 2 intra-op threads on a loaded 2-core machine, a median of 160 ms. One thread writes
  the rows in order, so the result does not depend on the thread count. Other devices (and dtypes
  numba does not take) use ``index_add_``.
* :func:`padded_layout`: the padded per-offset pair layout of
  :class:`~neuroflow.layers.sparse.kernel_map.GroupedPairs` (blocks of offsets of similar length) in two
  passes over the pairs (count, fill);
  as tensor operations it took ~15 calls, too many for the event-driven path, which rebuilds it
  on every call.
* :func:`event_conv`, the event-driven forward: a row test, then each product of a spiking
  input's pair (listed block by block, without a branch per pair) is added into its output row in
  place, accumulated in vector registers (:func:`_make_block_gemv`); no gather, no scatter.
  Against a gather-GEMM-scatter form (same process, 8,192 random voxels 32 -> 32, pairs then
  ordered by output row): 0.42 against 0.49 ms at 50% spiking voxels, 0.23 against 0.25 ms at 10%;
  ordering the pairs in blocks of output rows (:data:`~neuroflow.layers.sparse.kernel_map.OUTPUT_BLOCK`)
  took another 8-12% off at 10%. At 0% it costs ~0.06-0.08 ms (the row test over the input,
  zeroing the output, the pass over the pairs). It also makes the input gradient on the
  transposed map (see :mod:`neuroflow.layers.sparse.conv`).
* :func:`event_weight_grad`, ``grad_W`` over the spiking inputs' pairs: per offset, gathered rows
  of the input and of the output gradient, multiplied in vector registers by the same intrinsic.

Both scale with the spikes, where the batched path pays a fixed layout, gather and matmul cost per
call, and both split over numba's threads in large layers (``prange``, a ~4 us hand-off where a
plain thread's took 0.1-0.3 ms), with the one-thread result bit for bit.
"""

from __future__ import annotations

import types

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types as nb_types
from numba.core import cgutils
from numba.extending import intrinsic

from neuroflow.errors import InvalidArgumentError
from neuroflow.parallel import numba_parallel

_OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")


def _numpy(t: torch.Tensor) -> np.ndarray:
    """The memory of CPU tensor ``t`` as a numpy array, copied only where ``t`` is not contiguous
    (without the ``detach`` a tensor that needs no gradient does not need: ~0.4 us of a layer call
    whose kernel, at 10% spiking voxels, takes ~0.1 ms)."""
    if t.requires_grad:
        t = t.detach()
    return t.numpy() if t.is_contiguous() else t.contiguous().numpy()


@numba.njit(**_OPTS)
def _add_rows(y, index, rows, lo, hi):
    # y[index[g P + p]] += rows[g, p] for the targets in [lo, hi); rows [G, P, C] of any strides (a
    # transposed product read in place). Each target row adds its rows in order, so a split of the
    # targets into ranges gives the same sums.
    block = rows.shape[1]
    for g in range(rows.shape[0]):
        for p in range(block):
            q = index[g * block + p]
            if lo <= q < hi:
                for c in range(y.shape[1]):
                    y[q, c] += rows[g, p, c]


def scatter_add_rows(y: torch.Tensor, index: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """In place ``y[index[p]] += rows[p]`` for ``y [M, C]``, ``index [P]`` int64 and ``rows [P, C]``,
    or ``rows [G, P', C]`` of any strides whose row ``g P' + p'`` goes to ``index[g P' + p']``
    (e.g. a transposed batched product, read in place); returns ``y``.

    ``y`` must be contiguous; no autograd (used inside hand-written forward/backward passes).
    """
    if y.device.type == "cpu" and y.dtype in (torch.float32, torch.float64) and y.is_contiguous():
        blocks = rows.numpy() if rows.dim() == 3 else rows.contiguous().numpy()[None]
        _add_rows(y.numpy(), index.contiguous().numpy(), blocks, 0, y.shape[0])
        return y
    return y.index_add_(0, index, rows.reshape(-1, rows.shape[-1]))


@numba.njit(**_OPTS)
def _nonzero_words(bits, magnitude, out):
    # OR of each row's words, then drop the sign bits: -0.0 counts as zero. Indexing the flat
    # array (not bits[i, c]) lets LLVM vectorise the row: measured 1.7-3x faster. Returns the count.
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


@numba.njit(**_OPTS)
def _nonzero_rows(x, out):
    # rows of x [N, C] (float32/64, C-contiguous, C >= 1) read as integer words: int64 where the
    # row allows (two float32 lanes per word), 2-3x faster than int32. Returns the count.
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


@numba.njit(**_OPTS)
def _total(counts):
    return counts.sum()


@numba.njit(**_OPTS)
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


#: :func:`spiking_rows` splits over numba's threads from this many elements (2 MiB of float32):
#: measured with 10% spiking rows of 32 float32, 1 / 2 threads, 69 / 65 us at 1 MiB (a parallel
#: step's hand-off eats the gain), 198 / 131 us at 4 MiB
_ROW_TEST_PARALLEL_MIN = 1 << 19


def spiking_rows(x: torch.Tensor, threads: int = 1) -> tuple[torch.Tensor, int]:
    """``([N] bool, count)``: the rows of ``x [N, C]`` with a non-zero entry, and how many; large
    inputs on up to ``threads`` of numba's threads.

    ``x.ne(0).any(1)`` measured 0.8 ms for 8,192 x 32 floats; this OR-reduction of the bits, read
    as int64 words, ~0.02 ms.
    """
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or x.shape[1] == 0:
        out = x.ne(0).any(1)
        return out, int(out.sum())
    out = torch.empty(x.shape[0], dtype=torch.bool)
    count = _run_split(_spiking_rows, _spiking_rows_parallel, threads if x.numel() >= _ROW_TEST_PARALLEL_MIN else 1,
                       _numpy(x), out.numpy())
    return out, int(count)


def nonzero_rows(x: torch.Tensor) -> torch.Tensor:
    """``[N]`` bool: rows of ``x [N, C]`` with a non-zero entry (see :func:`spiking_rows`)."""
    return spiking_rows(x)[0]


# --- the event kernels ---
# Each splits into ``parts`` independent ranges (prange: numba's threads when compiled with
# parallel=True, a plain loop otherwise), and every split gives the serial result bit for bit: each
# output row (or weight offset) is summed by one part, in the serial order.


@numba.njit(inline="always", **_OPTS)
def _part(n, t, parts):
    """Range ``[lo, hi)`` of part ``t`` of ``parts`` over ``n`` items."""
    return n * t // parts, n * (t + 1) // parts


# --- y[q] += x[i] @ w[o] for one pair, as a numba intrinsic with its accumulators in vector registers ---
# Why an intrinsic: written as numba loops, the same product ran at 1.4-6 GMAC/s on the 2-core
# development VM (LLVM kept the accumulators in memory, or could not vectorise the fully unrolled
# loop for fear of aliasing between the output row and ``w``). Here each column block of ``8 n``
# outputs is ``n`` vectors of 8 lanes held in registers over the whole ``Cin`` loop: one broadcast of
# ``x[i, k]`` and ``n`` vector multiply-adds per input channel (``llvm.fmuladd``: a fused multiply-add
# where the CPU has one). Measured 11-13 GMAC/s per thread for 32 -> 32 channels, the speed of
# OpenBLAS's GEMMs of 25-54 rows on the same machine, without gathering the rows first or
# scattering the products.
# It lives in this file on purpose: numba's disk cache keys a kernel's compiled code by the content
# of the kernel's own source file, so an intrinsic edited in another file would leave the cached
# kernels that inline it stale (touching this file does not help either: the key is a content hash).

#: lanes per vector (8 float32 = one AVX register; LLVM splits or joins them for other widths)
_LANES = 8


def _block_gemv_codegen(vectors: int, rows: int, shared: bool, columns: bool):
    """Code of ``y[q_r, c0:c0 + 8 vectors] += x[i_r, :] @ w[o_r, :, c0:c0 + 8 vectors]`` for ``rows``
    products (arguments ``y, x, w, c0, (q_1, i_1, o_1, q_2, ...)``), interleaved per input channel.
    Each product's accumulator chain is as long as ``Cin`` fused multiply-adds, which is what bounds
    one product; products into different rows in flight together measured faster, with the same
    bits (see :data:`_FOUR_PRODUCTS_MAX_COLUMNS`). ``shared``: every product takes ``o_1`` (the
    caller checked that the offsets are equal), so each vector of ``w[o, k]`` is loaded once for all
    of them: a product's loads, not its multiply-adds, are what bound it otherwise (two loads per
    cycle; see :func:`_listed_products`). ``columns``: ``x`` is read by columns, ``x[:, i_r]``
    (the weight gradient, :func:`event_weight_grad`)."""

    def codegen(context, builder, signature, args):
        y_a, x_a, w_a = (context.make_array(signature.args[k])(context, builder, args[k]) for k in range(3))
        dtype = signature.args[1].dtype
        vec = ir.VectorType(context.get_data_type(dtype), _LANES)
        index = lambda value: ir.Constant(cgutils.intp_t, value)
        cin = builder.extract_value(w_a.shape, 1)  # the length of each product's sum
        cout = builder.extract_value(w_a.shape, 2)
        x_width = builder.extract_value(x_a.shape, 1)
        c0, qio = args[3], args[4]
        products = []
        for r in range(rows):
            q, i, o = (builder.extract_value(qio, 3 * (0 if shared and k == 2 else r) + k) for k in range(3))
            products.append((builder.gep(x_a.data, [i if columns else builder.mul(i, cin)]),
                             builder.gep(w_a.data, [builder.add(builder.mul(o, builder.mul(cin, cout)), c0)]),
                             builder.gep(y_a.data, [builder.add(builder.mul(q, cout), c0)]),
                             # stack slots in the entry block: LLVM promotes them to registers
                             [cgutils.alloca_once(builder, vec) for _ in range(vectors)]))
        as_vec = lambda pointer, j: builder.bitcast(builder.gep(pointer, [index(_LANES * j)]), vec.as_pointer())
        for _, _, y_block, slots in products:
            for j, slot in enumerate(slots):
                builder.store(builder.load(as_vec(y_block, j), align=1), slot)
        name = f"llvm.fmuladd.v{_LANES}{'f32' if dtype.bitwidth == 32 else 'f64'}"
        fmuladd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3), name)
        lane0 = ir.Constant(ir.IntType(32), 0)
        broadcast = ir.Constant(ir.VectorType(ir.IntType(32), _LANES), [0] * _LANES)
        with cgutils.for_range(builder, cin) as loop:
            shared_w = None
            for x_row, w_block, _, slots in products:
                xk = builder.load(builder.gep(x_row, [builder.mul(loop.index, x_width) if columns else loop.index]))
                xk = builder.shuffle_vector(builder.insert_element(ir.Constant(vec, ir.Undefined), xk, lane0),
                                            ir.Constant(vec, ir.Undefined), broadcast)
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
    """The intrinsic ``block_gemv(y, x, w, c0, qio)``: for each triple ``(q, i, o)`` of the int tuple
    ``qio``, ``y[q, c0:c0 + 8 vectors] += x[i, :] @ w[o, :, c0:c0 + 8 vectors]`` (with ``columns``:
    ``x[:, i]``), all in flight together, for C-contiguous ``y [M, Cout]``, ``x [N, Cin]`` (``[Cin,
    N]``), ``w [K, Cin, Cout]`` of one float dtype. The caller guarantees ``c0 + 8 vectors <= Cout``
    and different rows ``q`` (and, for ``shared`` or ``columns``, equal offsets ``o``)."""

    @intrinsic
    def block_gemv(typingctx, y, x, w, c0, qio):
        arrays = ((y, 2), (x, 2), (w, 3))
        if not all(isinstance(a, nb_types.Array) and a.layout == "C" and a.ndim == n for a, n in arrays):
            return None
        if not (y.dtype == x.dtype == w.dtype and isinstance(x.dtype, nb_types.Float)):
            return None
        if not (isinstance(qio, nb_types.UniTuple) and isinstance(qio.dtype, nb_types.Integer) and len(qio) % 3 == 0):
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


@numba.njit(inline="always", **_OPTS)
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
#: ~8 accumulator vectors in flight either way. 8,192 random voxels, 2 threads: two products
#: against one, 32 -> 32 379 -> 337 us at 100% spiking voxels, 106 -> 101 at 10%, 64 -> 64 1,316
#: -> 1,164 and 266 -> 237; four against two, 16 -> 16 206 -> 172 and 93 -> 76 (8 -> 8: 180 -> 169)
_FOUR_PRODUCTS_MAX_COLUMNS = 16


@numba.njit(inline="always", **_OPTS)
def _listed_products(y, x, w, pair_out, pair_in, pair_offset, listed, n):
    # the products of pairs listed[:n], in order, four (narrow outputs) or two at a time where
    # their output rows differ (each output row still adds its products in list order), loading
    # the weights once where their offsets are equal too (a block's pairs come by offset). Those
    # shared loads, 8,192 random voxels, 2 threads, at 100% spiking voxels: 32 -> 32 302 -> 275 us,
    # 16 -> 16 123 -> 114, 64 -> 64 1,094 -> 979 (at 10% within noise); E-3DSNN-T on 4 real
    # ModelNet40 clouds, inference 55 -> 51 and 53 -> 50 ms, training 144 -> 137 and 146 -> 137
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
                _products(y, x, w, (qa, pair_in[a], oa, qb, pair_in[b], pair_offset[b],
                                    qc, pair_in[c], pair_offset[c], qd, pair_in[d], pair_offset[d]),
                          oa == pair_offset[b] and oa == pair_offset[c] and oa == pair_offset[d], False)
                j += 4
                continue
        if j + 1 < n and pair_out[np.uint32(listed[j + 1])] != qa:
            b = np.uint32(listed[j + 1])
            _products(y, x, w, (qa, pair_in[a], pair_offset[a], pair_out[b], pair_in[b], pair_offset[b]),
                      pair_offset[a] == pair_offset[b], False)
            j += 2
            continue
        _products(y, x, w, (qa, pair_in[a], pair_offset[a]), False, False)
        j += 1


@numba.njit(**_OPTS)
def _even_split(block_ptr, parts):
    """Block bounds ``[parts + 1]`` that split the pairs (``block_ptr``) evenly over the parts (deep
    layers have few blocks)."""
    bounds = np.searchsorted(block_ptr, np.arange(parts + 1) * block_ptr[-1] // parts)
    bounds[-1] = block_ptr.shape[0] - 1
    return bounds


@numba.njit(**_OPTS)
def _deal_offsets(offset_ptr, parts):
    """The part ``[K]`` that sums each offset: largest offsets first, each to the least loaded part."""
    sizes = offset_ptr[1:] - offset_ptr[:-1]
    owner = np.empty(sizes.shape[0], np.int64)
    load = np.zeros(parts, np.int64)
    for o in np.argsort(-sizes, kind="mergesort"):
        t = np.argmin(load)
        owner[o] = t
        load[t] += sizes[o]
    return owner


def _event_conv_body(x, w, block_ptr, pair_offset, pair_out, pair_in, block, num_out, max_active,
                     active, count, parts):
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
            flat[b * block * cout:min((b + 1) * block, num_out) * cout] = 0
            # list the spiking pairs without a branch, then the products: a branch per pair, taken
            # at random, cost more than the listing pass (8,192 random voxels 32 -> 32, one thread:
            # 184-230 -> 142-194 us at 10% spiking voxels, 450-601 -> 399-518 us at 50%)
            n = 0
            if every:
                for p in range(block_ptr[b], block_ptr[b + 1]):
                    listed[n] = p
                    n += 1
            else:  # unsigned indices: no wraparound test for negative ones (~25% of the pass)
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
                xr = x_rows[:n * cin].reshape(n, cin)
                gr = g_rows[:n * cout].reshape(1, n, cout)
                for r in range(n):
                    p = np.uintp(listed[first + r])
                    i, q = np.uintp(in_idx[p]), np.uintp(out_idx[p])
                    for k in range(cin):  # element loops: a row slice measured ~5x slower here
                        xr[r, k] = x[i, k]
                    for j in range(cout):
                        gr[0, r, j] = g[q, j]
                k = 0
                while four and k + 3 < cin:
                    _products(gw, xr, gr, (k, k, 0, k + 1, k + 1, 0, k + 2, k + 2, 0, k + 3, k + 3, 0), True, True)
                    k += 4
                while k + 1 < cin:
                    _products(gw, xr, gr, (k, k, 0, k + 1, k + 1, 0), True, True)
                    k += 2
                if k < cin:
                    _products(gw, xr, gr, (k, k, 0), True, True)


def _compiled(body, name: str, parallel: bool = False, **calls):
    """``body`` compiled as ``name``: serial (one part: prange is a plain loop) or, with
    ``parallel``, its prange loops on numba's threads; the functions it calls by name are replaced
    by ``calls`` (their parallel variants). Each variant is a renamed copy of the function:
    numba's disk cache names compiled code by function name, and would hand one variant's code to
    the other."""
    twin = types.FunctionType(body.__code__, {**body.__globals__, **calls}, name)
    twin.__qualname__ = name
    return numba.njit(parallel=parallel, **_OPTS)(twin)


def _run_split(serial, parallel, threads: int, *args):
    """``parallel(*args, parts)`` on up to ``threads`` of numba's threads, or ``serial(*args, 1)``
    where :class:`~neuroflow.parallel.numba_parallel` allows one part only: the two variants of
    one body (:func:`_compiled`)."""
    with numba_parallel(threads) as parts:
        return (parallel if parts > 1 else serial)(*args, parts)


_spiking_rows = _compiled(_spiking_rows_body, "_spiking_rows")
_spiking_rows_parallel = _compiled(_spiking_rows_body, "_spiking_rows_parallel", parallel=True)
_event_conv = _compiled(_event_conv_body, "_event_conv")
_weight_grad = _compiled(_weight_grad_body, "_weight_grad")
_weight_grad_parallel = _compiled(_weight_grad_body, "_weight_grad_parallel", parallel=True)
_event_conv_parallel = _compiled(_event_conv_body, "_event_conv_parallel", parallel=True,
                                 _spiking_rows=_spiking_rows_parallel)


#: below this many multiply-adds (over all pairs) a layer runs on one thread: each of the ~4
#: parallel steps costs a ~4 us hand-off
_EVENT_PARALLEL_MIN_MACS = 1 << 20
#: the widest layers (Cin Cout multiply-adds per pair) the event kernels take: measured up to 128 -> 128
EVENT_MAX_MACS = 16384


def _event_threads(pairs: int, w: np.ndarray, threads: int) -> int:
    """Threads for an event-driven layer of ``pairs`` pairs: 1 below ``_EVENT_PARALLEL_MIN_MACS``
    multiply-adds, else ``threads`` (as :func:`~neuroflow.parallel.numba_parallel` allows)."""
    return threads if pairs * w.shape[1] * w.shape[2] >= _EVENT_PARALLEL_MIN_MACS else 1


#: the empty row mask the kernels take where the caller has none (event_conv: the row test is yet
#: to run; the weight gradient: every row counts)
_NOT_TESTED = np.empty(0, np.bool_)


def event_conv(x: torch.Tensor, w: torch.Tensor, pairs: tuple, block: int, num_out: int, threads: int,
               max_active: int, rows: tuple[torch.Tensor, int] | None = None
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
    y, active, done = _run_split(_event_conv, _event_conv_parallel, _event_threads(pairs[1].shape[0], w_np, threads),
                                 x_np, w_np, *pairs, block, num_out, max_active, active, count)
    return (torch.from_numpy(y) if done else None), (torch.from_numpy(active) if rows is None else rows[0])


def event_weight_grad(x: torch.Tensor, grad_y: torch.Tensor, active: torch.Tensor | None, kmap_arrays: tuple,
                      threads: int) -> torch.Tensor:
    """``grad_W [K, Cin, Cout]``, ``grad_W[o] = sum over offset o's pairs (i, q) whose input spiked
    of x[i]^T grad_y[q]`` (a silent row adds nothing); no autograd. ``x [N, Cin]``, ``grad_y [M,
    Cout]`` of one CPU float dtype; ``active [N]`` bool (None: every row); ``kmap_arrays``: the
    map's ``(in_idx, out_idx, offset_ptr)`` (pairs by offset) as numpy arrays.

    Per offset, chunks of its spiking pairs' rows of ``x`` and ``grad_y`` are gathered, and each
    row ``k`` of ``grad_W[o]`` is one product ``x_rows[:, k] @ g_rows`` accumulated in vector
    registers, two or four rows at a time sharing the loads of ``g_rows`` (:func:`_make_block_gemv`
    with ``columns``). Offsets are dealt to numba's threads largest first, each summed by one
    thread in pair order, so the result does not depend on the split. Measured against the former
    form (BLAS GEMMs of the gathered rows, in chunks), 8,192 random voxels, 2 threads: 32 -> 32
    50 / 173 us at 10% spiking voxels, 160 / 552 at 40%, 332 / 1,327 at 100%; 64 -> 64 166 / 449,
    610 / 1,534, 1,429 / 3,645; 16 -> 16 26 / 80, 60 / 333, 150 / 800; 12 -> 20 67 / 95.
    """
    in_idx, out_idx, offset_ptr = kmap_arrays
    g = _numpy(grad_y)
    grad_w = np.empty((offset_ptr.shape[0] - 1, x.shape[1], g.shape[1]), g.dtype)
    every = active is None
    _run_split(_weight_grad, _weight_grad_parallel, _event_threads(in_idx.shape[0], grad_w, threads),
               _numpy(x), g, in_idx, out_idx, offset_ptr, _NOT_TESTED if every else active.numpy(), every, grad_w)
    return torch.from_numpy(grad_w)


@numba.njit(**_OPTS)
def _pairs_by_voxel(key_idx, partner_idx, offset_ptr, num_keys, block):
    # counting sort of the pairs (grouped by offset) by their key voxel's group of `block`; within
    # a group they stay in offset order. A power-of-two block divides by a shift (an integer
    # division per pair cost a third of the sort: 0.96 against 0.63 ms for 100,000 pairs)
    ptr = np.zeros((num_keys + block - 1) // block + 1, np.int64)
    shift = 0
    while (1 << shift) < block:
        shift += 1
    if (1 << shift) != block:
        shift = -1
    for p in range(key_idx.shape[0]):
        ptr[(key_idx[p] >> shift if shift >= 0 else key_idx[p] // block) + 1] += 1
    for g in range(ptr.shape[0] - 1):
        ptr[g + 1] += ptr[g]
    fill = ptr[:-1].copy()
    offset = np.empty(key_idx.shape[0], np.int32)
    voxel = np.empty(key_idx.shape[0], np.int32)
    partner = np.empty(key_idx.shape[0], np.int32)
    for o in range(offset_ptr.shape[0] - 1):
        for p in range(offset_ptr[o], offset_ptr[o + 1]):
            g = key_idx[p] >> shift if shift >= 0 else key_idx[p] // block
            r = fill[g]
            fill[g] = r + 1
            offset[r], voxel[r], partner[r] = o, key_idx[p], partner_idx[p]
    return ptr, offset, voxel, partner


def pairs_by_voxel(key_idx: torch.Tensor, partner_idx: torch.Tensor, offset_ptr: torch.Tensor, num_keys: int,
                   block: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ptr [G + 1] int64, offset [P] int32, voxel [P] int32, partner [P] int32)``: the pairs of
    a kernel map (``key_idx``, ``partner_idx`` grouped by offset, ``offset_ptr [K + 1]``; the input
    and output rows, in either role) ordered by group of ``block`` consecutive key voxels, then
    offset; group ``g``'s pairs (key voxels ``g block`` to ``(g + 1) block - 1``) are ``ptr[g]:ptr[g
    + 1]``, ``voxel`` their key voxels. A counting sort, O(P): measured 3.5x faster than a stable
    ``argsort`` of the keys (116,160 pairs: 0.94 against 3.3 ms). Computed on the CPU, returned on
    ``key_idx``'s device."""
    arrays = (t.detach().cpu().numpy() for t in (key_idx, partner_idx, offset_ptr))
    return tuple(torch.from_numpy(a).to(key_idx.device) for a in _pairs_by_voxel(*arrays, num_keys, block))


#: offsets whose pair count is at least this share of a block's longest join that block (padding
#: at most 1/0.75 = 1.33x); see :func:`padded_layout`
_BLOCK_FILL = 0.75


@numba.njit(**_OPTS)
def _padded_layout(offset_ptr, in_idx, out_idx, active, skip_offset, pad_out, fill):
    K = offset_ptr.shape[0] - 1
    counts = np.zeros(K, np.int64)
    for o in range(K):
        if o != skip_offset:
            for p in range(offset_ptr[o], offset_ptr[o + 1]):
                if active[in_idx[p]]:
                    counts[o] += 1
    nonzero = np.nonzero(counts)[0]
    offsets = nonzero[np.argsort(-counts[nonzero], kind="mergesort")]  # longest first
    # blocks: consecutive offsets of similar length, padded to the block's first (longest)
    blocks = np.empty((offsets.shape[0], 3), np.int64)  # (first row, rows, width)
    row_start = np.empty(offsets.shape[0], np.int64)  # of each offset's row in the padded arrays
    num_blocks, total, r = 0, 0, 0
    while r < offsets.shape[0]:
        width = counts[offsets[r]]
        end = r + 1
        while end < offsets.shape[0] and counts[offsets[end]] >= fill * width:
            end += 1
        blocks[num_blocks, 0], blocks[num_blocks, 1], blocks[num_blocks, 2] = r, end - r, width
        num_blocks += 1
        for k in range(r, end):
            row_start[k] = total + (k - r) * width
        total += (end - r) * width
        r = end
    padded_in = np.zeros(total, np.int64)
    padded_out = np.full(total, pad_out, np.int64)
    for r in range(offsets.shape[0]):
        o = offsets[r]
        q = row_start[r]
        for p in range(offset_ptr[o], offset_ptr[o + 1]):
            if active[in_idx[p]]:
                padded_in[q] = in_idx[p]
                padded_out[q] = out_idx[p]
                q += 1
    return offsets, padded_in, padded_out, blocks[:num_blocks].copy()


def padded_layout(offset_ptr: torch.Tensor, in_idx: torch.Tensor, out_idx: torch.Tensor, active: torch.Tensor,
                  skip_offset: int, pad_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple]:
    """``(offsets [G], padded_in [R], padded_out [R], blocks)``: the pairs with an ``active`` input,
    offset ``skip_offset`` left out, one row per offset that has pairs, longest first. Rows are
    grouped into blocks of similar length, each padded to its longest: ``blocks`` holds ``(first
    row, rows, width)`` per block, and block ``b`` takes ``rows x width`` consecutive entries of
    ``padded_in`` / ``padded_out``. Padding entries are input 0 / output ``pad_out``.

    Why blocks: one block padded to the longest offset (one batched matmul for all) did 1.5-1.8x
    the real pairs on real ModelNet40 clouds, whose surfaces make some directions far more common;
    with blocks filled to at least 75% the padding is at most 1.33x, for a few more matmuls.
    Computed on the CPU, returned on ``in_idx``'s device."""
    arrays = (t.detach().cpu().numpy() for t in (offset_ptr, in_idx, out_idx, active))
    offsets, padded_in, padded_out, blocks = _padded_layout(*arrays, skip_offset, pad_out, _BLOCK_FILL)
    device = in_idx.device
    return (torch.from_numpy(offsets).to(device), torch.from_numpy(padded_in).to(device),
            torch.from_numpy(padded_out).to(device), tuple(tuple(int(v) for v in b) for b in blocks))


@numba.njit(inline="always", **_OPTS)
def _slot(key, mask):
    # Fibonacci hashing of a 63-bit key into a power-of-two table
    return ((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20)) & np.uint64(mask)


@numba.njit(**_OPTS)
def _new_table(n):
    size = 1
    while size < 2 * n:
        size *= 2
    return np.full(size, -1, np.int64), np.empty(size, np.int64)


@numba.njit(inline="always", **_OPTS)
def _lookup(table_keys, table_rows, key, insert_row):
    """Row stored for ``key``; if absent, store ``insert_row`` (when >= 0) and return it, else -1.
    Inlined: the map builders call it once per (voxel, offset)."""
    mask = np.uint64(table_keys.shape[0] - 1)
    h = _slot(key, mask)
    while True:
        stored = table_keys[h]
        if stored == key:
            return table_rows[h]
        if stored == -1:
            break
        h = (h + np.uint64(1)) & mask
    if insert_row >= 0:
        table_keys[h] = key
        table_rows[h] = insert_row
    return insert_row


@numba.njit(**_OPTS)
def _largest_shift(shift):
    return np.max(np.abs(shift))


def _submanifold_found_body(coords, shape, shift, parts):
    """``(found [K, N], duplicate [2])``: row of voxel ``i``'s neighbour at ``shift[o]``, or -1, and
    ``(-1, -1)``; or, when two rows of ``coords`` are the same voxel, an empty ``found`` and the two rows.

    The voxels' keys are sorted once. The shifts are grouped by their (x, y) part: a group's
    targets lie in one z-column of the grid, so one merge-like sweep of the sorted keys per group
    finds them all (a 3x3x3 kernel: 9 sweeps, not 27), with sequential memory access. When the
    shifts come in opposite pairs (``shift[K - 1 - o] = -shift[o]``, as for every odd kernel
    centred on the voxel) each neighbour found gives its mirror pair too (j is i's neighbour at
    ``s`` exactly when i is j's at ``-s``), so only the first half of the offsets is swept (5
    sweeps for 3x3x3), and the zero shift needs none. ``parts`` split the sorted voxels.
    """
    n, K = coords.shape[0], shift.shape[0]
    X, Y, Z = shape[0], shape[1], shape[2]
    keys = np.empty(n, np.int64)
    for i in range(n):
        keys[i] = ((coords[i, 0] * X + coords[i, 1]) * Y + coords[i, 2]) * Z + coords[i, 3]
    ascending = True
    for i in range(1, n):
        ascending &= keys[i - 1] < keys[i]
    # voxelised clouds arrive sorted (numba's mergesort of sorted keys still took ~1 ms for 30,000)
    order = np.arange(n) if ascending else np.argsort(keys, kind="mergesort")
    sorted_keys = keys if ascending else keys[order]
    if not ascending:  # strictly ascending keys have no duplicates: only unsorted ones pay this pass
        for r in range(1, n):
            if sorted_keys[r] == sorted_keys[r - 1]:
                return np.empty((0, n), np.int32), np.array([order[r - 1], order[r]], np.int64)
    mirrored = True
    for o in range(K):
        for a in range(3):
            mirrored &= shift[K - 1 - o, a] == -shift[o, a]
    found = np.full((K, n), -1, np.int32)  # rows < 2^31: half the memory traffic of int64
    swept = np.empty(K, np.int64)  # the offsets to sweep, then sorted by (dx, dy, dz)
    count = 0
    for o in range(K):
        zero = shift[o, 0] == 0 and shift[o, 1] == 0 and shift[o, 2] == 0
        if mirrored and zero:
            for i in range(n):
                found[o, i] = i
        elif not mirrored or o < K - 1 - o:  # the others are filled while sweeping their mirror
            swept[count] = o
            count += 1
    span = 2 * _largest_shift(shift) + 1 if K else 1
    rank = np.empty(count, np.int64)
    for g in range(count):
        o = swept[g]
        rank[g] = ((shift[o, 0] + span) * 2 * span + shift[o, 1] + span) * 2 * span + shift[o, 2] + span
    swept = swept[:count][np.argsort(rank, kind="mergesort")]
    groups = np.empty((count, 2), np.int64)  # [first, last) of each z-column group of swept
    num_groups = 0
    first = 0
    while first < count:
        last = first + 1
        while last < count and shift[swept[last], 0] == shift[swept[first], 0] \
                and shift[swept[last], 1] == shift[swept[first], 1]:
            last += 1
        groups[num_groups, 0], groups[num_groups, 1] = first, last
        num_groups += 1
        first = last
    # each part sweeps its range of the sorted voxels for every group; a mirror entry
    # found[K - 1 - o, j] has one writer (the voxel at j - shift[o]), so parts never collide
    for t in numba.prange(parts):
        lo, hi = _part(n, t, parts)
        for gi in range(num_groups):
            first, last = groups[gi, 0], groups[gi, 1]
            dx, dy, dz_low = shift[swept[first], 0], shift[swept[first], 1], shift[swept[first], 2]
            column = (dx * Y + dy) * Z  # key offset of the group's (x, y) part
            # j: the first key at or after the lowest target of the voxels swept so far; later
            # voxels' targets are higher, so it only moves forward
            j = np.searchsorted(sorted_keys, sorted_keys[lo] + column + dz_low) if lo < hi else n
            for r in range(lo, hi):
                i = order[r]
                x, y, z = coords[i, 1] + dx, coords[i, 2] + dy, coords[i, 3]
                if not (0 <= x < X and 0 <= y < Y):
                    continue
                base = sorted_keys[r] + column
                low = base + dz_low
                while j < n and sorted_keys[j] < low:
                    j += 1
                k = j
                for g in range(first, last):  # ascending dz: k moves forward too
                    o = swept[g]
                    dz = shift[o, 2]
                    if not 0 <= z + dz < Z:
                        continue
                    target = base + dz
                    while k < n and sorted_keys[k] < target:
                        k += 1
                    if k < n and sorted_keys[k] == target:
                        found[o, i] = order[k]
                        if mirrored:
                            found[K - 1 - o, order[k]] = i
    return found, np.full(2, -1, np.int64)


@numba.njit(**_OPTS)
def _strided_found(coords, out_shape, positions, stride, max_out):
    """``(found [K, N], out_coords [M, 4])``: the output row input ``i`` feeds through kernel
    position ``o`` (or -1); outputs in key order (batch, x, y, z). ``max_out`` bounds the number
    of outputs (the table must never fill).

    Input ``c`` feeds cell ``q_out`` through position ``p`` (per axis) when ``c - p = stride
    q_out``: writing ``c = stride q + r`` and ``p = stride pq + pr`` (``0 <= r, pr < stride``), when
    ``r == pr``, and then ``q_out = q - pq``. So the voxels are bucketed once by their remainders
    (all three axes in one code), and each position visits only its bucket, in voxel order; no
    division in the loop (E-3DSNN-T's first strided map of 4 real ModelNet40 clouds, 30,293 voxels:
    2.2 ms, against 6.4 ms with a division per axis, position and voxel).
    """
    n, K = coords.shape[0], positions.shape[0]
    s0, s1, s2 = stride[0], stride[1], stride[2]
    quotient = np.empty((n, 3), np.int64)
    bucket_ptr = np.zeros(s0 * s1 * s2 + 1, np.int64)
    code = np.empty(n, np.int64)
    for i in range(n):
        rem = 0
        for a in range(3):
            quotient[i, a] = coords[i, a + 1] // stride[a]
            rem = rem * stride[a] + coords[i, a + 1] - quotient[i, a] * stride[a]
        code[i] = rem
        bucket_ptr[rem + 1] += 1
    for c in range(s0 * s1 * s2):
        bucket_ptr[c + 1] += bucket_ptr[c]
    bucket = np.empty(n, np.int64)
    fill = bucket_ptr[:-1].copy()
    for i in range(n):  # stable: each bucket keeps the voxel order
        bucket[fill[code[i]]] = i
        fill[code[i]] += 1
    table_keys, table_rows = _new_table(max_out)
    found = np.full((K, n), -1, np.int32)  # rows < 2^31: half the memory traffic of int64
    out_coords = np.empty((max_out, 4), np.int64)
    m = 0
    for o in range(K):
        px, py, pz = positions[o, 0] // s0, positions[o, 1] // s1, positions[o, 2] // s2
        rem = ((positions[o, 0] - px * s0) * s1 + positions[o, 1] - py * s1) * s2 + positions[o, 2] - pz * s2
        for b in range(bucket_ptr[rem], bucket_ptr[rem + 1]):
            i = bucket[b]
            qx, qy, qz = quotient[i, 0] - px, quotient[i, 1] - py, quotient[i, 2] - pz
            if not (0 <= qx < out_shape[0] and 0 <= qy < out_shape[1] and 0 <= qz < out_shape[2]):
                continue
            key = ((coords[i, 0] * out_shape[0] + qx) * out_shape[1] + qy) * out_shape[2] + qz
            row = _lookup(table_keys, table_rows, key, m)
            if row == m:
                out_coords[m, 0], out_coords[m, 1], out_coords[m, 2], out_coords[m, 3] = coords[i, 0], qx, qy, qz
                m += 1
            found[o, i] = row
    # renumber the outputs in key order (batch, x, y, z), the order of voxelised inputs: the next
    # submanifold map then finds its keys sorted (no argsort, sequential sweeps), and the
    # convolutions after it read neighbouring voxels from neighbouring rows
    keys = np.empty(m, np.int64)
    for r in range(m):
        keys[r] = ((out_coords[r, 0] * out_shape[0] + out_coords[r, 1]) * out_shape[1] + out_coords[r, 2]) \
            * out_shape[2] + out_coords[r, 3]
    order = np.argsort(keys, kind="mergesort")
    rank = np.empty(m, np.int32)
    for r in range(m):
        rank[order[r]] = r
    for o in range(K):
        for i in range(n):
            if found[o, i] >= 0:
                found[o, i] = rank[found[o, i]]
    return found, out_coords[order]


def _found_pairs_body(found, parts):
    # the entries >= 0 of found [K, N] in row-major order: per row o, their columns and values; each
    # row written branch-free (a branch per entry, taken at random, measured 1.2x slower), the rows
    # split over `parts`
    K, n = found.shape
    counts = np.empty(K + 1, np.int64)
    counts[0] = 0
    for o in numba.prange(K):
        c = 0
        for j in range(n):
            c += found[o, j] >= 0
        counts[o + 1] = c
    for o in range(K):
        counts[o + 1] += counts[o]
    columns = np.empty(counts[-1], np.int64)
    values = np.empty(counts[-1], np.int64)
    for o in numba.prange(K):
        r, end = counts[o], counts[o + 1]
        for j in range(n):
            if r == end:  # row o complete: a further (unkept) write would land in row o + 1's slots
                break
            value = found[o, j]
            columns[r], values[r] = j, value
            r += value >= 0
    return counts, columns, values


_found_pairs = _compiled(_found_pairs_body, "_found_pairs")
_found_pairs_parallel = _compiled(_found_pairs_body, "_found_pairs_parallel", parallel=True)
_submanifold_found = _compiled(_submanifold_found_body, "_submanifold_found")
_submanifold_found_parallel = _compiled(_submanifold_found_body, "_submanifold_found_parallel", parallel=True)
#: kernel-map entries (voxels x kernel offsets) from which the map builders split over numba's threads
_MAP_PARALLEL_MIN = 1 << 16


def _map_threads(entries: int) -> int:
    """Threads for a kernel-map step over ``entries`` (voxels x offsets): torch's, from
    :data:`_MAP_PARALLEL_MIN` on."""
    return torch.get_num_threads() if entries >= _MAP_PARALLEL_MIN else 1


def found_pairs(found: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(offset_ptr [K + 1], columns [P], values [P])``, int64 on ``found``'s device: the entries
    ``found[o, j] >= 0`` of a ``[K, N]`` lookup table (:func:`submanifold_found`,
    :func:`strided_found`) in row-major order, row ``o``'s entries at ``offset_ptr[o]:offset_ptr[o +
    1]``. One numba pass where ``nonzero``, a gather and a ``bincount`` took three (E-3DSNN-T's
    first maps on 4 real ModelNet40 clouds, 29,704 voxels: submanifold 10.6 against 12.0 ms, strided
    6.7 against 8.1 ms)."""
    found_np = found.cpu().numpy()
    arrays = _run_split(_found_pairs, _found_pairs_parallel, _map_threads(found_np.size), found_np)
    return tuple(torch.from_numpy(a).to(found.device) for a in arrays)


def submanifold_found(coords: torch.Tensor, spatial_shape: tuple[int, int, int], shift: torch.Tensor) -> torch.Tensor:
    """``[K, N]`` int32: for each kernel shift ``[K, 3]`` and voxel ``i`` of ``coords [N, 4]``, the row
    of the voxel at ``coords[i] + shift`` (same sample), or -1; InvalidArgumentError if two rows
    are the same voxel. The voxels' keys sorted once, then
    one merge-like sweep per z-column of shifts (memory O(N), any grid size). 4 real ModelNet40
    clouds (29,704 voxels), 27 shifts: 5.6 ms with one sweep per shift against 9.3 ms with a hash
    table of the voxels (random probes), which was ~20x faster than sorted keys + ``searchsorted``;
    then 6.2 -> 4.3 ms with one sweep per z-column (29,725 voxels); the whole map 5.5 -> 3.0 ms
    with the sorted voxels split over 2 threads and the pairs listed in parallel (29,999 voxels)."""
    coords_np = coords.cpu().numpy()
    found, duplicate = _run_split(_submanifold_found, _submanifold_found_parallel,
                                  _map_threads(coords_np.shape[0] * shift.shape[0]),
                                  coords_np, np.asarray(spatial_shape, np.int64), shift.cpu().numpy())
    if duplicate[0] >= 0:
        i, j = duplicate.tolist()
        raise InvalidArgumentError(
            f"coords rows {i} and {j} are the same voxel {tuple(coords_np[i].tolist())} (batch, x, y, z): a sparse "
            "tensor needs one row per occupied voxel (merge the duplicates' features first)"
        )
    return torch.from_numpy(found).to(coords.device)


def strided_found(coords: torch.Tensor, out_shape: tuple[int, int, int], positions: torch.Tensor,
                  stride: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(found [K, N], out_coords [M, 4])``: for kernel position ``positions[o]`` and input voxel
    ``i``, the output cell ``q`` with ``coords[i] = stride q + positions[o]`` (row of ``out_coords``)
    or -1; the output cells are collected in a hash table (memory O(N K)), then numbered in key
    order (batch, x, y, z). E-3DSNN-T inference on 4 real ModelNet40 clouds with fresh maps (12
    alternating rounds): 62 -> 54 and 80 -> 69 ms with this and the split neighbour search together,
    68 -> 61 ms with the split search alone."""
    # an input lies in the receptive fields of at most prod(ceil(k / s)) outputs
    kernel = positions.amax(0).cpu() + 1
    fan = int(torch.prod(-(-kernel // torch.tensor(stride)))) if positions.numel() else 1
    found, out_coords = _strided_found(coords.cpu().numpy(), np.asarray(out_shape, np.int64), positions.cpu().numpy(),
                                       np.asarray(stride, np.int64), max(1, coords.shape[0] * fan))
    return torch.from_numpy(found).to(coords.device), torch.from_numpy(out_coords).to(coords.device)

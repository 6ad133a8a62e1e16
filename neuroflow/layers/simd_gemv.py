"""``y[q] += x[i] @ w[o]`` for one pair (input row ``i``, kernel offset ``o``, output row ``q``), as
a numba intrinsic with its accumulators in vector registers: the inner step of the event-driven
convolution in inference (:mod:`~neuroflow.layers.sparse_cpu_kernels`).

Why an intrinsic: written as numba loops, the same product ran at 1.4-6 GMAC/s on the 2-core
development VM (LLVM kept the accumulators in memory, or could not vectorise the fully unrolled
loop for fear of aliasing between the output row and ``w``). Here each column block of ``8 n`` outputs is
``n`` vectors of 8 lanes held in registers over the whole ``Cin`` loop: one broadcast of ``x[i, k]``
and ``n`` vector multiply-adds per input channel (``llvm.fmuladd``: a fused multiply-add where the
CPU has one). Measured 11-13 GMAC/s per thread for 32 -> 32 channels, the speed of OpenBLAS's GEMMs
of 25-54 rows on the same machine, but without gathering the rows first or scattering the products.

Editing this file: numba's disk cache of the kernels that inline these intrinsics is keyed on
*their* source file (:mod:`~neuroflow.layers.sparse_cpu_kernels`), not this one; touch that file
(or delete its ``__pycache__``) so that they are compiled again.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: lanes per vector (8 float32 = one AVX register; LLVM splits or joins them for other widths)
LANES = 8


def _make_block_gemv(vectors: int):
    """The intrinsic ``block_gemv(y, q, x, i, w, o, c0)``: ``y[q, c0:c0 + 8 vectors] += x[i, :] @
    w[o, :, c0:c0 + 8 vectors]`` for C-contiguous ``y [M, Cout]``, ``x [N, Cin]``, ``w [K, Cin, Cout]``
    of one float dtype; the caller guarantees ``c0 + 8 vectors <= Cout``."""

    @intrinsic
    def block_gemv(typingctx, y, q, x, i, w, o, c0):
        if not all(isinstance(a, types.Array) and a.layout == "C" and a.ndim == n for a, n in ((y, 2), (x, 2), (w, 3))):
            return None
        if not (y.dtype == x.dtype == w.dtype and isinstance(x.dtype, types.Float)):
            return None
        sig = types.void(y, types.intp, x, types.intp, w, types.intp, types.intp)

        def codegen(context, builder, signature, args):
            y_a, x_a, w_a = (context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 2, 4))
            q_, i_, o_, c0_ = args[1], args[3], args[5], args[6]
            vec = ir.VectorType(context.get_data_type(x.dtype), LANES)
            index = lambda value: ir.Constant(cgutils.intp_t, value)
            cin = builder.extract_value(x_a.shape, 1)
            cout = builder.extract_value(w_a.shape, 2)
            x_row = builder.gep(x_a.data, [builder.mul(i_, cin)])
            w_block = builder.gep(w_a.data, [builder.add(builder.mul(o_, builder.mul(cin, cout)), c0_)])
            y_block = builder.gep(y_a.data, [builder.add(builder.mul(q_, cout), c0_)])
            as_vec = lambda pointer, j: builder.bitcast(builder.gep(pointer, [index(LANES * j)]), vec.as_pointer())
            # stack slots in the entry block: LLVM promotes them to registers
            slots = [cgutils.alloca_once(builder, vec) for _ in range(vectors)]
            for j, slot in enumerate(slots):
                builder.store(builder.load(as_vec(y_block, j), align=1), slot)
            fmuladd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vec, [vec] * 3),
                                                     f"llvm.fmuladd.v{LANES}{'f32' if x.dtype.bitwidth == 32 else 'f64'}")
            lane0 = ir.Constant(ir.IntType(32), 0)
            broadcast = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
            with cgutils.for_range(builder, cin) as loop:
                xk = builder.load(builder.gep(x_row, [loop.index]))
                xk = builder.shuffle_vector(builder.insert_element(ir.Constant(vec, ir.Undefined), xk, lane0),
                                            ir.Constant(vec, ir.Undefined), broadcast)
                w_row = builder.gep(w_block, [builder.mul(loop.index, cout)])
                for j, slot in enumerate(slots):
                    wk = builder.load(as_vec(w_row, j), align=1)
                    builder.store(builder.call(fmuladd, [xk, wk, builder.load(slot)]), slot)
            for j, slot in enumerate(slots):
                builder.store(builder.load(slot), as_vec(y_block, j), align=1)
            return context.get_dummy_value()

        return sig, codegen

    return block_gemv


block_gemv32 = _make_block_gemv(4)  # 32 columns
block_gemv16 = _make_block_gemv(2)
block_gemv8 = _make_block_gemv(1)

"""Compiling the sparse-convolution kernels with numba: options, serial and parallel twins.

Plain Python only (nothing here is compiled), so the kernel files may share it: numba's disk
cache keys a kernel by the content of its own source file and does not see edits to compiled
functions it calls from another file, so every compiled helper lives in the file of its callers.
"""

from __future__ import annotations

import types

import numba

from neuroflow.parallel import numba_parallel

#: options of every kernel: cached on disk, no GIL, no bounds checks, numpy's division semantics
OPTS = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy")


def compiled(body, name: str, parallel: bool = False, **calls):
    """``body`` compiled as ``name``: serial (one part: prange is a plain loop) or, with
    ``parallel``, its prange loops on numba's threads; the functions it calls by name are replaced
    by ``calls`` (their parallel variants). Each variant is a renamed copy of the function:
    numba's disk cache names compiled code by function name, and would hand one variant's code to
    the other."""
    twin = types.FunctionType(body.__code__, {**body.__globals__, **calls}, name)
    twin.__qualname__ = name
    return numba.njit(parallel=parallel, **OPTS)(twin)


def run_split(serial, parallel, threads: int, *args):
    """``parallel(*args, parts)`` on up to ``threads`` of numba's threads, or ``serial(*args, 1)``
    where :class:`~neuroflow.parallel.numba_parallel` allows one part only: the two variants of
    one body (:func:`compiled`)."""
    with numba_parallel(threads) as parts:
        return (parallel if parts > 1 else serial)(*args, parts)

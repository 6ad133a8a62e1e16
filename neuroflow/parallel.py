"""numba's parallel kernels (``prange``: the neuron kernels, the event-driven sparse convolution,
the emulator): the guard on their threads, and the serial and parallel twins of a kernel body.
Their hand-off measured ~4 us on the 2-core development VM, where a plain Python
thread's took 0.1-0.3 ms.
"""

from __future__ import annotations

import os
import threading
import types

import numba

#: whether this process ran numba's parallel kernels
_ran_parallel = False
#: whether this process was forked from one that had (or descends from such a child)
_forked_after_parallel = False
_numba_parallel_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _forked_after_parallel
    _forked_after_parallel = _forked_after_parallel or _ran_parallel


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to guard against
    os.register_at_fork(after_in_child=_after_fork_in_child)


class numba_parallel:  # noqa: N801 (used like a function: ``with numba_parallel(n) as parts``)
    """``with numba_parallel(threads) as parts``: how many parallel parts (>= 1) the caller may run
    on numba's threads now, given ``threads`` wanted (e.g. ``torch.get_num_threads()``); 1 means
    run the serial kernel.

    It is 1 (a) in a process forked from one that ran the parallel kernels: GNU OpenMP is not
    fork-safe (numba aborts such a child's first parallel region; a data-loader worker, a
    fork-based pool), and (b) while another thread runs parallel kernels: numba's fallback
    threading layer (workqueue, where OpenMP and TBB are missing) aborts on concurrent launches.

    A class rather than a generator-based context manager, and the fork noticed by an
    ``os.register_at_fork`` hook rather than a ``getpid`` per call: the event-driven convolution
    enters it once per layer call, where ~10 us of Python counted (at 10% spiking voxels its
    kernel takes ~0.1 ms).
    """

    __slots__ = ("_parts", "_locked")

    def __init__(self, threads: int):
        self._parts = min(threads, numba.config.NUMBA_NUM_THREADS)
        self._locked = False

    def __enter__(self) -> int:
        global _ran_parallel
        if (
            self._parts < 2
            or _forked_after_parallel
            or not _numba_parallel_lock.acquire(blocking=False)
        ):
            return 1
        self._locked = True
        _ran_parallel = True
        return self._parts

    def __exit__(self, *exc) -> None:
        if self._locked:
            self._locked = False
            _numba_parallel_lock.release()


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

"""The guard for numba's parallel kernels (``prange``: the neuron kernels, the event-driven sparse
convolution). Their hand-off measured ~4 us on the 2-core development VM, where a plain Python
thread's took 0.1-0.3 ms.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numba

#: the process that first ran numba's parallel kernels
_numba_parallel_pid: int | None = None
_numba_parallel_lock = threading.Lock()


@contextmanager
def numba_parallel(threads: int) -> Iterator[int]:
    """Yield how many parallel parts (>= 1) the caller may run on numba's threads now, given
    ``threads`` wanted (e.g. ``torch.get_num_threads()``); 1 means run the serial kernel.

    It is 1 (a) in a process forked from one that ran the parallel kernels: GNU OpenMP is not
    fork-safe (numba aborts such a child's first parallel region; a data-loader worker, a
    fork-based pool), and (b) while another thread runs parallel kernels: numba's fallback
    threading layer (workqueue, where OpenMP and TBB are missing) aborts on concurrent launches.
    """
    global _numba_parallel_pid
    parts = min(threads, numba.config.NUMBA_NUM_THREADS)
    if parts < 2:
        yield 1
        return
    if _numba_parallel_pid is None:
        _numba_parallel_pid = os.getpid()
    if _numba_parallel_pid != os.getpid() or not _numba_parallel_lock.acquire(blocking=False):
        yield 1
        return
    try:
        yield parts
    finally:
        _numba_parallel_lock.release()

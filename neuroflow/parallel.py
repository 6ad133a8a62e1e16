"""Parallel work on the CPU: a shared pool of plain threads, and the guard for numba's parallel kernels.

Why plain threads: the sparse convolution splits its work into two parts that are torch operations
(which release the GIL) and numba ``nogil`` kernels; torch's intra-op threads cost more than they
save at these sizes. A hand-off costs 0.1-0.3 ms on the 2-core development VM (an idle virtual CPU
sleeps), so callers use the pool only for work well above that. Kernels that only run numba code
use numba's ``prange`` instead (the neuron kernels, the event-driven sparse convolution), whose
hand-off measured ~4 us; they launch through :func:`numba_parallel`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _pool_with(workers: int) -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers < workers:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="neuroflow")
        return _pool


def run_concurrently(tasks: Sequence[Callable[[], object]]) -> None:
    """Run every task: the first on the calling thread, the others on pool threads; return when
    all are done (an exception in a task is raised here). Tasks must not call this function."""
    if len(tasks) == 1:
        tasks[0]()
        return
    pool = _pool_with(len(tasks) - 1)
    futures = [pool.submit(task) for task in tasks[1:]]
    tasks[0]()
    for f in futures:
        f.result()


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

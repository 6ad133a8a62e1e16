"""Run a few independent CPU tasks at once on one shared pool of plain threads.

Why plain threads: the sparse convolution splits its work into two parts that are torch operations
(which release the GIL) and numba ``nogil`` kernels; torch's intra-op threads cost more than they
save at these sizes. A hand-off costs 0.1-0.3 ms on the 2-core development VM (an idle virtual CPU
sleeps), so callers use the pool only for work well above that. (The neuron kernels, which only run
numba code, use numba's ``prange`` instead: see :mod:`neuroflow.neurons.cpu_kernels`.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

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

"""Sharding independent input streams over worker processes.

The streams of a batch ``[T, B, ...]`` never interact on the chip (each has its own state), so a
run splits by ``B`` into contiguous shards, each run by the same compiled network in its own
process, and the pieces join back in order: the spikes concatenated along ``B``, the integer
statistics summed, the energy priced again from the summed counts by the function a single run
uses. The result is identical to ``net.run(x)`` in one process, bit for bit.

Workers are forked on Linux, as torch's DataLoader and the point-cloud cache do: each worker
runs the emulator's numba kernels on one thread (the processes are the parallelism), nothing in
a worker needs the parent's OpenMP threads (the hazard of forking after torch or numba's
parallel kernels ran, see :mod:`neuroflow.parallel`), and a forked worker starts at once with
the compiled kernels and the network inherited. A spawned worker (``start_method="spawn"``, and
the default elsewhere) starts clean but first imports the emulator (and torch, through
:mod:`neuroflow.energy`), several seconds per worker.
Each worker receives the network once, when it starts. A shard's spike arrays (hundreds of MB
for a CNN over a long stream) come back through files in a temporary folder (``/dev/shm``,
memory, where it exists) rather than pickled through the pool's pipe, which cost more than the
run itself.
"""

from __future__ import annotations

import multiprocessing
import numbers
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

import numba
import numpy as np

from neuroflow.emulator.profile import chip_profile, price
from neuroflow.emulator.result import LayerStats, RunResult
from neuroflow.errors import InvalidArgumentError

#: the compiled network of this worker process (set once by the pool's initializer)
_worker_net = None


def check_processes(processes) -> int:
    """``processes`` as a positive ``int``, or an error naming the value."""
    if (
        isinstance(processes, bool)
        or not isinstance(processes, numbers.Integral)
        or int(processes) < 1
    ):
        raise InvalidArgumentError(
            f"processes must be a positive integer (1 = run in this process), got {processes!r}"
        )
    return int(processes)


def shard_bounds(batch: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous ``[lo, hi)`` ranges of ``batch`` streams over at most ``shards`` shards, in
    order, sizes differing by at most one (empty shards dropped)."""
    edges = np.linspace(0, batch, min(shards, max(batch, 1)) + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]


def merge_results(parts: list[RunResult], hardware: str) -> RunResult:
    """Join the runs of consecutive batch shards into the run of the whole batch: spikes
    concatenated along axis 1 (``B``), counts summed, energy priced on ``hardware``'s profile
    from the summed counts (as one run prices its own)."""
    first = parts[0]
    output = np.concatenate([p.output_spikes for p in parts], axis=1)
    layer_spikes = {}
    for name, arr in first.layer_spikes.items():
        # keep a layer that *is* the output (Xylo's 'output') the same array, as one run does
        layer_spikes[name] = (
            output
            if arr is first.output_spikes
            else np.concatenate([p.layer_spikes[name] for p in parts], axis=1)
        )
    layers = [
        LayerStats(
            s.name,
            s.cores,
            sum(p.layers[i].synaptic_events for p in parts),
            sum(p.layers[i].neuron_updates for p in parts),
            sum(p.layers[i].spikes for p in parts),
            dict(s.memory),
        )
        for i, s in enumerate(first.layers)
    ]
    batch = sum(p.batch for p in parts)
    energy, breakdown = price(chip_profile(hardware), layers, batch)
    return RunResult(
        output, layer_spikes, layers, first.ticks, batch, energy, breakdown,
        first.latency_per_sample_s,
    )  # fmt: skip


def _init_worker(net) -> None:
    global _worker_net
    _worker_net = net
    # the processes are the parallelism: one numba thread each, not processes x cores
    numba.set_num_threads(1)


def _run_shard(x: np.ndarray, options: dict, folder: str, index: int) -> RunResult:
    """Run one shard; its spike arrays are saved in ``folder`` and replaced by their paths."""
    result = _worker_net.run(x, **options)
    out_path = os.path.join(folder, f"{index}_output.npy")
    np.save(out_path, result.output_spikes)
    for k, (name, arr) in enumerate(result.layer_spikes.items()):
        if arr is result.output_spikes:
            result.layer_spikes[name] = out_path
        else:
            result.layer_spikes[name] = os.path.join(folder, f"{index}_{k}.npy")
            np.save(result.layer_spikes[name], arr)
    result.output_spikes = out_path
    return result


def _load_shard(result: RunResult) -> RunResult:
    """Undo :func:`_run_shard`'s saving: paths -> (memory-mapped) arrays, one per file."""
    loaded: dict[str, np.ndarray] = {}

    def load(path: str) -> np.ndarray:
        if path not in loaded:
            loaded[path] = np.load(path, mmap_mode="r")
        return loaded[path]

    result.output_spikes = load(result.output_spikes)
    result.layer_spikes = {name: load(path) for name, path in result.layer_spikes.items()}
    return result


class ShardedRunner:
    """``with ShardedRunner(net, processes) as runner: runner.run(x)``: a pool of ``processes``
    workers holding ``net``, reused across calls (e.g. the batches of a data split);
    ``runner.run(x, **options)`` equals ``net.run(x, **options)``. With ``processes == 1`` no
    pool is started and runs stay in this process. ``start_method``: ``"fork"`` or ``"spawn"``
    (default: fork on Linux, else spawn)."""

    def __init__(self, net, processes: int = 1, start_method: str | None = None):
        self.net = net
        self.processes = check_processes(processes)
        if start_method is None:
            start_method = "fork" if sys.platform.startswith("linux") else "spawn"
        if start_method not in multiprocessing.get_all_start_methods():
            raise InvalidArgumentError(
                f"start_method must be one of {multiprocessing.get_all_start_methods()}, "
                f"got {start_method!r}"
            )
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ShardedRunner:
        # a daemonic process (e.g. a data-loader worker) may not start children: run in place
        if self.processes > 1 and not multiprocessing.current_process().daemon:
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context(self.start_method),
                initializer=_init_worker,
                initargs=(self.net,),
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def run(self, x, **options) -> RunResult:
        x = np.asarray(x)
        if self._pool is None or x.ndim < 2 or x.shape[1] < 2:
            return self.net.run(x, **options)
        bounds = shard_bounds(x.shape[1], self.processes)
        shm = "/dev/shm"
        folder = tempfile.mkdtemp(
            prefix="neuroflow_shards_", dir=shm if os.path.isdir(shm) else None
        )
        try:
            futures = [
                self._pool.submit(_run_shard, np.ascontiguousarray(x[:, lo:hi]), options, folder, i)
                for i, (lo, hi) in enumerate(bounds)
            ]
            # merging copies the memory-mapped shards into fresh arrays before the folder goes
            parts = [_load_shard(f.result()) for f in futures]
            return merge_results(parts, self.net.hardware)
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def run_sharded(net, x, processes: int, start_method: str | None = None, **options) -> RunResult:
    """``net.run(x, **options)`` with the batch axis of ``x [T, B, ...]`` split into
    ``processes`` contiguous shards, each run in its own worker process; the same result as one
    process. Worth it for long event streams: a pool is started per call (a forked worker in
    tens of milliseconds, a spawned one in seconds); :class:`ShardedRunner` keeps one."""
    with ShardedRunner(net, processes, start_method) as runner:
        return runner.run(x, **options)

"""Multi-step LIF forward + backward: neuroflow against SpikingJelly, snnTorch and Norse.

Every implementation runs a layer of LIF neurons over a float32 input ``[T, B, N]`` and back-
propagates ``spikes.sum()``, in the same process, interleaved round by round (this machine is
noisy); the table shows medians and ratios to neuroflow's fused kernel. The floor is the memory
traffic the fused kernel cannot avoid (forward: read x, write spikes; backward: read the spike
gradient and x, write the input gradient = 5 T B N x 4 bytes) divided by the copy bandwidth that
this script measures on the same machine with a tensor of the same size.

A second floor bounds the arithmetic: the default (sigmoid) surrogate needs at least one sigmoid per
element in the backward, timed as ``torch.sigmoid(x, out=...)`` on the same threads. Unless
``--system-malloc`` is given, the script first calls
:func:`neuroflow.allocator.retain_freed_memory` (as the ``neuroflow`` command does), which applies
to every library in the process alike: with glibc's defaults each fresh multi-MB tensor costs
page faults, which dominate at these sizes.

    python benchmarks/bench_neurons.py [--repeat 15] [--json results.json] [--only T16_B32_N4096]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from floors import copy_bandwidth, median_seconds

from neuroflow.allocator import retain_freed_memory
from neuroflow.neurons import LIF

SIZES = {"T16_B32_N4096": (16, 32, 4096), "T64_B16_N65536": (64, 16, 65536)}


def neuroflow_step(backend, strict=False):
    node = LIF(tau=2.0, backend=backend, strict=strict)
    return lambda x: node(x)


def spikingjelly_step():
    from spikingjelly.activation_based import neuron

    node = neuron.LIFNode(tau=2.0, step_mode="m")

    def run(x):
        node.reset()
        return node(x)

    return run


def snntorch_step():
    import snntorch

    node = snntorch.Leaky(beta=0.5, threshold=1.0)  # beta = 1 - 1/tau

    def run(x):
        mem = node.init_leaky()
        spikes = []
        for x_t in x:
            spk, mem = node(x_t, mem)
            spikes.append(spk)
        return torch.stack(spikes)

    return run


def norse_step():
    from norse.torch import LIF as NorseLIF

    node = NorseLIF()
    return lambda x: node(x)[0]


PEERS = {
    "neuroflow": lambda: neuroflow_step("auto"),
    # NIR's firing rule (h > v_th) on the same fused kernel
    "neuroflow_strict": lambda: neuroflow_step("auto", strict=True),
    "torch_ref": lambda: neuroflow_step("torch"),
    "spikingjelly": spikingjelly_step,
    "snntorch": snntorch_step,
    "norse": norse_step,
}


def sigmoid_time(x: torch.Tensor, repeat: int) -> float:
    """Median seconds of one ``torch.sigmoid`` pass over ``x`` into a preallocated output."""
    out = torch.empty_like(x)
    return median_seconds(lambda: torch.sigmoid(x, out=out), repeat)


def time_once(step, x0: torch.Tensor) -> float:
    x = x0.detach().clone().requires_grad_(True)
    t0 = time.perf_counter()
    step(x).sum().backward()
    return time.perf_counter() - t0


def bench_size(name: str, shape, repeat: int, peers) -> dict:
    x0 = torch.randn(shape) * 1.5 + 0.5
    steps = {}
    for peer in peers:
        try:
            steps[peer] = PEERS[peer]()
        except ImportError as e:
            print(f"  {peer}: not installed ({e.name}); skipped")
    times = {peer: [] for peer in steps}
    for step in steps.values():  # warm-up: compilation, allocator
        for _ in range(2):
            time_once(step, x0)
    for _ in range(repeat):
        for peer, step in steps.items():
            times[peer].append(time_once(step, x0))
    numel = x0.numel()
    bandwidth = copy_bandwidth(numel, repeat)
    result = {f"{peer}_ms": statistics.median(t) * 1e3 for peer, t in times.items()}
    result["floor_ms"] = 5 * numel * 4 / bandwidth * 1e3
    result["sigmoid_floor_ms"] = sigmoid_time(x0, repeat) * 1e3
    result["copy_bandwidth_GBps"] = bandwidth / 1e9
    return result


def print_table(name: str, result: dict) -> None:
    base = result.get("neuroflow_ms")
    threads = torch.get_num_threads()
    print(f"\n{name}  (median ms; ratio = time / neuroflow fused; torch threads = {threads})")
    for key, value in result.items():
        if key.endswith("_ms"):
            ratio = f"{value / base:6.2f}x" if base else ""
            print(f"  {key[:-3]:<17} {value:9.2f} ms  {ratio}")
    print(f"  {'copy bandwidth':<17} {result['copy_bandwidth_GBps']:9.1f} GB/s")
    if base:
        print(f"  fused / floor  {base / result['floor_ms']:9.2f}x  (memory traffic)")
        floor = max(result["floor_ms"], result["sigmoid_floor_ms"])
        print(f"  fused / max(floors) {base / floor:5.2f}x")
        if "spikingjelly_ms" in result:
            print(f"  spikingjelly / fused {result['spikingjelly_ms'] / base:5.2f}x")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repeat", type=int, default=15, help="timed rounds per implementation (median)"
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument(
        "--only", choices=sorted(SIZES), action="append", help="run only these sizes"
    )
    parser.add_argument("--peers", nargs="+", default=list(PEERS), choices=list(PEERS))
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="keep glibc's default malloc thresholds (fresh pages for large tensors)",
    )
    args = parser.parse_args(argv)
    if not args.system_malloc:
        print(f"retain freed memory (glibc mallopt): {retain_freed_memory()}")
    results = {}
    for name in args.only or SIZES:
        repeat = args.repeat if SIZES[name][2] < 10000 else max(3, args.repeat // 3)
        results[name] = bench_size(name, SIZES[name], repeat, args.peers)
        print_table(name, results[name])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

"""Submanifold sparse convolution forward + backward: neuroflow against dense conv3d and spconv.

Setting (issue 4): a 64^3 grid with 8,192 random occupied voxels, 32 -> 32 channels, kernel 3,
float32 on the CPU, the kernel map built once and reused (as by the convolutions of one stage).
Each round backpropagates a fixed random output gradient ``g``.

* dense: ``torch.nn.functional.conv3d`` on the densified grid (same voxels, same weights);
* spconv 2.3.8 ``SubMConv3d`` on the CPU, with one torch thread: its CPU scatter-add gives wrong
  rows with more than one thread, and on a CPU-only torch its backward asks for a CUDA stream, so
  ``spconv.pytorch.ops.get_current_stream`` is patched to return 0. Its output and gradients are
  checked against the dense result before it is timed;
* neuroflow at ``--threads`` torch threads (default 2), checked against dense the same way, and
  also at 1 thread, spconv's setting (on a loaded machine 2 intra-op threads can be slower).

Event-driven table: forward (and forward + backward) time when only 100 / 50 / 10 % of the voxels
spike (rows of integer spikes 1..4, the others all zero), with ``event_driven=True``, against
the non-skipping path at 100 %. Each forward is also set against its physical floor, measured in
the same run (:func:`forward_floors`): reading the input and writing the output at the machine's
copy bandwidth, or the spiking pairs' multiply-adds at the rate of a dense matmul of the same
shape, whichever takes longer.

The implementations run interleaved round by round and the table reports medians and minima
(this machine is shared and noisy). Unless ``--system-malloc`` is given, the script first calls
:func:`neuroflow.allocator.retain_freed_memory` (as the ``neuroflow`` command and the other
benchmarks do; every implementation alike), so that arrays of different sizes allocated in turn
do not start on fresh pages. (In a test that alternated two kernel versions at three densities,
the page faults made the event forward at 10% 0.87 ms instead of 0.29; in this script's own
rounds the ratios moved within the noise: 10% forward 3.64-3.97x with glibc's defaults and
3.93-4.09x without, in alternating runs.)

Sweep (``--sweep``, instead of the tables above): the measurements that set the thresholds of
:class:`~neuroflow.layers.sparse.policy.SparseConvPolicy`, run on this machine. For two maps
(the random voxels above, ~1.8 pairs each; a sphere shell of ~15,000 voxels, ~13 pairs each), six
layer widths and three shares of spiking voxels, the event path against the batched path, each
forced by a policy, in four settings: inference (forward), training (forward + backward), the
forward + input gradient and the forward + weight gradient of the non-skipping path (the one
field that picks that gradient switched). A ratio above 1 means the event kernels win; move each
threshold of the policy to where its ratio crosses 1 (``docs/sparse_convolution.md``).

    python benchmarks/bench_sparse_conv.py [--repeat 30] [--threads 2] [--json results.json]
        [--system-malloc]
    python benchmarks/bench_sparse_conv.py --sweep [--repeat 5] [--json sweep.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from floors import copy_bandwidth, median_seconds

from neuroflow.allocator import retain_freed_memory
from neuroflow.layers import SparseConvPolicy, build_kernel_map, sparse_conv
from neuroflow.layers.sparse.policy import UNLIMITED_MACS

GRID, VOXELS, CHANNELS, KERNEL = 64, 8192, 32, 3
#: largest error relative to the largest magnitude (float32; grad_W sums over all 8,192 voxels)
TOLERANCE = 1e-5


def random_voxels(generator: torch.Generator) -> torch.Tensor:
    keys = torch.randperm(GRID**3, generator=generator)[:VOXELS]
    return torch.stack(
        [torch.zeros_like(keys), keys // GRID**2, keys // GRID % GRID, keys % GRID], 1
    )


def dense_grid(coords: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    grid = features.new_zeros((1, GRID, GRID, GRID, features.shape[1]))
    grid = grid.index_put((coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]), features)
    return grid.permute(0, 4, 1, 2, 3)


def conv3d_weight(w: torch.Tensor) -> torch.Tensor:
    """neuroflow ``[K, Cin, Cout]`` -> conv3d ``[Cout, Cin, k, k, k]``."""
    return w.reshape(KERNEL, KERNEL, KERNEL, CHANNELS, CHANNELS).permute(4, 3, 0, 1, 2)


def timed(step, threads: int) -> float:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def dense_step(coords, x, w, g):
    def run():
        xd = dense_grid(coords, x).requires_grad_()
        wd = conv3d_weight(w).detach().contiguous().requires_grad_()
        y = F.conv3d(xd, wd, padding=KERNEL // 2)
        y = y.permute(0, 2, 3, 4, 1)[coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]]
        grad_x, grad_w = torch.autograd.grad(y, (xd, wd), g)
        grad_x = grad_x.permute(0, 2, 3, 4, 1)[
            coords[:, 0], coords[:, 1], coords[:, 2], coords[:, 3]
        ]
        grad_w = grad_w.permute(2, 3, 4, 1, 0).reshape(w.shape)
        return y.detach(), grad_x, grad_w

    return run


def neuroflow_step(kmap, x, w, g, event_driven=False, input_grad=True):
    """Forward + backward; without ``input_grad`` only the weight gradient (a network's first layer,
    whose input spikes come from the encoder and need no gradient)."""

    def run():
        xs = x.detach().requires_grad_(input_grad)
        ws = w.detach().requires_grad_()
        y = sparse_conv(xs, ws, kmap, event_driven=event_driven)
        grads = torch.autograd.grad(y, (xs, ws) if input_grad else (ws,), g)
        return (y.detach(), *grads)

    return run


def neuroflow_forward(kmap, x, w, event_driven):
    def run():
        with torch.no_grad():
            return sparse_conv(x, w, kmap, event_driven=event_driven)

    return run


def spconv_step(coords, x, w, g):
    """spconv's SubMConv3d with our weights; ``None`` if spconv is not installed."""
    try:
        import spconv.pytorch as spconv
        import spconv.pytorch.ops as spconv_ops
    except ImportError:
        return None
    spconv_ops.get_current_stream = lambda: 0  # CPU-only torch: no CUDA stream to ask for
    conv = spconv.SubMConv3d(CHANNELS, CHANNELS, KERNEL, bias=False, indice_key="bench")
    with torch.no_grad():  # spconv weight layout [Cout, kx, ky, kz, Cin]
        conv.weight.copy_(
            w.reshape(KERNEL, KERNEL, KERNEL, CHANNELS, CHANNELS).permute(4, 0, 1, 2, 3)
        )
    base = spconv.SparseConvTensor(x, coords.int(), [GRID] * 3, 1)
    conv(base)  # builds the kernel map, kept in base's indice_dict

    def run():
        xs = x.detach().requires_grad_()
        out = conv(base.replace_feature(xs))
        grad_x, grad_w = torch.autograd.grad(out.features, (xs, conv.weight), g)
        grad_w = grad_w.permute(1, 2, 3, 4, 0).reshape(w.shape)
        return out.features.detach(), grad_x, grad_w

    return run


def max_error(result, reference) -> float:
    """Largest ``max |a - b| / max |b|`` over (output, grad_x, grad_w)."""
    return max(
        float((a.detach() - b.detach()).abs().max() / b.detach().abs().max())
        for a, b in zip(result, reference)
    )


def spike_rows(generator: torch.Generator, density: float) -> torch.Tensor:
    spikes = torch.randint(1, 5, (VOXELS, CHANNELS), generator=generator).float()
    return spikes * (torch.rand(VOXELS, 1, generator=generator) < density)


def forward_floors(
    kmap, inputs: dict, w: torch.Tensor, threads: int, repeat: int
) -> tuple[dict, dict]:
    """Per case of ``inputs`` (name -> ``[N, Cin]`` features), the forward's physical floor in ms:
    the larger of its memory traffic (read the input, write the output, at this machine's copy
    bandwidth) and its arithmetic (the spiking inputs' pairs x Cin x Cout multiply-adds at the rate
    of torch's dense ``[N, Cin] @ [Cin, Cout]``, the same shape of product). Returns the floors and
    the two rates."""
    torch.set_num_threads(threads)
    x = next(iter(inputs.values()))
    n, cin, cout = x.shape[0], w.shape[1], w.shape[2]
    bandwidth = copy_bandwidth(x.numel(), repeat)
    mac_rate = n * cin * cout / median_seconds(lambda: torch.mm(x, w[kmap.center]), repeat)
    floors = {}
    for name, features in inputs.items():
        spiking_pairs = int(features.ne(0).any(1)[kmap.in_idx].sum())
        memory = (features.numel() + kmap.num_out * cout) * features.element_size() / bandwidth
        floors[name] = max(memory, spiking_pairs * cin * cout / mac_rate) * 1e3
    return floors, {"copy_bandwidth_GBps": bandwidth / 1e9, "dense_mm_GMACps": mac_rate / 1e9}


def measure(steps: dict, repeat: int) -> dict:
    """Interleaved rounds, every other one in reverse order (a case that always ran first after
    another's large working set would pay its cold caches each round); ``steps`` maps name ->
    (callable, threads)."""
    times = {name: [] for name in steps}
    for round_ in range(repeat):
        for name, (step, threads) in steps.items() if round_ % 2 == 0 else reversed(steps.items()):
            times[name].append(timed(step, threads))
    return {
        name: {"median_ms": statistics.median(t) * 1e3, "min_ms": min(t) * 1e3}
        for name, t in times.items()
    }


SWEEP_WIDTHS = ((16, 16), (32, 32), (32, 64), (64, 64), (64, 128), (128, 128))
SWEEP_DENSITIES = (0.2, 0.6, 1.0)


def sphere_shell_voxels(radius: float = 30.0, thickness: float = 1.35) -> torch.Tensor:
    """The voxels of the grid within ``thickness`` of a sphere of ``radius`` (a surface, as real
    clouds are, with many neighbours per voxel)."""
    axis = torch.arange(GRID, dtype=torch.float32) - GRID / 2
    r = (axis[:, None, None] ** 2 + axis[None, :, None] ** 2 + axis[None, None, :] ** 2).sqrt()
    xyz = torch.nonzero((r >= radius - thickness / 2) & (r < radius + thickness / 2))
    return torch.cat([torch.zeros(len(xyz), 1, dtype=torch.int64), xyz], 1)


def sweep_settings() -> dict:
    """Per setting: (event policy, batched policy, event_driven, x needs grad, w needs grad)."""
    event, batched = SparseConvPolicy.event_always(), SparseConvPolicy.batched_only()
    grad_x = {"input_grad_event_macs": UNLIMITED_MACS, "input_grad_event_wide_macs": UNLIMITED_MACS}
    return {
        "inference": (event, batched, True, False, False),
        "training": (event, batched, True, True, True),
        "input_grad": (
            SparseConvPolicy(event_max_macs=UNLIMITED_MACS, **grad_x),
            SparseConvPolicy(input_grad_event_macs=0, input_grad_event_wide_macs=0),
            False,
            True,
            False,
        ),
        "weight_grad": (
            SparseConvPolicy(event_max_macs=UNLIMITED_MACS, weight_grad_event_macs=UNLIMITED_MACS),
            SparseConvPolicy(weight_grad_event_macs=0),
            False,
            False,
            True,
        ),
    }


def sweep_step(kmap, x, w, policy, event_driven: bool, x_grad: bool, w_grad: bool):
    g = torch.ones(kmap.num_out, w.shape[2])

    def run():
        xs, ws = x.detach().requires_grad_(x_grad), w.detach().requires_grad_(w_grad)
        with torch.set_grad_enabled(x_grad or w_grad):
            y = sparse_conv(xs, ws, kmap, event_driven=event_driven, policy=policy)
            if x_grad or w_grad:
                torch.autograd.grad(y, [t for t in (xs, ws) if t.requires_grad], g)

    return run


def sweep(args) -> dict:
    """The event path against the batched path per map, width, density and setting (medians)."""
    gen = torch.Generator().manual_seed(1)
    maps = {"random": random_voxels(gen), "shell": sphere_shell_voxels()}
    results = {}
    print("event path / batched path, median ms (ratio > 1: the event kernels win)")
    for map_name, coords in maps.items():
        kmap = build_kernel_map(coords, (GRID,) * 3, 1, KERNEL)
        n = coords.shape[0]
        print(
            f"\n{map_name}: {n} voxels, {kmap.num_pairs / n:.1f} pairs per voxel, "
            f"{args.threads} threads"
        )
        header = "".join(f"{s:>22}" for s in sweep_settings())
        print(f"{'layer':<10}{'spiking':>8}{header}")
        for cin, cout in SWEEP_WIDTHS:
            w = torch.randn(KERNEL**3, cin, cout, generator=gen) * 0.05
            for density in SWEEP_DENSITIES:
                spikes = torch.randint(1, 5, (n, cin), generator=gen).float()
                x = spikes * (torch.rand(n, 1, generator=gen) < density)
                row = {}
                for setting, (event, batched, driven, xg, wg) in sweep_settings().items():
                    times = measure(
                        {
                            "event": (sweep_step(kmap, x, w, event, driven, xg, wg), args.threads),
                            "batched": (
                                sweep_step(kmap, x, w, batched, driven, xg, wg),
                                args.threads,
                            ),
                        },
                        args.repeat,
                    )
                    e, b = times["event"]["median_ms"], times["batched"]["median_ms"]
                    row[setting] = {"event_ms": e, "batched_ms": b, "ratio": b / e}
                key = f"{map_name} {cin}->{cout} {density:.0%}"
                results[key] = row
                cells = "".join(
                    f"{r['event_ms']:>9.2f} /{r['batched_ms']:>7.2f}{r['ratio']:>5.2f}"
                    for r in row.values()
                )
                print(f"{f'{cin}->{cout}':<10}{density:>8.0%}{cells}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed rounds per implementation")
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads for neuroflow (spconv runs on 1)"
    )
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="keep glibc's default malloc thresholds (fresh pages for large arrays)",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="instead: event path against batched path per width and density, "
        "the measurements behind SparseConvPolicy's thresholds",
    )
    args = parser.parse_args()
    if not args.system_malloc:
        print(f"retain freed memory (glibc mallopt): {retain_freed_memory()}")
    if args.sweep:
        torch.set_num_threads(args.threads)
        results = {
            "setting": {"threads": args.threads, "repeat": args.repeat},
            "sweep": sweep(args),
        }
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=2)
        return

    gen = torch.Generator().manual_seed(0)
    coords = random_voxels(gen)
    x = torch.randn(VOXELS, CHANNELS, generator=gen)
    w = torch.randn(KERNEL**3, CHANNELS, CHANNELS, generator=gen) * 0.05
    g = torch.randn(VOXELS, CHANNELS, generator=gen)
    torch.set_num_threads(args.threads)
    for _ in range(2):  # the second build is timed: the first loads the numba kernels
        start = time.perf_counter()
        kmap = build_kernel_map(coords, (GRID,) * 3, 1, KERNEL)
        _ = kmap.grouped  # the batched layout is part of the cached map
        map_ms = (time.perf_counter() - start) * 1e3

    dense = dense_step(coords, x, w, g)
    reference = dense()
    steps = {"neuroflow": (neuroflow_step(kmap, x, w, g), args.threads)}
    if args.threads != 1:  # the same thread count as spconv
        steps["neuroflow_1thread"] = (steps["neuroflow"][0], 1)
    errors = {"neuroflow": max_error(steps["neuroflow"][0](), reference)}
    spconv = spconv_step(coords, x, w, g)
    if spconv is not None:
        torch.set_num_threads(1)
        errors["spconv"] = max_error(spconv(), reference)
        steps["spconv"] = (spconv, 1)
    for name, err in errors.items():
        print(f"{name}: max relative error vs dense conv3d (output, grad_x, grad_w) = {err:.2e}")
        if err > TOLERANCE:
            raise SystemExit(
                f"{name} disagrees with dense conv3d by {err:.2e} > {TOLERANCE}: not timing it"
            )

    fast = measure(steps, args.repeat)
    fast.update(measure({"dense": (dense, args.threads)}, max(3, args.repeat // 10)))
    print(
        f"\nSSC fwd+bwd, {GRID}^3 grid, {VOXELS} voxels, {CHANNELS}->{CHANNELS}, k={KERNEL}, "
        f"{kmap.num_pairs} pairs, map built once in {map_ms:.1f} ms "
        f"(neuroflow {args.threads} threads, spconv 1)"
    )
    print(f"{'implementation':<12}{'median ms':>12}{'min ms':>10}")
    for name, t in fast.items():
        print(f"{name:<12}{t['median_ms']:>12.3f}{t['min_ms']:>10.3f}")
    ours = fast["neuroflow"]["median_ms"]
    results = {
        "setting": {
            "grid": GRID,
            "voxels": VOXELS,
            "channels": CHANNELS,
            "kernel": KERNEL,
            "pairs": kmap.num_pairs,
            "threads": args.threads,
            "repeat": args.repeat,
            "system_malloc": args.system_malloc,
        },
        "kernel_map_ms": map_ms,
        "max_abs_error_vs_dense": errors,
        "times": fast,
        "speedup_vs_dense": fast["dense"]["median_ms"] / ours,
        "speedup_vs_spconv": fast["spconv"]["median_ms"] / ours if "spconv" in fast else None,
    }
    if "spconv" in fast and "neuroflow_1thread" in fast:
        results["speedup_vs_spconv_1thread"] = (
            fast["spconv"]["median_ms"] / fast["neuroflow_1thread"]["median_ms"]
        )
    print(
        f"speedup vs dense: {results['speedup_vs_dense']:.1f}x"
        + (f", vs spconv: {results['speedup_vs_spconv']:.2f}x" if "spconv" in fast else "")
    )

    # event-driven: time against the fraction of voxels that spike
    # three settings: inference; training with the input gradient (a layer inside the network:
    # grad_x needs every pair, spiking or not); training without it (the first layer)
    full = spike_rows(gen, 1.0)
    inputs = {"dense_path_100%": full}
    settings = {
        "forward": {"dense_path_100%": (neuroflow_forward(kmap, full, w, False), args.threads)},
        "forward_backward": {"dense_path_100%": (neuroflow_step(kmap, full, w, g), args.threads)},
        "forward_backward_weights_only": {
            "dense_path_100%": (neuroflow_step(kmap, full, w, g, input_grad=False), args.threads)
        },
    }
    for density in (1.0, 0.5, 0.1):
        spikes = spike_rows(gen, density)
        skipping, plain = (
            neuroflow_step(kmap, spikes, w, g, True)(),
            neuroflow_step(kmap, spikes, w, g)(),
        )
        if max_error(skipping, plain) > TOLERANCE:
            raise SystemExit(
                f"event-driven result differs from the plain path at density {density}"
            )
        name = f"event_{density:.0%}"
        inputs[name] = spikes
        settings["forward"][name] = (neuroflow_forward(kmap, spikes, w, True), args.threads)
        settings["forward_backward"][name] = (
            neuroflow_step(kmap, spikes, w, g, True),
            args.threads,
        )
        settings["forward_backward_weights_only"][name] = (
            neuroflow_step(kmap, spikes, w, g, True, input_grad=False),
            args.threads,
        )
    timings = {setting: measure(steps, args.repeat) for setting, steps in settings.items()}
    floors, rates = forward_floors(kmap, inputs, w, args.threads, args.repeat)
    print(
        "\nspike density (voxels with a non-zero row), median ms; "
        "ratio = non-skipping path at 100% / this"
    )
    print(
        f"{'case':<18}"
        + "".join(f"{label:>12}{'ratio':>7}" for label in ("forward", "fwd+bwd", "fwd+grad_W"))
    )
    results["event_driven"] = {}
    for name in settings["forward"]:
        row = results["event_driven"][name] = {}
        for setting, times in timings.items():
            row[setting] = times[name]
            row[f"{setting}_speedup"] = (
                times["dense_path_100%"]["median_ms"] / times[name]["median_ms"]
            )
        print(
            f"{name:<18}"
            + "".join(f"{row[s]['median_ms']:>12.3f}{row[s + '_speedup']:>7.2f}" for s in timings)
        )
    print(
        "\nforward floor: max(read the input + write the output at "
        f"{rates['copy_bandwidth_GBps']:.1f} GB/s, the spiking pairs' multiply-adds at torch's "
        f"dense mm rate {rates['dense_mm_GMACps']:.1f} GMAC/s)"
    )
    print(f"{'case':<18}{'floor ms':>12}{'forward / floor':>18}")
    for name, floor in floors.items():
        row = results["event_driven"][name]
        row["forward_floor_ms"] = floor
        print(f"{name:<18}{floor:>12.3f}{row['forward']['median_ms'] / floor:>18.2f}")
    results["floor_rates"] = rates
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()

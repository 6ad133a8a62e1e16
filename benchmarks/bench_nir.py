"""Inference of an N-MNIST spiking CNN imported from one NIR graph: neuroflow against the NIR
importers of SpikingJelly 2.0 and Norse 1.1, in the same run.

The graph has the architecture of the NIR paper's CNN experiment (neuromorphs/NIR
``paper/02_cnn``): Conv 2->16 5x5 stride 2, IF, Conv 16->16 3x3, IF, SumPool 2, Conv 16->8 3x3,
IF, SumPool 2, Flatten, Affine 128->256, IF, Affine 256->10, IF, on 34 x 34 x 2 event frames of
1 ms. Its weights are random (seeded) and scaled so that every layer spikes; the time step is
``dt = 1e-3`` and IF nodes carry ``r = 1 / dt``, which both peers accept. The input is Bernoulli
event frames at N-MNIST's density (about 0.6% of the pixels per 1 ms frame; about 4,000 events
in a 300 ms recording).

Each importer runs the same samples, batch 1 (Norse maps NIR's Flatten to ``nn.Flatten(0, -1)``,
which flattens the batch too, so it only runs one sample at a time): SpikingJelly and Norse step by
step, passing their state (SpikingJelly's multi-step mode fails on this graph: it maps SumPool2d
to nirtorch's ``LPPool2d`` stand-in, which takes no ``[T, B, ...]`` input), neuroflow on the whole
sequence. Rounds are interleaved; the table shows the median seconds per sample and each peer's
time divided by neuroflow's. The output spike counts are compared too (all three fire on the
same steps unless a potential lands exactly on the threshold: SpikingJelly fires on ``>=``).

    python benchmarks/bench_nir.py [--samples 2] [--steps 100] [--repeat 2] [--json FILE]
                                   [--threads N] [--nmnist DIR]
                                   (--nmnist: real recordings, e.g. datasets/nmnist/Train)

(N-MNIST recordings last about 300 ms: ``--steps 300`` for full ones.)
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
import warnings

import nir
import numpy as np
import torch

from neuroflow.allocator import retain_freed_memory

DT = 1e-3


def cnn_graph(seed: int = 0) -> nir.NIRGraph:
    """The NIR paper's N-MNIST CNN architecture with random weights (IF neurons, dt = 1 ms)."""
    rng = np.random.default_rng(seed)

    def conv(cin, cout, k, stride, pad, hw, gain):
        w = rng.normal(0, gain / np.sqrt(cin * k * k), (cout, cin, k, k)).astype(np.float32)
        return nir.Conv2d(
            input_shape=hw,
            weight=w,
            stride=stride,
            padding=pad,
            dilation=1,
            groups=1,
            bias=np.zeros(cout, np.float32),
        )

    def affine(nin, nout, gain):
        w = rng.normal(0, gain / np.sqrt(nin), (nout, nin)).astype(np.float32)
        return nir.Affine(weight=w, bias=np.zeros(nout, np.float32))

    def if_node(shape):
        return nir.IF(r=np.full(shape, 1 / DT), v_threshold=np.ones(shape), v_reset=np.zeros(shape))

    def pool():
        return nir.SumPool2d(
            kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
        )

    nodes = {
        "input": nir.Input(input_type=np.array([2, 34, 34])),
        "conv0": conv(2, 16, 5, 2, 2, (34, 34), 6.0),
        "if0": if_node((16, 17, 17)),
        "conv1": conv(16, 16, 3, 1, 1, (17, 17), 3.0),
        "if1": if_node((16, 17, 17)),
        "pool1": pool(),
        "conv2": conv(16, 8, 3, 1, 1, (8, 8), 2.0),
        "if2": if_node((8, 8, 8)),
        "pool2": pool(),
        "flat": nir.Flatten(input_type={"input": np.array([8, 4, 4])}, start_dim=0),
        "fc0": affine(128, 256, 3.0),
        "if3": if_node((256,)),
        "fc1": affine(256, 10, 3.0),
        "if4": if_node((10,)),
        "output": nir.Output(output_type=np.array([10])),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])))


def event_frames(samples: int, steps: int, density: float = 0.006, seed: int = 1) -> torch.Tensor:
    """``[samples, T, 1, 2, 34, 34]`` Bernoulli event frames (0/1)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(samples, steps, 1, 2, 34, 34, generator=g) < density).float()


def nmnist_frames(folder: str, samples: int, steps: int) -> torch.Tensor:
    """``[samples, T, 1, 2, 34, 34]`` frames of real N-MNIST recordings (``folder/<digit>/*.bin``)
    binned at 1 ms with :func:`neuroflow.data.events_to_frames` (Tonic's ``ToFrame``), cut or
    zero-padded to ``steps``."""
    from pathlib import Path

    from neuroflow.data.events.nmnist import read_events
    from neuroflow.data.events.tonic_interop import events_to_frames

    by_digit = [sorted(d.glob("*.bin")) for d in sorted(Path(folder).iterdir()) if d.is_dir()]
    files = [f for group in zip(*by_digit) for f in group][:samples]  # one digit after another
    if len(files) < samples:
        raise SystemExit(f"{folder} holds {len(files)} recordings (<digit>/*.bin), {samples} asked")
    out = torch.zeros(samples, steps, 1, 2, 34, 34)
    for i, path in enumerate(files):
        frames = torch.from_numpy(
            events_to_frames(read_events(path), (34, 34, 2), time_window=1000.0)
        )
        out[i, : min(steps, len(frames)), 0] = frames[:steps]
    return out


def neuroflow_runner(graph):
    import neuroflow.nir as nfn

    module = nfn.from_nir(graph, dt=DT).eval()
    return lambda x: module(x)


def spikingjelly_runner(graph):
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    # single-step mode: nirtorch's stand-in for SumPool2d (LPPool2d) takes no [T, B, ...] input
    module = import_from_nir(graph, dt=DT, step_mode="s").eval()

    def run(x):
        state, outs = None, []
        for x_t in x:
            out, state = module(x_t, state)
            outs.append(out)
        return torch.stack(outs)

    return run


def norse_runner(graph):
    import norse.torch as norse

    module = norse.from_nir(graph, dt=DT).eval()

    def run(x):
        state, outs = None, []
        for x_t in x:
            out, state = module(x_t, state)
            outs.append(out)
        return torch.stack(outs)

    return run


RUNNERS = {
    "neuroflow": neuroflow_runner,
    "spikingjelly": spikingjelly_runner,
    "norse": norse_runner,
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2, help="recordings per round (default 2)")
    parser.add_argument(
        "--steps", type=int, default=100, help="1 ms frames per recording (default 100)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for every importer (default: torch's). On a shared machine each "
        "small per-step operation can wait for busy threads: compare 1 and 2",
    )
    parser.add_argument(
        "--nmnist",
        default=None,
        metavar="DIR",
        help="real N-MNIST recordings (DIR/<digit>/*.bin, e.g. datasets/nmnist/Train) instead of "
        "Bernoulli frames",
    )
    parser.add_argument(
        "--json", dest="json_path", default=None, metavar="FILE", help="write the results"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    retain_freed_memory()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    torch.set_grad_enabled(False)

    graph = cnn_graph()
    if args.nmnist:
        data = nmnist_frames(args.nmnist, args.samples, args.steps)
    else:
        data = event_frames(args.samples, args.steps)
    runners, skipped = {}, {}
    for name, make in RUNNERS.items():
        try:
            runners[name] = make(graph)
        except ImportError as exc:
            skipped[name] = f"not installed ({exc.name})"
    times = {name: [] for name in runners}
    counts = {}
    for run in runners.values():  # warm-up: numba compilation, first calls
        run(data[0, :10])
    for _ in range(args.repeat):
        for name, run in runners.items():
            start = time.perf_counter()
            out = [run(x) for x in data]
            times[name].append((time.perf_counter() - start) / args.samples)
            counts[name] = torch.stack([o.sum(0) for o in out]).reshape(-1).tolist()
    medians = {name: statistics.median(t) for name, t in times.items()}
    base = medians.get("neuroflow")
    ratios = {name: m / base for name, m in medians.items()} if base else {}
    agree = {name: counts[name] == counts["neuroflow"] for name in counts if "neuroflow" in counts}
    total = sum(counts.get("neuroflow", [0]))
    print(
        f"N-MNIST spiking CNN from NIR, {args.samples} samples x {args.steps} steps of 1 ms, "
        f"batch 1, {torch.get_num_threads()} threads, median of {args.repeat}; "
        f"{total:g} output spikes"
    )
    print(f"{'importer':<14}{'s / sample':>12}{'x neuroflow':>13}  same output spikes")
    for name, m in medians.items():
        print(f"{name:<14}{m:>12.4f}{ratios.get(name, float('nan')):>13.2f}  {agree.get(name)}")
    for name, why in skipped.items():
        print(f"{name:<14}skipped: {why}")
    result = {
        "input": args.nmnist or "bernoulli frames",
        "samples": args.samples,
        "steps": args.steps,
        "repeat": args.repeat,
        "threads": torch.get_num_threads(),
        "seconds_per_sample": medians,
        "ratio_to_neuroflow": ratios,
        "same_output_spikes": agree,
        "skipped": skipped,
        "rounds": times,
    }
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(result, f, indent=2)
        print(f"json: {args.json_path}")
    return result


if __name__ == "__main__":
    main()

"""Cost of energy counting: one inference pass with and without an OpCounter.

The same scnn (channels 16, 32) runs on the same input, ``[8, 64, 2, 34, 34]`` binary spikes
(rate 0.1) by default, under ``torch.no_grad``; plain and counted passes are interleaved round by
round (the machine is shared and noisy) and the medians compared. Target: counting adds at most
25% to a pass.

    python benchmarks/bench_energy_overhead.py [--repeat 15] [--rate 0.1] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from neuroflow.energy import OpCounter
from neuroflow.models.scnn import SCNN


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rate", type=float, default=0.1, help="input spike probability")
    parser.add_argument(
        "--shape", type=int, nargs=5, default=[8, 64, 2, 34, 34], metavar=("T", "B", "C", "H", "W")
    )
    parser.add_argument("--json", default=None, help="write the timings to this file")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = SCNN(10, tuple(args.shape[2:]), channels=[16, 32]).eval()
    x = (torch.rand(args.shape) < args.rate).float()

    def plain() -> None:
        model(x)

    def counted() -> None:
        with OpCounter(model):
            model(x)

    times = {"plain": [], "counted": []}
    with torch.no_grad():
        plain(), counted()  # warm-up: numba kernels, caches
        for _ in range(args.repeat):
            for name, fn in (("plain", plain), ("counted", counted)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    overhead = med["counted"] / med["plain"] - 1
    print(
        f"input {args.shape}, spike rate {args.rate}, {args.repeat} rounds, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"plain pass   {med['plain'] * 1e3:8.1f} ms (median)")
    print(f"counted pass {med['counted'] * 1e3:8.1f} ms (median)")
    print(f"overhead     {overhead:+.1%} (target <= +25%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "shape": args.shape,
                    "rate": args.rate,
                    "median_s": med,
                    "overhead": overhead,
                    "times_s": times,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()

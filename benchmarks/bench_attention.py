"""V2 spike-driven self-attention vs softmax attention: time and peak memory, forward + backward.

    python benchmarks/bench_attention.py [--sizes 64 128 ... 4096] [--json results.json]

Both run on ``[B=8, H=8, N, d=32]`` float32 tensors with ``requires_grad`` and backpropagate a sum:

- ``sdsa_v2``: binary Q, K, V; ``LIF_0.5(Q (K^T V) * 0.125)`` with one time step (neuroflow's
  :func:`~neuroflow.layers.sdsa_v2` and LIF). ``K^T V`` is ``d x d`` per head: ``O(N d^2)``.
- ``product``: the same without the attention neuron, ``Q (K^T V) * 0.125`` alone.
- ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` on Gaussian Q, K, V (on CPU a
  fused flash-attention kernel; ``O(N^2 d)`` time, memory linear in N).

Time: median over repeats after one warm-up (fewer repeats for large N). Peak memory: each case runs
in its own subprocess; after the warm-up (which may JIT-compile kernels) it resets the kernel's
peak-RSS mark (``/proc/self/clear_refs``), notes its resident size (inputs allocated), runs the
repeats and reports the new peak (``VmHWM``) minus that: the extra memory that forward and backward
needed at their high-water mark, measured with glibc's default malloc. Times are measured in another
subprocess that keeps freed memory for reuse (:func:`neuroflow.allocator.retain_freed_memory`, as
the ``neuroflow`` command does; every method alike) unless ``--system-malloc`` is given: with
glibc's defaults each tensor above 32 MB comes on fresh pages. Machines here are shared: times
are noisy; ``--threads`` sets torch's intra-op threads for every case alike.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import resource
import statistics
import subprocess
import sys
import time

B, H, D = 8, 8, 32
DEFAULT_SIZES = [64, 128, 256, 512, 1024, 2048, 4096]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def reset_peak_rss() -> bool:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``, so memory kept for reuse by
    ``retain_freed_memory`` does not hide the next peak), then reset this process's peak-RSS mark
    (Linux >= 4.0); False where that is not allowed."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def run_case(method: str, n: int, repeats: int, threads: int | None, retain_memory: bool) -> dict:
    """Time ``method`` at ``n`` tokens in this process (called in a fresh subprocess)."""
    import torch
    import torch.nn.functional as F

    from neuroflow.allocator import retain_freed_memory
    from neuroflow.layers import sdsa_v2
    from neuroflow.neurons import LIF

    if threads:
        torch.set_num_threads(threads)
    if retain_memory:  # as the neuroflow command does; every method alike
        retain_freed_memory()
    torch.manual_seed(0)
    if method in ("sdsa_v2", "product"):
        q, k, v = ((torch.rand(B, H, n, D) < 0.2).float().requires_grad_() for _ in range(3))
        lif = LIF(v_threshold=0.5, detach_reset=True)

        def step():
            scores = sdsa_v2(q, k, v, 0.125)
            # one time step: the neuron sees [T=1, B, H, N, d]
            return lif(scores.unsqueeze(0)) if method == "sdsa_v2" else scores
    else:
        q, k, v = (torch.randn(B, H, n, D, requires_grad=True) for _ in range(3))

        def step():
            return F.scaled_dot_product_attention(q, k, v)

    times = []
    for i in range(repeats + 1):
        if i == 1:  # after the warm-up (kernel compilation, allocator growth)
            reset = reset_peak_rss()
            base = rss_bytes() if reset else 0
        for t in (q, k, v):
            t.grad = None
        start = time.perf_counter()
        step().sum().backward()
        if i:
            times.append(time.perf_counter() - start)
    extra = (peak_rss_bytes() - base) / 2**20 if reset else float("nan")
    return {
        "method": method,
        "n": n,
        "median_s": statistics.median(times),
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "peak_extra_mib": max(0.0, extra),
    }


def repeats_for(n: int) -> int:
    return 9 if n <= 512 else 5 if n <= 2048 else 3


def _subprocess_case(method: str, n: int, threads: int | None, system_malloc: bool) -> dict:
    cmd = [sys.executable, __file__, "--case", method, str(n)] + (
        ["--threads", str(threads)] if threads else []
    )
    cmd += ["--system-malloc"] if system_malloc else []
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(method: str, n: int, threads: int | None, system_malloc: bool) -> dict:
    """Time (malloc as chosen) and peak memory (always glibc's defaults: memory kept for reuse
    would count reuse slack as peak), each in its own subprocess."""
    timed = _subprocess_case(method, n, threads, system_malloc)
    memory = timed if system_malloc else _subprocess_case(method, n, threads, True)
    return {**timed, "peak_extra_mib": memory["peak_extra_mib"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--threads", type=int, help="torch intra-op threads in every case (default: torch's)"
    )
    parser.add_argument(
        "--system-malloc",
        action="store_true",
        help="keep glibc's default malloc thresholds (every large tensor on fresh pages)",
    )
    parser.add_argument("--case", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        method, n = args.case[0], int(args.case[1])
        print(json.dumps(run_case(method, n, repeats_for(n), args.threads, not args.system_malloc)))
        return

    rows = []
    print(
        f"attention fwd+bwd, B={B} H={H} d={D}, float32; "
        "median time, peak extra RSS (own subprocess)"
    )
    print(
        f"{'N':>6} {'sdsa_v2 ms':>11} {'product ms':>11} {'sdpa ms':>10} {'sdpa/v2':>8} "
        f"{'v2 MiB':>8} {'sdpa MiB':>9}"
    )
    for n in args.sizes:
        v2, prod, sd = (
            measure(m, n, args.threads, args.system_malloc) for m in ("sdsa_v2", "product", "sdpa")
        )
        ratio = sd["median_s"] / v2["median_s"]
        rows.append({"n": n, "sdsa_v2": v2, "product": prod, "sdpa": sd, "speedup": ratio})
        print(
            f"{n:>6} {1e3 * v2['median_s']:>11.2f} {1e3 * prod['median_s']:>11.2f} "
            f"{1e3 * sd['median_s']:>10.2f} "
            f"{ratio:>7.1f}x {v2['peak_extra_mib']:>8.1f} {sd['peak_extra_mib']:>9.1f}",
            flush=True,
        )
    faster = [r["n"] for r in rows if r["speedup"] > 1]
    crossover = next(
        (
            r["n"]
            for r in rows
            if r["speedup"] > 1 and all(s["speedup"] > 1 for s in rows if s["n"] >= r["n"])
        ),
        None,
    )
    print(
        f"crossover: sdsa_v2 is faster from N = {crossover} on"
        if crossover is not None
        else "crossover: sdsa_v2 is not faster at the largest N measured"
    )
    if len(rows) >= 2:
        a, b = rows[-2], rows[-1]
        for name in ("sdsa_v2", "product", "sdpa"):
            growth = b[name]["median_s"] / a[name]["median_s"]
            print(
                f"{name}: time x{growth:.2f} from N={a['n']} to N={b['n']} "
                f"(x{b['n'] / a['n']:g} tokens)"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "B": B,
                    "H": H,
                    "d": D,
                    "rows": rows,
                    "crossover_n": crossover,
                    "sizes_v2_faster": faster,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()

"""OpenMP wait policy of a short training run, with and without a busy process beside it.

Each variant runs ``neuroflow train configs/quickstart.yaml`` for one epoch on
``--samples`` training samples in a fresh process and reads the epoch's ``epoch_time_s`` from its
metrics.jsonl. Variants: libgomp's default (spin, then sleep), ``OMP_WAIT_POLICY=PASSIVE`` (the
CLI's default since it was measured here) and ``OMP_NUM_THREADS=1``. "busy" starts one
pure-Python busy loop beside the run, standing in for another job on the same cores.

    python benchmarks/bench_thread_policy.py [--reps 2] [--samples 384] [--json FILE]

Prints one line per run and, per variant, the ratio of the default's mean time to its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: "default": the variables unset (libgomp spins a while, then sleeps; ACTIVE would spin on)
VARIANTS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1thread": {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"},
}


def run_once(variant: str, busy: bool, samples: int, out: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env.update(VARIANTS[variant])
    argv = [sys.executable, "-c", _RUNNER, variant, str(out), str(samples)]
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["epoch_time_s"]


# the CLI sets PASSIVE when the variable is unset, so the default variant calls the trainer
# directly (the code path below the CLI)
_RUNNER = """
import sys
variant, out, samples = sys.argv[1], sys.argv[2], sys.argv[3]
overrides = ["loop.epochs=1", "loop.progress=false", f"output_dir={out}",
             f"data.max_samples={samples}"]
if variant == "default":
    from neuroflow.config import load_config
    from neuroflow.train import train
    train(load_config("configs/quickstart.yaml", overrides), overwrite=True)
else:
    from neuroflow.cli import main
    sys.exit(main(["train", "configs/quickstart.yaml", "--overwrite", "--set", *overrides]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--samples", type=int, default=384)
    parser.add_argument("--json", default=None, metavar="FILE")
    args = parser.parse_args()
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for busy in (False, True):
                for variant in VARIANTS:
                    key = f"{variant} busy={busy}"
                    seconds = run_once(variant, busy, args.samples, Path(tmp) / f"{key}-{rep}")
                    times.setdefault(key, []).append(seconds)
                    print(f"{key}: {seconds:.2f} s (load average {os.getloadavg()[0]:.1f})")
    for busy in (False, True):
        base = times[f"default busy={busy}"]
        for variant in VARIANTS:
            own = times[f"{variant} busy={busy}"]
            ratio = (sum(base) / len(base)) / (sum(own) / len(own))
            print(f"busy={busy} {variant}: mean {sum(own) / len(own):.2f} s, {ratio:.2f}x default")
    if args.json:
        Path(args.json).write_text(json.dumps({"epoch_time_s": times}, indent=2) + "\n")


if __name__ == "__main__":
    main()

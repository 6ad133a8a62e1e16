"""Exact resume: a run SIGKILLed mid-epoch and resumed with --resume ends bit-for-bit where an
uninterrupted run with the same seed ends."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from neuroflow.config import config_from_dict
from neuroflow.train import train

TIME_KEYS = {"epoch_time_s", "samples_per_s"}
EPOCHS = 3


def _records(out: Path):
    return [
        {k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
        for line in (out / "metrics.jsonl").read_text().splitlines()
    ]


def _epoch_of(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["epoch"])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "neuroflow", *args]


def _kill_inside_epoch_2(proc: subprocess.Popen, timeout: float = 120.0) -> str:
    """Read the run's progress bar (one refresh per step) and SIGKILL it once epoch 2 has taken
    a step but is far from done. Returns the output seen so far."""
    seen = bytearray()
    done = threading.Event()

    def pump():  # drain the pipe continuously, or the child would block on a full pipe
        while chunk := proc.stdout.read1(4096):
            seen.extend(chunk)
        done.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    bar = re.compile(rb"epoch 2/%d train:[^\r\n]*?\|\s*(\d+)/(\d+) \[" % EPOCHS)
    while time.monotonic() < deadline and not done.is_set():
        steps = [(int(a), int(b)) for a, b in bar.findall(bytes(seen))]
        if steps and 1 <= steps[-1][0] <= steps[-1][1] // 2:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=30)
    return seen.decode(errors="replace")


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tiny_config):
    # small batches: many steps per epoch; the progress bar refreshes at every step, so the test
    # sees where training is. translate: augmentation draws from torch's global generator, so the
    # checkpoint's RNG states must be restored for the resumed epochs to see the same shifts.
    sections = dict(
        data={"batch_size": 8, "time_steps": 8, "translate": 2},
        model={"channels": [8, 16]},
        loop={"epochs": EPOCHS, "progress": True, "log_every": 1},
        optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
    )
    raw, yaml_path = tiny_config(name="killed", **sections)
    out = Path(raw["output_dir"])
    # one thread everywhere: bitwise equality needs the same reduction order in every run, and
    # small ops run much faster single-threaded when other processes load the cores
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _cli("train", str(yaml_path)), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        output = _kill_inside_epoch_2(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, output[-2000:]
    assert _epoch_of(out / "last.pt") == 1, "the kill should land inside epoch 2"
    print(output.replace("\r", "\n").splitlines()[-1])  # where the kill landed (pytest -s)
    assert not (out / "summary.json").exists()

    resumed = subprocess.run(
        _cli("train", str(yaml_path), "--resume"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from" in resumed.stdout

    sections["loop"] = {"epochs": EPOCHS}  # no progress bar: it does not change the numbers
    ref_raw, _ = tiny_config(name="uninterrupted", **sections)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref_summary = train(config_from_dict(ref_raw))
    finally:
        torch.set_num_threads(threads)
    ref_out = Path(ref_raw["output_dir"])

    # identical metrics for every epoch (no duplicate or missing record) ...
    assert _records(out) == _records(ref_out)
    assert [r["epoch"] for r in _records(out)] == list(range(1, EPOCHS + 1))
    # ... identical parameters, optimiser state and step count ...
    got = torch.load(out / "last.pt", weights_only=True)
    ref = torch.load(ref_out / "last.pt", weights_only=True)
    assert got["global_step"] == ref["global_step"]
    assert got["model"].keys() == ref["model"].keys()
    for key in ref["model"]:
        assert torch.equal(got["model"][key], ref["model"][key]), key
    for pid, state in ref["optimizer"]["state"].items():
        assert torch.equal(
            got["optimizer"]["state"][pid]["momentum_buffer"], state["momentum_buffer"]
        )
    # ... and the same final test result
    summary = json.loads((out / "summary.json").read_text())
    for key in ("test_accuracy", "test_loss", "mean_firing_rate", "firing_rates", "best_epoch"):
        assert summary[key] == ref_summary[key], key

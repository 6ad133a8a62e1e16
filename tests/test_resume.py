"""Exact resume: a run SIGKILLed mid-epoch and resumed with --resume ends bit-for-bit where an
uninterrupted run with the same seed ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from neuroflow.config import config_from_dict
from neuroflow.train import train

TIME_KEYS = {"epoch_time_s", "samples_per_s"}
EPOCHS = 3


def _records(out: Path):
    return [{k: v for k, v in json.loads(line).items() if k not in TIME_KEYS}
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def _epoch_of(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["epoch"])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "neuroflow", *args]


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tiny_config):
    # small batches and more time steps: epochs of about a second, a wide window to kill in
    sections = dict(data={"batch_size": 8, "time_steps": 12}, model={"channels": [8, 16]},
                    loop={"epochs": EPOCHS},
                    optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9})
    raw, yaml_path = tiny_config(name="killed", **sections)
    out = Path(raw["output_dir"])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cli("train", str(yaml_path)), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (out / "last.pt").exists():  # written once epoch 1 is complete
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.005)
        time.sleep(0.1)  # a few steps into epoch 2
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _epoch_of(out / "last.pt") == 1, "the kill should land inside epoch 2"
    assert not (out / "summary.json").exists()

    resumed = subprocess.run(_cli("train", str(yaml_path), "--resume"), env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from" in resumed.stdout

    ref_raw, _ = tiny_config(name="uninterrupted", **sections)
    ref_summary = train(config_from_dict(ref_raw))
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
        assert torch.equal(got["optimizer"]["state"][pid]["momentum_buffer"], state["momentum_buffer"])
    # ... and the same final test result
    summary = json.loads((out / "summary.json").read_text())
    for key in ("test_accuracy", "test_loss", "mean_firing_rate", "firing_rates", "best_epoch"):
        assert summary[key] == ref_summary[key], key

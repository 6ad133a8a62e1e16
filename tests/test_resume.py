"""Exact resume: a run SIGKILLed mid-epoch and resumed with --resume ends bit-for-bit where an
uninterrupted run with the same seed ends; a resumed run keeps its own config (plus --set), and a
finished run is never overwritten without --overwrite."""

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
import yaml

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


def test_resume_continues_the_checkpoints_config_with_set_on_top(tiny_config, capsys):
    """Issue 19.4: --resume used the config file as it read at resume time, so a run started
    with --set optimizer.lr=0.02 went on with the file's rate; now the checkpoint's config
    continues and --set given with --resume applies on top (hyperparameters of the optimiser
    state included)."""
    from neuroflow.cli import main

    raw, yaml_path = tiny_config(
        name="resumed",
        optimizer={"lr": 0.01, "weight_decay": 0.0},
        scheduler={"name": "constant", "warmup_epochs": 0},
    )
    out = Path(raw["output_dir"])
    assert main(["train", str(yaml_path), "--set", "optimizer.lr=0.02"]) == 0
    # the file is edited afterwards: the running experiment must not follow it
    raw["optimizer"]["lr"] = 0.5
    yaml_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    capsys.readouterr()
    argv = ["train", str(yaml_path), "--resume", "--set", "loop.epochs=2"]
    assert main([*argv, "optimizer.weight_decay=0.25"]) == 0
    printed = capsys.readouterr().out
    in_force = "optimizer.weight_decay=0.25 (was 0.0), loop.epochs=2 (was 1)"
    assert f"values in force that differ from the checkpoint's config: {in_force}" in printed
    assert "the checkpoint's values stay: optimizer.lr=0.02 (file: 0.5)" in printed

    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["lr"] for r in records] == [0.02, 0.02]  # constant schedule at the run's own rate
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["config"]["optimizer"]["lr"] == 0.02 and last["config"]["loop"]["epochs"] == 2
    decays = {g["weight_decay"] for g in last["optimizer"]["param_groups"]}
    assert 0.25 in decays and decays <= {0.0, 0.25}  # no-decay groups (biases) keep theirs


def test_second_train_into_a_run_folder_is_refused_unless_overwrite(tiny_config, capsys):
    """Issue 19.3: a second train silently replaced the first run's best.pt."""
    from neuroflow.cli import main

    raw, yaml_path = tiny_config(name="kept")
    out = Path(raw["output_dir"])
    assert main(["train", str(yaml_path)]) == 0
    best = (out / "best.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", str(yaml_path), "--set", "seed=7"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {out} already holds a run (last.pt, best.pt, summary.json")
    assert "--overwrite" in err and "--resume" in err and "\n" not in err
    assert (out / "best.pt").read_bytes() == best  # untouched
    assert main(["train", str(yaml_path), "--set", "seed=7", "--overwrite"]) == 0
    assert torch.load(out / "best.pt", weights_only=True)["config"]["seed"] == 7

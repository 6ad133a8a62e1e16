"""Two CPU processes under torchrun (DDP, gloo) train like one process with the same global batch.

The model here has no BatchNorm (``model.batch_norm=false``): with BN each rank normalises by
its own half-batch statistics, which is a different computation from one process normalising the
whole batch (SyncBatchNorm would match, but PyTorch has no CPU kernel for it). Without BN the only
differences are float summation orders (per-rank batch means averaged by the all-reduce versus one
batch mean), so parameters agree to ~1e-6; the tolerance below is far smaller than what training
changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from neuroflow.config import config_from_dict
from neuroflow.train import train
from neuroflow.train.distributed import DistContext
from neuroflow.train.trainer import load_datasets, make_model

ATOL = 1e-5


def test_two_processes_match_one_process(tiny_config):
    sections = dict(
        # no BN (see above); a low threshold so that the neurons spike without BN's scaling
        model={"channels": [4, 8], "batch_norm": False, "v_threshold": 0.1},
        data={"batch_size": 16},  # global batch: 8 per rank under torchrun
        optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
        scheduler={"name": "constant", "warmup_epochs": 0.0},
        loop={"epochs": 1, "clip_grad": 1.0},
    )
    raw_ddp, yaml_ddp = tiny_config(name="ddp", **sections)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "neuroflow",
        "train",
        str(yaml_ddp),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("test accuracy:") == 1  # rank 0 alone reports

    raw_one, _ = tiny_config(name="single", **sections)
    cfg_one = config_from_dict(raw_one)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = train(cfg_one)
    finally:
        torch.set_num_threads(threads)

    ddp_out, one_out = Path(raw_ddp["output_dir"]), Path(raw_one["output_dir"])
    ddp_summary = json.loads((ddp_out / "summary.json").read_text())
    assert ddp_summary["world_size"] == 2 and single["world_size"] == 1
    ddp_ckpt = torch.load(ddp_out / "last.pt", weights_only=True)
    one_ckpt = torch.load(one_out / "last.pt", weights_only=True)
    assert ddp_ckpt["global_step"] == one_ckpt["global_step"]  # same number of global batches

    initial = make_model(cfg_one, load_datasets(cfg_one, DistContext())["train"]).state_dict()
    for key, ref in one_ckpt["model"].items():
        got = ddp_ckpt["model"][key]
        assert torch.allclose(got, ref, rtol=0, atol=ATOL), (key, (got - ref).abs().max())
        # training moved the weights far more than the tolerance, so the check means something
    print(
        "max |ddp - single| =",
        max((ddp_ckpt["model"][k] - one_ckpt["model"][k]).abs().max().item() for k in initial),
    )
    assert ddp_summary["mean_firing_rate"] > 0.01  # spikes happened: the check covers them
    moved = max((one_ckpt["model"][k] - initial[k]).abs().max().item() for k in initial)
    assert moved > 1000 * ATOL

    # metrics are all-reduced over ranks: the same per-epoch numbers and test result
    ddp_rec = json.loads((ddp_out / "metrics.jsonl").read_text().splitlines()[0])
    one_rec = json.loads((one_out / "metrics.jsonl").read_text().splitlines()[0])
    assert ddp_rec["train_samples"] == one_rec["train_samples"]
    assert abs(ddp_rec["train_loss"] - one_rec["train_loss"]) < 1e-5
    assert ddp_rec["val_accuracy"] == one_rec["val_accuracy"]
    assert ddp_summary["test_samples"] == single["test_samples"]
    assert ddp_summary["test_accuracy"] == single["test_accuracy"]

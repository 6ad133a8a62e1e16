"""End to end on point clouds: config validation, a tiny E-3DSNN training through the CLI,
evaluation of its checkpoint, and the real ModelNet40 sample through E-3DSNN-T when present."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from point_cloud_helpers import REPO, shared_modelnet40

from neuroflow.cli import main
from neuroflow.config import load_config
from neuroflow.data import build_datasets, prepare_synthetic_shapes
from neuroflow.errors import ConfigError
from neuroflow.models import build_model

TRAIN_PER_CLASS, TEST_PER_CLASS = 4, 2


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("pc") / "synthetic-shapes"
    return prepare_synthetic_shapes(root, TRAIN_PER_CLASS, TEST_PER_CLASS, seed=0, progress=False)


def tiny_shapes_config(root, out, **data):
    """A seconds-long E-3DSNN run on a few synthetic shapes (the tests' fast config)."""
    return {
        "name": "tiny_shapes",
        "seed": 0,
        "output_dir": str(out),
        "device": "cpu",
        "model": {"name": "e3dsnn", "channels": [4, 8, 8, 16], "depths": [1, 1, 1, 1]},
        "data": {
            "name": "synthetic-shapes",
            "root": str(root),
            "num_points": 128,
            "surface_points": 512,
            "voxel_size": 0.15,
            "time_steps": 1,
            "batch_size": 16,
            "val_fraction": 0.25,
            "synthetic_train_per_class": TRAIN_PER_CLASS,
            "synthetic_test_per_class": TEST_PER_CLASS,
            **data,
        },
        "optimizer": {"name": "adamw", "lr": 0.01},
        "loss": {"name": "ce", "label_smoothing": 0.1},
        "scheduler": {"name": "constant"},
        "loop": {"epochs": 1, "progress": False, "tensorboard": False},
    }


def test_train_and_evaluate_through_the_cli(shapes_root, tmp_path, capsys):
    cfg = tiny_shapes_config(shapes_root, tmp_path / "run", max_samples=16)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_samples"] == 16 and 0 <= summary["test_accuracy"] <= 1
    assert summary["epochs"] == 1 and summary["firing_rates"]  # the multi-spike neurons were seen
    capsys.readouterr()
    assert (
        main(["eval", str(path), "--checkpoint", str(tmp_path / "run" / "best.pt"), "--json"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["num_samples"] == summary["test_samples"]
    assert result["accuracy"] == pytest.approx(
        summary["test_accuracy"]
    )  # same checkpoint, same data


def test_resume_continues_exactly(shapes_root, tmp_path):
    """Two epochs in one go == one epoch, then --resume for the second (the augmentation's numpy
    draws are seeded from torch's checkpointed generator). Constant learning rate: the schedule
    does not depend on the number of epochs."""
    full, part = tmp_path / "full", tmp_path / "part"
    for out, epochs in ((full, 2), (part, 1)):
        cfg = tiny_shapes_config(shapes_root, out, max_samples=16)
        cfg["loop"]["epochs"] = epochs
        (tmp_path / f"{out.name}.yaml").write_text(yaml.safe_dump(cfg))
        assert main(["train", str(tmp_path / f"{out.name}.yaml")]) == 0
    assert main(["train", str(tmp_path / "part.yaml"), "--set", "loop.epochs=2", "--resume"]) == 0
    a = torch.load(full / "last.pt", weights_only=True)["model"]
    b = torch.load(part / "last.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("voxel_size", 0, "'data.voxel_size': must be > 0"),
        ("sampling", "poisson", "'data.sampling'.*one of 'fps', 'random'"),
        ("scale_range", [1.2, 0.9], "'data.scale_range'"),
        ("format", "ply", "'data.format'"),
        ("spike_levels", 0, "'data.spike_levels'"),
        ("voxel_sise", 0.1, "did you mean 'data.voxel_size'"),
    ],
)
def test_config_errors_name_the_key(tmp_path, key, value, message):
    cfg = tiny_shapes_config(tmp_path, tmp_path / "run", **{key: value})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


@pytest.mark.parametrize("name", ["shapes_e3dsnn.yaml", "modelnet40_e3dsnn_t.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(REPO / "configs" / name)
    assert cfg.data.name in ("synthetic-shapes", "modelnet40") and cfg.model.name.startswith(
        "e3dsnn"
    )


@pytest.mark.skipif(shared_modelnet40() is None, reason="no shared ModelNet40 sample")
@pytest.mark.parametrize(
    "folder, fmt", [("modelnet40_normal_resampled", "normal_resampled"), ("ModelNet40_off", "off")]
)
def test_real_modelnet40_through_e3dsnn_t(folder, fmt):
    """The real files (read-only here, so no cache) load and pass through E-3DSNN-T."""
    options = {
        "name": "modelnet40",
        "root": str(shared_modelnet40() / folder),
        "format": fmt,
        "num_points": 1024,
        "voxel_size": 0.02,
        "time_steps": 1,
        "cache": False,
        "val_fraction": 0.0,
        "test_fraction": 0.0,
    }
    ds = build_datasets(options, seed=0)["train"]
    assert len(ds) == len(
        list((shared_modelnet40() / folder).glob("*/*.txt" if fmt != "off" else "*/train/*.off"))
    )
    model = build_model("e3dsnn_t", {}, num_classes=40, input_shape=ds.input_shape).eval()
    x, y = ds.collate_fn([ds[i] for i in range(min(2, len(ds)))])
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (1, len(y), 40) and torch.isfinite(logits).all()


def test_two_processes_train_point_clouds(shapes_root, tmp_path):
    """torchrun with 2 CPU processes (DDP, gloo) trains E-3DSNN on sparse-tensor batches: the run
    ends, rank 0 alone reports, and the all-reduced counts cover exactly the samples one process
    sees. (With BatchNorm the two runs are different computations, so weights are not compared;
    tests/test_distributed.py compares them for a model without BatchNorm.)"""
    runs = {}
    for name, procs in (("ddp", 2), ("single", 1)):
        cfg = tiny_shapes_config(shapes_root, tmp_path / name, max_samples=24)
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(procs),
            "-m",
            "neuroflow",
            "train",
            str(path),
        ]
        proc = subprocess.run(
            cmd,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert proc.stdout.count("test accuracy:") == 1  # rank 0 alone reports
        runs[name] = (
            json.loads((tmp_path / name / "summary.json").read_text()),
            json.loads((tmp_path / name / "metrics.jsonl").read_text().splitlines()[0]),
        )
    (ddp, ddp_epoch), (single, single_epoch) = runs["ddp"], runs["single"]
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    assert ddp_epoch["train_samples"] == single_epoch["train_samples"] > 0
    assert ddp["test_samples"] == single["test_samples"] > 0
    assert 0 <= ddp["test_accuracy"] <= 1 and ddp["firing_rates"]

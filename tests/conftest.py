"""Shared fixtures: one small synthetic N-MNIST folder per session and a tiny experiment config."""

from __future__ import annotations

import pytest
import yaml

TRAIN_PER_CLASS = 12
TEST_PER_CLASS = 4


@pytest.fixture(autouse=True, scope="session")
def _cache_folder(tmp_path_factory):
    """Data caches of the whole session go to a temporary folder, not the repo's datasets/."""
    patch = pytest.MonkeyPatch()
    patch.setenv("NEUROFLOW_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A synthetic N-MNIST folder in the real on-disk format (120 train, 40 test recordings)."""
    from neuroflow.data import prepare_dataset

    root = tmp_path_factory.mktemp("data") / "synthetic-nmnist"
    prepare_dataset(
        "synthetic-nmnist",
        root,
        seed=0,
        train_per_class=TRAIN_PER_CLASS,
        test_per_class=TEST_PER_CLASS,
        progress=False,
    )
    return root


@pytest.fixture
def tiny_config(synthetic_root, tmp_path):
    """``tiny_config(**sections)`` -> (config dict, YAML path): a seconds-long scnn run whose
    sections can be updated key by key, e.g. ``tiny_config(loop={"epochs": 2})``."""

    def make(name: str = "tiny", **sections):
        cfg = {
            "name": name,
            "seed": 0,
            "output_dir": str(tmp_path / name),
            "device": "cpu",
            "model": {"name": "scnn", "channels": [4, 8]},
            "data": {
                "name": "synthetic-nmnist",
                "root": str(synthetic_root),
                "time_steps": 4,
                "batch_size": 16,
                "synthetic_train_per_class": TRAIN_PER_CLASS,
                "synthetic_test_per_class": TEST_PER_CLASS,
            },
            "optimizer": {"name": "adamw", "lr": 0.01},
            "scheduler": {"name": "cosine", "warmup_epochs": 0.5},
            "loss": {"name": "ce", "label_smoothing": 0.1},
            "loop": {"epochs": 1, "progress": False, "tensorboard": False},
        }
        for section, values in sections.items():
            if isinstance(values, dict):
                cfg[section].update(values)
            else:
                cfg[section] = values
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return cfg, path

    return make

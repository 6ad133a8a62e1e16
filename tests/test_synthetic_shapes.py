"""The synthetic shapes generator: layout, determinism, readability through the real OFF reader."""

from __future__ import annotations

import filecmp
import json

import numpy as np
import pytest

from neuroflow.cli import main
from neuroflow.data import build_datasets, prepare_synthetic_shapes, read_off
from neuroflow.data.pointcloud.mesh_sampling import triangle_areas_normals
from neuroflow.data.pointcloud.synthetic_shapes import (
    CLASSES,
    GENERATOR_VERSION,
    META_FILE,
    make_shape,
)
from neuroflow.errors import DatasetNotFoundError, InvalidArgumentError


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    """Every test caches into a folder of its own (``$NEUROFLOW_CACHE``)."""
    monkeypatch.setenv("NEUROFLOW_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory):
    return prepare_synthetic_shapes(
        tmp_path_factory.mktemp("s") / "shapes", 3, 2, seed=0, progress=False
    )


def test_layout_and_meta(shapes_root):
    assert len(CLASSES) >= 10
    for name in CLASSES:
        assert sorted(p.name for p in (shapes_root / name / "train").iterdir()) == [
            f"{name}_{i:04d}.off" for i in (1, 2, 3)
        ]
        assert len(list((shapes_root / name / "test").glob("*.off"))) == 2
    meta = json.loads((shapes_root / META_FILE).read_text())
    assert meta["generator_version"] == GENERATOR_VERSION and meta["classes"] == list(CLASSES)


def test_meshes_read_back_with_positive_area(shapes_root):
    for path in shapes_root.glob("*/*/*.off"):
        v, f = read_off(path)
        areas, _ = triangle_areas_normals(v, f)
        assert areas.sum() > 0.5 and np.abs(v).max() < 5


def test_same_seed_same_bytes(shapes_root, tmp_path):
    again = prepare_synthetic_shapes(tmp_path / "again", 3, 2, seed=0, progress=False)
    for path in shapes_root.glob("*/*/*.off"):
        assert filecmp.cmp(path, again / path.relative_to(shapes_root), shallow=False)
    other = prepare_synthetic_shapes(tmp_path / "other", 3, 2, seed=1, progress=False)
    assert not filecmp.cmp(
        shapes_root / "box/train/box_0001.off", other / "box/train/box_0001.off", shallow=False
    )


def test_random_proportions_and_rotations():
    rng = np.random.default_rng(0)
    extents = [np.ptp(make_shape("cylinder", rng)[0], axis=0) for _ in range(10)]
    assert np.std(extents, axis=0).min() > 0.05  # shapes differ in size and orientation
    with pytest.raises(InvalidArgumentError, match="unknown synthetic shape 'blob'"):
        make_shape("blob", rng)


def test_bad_arguments_and_occupied_root(tmp_path):
    with pytest.raises(InvalidArgumentError, match="train_per_class"):
        prepare_synthetic_shapes(tmp_path / "x", 0, 2, progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "something").write_text("")
    with pytest.raises(InvalidArgumentError, match="not an empty folder"):
        prepare_synthetic_shapes(tmp_path / "full", 1, 1, progress=False)


def test_dataset_generated_on_first_use(tmp_path):
    options = {
        "name": "synthetic-shapes",
        "root": str(tmp_path / "auto"),
        "num_points": 64,
        "surface_points": 256,
        "voxel_size": 0.2,
        "time_steps": 1,
        "synthetic_train_per_class": 2,
        "synthetic_test_per_class": 1,
        "val_fraction": 0.0,
    }
    with pytest.raises(DatasetNotFoundError, match="neuroflow data prepare synthetic-shapes"):
        build_datasets({**options, "prepare": False}, seed=0)
    ds = build_datasets(options, seed=0)
    assert ds["train"].num_classes == len(CLASSES) and len(ds["test"]) == len(CLASSES)
    with pytest.raises(InvalidArgumentError, match="prepared with train_per_class=2"):
        build_datasets({**options, "synthetic_train_per_class": 5}, seed=0)


def test_cli_prepare(tmp_path, capsys):
    assert main(["data", "prepare", "synthetic-shapes", "--root", str(tmp_path / "cli")]) == 0
    assert "ready in" in capsys.readouterr().out
    assert len(list((tmp_path / "cli").glob("*/train/*.off"))) > 100
    assert main(["data", "prepare", "modelnet40", "--root", str(tmp_path / "nothing")]) == 2
    assert "datasets/README.md" in capsys.readouterr().err

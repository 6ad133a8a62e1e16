"""ModelNet40 readers (normal_resampled text, ply_hdf5_2048, OFF), dataset building and the cloud
cache, on small files written in the exact on-disk layouts."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from neuroflow.data import build_datasets, read_modelnet_txt
from neuroflow.data.cache import cache_dir
from neuroflow.data.pointcloud.modelnet import detect_format
from neuroflow.errors import DataFormatError, DatasetNotFoundError, RegistryError
from neuroflow.layers.sparse import SparseTensor

CLASSES = ["airplane", "bowl", "chair"]


def _blob(rng, label, n):
    """A cloud whose shape depends on the label: a stretched Gaussian blob, with outward normals."""
    xyz = rng.normal(size=(n, 3)) * np.array([1.0, 0.5 + label, 0.3])
    normals = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    return np.concatenate([xyz, normals], axis=1)


@pytest.fixture
def normal_resampled(tmp_path):
    root = tmp_path / "modelnet40_normal_resampled"
    rng = np.random.default_rng(0)
    lists = {"train": [], "test": []}
    for label, cls in enumerate(CLASSES):
        (root / cls).mkdir(parents=True)
        for i in range(1, 8):
            name = f"{cls}_{i:04d}"
            cloud = _blob(rng, label, 300)
            (root / cls / f"{name}.txt").write_text(
                "\n".join(",".join(f"{v:.6f}" for v in row) for row in cloud)
            )
            lists["train" if i <= 5 else "test"].append(name)
    (root / "modelnet40_shape_names.txt").write_text("\n".join(CLASSES) + "\n")
    for split, names in lists.items():
        (root / f"modelnet40_{split}.txt").write_text("\n".join(names) + "\n")
    return root


def _write_h5(path, data, label, normal=None):
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data.astype(np.float32))
        f.create_dataset("label", data=label.reshape(-1, 1).astype(np.uint8))
        if normal is not None:
            f.create_dataset("normal", data=normal.astype(np.float32))


@pytest.fixture
def ply_hdf5(tmp_path):
    """modelnet40_ply_hdf5_2048: ply_data_{train,test}<k>.h5 listed (with the release's
    data/modelnet40_ply_hdf5_2048/ prefix) in train_files.txt / test_files.txt."""
    root = tmp_path / "modelnet40_ply_hdf5_2048"
    root.mkdir()
    rng = np.random.default_rng(1)
    files = {"train": ["ply_data_train0.h5", "ply_data_train1.h5"], "test": ["ply_data_test0.h5"]}
    for split, names in files.items():
        for name in names:
            labels = np.arange(6) % len(CLASSES)
            clouds = np.stack([_blob(rng, y, 2048) for y in labels])
            _write_h5(root / name, clouds[..., :3], labels)
        (root / f"{split}_files.txt").write_text(
            "".join(f"data/modelnet40_ply_hdf5_2048/{n}\n" for n in names)
        )
    (root / "shape_names.txt").write_text("\n".join(CLASSES) + "\n")
    return root


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    """Every test caches into a folder of its own (``$NEUROFLOW_CACHE``)."""
    monkeypatch.setenv("NEUROFLOW_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _options(root, **kw):
    return {
        "name": "modelnet40",
        "root": str(root),
        "num_points": 128,
        "surface_points": 512,
        "voxel_size": 0.1,
        "time_steps": 1,
        **kw,
    }


def test_read_modelnet_txt(normal_resampled):
    cloud = read_modelnet_txt(normal_resampled / "bowl" / "bowl_0001.txt")
    assert cloud.shape == (300, 6) and cloud.dtype == np.float32


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty point cloud"),
        ("1,2,3,0,0,1\n1,2,3,0,1\n", "line 2: expected 6 numbers"),
        ("1,2,3,0,0,1\n\n1,nan,3,0,0,1\n", "line 3: NaN"),
        ("1,2,3,0,0,1\n1,2,x,0,0,1\n", "line 2: expected 6 numbers"),
    ],
)
def test_bad_txt_names_the_file(tmp_path, text, problem):
    path = tmp_path / "bad_0001.txt"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=problem) as info:
        read_modelnet_txt(path)
    assert str(path) in str(info.value)


def test_normal_resampled_dataset(normal_resampled):
    assert detect_format(normal_resampled) == "normal_resampled"
    ds = build_datasets(_options(normal_resampled, val_fraction=0.2), seed=0)
    # 5 train files per class, 20% held out for validation; the 2 test files per class
    assert (len(ds["train"]), len(ds["val"]), len(ds["test"])) == (12, 3, 6)
    assert ds["train"].num_classes == 3 and ds["train"].input_shape == (6,)
    assert sorted(np.bincount(ds["test"].labels).tolist()) == [2, 2, 2]
    coords, feats, label = ds["test"][0]
    assert coords.shape[1] == 3 and feats.shape == (len(coords), 6) and 0 <= label < 3
    x, y = ds["train"].collate_fn([ds["train"][i] for i in range(4)])
    assert (
        isinstance(x, SparseTensor)
        and x.batch_size == 4
        and y.tolist() == ds["train"].labels[:4].tolist()
    )
    assert x.coords[:, 0].unique().tolist() == [0, 1, 2, 3]


def test_cache_is_reused_and_keyed_by_settings(normal_resampled):
    folder = cache_dir("points", normal_resampled)
    first = build_datasets(_options(normal_resampled), seed=0)
    cached = sorted(folder.glob("points-*.json"))
    assert len(cached) == 3  # train, val, test
    again = build_datasets(_options(normal_resampled), seed=0)
    np.testing.assert_array_equal(
        np.asarray(again["test"].clouds), np.asarray(first["test"].clouds)
    )
    assert sorted(folder.glob("points-*.json")) == cached
    build_datasets(_options(normal_resampled, num_points=64), seed=0)
    assert len(list(folder.glob("points-*.json"))) == 6  # a new key
    assert not (normal_resampled / ".cache").exists()


def test_read_only_root_is_not_written_and_the_point_cache_is_reused(normal_resampled, monkeypatch):
    from neuroflow.data.pointcloud import dataset as point_cloud_dataset

    folders = [normal_resampled, *[p for p in normal_resampled.rglob("*") if p.is_dir()]]
    before = {str(p): p.stat().st_mtime_ns for p in normal_resampled.rglob("*")}
    for folder in folders:
        folder.chmod(0o555)
    try:
        first = build_datasets(_options(normal_resampled), seed=0)
        assert len(list(cache_dir("points", normal_resampled).glob("points-*.npy"))) == 3

        def no_recompute(*args, **kwargs):
            raise AssertionError("the cached clouds were sampled again")

        monkeypatch.setattr(point_cloud_dataset, "_prepare_clouds", no_recompute)
        again = build_datasets(_options(normal_resampled), seed=0)
        np.testing.assert_array_equal(
            np.asarray(again["train"].clouds), np.asarray(first["train"].clouds)
        )
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert {str(p): p.stat().st_mtime_ns for p in normal_resampled.rglob("*")} == before


def test_worker_processes_prepare_the_same_clouds(normal_resampled, monkeypatch):
    from neuroflow.data.pointcloud import dataset as point_cloud_dataset

    options = _options(normal_resampled, cache=False, val_fraction=0.0)
    serial = build_datasets(options, seed=0)
    monkeypatch.setattr(
        point_cloud_dataset, "_usable_cpus", lambda: 2
    )  # two workers even on a one-core runner
    monkeypatch.setattr(point_cloud_dataset, "_PARALLEL_MIN_SAMPLES", 4)
    monkeypatch.setattr(point_cloud_dataset, "_CHUNK", 2)
    forked = build_datasets(options, seed=0)
    for split in ("train", "test"):
        np.testing.assert_array_equal(
            np.asarray(forked[split].clouds), np.asarray(serial[split].clouds)
        )
        assert forked[split].files == serial[split].files
    # a bad file found by a worker: skipped with a warning, or the error naming it
    (normal_resampled / "chair" / "chair_0003.txt").write_text("1,2,3\n")
    with pytest.warns(UserWarning, match="skipping bad file.*chair_0003.txt: line 1"):
        assert len(build_datasets({**options, "on_bad_file": "skip"}, seed=0)["train"]) == 14
    with pytest.raises(DataFormatError, match="chair_0003.txt: line 1: expected 6 numbers"):
        build_datasets(options, seed=0)


_WORKERS_DIE = {}  # the test process's pid and the real _prepare_chunk, for _dies_in_a_worker


def _dies_in_a_worker(refs, fmt, options):
    """_prepare_chunk, except that a worker process exits at once, as one killed for memory
    (module level: the pool pickles the function by name)."""
    import os

    if os.getpid() != _WORKERS_DIE["parent"]:
        os._exit(1)
    return _WORKERS_DIE["prepare"](refs, fmt, options)


def test_a_dead_worker_leaves_the_rest_to_this_process(normal_resampled, monkeypatch):
    import os

    from neuroflow.data.pointcloud import dataset as point_cloud_dataset

    options = _options(normal_resampled, cache=False, val_fraction=0.0)
    serial = build_datasets(options, seed=0)
    monkeypatch.setitem(_WORKERS_DIE, "parent", os.getpid())
    monkeypatch.setitem(_WORKERS_DIE, "prepare", point_cloud_dataset._prepare_chunk)
    monkeypatch.setattr(point_cloud_dataset, "_usable_cpus", lambda: 2)
    monkeypatch.setattr(point_cloud_dataset, "_PARALLEL_MIN_SAMPLES", 4)
    monkeypatch.setattr(point_cloud_dataset, "_CHUNK", 2)
    monkeypatch.setattr(point_cloud_dataset, "_prepare_chunk", _dies_in_a_worker)
    with pytest.warns(UserWarning, match="a worker preparing the point clouds died"):
        recovered = build_datasets(options, seed=0)
    np.testing.assert_array_equal(
        np.asarray(recovered["train"].clouds), np.asarray(serial["train"].clouds)
    )


def test_evaluation_items_are_deterministic_training_items_augmented(normal_resampled):
    ds = build_datasets(_options(normal_resampled, scale_range=[0.8, 1.2], shift=0.3), seed=0)
    a, b = ds["test"][1], ds["test"][1]
    np.testing.assert_array_equal(a[1], b[1])
    c, d = ds["train"][1], ds["train"][1]
    assert not (c[1].shape == d[1].shape and np.array_equal(c[1], d[1]))


def test_ply_hdf5_dataset(ply_hdf5):
    assert detect_format(ply_hdf5) == "ply_hdf5_2048"
    ds = build_datasets(_options(ply_hdf5, use_normals=False, val_fraction=0.0), seed=0)
    assert (len(ds["train"]), len(ds["test"])) == (12, 6) and ds["val"] is None
    assert ds["train"].input_shape == (3,) and ds["train"].classes == CLASSES
    with h5py.File(ply_hdf5 / "ply_data_test0.h5") as f:
        expected = sorted(f["label"][:, 0].tolist())
    assert sorted(ds["test"].labels.tolist()) == expected


def test_ply_hdf5_without_normals_refuses_use_normals(ply_hdf5):
    with pytest.raises(
        DataFormatError, match=r"ply_data_train\d.h5.*no normals.*use_normals: false"
    ):
        build_datasets(_options(ply_hdf5, use_normals=True), seed=0)


@pytest.mark.parametrize(
    "damage, problem",
    [
        ("garbage", "not a readable HDF5 file"),
        ("no_label", r"missing dataset\(s\) \['label'\]"),
        ("bad_shape", r"'data' must be \[N, P, 3\]"),
        ("nan", "NaN"),
    ],
)
def test_malformed_h5_names_the_file(ply_hdf5, damage, problem):
    path = ply_hdf5 / "ply_data_train1.h5"
    path.unlink()
    if damage == "garbage":
        path.write_bytes(b"not an hdf5 file at all")
    elif damage == "no_label":
        with h5py.File(path, "w") as f:
            f.create_dataset("data", data=np.zeros((2, 16, 3), np.float32))
    elif damage == "bad_shape":
        _write_h5(path, np.zeros((2, 16, 2)), np.zeros(2))
    else:
        data = np.random.default_rng(0).normal(size=(2, 16, 3))
        data[1, 3, 0] = np.nan
        _write_h5(path, data, np.zeros(2))
    with pytest.raises(DataFormatError, match=problem) as info:
        build_datasets(_options(ply_hdf5, use_normals=False, cache=False), seed=0)
    assert str(path) in str(info.value)


def test_missing_or_unknown_data(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        build_datasets(_options(tmp_path / "nowhere"), seed=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="datasets/README.md"):
        build_datasets(_options(tmp_path / "empty"), seed=0)
    with pytest.raises(RegistryError):
        build_datasets({"name": "modelnet10"}, seed=0)


def test_format_that_does_not_match_the_folder_names_the_one_it_holds(ply_hdf5):
    with pytest.raises(DatasetNotFoundError) as info:
        build_datasets(_options(ply_hdf5, format="normal_resampled", use_normals=False), seed=0)
    message = str(info.value)
    assert str(ply_hdf5) in message and "modelnet40_shape_names.txt" in message
    assert "it holds ply_hdf5_2048: set data.format: ply_hdf5_2048" in message
    with pytest.raises(
        DatasetNotFoundError, match=r"format 'off'.*<class>/train/\*.off.*datasets/README.md"
    ):
        build_datasets(_options(ply_hdf5.parent, format="off"), seed=0)


def test_data_prepare_checks_the_folder_and_says_what_it_holds(normal_resampled, ply_hdf5, capsys):
    from neuroflow.cli import main

    assert main(["data", "prepare", "modelnet40", "--root", str(normal_resampled)]) == 0
    assert (
        "normal_resampled format, 3 classes, 15 training and 6 test samples"
        in capsys.readouterr().out
    )
    assert main(["data", "prepare", "modelnet40", "--root", str(ply_hdf5)]) == 0
    assert (
        "ply_hdf5_2048 format, 3 classes, 12 training and 6 test samples" in capsys.readouterr().out
    )
    (normal_resampled / "chair" / "chair_0007.txt").unlink()  # listed in modelnet40_test.txt
    assert main(["data", "prepare", "modelnet40", "--root", str(normal_resampled)]) == 2
    assert "modelnet40_test.txt line 6 lists chair_0007" in capsys.readouterr().err


def test_skip_bad_files(normal_resampled):
    (normal_resampled / "bowl" / "bowl_0002.txt").write_text("")
    with pytest.raises(DataFormatError, match="bowl_0002.txt"):
        build_datasets(_options(normal_resampled), seed=0)
    with pytest.warns(UserWarning, match="skipping bad file.*bowl_0002"):
        ds = build_datasets(
            _options(normal_resampled, on_bad_file="skip", val_fraction=0.0), seed=0
        )
    assert len(ds["train"]) == 14


def test_an_empty_carved_test_split_says_why_and_how_to_fix_it(normal_resampled):
    """One training file per class and no test files: 10% of 1 rounds to 0 for every class. The
    builder says so, and each fix it proposes does give a test split."""
    import re

    listing = normal_resampled / "modelnet40_train.txt"
    listing.write_text("".join(f"{c}_0001\n" for c in CLASSES))
    (normal_resampled / "modelnet40_test.txt").unlink()  # no test files: the split is carved
    with pytest.warns(UserWarning) as record:
        d = build_datasets(_options(normal_resampled), seed=0)
    assert d["test"] is None
    (message,) = [str(w.message) for w in record if "test split is empty" in str(w.message)]
    assert "has no test files" in message and "data.test_fraction=0.1" in message
    assert "rounds to 0 for every class" in message and "classes hold 1 to 1 files" in message
    fraction = float(re.search(r"data.test_fraction to at least ([0-9.]+)", message).group(1))
    per_class = int(re.search(r"at least (\d+) training files", message).group(1))
    assert (fraction, per_class) == (0.5, 5)  # round half up: 0.5 x 1 and 0.1 x 5 give 1
    # the proposed fraction gives every class a test file
    fixed = build_datasets(_options(normal_resampled, test_fraction=fraction), seed=0)
    assert len(fixed["test"]) == len(CLASSES)
    # and so do the proposed files per class (5 per class: one to val, one to test)
    listing.write_text("".join(f"{c}_{i:04d}\n" for c in CLASSES for i in range(1, per_class + 1)))
    enough = build_datasets(_options(normal_resampled), seed=0)
    assert len(enough["test"]) == len(CLASSES) and len(enough["val"]) == len(CLASSES)

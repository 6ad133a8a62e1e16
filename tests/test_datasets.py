"""build_datasets: splits, items, collation, the frame cache, bad files and missing data."""

from __future__ import annotations

import json
import os
import pickle
import types
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from neuroflow.data import DATASETS, build_datasets, collate_time_first, prepare_dataset
from neuroflow.data.cache import cache_dir
from neuroflow.data.events import dataset as ds_module
from neuroflow.data.events import frame_cache
from neuroflow.data.events.nmnist import SampleRef
from neuroflow.data.events.transforms import to_frames
from neuroflow.errors import (
    DataFormatError,
    DatasetNotFoundError,
    InvalidArgumentError,
    RegistryError,
)


def encode(x, y, t, p) -> bytes:
    """Independent encoder (see the format in neuroflow.data.events.nmnist)."""
    rec = np.zeros((len(t), 5), np.uint8)
    rec[:, 0], rec[:, 1] = x, y
    rec[:, 2] = (np.asarray(p) << 7) | (np.asarray(t) >> 16)
    rec[:, 3], rec[:, 4] = (np.asarray(t) >> 8) & 255, np.asarray(t) & 255
    return rec.tobytes()


def make_root(
    root: Path, train_per_class: int = 10, test_per_class: int | None = 3, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    for split, per in (("Train", train_per_class), ("Test", test_per_class)):
        if per is None:
            continue
        for digit in range(10):
            folder = root / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per):
                n = int(rng.integers(50, 200))
                # a label-dependent blob so that frames differ by class
                x = np.clip(rng.normal(3 + 3 * digit, 2, n), 0, 33).astype(int)
                y = np.clip(rng.normal(17, 4, n), 0, 33).astype(int)
                t = np.sort(rng.integers(0, 300_000, n))
                p = rng.integers(0, 2, n)
                (folder / f"{k:05d}.bin").write_bytes(encode(x, y, t, p))
    return root


def cfg(root, **kw):
    return {"name": "nmnist", "root": str(root), **kw}


@pytest.fixture(autouse=True)
def cache_folder(tmp_path, monkeypatch):
    """Every test caches into a folder of its own (``$NEUROFLOW_CACHE``)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NEUROFLOW_CACHE", str(folder))
    return folder


@pytest.fixture
def root(tmp_path):
    return make_root(tmp_path / "nmnist")


def test_splits_sizes_stratified_disjoint(root):
    d = build_datasets(cfg(root), seed=0)
    assert set(d) == {"train", "val", "test"}
    assert (len(d["train"]), len(d["val"]), len(d["test"])) == (90, 10, 30)
    assert np.bincount(d["val"].labels).tolist() == [1] * 10  # 10% of each class
    assert np.bincount(d["train"].labels).tolist() == [9] * 10
    train, val, test = (set(d[k].files) for k in ("train", "val", "test"))
    assert not train & val and len(train | val) == 100
    assert all("/Test/" in f for f in test) and not any("/Test/" in f for f in train | val)
    # labels match the folder each file came from
    for split in d.values():
        assert all(f"/{label}/" in f for f, label in zip(split.files, split.labels))


def test_test_carved_from_train_when_no_test_folder(tmp_path):
    root = make_root(tmp_path / "only-train", train_per_class=20, test_per_class=None)
    d = build_datasets(cfg(root, val_fraction=0.1, test_fraction=0.2), seed=3)
    assert (len(d["train"]), len(d["val"]), len(d["test"])) == (140, 20, 40)
    assert np.bincount(d["test"].labels).tolist() == [4] * 10
    names = [set(d[k].files) for k in ("train", "val", "test")]
    assert sum(len(n) for n in names) == len(set().union(*names)) == 200


def test_splits_deterministic_in_seed(root):
    a = build_datasets(cfg(root), seed=1)
    b = build_datasets(cfg(root), seed=1)
    c = build_datasets(cfg(root), seed=2)
    assert a["val"].files == b["val"].files and a["train"].files == b["train"].files
    assert set(a["val"].files) != set(c["val"].files)


def test_max_samples_keeps_classes_balanced(root):
    d = build_datasets(cfg(root, max_samples=20), seed=0)
    assert len(d["train"]) == 20 and len(d["test"]) == 20 and len(d["val"]) == 10
    assert np.bincount(d["train"].labels, minlength=10).tolist() == [2] * 10


def test_items_collate_and_pickle(root):
    d = build_datasets(cfg(root, time_steps=6, split_by="count"), seed=0)
    train = d["train"]
    frames, label = train[0]
    assert frames.shape == (6, 2, 34, 34) and frames.dtype == torch.float32
    assert isinstance(label, int) and train.num_classes == 10 and train.input_shape == (2, 34, 34)
    # the frames are the counts of that file's events
    ref = SampleRef(train.files[0], None, label)
    np.testing.assert_array_equal(frames.numpy(), to_frames(ref.read(), 6, "count"))
    x, y = collate_time_first([train[i] for i in range(5)])
    assert x.shape == (6, 5, 2, 34, 34) and y.dtype == torch.long and y.shape == (5,)
    torch.testing.assert_close(x[:, 2], train[2][0])
    clone = pickle.loads(pickle.dumps(train))
    torch.testing.assert_close(clone[7][0], train[7][0])
    loader = torch.utils.data.DataLoader(train, batch_size=8, collate_fn=collate_time_first)
    xb, yb = next(iter(loader))
    assert xb.shape == (6, 8, 2, 34, 34)


def cache_files(root) -> dict[str, int]:
    folder = cache_dir("frames", root)
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.h5")} if folder.is_dir() else {}


def test_cache_reused_and_keyed_by_parameters(root, monkeypatch):
    build_datasets(cfg(root), seed=0)
    first = cache_files(root)
    assert len(first) == 3 and all(
        n.startswith(("frames-train-", "frames-val-", "frames-test-")) for n in first
    )
    assert not [p for p in cache_dir("frames", root).iterdir() if ".tmp-" in p.name]

    reads = {"n": 0}
    real_read = SampleRef.read

    def counting_read(self, *a, **k):
        reads["n"] += 1
        return real_read(self, *a, **k)

    monkeypatch.setattr(SampleRef, "read", counting_read)
    again = build_datasets(cfg(root), seed=0)
    assert reads["n"] == 0 and cache_files(root) == first  # nothing recomputed or rewritten
    assert len(again["train"]) == 90

    build_datasets(cfg(root, time_steps=5), seed=0)
    after_t = cache_files(root)
    assert len(after_t) == 6 and reads["n"] == 130  # new key: all frames computed again
    build_datasets(cfg(root, denoise_us=10_000), seed=0)
    before = cache_files(root)
    assert len(before) == 9
    # augmentation is applied after the cache: it does not change the key
    build_datasets(cfg(root, translate=3), seed=0)
    assert cache_files(root) == before
    # a changed file changes the key of the split it is in
    victim = Path(root) / "Test" / "4" / "00001.bin"
    victim.write_bytes(encode([1], [2], [3], [0]))
    build_datasets(cfg(root), seed=0)
    names = set(cache_files(root)) - set(after_t)
    assert any(n.startswith("frames-test-") for n in names)


def test_translation_is_random_per_access_and_train_only(root):
    plain = build_datasets(cfg(root), seed=0)
    aug = build_datasets(cfg(root, translate=4), seed=0)
    torch.manual_seed(0)
    x0 = plain["train"][3][0]
    views = [aug["train"][3][0] for _ in range(20)]
    assert any(not torch.equal(v, x0) for v in views)
    assert all(v.sum() <= x0.sum() for v in views)  # shifted, never invented
    torch.manual_seed(0)
    again = [aug["train"][3][0] for _ in range(20)]
    assert all(torch.equal(a, b) for a, b in zip(views, again))  # seeded by torch's generator
    torch.testing.assert_close(aug["test"][3][0], plain["test"][3][0])
    torch.testing.assert_close(aug["val"][0][0], plain["val"][0][0])


@pytest.mark.parametrize("cache", [True, False])
def test_bad_file_error_or_skip(root, cache):
    bad = Path(root) / "Train" / "7" / "00004.bin"
    bad.write_bytes(bad.read_bytes() + b"\x00\x01")  # truncated last record
    with pytest.raises(DataFormatError) as info:
        build_datasets(cfg(root, cache=cache), seed=0)
    assert info.value.path == str(bad) and info.value.offset is not None
    with pytest.warns(UserWarning, match="00004.bin"):
        d = build_datasets(cfg(root, cache=cache, on_bad_file="skip"), seed=0)
    assert len(d["train"]) + len(d["val"]) == 99
    assert str(bad) not in d["train"].files + d["val"].files


def test_unwritable_root_falls_back_to_files(root, monkeypatch):
    def deny(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ds_module, "build_frame_cache", deny)
    with pytest.warns(UserWarning, match="cannot write the frame cache"):
        d = build_datasets(cfg(root), seed=0)
    assert isinstance(d["train"].source, ds_module.EventFileFrames) and len(d["train"]) == 90
    assert d["train"][0][0].shape == (10, 2, 34, 34)


def test_zip_root(tmp_path):
    src = make_root(tmp_path / "src", train_per_class=5, test_per_class=2)
    root = tmp_path / "zipped"
    root.mkdir()
    for split in ("Train", "Test"):
        with zipfile.ZipFile(root / f"{split}.zip", "w") as zf:
            for f in sorted((src / split).rglob("*.bin")):
                zf.write(f, f.relative_to(src).as_posix())
    d = build_datasets(cfg(root), seed=0)
    assert (len(d["train"]), len(d["val"]), len(d["test"])) == (40, 10, 20)
    plain = build_datasets(cfg(src), seed=0)
    assert [Path(f).name for f in d["val"].files] == [Path(f).name for f in plain["val"].files]
    torch.testing.assert_close(d["val"][0][0], plain["val"][0][0])


def test_missing_or_empty_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="Train.zip") as info:
        build_datasets(cfg(tmp_path / "absent"), seed=0)
    assert "neuroflow data prepare synthetic-nmnist" in str(info.value)
    (tmp_path / "empty" / "Train").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="no <digit>/<id>.bin"):
        build_datasets(cfg(tmp_path / "empty"), seed=0)
    with pytest.raises(DatasetNotFoundError, match="neuroflow data prepare synthetic-nmnist"):
        build_datasets(
            {"name": "synthetic-nmnist", "root": str(tmp_path / "nope"), "prepare": False}, seed=0
        )
    with pytest.raises(DatasetNotFoundError):
        prepare_dataset("nmnist", tmp_path / "absent")


def test_synthetic_prepared_on_first_use(tmp_path):
    options = types.SimpleNamespace(  # any object with the attributes works, like DataConfig
        name="synthetic-nmnist",
        root=str(tmp_path / "syn"),
        time_steps=4,
        synthetic_train_per_class=10,
        synthetic_test_per_class=2,
        batch_size=32,
    )
    d = build_datasets(options, seed=0)
    assert (len(d["train"]), len(d["val"]), len(d["test"])) == (90, 10, 20)
    assert d["train"][0][0].shape == (4, 2, 34, 34) and d["train"][0][0].sum() > 500
    assert prepare_dataset("synthetic-nmnist", tmp_path / "syn") == tmp_path / "syn"  # reused
    options.synthetic_train_per_class = 11
    with pytest.raises(InvalidArgumentError, match="synthetic_train_per_class"):
        build_datasets(options, seed=0)
    options.synthetic_train_per_class = None  # "whatever is there"
    meta_file = tmp_path / "syn" / "synthetic-nmnist.json"
    meta = json.loads(meta_file.read_text())
    meta_file.write_text(json.dumps({**meta, "generator_version": -1}))
    with pytest.warns(UserWarning, match="another version of the synthetic N-MNIST generator"):
        build_datasets(options, seed=0)


def test_registry_and_option_errors(root):
    assert DATASETS.names() == [
        "modelnet40",
        "nmnist",
        "ntidigits",
        "synthetic-nmnist",
        "synthetic-shapes",
        "tonic",
    ]
    with pytest.raises(RegistryError, match="did you mean 'nmnist'"):
        build_datasets(cfg(root, name="nminst"), seed=0)
    for key, value in [
        ("time_steps", 0),
        ("split_by", "space"),
        ("val_fraction", 1.0),
        ("on_bad_file", "ignore"),
        ("translate", -1),
        ("max_samples", 0),
    ]:
        with pytest.raises(InvalidArgumentError, match=f"data.{key}"):
            build_datasets(cfg(root, **{key: value}), seed=0)


def test_concurrent_cache_writers_agree(root):
    """Two writers of the same cache at once (as two DDP ranks would be) both succeed, and the
    file that stays is whole and correct."""
    d = build_datasets(cfg(root), seed=0)
    path = d["train"].source.path
    os.remove(path)
    refs = [SampleRef(f, None, int(label)) for f, label in zip(d["train"].files, d["train"].labels)]
    maker = ds_module.EventsToFrames(10)
    params = {**maker.params(), "on_bad_file": "error"}
    key = frame_cache.cache_key(params, refs)
    assert Path(path).name == f"frames-train-{key}.h5"
    with ThreadPoolExecutor(2) as pool:
        jobs = [
            pool.submit(
                frame_cache.build_frame_cache, path, refs, maker, maker.frame_shape, key, params
            )
            for _ in range(2)
        ]
        assert [j.result() for j in jobs] == [Path(path)] * 2
    assert [p.name for p in Path(path).parent.iterdir() if ".tmp-" in p.name] == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = frame_cache.CachedFrames(path)
    assert len(again) == 90
    np.testing.assert_array_equal(again.get(5), maker(refs[5].read()))


def tree(folder: Path) -> dict[str, int]:
    """Every path under ``folder`` with its modification time."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*"))}


def test_read_only_root_is_not_written_and_the_cache_is_reused(tmp_path, cache_folder, monkeypatch):
    root = make_root(tmp_path / "ro", train_per_class=5, test_per_class=1)
    folders = [root, *[p for p in root.rglob("*") if p.is_dir()]]
    before = tree(root)
    for folder in folders:  # as a shared, read-only copy would be (even when running as root)
        folder.chmod(0o555)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # nothing to warn about: the cache has its own folder
            first = build_datasets(cfg(root), seed=0)
        cached = cache_files(root)
        assert len(cached) == 3 and cache_dir("frames", root).is_relative_to(cache_folder)
        assert isinstance(first["train"].source, ds_module.CachedFrames)

        reads = {"n": 0}
        real_read = SampleRef.read

        def counting_read(self, *a, **k):
            reads["n"] += 1
            return real_read(self, *a, **k)

        monkeypatch.setattr(SampleRef, "read", counting_read)
        again = build_datasets(cfg(root), seed=0)
        assert reads["n"] == 0 and cache_files(root) == cached  # reused, not rewritten
        torch.testing.assert_close(again["test"][0][0], first["test"][0][0])
        assert again["test"][0][0].shape == (10, 2, 34, 34)
    finally:
        for folder in folders:
            folder.chmod(0o755)
    assert tree(root) == before  # nothing written, nothing touched


def test_cache_folder_is_keyed_by_the_absolute_data_path(tmp_path, cache_folder, monkeypatch):
    a = make_root(tmp_path / "a" / "nmnist", train_per_class=2, test_per_class=1)
    b = make_root(tmp_path / "b" / "nmnist", train_per_class=2, test_per_class=1, seed=1)
    assert cache_dir("frames", a) != cache_dir("frames", b)  # same folder name, other path
    monkeypatch.chdir(tmp_path / "a")
    assert cache_dir("frames", "nmnist") == cache_dir("frames", a)  # relative or absolute
    monkeypatch.delenv("NEUROFLOW_CACHE")
    assert cache_dir("frames", a).is_relative_to(tmp_path / "a" / "datasets" / ".cache")


def test_unwritable_cache_folder_falls_back_to_the_files(root, cache_folder):
    cache_folder.mkdir()
    cache_folder.chmod(0o555)
    try:
        with pytest.warns(UserWarning, match="cannot write the frame cache.*NEUROFLOW_CACHE"):
            d = build_datasets(cfg(root), seed=0)
        assert isinstance(d["train"].source, ds_module.EventFileFrames)
        assert list(cache_folder.iterdir()) == [] and not (Path(root) / ".cache").exists()
    finally:
        cache_folder.chmod(0o755)


def test_an_empty_carved_test_split_says_why(tmp_path):
    root = make_root(tmp_path / "tiny", train_per_class=1, test_per_class=None)
    with pytest.warns(
        UserWarning,
        match=r"nmnist: the test split is empty: .* has no test files.*"
        r"give each class at least 5 training files.*test_fraction to at least 0.5",
    ):
        d = build_datasets(cfg(root), seed=0)
    assert len(d["test"]) == 0
    assert len(build_datasets(cfg(root, test_fraction=0.5), seed=0)["test"]) == 10

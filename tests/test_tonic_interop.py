"""Tonic interop against Tonic itself: its N-MNIST reader, ToFrame(time_window=...) and
PadTensors, and a Tonic dataset class named by a config (a tiny fake one, no download)."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from neuroflow.config import load_config
from neuroflow.data import (
    EVENT_DTYPE,
    TONIC_DTYPE,
    build_datasets,
    collate_padded,
    encode_events,
    events_to_frames,
    from_tonic,
    read_events,
    to_tonic,
)
from neuroflow.errors import ConfigError, DatasetNotFoundError, InvalidArgumentError


def random_events(rng, n=400, duration=10_000, size=(34, 34)):
    events = np.zeros(n, dtype=EVENT_DTYPE)
    events["x"] = rng.integers(0, size[0], n)
    events["y"] = rng.integers(0, size[1], n)
    events["t"] = np.sort(rng.integers(0, duration, n)) + 17
    events["p"] = rng.integers(0, 2, n)
    return events


def test_structured_round_trip_and_tonic_reads_the_same_events(tmp_path):
    tonic_io = pytest.importorskip("tonic.io")
    events = random_events(np.random.default_rng(0))
    path = tmp_path / "00001.bin"
    path.write_bytes(encode_events(events))
    ours = to_tonic(read_events(path))
    assert ours.dtype == TONIC_DTYPE
    # Tonic's own N-MNIST reader, with the dtype its NMNIST dataset uses
    theirs = tonic_io.read_mnist_file(str(path), dtype=np.dtype([(f, int) for f in "xytp"]))
    for field in "xytp":
        np.testing.assert_array_equal(ours[field], theirs[field])
    back = from_tonic(theirs)
    assert back.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(back, events)
    # Tonic datasets with -1/+1 or bool polarity read the same
    signed = to_tonic(events)
    signed["p"] = 2 * signed["p"] - 1
    np.testing.assert_array_equal(from_tonic(signed), events)


def test_bad_structured_arrays_are_named():
    with pytest.raises(InvalidArgumentError, match="missing p"):
        from_tonic(np.zeros(3, dtype=[("x", int), ("y", int), ("t", int)]))
    backwards = to_tonic(random_events(np.random.default_rng(1), n=5))[::-1]
    with pytest.raises(InvalidArgumentError, match="go backwards"):
        from_tonic(backwards)


@pytest.mark.parametrize(
    "time_window, duration",
    [(1000, 10_000), (1000, 3_000), (700, 10_000), (333.3, 5_000), (50_000, 10_000)],
)
def test_frames_by_time_window_match_tonic_to_frame(time_window, duration):
    transforms = pytest.importorskip("tonic.transforms")
    rng = np.random.default_rng(int(duration + time_window))
    events = to_tonic(random_events(rng, duration=duration))
    # events exactly on window edges, and the last one on an edge (a whole trailing window)
    events["t"][5:9] = events["t"][0] + time_window * np.arange(1, 5) // 1
    events["t"] = np.sort(events["t"])
    sensor = (34, 34, 2)
    theirs = transforms.ToFrame(sensor_size=sensor, time_window=time_window)(events.copy())
    ours = events_to_frames(events, sensor, time_window=time_window)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    # windows start at the first event, trailing partial window dropped: T = floor(span / w)
    span = events["t"][-1] - events["t"][0]
    assert ours.shape[0] == max(1, int(np.floor(span / time_window)))


def test_single_polarity_sensor_matches_tonic():
    transforms = pytest.importorskip("tonic.transforms")
    events = to_tonic(random_events(np.random.default_rng(3)))
    events["p"] = 1
    theirs = transforms.ToFrame(sensor_size=(34, 34, 1), time_window=2000)(events.copy())
    np.testing.assert_array_equal(events_to_frames(events, (34, 34, 1), 2000), theirs)


def test_recordings_without_y_match_tonic():
    """Audio-like recordings (Tonic's SHD: fields t, x, p) give [T, P, W] frames, as in Tonic."""
    transforms = pytest.importorskip("tonic.transforms")
    rng = np.random.default_rng(5)
    events = np.zeros(300, dtype=[("t", int), ("x", int), ("p", int)])
    events["t"] = np.sort(rng.integers(0, 20_000, 300))
    events["x"] = rng.integers(0, 700, 300)
    theirs = transforms.ToFrame(sensor_size=(700, 1, 1), time_window=1000)(events.copy())
    ours = events_to_frames(events, (700, 1, 1), 1000)
    assert ours.shape == theirs.shape == (theirs.shape[0], 1, 700)
    np.testing.assert_array_equal(ours, theirs)
    assert (from_tonic(events)["y"] == 0).all()


def test_padded_collate_matches_tonic_pad_tensors():
    collation = pytest.importorskip("tonic.collation")
    rng = np.random.default_rng(4)
    batch = [
        (torch.from_numpy(rng.random((t, 2, 3, 3)).astype(np.float32)), t % 3) for t in (4, 7, 2)
    ]
    frames, labels = collate_padded(batch)
    assert frames.shape == (7, 3, 2, 3, 3) and labels.tolist() == [1, 1, 2]
    ref_frames, ref_labels = collation.PadTensors(batch_first=False)(batch)
    torch.testing.assert_close(frames, ref_frames)
    assert labels.tolist() == ref_labels.tolist()
    assert frames[4:, 0].abs().sum() == 0  # zero after the end of a shorter sample


class TinyTonicDataset:
    """A Tonic-style dataset class: ``sensor_size`` (W, H, P), ``classes``, ``targets``,
    ``(events, target)`` items, ``save_to/<ClassName>`` on disk, and a ``download`` it calls
    when that folder is missing (as Tonic's datasets do)."""

    sensor_size = (8, 6, 2)
    classes = ["left", "right", "up"]

    def __init__(self, save_to, train=True, transform=None):
        self.location_on_system = Path(save_to) / type(self).__name__
        if not self.location_on_system.is_dir():
            self.download()
        rng = np.random.default_rng(0 if train else 1)
        n = 15 if train else 6
        self.targets = [i % 3 for i in range(n)]
        self.data = []
        for i in range(n):
            events = np.zeros(40 + i, dtype=TONIC_DTYPE)
            events["x"] = rng.integers(0, 8, len(events))
            events["y"] = rng.integers(0, 6, len(events))
            events["t"] = np.sort(rng.integers(0, 3000 + 500 * i, len(events)))
            events["p"] = rng.integers(0, 2, len(events))
            self.data.append(events)

    def download(self):
        raise AssertionError("a Tonic download was attempted")

    def __getitem__(self, i):
        return self.data[i], self.targets[i]

    def __len__(self):
        return len(self.data)


@pytest.fixture
def tiny_tonic(monkeypatch, tmp_path):
    tonic_datasets = pytest.importorskip("tonic.datasets")
    monkeypatch.setattr(tonic_datasets, "TinyTonicDataset", TinyTonicDataset, raising=False)
    (tmp_path / "tonic" / "TinyTonicDataset").mkdir(parents=True)
    return tmp_path / "tonic"


def test_config_names_a_tonic_dataset(tiny_tonic, tmp_path):
    path = tmp_path / "tonic.yaml"
    path.write_text(
        f"data:\n  name: tonic\n  dataset: TinyTonicDataset\n  root: {tiny_tonic}\n"
        "  time_steps: 5\n  val_fraction: 0.2\n"
    )
    cfg = load_config(path)
    d = build_datasets(cfg.data, cfg.seed)
    assert (len(d["train"]), len(d["val"]), len(d["test"])) == (12, 3, 6)
    frames, label = d["test"][1]
    assert frames.shape == (5, 2, 6, 8) and d["train"].input_shape == (2, 6, 8)
    assert d["train"].num_classes == 3
    source = TinyTonicDataset(tiny_tonic, train=False)
    events, target = source[int(d["test"].indices[1])]
    assert label == target and frames.sum() == len(events)  # every event in one of the frames
    clone = pickle.loads(pickle.dumps(d["test"]))  # DataLoader workers may pickle it
    torch.testing.assert_close(clone[1][0], frames)
    # fixed 1 ms windows: lengths differ, batches are padded to the longest
    window = load_config(path, ["data.time_steps=null", "data.time_window=1000"])
    dw = build_datasets(window.data, 0)
    loader = torch.utils.data.DataLoader(dw["test"], batch_size=6, collate_fn=dw["test"].collate_fn)
    x, y = next(iter(loader))
    lengths = [dw["test"][i][0].shape[0] for i in range(6)]
    assert x.shape == (max(lengths), 6, 2, 6, 8) and len(set(lengths)) > 1
    np.testing.assert_array_equal(
        dw["test"][0][0].numpy(),
        events_to_frames(source[int(dw["test"].indices[0])][0], (8, 6, 2), 1000),
    )


def test_tonic_settings_and_missing_data_are_clear(tiny_tonic, tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"tonic.datasets has no dataset 'TinyTonicDatset'; "
        r"did you mean 'TinyTonicDataset'",
    ):
        load_config(_write(tmp_path, "data:\n  name: tonic\n  dataset: TinyTonicDatset\n"))
    with pytest.raises(ConfigError, match=r"'data.time_window'"):
        load_config(_write(tmp_path, "data:\n  name: tonic\n  time_window: 1000\n"))
    with pytest.raises(DatasetNotFoundError, match="neuroflow does not download"):
        build_datasets(
            {"name": "tonic", "dataset": "TinyTonicDataset", "root": str(tmp_path / "nothing")}, 0
        )


def test_missing_tonic_package_is_named(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tonic", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "tonic.datasets", None)
    with pytest.raises(ConfigError, match=r"'data.dataset'.*optional package 'tonic'"):
        load_config(_write(tmp_path, "data:\n  name: tonic\n  dataset: NMNIST\n"))
    with pytest.raises(InvalidArgumentError, match=r"optional package 'tonic'"):
        build_datasets({"name": "tonic"}, 0)


def _write(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path

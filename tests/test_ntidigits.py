"""N-TIDIGITS HDF5 reader on a tiny file written here in the distributed layout (the layout Tonic's
NTIDIGITS18 reads: S_labels, S_addresses/<id>, S_timestamps/<id> in seconds)."""

from __future__ import annotations

import numpy as np
import pytest

from neuroflow.data.events.ntidigits import FILENAME, NTidigits, digit_class
from neuroflow.errors import DataFormatError, DatasetNotFoundError, InvalidArgumentError

h5py = pytest.importorskip("h5py")

# hand-written samples: id -> (channels, seconds)
TRAIN = {
    "man-ae-1z3": ([3, 10, 63], [0.001, 0.0025, 0.5]),
    "woman-bb-o": ([0, 7], [0.0, 0.25]),
    "boy-cc-z": ([5], [0.125]),
}
TEST = {"girl-dd-9": ([1, 2, 2], [0.01, 0.02, 0.03])}


def write_file(path, splits):
    with h5py.File(path, "w") as f:
        for split, samples in splits.items():
            f.create_dataset(f"{split}_labels", data=[k.encode() for k in samples])
            addr = f.create_group(f"{split}_addresses")
            ts = f.create_group(f"{split}_timestamps")
            for key, (channels, seconds) in samples.items():
                addr.create_dataset(key, data=np.array(channels, dtype=np.uint8))
                ts.create_dataset(key, data=np.array(seconds, dtype=np.float64))
    return path


@pytest.fixture
def hdf5(tmp_path):
    return write_file(tmp_path / FILENAME, {"train": TRAIN, "test": TEST})


def test_reads_events_and_labels(hdf5):
    with NTidigits(hdf5.parent, "train") as ds:
        assert len(ds) == 3
        events, label = ds[0]
        assert label == "1z3"
        assert events.dtype.names == ("x", "t", "p")
        np.testing.assert_array_equal(events["x"], [3, 10, 63])
        # seconds x 1e6, by hand: 0.001 s = 1000 us, 0.0025 s = 2500 us, 0.5 s = 500000 us
        np.testing.assert_array_equal(events["t"], [1000, 2500, 500000])
        np.testing.assert_array_equal(events["p"], [1, 1, 1])
        assert ds.labels == ["1z3", "o", "z"]
    with NTidigits(hdf5, "test") as ds:
        assert ds[-1][1] == "9" and len(ds[0][0]) == 3


def test_single_digits_take_class_indices(hdf5):
    with NTidigits(hdf5, "train", single_digits=True) as ds:
        # "o" (oh) is class 0 and "z" (zero) class 10, as in Tonic's class_map
        assert ds.sample_ids == ["woman-bb-o", "boy-cc-z"]
        assert ds.labels == [0, 10]
    assert digit_class("7") == 7
    with pytest.raises(InvalidArgumentError, match="'12'"):
        digit_class("12")


def test_matches_tonic(hdf5, tmp_path):
    tonic = pytest.importorskip("tonic")
    pytest.importorskip("requests")
    pytest.importorskip("tqdm")
    folder = tmp_path / "tonic"
    (folder / "NTIDIGITS18").mkdir(parents=True)
    (folder / "NTIDIGITS18" / FILENAME).write_bytes(hdf5.read_bytes())
    theirs = tonic.datasets.NTIDIGITS18(str(folder), train=True, single_digits=True)
    with NTidigits(hdf5, "train", single_digits=True) as ours:
        assert len(ours) == len(theirs)
        for i in range(len(ours)):
            (ev, label), (ev_t, label_t) = ours[i], theirs[i]
            assert label == label_t
            np.testing.assert_array_equal(ev["x"], ev_t["x"])
            np.testing.assert_array_equal(ev["t"], ev_t["t"])
            np.testing.assert_array_equal(ev["p"], ev_t["p"])
    theirs.data.close()


def test_bad_files(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=FILENAME):
        NTidigits(tmp_path)
    with pytest.raises(InvalidArgumentError, match="split"):
        NTidigits(write_file(tmp_path / "a.hdf5", {"train": TRAIN}), "val")
    with pytest.raises(DataFormatError, match="test_labels"):
        NTidigits(tmp_path / "a.hdf5", "test")
    bad = write_file(tmp_path / "b.hdf5", {"train": {"x-y-1": ([64], [0.0])}})
    with NTidigits(bad) as ds, pytest.raises(DataFormatError, match=r"\[0, 64\)"):
        ds[0]
    uneven = write_file(tmp_path / "c.hdf5", {"train": {"x-y-1": ([1, 2], [0.0])}})
    with NTidigits(uneven) as ds, pytest.raises(DataFormatError, match="equal length"):
        ds[0]
    (tmp_path / "d.hdf5").write_text("not hdf5")
    with pytest.raises(DataFormatError, match="d.hdf5"):
        NTidigits(tmp_path / "d.hdf5")


def test_frames_by_hand(hdf5):
    from neuroflow.data.events.ntidigits import to_frames

    with NTidigits(hdf5, "train") as ds:
        events, _ = ds[0]  # channels 3, 10, 63 at 1000, 2500, 500000 us
    frames = to_frames(events, time_steps=2)
    assert frames.shape == (2, 1, 1, 64)
    # span = 500000 - 1000 + 1 = 499001 us; bins: (t - 1000) * 2 // 499001 -> 0, 0, 1
    expected = np.zeros((2, 1, 1, 64), dtype=np.float32)
    expected[0, 0, 0, 3] = expected[0, 0, 0, 10] = expected[1, 0, 0, 63] = 1
    np.testing.assert_array_equal(frames, expected)
    assert to_frames(events, time_steps=3, split_by="count").sum(axis=(1, 2, 3)).tolist() == [
        1,
        1,
        1,
    ]
    with pytest.raises(DataFormatError, match="non-decreasing"):
        to_frames(events[::-1], time_steps=2)

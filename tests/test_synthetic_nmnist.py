"""The synthetic N-MNIST generator: determinism, valid files in the original layout, plausible
statistics, disjoint sources, and atomic preparation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuroflow.data.events import synthetic_nmnist as synth
from neuroflow.data.events.nmnist import decode_events, encode_events, list_split
from neuroflow.errors import InvalidArgumentError


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "synthetic-nmnist"
    synth.prepare_synthetic_nmnist(
        root, train_per_class=3, test_per_class=1, seed=0, progress=False
    )
    return root


def all_bytes(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_layout_and_reader_reads_every_file(small):
    train, test = list_split(small, "Train"), list_split(small, "Test")
    assert [r.key for r in train[:3]] == ["0/00000.bin", "0/00001.bin", "0/00002.bin"]
    assert [r.label for r in train] == [d for d in range(10) for _ in range(3)]
    assert len(test) == 10
    meta = json.loads((small / synth.META_FILE).read_text())
    assert meta["train_per_class"] == 3 and meta["seed"] == 0
    for ref in train + test:
        ev = ref.read()  # validates: 5-byte records, inside 34x34, time-ordered
        assert ev["t"][0] >= 0 and ev["t"][-1] <= 320_000


def test_statistics_resemble_nmnist(small):
    # real N-MNIST (Train sample): median ~4,200 events (5-95%: 2,300-6,100), ~306 ms, 50% polarity
    evs = [r.read() for r in list_split(small, "Train")]
    counts = np.array([len(e) for e in evs])
    assert 2_000 < np.median(counts) < 7_000
    durations = np.array([e["t"][-1] - e["t"][0] for e in evs])
    assert 280_000 < np.median(durations) < 320_000
    polarity = np.mean([e["p"].mean() for e in evs])
    assert 0.45 < polarity < 0.55
    # three saccades: event rate is high while moving and drops in the pauses between them
    t = np.concatenate([e["t"] for e in evs])
    rate, _ = np.histogram(t, bins=31, range=(0, 310_000))
    moving, resting = rate[[4, 14, 25]].mean(), rate[[9, 20]].mean()
    assert moving > 4 * resting
    # refractory period: a pixel never fires twice within ~1 ms (latency jitter aside)
    e = evs[0]
    pix = e["y"].astype(int) * 34 + e["x"]
    order = np.lexsort((e["t"], pix))
    dt = np.diff(e["t"][order])[np.diff(pix[order]) == 0]
    assert np.percentile(dt, 1) > 1_000


def test_same_seed_identical_files(small, tmp_path):
    again = tmp_path / "again"
    synth.prepare_synthetic_nmnist(
        again, train_per_class=3, test_per_class=1, seed=0, progress=False
    )
    assert all_bytes(again) == all_bytes(small)
    other = tmp_path / "other"
    synth.prepare_synthetic_nmnist(
        other, train_per_class=3, test_per_class=1, seed=1, progress=False
    )
    a, b = all_bytes(small), all_bytes(other)
    assert a.keys() == b.keys()
    assert sum(a[k] != b[k] for k in a if k.endswith(".bin")) == 40


def test_train_and_test_use_disjoint_source_images():
    train_images, train_labels = synth.source_digits("Train")
    test_images, test_labels = synth.source_digits("Test")
    assert (
        len(train_images) > 1200 and len(test_images) > 400
    )  # 1797 images, every 4th a Test source
    assert set(np.unique(train_labels)) == set(np.unique(test_labels)) == set(range(10))
    train_set = {img.tobytes() for img in train_images}
    assert not any(img.tobytes() in train_set for img in test_images)


def test_interrupted_prepare_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synth.generate_sample

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(synth, "generate_sample", flaky)
    root = tmp_path / "data" / "syn"
    with pytest.raises(KeyboardInterrupt):
        synth.prepare_synthetic_nmnist(root, train_per_class=2, test_per_class=1, progress=False)
    assert not root.exists()
    assert list((tmp_path / "data").iterdir()) == []  # the temporary folder is gone too
    assert not synth.is_prepared(root)


def test_prepared_root_is_reused_and_non_empty_root_refused(small, tmp_path):
    before = all_bytes(small)
    assert (
        synth.prepare_synthetic_nmnist(small, train_per_class=3, test_per_class=1, progress=False)
        == small
    )
    assert all_bytes(small) == before
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(InvalidArgumentError, match="not an empty folder"):
        synth.prepare_synthetic_nmnist(busy, train_per_class=1, test_per_class=1, progress=False)
    with pytest.raises(InvalidArgumentError, match="train_per_class"):
        synth.prepare_synthetic_nmnist(tmp_path / "x", train_per_class=0, progress=False)


def test_single_recording_is_deterministic_and_moves():
    sensor = synth.Sensor.make(np.random.default_rng(0))
    a = synth.generate_sample("Train", 3, 0, 10, 0, sensor)
    b = synth.generate_sample("Train", 3, 0, 10, 0, sensor)
    np.testing.assert_array_equal(a, b)
    times, dx, dy = synth.saccade_path(np.random.default_rng(0))
    # a closed triangle: back near the start after the third saccade
    assert abs(dx[-1] - dx[0]) < 0.6 and abs(dy[-1] - dy[0]) < 0.6
    assert np.ptp(dx) > 4 and np.ptp(dy) > 4
    # what is written is exactly what the reader returns
    np.testing.assert_array_equal(decode_events(encode_events(a)), a)

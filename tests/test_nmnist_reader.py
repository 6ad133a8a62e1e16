"""The N-MNIST reader: decoding against an independent hand encoding, corruption offsets, zips,
and (when present) the real samples."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from neuroflow.data.events.nmnist import (
    EVENT_DTYPE,
    decode_events,
    encode_events,
    list_split,
    read_events,
)
from neuroflow.errors import DataFormatError

REAL_ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "nmnist"

# (x, y, t_us, p): corners of the sensor, both polarities, the largest 23-bit timestamp, a repeat
EVENTS = [
    (0, 0, 0, 0),
    (33, 0, 1, 1),
    (0, 33, 255, 0),
    (33, 33, 256, 1),
    (17, 5, 65_535, 1),
    (17, 5, 65_536, 0),
    (3, 30, 300_123, 1),
    (3, 30, 300_123, 0),
    (12, 9, (1 << 23) - 1, 1),
]


def hand_encode(events) -> bytes:
    """Independent reference: bit-by-bit from the format description, one event at a time."""
    out = bytearray()
    for x, y, t, p in events:
        word = (p << 23) | t  # 24 bits: polarity on top, timestamp below
        out += bytes([x, y]) + word.to_bytes(3, "big")
    return bytes(out)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_decode_matches_hand_encoding(tmp_path):
    f = write(tmp_path / "Train" / "4" / "00001.bin", hand_encode(EVENTS))
    ev = read_events(f)
    assert ev.dtype == EVENT_DTYPE
    assert [tuple(int(v) for v in e) for e in ev] == EVENTS


def test_encode_is_inverse_and_matches_reference():
    arr = np.array(EVENTS, dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    data = encode_events(arr)
    assert data == hand_encode(EVENTS)
    back = decode_events(data)
    for field in "xytp":
        np.testing.assert_array_equal(back[field], arr[field])


def test_truncated_file_names_file_and_offset(tmp_path):
    f = write(tmp_path / "bad.bin", hand_encode(EVENTS[:4]) + b"\x01\x02\x03")
    with pytest.raises(DataFormatError) as info:
        read_events(f)
    assert info.value.offset == 20  # the partial record starts after 4 whole ones
    assert info.value.path == str(f)
    assert str(f) in str(info.value) and "byte offset 20" in str(info.value)


def test_coordinate_outside_sensor(tmp_path):
    events = EVENTS[:3] + [(34, 2, 500, 1)] + EVENTS[3:]
    events = sorted(events, key=lambda e: e[2])
    bad_index = events.index((34, 2, 500, 1))
    f = write(tmp_path / "x.bin", hand_encode(events))
    with pytest.raises(DataFormatError, match="outside the 34x34 sensor") as info:
        read_events(f)
    assert info.value.offset == 5 * bad_index

    f = write(tmp_path / "y.bin", hand_encode([(1, 1, 0, 0), (1, 200, 5, 0)]))
    with pytest.raises(DataFormatError) as info:
        read_events(f)
    assert info.value.offset == 5


def test_timestamps_going_backwards(tmp_path):
    events = [(1, 1, 100, 0), (2, 2, 200, 1), (3, 3, 150, 0), (4, 4, 300, 1)]
    f = write(tmp_path / "t.bin", hand_encode(events))
    with pytest.raises(DataFormatError, match="backwards") as info:
        read_events(f)
    assert info.value.offset == 10  # third record
    # equal timestamps are fine (real files have them)
    assert len(decode_events(hand_encode([(1, 1, 5, 0), (2, 2, 5, 1)]))) == 2


def test_empty_file(tmp_path):
    f = write(tmp_path / "e.bin", b"")
    with pytest.raises(DataFormatError, match="empty") as info:
        read_events(f)
    assert info.value.offset == 0


def test_overflow_marker_advances_later_timestamps():
    # y == 240 marks a timestamp overflow: +2**13 us for every later event, marker dropped
    data = hand_encode(
        [(1, 1, 8000, 0), (0, 240, 0, 0), (2, 2, 10, 1), (0, 240, 0, 0), (3, 3, 20, 0)]
    )
    ev = decode_events(data)
    assert ev["t"].tolist() == [8000, 8192 + 10, 2 * 8192 + 20]
    assert ev["x"].tolist() == [1, 2, 3]


def _make_root(root: Path, per_digit: int = 2) -> dict[str, list]:
    written = {}
    rng = np.random.default_rng(0)
    for digit in range(10):
        for k in range(per_digit):
            t = np.sort(rng.integers(0, 300_000, 20))
            ev = [
                (int(rng.integers(34)), int(rng.integers(34)), int(ti), int(rng.integers(2)))
                for ti in t
            ]
            name = f"Train/{digit}/{k:05d}.bin"
            write(root / name, hand_encode(ev))
            written[name] = ev
    return written


def test_list_split_folder(tmp_path):
    written = _make_root(tmp_path)
    refs = list_split(tmp_path, "Train")
    assert [r.label for r in refs] == [d for d in range(10) for _ in range(2)]
    assert all(r.member is None for r in refs)
    for r in refs:
        assert [tuple(int(v) for v in e) for e in r.read()] == written[f"Train/{r.key}"]
    assert list_split(tmp_path, "Test") is None


def test_zip_archive_read_in_place(tmp_path):
    src = tmp_path / "src"
    written = _make_root(src)
    archive = tmp_path / "root" / "Train.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as zf:
        for name in sorted(written):
            zf.write(src / name, name)
    refs = list_split(archive.parent, "Train")
    assert len(refs) == 20
    assert {r.label for r in refs} == set(range(10))
    assert not (archive.parent / "Train").exists()  # nothing extracted
    for r in refs:
        assert r.member in written
        assert [tuple(int(v) for v in e) for e in r.read()] == written[r.member]
    # a corrupt member names the archive and the member
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("Train/5/99999.bin", b"\x00" * 7)
    bad = [r for r in list_split(archive.parent, "Train") if r.member.endswith("99999.bin")][0]
    with pytest.raises(DataFormatError, match="Train.zip:Train/5/99999.bin"):
        bad.read()


@pytest.mark.skipif(not REAL_ROOT.is_dir(), reason="real N-MNIST samples not present")
def test_real_samples():
    refs = list_split(REAL_ROOT, "Train")
    assert refs, "expected .bin files under Train/"
    rng = np.random.default_rng(0)
    chosen = [refs[i] for i in rng.choice(len(refs), size=min(100, len(refs)), replace=False)]
    counts, durations, on = [], [], []
    for ref in chosen:
        ev = ref.read()  # validates length, coordinates and time order
        counts.append(len(ev))
        durations.append(ev["t"][-1] - ev["t"][0])
        on.append(ev["p"].mean())
    # three saccades of ~100 ms, a few thousand events, balanced polarity
    assert 1_000 < np.median(counts) < 10_000
    assert 250_000 < np.median(durations) < 350_000
    assert 0.45 < np.mean(on) < 0.55

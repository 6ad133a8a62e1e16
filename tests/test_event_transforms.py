"""Event transforms: binning against hand counts, denoise against a reference loop, translation,
crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuroflow.data.events.nmnist import EVENT_DTYPE
from neuroflow.data.events.transforms import (
    EventsToFrames,
    RandomTranslate,
    bin_index,
    crop_events,
    denoise,
    random_crop_events,
    to_frames,
    translate_frames,
)
from neuroflow.errors import InvalidArgumentError


def events(rows) -> np.ndarray:
    out = np.empty(len(rows), dtype=EVENT_DTYPE)
    for i, (x, y, t, p) in enumerate(rows):
        out[i] = (x, y, t, p)
    return out


def random_events(n: int, seed: int, size: int = 34, duration: int = 300_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.empty(n, dtype=EVENT_DTYPE)
    ev["x"] = rng.integers(0, size, n)
    ev["y"] = rng.integers(0, size, n)
    ev["t"] = np.sort(rng.integers(0, duration, n))
    ev["p"] = rng.integers(0, 2, n)
    return ev


def test_time_bins_hand_computed():
    # t from 1000 to 1099 us: span 100 us, T=4 -> windows of 25 us starting at 1000
    ev = events(
        [
            (0, 0, 1000, 0),  # bin 0
            (1, 0, 1024, 1),  # bin 0 (24 < 25)
            (1, 0, 1025, 1),  # bin 1
            (1, 0, 1025, 1),  # bin 1, same pixel: counts 2
            (5, 7, 1060, 0),  # bin 2 (60 // 25)
            (33, 33, 1075, 1),  # bin 3
            (33, 33, 1099, 1),  # bin 3 (last event lands in the last bin)
        ]
    )
    frames = to_frames(ev, 4, "time")
    assert frames.shape == (4, 2, 34, 34) and frames.dtype == np.float32
    expected = np.zeros((4, 2, 34, 34), np.float32)
    expected[0, 0, 0, 0] = 1
    expected[0, 1, 0, 1] = 1
    expected[1, 1, 0, 1] = 2
    expected[2, 0, 7, 5] = 1
    expected[3, 1, 33, 33] = 2
    np.testing.assert_array_equal(frames, expected)


def test_count_bins_hand_computed():
    # 5 events into 2 frames: event i -> floor(i * 2 / 5) = 0, 0, 0, 1, 1
    ev = events([(i, 0, 10 * i, i % 2) for i in range(5)])
    assert bin_index(ev, 2, "count").tolist() == [0, 0, 0, 1, 1]
    frames = to_frames(ev, 2, "count")
    assert frames[0].sum() == 3 and frames[1].sum() == 2
    assert frames[1, 1, 0, 3] == 1 and frames[1, 0, 0, 4] == 1


def test_frames_keep_every_event_and_empty_stream():
    ev = random_events(4321, 1)
    for split_by in ("time", "count"):
        frames = to_frames(ev, 7, split_by)
        assert frames.sum() == len(ev)
        # per-pixel totals do not depend on the binning
        total = np.zeros((2, 34, 34))
        np.add.at(total, (ev["p"], ev["y"], ev["x"]), 1)
        np.testing.assert_array_equal(frames.sum(0), total)
    assert to_frames(ev[:0], 3).shape == (3, 2, 34, 34)
    assert to_frames(ev[:0], 3).sum() == 0
    with pytest.raises(InvalidArgumentError):
        to_frames(ev, 3, "space")


def reference_denoise(ev: np.ndarray, filter_time: int, connectivity: int = 8) -> np.ndarray:
    """Straightforward loop: keep an event if a neighbour pixel fired earlier in the stream
    less than filter_time us before it."""
    last = {}
    keep = []
    nbrs = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        nbrs += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    for e in ev:
        x, y, t = int(e["x"]), int(e["y"]), int(e["t"])
        keep.append(
            any(
                (x + dx, y + dy) in last and t - last[(x + dx, y + dy)] < filter_time
                for dx, dy in nbrs
            )
        )
        last[(x, y)] = t
    return ev[np.array(keep, dtype=bool)]


def test_denoise_hand_cases():
    ev = events(
        [
            (10, 10, 0, 0),  # nothing before it: dropped
            (11, 10, 500, 1),  # neighbour (10,10) 500 us before: kept
            (20, 20, 600, 0),  # isolated: dropped
            (20, 20, 700, 0),  # only its own pixel fired before: dropped
            (21, 21, 900, 1),  # diagonal neighbour (20,20) 200 us before: kept with 8-connectivity
            (12, 10, 2000, 0),  # neighbour (11,10) 1500 us before: dropped with filter 1000
        ]
    )
    kept = denoise(ev, 1000)
    assert kept["t"].tolist() == [500, 900]
    kept4 = denoise(ev, 1000, connectivity=4)
    assert kept4["t"].tolist() == [500]
    assert denoise(ev, 2000)["t"].tolist() == [500, 900, 2000]


@pytest.mark.parametrize("connectivity", [4, 8])
def test_denoise_matches_reference_loop(connectivity):
    ev = random_events(3000, 2, size=12, duration=200_000)
    ev["t"][100:110] = ev["t"][100]  # equal timestamps: order in the stream decides
    ev["t"] = np.maximum.accumulate(ev["t"])
    got = denoise(ev, 5000, connectivity)
    want = reference_denoise(ev, 5000, connectivity)
    np.testing.assert_array_equal(got, want)
    assert 0 < len(got) < len(ev)


def test_translate_frames():
    frames = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    out = translate_frames(frames, 1, -2)  # right 1, up 2
    expected = torch.zeros_like(frames)
    expected[..., 0:2, 1:5] = frames[..., 2:4, 0:4]
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(translate_frames(frames, 0, 0), frames)
    assert translate_frames(frames, 5, 0).abs().sum() == 0


def test_random_translate_seeded_and_bounded():
    frames = torch.zeros(3, 2, 34, 34)
    frames[:, :, 17, 17] = 1.0
    rt = RandomTranslate(3)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    shifts = set()
    for _ in range(50):
        a, b = rt(frames, g1), rt(frames, g2)
        torch.testing.assert_close(a, b)  # same seed, same shifts
        ys, xs = torch.nonzero(a[0, 0], as_tuple=True)
        dy, dx = int(ys[0]) - 17, int(xs[0]) - 17
        assert abs(dx) <= 3 and abs(dy) <= 3
        assert a.sum() == frames.sum()  # one shift for all time steps and polarities
        torch.testing.assert_close(a[0], a[2])
        shifts.add((dx, dy))
    assert len(shifts) > 10
    assert RandomTranslate(0)(frames) is frames
    with pytest.raises(InvalidArgumentError):
        RandomTranslate(-1)


def test_crops():
    ev = random_events(2000, 3)
    c = crop_events(ev, 9, 9, 16, 16)  # the LSM's 16x16 centre crop
    inside = (ev["x"] >= 9) & (ev["x"] < 25) & (ev["y"] >= 9) & (ev["y"] < 25)
    assert len(c) == inside.sum()
    np.testing.assert_array_equal(c["x"], ev["x"][inside] - 9)
    np.testing.assert_array_equal(c["t"], ev["t"][inside])
    a = random_crop_events(ev, (20, 10), np.random.default_rng(7))
    b = random_crop_events(ev, (20, 10), np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a["x"].max() < 20 and a["y"].max() < 10 and a["x"].min() >= 0
    with pytest.raises(InvalidArgumentError):
        random_crop_events(ev, (40, 10), np.random.default_rng(0))


def test_events_to_frames_pipeline():
    ev = random_events(3000, 4)
    maker = EventsToFrames(6, "count", denoise_us=20_000)
    out = maker(ev)
    assert out.shape == maker.frame_shape == (6, 2, 34, 34) and out.dtype == np.uint16
    np.testing.assert_array_equal(out, to_frames(denoise(ev, 20_000), 6, "count"))
    assert maker.params()["denoise_us"] == 20_000
    with pytest.raises(InvalidArgumentError):
        EventsToFrames(0)

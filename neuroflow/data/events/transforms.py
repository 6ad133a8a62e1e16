"""Transforms on event streams and on the frames made from them (vectorised numpy / torch).

Events are structured arrays with fields ``x``, ``y`` (pixels), ``t`` (microseconds, non-decreasing)
and ``p`` (polarity 0/1), e.g. :data:`neuroflow.data.events.nmnist.EVENT_DTYPE`. Frames are
``[T, P, H, W]`` arrays of event counts, polarity ``p`` in channel ``p`` (time-first, as
everywhere in neuroflow).

Event-level: :func:`to_frames` (binning), :func:`denoise`, :func:`crop_events`,
:func:`random_crop_events`. Frame-level augmentation: :func:`translate_frames`,
:class:`RandomTranslate` (applied after the frame cache, so augmentation is never baked in).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from neuroflow.errors import InvalidArgumentError

SplitBy = Literal["time", "count"]


def bin_index(events: np.ndarray, time_steps: int, split_by: SplitBy = "time") -> np.ndarray:
    """The frame index (0..time_steps-1) of every event.

    ``"time"``: ``time_steps`` equal windows spanning ``[t_first, t_last]`` of this sample (every
    event lands in a window; bin ``k`` holds ``t_first + k*D/T <= t < t_first + (k+1)*D/T`` with
    ``D = t_last - t_first + 1`` us). ``"count"``: equal numbers of events per frame, in time
    order; when ``N`` is not a multiple of ``T`` the later frames get one event fewer
    (event ``i`` goes to frame ``floor(i*T/N)``).
    """
    if time_steps < 1:
        raise InvalidArgumentError(f"time_steps must be >= 1, got {time_steps}")
    n = len(events)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if split_by == "time":
        t = events["t"].astype(np.int64)
        span = int(t[-1] - t[0]) + 1
        # integer arithmetic: exact, no float rounding at window edges
        return (t - t[0]) * time_steps // span
    if split_by == "count":
        return np.arange(n, dtype=np.int64) * time_steps // n
    raise InvalidArgumentError(f"split_by must be 'time' or 'count', got {split_by!r}")


def to_frames(
    events: np.ndarray,
    time_steps: int,
    split_by: SplitBy = "time",
    sensor_size: tuple[int, int] = (34, 34),
    num_polarities: int = 2,
    dtype=np.float32,
) -> np.ndarray:
    """Count events into frames.

    Args:
        events: ``[N]`` events, time-ordered.
        time_steps: number of frames ``T``.
        split_by: ``"time"`` (equal time windows) or ``"count"`` (equal event counts); see
            :func:`bin_index`.
        sensor_size: ``(width, height)``.
        num_polarities: polarity channels ``P``.

    Returns:
        ``[T, P, H, W]`` event counts (an empty stream gives zeros).
    """
    width, height = sensor_size
    b = bin_index(events, time_steps, split_by)
    flat = ((b * num_polarities + events["p"]) * height + events["y"]) * width + events["x"]
    counts = np.bincount(
        flat.astype(np.int64), minlength=time_steps * num_polarities * height * width
    )
    return counts.reshape(time_steps, num_polarities, height, width).astype(dtype, copy=False)


def denoise(events: np.ndarray, filter_time: int, connectivity: Literal[4, 8] = 8) -> np.ndarray:
    """Drop isolated events: keep an event only if a neighbouring pixel had an event within
    ``filter_time`` microseconds before it (``t - t_neighbour < filter_time``).

    The neighbourhood is the 3x3 block around the pixel without the pixel itself
    (``connectivity=8``), or its 4 direct neighbours (``connectivity=4``, Tonic's ``Denoise``).
    "Before" means earlier in the stream (an event with the same timestamp that comes earlier
    counts). Unlike Tonic, no virtual event at t=0 lets the first ``filter_time`` us through.
    Cost: O(N log N) (one sort, one binary search per neighbour offset).

    Args:
        events: ``[N]`` time-ordered events.
        filter_time: the time window in microseconds (> 0).
    Returns:
        the kept events, in their original order.
    """
    if filter_time <= 0:
        raise InvalidArgumentError(f"denoise filter_time must be > 0 us, got {filter_time}")
    if connectivity not in (4, 8):
        raise InvalidArgumentError(f"denoise connectivity must be 4 or 8, got {connectivity}")
    n = len(events)
    if n == 0:
        return events.copy()
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    t = events["t"].astype(np.int64)
    # pad coordinates by 1 so that neighbours of border pixels have valid (empty) keys
    stride = int(x.max()) + 3
    pixel = (y + 1) * stride + (x + 1)
    order = np.arange(n, dtype=np.int64)
    # sort key: pixel, then position in the stream
    key = pixel * n + order
    sort = np.argsort(key, kind="stable")
    skey = key[sort]
    st = t[sort]
    spixel = pixel[sort]
    keep = np.zeros(n, dtype=bool)
    offsets = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        offsets += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    for dx, dy in offsets:
        npix = pixel + dy * stride + dx
        # last event at the neighbour pixel that comes before this event in the stream
        pos = np.searchsorted(skey, npix * n + order, side="left") - 1
        valid = pos >= 0
        pos_c = np.maximum(pos, 0)
        valid &= spixel[pos_c] == npix
        keep |= valid & (t - st[pos_c] < filter_time)
    return events[keep]


def crop_events(events: np.ndarray, left: int, top: int, width: int, height: int) -> np.ndarray:
    """Keep the events inside the window ``[left, left+width) x [top, top+height)`` and shift
    their coordinates so the window's corner is (0, 0)."""
    x, y = events["x"], events["y"]
    inside = (x >= left) & (x < left + width) & (y >= top) & (y < top + height)
    out = events[inside].copy()
    out["x"] -= left
    out["y"] -= top
    return out


def random_crop_events(
    events: np.ndarray,
    size: tuple[int, int],
    rng: np.random.Generator,
    sensor_size: tuple[int, int] = (34, 34),
) -> np.ndarray:
    """Crop a ``size = (width, height)`` window at a uniformly random position (seeded by ``rng``)
    inside ``sensor_size``; see :func:`crop_events`. The result has sensor size ``size``."""
    width, height = size
    sw, sh = sensor_size
    if not (0 < width <= sw and 0 < height <= sh):
        raise InvalidArgumentError(f"crop size {size} must fit inside the sensor {sensor_size}")
    left = int(rng.integers(0, sw - width + 1))
    top = int(rng.integers(0, sh - height + 1))
    return crop_events(events, left, top, width, height)


def translate_frames(frames: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Shift frames ``[..., H, W]`` by ``dx`` pixels right and ``dy`` pixels down; what moves out
    is dropped and the uncovered border is zero (events that would leave the sensor are lost, as
    with a translated event stream)."""
    h, w = frames.shape[-2:]
    out = torch.zeros_like(frames)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src_y = slice(max(0, -dy), h - max(0, dy))
    dst_y = slice(max(0, dy), h - max(0, -dy))
    src_x = slice(max(0, -dx), w - max(0, dx))
    dst_x = slice(max(0, dx), w - max(0, -dx))
    out[..., dst_y, dst_x] = frames[..., src_y, src_x]
    return out


class RandomTranslate:
    """Train-time augmentation: shift all frames of one sample by the same random integer
    ``(dx, dy)``, each uniform in ``[-max_shift, max_shift]``.

    The shift is drawn from ``generator`` when given, else from torch's global generator: the
    trainer seeds it, and DataLoader workers get distinct, reproducible seeds from it, so the
    augmentation is seeded and differs between epochs.
    """

    def __init__(self, max_shift: int):
        if max_shift < 0:
            raise InvalidArgumentError(f"translate max_shift must be >= 0, got {max_shift}")
        self.max_shift = int(max_shift)

    def __call__(
        self, frames: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.max_shift == 0:
            return frames
        dx, dy = torch.randint(
            -self.max_shift, self.max_shift + 1, (2,), generator=generator
        ).tolist()
        return translate_frames(frames, dx, dy)

    def __repr__(self) -> str:
        return f"RandomTranslate(max_shift={self.max_shift})"


class EventsToFrames:
    """The deterministic event -> frame pipeline of a dataset: optional :func:`denoise`, then
    :func:`to_frames`. Picklable; :meth:`params` is what identifies its output in the frame cache.

    Output: ``[T, 2, 34, 34]`` uint16 event counts (cast to float32 by the dataset).
    """

    def __init__(
        self,
        time_steps: int,
        split_by: SplitBy = "time",
        denoise_us: int | None = None,
        sensor_size: tuple[int, int] = (34, 34),
        num_polarities: int = 2,
    ):
        if int(time_steps) != time_steps or time_steps < 1:
            raise InvalidArgumentError(f"time_steps must be an integer >= 1, got {time_steps!r}")
        if split_by not in ("time", "count"):
            raise InvalidArgumentError(f"split_by must be 'time' or 'count', got {split_by!r}")
        if denoise_us is not None and denoise_us <= 0:
            raise InvalidArgumentError(f"denoise_us must be None or > 0 us, got {denoise_us!r}")
        self.time_steps = int(time_steps)
        self.split_by = split_by
        self.denoise_us = None if denoise_us is None else int(denoise_us)
        self.sensor_size = tuple(int(s) for s in sensor_size)
        self.num_polarities = int(num_polarities)

    @property
    def frame_shape(self) -> tuple[int, int, int, int]:
        """``(T, P, H, W)``."""
        return (self.time_steps, self.num_polarities, self.sensor_size[1], self.sensor_size[0])

    def params(self) -> dict:
        return {
            "time_steps": self.time_steps,
            "split_by": self.split_by,
            "denoise_us": self.denoise_us,
            "sensor_size": list(self.sensor_size),
            "num_polarities": self.num_polarities,
        }

    def __call__(self, events: np.ndarray) -> np.ndarray:
        if self.denoise_us is not None:
            events = denoise(events, self.denoise_us)
        return to_frames(
            events,
            self.time_steps,
            self.split_by,
            self.sensor_size,
            self.num_polarities,
            dtype=np.uint16,
        )

    def __repr__(self) -> str:
        return "EventsToFrames(" + ", ".join(f"{k}={v!r}" for k, v in self.params().items()) + ")"

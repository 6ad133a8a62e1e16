"""Tonic interop: Tonic-style event arrays in and out, fixed-window frames, Tonic datasets.

Tonic (Lenz et al., https://github.com/neuromorphs/tonic) holds a recording as a numpy
structured array with fields ``x``, ``y``, ``t`` (microseconds) and ``p`` (polarity), e.g.
``np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])`` for N-MNIST; neuroflow's readers
return the same fields (:data:`~neuroflow.data.events.nmnist.EVENT_DTYPE`, narrower integers).
:func:`to_tonic` and :func:`from_tonic` convert between the two, so Tonic's transforms apply to
neuroflow's events and neuroflow's transforms to Tonic's datasets.

:func:`events_to_frames` bins by a fixed time window as Tonic's ``ToFrame(sensor_size,
time_window=...)`` does (``tonic.slicers.SliceByTime``): windows ``[t0 + k w, t0 + (k+1) w)``
start at the first event ``t0``; there are ``max(1, floor((t_last - t0) / w))`` of them, so the
trailing partial window is dropped. Recordings of different lengths give different frame
counts: :func:`collate_padded` zero-pads a batch to the longest (as ``tonic.collation.PadTensors``,
but time-first ``[T, B, ...]``).

A config may name a Tonic dataset class (``data: {name: tonic, dataset: NMNIST, root: ...}``),
where the optional package ``tonic`` is installed; neuroflow never downloads it (a missing
dataset raises :class:`~neuroflow.errors.DatasetNotFoundError` saying how to fetch it with Tonic).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from neuroflow.data.events.nmnist import EVENT_DTYPE
from neuroflow.data.events.transforms import to_frames
from neuroflow.data.options import DataOptions, OptionError, is_int, is_number
from neuroflow.data.splits import split_train_val_test
from neuroflow.errors import DatasetNotFoundError, InvalidArgumentError, NeuroflowError

#: Tonic's event dtype for camera datasets (N-MNIST, DVS-Gesture...): four int64 fields
TONIC_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])
_FIELDS = ("x", "y", "t", "p")


def _check_fields(events: np.ndarray, what: str, optional: tuple[str, ...] = ()) -> None:
    names = events.dtype.names or ()
    missing = [f for f in _FIELDS if f not in names and f not in optional]
    if missing:
        raise InvalidArgumentError(
            f"{what}: expected a structured array with fields x, y, t, p (Tonic's layout), "
            f"missing {', '.join(missing)} (fields: {', '.join(names) or 'none'})"
        )


def to_tonic(events: np.ndarray, dtype: np.dtype = TONIC_DTYPE) -> np.ndarray:
    """neuroflow events (any structured array with ``x, y, t, p``) as a Tonic-style array of
    ``dtype`` (default :data:`TONIC_DTYPE`). A new array; values unchanged."""
    _check_fields(events, "to_tonic")
    out = np.empty(len(events), dtype=dtype)
    for name in _FIELDS:
        out[name] = events[name]
    return out


def from_tonic(events: np.ndarray) -> np.ndarray:
    """A Tonic-style event array as neuroflow events (:data:`EVENT_DTYPE`).

    ``t`` must be in microseconds (Tonic's unit) and non-decreasing; polarity may be 0/1, bool,
    or -1/+1 (-1 becomes 0). Coordinates must fit int16; audio-like recordings without ``y``
    (e.g. Tonic's SHD) get ``y = 0``.
    """
    _check_fields(events, "from_tonic", optional=("y",))
    out = np.zeros(len(events), dtype=EVENT_DTYPE)
    for name in ("x", "y"):
        if name not in events.dtype.names:
            continue
        values = np.asarray(events[name])
        if len(values) and (values.min() < 0 or values.max() > np.iinfo(np.int16).max):
            raise InvalidArgumentError(f"from_tonic: {name} outside [0, 32767]")
        out[name] = values
    t = np.asarray(events["t"])
    if len(t) and np.any(np.diff(t) < 0):
        raise InvalidArgumentError("from_tonic: timestamps t go backwards (expected time order)")
    out["t"] = t
    p = np.asarray(events["p"]).astype(np.int64)
    if len(p) and not np.isin(p, (-1, 0, 1)).all():
        raise InvalidArgumentError(f"from_tonic: polarity p must be 0/1 or -1/+1, got {set(p)}")
    out["p"] = p > 0
    return out


def frame_windows(t: np.ndarray, time_window: float) -> tuple[np.ndarray, int]:
    """``(window index of every event, number of windows)`` for fixed windows of
    ``time_window`` microseconds from the first event; events past the last whole window get an
    index >= the count (dropped), as ``tonic.slicers.SliceByTime(include_incomplete=False)``."""
    if not is_number(time_window) or not time_window > 0:
        raise InvalidArgumentError(f"time_window must be > 0 microseconds, got {time_window!r}")
    if len(t) == 0:
        return np.zeros(0, dtype=np.int64), 0
    t0 = t[0]
    count = max(int(np.floor((t[-1] - t0 - time_window) / time_window) + 1), 1)
    # the window edges Tonic compares against: start_k = t0 + k w (searchsorted, side "left")
    starts = np.arange(count + 1) * time_window + t0
    return np.searchsorted(starts, t, side="right") - 1, count


def events_to_frames(
    events: np.ndarray,
    sensor_size: tuple[int, int, int],
    time_window: float = 1000.0,
    dtype=np.float32,
) -> np.ndarray:
    """Count events into frames of a fixed ``time_window`` (microseconds; 1000 = 1 ms).

    Args:
        events: ``[N]`` time-ordered events with fields ``x, y, t, p`` (neuroflow's or Tonic's;
            without ``y``, e.g. Tonic's SHD, frames are ``[T, P, W]`` as Tonic makes them).
        sensor_size: Tonic's ``(width, height, polarities)``; with one polarity every event
            counts in channel 0 (and both polarities present is an error, as in Tonic).
        time_window: window length in microseconds; windows start at the first event, the
            trailing partial window is dropped (Tonic's ``ToFrame(time_window=...)``).
    Returns:
        ``[T, P, H, W]`` counts, ``T = max(1, floor((t_last - t_first) / time_window))``
        (``T = 0`` for no events).
    """
    _check_fields(events, "events_to_frames", optional=("y",))
    width, height, polarities = (int(s) for s in sensor_size)
    has_y = "y" in events.dtype.names
    if not has_y:
        height = 1
    t = np.asarray(events["t"])
    window, count = frame_windows(t, time_window)
    p = np.asarray(events["p"]).astype(np.int64)
    if polarities == 1:
        if len(np.unique(p)) > 1:
            raise InvalidArgumentError(
                "events_to_frames: sensor_size has one polarity but the events have two"
            )
        p = np.zeros_like(p)
    else:
        p = (p > 0).astype(np.int64)
    keep = window < count
    y = np.asarray(events["y"])[keep] if has_y else 0
    flat = ((window[keep] * polarities + p[keep]) * height + y) * width + events["x"][keep]
    counts = np.bincount(flat.astype(np.int64), minlength=count * polarities * height * width)
    shape = (count, polarities, height, width) if has_y else (count, polarities, width)
    return counts.reshape(shape).astype(dtype, copy=False)


def collate_padded(batch: list[tuple[Any, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``(frames [T_i, ...], label)`` items of different lengths into ``(frames [T_max, B,
    ...], labels [B] long)``, each sample zero-padded after its end (time-first)."""
    frames = [torch.as_tensor(item[0]) for item in batch]
    longest = max(f.shape[0] for f in frames)
    out = frames[0].new_zeros((longest, len(frames), *frames[0].shape[1:]))
    for b, f in enumerate(frames):
        out[: f.shape[0], b] = f
    labels = torch.as_tensor([int(item[1]) for item in batch], dtype=torch.long)
    return out, labels


# ------------------------------------------------------------------------------ Tonic datasets


def tonic_dataset_class(name: str, key: str = "data.dataset") -> type:
    """The class ``tonic.datasets.<name>``; a clear error when Tonic is not installed or has no
    such dataset."""
    try:
        import tonic.datasets
    except ImportError as exc:
        raise InvalidArgumentError(
            f"{key}: Tonic datasets need the optional package 'tonic' (pip install tonic), "
            f"which cannot be imported here ({exc})"
        ) from None
    cls = getattr(tonic.datasets, str(name), None)
    if not isinstance(cls, type):
        from neuroflow.registry import nearest

        known = sorted(
            n for n in dir(tonic.datasets) if isinstance(getattr(tonic.datasets, n), type)
        )
        hint = nearest(str(name), known)
        raise InvalidArgumentError(
            f"{key}: tonic.datasets has no dataset {name!r}"
            + (f"; did you mean {hint!r}?" if hint else "")
            + f" (known: {', '.join(known)})"
        )
    return cls


@dataclass
class TonicOptions(DataOptions):
    """``data:`` settings of ``tonic``: a dataset class of ``tonic.datasets`` (``dataset``,
    e.g. ``NMNIST``, ``DVSGesture``, ``NCALTECH101``) read from ``root`` (Tonic's ``save_to``),
    binned into ``time_steps`` equal time windows per sample (``split_by: time``, neuroflow's
    frames) or, with ``time_steps: null``, windows of ``time_window`` microseconds (Tonic's
    ``ToFrame(time_window=...)``, batches zero-padded to the longest). Test split: the class's
    ``train=False`` part where it has one, else carved (``test_fraction``)."""

    name: str = "tonic"
    root: str = "datasets/tonic"
    dataset: str = "NMNIST"
    time_steps: int | None = 10
    time_window: float | None = None

    def validate(self) -> None:
        super().validate()
        if self.time_steps is not None and (not is_int(self.time_steps) or self.time_steps < 1):
            raise OptionError("time_steps", "null or an integer >= 1", self.time_steps)
        if self.time_window is not None and (
            not is_number(self.time_window) or not self.time_window > 0
        ):
            raise OptionError("time_window", "null or microseconds > 0", self.time_window)
        if (self.time_steps is None) == (self.time_window is None):
            raise OptionError(
                "time_window",
                "set when data.time_steps is null, and null otherwise (one binning)",
                self.time_window,
            )
        try:
            tonic_dataset_class(self.dataset)
        except InvalidArgumentError as exc:
            raise OptionError("dataset", "", self.dataset, message=str(exc)) from None


def _open_without_download(cls: type, dataset: str, root: Path, **kwargs) -> Any:
    """``cls(save_to=root, **kwargs)`` whose ``download`` raises instead: nothing downloads at
    run time. The guard is an attribute of the instance while it is built (Tonic's datasets call
    ``self.download()`` from ``__init__`` when the files are missing), removed afterwards, so
    the dataset stays an ordinary, picklable instance of ``cls``."""

    def download() -> None:
        raise DatasetNotFoundError(
            f"tonic: {dataset} is not in {root / cls.__name__} and neuroflow does not download "
            f'data; fetch it once with Tonic (python -c "import tonic; '
            f"tonic.datasets.{dataset}(save_to='{root}')\") or point data.root to a copy"
        )

    instance = cls.__new__(cls)
    instance.download = download
    try:
        instance.__init__(save_to=str(root), **kwargs)
    finally:
        instance.__dict__.pop("download", None)
    return instance


class TonicFrames(Dataset):
    """``(frames float32 [T, P, H, W], label)`` items of one split of a Tonic dataset.

    Attributes: ``num_classes``, ``input_shape`` (``(P, H, W)``), ``labels``, ``files``,
    ``split``, ``collate_fn`` (:func:`collate_padded` for fixed time windows, whose ``T`` varies).
    """

    def __init__(self, source, indices, labels, options: TonicOptions, split: str):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)[self.indices]
        self.split = split
        self.options = options
        width, height, polarities = (int(s) for s in source.sensor_size)
        self.sensor_size = (width, height, polarities)
        self.input_shape = (polarities, height, width)
        self.num_classes = len(source.classes)
        self.files = [f"{options.dataset}[{i}]" for i in self.indices]
        self.time_steps = options.time_steps
        if options.time_window is not None:
            self.collate_fn = collate_padded

    def __len__(self) -> int:
        return len(self.indices)

    def frames(self, events: np.ndarray) -> np.ndarray:
        width, height, polarities = self.sensor_size
        o = self.options
        if o.time_window is not None:  # [T, P, H, W], H = 1 for recordings without y
            frames = events_to_frames(events, self.sensor_size, o.time_window)
            return frames.reshape(len(frames), polarities, height, width)
        events = from_tonic(events)
        if polarities == 1:
            events["p"] = 0
        return to_frames(events, o.time_steps, "time", (width, height), polarities)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.split} index {i} out of range for {len(self)} samples")
        events, target = self.source[int(self.indices[i])]
        return torch.from_numpy(np.ascontiguousarray(self.frames(events), dtype=np.float32)), int(
            target
        )


def _targets(source) -> list[int]:
    targets = getattr(source, "targets", None)
    if targets is not None and len(targets) == len(source):
        return [int(t) for t in targets]
    return [int(source[i][1]) for i in range(len(source))]  # read every sample once


def build_tonic(options: TonicOptions, seed: int) -> dict[str, TonicFrames]:
    """``train`` / ``val`` / ``test`` of ``tonic.datasets.<options.dataset>`` in ``options.root``
    (see :class:`TonicOptions`)."""
    root = Path(options.root)
    cls = tonic_dataset_class(options.dataset)
    try:
        if "train" in inspect.signature(cls.__init__).parameters:
            train = _open_without_download(cls, options.dataset, root, train=True)
            test = _open_without_download(cls, options.dataset, root, train=False)
        else:
            train, test = _open_without_download(cls, options.dataset, root), None
    except NeuroflowError:
        raise
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise DatasetNotFoundError(
            f"tonic: cannot read {options.dataset} from {root}: {type(exc).__name__}: {exc}"
        ) from None
    train_labels = _targets(train)
    test_labels = None if test is None else _targets(test)
    train_idx, val_idx, test_idx = split_train_val_test(train_labels, test_labels, options, seed)
    parts = {
        "train": (train, train_idx, train_labels),
        "val": (train, val_idx, train_labels),
        "test": (train, test_idx, train_labels) if test is None else (test, test_idx, test_labels),
    }
    cap = options.max_samples
    return {
        split: TonicFrames(source, idx if cap is None else idx[:cap], labels, options, split)
        for split, (source, idx, labels) in parts.items()
    }


def tonic_model_io(options: TonicOptions) -> tuple[int, tuple[int, int, int]]:
    """``(classes, (P, H, W))`` of the Tonic dataset class, from its ``classes`` and
    ``sensor_size`` attributes (no data read)."""
    cls = tonic_dataset_class(options.dataset)
    width, height, polarities = (int(s) for s in cls.sensor_size)
    return len(cls.classes), (polarities, height, width)


def prepare_tonic(root, seed: int = 0, **kwargs):
    """Tonic datasets are fetched with Tonic itself: neuroflow never downloads data."""
    raise DatasetNotFoundError(
        "tonic: neuroflow does not download data; fetch a Tonic dataset with Tonic "
        f"(e.g. python -c \"import tonic; tonic.datasets.NMNIST(save_to='{root}')\") and set "
        "data.root to that folder"
    )

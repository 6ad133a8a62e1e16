"""Reader for N-TIDIGITS (Anumula et al., "Feature representations for neuromorphic audio spike
streams", Frontiers in Neuroscience 12:23, 2018): the TIDIGITS spoken digits played to a
64-channel silicon cochlea (CochleaAMS1b), the audio branch of the RRAM LSM paper's zero-shot
task.

Layout of the distributed single HDF5 file (``n-tidigits.hdf5``, as Tonic's ``NTIDIGITS18``
reads it), for each split ``S`` in ``train`` / ``test``::

    S_labels                 [N] byte strings, one sample id each, e.g. b"man-ae-1z3"
    S_addresses/<sample id>  [E] integer cochlea channel of every event (0..63)
    S_timestamps/<sample id> [E] float event times in seconds

The digits spoken are the sample id's last ``-``-separated part (``"1z3"``); ``o`` is "oh" and
``z`` "zero". Single-digit samples take a class index from :data:`DIGIT_CLASSES` (``o`` -> 0,
``1``..``9`` -> 1..9, ``z`` -> 10: the 11 classes Tonic uses).

Events come as a structured array of dtype :data:`EVENT_DTYPE`, Tonic's field names for a 1-D
sensor: ``x`` the channel, ``t`` microseconds (seconds x 1e6, rounded), ``p`` always 1 (the
file stores no polarity). :func:`to_frames` counts them into ``[T, 1, 1, 64]`` frames. Nothing is
downloaded: the file must already be on disk.

The registered dataset ``ntidigits`` (:mod:`neuroflow.data.events.ntidigits_dataset`) builds
train / val / test splits of the single-digit samples from this reader; :data:`IMAGE_DIGITS`
says which image digit each class is paired with in ``neuroflow lsm zeroshot``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from neuroflow.data.events.transforms import SplitBy, bin_index
from neuroflow.errors import DataFormatError, DatasetNotFoundError, InvalidArgumentError

#: cochlea channels (the sensor is 64 x 1, one polarity)
NUM_CHANNELS = 64
#: single-digit class names; the index is the class
DIGIT_CLASSES = ("o", "1", "2", "3", "4", "5", "6", "7", "8", "9", "z")
#: dtype of decoded events (x the channel, t in microseconds, p constant 1)
EVENT_DTYPE = np.dtype([("x", np.int16), ("t", np.int64), ("p", np.int8)])
#: the file's splits
SPLITS = ("train", "test")
#: the file name the dataset is distributed under
FILENAME = "n-tidigits.hdf5"
#: the digit an image of each class shows (audio -> image pairing): ``1``..``9`` are themselves;
#: "oh" (``o``) and "zero" (``z``) are both spoken for 0. The paper's authors map ``z`` to 0 in
#: their N-TIDIGITS scripts (github MrLinNing/MemristorLSM) and keep ``o`` as an 11th class; their
#: zero-shot task uses digits 1-9 only, so ``o`` and ``z`` matter only when asked for with
#: ``--seen`` / ``--unseen`` containing 0.
IMAGE_DIGITS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0)


def digits_of(sample_id: str) -> str:
    """The spoken digits of a sample id: its last ``-``-separated part (``"man-ae-1z3"`` ->
    ``"1z3"``)."""
    return sample_id.split("-")[-1]


def digit_class(digits: str) -> int:
    """Class index of a single spoken digit (:data:`DIGIT_CLASSES`)."""
    if digits not in DIGIT_CLASSES:
        raise InvalidArgumentError(
            f"N-TIDIGITS: {digits!r} is not one spoken digit (expected one of {DIGIT_CLASSES})"
        )
    return DIGIT_CLASSES.index(digits)


def to_frames(
    events: np.ndarray, time_steps: int, split_by: SplitBy = "time", dtype=np.float32
) -> np.ndarray:
    """Count cochlea events into frames ``[T, 1, 1, 64]`` (one polarity channel, a 1 x 64
    "image" of channels), binned as :func:`neuroflow.data.events.transforms.bin_index` does
    (``"time"``: equal windows over the sample's own span; ``"count"``: equal event counts). The
    shape an ``lsm`` with ``crop: null`` takes (``input_shape (1, 1, 64)``). Events must be
    time-ordered (a stream whose timestamps decrease is refused)."""
    if len(events) > 1 and np.any(np.diff(events["t"]) < 0):
        raise DataFormatError("N-TIDIGITS frames: event timestamps must be non-decreasing")
    b = bin_index(events, time_steps, split_by)
    flat = b * NUM_CHANNELS + events["x"].astype(np.int64)
    counts = np.bincount(flat, minlength=time_steps * NUM_CHANNELS)
    return counts.reshape(time_steps, 1, 1, NUM_CHANNELS).astype(dtype, copy=False)


class CochleaFrames:
    """The deterministic event -> frame step of the ``ntidigits`` dataset (:func:`to_frames`),
    with :meth:`params` identifying its output in the frame cache. Output ``[T, 1, 1, 64]``."""

    def __init__(self, time_steps: int, split_by: SplitBy = "time"):
        if int(time_steps) != time_steps or time_steps < 1:
            raise InvalidArgumentError(f"time_steps must be an integer >= 1, got {time_steps!r}")
        if split_by not in ("time", "count"):
            raise InvalidArgumentError(f"split_by must be 'time' or 'count', got {split_by!r}")
        self.time_steps = int(time_steps)
        self.split_by = split_by

    @property
    def frame_shape(self) -> tuple[int, int, int, int]:
        """``(T, 1, 1, 64)``."""
        return (self.time_steps, 1, 1, NUM_CHANNELS)

    def params(self) -> dict:
        return {
            "sensor": "ntidigits-cochlea",
            "time_steps": self.time_steps,
            "split_by": self.split_by,
        }

    def __call__(self, events: np.ndarray) -> np.ndarray:
        return to_frames(events, self.time_steps, self.split_by, dtype=np.uint16)


class NTidigits:
    """One split of an N-TIDIGITS HDF5 file: ``ds[i]`` -> ``(events, label)``.

    Args:
        path: the HDF5 file, or a folder holding ``n-tidigits.hdf5``.
        split: ``"train"`` or ``"test"``.
        single_digits: keep only samples with one spoken digit; labels are then class indices
            (:func:`digit_class`), else the digit strings (``"1z3"``).

    The file stays open for the reader's life (``close()`` or use it as a context manager).
    """

    def __init__(self, path: str | os.PathLike, split: str = "train", single_digits: bool = False):
        import h5py

        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        if not path.is_file():
            raise DatasetNotFoundError(f"N-TIDIGITS: no file {path} (expected {FILENAME})")
        if split not in SPLITS:
            raise InvalidArgumentError(f"N-TIDIGITS: split must be one of {SPLITS}, got {split!r}")
        self.path = path
        self.split = split
        self.single_digits = bool(single_digits)
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise DataFormatError(f"{path}: not a readable HDF5 file ({exc})") from None
        for key in (f"{split}_labels", f"{split}_addresses", f"{split}_timestamps"):
            if key not in self._file:
                self.close()
                raise DataFormatError(
                    f"{path}: missing {key!r} (an N-TIDIGITS file holds S_labels, "
                    f"S_addresses and S_timestamps for S in {SPLITS})"
                )
        ids = [
            v.decode() if isinstance(v, bytes) else str(v) for v in self._file[f"{split}_labels"][:]
        ]
        if self.single_digits:
            ids = [i for i in ids if len(digits_of(i)) == 1]
        self.sample_ids = ids

    def __len__(self) -> int:
        return len(self.sample_ids)

    def label(self, i: int) -> int | str:
        digits = digits_of(self.sample_ids[i])
        return digit_class(digits) if self.single_digits else digits

    @property
    def labels(self) -> list[int | str]:
        return [self.label(i) for i in range(len(self))]

    def events(self, i: int) -> np.ndarray:
        """Sample ``i``'s events ``[E]`` (:data:`EVENT_DTYPE`), in the file's order."""
        return self.events_of(self.sample_ids[i])

    def events_of(self, sample_id: str) -> np.ndarray:
        """The events ``[E]`` (:data:`EVENT_DTYPE`) of the sample named ``sample_id``."""
        where = f"{self.path}: sample {sample_id!r}"
        try:
            channel = np.asarray(self._file[f"{self.split}_addresses"][sample_id])
            seconds = np.asarray(self._file[f"{self.split}_timestamps"][sample_id])
        except KeyError:
            raise DataFormatError(f"{where} has no addresses or timestamps") from None
        if channel.ndim != 1 or seconds.shape != channel.shape:
            raise DataFormatError(
                f"{where}: addresses {channel.shape} and timestamps {seconds.shape} must be "
                "1-D arrays of equal length"
            )
        if channel.size and (channel.min() < 0 or channel.max() >= NUM_CHANNELS):
            raise DataFormatError(
                f"{where}: channel addresses must be in [0, {NUM_CHANNELS}), got "
                f"{channel.min()}..{channel.max()}"
            )
        if not np.all(np.isfinite(seconds)):
            raise DataFormatError(f"{where}: timestamps must be finite")
        events = np.empty(channel.shape[0], dtype=EVENT_DTYPE)
        events["x"] = channel
        events["t"] = np.round(seconds.astype(np.float64) * 1e6)
        events["p"] = 1
        return events

    def __getitem__(self, i: int) -> tuple[np.ndarray, int | str]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"N-TIDIGITS {self.split}: index {i} out of range ({len(self)})")
        i %= len(self)
        return self.events(i), self.label(i)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> NTidigits:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"NTidigits({str(self.path)!r}, split={self.split!r}, samples={len(self)})"

"""Reader (and writer) for the original N-MNIST event files (Orchard et al., 2015).

Layout on disk, as distributed by the authors::

    <root>/Train/<digit>/<id>.bin      or   <root>/Train.zip  holding  Train/<digit>/<id>.bin
    <root>/Test/<digit>/<id>.bin       or   <root>/Test.zip   holding  Test/<digit>/<id>.bin

Zip archives are read in place (never extracted).

File format: 5 bytes per event, big-endian::

    byte 0      x (8 bit)
    byte 1      y (8 bit)
    bytes 2-4   bit 23: polarity, bits 22..0: timestamp in microseconds

A record with ``y == 240`` is a timestamp-overflow marker (the ATIS readers, Orchard's MATLAB code
and Tonic add 2**13 us to every later timestamp and drop the marker). N-MNIST recordings are
~0.3 s long and contain none, but the reader accepts them so that sibling datasets in the same
format decode correctly.

Decoded events are a structured array of dtype :data:`EVENT_DTYPE`, the field names Tonic uses::

    x int16 (0..33), y int16 (0..33), t int64 (microseconds), p int8 (0 or 1, the raw polarity bit)

``p`` is the raw bit. On the recorded files bit 1 marks the *trailing* edges of the moving digit
(measured on real samples); neuroflow never reinterprets it, frames put ``p`` in channel ``p``.
"""

from __future__ import annotations

import os
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuroflow.errors import DataFormatError

#: sensor width and height in pixels (N-MNIST is recorded on a 34 x 34 window of the ATIS)
SENSOR_SIZE: tuple[int, int] = (34, 34)
#: polarity channels
NUM_POLARITIES = 2
#: number of digit classes
NUM_CLASSES = 10
#: bytes per event record
RECORD_BYTES = 5
#: largest timestamp one record can hold (23 bits, microseconds)
MAX_TIMESTAMP_US = (1 << 23) - 1
#: a record with this y value is a timestamp-overflow marker, not an event
OVERFLOW_Y = 240
#: what each overflow marker adds to later timestamps (microseconds)
OVERFLOW_INCREMENT_US = 1 << 13
#: dtype of decoded events (fields x, y in pixels, t in microseconds, p the polarity bit)
EVENT_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("t", np.int64), ("p", np.int8)])
#: the two splits of the original dataset, as folder / archive names
SPLITS = ("Train", "Test")


def decode_events(
    data: bytes | np.ndarray, path: str = "<bytes>", validate: bool = True
) -> np.ndarray:
    """Decode the bytes of one N-MNIST file into an event array of :data:`EVENT_DTYPE`.

    Args:
        data: the file's bytes (or a uint8 array of them).
        path: the file name, used only in error messages.
        validate: check the length, the coordinates (inside 34x34) and that timestamps never go
            backwards. Each violation raises :class:`DataFormatError` naming ``path`` and the byte
            offset of the first offending record.

    Returns:
        ``[N]`` structured array, time-ordered as stored.
    """
    raw = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    raw = raw.reshape(-1)
    if len(raw) == 0:
        raise DataFormatError("file is empty (expected 5-byte event records)", path=path, offset=0)
    if len(raw) % RECORD_BYTES:
        whole = len(raw) - len(raw) % RECORD_BYTES
        raise DataFormatError(
            f"file length {len(raw)} bytes is not a multiple of {RECORD_BYTES}: the last record "
            f"is truncated ({len(raw) - whole} of {RECORD_BYTES} bytes)",
            path=path,
            offset=whole,
        )
    rec = raw.reshape(-1, RECORD_BYTES)
    x = rec[:, 0].astype(np.int16)
    y = rec[:, 1].astype(np.int16)
    b2 = rec[:, 2].astype(np.int64)
    t = ((b2 & 0x7F) << 16) | (rec[:, 3].astype(np.int64) << 8) | rec[:, 4].astype(np.int64)
    p = (rec[:, 2] >> 7).astype(np.int8)
    index = np.arange(len(rec))  # record index in the file, for error offsets

    overflow = y == OVERFLOW_Y
    if overflow.any():
        t = t + OVERFLOW_INCREMENT_US * np.cumsum(overflow)
        keep = ~overflow
        x, y, t, p, index = x[keep], y[keep], t[keep], p[keep], index[keep]

    if validate:
        width, height = SENSOR_SIZE
        outside = np.flatnonzero((x >= width) | (y >= height))
        if len(outside):
            i = outside[0]
            raise DataFormatError(
                f"event {index[i]} at (x={x[i]}, y={y[i]}) is outside the {width}x{height} sensor",
                path=path,
                offset=int(index[i]) * RECORD_BYTES,
            )
        backwards = np.flatnonzero(t[1:] < t[:-1])
        if len(backwards):
            i = backwards[0] + 1
            raise DataFormatError(
                f"timestamp goes backwards at event {index[i]}: {t[i]} us after {t[i - 1]} us "
                "(N-MNIST files are time-ordered)",
                path=path,
                offset=int(index[i]) * RECORD_BYTES,
            )

    events = np.empty(len(x), dtype=EVENT_DTYPE)
    events["x"], events["y"], events["t"], events["p"] = x, y, t, p
    return events


def encode_events(events: np.ndarray) -> bytes:
    """Encode an event array (fields x, y, t, p) into N-MNIST bytes; the inverse of
    :func:`decode_events`. Timestamps must fit in 23 bits (no overflow markers are written)."""
    t = np.asarray(events["t"], dtype=np.int64)
    x = np.asarray(events["x"], dtype=np.int64)
    y = np.asarray(events["y"], dtype=np.int64)
    p = np.asarray(events["p"], dtype=np.int64)
    if len(t) and (t.min() < 0 or t.max() > MAX_TIMESTAMP_US):
        raise DataFormatError(f"timestamps must lie in [0, {MAX_TIMESTAMP_US}] us to fit 23 bits")
    if len(x) and (x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 255):
        raise DataFormatError("x and y must fit in 8 bits")
    rec = np.empty((len(t), RECORD_BYTES), dtype=np.uint8)
    rec[:, 0] = x
    rec[:, 1] = y
    rec[:, 2] = ((p & 1) << 7) | (t >> 16)
    rec[:, 3] = (t >> 8) & 0xFF
    rec[:, 4] = t & 0xFF
    return rec.tobytes()


def read_events(path: str | os.PathLike, validate: bool = True) -> np.ndarray:
    """Read one ``.bin`` file from disk; see :func:`decode_events`."""
    return decode_events(Path(path).read_bytes(), path=str(path), validate=validate)


@dataclass(frozen=True)
class SampleRef:
    """Where one sample lives: a file (``member is None``) or a member of a zip ``archive``."""

    archive_or_file: str
    member: str | None
    label: int

    @property
    def name(self) -> str:
        """A readable identifier: ``path`` or ``archive.zip:member``."""
        return (
            self.archive_or_file if self.member is None else f"{self.archive_or_file}:{self.member}"
        )

    @property
    def key(self) -> str:
        """Split-relative identity used in cache keys: ``<digit>/<file name>``."""
        tail = self.member if self.member is not None else self.archive_or_file
        parts = tail.replace("\\", "/").split("/")
        return "/".join(parts[-2:])

    def read_bytes(self) -> bytes:
        if self.member is None:
            return Path(self.archive_or_file).read_bytes()
        return open_zip(self.archive_or_file).read(self.member)

    def read(self, validate: bool = True) -> np.ndarray:
        """The decoded events; raises :class:`DataFormatError` naming :attr:`name`."""
        return decode_events(self.read_bytes(), path=self.name, validate=validate)


# One open ZipFile per (process, thread, archive version): ZipFile objects are not safe to share
# across threads or forked processes, re-reading the central directory per sample is slow, and a
# rewritten archive (new size or mtime) must not be read through a stale directory.
_ZIPS: dict[tuple, zipfile.ZipFile] = {}


def open_zip(path: str) -> zipfile.ZipFile:
    """A cached, open :class:`zipfile.ZipFile` for ``path``."""
    st = os.stat(path)
    key = (os.getpid(), threading.get_ident(), path, st.st_mtime_ns, st.st_size)
    zf = _ZIPS.get(key)
    if zf is None:
        try:
            zf = zipfile.ZipFile(path)
        except zipfile.BadZipFile as exc:
            raise DataFormatError(f"not a readable zip archive ({exc})", path=path) from None
        _ZIPS[key] = zf
    return zf


_MEMBER = re.compile(r"(?:^|/)(\d)/[^/]+\.bin$")


def list_split(root: str | os.PathLike, split: str) -> list[SampleRef] | None:
    """The samples of ``split`` ("Train" or "Test") under ``root``, sorted by digit then file name.

    Looks for the folder ``<root>/<split>/<digit>/*.bin`` first, then the archive
    ``<root>/<split>.zip``. Returns None when neither exists (an empty list when one exists but
    holds no ``.bin`` files).
    """
    root = Path(root)
    folder = root / split
    if folder.is_dir():
        refs = []
        for digit in range(NUM_CLASSES):
            sub = folder / str(digit)
            if sub.is_dir():
                refs += [
                    SampleRef(str(f), None, digit)
                    for f in sorted(sub.iterdir())
                    if f.suffix == ".bin" and f.is_file()
                ]
        return refs
    archive = root / f"{split}.zip"
    if archive.is_file():
        names = open_zip(str(archive)).namelist()
        refs = []
        for member in names:
            m = _MEMBER.search(member)
            if m and not member.startswith("__MACOSX"):
                refs.append(SampleRef(str(archive), member, int(m.group(1))))
        refs.sort(key=lambda r: (r.label, r.member))
        return refs
    return None

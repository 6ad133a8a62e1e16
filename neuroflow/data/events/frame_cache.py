"""On-disk HDF5 cache of the frames computed from event files.

One cache file holds the frames of one list of samples under one set of transform parameters:
``<cache folder of root>/frames-<split>-<key>.h5`` (the folder is
:func:`neuroflow.data.cache.cache_dir`, outside the dataset), where ``key`` hashes the
parameters, the cache format version and the samples' identities (name, size and modification
time of each file, or name and CRC of each zip member). Changing any of them gives a new key,
so a stale cache is never read.

Layout of a cache file::

    frames  [N, T, P, H, W] uint16 event counts (chunked one sample per chunk, lzf-compressed)
    labels  [N] int64
    index   [N] int64   position of each sample in the list it was built from (bad files that
                        were skipped leave gaps)
    attrs   key, params (JSON), skipped (JSON list of the skipped files and why)

Writes are atomic: the file is written under a temporary name in the same folder and moved into
place with ``os.replace``, so several processes (DDP ranks) may build the same cache at once (the
last rename wins; all writers produce the same content) and a reader never sees half a file.
Only deterministic transforms belong in the cache; random augmentation is applied afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np

from neuroflow.data.cache import cache_dir
from neuroflow.data.events.nmnist import SampleRef, open_zip
from neuroflow.errors import DataFormatError

#: bump when the layout or the meaning of cached frames changes
FORMAT_VERSION = 1


def sample_fingerprint(ref: SampleRef) -> list:
    """What identifies one sample's content cheaply: its split-relative name plus size and mtime
    (a file) or CRC-32 and size (a zip member, from the archive's directory)."""
    if ref.member is None:
        st = os.stat(ref.archive_or_file)
        return [ref.key, st.st_size, st.st_mtime_ns]
    info: zipfile.ZipInfo = open_zip(ref.archive_or_file).getinfo(ref.member)
    return [ref.key, info.file_size, info.CRC]


def cache_key(params: dict, refs: Sequence[SampleRef]) -> str:
    """A 20-hex-digit hash of the transform ``params`` and the samples' fingerprints."""
    payload = {
        "version": FORMAT_VERSION,
        "params": params,
        "samples": [sample_fingerprint(r) for r in refs],
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cache_path(root: str | os.PathLike, split: str, key: str) -> Path:
    """The cache file of ``split`` of the dataset in ``root`` under ``key`` (outside ``root``)."""
    return cache_dir("frames", root) / f"frames-{split}-{key}.h5"


def build_frame_cache(
    path: str | os.PathLike,
    refs: Sequence[SampleRef],
    make_frames: Callable[[np.ndarray], np.ndarray],
    frame_shape: tuple[int, ...],
    key: str,
    params: dict,
    on_bad_file: str = "error",
    progress: bool | None = None,
    desc: str = "caching frames",
) -> Path:
    """Compute the frames of ``refs`` and write them to ``path`` atomically.

    Reuses ``path`` when it already exists with the same ``key`` (e.g. written by another process
    or an earlier run). A bad file raises :class:`DataFormatError` (``on_bad_file="error"``,
    nothing is written) or is skipped with a warning (``"skip"``, recorded in the file).

    Args:
        refs: the samples, in dataset order.
        make_frames: events ``[N]`` -> counts ``frame_shape`` (deterministic).
        frame_shape: ``(T, P, H, W)``.
        progress: tqdm bar (None: only on a terminal).
    Returns:
        ``path``.
    """
    from tqdm import tqdm

    path = Path(path)
    if _valid_cache(path, key):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=path.name + ".tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        skipped = []
        with h5py.File(tmp, "w") as f:
            frames = f.create_dataset(
                "frames",
                shape=(len(refs), *frame_shape),
                maxshape=(None, *frame_shape),
                dtype=np.uint16,
                chunks=(1, *frame_shape),
                compression="lzf",
            )
            labels = np.empty(len(refs), dtype=np.int64)
            index = np.empty(len(refs), dtype=np.int64)
            n = 0
            for i, ref in enumerate(tqdm(refs, desc=desc, unit="file", disable=_no_bar(progress))):
                try:
                    counts = make_frames(ref.read())
                except DataFormatError as exc:
                    if on_bad_file != "skip":
                        raise
                    warnings.warn(f"skipping bad file: {exc}", stacklevel=2)
                    skipped.append({"file": ref.name, "error": str(exc)})
                    continue
                frames[n] = counts
                labels[n] = ref.label
                index[n] = i
                n += 1
            frames.resize(n, axis=0)
            f.create_dataset("labels", data=labels[:n])
            f.create_dataset("index", data=index[:n])
            f.attrs["key"] = key
            f.attrs["params"] = json.dumps(params, sort_keys=True)
            f.attrs["skipped"] = json.dumps(skipped)
        os.chmod(tmp, 0o644)  # mkstemp makes it private
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


def _valid_cache(path: Path, key: str) -> bool:
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r", locking=False) as f:
            return f.attrs.get("key") == key and "frames" in f and "labels" in f
    except OSError as exc:  # unreadable (e.g. damaged by hand): rebuild it
        warnings.warn(
            f"ignoring unreadable frame cache {path} ({exc}); rebuilding it", stacklevel=3
        )
        return False


class CachedFrames:
    """Read access to one cache file: ``len``, ``get(i) -> [T, P, H, W]`` counts, ``labels``.

    Small caches (uncompressed size up to ``memory_limit`` bytes, default 1 GiB) are loaded into
    memory at construction, as uint8 when every count fits: reading one sample from HDF5 costs
    ~0.2-0.4 ms, a slice of an array almost nothing, and DataLoader workers forked afterwards
    share the pages. Larger caches are read sample by sample through an HDF5 handle opened
    lazily once per process. Pickling drops the array and the handle (spawned workers reload).
    """

    def __init__(self, path: str | os.PathLike, memory_limit: int = 1 << 30):
        self.path = str(path)
        self.memory_limit = memory_limit
        with h5py.File(self.path, "r", locking=False) as f:
            self.labels = f["labels"][()]
            self.index = f["index"][()]
            self.skipped = json.loads(f.attrs.get("skipped", "[]"))
            ds = f["frames"]
            self.in_memory = ds.size * ds.dtype.itemsize <= memory_limit
        self._array = None
        self._file = None
        self._pid = None
        if self.in_memory:
            self._load()

    def _load(self) -> None:
        with h5py.File(self.path, "r", locking=False) as f:
            frames = f["frames"][()]
        if frames.size == 0 or frames.max() <= 255:
            frames = frames.astype(np.uint8)
        self._array = frames

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, i: int) -> np.ndarray:
        if self.in_memory:
            if self._array is None:
                self._load()
            return self._array[i]
        if self._file is None or self._pid != os.getpid():
            # files are immutable once renamed into place, so no HDF5 file locking is needed
            # (it also fails on some network file systems)
            self._file = h5py.File(self.path, "r", locking=False)
            self._pid = os.getpid()
        return self._file["frames"][i]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_array"] = None
        state["_file"] = None
        state["_pid"] = None
        return state

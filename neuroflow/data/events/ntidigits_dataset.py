"""The registered dataset ``"ntidigits"``: N-TIDIGITS' single spoken digits (Anumula et al.,
Frontiers in Neuroscience 12:23, 2018) from the distributed HDF5 file, as frames for the ``lsm``
reservoir.

Each item is ``(frames, label)``: ``frames`` a float32 tensor ``[T, 1, 1, 64]`` of cochlea event
counts per channel and time bin (:func:`~neuroflow.data.events.ntidigits.to_frames`; an ``lsm``
takes it with ``crop: null``), ``label`` one of the 11 classes of
:data:`~neuroflow.data.events.ntidigits.DIGIT_CLASSES` (``o`` -> 0, ``1``..``9`` -> 1..9, ``z`` ->
10). Samples of more than one spoken digit (``"1z3"``) have no class and are left out.

Splits (deterministic given ``seed``, by :func:`~neuroflow.data.splits.split_samples`): ``train``
/ ``val`` from the file's ``train`` samples (``val_fraction`` of each class held out), ``test``
the file's ``test`` samples; ``max_samples`` caps each split, stratified. Frames are cached as for
N-MNIST (:mod:`neuroflow.data.events.frame_cache`, keyed by the file's size and modification
time, the sample ids and the binning). ``root``: the folder holding ``n-tidigits.hdf5``, or the
file itself. Nothing is downloaded.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuroflow.data.events.dataset import BinnedEventOptions, FrameDataset, split_datasets
from neuroflow.data.events.nmnist import SampleRef
from neuroflow.data.events.ntidigits import (
    DIGIT_CLASSES,
    FILENAME,
    IMAGE_DIGITS,
    NUM_CHANNELS,
    CochleaFrames,
    NTidigits,
)
from neuroflow.data.splits import split_samples
from neuroflow.errors import DatasetNotFoundError

#: one frame's shape (C, H, W): one polarity, a 1 x 64 row of cochlea channels
INPUT_SHAPE = (1, 1, NUM_CHANNELS)
#: o, 1..9, z
NUM_CLASSES = len(DIGIT_CLASSES)

HOW_TO_GET = (
    "neuroflow downloads nothing: get n-tidigits.hdf5 (N-TIDIGITS, Anumula et al. 2018; the "
    "file Tonic's NTIDIGITS18 fetches, md5 360a2d11e5429555c9197381cf6b58e0) by hand and put it "
    "into {root} (or set data.root to the file)"
)


@dataclass
class NTidigitsOptions(BinnedEventOptions):
    """``data:`` settings of ``ntidigits``: those of :class:`BinnedEventOptions` (frames binned
    over the sample's own span). The file has its own test split, so ``test_fraction`` is
    unused."""

    name: str = "ntidigits"
    root: str = "datasets/ntidigits"


@dataclass(frozen=True)
class NTidigitsRef(SampleRef):
    """One sample of the HDF5 file ``archive_or_file``: ``split`` (the file's) and ``sample_id``.
    ``member`` is None: the frame cache fingerprints the whole file (size, modification time)
    plus :attr:`key`."""

    split: str = "train"
    sample_id: str = ""

    @property
    def name(self) -> str:
        return f"{self.archive_or_file}:{self.split}/{self.sample_id}"

    @property
    def key(self) -> str:
        return f"{self.split}/{self.sample_id}"

    def read_bytes(self) -> bytes:
        raise NotImplementedError("an N-TIDIGITS sample is a pair of HDF5 arrays, not bytes")

    def read(self, validate: bool = True) -> np.ndarray:
        return _open_reader(self.archive_or_file, self.split).events_of(self.sample_id)


# One open reader per (process, thread, file version, split): h5py handles must not cross a fork,
# and opening the file for every sample would re-read its index of ~5,000 groups each time.
_READERS: dict[tuple, NTidigits] = {}


def _open_reader(path: str, split: str) -> NTidigits:
    st = os.stat(path)
    key = (os.getpid(), threading.get_ident(), path, st.st_mtime_ns, st.st_size, split)
    reader = _READERS.get(key)
    if reader is None:
        reader = _READERS[key] = NTidigits(path, split, single_digits=True)
    return reader


def hdf5_path(root: str | os.PathLike) -> Path:
    """The N-TIDIGITS file of ``root`` (a folder holding ``n-tidigits.hdf5``, or the file);
    :class:`DatasetNotFoundError` naming the path when it is not there."""
    root = Path(root)
    # a root that is no folder and has a suffix names the file itself
    path = root / FILENAME if root.is_dir() or root.suffix == "" else root
    if not path.is_file():
        how = HOW_TO_GET.format(root=path.parent)
        raise DatasetNotFoundError(f"ntidigits: no file {path}; {how}")
    return path


def list_refs(path: Path, split: str) -> list[NTidigitsRef]:
    """References to the single-digit samples of ``split`` of the file ``path``."""
    with NTidigits(path, split, single_digits=True) as reader:
        return [
            NTidigitsRef(str(path), None, int(label), split, sample_id)
            for sample_id, label in zip(reader.sample_ids, reader.labels)
        ]


class NTidigitsDataset(FrameDataset):
    """``(frames float32 [T, 1, 1, 64], label int)`` items of one split of ``ntidigits``.

    Attributes as :class:`FrameDataset` (``num_classes`` 11, ``input_shape`` (1, 1, 64)), and
    ``image_digits``: the digit an image of each class shows (:data:`IMAGE_DIGITS`), which
    ``neuroflow lsm zeroshot`` pairs the recordings with.
    """

    num_classes = NUM_CLASSES
    input_shape = INPUT_SHAPE
    image_digits = IMAGE_DIGITS


def build_ntidigits(options: NTidigitsOptions, seed: int) -> dict[str, NTidigitsDataset]:
    """Datasets ``train`` / ``val`` / ``test`` from the N-TIDIGITS file of ``options.root``."""
    path = hdf5_path(options.root)
    train_refs = list_refs(path, "train")
    test_refs = list_refs(path, "test")
    for split, refs in (("train", train_refs), ("test", test_refs)):
        if not refs:
            raise DatasetNotFoundError(f"ntidigits: {path} holds no single-digit {split} samples")
    split_refs = split_samples(train_refs, test_refs, options, seed)
    maker = CochleaFrames(options.time_steps, options.split_by)

    def dataset_of(split, source, files):
        return NTidigitsDataset(source, split, options.time_steps, 0, files)

    return split_datasets(split_refs, path, maker, options, dataset_of)


def ntidigits_model_io(options: NTidigitsOptions) -> tuple[int, tuple[int, int, int]]:
    """``(11 classes, input shape (1, 1, 64))``, known without reading the file."""
    return NUM_CLASSES, INPUT_SHAPE


def prepare_ntidigits(root: str | os.PathLike, seed: int = 0, **kwargs) -> Path:
    """N-TIDIGITS cannot be downloaded by neuroflow: check that ``root`` holds the file (and that
    it reads), else explain how to get it. Returns the file's path."""
    path = hdf5_path(root)
    list_refs(path, "train")
    list_refs(path, "test")
    return path

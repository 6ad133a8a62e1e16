"""Event datasets: ``"nmnist"`` (real N-MNIST under ``root``) and ``"synthetic-nmnist"`` (the
embedded default, generated into ``root`` on first use), registered in
:mod:`neuroflow.data.registry`.

Each dataset item is ``(frames, label)``: ``frames`` a float32 tensor ``[T, 2, 34, 34]`` of event
counts (time-first), ``label`` an int. :func:`collate_time_first` batches items into
``([T, B, 2, 34, 34], [B])``.

Splits (all deterministic given ``seed``):

- ``train`` / ``val``: the Train files, ``val_fraction`` of each class held out for ``val``;
- ``test``: the Test files (``Test/`` or ``Test.zip``); when the root has none, ``test_fraction``
  of each class of the Train files is held out instead (never overlapping ``val``);
- ``max_samples`` caps each split to its first samples in a class-interleaved order, so a capped
  split stays stratified.

Frames are computed once and cached (:mod:`neuroflow.data.events.frame_cache`) in the cache
folder (:mod:`neuroflow.data.cache`; never inside ``root``); random translation (``translate``,
train only) is applied to the cached frames on every access.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from neuroflow.data.cache import CACHE_ENV, is_writable
from neuroflow.data.events.frame_cache import CachedFrames, build_frame_cache, cache_key, cache_path
from neuroflow.data.events.nmnist import (
    NUM_CLASSES,
    NUM_POLARITIES,
    SENSOR_SIZE,
    SampleRef,
    list_split,
)
from neuroflow.data.events.transforms import EventsToFrames, RandomTranslate
from neuroflow.data.options import (
    DataOptions,
    OptionError,
    is_int,
    validate_synthetic_sizes,
)
from neuroflow.data.splits import split_samples
from neuroflow.data.staged_folder import check_meta
from neuroflow.errors import DataFormatError, DatasetNotFoundError

#: one frame's shape (C, H, W)
INPUT_SHAPE = (NUM_POLARITIES, SENSOR_SIZE[1], SENSOR_SIZE[0])
#: the synthetic dataset is always generated with this seed, so "synthetic-nmnist" names one
#: dataset; the training seed only drives the splits and augmentation
SYNTHETIC_DATA_SEED = 0


@dataclass
class BinnedEventOptions(DataOptions):
    """The shared ``data:`` settings (:class:`DataOptions`) and how a recording's events become
    frames: ``time_steps`` frames per sample, binned by equal time windows (``split_by: time``)
    or equal event counts (``count``)."""

    time_steps: int = 10
    split_by: Literal["time", "count"] = "time"

    def validate(self) -> None:
        super().validate()
        if not is_int(self.time_steps) or self.time_steps < 1:
            raise OptionError("time_steps", "an integer >= 1", self.time_steps)
        if self.split_by not in ("time", "count"):
            raise OptionError("split_by", "'time' or 'count'", self.split_by)


@dataclass
class EventOptions(BinnedEventOptions):
    """``data:`` settings of ``nmnist``: those of :class:`BinnedEventOptions`, and
    ``denoise_us``: drop events with no neighbour event within that many microseconds before;
    ``translate``: random shift of up to that many pixels (training split only)."""

    name: str = "nmnist"
    root: str = "datasets/nmnist"
    denoise_us: int | None = None
    translate: int = 0

    def validate(self) -> None:
        super().validate()
        if self.denoise_us is not None and (not is_int(self.denoise_us) or self.denoise_us <= 0):
            raise OptionError(
                "denoise_us", "null or an integer number of microseconds > 0", self.denoise_us
            )
        if not is_int(self.translate) or self.translate < 0:
            raise OptionError("translate", "an integer number of pixels >= 0", self.translate)


@dataclass
class SyntheticNMNISTOptions(EventOptions):
    """``data:`` settings of ``synthetic-nmnist``: those of ``nmnist`` plus the files per class
    generated on first use (null: the generator's default, or what a prepared root holds)."""

    name: str = "synthetic-nmnist"
    root: str = "datasets/synthetic-nmnist"
    synthetic_train_per_class: int | None = None
    synthetic_test_per_class: int | None = None

    def validate(self) -> None:
        super().validate()
        validate_synthetic_sizes(self)


class EventFileFrames:
    """Frames computed from the event files on every access (``cache: false``, or a read-only
    root). Same interface as :class:`~neuroflow.data.events.frame_cache.CachedFrames`."""

    def __init__(self, refs: list[SampleRef], make_frames: Callable[[np.ndarray], np.ndarray]):
        self.refs = list(refs)
        self.make_frames = make_frames
        self.labels = np.array([r.label for r in self.refs], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.refs)

    def get(self, i: int) -> np.ndarray:
        return self.make_frames(self.refs[i].read())


class FrameDataset(Dataset):
    """``(frames float32 [T, 2, 34, 34], label int)`` items of one split.

    Attributes: ``num_classes`` (10), ``input_shape`` ((2, 34, 34)), ``time_steps``, ``split``,
    ``labels`` (``[N]`` int64 array), ``files`` (each sample's file name), ``augment`` (the
    random transform or None).
    """

    num_classes = NUM_CLASSES
    input_shape = INPUT_SHAPE

    def __init__(
        self,
        source,
        split: str,
        time_steps: int,
        translate: int = 0,
        files: list[str] | None = None,
    ):
        self.source = source
        self.files = list(files) if files is not None else []
        self.split = split
        self.time_steps = time_steps
        self.augment = RandomTranslate(translate) if translate > 0 else None

    @property
    def labels(self) -> np.ndarray:
        return self.source.labels

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.split} index {i} out of range for {len(self)} samples")
        frames = torch.from_numpy(self.source.get(int(i) % len(self)).astype(np.float32))
        if self.augment is not None:
            frames = self.augment(frames)
        return frames, int(self.source.labels[i])

    def __repr__(self) -> str:
        return (
            f"FrameDataset(split={self.split!r}, samples={len(self)}, "
            f"time_steps={self.time_steps}, augment={self.augment!r}, "
            f"source={type(self.source).__name__})"
        )


def collate_time_first(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``(frames [T, ...], label)`` items into ``(frames [T, B, ...], labels [B] long)``."""
    frames = torch.stack([item[0] for item in batch], dim=1)
    labels = torch.as_tensor([int(item[1]) for item in batch], dtype=torch.long)
    return frames, labels


# -------------------------------------------------------------------------------------- building


def _not_found(name: str, root: Path, what: str) -> DatasetNotFoundError:
    if name == "synthetic-nmnist":
        how = (
            "prepare the synthetic default with `neuroflow data prepare synthetic-nmnist` "
            "(about 30 s), or set data.prepare: true to generate it on first use"
        )
    else:
        how = (
            "N-MNIST cannot be downloaded by neuroflow: get Train.zip and Test.zip from the "
            f"authors (Orchard et al. 2015, see datasets/README.md) and put them, or the extracted "
            f"Train/ and Test/ folders (Train/<digit>/<id>.bin), into {root}; "
            "or use the synthetic default: `neuroflow data prepare synthetic-nmnist`"
        )
    return DatasetNotFoundError(f"{name}: {what}; {how}")


def _list_train_test(name: str, root: Path) -> tuple[list[SampleRef], list[SampleRef] | None]:
    if not root.is_dir():
        raise _not_found(name, root, f"dataset folder {root} does not exist")
    train = list_split(root, "Train")
    if train is None:
        raise _not_found(name, root, f"{root} has no Train/ folder and no Train.zip")
    if not train:
        raise _not_found(name, root, f"{root}: Train holds no <digit>/<id>.bin files")
    test = list_split(root, "Test")
    if test is not None and not test:
        raise _not_found(name, root, f"{root}: Test holds no <digit>/<id>.bin files")
    return train, test


def _frame_source(split: str, refs: list[SampleRef], root: Path, maker, options: DataOptions):
    """A CachedFrames (building the cache if needed) or, without a cache, an EventFileFrames.

    ``maker``: events -> counts, with ``params()`` (what identifies its output in the cache) and
    ``frame_shape`` (an :class:`EventsToFrames`, or N-TIDIGITS' ``CochleaFrames``); ``refs``:
    sample references (each with ``read()``, ``label``, ``name``); ``options``: ``cache`` and
    ``on_bad_file`` are read."""
    if options.cache and refs:
        params = {**maker.params(), "on_bad_file": options.on_bad_file}
        key = cache_key(params, refs)
        path = cache_path(root, split, key)
        problem = None if is_writable(path.parent) else "the folder is read-only"
        if problem is None:
            try:
                build_frame_cache(
                    path,
                    refs,
                    maker,
                    maker.frame_shape,
                    key,
                    params,
                    options.on_bad_file,
                    desc=f"caching {split} frames",
                )
                return CachedFrames(path)
            except PermissionError as exc:
                problem = exc.strerror
            except OSError as exc:
                if exc.errno != errno.EROFS:
                    raise
                problem = exc.strerror
        warnings.warn(
            f"cannot write the frame cache in {path.parent} ({problem}); computing frames from the "
            f"event files on every access instead (set ${CACHE_ENV} to a writable folder, or "
            "data.cache: false to silence this)",
            stacklevel=3,
        )
    return EventFileFrames(_valid_refs(refs, options.on_bad_file), maker)


def _valid_refs(refs: list[SampleRef], on_bad_file: str) -> list[SampleRef]:
    """Decode every file once up front, so a bad file fails (or is skipped) at build time rather
    than in the middle of training."""
    good = []
    for ref in refs:
        try:
            ref.read()
        except DataFormatError as exc:
            if on_bad_file != "skip":
                raise
            warnings.warn(f"skipping bad file: {exc}", stacklevel=3)
            continue
        good.append(ref)
    return good


def build_nmnist(options: EventOptions, seed: int, name: str = "nmnist") -> dict[str, FrameDataset]:
    """Datasets ``train`` / ``val`` / ``test`` from an N-MNIST root (see the module docstring)."""
    root = Path(options.root)
    train_refs, test_refs = _list_train_test(name, root)
    split_refs = split_samples(train_refs, test_refs, options, seed)
    maker = EventsToFrames(
        options.time_steps, options.split_by, options.denoise_us, SENSOR_SIZE, NUM_POLARITIES
    )

    def dataset_of(split, source, files):
        translate = options.translate if split == "train" else 0
        return FrameDataset(source, split, options.time_steps, translate, files)

    return split_datasets(split_refs, root, maker, options, dataset_of)


def split_datasets(split_refs: dict, root, maker, options, dataset_of) -> dict:
    """One dataset per split of ``split_refs``: ``dataset_of(split, source, files)`` over the
    (cached, where ``options`` say so) frames of its first ``options.max_samples`` samples;
    ``files`` names the samples the source holds (skipped bad files leave gaps)."""
    datasets = {}
    for split, refs in split_refs.items():
        if options.max_samples is not None:
            refs = refs[: options.max_samples]
        source = _frame_source(split, refs, root, maker, options)
        if isinstance(source, CachedFrames):
            files = [refs[i].name for i in source.index]
        else:
            files = [r.name for r in source.refs]
        datasets[split] = dataset_of(split, source, files)
    return datasets


def build_synthetic_nmnist(options: SyntheticNMNISTOptions, seed: int) -> dict[str, FrameDataset]:
    """Like :func:`build_nmnist`, generating the synthetic data into ``root`` first when it is
    absent (``prepare: true``)."""
    from neuroflow.data.events import (
        synthetic_nmnist as synth,
    )  # numba + scipy: imported when needed

    root = Path(options.root)
    train_pc = options.synthetic_train_per_class or synth.DEFAULT_TRAIN_PER_CLASS
    test_pc = options.synthetic_test_per_class or synth.DEFAULT_TEST_PER_CLASS
    if synth.is_prepared(root):
        wanted = {
            "train_per_class": options.synthetic_train_per_class,
            "test_per_class": options.synthetic_test_per_class,
        }
        check_meta(root, "synthetic N-MNIST", synth.META_FILE, synth.GENERATOR_VERSION, wanted)
    elif not _has_data(root):
        if not options.prepare:
            raise _not_found("synthetic-nmnist", root, f"{root} does not hold a prepared dataset")
        synth.prepare_synthetic_nmnist(root, train_pc, test_pc, seed=SYNTHETIC_DATA_SEED)
    return build_nmnist(options, seed, name="synthetic-nmnist")


def _has_data(root: Path) -> bool:
    """True when ``root`` exists and holds anything (a synthetic root without its meta file
    that is not empty was not written by the generator: it is used as it is)."""
    return root.is_dir() and any(root.iterdir())


def prepare_nmnist(root: str | os.PathLike, seed: int = 0, **kwargs) -> Path:
    """Real N-MNIST cannot be downloaded: check that ``root`` holds it, else explain how to get
    it."""
    root = Path(root)
    _list_train_test("nmnist", root)
    return root


def prepare_synthetic(root: str | os.PathLike, seed: int = 0, **kwargs) -> Path:
    """Generate synthetic N-MNIST into ``root`` (kwargs: ``train_per_class``, ``test_per_class``,
    ``progress``, ``workers``); see
    :func:`~neuroflow.data.events.synthetic_nmnist.prepare_synthetic_nmnist`."""
    from neuroflow.data.events.synthetic_nmnist import prepare_synthetic_nmnist

    return prepare_synthetic_nmnist(root, seed=seed, **kwargs)

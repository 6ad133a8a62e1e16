"""Dataset registry and the builder the trainer calls: ``build_datasets(cfg, seed)``.

Registered names (:data:`DATASETS`): ``"nmnist"`` (real N-MNIST under ``root``) and
``"synthetic-nmnist"`` (the embedded default, generated into ``root`` on first use); the point
clouds ``"modelnet40"`` and ``"synthetic-shapes"`` (built by
:mod:`neuroflow.data.point_cloud_dataset`).

Each dataset item is ``(frames, label)``: ``frames`` a float32 tensor ``[T, 2, 34, 34]`` of event
counts (time-first), ``label`` an int. :func:`collate_time_first` batches items into
``([T, B, 2, 34, 34], [B])``.

Splits (all deterministic given ``seed``):

- ``train`` / ``val``: the Train files, ``val_fraction`` of each class held out for ``val``;
- ``test``: the Test files (``Test/`` or ``Test.zip``); when the root has none, ``test_fraction``
  of each class of the Train files is held out instead (never overlapping ``val``);
- ``max_samples`` caps each split to its first samples in a class-interleaved order, so a capped
  split stays stratified.

Frames are computed once and cached (:mod:`neuroflow.data.frame_cache`) under ``<root>/.cache``;
random translation (``translate``, train only) is applied to the cached frames on every access.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from neuroflow.data.event_transforms import EventsToFrames, RandomTranslate
from neuroflow.data.frame_cache import CachedFrames, build_frame_cache, cache_key, cache_path
from neuroflow.data.nmnist import NUM_CLASSES, NUM_POLARITIES, SENSOR_SIZE, SampleRef, list_split
from neuroflow.data.staged_folder import check_meta
from neuroflow.errors import DataFormatError, DatasetNotFoundError, InvalidArgumentError
from neuroflow.registry import Registry

#: one frame's shape (C, H, W)
INPUT_SHAPE = (NUM_POLARITIES, SENSOR_SIZE[1], SENSOR_SIZE[0])
#: the synthetic dataset is always generated with this seed, so "synthetic-nmnist" names one
#: dataset; the training seed only drives the splits and augmentation
SYNTHETIC_DATA_SEED = 0


@dataclass
class DataOptions:
    """The data settings this module reads from a config section (see ``build_datasets``)."""

    name: str = "synthetic-nmnist"
    root: str = "datasets/synthetic-nmnist"
    time_steps: int = 10
    split_by: str = "time"
    denoise_us: int | None = None
    translate: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    cache: bool = True
    on_bad_file: str = "error"
    max_samples: int | None = None
    prepare: bool = True
    synthetic_train_per_class: int | None = None
    synthetic_test_per_class: int | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> "DataOptions":
        """Read the fields from a dataclass/object (attributes) or a mapping (keys); missing ones
        take the defaults, other attributes (batch_size...) are ignored."""
        if isinstance(cfg, DataOptions):
            return cfg
        values = {}
        for f in fields(cls):
            if isinstance(cfg, Mapping):
                if f.name in cfg:
                    values[f.name] = cfg[f.name]
            elif hasattr(cfg, f.name):
                values[f.name] = getattr(cfg, f.name)
        options = cls(**values)
        options.validate()
        return options

    def validate(self) -> None:
        def bad(key: str, expected: str) -> InvalidArgumentError:
            return InvalidArgumentError(f"data.{key} must be {expected}, got {getattr(self, key)!r}")

        def is_int(v) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        if not is_int(self.time_steps) or self.time_steps < 1:
            raise bad("time_steps", "an integer >= 1")
        if self.split_by not in ("time", "count"):
            raise bad("split_by", "'time' or 'count'")
        if self.denoise_us is not None and (not is_int(self.denoise_us) or self.denoise_us <= 0):
            raise bad("denoise_us", "null or an integer number of microseconds > 0")
        if not is_int(self.translate) or self.translate < 0:
            raise bad("translate", "an integer number of pixels >= 0")
        for key in ("val_fraction", "test_fraction"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
                raise bad(key, "a fraction in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise InvalidArgumentError(
                f"data.val_fraction + data.test_fraction must be < 1, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        if self.on_bad_file not in ("error", "skip"):
            raise bad("on_bad_file", "'error' or 'skip'")
        if self.max_samples is not None and (not is_int(self.max_samples) or self.max_samples < 1):
            raise bad("max_samples", "null or an integer >= 1")
        for key in ("synthetic_train_per_class", "synthetic_test_per_class"):
            v = getattr(self, key)
            if v is not None and (not is_int(v) or v < 1):
                raise bad(key, "null or an integer >= 1")
        if not isinstance(self.root, (str, os.PathLike)) or not str(self.root):
            raise bad("root", "a folder path")


class EventFileFrames:
    """Frames computed from the event files on every access (``cache: false``, or a read-only
    root). Same interface as :class:`~neuroflow.data.frame_cache.CachedFrames`."""

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

    def __init__(self, source, split: str, time_steps: int, translate: int = 0, files: list[str] | None = None):
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
            f"FrameDataset(split={self.split!r}, samples={len(self)}, time_steps={self.time_steps}, "
            f"augment={self.augment!r}, source={type(self.source).__name__})"
        )


def collate_time_first(batch: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``(frames [T, ...], label)`` items into ``(frames [T, B, ...], labels [B] long)``."""
    frames = torch.stack([item[0] for item in batch], dim=1)
    labels = torch.as_tensor([int(item[1]) for item in batch], dtype=torch.long)
    return frames, labels


# --------------------------------------------------------------------------------------- splits


def stratified_split(labels: np.ndarray, fractions: list[float], rng: np.random.Generator) -> list[np.ndarray]:
    """Split sample indices class by class.

    Part ``k`` gets ``fractions[k] * n_c`` samples (rounded half up) of each class ``c``; the last part
    returned gets the rest. Every part is in class-interleaved order (see :func:`interleave`).

    Returns:
        ``len(fractions) + 1`` disjoint index arrays: one per fraction, then the remainder.
    """
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        start = 0
        for k, frac in enumerate(fractions):
            n = int(np.floor(frac * len(idx) + 0.5))  # round half up (Python rounds 0.5 to 0)
            n = min(n, len(idx) - start)
            parts[k].append(idx[start : start + n])
            start += n
        parts[-1].append(idx[start:])
    return [interleave(np.concatenate(p), labels, rng) for p in parts]


def interleave(indices: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Order ``indices`` so that classes alternate in proportion: every prefix is (nearly)
    stratified, so truncating to ``max_samples`` keeps the class balance. Within a class the
    given order is kept."""
    if len(indices) == 0:
        return indices.astype(np.int64)
    lab = labels[indices]
    position = np.empty(len(indices))
    for c in np.unique(lab):
        members = np.flatnonzero(lab == c)
        # i-th member of a class of n sits at (i + offset) / n; a random per-class offset breaks
        # ties between classes without favouring low labels
        position[members] = (np.arange(len(members)) + rng.uniform(0.01, 0.99)) / len(members)
    return indices[np.argsort(position, kind="stable")].astype(np.int64)


# -------------------------------------------------------------------------------------- building


def _not_found(name: str, root: Path, what: str) -> DatasetNotFoundError:
    if name == "synthetic-nmnist":
        how = (
            "prepare the synthetic default with `neuroflow data prepare synthetic-nmnist` "
            "(about 30 s), or set data.prepare: true to generate it on first use"
        )
    else:
        how = (
            f"N-MNIST cannot be downloaded by neuroflow: get Train.zip and Test.zip from the authors "
            f"(Orchard et al. 2015, see datasets/README.md) and put them, or the extracted "
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


def _frame_source(
    split: str, refs: list[SampleRef], root: Path, maker: EventsToFrames, options: DataOptions
):
    """A CachedFrames (building the cache if needed) or, without a cache, an EventFileFrames."""
    if options.cache and refs:
        params = {**maker.params(), "on_bad_file": options.on_bad_file}
        key = cache_key(params, refs)
        path = cache_path(root, split, key)
        problem = None if _looks_writable(path.parent) else "the folder is read-only"
        if problem is None:
            try:
                build_frame_cache(
                    path, refs, maker, maker.frame_shape, key, params, options.on_bad_file,
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
            "event files on every access instead (set data.cache: false to silence this)",
            stacklevel=3,
        )
    return EventFileFrames(_valid_refs(refs, options.on_bad_file), maker)


def _looks_writable(cache_dir: Path) -> bool:
    """False for a cache folder (or, before it exists, a dataset root) without write permission.
    Checks the mode bits too: a process running as root may write anywhere, but a dataset folder
    marked read-only (e.g. a shared copy) should not grow a cache behind its owner's back."""
    target = cache_dir if cache_dir.exists() else cache_dir.parent
    try:
        return bool(target.stat().st_mode & 0o222) and os.access(target, os.W_OK)
    except OSError:
        return False


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


def build_nmnist(options: DataOptions, seed: int, name: str = "nmnist") -> dict[str, FrameDataset]:
    """Datasets ``train`` / ``val`` / ``test`` from an N-MNIST root (see the module docstring)."""
    root = Path(options.root)
    train_refs, test_refs = _list_train_test(name, root)
    labels = np.array([r.label for r in train_refs])
    rng = np.random.default_rng([seed, 2024])
    if test_refs is None:
        val_idx, test_idx, train_idx = stratified_split(
            labels, [options.val_fraction, options.test_fraction], rng
        )
        test_refs = [train_refs[i] for i in test_idx]
    else:
        val_idx, train_idx = stratified_split(labels, [options.val_fraction], rng)
        test_labels = np.array([r.label for r in test_refs])
        test_refs = [test_refs[i] for i in interleave(np.arange(len(test_refs)), test_labels, rng)]
    split_refs = {
        "train": [train_refs[i] for i in train_idx],
        "val": [train_refs[i] for i in val_idx],
        "test": test_refs,
    }
    maker = EventsToFrames(options.time_steps, options.split_by, options.denoise_us, SENSOR_SIZE, NUM_POLARITIES)
    datasets = {}
    for split, refs in split_refs.items():
        if options.max_samples is not None:
            refs = refs[: options.max_samples]
        source = _frame_source(split, refs, root, maker, options)
        if isinstance(source, CachedFrames):
            files = [refs[i].name for i in source.index]  # skipped bad files leave gaps
        else:
            files = [r.name for r in source.refs]
        translate = options.translate if split == "train" else 0
        datasets[split] = FrameDataset(source, split, options.time_steps, translate, files)
    return datasets


def build_synthetic_nmnist(options: DataOptions, seed: int) -> dict[str, FrameDataset]:
    """Like :func:`build_nmnist`, generating the synthetic data into ``root`` first when it is
    absent (``prepare: true``)."""
    from neuroflow.data import synthetic_nmnist as synth  # numba + scipy: imported when needed

    root = Path(options.root)
    train_pc = options.synthetic_train_per_class or synth.DEFAULT_TRAIN_PER_CLASS
    test_pc = options.synthetic_test_per_class or synth.DEFAULT_TEST_PER_CLASS
    if synth.is_prepared(root):
        wanted = {"train_per_class": options.synthetic_train_per_class,
                  "test_per_class": options.synthetic_test_per_class}
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
    """Real N-MNIST cannot be downloaded: check that ``root`` holds it, else explain how to get it."""
    root = Path(root)
    _list_train_test("nmnist", root)
    return root


def prepare_synthetic(root: str | os.PathLike, seed: int = 0, **kwargs) -> Path:
    """Generate synthetic N-MNIST into ``root`` (kwargs: ``train_per_class``, ``test_per_class``,
    ``progress``, ``workers``); see :func:`~neuroflow.data.synthetic_nmnist.prepare_synthetic_nmnist`."""
    from neuroflow.data.synthetic_nmnist import prepare_synthetic_nmnist

    return prepare_synthetic_nmnist(root, seed=seed, **kwargs)


# point clouds: imported here, after DataOptions, which their options extend
from neuroflow.data.modelnet import detect_format  # noqa: E402
from neuroflow.data.modelnet import list_split as list_modelnet_split  # noqa: E402
from neuroflow.data.point_cloud_dataset import PointCloudOptions, build_point_cloud_datasets  # noqa: E402
from neuroflow.data.synthetic_shapes import build_synthetic_shapes, prepare_synthetic_shapes  # noqa: E402


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: how to read its options from the data config, build its splits
    from them, and prepare its files."""

    build: Callable[[Any, int], dict[str, Dataset]]
    prepare: Callable[..., Path]
    description: str
    options: Callable[[Any], Any] = DataOptions.from_config


def prepare_modelnet40(root: str | os.PathLike, seed: int = 0, **kwargs) -> Path:
    """Real ModelNet40 cannot be downloaded by neuroflow: check that ``root`` holds it (every file
    its split listings name) and print what it found."""
    root = Path(root)
    fmt = detect_format(root)  # raises, saying how to obtain the data, when it is absent
    classes, train = list_modelnet_split(root, fmt, "train")
    _, test = list_modelnet_split(root, fmt, "test")
    print(f"modelnet40: {fmt} format, {len(classes)} classes, {len(train or [])} training and "
          f"{len(test or [])} test samples in {root}")
    return root


#: name -> :class:`DatasetEntry`
DATASETS: Registry[DatasetEntry] = Registry("dataset")
DATASETS.register("nmnist")(
    DatasetEntry(build_nmnist, prepare_nmnist, "N-MNIST (Orchard et al. 2015) from Train/Test folders or zips")
)
DATASETS.register("synthetic-nmnist")(
    DatasetEntry(build_synthetic_nmnist, prepare_synthetic, "synthetic N-MNIST generated by an event-camera model")
)
DATASETS.register("modelnet40")(DatasetEntry(
    build_point_cloud_datasets, prepare_modelnet40,
    "ModelNet40 (Wu et al. 2015): modelnet40_normal_resampled, modelnet40_ply_hdf5_2048 or OFF meshes",
    PointCloudOptions.from_config,
))
DATASETS.register("synthetic-shapes")(DatasetEntry(
    build_synthetic_shapes, prepare_synthetic_shapes,
    "procedural meshes of 13 shape classes as ModelNet40-style OFF files", PointCloudOptions.from_config,
))


def build_datasets(cfg: Any, seed: int) -> dict[str, Dataset]:
    """Build the ``"train"``, ``"val"`` and ``"test"`` datasets described by ``cfg``.

    Args:
        cfg: the ``data`` config section (a dataclass or object with attributes, or a mapping) with
            the fields of :class:`DataOptions`: ``name``, ``root``, ``time_steps``, ``split_by``,
            ``denoise_us``, ``translate``, ``val_fraction``, ``test_fraction``, ``cache``,
            ``on_bad_file``, ``max_samples``, ``prepare``, ``synthetic_train_per_class``,
            ``synthetic_test_per_class``. Others are ignored.
        seed: drives the split and nothing else (augmentation draws from torch's generator).
    Returns:
        ``{"train", "val", "test"}`` -> :class:`FrameDataset` (items ``([T, 2, 34, 34] float32,
        int)``; attributes ``num_classes``, ``input_shape``), or for point clouds
        (``modelnet40``, ``synthetic-shapes``; their keys in
        :class:`~neuroflow.data.point_cloud_dataset.PointCloudOptions`) a
        :class:`~neuroflow.data.point_cloud_dataset.PointCloudDataset` with a ``collate_fn``
        batching into a SparseTensor.
    Raises:
        RegistryError (unknown name), InvalidArgumentError (bad setting),
        DatasetNotFoundError (no data; the message says how to get it), DataFormatError (bad file).
    """
    name = cfg.get("name", DataOptions.name) if isinstance(cfg, Mapping) else getattr(cfg, "name", DataOptions.name)
    entry = DATASETS.get(name)
    return entry.build(entry.options(cfg), int(seed))


def prepare_dataset(name: str, root: str | os.PathLike, seed: int = 0, **kwargs) -> Path:
    """Make dataset ``name`` ready in ``root`` (the CLI's ``neuroflow data prepare <name>``).

    ``synthetic-nmnist`` generates the files (kwargs: ``train_per_class``, ``test_per_class``,
    ``progress``, ``workers``); ``nmnist`` checks that the files are present and otherwise raises
    :class:`DatasetNotFoundError` saying how to obtain them. Returns ``root`` as a Path.
    """
    return DATASETS.get(name).prepare(root, seed=seed, **kwargs)

"""Point-cloud datasets (ModelNet40 and the synthetic shapes): splits, cache, SVC items, batching.

Per sample, once (cached): read the raw cloud (or sample the mesh), normalise it into the unit
sphere, then keep ``num_points`` points by farthest-point sampling (``sampling: fps``) or keep
``surface_points`` points for per-epoch random subsets (``sampling: random``).
Per access: random subset (``random``), augmentation (training split: isotropic scale drawn from
``scale_range``, shift of up to ``shift`` per axis), then spike voxel coding
(:func:`~neuroflow.encoding.voxel.spike_voxel_code`).

The cache is ``<cache folder of root>/points-<split>-<key>.npy`` (``[S, P, C]`` float32,
memory-mapped) with ``...-<key>.json`` (labels, names; written last, so its presence marks a
complete cache). The folder is :func:`neuroflow.data.cache.cache_dir`, outside the dataset;
``key`` hashes the settings above, :data:`CACHE_VERSION`, the producer's version (e.g. the
synthetic generator's) and every file's name, size and mtime. Writes are atomic (temp file +
rename). An unwritable cache folder keeps the clouds in memory instead (with a warning).

Items are ``(coords [M, 3] int32, features [M, T*C] float32, label)``;
:class:`SparseCollate` batches them into ``(SparseTensor, labels [B])``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from neuroflow.data.cache import CACHE_ENV, cache_dir, is_writable
from neuroflow.data.options import (
    DataOptions,
    OptionError,
    is_int,
    is_number,
    validate_synthetic_sizes,
)
from neuroflow.data.pointcloud import synthetic_shapes
from neuroflow.data.pointcloud.modelnet import (
    FORMATS,
    CloudRef,
    detect_format,
    list_split,
    load_cloud,
)
from neuroflow.data.splits import split_samples
from neuroflow.data.staged_folder import check_meta
from neuroflow.encoding.voxel import (
    farthest_point_sample,
    grid_extent,
    normalize_unit_sphere,
    random_sample,
    spike_voxel_code,
)
from neuroflow.errors import DataFormatError, DatasetNotFoundError, InvalidArgumentError

#: bump when the meaning of cached clouds changes
CACHE_VERSION = 1


@dataclass
class PointCloudOptions(DataOptions):
    """``data:`` settings of ``modelnet40``: the shared ones (:class:`DataOptions`) plus how a
    cloud becomes spikes (see the module docstring). ``format`` picks the ModelNet40
    distribution (``auto`` detects it); ``time_steps`` is the SVC's T (E-3DSNN: 1);
    ``voxel_size`` is in units of the unit sphere; ``spike_levels`` null keeps real values."""

    name: str = "modelnet40"
    root: str = "datasets/modelnet40/modelnet40_normal_resampled"
    time_steps: int = 1
    format: Literal["auto", "normal_resampled", "ply_hdf5_2048", "off"] = "auto"
    num_points: int = 1024
    surface_points: int = 10_000
    sampling: Literal["fps", "random"] = "fps"
    voxel_size: float = 0.05
    use_normals: bool = True
    scale_range: list[float] = field(default_factory=lambda: [0.9, 1.1])
    shift: float = 0.2
    spike_levels: int | None = 4

    def validate(self) -> None:
        super().validate()
        if not is_int(self.time_steps) or self.time_steps < 1:
            raise OptionError("time_steps", "an integer >= 1", self.time_steps)
        if self.format not in ("auto", *FORMATS):
            raise OptionError("format", "'auto', " + ", ".join(map(repr, FORMATS)), self.format)
        for key in ("num_points", "surface_points"):
            if not is_int(getattr(self, key)) or getattr(self, key) < 1:
                raise OptionError(key, "an integer >= 1", getattr(self, key))
        if self.sampling not in ("fps", "random"):
            raise OptionError("sampling", "'fps' or 'random'", self.sampling)
        if not is_number(self.voxel_size) or not self.voxel_size > 0:
            raise OptionError(
                "voxel_size", "> 0 (a number, in units of the unit sphere)", self.voxel_size
            )
        s = self.scale_range
        if not (
            isinstance(s, (list, tuple))
            and len(s) == 2
            and all(map(is_number, s))
            and 0 < s[0] <= s[1]
        ):
            raise OptionError("scale_range", "[low, high] with 0 < low <= high", s)
        if not is_number(self.shift) or self.shift < 0:
            raise OptionError("shift", "a number >= 0", self.shift)
        if self.spike_levels is not None and (
            not is_int(self.spike_levels) or self.spike_levels < 1
        ):
            raise OptionError("spike_levels", "null or an integer >= 1", self.spike_levels)

    @property
    def channels(self) -> int:
        """Features per voxel: ``T * (6 or 3)``."""
        return self.time_steps * (6 if self.use_normals else 3)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        g = grid_extent(float(self.scale_range[1]), float(self.voxel_size))
        return (g, g, g)


@dataclass
class SyntheticShapesOptions(PointCloudOptions):
    """``data:`` settings of ``synthetic-shapes``: those of ``modelnet40`` plus the meshes per
    class generated on first use (null: the generator's default, or what a prepared root holds)."""

    name: str = "synthetic-shapes"
    root: str = "datasets/synthetic-shapes"
    synthetic_train_per_class: int | None = None
    synthetic_test_per_class: int | None = None

    def validate(self) -> None:
        super().validate()
        validate_synthetic_sizes(self)


# ------------------------------------------------------------------------------------- caching


def _prepare_cloud(ref: CloudRef, fmt: str, options: PointCloudOptions) -> np.ndarray:
    """The cached form of one sample: normalised, then FPS'd or brought to ``surface_points``."""
    cloud = load_cloud(ref, fmt, options.surface_points)
    if len(cloud) == 0:
        raise DataFormatError("empty point cloud", ref.path)
    if options.use_normals and cloud.shape[1] < 6:
        raise DataFormatError("the file has no normals; set data.use_normals: false", ref.path)
    try:
        cloud = normalize_unit_sphere(cloud[:, : 6 if options.use_normals else 3])
    except InvalidArgumentError as exc:
        raise DataFormatError(str(exc), ref.path) from None
    if options.sampling == "fps":
        return cloud[farthest_point_sample(cloud, options.num_points)]
    rng = np.random.default_rng(zlib.crc32(ref.name.encode()))  # the same subset in every run
    return cloud[random_sample(len(cloud), options.surface_points, rng)]


#: below this many samples the clouds are prepared in this process (a worker costs ~0.1-0.2 s
#: to start)
_PARALLEL_MIN_SAMPLES = 64
#: samples per task handed to a worker
_CHUNK = 16


def _usable_cpus() -> int:
    """CPUs this process may run on: its affinity set where the OS has one (a container or
    ``taskset`` limits it, while ``os.cpu_count()`` reports the whole machine)."""
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def _prepare_chunk(refs: list[CloudRef], fmt: str, options: PointCloudOptions) -> list:
    """``(cloud, None)`` or ``(None, DataFormatError)`` per sample of ``refs``."""
    out = []
    for ref in refs:
        try:
            out.append((_prepare_cloud(ref, fmt, options), None))
        except DataFormatError as exc:
            out.append((None, exc))
    return out


def _prepare_clouds(refs: list[CloudRef], fmt: str, options: PointCloudOptions):
    """:func:`_prepare_chunk`'s results for ``refs``, in order, one sample at a time (a generator,
    for the progress bar).

    On Linux, 64 samples or more are prepared by forked worker processes, one per CPU (and DDP
    rank): with 2 workers on the 2-core development VM a ModelNet40 file takes less than half the
    time it takes in one process (figures in ``docs/benchmarks.md``). Each cloud depends on its
    own file only, so the cache is the same for any number of workers (tested). ``fork``, as
    torch's DataLoader on Linux: the work is numpy and a serial numba kernel, nothing that needs
    the parent's OpenMP threads. A daemonic process (which may not have children) prepares them
    itself, and so does this process, with a warning, after a worker died (e.g. killed for
    memory)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    ranks = max(1, int(os.environ.get("WORLD_SIZE", "1")))  # DDP ranks each prepare the clouds
    workers = min(_usable_cpus() // ranks, max(1, len(refs) // _CHUNK))
    done = 0
    if (
        len(refs) >= _PARALLEL_MIN_SAMPLES
        and workers >= 2
        and sys.platform.startswith("linux")
        and not multiprocessing.current_process().daemon
    ):
        if (
            options.sampling == "fps"
        ):  # load the compiled kernel once, before the workers inherit it
            farthest_point_sample(np.zeros((2, 3)), 1)
        chunks = [refs[i : i + _CHUNK] for i in range(0, len(refs), _CHUNK)]
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        try:
            for results in pool.map(
                _prepare_chunk, chunks, [fmt] * len(chunks), [options] * len(chunks)
            ):
                yield from results
                done += len(results)
        except BrokenProcessPool as exc:
            warnings.warn(
                f"a worker preparing the point clouds died ({exc}); preparing the other "
                f"{len(refs) - done} in this process",
                stacklevel=2,
            )
        finally:  # on a bad file (or Ctrl-C), drop the chunks not yet started
            pool.shutdown(wait=True, cancel_futures=True)
    for ref in refs[done:]:
        yield from _prepare_chunk([ref], fmt, options)


def _cache_key(options: PointCloudOptions, fmt: str, refs: list[CloudRef], producer: str) -> str:
    payload = {
        "version": CACHE_VERSION,
        "producer": producer,
        "format": fmt,
        "settings": [
            options.sampling,
            options.num_points,
            options.surface_points,
            options.use_normals,
        ],
        "samples": [r.fingerprint() for r in refs],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would append ".npy" to a temp name
        np.save(fh, array)


def cached_clouds(
    root: Path,
    split: str,
    fmt: str,
    refs: list[CloudRef],
    options: PointCloudOptions,
    producer: str = "",
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(clouds [S, P, C] float32, labels [S] int64, names)`` of ``refs``, from the cache or
    computed (and cached when ``options.cache`` and the cache folder is writable)."""
    from tqdm import tqdm

    key = _cache_key(options, fmt, refs, producer)
    folder = cache_dir("points", root)
    data_path, meta_path = (
        folder / f"points-{split}-{key}.npy",
        folder / f"points-{split}-{key}.json",
    )
    if options.cache and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return (
            np.load(data_path, mmap_mode="r"),
            np.asarray(meta["labels"], dtype=np.int64),
            meta["names"],
        )
    clouds, labels, names = [], [], []
    prepared = _prepare_clouds(refs, fmt, options)
    try:
        for ref, (cloud, error) in zip(
            refs,
            tqdm(
                prepared,
                total=len(refs),
                desc=f"sampling {split} clouds",
                unit="shape",
                leave=False,
                disable=None if progress is None else not progress,
            ),
        ):
            if error is not None:
                if options.on_bad_file != "skip":
                    raise error
                warnings.warn(f"skipping bad file: {error}", stacklevel=2)
                continue
            clouds.append(cloud)
            labels.append(ref.label)
            names.append(ref.name)
    finally:
        prepared.close()
    if not clouds:
        raise DatasetNotFoundError(f"{root}: no readable samples in the {split} split")
    array = np.stack(clouds).astype(np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    if options.cache:
        if is_writable(folder):
            folder.mkdir(parents=True, exist_ok=True)
            _atomic(data_path, lambda tmp: _save_npy(tmp, array))
            meta = {"key": key, "labels": labels.tolist(), "names": names}
            _atomic(meta_path, lambda tmp: tmp.write_text(json.dumps(meta)))
        else:
            warnings.warn(
                f"cannot write the point cache in {folder} (read-only); the sampled clouds "
                f"are kept in memory for this run only (set ${CACHE_ENV} to a writable folder, "
                "or data.cache: false to silence this)",
                stacklevel=2,
            )
    return array, labels, names


# ------------------------------------------------------------------------------------- dataset


class PointCloudDataset(Dataset):
    """``(coords [M, 3] int32, features [M, T*C] float32, label)`` items of one split.

    Attributes: ``num_classes``, ``classes``, ``input_shape`` (``(T*C,)``: features per voxel),
    ``spatial_shape``, ``labels``, ``files`` (sample names), ``split``, ``augment`` (bool),
    ``collate_fn`` (a :class:`SparseCollate`, picked up by the trainer).
    """

    def __init__(
        self,
        clouds: np.ndarray,
        labels: np.ndarray,
        names: list[str],
        classes: list[str],
        options: PointCloudOptions,
        split: str,
        augment: bool,
    ):
        self.clouds, self.labels, self.files = clouds, labels, list(names)
        self.classes = list(classes)
        self.num_classes = len(classes)
        self.options = options
        self.split = split
        self.augment = augment
        self.input_shape = (options.channels,)
        self.spatial_shape = options.spatial_shape
        self.collate_fn = SparseCollate(self.spatial_shape)

    def __len__(self) -> int:
        return len(self.labels)

    def cloud(self, i: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Sample ``i``'s normalised cloud ``[num_points, C]`` before augmentation."""
        cloud = np.array(self.clouds[i], dtype=np.float32)
        if self.options.sampling == "random":
            rng = (
                rng if rng is not None else np.random.default_rng(i)
            )  # fixed subset for evaluation
            cloud = cloud[random_sample(len(cloud), self.options.num_points, rng)]
        return cloud

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(f"{self.split} index {i} out of range for {len(self)} samples")
        i = int(i) % len(self)
        o = self.options
        # numpy draws seeded from torch's generator: the trainer seeds and checkpoints that one
        rng = (
            np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
            if self.augment
            else None
        )
        cloud = self.cloud(i, rng)
        if self.augment:
            low, high = o.scale_range
            cloud[:, :3] = cloud[:, :3] * rng.uniform(low, high) + rng.uniform(-o.shift, o.shift, 3)
        coords, features = spike_voxel_code(
            cloud, o.voxel_size, o.use_normals, o.time_steps, o.spike_levels, rng
        )
        return coords, features, int(self.labels[i])

    def __repr__(self) -> str:
        return (
            f"PointCloudDataset(split={self.split!r}, samples={len(self)}, "
            f"classes={self.num_classes}, input_shape={self.input_shape}, "
            f"spatial_shape={self.spatial_shape}, augment={self.augment})"
        )


class SparseCollate:
    """Batch ``(coords, features, label)`` items into ``(SparseTensor, labels [B] long)``."""

    def __init__(self, spatial_shape: tuple[int, int, int]):
        self.spatial_shape = tuple(spatial_shape)

    def __call__(self, batch):
        from neuroflow.layers.sparse import SparseTensor

        coords = [
            np.concatenate([np.full((len(c), 1), b, np.int32), c], axis=1)
            for b, (c, _, _) in enumerate(batch)
        ]
        features = torch.from_numpy(np.concatenate([f for _, f, _ in batch]))
        labels = torch.as_tensor([y for _, _, y in batch], dtype=torch.long)
        x = SparseTensor(
            torch.from_numpy(np.concatenate(coords)), features, self.spatial_shape, len(batch)
        )
        return x, labels


# ------------------------------------------------------------------------------------ building


def build_point_cloud_datasets(
    options: PointCloudOptions, seed: int, fmt: str | None = None, producer: str = ""
) -> dict[str, PointCloudDataset]:
    """``train`` / ``val`` / ``test`` datasets from a ModelNet40-style root.

    ``val`` is ``val_fraction`` of each class of the train files; ``test`` the test files, or
    ``test_fraction`` of the train files when the root has none (as in N-MNIST's builder)."""
    root = Path(options.root)
    if not root.is_dir():
        raise DatasetNotFoundError(
            f"{options.name}: dataset folder {root} does not exist; see datasets/README.md"
        )
    fmt = fmt or (detect_format(root) if options.format == "auto" else options.format)
    classes, train_refs = list_split(root, fmt, "train")
    if not train_refs:
        raise DatasetNotFoundError(
            f"{options.name}: {root} has no training samples in the {fmt} layout"
        )
    _, test_refs = list_split(root, fmt, "test")
    splits = split_samples(train_refs, test_refs, options, seed)
    out = {}
    for split, refs in splits.items():
        refs = refs[: options.max_samples] if options.max_samples is not None else refs
        if not refs:
            out[split] = None
            continue
        clouds, y, names = cached_clouds(root, split, fmt, refs, options, producer)
        out[split] = PointCloudDataset(
            clouds, y, names, classes, options, split, augment=split == "train"
        )
    return out


def build_synthetic_shapes(options: SyntheticShapesOptions, seed: int) -> dict:
    """Point-cloud datasets of the synthetic shapes in ``options.root``, generated there first
    when absent and ``options.prepare``."""
    root = Path(options.root)
    if synthetic_shapes.is_prepared(root):
        wanted = {
            "train_per_class": options.synthetic_train_per_class,
            "test_per_class": options.synthetic_test_per_class,
        }
        check_meta(
            root,
            "synthetic shapes",
            synthetic_shapes.META_FILE,
            synthetic_shapes.GENERATOR_VERSION,
            wanted,
        )
    elif not (root.is_dir() and any(root.iterdir())):
        if not options.prepare:
            raise DatasetNotFoundError(
                f"synthetic-shapes: {root} does not hold a prepared dataset; run "
                "`neuroflow data prepare synthetic-shapes` or set data.prepare: true"
            )
        synthetic_shapes.prepare_synthetic_shapes(
            root,
            options.synthetic_train_per_class or synthetic_shapes.DEFAULT_TRAIN_PER_CLASS,
            options.synthetic_test_per_class or synthetic_shapes.DEFAULT_TEST_PER_CLASS,
            seed=0,
        )
    producer = (
        f"synthetic-shapes v{synthetic_shapes.read_meta(root).get('generator_version')}"
        if synthetic_shapes.is_prepared(root)
        else ""
    )
    return build_point_cloud_datasets(options, seed, fmt="off", producer=producer)


def prepare_modelnet40(root: str | os.PathLike, seed: int = 0, **kwargs) -> Path:
    """Real ModelNet40 cannot be downloaded by neuroflow: check that ``root`` holds it (every file
    its split listings name) and print what it found."""
    root = Path(root)
    fmt = detect_format(root)  # raises, saying how to obtain the data, when it is absent
    classes, train = list_split(root, fmt, "train")
    _, test = list_split(root, fmt, "test")
    print(
        f"modelnet40: {fmt} format, {len(classes)} classes, {len(train or [])} training and "
        f"{len(test or [])} test samples in {root}"
    )
    return root

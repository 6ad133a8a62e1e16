"""ModelNet40 readers for its three common distributions, and their file listings.

- ``normal_resampled`` (PointNet++): ``<root>/<class>/<class>_<id>.txt``, 10,000 lines of
  ``x,y,z,nx,ny,nz``; ``modelnet40_shape_names.txt`` (one class per line, label = line number),
  ``modelnet40_train.txt`` / ``modelnet40_test.txt`` (one sample name per line).
- ``ply_hdf5_2048`` (PointNet): ``ply_data_train0.h5``... listed in ``train_files.txt`` /
  ``test_files.txt`` (as paths like ``data/modelnet40_ply_hdf5_2048/ply_data_train0.h5``; the file
  name is looked up in the root); datasets ``data`` float32 ``[N, 2048, 3]``, ``label`` ``[N, 1]``
  and, in the original release, ``normal`` ``[N, 2048, 3]``; ``shape_names.txt``.
- ``off`` (the original meshes, Wu et al. 2015): ``<root>/<class>/{train,test}/<class>_<id>.off``,
  sampled into points + normals by :func:`~neuroflow.data.pointcloud.mesh_sampling.sample_surface`.

Every reader raises :class:`~neuroflow.errors.DataFormatError` naming the file for malformed
input (empty cloud, NaN coordinates, wrong columns, missing h5 datasets).
"""

from __future__ import annotations

import functools
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuroflow.data.pointcloud.mesh_sampling import sample_surface
from neuroflow.data.pointcloud.off import read_off
from neuroflow.errors import DataFormatError, DatasetNotFoundError, InvalidArgumentError

FORMATS = ("normal_resampled", "ply_hdf5_2048", "off")


@dataclass(frozen=True)
class CloudRef:
    """One sample: its file, label, and (h5) row; ``name`` identifies it within the dataset."""

    path: str
    label: int
    name: str
    row: int | None = None

    def fingerprint(self) -> list:
        st = os.stat(self.path)
        return [self.name, self.row, st.st_size, st.st_mtime_ns]


# ------------------------------------------------------------------------------------- readers


def read_modelnet_txt(path: str | os.PathLike) -> np.ndarray:
    """One ``normal_resampled`` sample: ``[N, 6]`` float32 (``x, y, z, nx, ny, nz``).

    Lines are comma separated (whitespace is accepted too). Raises DataFormatError naming the
    file (and line) for an empty file, a line without 6 numbers, or NaN/infinite values."""
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"not a text file ({exc.reason})", str(path), exc.start) from None
    spaced = text.replace(",", " ")
    if not spaced.strip():
        raise DataFormatError("empty point cloud: expected lines of x,y,z,nx,ny,nz", str(path))
    try:  # numpy's C parser: ~2.5x faster than float() per value (docs/benchmarks.md)
        cloud = np.loadtxt(io.StringIO(spaced), dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        cloud = None
    if cloud is None or cloud.shape[1] != 6:
        for number, line in enumerate(text.splitlines(), start=1):
            values = line.replace(",", " ").split()
            if values and (len(values) != 6 or not _numbers(values)):
                raise DataFormatError(
                    f"line {number}: expected 6 numbers x,y,z,nx,ny,nz, got {line.strip()[:60]!r}",
                    str(path),
                )
        # every line holds 6 numbers that Python reads but numpy did not (e.g. 1_000)
        cloud = np.array(
            [[float(v) for v in line.split()] for line in spaced.splitlines() if line.strip()]
        )
    bad = ~np.isfinite(cloud).all(axis=1)
    if bad.any():
        raise DataFormatError(
            f"line {_line_of_row(text, int(np.flatnonzero(bad)[0]))}: NaN or infinite value",
            str(path),
        )
    return cloud.astype(np.float32)


def _numbers(values: list[str]) -> bool:
    try:
        [float(v) for v in values]
        return True
    except ValueError:
        return False


def _line_of_row(text: str, row: int) -> int:
    seen = -1
    for number, line in enumerate(text.splitlines(), start=1):
        seen += bool(line.strip())
        if seen == row:
            return number
    return row + 1


@functools.lru_cache(maxsize=2)
def read_ply_h5(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One ``ply_hdf5_2048`` file: ``(data [N, P, 3] float32, label [N] int64, normal [N, P, 3]
    float32 or None)``. Raises DataFormatError naming the file when it is not HDF5, lacks
    ``data`` / ``label``, or their shapes disagree."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("data", "label") if k not in f]
            if missing:
                raise DataFormatError(
                    f"missing dataset(s) {missing}: expected 'data' [N, P, 3] and 'label' [N, 1]",
                    path,
                )
            data = np.asarray(f["data"][()], dtype=np.float32)
            label = np.asarray(f["label"][()])
            normal = np.asarray(f["normal"][()], dtype=np.float32) if "normal" in f else None
    except OSError as exc:
        raise DataFormatError(f"not a readable HDF5 file ({exc})", path) from None
    if data.ndim != 3 or data.shape[2] != 3 or data.shape[1] == 0:
        raise DataFormatError(f"'data' must be [N, P, 3] with P >= 1, got {data.shape}", path)
    label = label.reshape(-1)
    if label.shape[0] != data.shape[0] or not np.issubdtype(label.dtype, np.integer):
        raise DataFormatError(
            f"'label' must be [N, 1] integers for N = {data.shape[0]}, got {label.shape} "
            f"{label.dtype}",
            path,
        )
    if normal is not None and normal.shape != data.shape:
        raise DataFormatError(f"'normal' must match 'data' {data.shape}, got {normal.shape}", path)
    return data, label.astype(np.int64), normal


def read_shape_names(path: Path) -> list[str]:
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise DataFormatError("no class names", str(path))
    return names


# ------------------------------------------------------------------------------------ listings


#: what marks each distribution's folder, in the words of the error messages
_MARKERS = {
    "normal_resampled": "modelnet40_shape_names.txt (modelnet40_normal_resampled)",
    "ply_hdf5_2048": "train_files.txt (modelnet40_ply_hdf5_2048)",
    "off": "<class>/train/*.off (ModelNet40 meshes)",
}


def _holds(root: Path, fmt: str) -> bool:
    if fmt == "normal_resampled":
        return (root / "modelnet40_shape_names.txt").is_file()
    if fmt == "ply_hdf5_2048":
        return (root / "train_files.txt").is_file() or (root / "test_files.txt").is_file()
    return root.is_dir() and any(
        next(root.glob(f"*/{split}/*.off"), None) for split in ("train", "test")
    )


def detect_format(root: Path) -> str:
    """The ModelNet40 distribution in ``root`` (see the module docstring)."""
    for fmt in _MARKERS:
        if _holds(root, fmt):
            return fmt
    raise DatasetNotFoundError(
        f"{root} holds no ModelNet40 data: expected {', '.join(_MARKERS.values())}; "
        "see datasets/README.md"
    )


def list_split(root: Path, fmt: str, split: str) -> tuple[list[str], list[CloudRef] | None]:
    """``(class names, samples of split)`` for ``split`` in ``train`` / ``test``; the samples are
    None when the distribution has no such split in ``root``. A ``root`` that holds another
    distribution than ``fmt`` raises :class:`DatasetNotFoundError` naming the one it holds."""
    if not _holds(root, fmt):
        found = next((other for other in _MARKERS if _holds(root, other)), None)
        hint = (
            f"; it holds {found}: set data.format: {found} (or auto)"
            if found
            else "; see datasets/README.md"
        )
        raise DatasetNotFoundError(
            f"{root} holds no ModelNet40 data in format {fmt!r}: expected {_MARKERS[fmt]}{hint}"
        )
    return {"normal_resampled": _list_txt, "ply_hdf5_2048": _list_h5, "off": _list_off}[fmt](
        root, split
    )


def _list_txt(root: Path, split: str):
    classes = read_shape_names(root / "modelnet40_shape_names.txt")
    listing = root / f"modelnet40_{split}.txt"
    if not listing.is_file():
        return classes, None
    refs = []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        cls = name.rsplit("_", 1)[0]
        if cls not in classes:
            raise DataFormatError(
                f"line {number}: {name!r} names no class of modelnet40_shape_names.txt",
                str(listing),
            )
        path = root / cls / f"{name}.txt"
        if not path.is_file():
            raise DatasetNotFoundError(
                f"{listing} line {number} lists {name}, but {path} does not exist"
            )
        refs.append(CloudRef(str(path), classes.index(cls), name))
    return classes, refs


def _list_h5(root: Path, split: str):
    names_file = root / "shape_names.txt"
    listing = root / f"{split}_files.txt"
    if not listing.is_file():
        return (read_shape_names(names_file) if names_file.is_file() else []), None
    refs = []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        path = root / Path(line.strip()).name  # listed as data/modelnet40_ply_hdf5_2048/<file>
        if not path.is_file():
            raise DatasetNotFoundError(
                f"{listing} line {number} lists {line.strip()}, but {path} does not exist"
            )
        _, labels, _ = read_ply_h5(str(path))
        refs += [CloudRef(str(path), int(y), f"{path.name}:{i}", i) for i, y in enumerate(labels)]
    if names_file.is_file():
        classes = read_shape_names(names_file)
    else:
        classes = [str(c) for c in range(max((r.label for r in refs), default=-1) + 1)]
    bad = [r for r in refs if not 0 <= r.label < len(classes)]
    if bad:
        raise DataFormatError(
            f"label {bad[0].label} outside the {len(classes)} classes", bad[0].path
        )
    return classes, refs


def _list_off(root: Path, split: str):
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    refs = [
        CloudRef(str(path), label, path.stem)
        for label, cls in enumerate(classes)
        for path in sorted((root / cls / split).glob("*.off"))
    ]
    return classes, (refs or None)


# ------------------------------------------------------------------------------------- loading


def load_cloud(ref: CloudRef, fmt: str, surface_points: int = 10_000) -> np.ndarray:
    """The sample's raw cloud ``[P, 6]`` float32 (``[P, 3]`` for h5 files without normals).

    OFF meshes are sampled with ``surface_points`` points, from a generator seeded by the sample's
    name (so a cloud does not depend on the order samples are read in)."""
    if fmt == "normal_resampled":
        cloud = read_modelnet_txt(ref.path)
    elif fmt == "ply_hdf5_2048":
        data, _, normal = read_ply_h5(ref.path)
        cloud = (
            data[ref.row]
            if normal is None
            else np.concatenate([data[ref.row], normal[ref.row]], axis=1)
        )
        if not np.isfinite(cloud).all():
            raise DataFormatError(f"sample {ref.row}: NaN or infinite coordinates", ref.path)
    else:
        vertices, faces = read_off(ref.path)
        rng = np.random.default_rng(zlib.crc32(ref.name.encode()))
        try:
            cloud = sample_surface(vertices, faces, surface_points, rng)
        except InvalidArgumentError as exc:
            raise DataFormatError(str(exc), ref.path) from None
    return cloud

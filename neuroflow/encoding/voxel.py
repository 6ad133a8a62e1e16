"""Spike voxel coding (SVC, E-3DSNN, Qiu et al. 2024): point cloud -> integer-spike sparse voxels.

The pipeline, one sample at a time (all functions are pure NumPy/numba on ``[N, 3+]`` arrays):

1. :func:`normalize_unit_sphere` - centre on the centroid, scale so the farthest point is at 1;
2. :func:`farthest_point_sample` or :func:`random_sample` - keep ``num_points`` points;
3. :func:`grid_sample` - voxelise at ``voxel_size`` (units of the unit sphere, e.g. 0.01 in the
   paper) and keep one point per occupied voxel (a random one when training, the first otherwise);
4. :func:`encode_spikes` - each feature (``x, y, z`` and optionally the normal ``nx, ny, nz``, all
   in [-1, 1]) becomes a signed integer spike count ``round(clamp(f, -1, 1) * D)`` per time step:
   ``|k| <= D`` spikes of polarity ``sign(f)`` over ``D`` virtual steps, the integer multi-spike
   convention of E-3DSNN (D = 4). The ``T`` time steps are laid out along the channels
   (``[N, T * C]``, step-major) because a sparse tensor has no time axis; E-3DSNN uses ``T = 1``.

:func:`spike_voxel_code` runs steps 3-4 and returns integer voxel coordinates plus features, the
content of one sample of a :class:`~neuroflow.layers.sparse.SparseTensor`.
"""

from __future__ import annotations

import numpy as np

from neuroflow.errors import InputShapeError, InvalidArgumentError


def _check_cloud(points: np.ndarray, what: str = "points") -> np.ndarray:
    """``points`` as an array ``[N, 3+]`` with N >= 1 and finite values (coordinates and normals:
    a NaN would otherwise come out as a voxel or a spike count that means nothing)."""
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise InputShapeError(f"{what} must be [N, 3+] (x, y, z, ...), got shape {points.shape}")
    if len(points) == 0:
        raise InputShapeError(f"{what} is an empty point cloud")
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise InvalidArgumentError(
            f"{what} hold NaN or infinite values (first in row {row}: {points[row].tolist()})"
        )
    return points


def normalize_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Translate ``points[:, :3]`` to their centroid and scale them into the unit ball (the
    farthest point lands on the sphere). Other columns (normals) are kept. ``[N, C]`` -> ``[N, C]``.

    Raises InputShapeError for an empty cloud, InvalidArgumentError for non-finite values."""
    points = _check_cloud(points)
    xyz = points[:, :3].astype(np.float64)
    xyz = xyz - xyz.mean(axis=0)
    radius = np.sqrt((xyz**2).sum(axis=1).max())
    if radius > 0:
        xyz /= radius
    out = points.astype(np.float32, copy=True)
    out[:, :3] = xyz
    return out


def _fps_python(xyz: np.ndarray, n: int, start: int) -> np.ndarray:
    # Each step updates every point's distance to the chosen set, then takes the first point of
    # the largest. Written so that LLVM vectorises both passes: coordinates as three contiguous
    # arrays; the distances double-buffered (updated in place, the conditional update compiled to
    # a masked store, which measured 1.7x slower on AMD Zen 3); the maximum taken over their bits
    # as int64 (order-preserving for non-negative doubles; an integer max vectorises, a float one
    # does not without fast-math). About 2x faster than the straightforward loop it replaced
    # (docs/benchmarks.md).
    m = xyz.shape[0]
    xs, ys, zs = xyz[:, 0].copy(), xyz[:, 1].copy(), xyz[:, 2].copy()
    chosen = np.empty(n, dtype=np.int64)
    dist = np.full(m, np.inf)
    updated = np.empty(m)
    current = start
    for i in range(n):
        chosen[i] = current
        cx, cy, cz = xs[current], ys[current], zs[current]
        for j in range(m):
            dx, dy, dz = xs[j] - cx, ys[j] - cy, zs[j] - cz
            d = dx * dx + dy * dy + dz * dz
            previous = dist[j]
            updated[j] = d if d < previous else previous
        bits = updated.view(np.int64)
        farthest = np.int64(-1)
        for j in range(m):
            farthest = bits[j] if bits[j] > farthest else farthest
        for j in range(m):  # ties go to the lowest index
            if bits[j] == farthest:
                current = j
                break
        dist, updated = updated, dist
    return chosen


_FPS_KERNEL = None


def _fps(xyz: np.ndarray, n: int, start: int) -> np.ndarray:
    global _FPS_KERNEL
    if _FPS_KERNEL is None:  # numba costs ~1 s to import: only pay it when sampling
        import numba

        _FPS_KERNEL = numba.njit(cache=True, boundscheck=False)(_fps_python)
    return _FPS_KERNEL(xyz, n, start)


def farthest_point_sample(points: np.ndarray, num_points: int, start: int = 0) -> np.ndarray:
    """Indices ``[num_points]`` of a farthest-point sampling of ``points[:, :3]``.

    Greedy: begin at ``start``; each next point maximises its distance to those chosen (ties go to
    the lowest index). When the cloud has fewer than ``num_points`` points, all of them are
    returned and then repeated cyclically (so batches keep a fixed size)."""
    points = _check_cloud(points)
    if num_points < 1:
        raise InvalidArgumentError(f"num_points must be >= 1, got {num_points}")
    m = len(points)
    if num_points >= m:
        return np.arange(num_points, dtype=np.int64) % m
    xyz = np.ascontiguousarray(points[:, :3], dtype=np.float64)
    return _fps(xyz, int(num_points), int(start))


def random_sample(num_available: int, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """Indices ``[num_points]`` drawn without replacement (with replacement when too few)."""
    if num_available < 1:
        raise InputShapeError("cannot sample from an empty point cloud")
    return rng.choice(num_available, size=num_points, replace=num_points > num_available)


#: cells of a voxel grid whose linear keys still fit an int64 (see :func:`grid_sample`)
_MAX_GRID_CELLS = 2.0**62


def grid_sample(
    xyz: np.ndarray, voxel_size: float, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Voxelise ``xyz [N, 3]`` on a grid of cell ``voxel_size`` and keep one point per voxel.

    Voxel coordinates are ``floor(xyz / voxel_size)`` shifted so the smallest is 0 on each axis.
    With ``rng`` the kept point of a voxel is drawn at random, else it is the first in order.

    Returns:
        ``(coords [M, 3] int32, index [M] int64)``: the occupied voxels in lexicographic order and
        the index in ``xyz`` of each voxel's point.
    """
    xyz = _check_cloud(xyz, "xyz")
    if not voxel_size > 0:
        raise InvalidArgumentError(f"voxel_size must be > 0, got {voxel_size}")
    scaled = np.floor(xyz[:, :3] / voxel_size)
    span = scaled.max(axis=0) - scaled.min(axis=0) + 1
    if float(np.prod(span)) >= _MAX_GRID_CELLS:
        raise InvalidArgumentError(
            f"voxel_size={voxel_size} makes a grid of {' x '.join(f'{v:.3g}' for v in span)} "
            "cells, too many to index (at most 2^62): normalise the cloud first "
            "(normalize_unit_sphere) or use a larger voxel_size"
        )
    cells = scaled.astype(np.int64)
    cells -= cells.min(axis=0)
    extent = cells.max(axis=0) + 1
    linear = (cells[:, 0] * extent[1] + cells[:, 1]) * extent[2] + cells[
        :, 2
    ]  # sorts lexicographically
    order = rng.permutation(len(cells)) if rng is not None else np.arange(len(cells))
    _, first = np.unique(linear[order], return_index=True)
    index = order[first]
    return cells[index].astype(np.int32), index


def grid_extent(max_radius: float, voxel_size: float) -> int:
    """Voxels per axis that hold any cloud within a ball of ``max_radius`` after the shift of
    :func:`grid_sample` (the spatial shape to give a sparse tensor)."""
    # floor(a) - floor(b) <= ceil(a - b): a span of 2r holds at most ceil(2r / voxel) + 1 cells;
    # the margin covers float32 points a rounding error outside the ball
    return int(np.ceil(2 * max_radius * (1 + 1e-5) / voxel_size)) + 1


def encode_spikes(features: np.ndarray, time_steps: int = 1, levels: int | None = 4) -> np.ndarray:
    """Integer spike counts of ``features [N, C]`` (values meant in [-1, 1]) -> ``[N, T * C]``.

    Each step carries ``round(clamp(f, -1, 1) * levels)``; ``levels=None`` keeps the real values
    (no quantisation, for comparison). Steps are laid out step-major along the channels."""
    if (
        isinstance(time_steps, bool)
        or not isinstance(time_steps, (int, np.integer))
        or time_steps < 1
    ):
        raise InvalidArgumentError(f"time_steps must be an integer >= 1, got {time_steps!r}")
    if levels is not None and (
        isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 1
    ):
        raise InvalidArgumentError(f"levels (D) must be null or an integer >= 1, got {levels!r}")
    f = np.asarray(features, dtype=np.float32)
    if levels is not None:
        f = np.round(np.clip(f, -1.0, 1.0) * levels)
    return np.tile(f, (1, time_steps)) if time_steps > 1 else f


def spike_voxel_code(
    cloud: np.ndarray,
    voxel_size: float,
    use_normals: bool = True,
    time_steps: int = 1,
    levels: int | None = 4,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Voxelise a normalised cloud ``[N, 3 or 6]`` and encode the kept points' features.

    Returns ``(coords [M, 3] int32, features [M, T * C] float32)`` with ``C = 6`` (xyz + normal)
    or 3 (``use_normals=False``)."""
    cloud = _check_cloud(cloud, "cloud")
    if use_normals and cloud.shape[1] < 6:
        raise InputShapeError(
            f"use_normals needs [N, 6] clouds (x, y, z, nx, ny, nz), got {cloud.shape}"
        )
    coords, index = grid_sample(cloud[:, :3], voxel_size, rng)
    features = cloud[index, : 6 if use_normals else 3]
    return coords, encode_spikes(features, time_steps, levels).astype(np.float32)

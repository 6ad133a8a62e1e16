"""Area-weighted sampling of points (with normals) on a triangle mesh's surface.

The ModelNet40 point clouds used by PointNet++ and E-3DSNN (``modelnet40_normal_resampled``) were
made this way from the OFF meshes: pick a triangle with probability proportional to its area, then
a uniformly distributed point inside it (barycentric coordinates ``(1 - sqrt(r1), sqrt(r1)(1 - r2),
sqrt(r1) r2)``, Osada et al. 2002, eq. 1); the point's normal is its triangle's unit normal.
"""

from __future__ import annotations

import numpy as np

from neuroflow.errors import InvalidArgumentError


def triangle_areas_normals(
    vertices: np.ndarray, faces: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Areas ``[F]`` and unit normals ``[F, 3]`` (right-hand rule on the vertex order; zero for
    degenerate triangles)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    cross = np.cross(b - a, c - a)
    norm = np.linalg.norm(cross, axis=1)
    normals = np.divide(cross, norm[:, None], out=np.zeros_like(cross), where=norm[:, None] > 0)
    return 0.5 * norm, normals


def sample_surface(
    vertices: np.ndarray, faces: np.ndarray, num_points: int, rng: np.random.Generator
) -> np.ndarray:
    """``num_points`` points uniformly distributed over the mesh surface.

    Args:
        vertices: ``[V, 3]`` coordinates; faces: ``[F, 3]`` vertex indices of triangles.
    Returns:
        ``[num_points, 6]`` float32: ``x, y, z, nx, ny, nz`` (unit normals).
    Raises:
        InvalidArgumentError when the mesh has zero surface area or ``num_points < 1``.
    """
    if num_points < 1:
        raise InvalidArgumentError(f"num_points must be >= 1, got {num_points}")
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    areas, normals = triangle_areas_normals(vertices, faces)
    total = areas.sum()
    if not total > 0:
        raise InvalidArgumentError("the mesh has zero surface area: no points can be sampled")
    cdf = np.cumsum(areas) / total
    tri = np.minimum(np.searchsorted(cdf, rng.random(num_points), side="right"), len(faces) - 1)
    r1 = np.sqrt(rng.random(num_points))[:, None]
    r2 = rng.random(num_points)[:, None]
    a, b, c = (vertices[faces[tri, k]] for k in range(3))
    points = (1 - r1) * a + r1 * (1 - r2) * b + r1 * r2 * c
    return np.concatenate([points, normals[tri]], axis=1).astype(np.float32)

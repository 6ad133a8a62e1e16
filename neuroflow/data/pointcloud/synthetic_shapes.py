"""Synthetic shapes: the embedded point-cloud default, written as ModelNet40-style OFF meshes.

Thirteen classes of primitive and compound meshes (:data:`CLASSES`), each drawn with random
proportions, a random rotation about the vertical axis plus a tilt of up to ``MAX_TILT_DEG``, and
Gaussian vertex noise. Several pairs are deliberately close (cylinder / capsule, cone / pyramid,
box / L-shape / cross, table / chair / stool, sphere / capsule / dumbbell), so a classifier has
to see shape detail, not only the bounding proportions.

Layout (that of the original ModelNet40 release, read back by the real OFF reader)::

    <root>/<class>/train/<class>_0001.off ...
    <root>/<class>/test/<class>_0001.off ...
    <root>/synthetic-shapes.json      how it was made (written last: marks a complete set)

The same seed gives byte-identical files (every mesh draws from its own generator seeded by
``(seed, split, class, index)``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from neuroflow.data import staged_folder
from neuroflow.data.pointcloud.off import write_off
from neuroflow.data.staged_folder import prepare_folder
from neuroflow.errors import InvalidArgumentError

#: bump when the generated meshes change
GENERATOR_VERSION = 1
META_FILE = "synthetic-shapes.json"
DEFAULT_TRAIN_PER_CLASS = 80
DEFAULT_TEST_PER_CLASS = 25
MAX_TILT_DEG = 15.0
#: vertex noise, relative to the shape's largest half-extent
VERTEX_NOISE = 0.01

Mesh = tuple[np.ndarray, np.ndarray]


# ----------------------------------------------------------------------------------- primitives


def _merge(*meshes: Mesh) -> Mesh:
    vertices, faces, offset = [], [], 0
    for v, f in meshes:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces)


def _moved(mesh: Mesh, dx=0.0, dy=0.0, dz=0.0) -> Mesh:
    return mesh[0] + np.array([dx, dy, dz]), mesh[1]


def box(sx: float, sy: float, sz: float) -> Mesh:
    """Axis-aligned box with edge lengths ``sx, sy, sz`` centred at the origin."""
    corners = np.array(
        [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64
    )
    faces = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ]
    )
    return corners * np.array([sx, sy, sz]) / 2, faces


def _grid_faces(rows: int, cols: int, wrap: bool = True) -> np.ndarray:
    """Triangles of a ``rows x cols`` vertex grid, columns wrapping around."""
    faces = []
    for i in range(rows - 1):
        for j in range(cols if wrap else cols - 1):
            a, b = i * cols + j, i * cols + (j + 1) % cols
            c, d = a + cols, b + cols
            faces += [[a, b, d], [a, d, c]]
    return np.array(faces)


def _revolve(profile: np.ndarray, segments: int = 24) -> Mesh:
    """Surface of revolution about z of ``profile [K, 2]`` (radius, z), closed at radius-0 ends."""
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    r, z = profile[:, :1], profile[:, 1:]
    vertices = np.stack(
        [r * np.cos(phi), r * np.sin(phi), np.broadcast_to(z, r.shape * np.array([1, segments]))],
        axis=-1,
    ).reshape(-1, 3)
    return vertices, _grid_faces(len(profile), segments)


def ellipsoid(rx: float, ry: float, rz: float, rings: int = 10) -> Mesh:
    theta = np.linspace(0, np.pi, rings + 1)
    v, f = _revolve(np.stack([np.sin(theta), -np.cos(theta)], axis=1))
    return v * np.array([rx, ry, rz]), f


def cylinder(r: float, h: float) -> Mesh:
    return _revolve(np.array([[0, -h / 2], [r, -h / 2], [r, h / 2], [0, h / 2]]))


def cone(r: float, h: float) -> Mesh:
    return _revolve(np.array([[0, -h / 2], [r, -h / 2], [0, h / 2]]))


def capsule(r: float, h: float, rings: int = 10) -> Mesh:
    """Cylinder of length ``h`` capped by hemispheres of radius ``r``."""
    theta = np.linspace(0, np.pi, rings + 1)
    z = -np.cos(theta) * r + np.where(theta > np.pi / 2, h / 2, -h / 2)
    return _revolve(np.stack([r * np.sin(theta), z], axis=1))


def torus(R: float, r: float, rings: int = 12) -> Mesh:
    t = np.linspace(0, 2 * np.pi, rings + 1)
    v, f = _revolve(np.stack([R + r * np.cos(t), r * np.sin(t)], axis=1))
    return v, f


def pyramid(sx: float, sy: float, h: float) -> Mesh:
    v = np.array(
        [
            [-sx / 2, -sy / 2, -h / 2],
            [sx / 2, -sy / 2, -h / 2],
            [sx / 2, sy / 2, -h / 2],
            [-sx / 2, sy / 2, -h / 2],
            [0, 0, h / 2],
        ]
    )
    f = np.array([[0, 2, 1], [0, 3, 2], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]])
    return v, f


# -------------------------------------------------------------------------------------- classes


def _u(rng, low, high):
    return float(rng.uniform(low, high))


def _legs(rng, sx, sy, height, width, z_top) -> list[Mesh]:
    inset = width / 2 + _u(rng, 0, 0.1) * min(sx, sy)
    return [
        _moved(
            box(width, width, height),
            x * (sx / 2 - inset),
            y * (sy / 2 - inset),
            z_top - height / 2,
        )
        for x in (-1, 1)
        for y in (-1, 1)
    ]


def _table(rng) -> Mesh:
    sx, sy, h = _u(rng, 1.2, 2.0), _u(rng, 0.8, 1.4), _u(rng, 0.6, 1.1)
    top = _u(rng, 0.05, 0.12)
    return _merge(
        _moved(box(sx, sy, top), dz=h), *_legs(rng, sx, sy, h, _u(rng, 0.06, 0.14), h - top / 2)
    )


def _chair(rng) -> Mesh:
    s, h = _u(rng, 0.8, 1.1), _u(rng, 0.7, 1.0)
    seat = _u(rng, 0.06, 0.12)
    back_h, back_t = _u(rng, 0.7, 1.2), _u(rng, 0.06, 0.12)
    back = _moved(box(s, back_t, back_h), dy=-s / 2 + back_t / 2, dz=h + back_h / 2)
    return _merge(
        _moved(box(s, s, seat), dz=h), back, *_legs(rng, s, s, h, _u(rng, 0.06, 0.12), h - seat / 2)
    )


def _stool(rng) -> Mesh:
    r, h = _u(rng, 0.4, 0.6), _u(rng, 0.8, 1.3)
    seat = _moved(cylinder(r, _u(rng, 0.06, 0.14)), dz=h)
    legs = [
        _moved(cylinder(_u(rng, 0.03, 0.06), h), 0.7 * r * np.cos(a), 0.7 * r * np.sin(a), h / 2)
        for a in np.arange(3) * 2 * np.pi / 3 + _u(rng, 0, 1)
    ]
    return _merge(seat, *legs)


def _cross(rng) -> Mesh:
    a, b, t = _u(rng, 1.4, 2.2), _u(rng, 1.4, 2.2), _u(rng, 0.25, 0.5)
    return _merge(box(a, t, t * _u(rng, 0.6, 1.4)), box(t, b, t * _u(rng, 0.6, 1.4)))


def _l_shape(rng) -> Mesh:
    a, b, t, d = _u(rng, 1.2, 2.0), _u(rng, 0.8, 1.6), _u(rng, 0.25, 0.5), _u(rng, 0.3, 0.8)
    return _merge(_moved(box(a, d, t), dx=a / 2), _moved(box(t, d, b), dx=t / 2, dz=b / 2))


def _dumbbell(rng) -> Mesh:
    r, length = _u(rng, 0.3, 0.5), _u(rng, 1.2, 2.0)
    bar = cylinder(_u(rng, 0.06, 0.14), length)
    return _merge(
        _moved(ellipsoid(r, r, r), dz=-length / 2), _moved(ellipsoid(r, r, r), dz=length / 2), bar
    )


#: class name -> mesh maker(rng); z is "up" before the random rotation
CLASSES = {
    "box": lambda g: box(_u(g, 0.6, 1.6), _u(g, 0.6, 1.6), _u(g, 0.6, 1.6)),
    "sphere": lambda g: ellipsoid(_u(g, 0.8, 1.0), _u(g, 0.8, 1.0), _u(g, 0.8, 1.0)),
    "cylinder": lambda g: cylinder(_u(g, 0.3, 0.7), _u(g, 0.8, 2.0)),
    "cone": lambda g: cone(_u(g, 0.4, 0.8), _u(g, 0.8, 1.8)),
    "pyramid": lambda g: pyramid(_u(g, 0.8, 1.4), _u(g, 0.8, 1.4), _u(g, 0.8, 1.6)),
    "capsule": lambda g: capsule(_u(g, 0.3, 0.6), _u(g, 0.5, 1.5)),
    "torus": lambda g: torus(_u(g, 0.7, 1.0), _u(g, 0.15, 0.4)),
    "table": _table,
    "chair": _chair,
    "stool": _stool,
    "cross": _cross,
    "l_shape": _l_shape,
    "dumbbell": _dumbbell,
}


def _rotation(rng: np.random.Generator) -> np.ndarray:
    yaw = rng.uniform(0, 2 * np.pi)
    tilt, axis = np.deg2rad(rng.uniform(0, MAX_TILT_DEG)), rng.uniform(0, 2 * np.pi)
    cz, sz = np.cos(yaw), np.sin(yaw)
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    k = np.array([np.cos(axis), np.sin(axis), 0.0])  # tilt about a horizontal axis (Rodrigues)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    Rt = np.eye(3) + np.sin(tilt) * K + (1 - np.cos(tilt)) * K @ K
    return Rt @ Rz


def make_shape(name: str, rng: np.random.Generator) -> Mesh:
    """One random mesh of class ``name``: proportions, rotation and vertex noise drawn from
    ``rng``."""
    if name not in CLASSES:
        raise InvalidArgumentError(
            f"unknown synthetic shape {name!r}; classes: {', '.join(CLASSES)}"
        )
    vertices, faces = CLASSES[name](rng)
    vertices = (vertices - vertices.mean(axis=0)) @ _rotation(rng).T
    scale = np.abs(vertices).max()
    vertices = vertices + rng.normal(0, VERTEX_NOISE * scale, vertices.shape)
    return vertices, faces


# ---------------------------------------------------------------------------------- preparation


def is_prepared(root: str | os.PathLike) -> bool:
    return staged_folder.is_prepared(root, META_FILE)


def read_meta(root: str | os.PathLike) -> dict:
    return staged_folder.read_meta(root, META_FILE)


def prepare_synthetic_shapes(
    root: str | os.PathLike,
    train_per_class: int = DEFAULT_TRAIN_PER_CLASS,
    test_per_class: int = DEFAULT_TEST_PER_CLASS,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write the synthetic shapes into ``root`` (see the module docstring); returns ``root``.

    Files are written into a temporary sibling folder renamed to ``root`` at the end, so an
    interrupted run never leaves a dataset that looks complete; an already prepared ``root`` is
    kept as it is."""
    from tqdm import tqdm

    root = Path(root)
    for key, value in (("train_per_class", train_per_class), ("test_per_class", test_per_class)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidArgumentError(
                f"prepare_synthetic_shapes: {key} must be an integer >= 1, got {value!r}"
            )
    jobs = [
        (split, label, name, i)
        for split, count in (("train", train_per_class), ("test", test_per_class))
        for label, name in enumerate(CLASSES)
        for i in range(count)
    ]

    def fill(tmp: Path) -> dict:
        for split in ("train", "test"):
            for name in CLASSES:
                (tmp / name / split).mkdir(parents=True)
        for split, label, name, i in tqdm(
            jobs, desc=f"synthetic shapes -> {root}", unit="mesh", disable=not progress
        ):
            rng = np.random.default_rng([seed, split == "test", label, i])
            write_off(tmp / name / split / f"{name}_{i + 1:04d}.off", *make_shape(name, rng))
        return {
            "generator": "neuroflow synthetic-shapes",
            "generator_version": GENERATOR_VERSION,
            "format": "ModelNet40 OFF meshes",
            "seed": seed,
            "classes": list(CLASSES),
            "train_per_class": int(train_per_class),
            "test_per_class": int(test_per_class),
            "max_tilt_deg": MAX_TILT_DEG,
            "vertex_noise": VERTEX_NOISE,
        }

    return prepare_folder(root, "synthetic shapes", META_FILE, fill)

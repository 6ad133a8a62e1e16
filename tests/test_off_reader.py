"""OFF mesh reader/writer and area-weighted surface sampling, against hand-computed meshes."""

from __future__ import annotations

import numpy as np
import pytest
from point_cloud_helpers import shared_modelnet40

from neuroflow.data import read_off
from neuroflow.data.pointcloud.mesh_sampling import sample_surface, triangle_areas_normals
from neuroflow.data.pointcloud.off import _read_off_lines, _read_triangles_fast, write_off
from neuroflow.errors import DataFormatError, InvalidArgumentError

SQUARE = """OFF
# a unit square split into two triangles, plus a quad on top
6 3 0
0 0 0
1 0 0
1 1 0
0 1 0
0 0 1
1 0 1
3 0 1 2
3 0 2 3
4 0 1 5 4
"""


def test_reads_vertices_faces_and_fans_polygons(tmp_path):
    path = tmp_path / "square.off"
    path.write_text(SQUARE)
    v, f = read_off(path)
    assert v.shape == (6, 3) and v.dtype == np.float64
    np.testing.assert_array_equal(v[5], [1, 0, 1])
    # the quad (0 1 5 4) becomes the fan (0 1 5), (0 5 4)
    np.testing.assert_array_equal(f, [[0, 1, 2], [0, 2, 3], [0, 1, 5], [0, 5, 4]])


def test_counts_glued_to_the_keyword(tmp_path):
    # some real ModelNet40 files start "OFF490 518 0"
    path = tmp_path / "glued.off"
    path.write_text("OFF3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    v, f = read_off(path)
    assert v.shape == (3, 3) and f.tolist() == [[0, 1, 2]]


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    v, f = rng.normal(size=(10, 3)), rng.integers(0, 10, size=(7, 3))
    write_off(tmp_path / "m.off", v, f)
    v2, f2 = read_off(tmp_path / "m.off")
    np.testing.assert_allclose(v2, v, atol=1e-6)
    np.testing.assert_array_equal(f2, f)


def _mesh_texts(rng):
    """Triangle meshes as real files write them: write_off's layout, CRLF line ends, counts glued
    to the keyword, extra spaces, integer face colours, trailing lines."""
    v, f = rng.normal(size=(50, 3)) * 100, rng.integers(0, 50, size=(80, 3))
    rows = [f"{a!r} {b!r} {c!r}" for a, b, c in v.tolist()]
    faces = [f"3 {a} {b} {c}" for a, b, c in f.tolist()]
    yield "OFF\n50 80 0\n" + "\n".join(rows + faces) + "\n"
    yield ("OFF\n50 80 0\n" + "\n".join(rows + faces)).replace("\n", "\r\n")
    yield "OFF50 80 0\n" + "\n".join(r + "  " for r in rows) + "\n" + "\n".join(faces) + "\n"
    yield "OFF\n50 80 0\n" + "\n".join(rows + [x + " 255 0 0" for x in faces]) + "\n\nextra\n"


def test_numpy_reader_equals_the_line_parser():
    rng = np.random.default_rng(3)
    for text in _mesh_texts(rng):
        fast = _read_triangles_fast(text)
        assert fast is not None
        lines = _read_off_lines(text, "m.off")
        np.testing.assert_array_equal(fast[0], lines[0])
        np.testing.assert_array_equal(fast[1], lines[1])
        assert fast[1].dtype == lines[1].dtype == np.int64 and fast[0].dtype == np.float64
    # anything else is left to the line parser, which reads polygons and comments and reports errors
    for text in (
        SQUARE,
        "OFF\n3 1 0\n0 0 0\n\n1 0 0\n0 1 0\n3 0 1 2\n",
        "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 3\n",
        "OFF\n3 1 0\n0 0 0\n1 0 inf\n0 1 0\n3 0 1 2\n",
        "OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2 0.5 0 0\n",
    ):
        assert _read_triangles_fast(text) is None


@pytest.mark.parametrize(
    "text, problem",
    [
        ("", "empty"),
        ("PLY\n3 1 0\n", "expected the keyword 'OFF'"),
        ("OFF\n", "missing the vertex/face counts"),
        ("OFF\nthree 1 0\n", "line 2: expected 'V F E'"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n", "truncated"),
        ("OFF\n3 1 0\n0 0 0\n1 0 x\n0 1 0\n3 0 1 2\n", "line 4: expected three vertex coordinates"),
        ("OFF\n3 1 0\n0 0 0\n1 0 nan\n0 1 0\n3 0 1 2\n", "line 4: non-finite"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "line 6: vertex index out of range"),
        ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n", "a face needs n >= 3"),
        ("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n", "no faces"),
    ],
)
def test_malformed_files_name_the_file(tmp_path, text, problem):
    path = tmp_path / "bad.off"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=problem) as info:
        read_off(path)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_sampling_follows_triangle_areas():
    # two triangles in the plane z = 0 with areas 1 and 3 (right triangles, legs (1, 2), (2, 3))
    vertices = np.array(
        [[0, 0, 0], [1, 0, 0], [0, 2, 0], [10, 0, 0], [12, 0, 0], [10, 3, 0]], dtype=float
    )
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    areas, normals = triangle_areas_normals(vertices, faces)
    np.testing.assert_allclose(areas, [1.0, 3.0])
    n = 40_000
    cloud = sample_surface(vertices, faces, n, np.random.default_rng(0))
    assert cloud.shape == (n, 6) and cloud.dtype == np.float32
    share_second = float((cloud[:, 0] >= 10).mean())
    # binomial standard deviation sqrt(0.75 * 0.25 / n) = 0.0022: 0.01 is 4.6 sigma
    assert abs(share_second - 0.75) < 0.01
    # counter-clockwise seen from +z: the normal of both is +z exactly
    np.testing.assert_array_equal(cloud[:, 3:], np.tile([0, 0, 1], (n, 1)))
    first = cloud[cloud[:, 0] < 10, :3]
    # inside the first triangle: x, y >= 0 and x + y / 2 <= 1; uniform: its mean is the centroid
    assert (first[:, 0] >= 0).all() and (first[:, 1] >= 0).all()
    assert (first[:, 0] + first[:, 1] / 2 <= 1 + 1e-6).all()
    np.testing.assert_allclose(first[:, :2].mean(0), [1 / 3, 2 / 3], atol=0.01)


def test_sampling_rejects_a_flat_mesh():
    v = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=float)
    with pytest.raises(InvalidArgumentError, match="zero surface area"):
        sample_surface(v, np.array([[0, 1, 2]]), 10, np.random.default_rng(0))


@pytest.mark.skipif(shared_modelnet40() is None, reason="no shared ModelNet40 sample")
def test_real_modelnet40_off_files():
    files = sorted((shared_modelnet40() / "ModelNet40_off").glob("*/train/*.off"))
    assert files
    for path in files:
        header = path.read_text().split(None, 3)  # "OFF V F ..." or "OFFV F ..."
        counts = header[1:3] if header[0] == "OFF" else [header[0][3:], header[1]]
        v, f = read_off(path)
        assert len(v) == int(counts[0]) and len(f) >= int(counts[1])
        assert f.min() >= 0 and f.max() < len(v)


def _shared_off_files() -> list:
    root = shared_modelnet40()
    return sorted((root / "ModelNet40_off").glob("*/train/*.off")) if root is not None else []


@pytest.mark.skipif(not _shared_off_files(), reason="no shared ModelNet40 OFF sample")
def test_real_off_files_and_surface_sampling_match_open3d():
    """open3d (an optional, independent implementation; not installed by `make test`) as the
    reference: its OFF reader gives the same triangles and, since it keeps float32 coordinates,
    the same vertices rounded to float32; its uniform surface sampling has the same first and
    second moments as ours, within 6 standard errors of 200,000 points each."""
    o3d = pytest.importorskip("open3d")
    for path in _shared_off_files():
        mesh = o3d.io.read_triangle_mesh(str(path))
        v, f = read_off(path)
        np.testing.assert_array_equal(f, np.asarray(mesh.triangles))
        np.testing.assert_array_equal(
            v.astype(np.float32), np.asarray(mesh.vertices, dtype=np.float32)
        )
    n = 200_000
    for path in _shared_off_files()[:2]:
        mesh = o3d.io.read_triangle_mesh(str(path))
        mesh.compute_triangle_normals()
        o3d.utility.random.seed(0)
        theirs = mesh.sample_points_uniformly(n, use_triangle_normal=True)
        theirs = np.concatenate([np.asarray(theirs.points), np.asarray(theirs.normals)], axis=1)
        ours = sample_surface(*read_off(path), n, np.random.default_rng(0)).astype(np.float64)
        for moment in (ours, ours**2):  # means of x, y, z, normals, and of their squares
            reference = theirs if moment is ours else theirs**2
            standard_error = np.sqrt((moment.var(0) + reference.var(0)) / n)
            assert (
                np.abs(moment.mean(0) - reference.mean(0)) <= 6 * standard_error + 1e-9
            ).all(), path.name

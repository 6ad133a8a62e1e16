"""Reading and writing OFF triangle meshes (the format of the original ModelNet40 release).

An OFF file is text: the keyword ``OFF``, then ``V F E`` (vertex, face and edge counts), then
``V`` lines of ``x y z`` and ``F`` lines of ``n i_1 ... i_n`` (a polygon of ``n`` vertex indices,
0-based, optionally followed by colour values). ``#`` starts a comment.

The header parser is tolerant: some ModelNet40 files glue the counts to the keyword
(``OFF490 518 0``), and any whitespace layout of the numbers is accepted. Polygons with more than
three vertices are split into a triangle fan.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np

from neuroflow.errors import DataFormatError

_HEADER = re.compile(r"^\s*OFF(.*)$", re.S)


def _tokens(text: str) -> list[tuple[int, list[str]]]:
    """Non-empty lines as (1-based line number, whitespace-separated tokens), comments removed."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append((number, line.split()))
    return out


def read_off(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an OFF mesh.

    Returns:
        ``(vertices [V, 3] float64, faces [F', 3] int64)``: triangles, polygons fan-split.
    Raises:
        DataFormatError naming ``path`` (and the line) when the file is not a valid OFF mesh:
        no ``OFF`` keyword, missing or non-numeric counts, too few vertex/face lines, a face
        index outside ``[0, V)``, non-finite coordinates, or no faces at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"not a text OFF file ({exc.reason} at byte {exc.start})", str(path), exc.start
        ) from None
    mesh = _read_triangles_fast(text)
    return mesh if mesh is not None else _read_off_lines(text, str(path))


def _read_off_lines(text: str, path: str) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_off`'s parser of any OFF text, line by line (``path`` names the file in
    errors)."""
    lines = _tokens(text)
    if not lines:
        raise DataFormatError("empty file, expected an OFF mesh", path)
    first_no, first = lines[0]
    match = _HEADER.match(" ".join(first))
    if match is None:
        raise DataFormatError(
            f"line {first_no}: expected the keyword 'OFF', got {' '.join(first)[:40]!r}", path
        )
    rest = match.group(1).split()  # counts glued to the keyword: "OFF490 518 0"
    body = lines[1:]
    if not rest:
        if not body:
            raise DataFormatError("missing the vertex/face counts after 'OFF'", path)
        counts_no, rest = body[0]
        body = body[1:]
    else:
        counts_no = first_no
    try:
        n_vertices, n_faces = int(rest[0]), int(rest[1])
    except (ValueError, IndexError):
        raise DataFormatError(
            f"line {counts_no}: expected 'V F E' vertex/face/edge counts, got {' '.join(rest)!r}",
            path,
        ) from None
    if n_vertices < 0 or n_faces < 0:
        raise DataFormatError(f"line {counts_no}: negative counts {n_vertices} {n_faces}", path)
    if len(body) < n_vertices + n_faces:
        raise DataFormatError(
            f"truncated: the header announces {n_vertices} vertices and {n_faces} faces, but only "
            f"{len(body)} data lines follow",
            path,
        )
    try:
        vertices = np.array(
            [[float(v) for v in tok[:3]] for _, tok in body[:n_vertices]], dtype=np.float64
        )
    except ValueError:
        bad = next(no for no, tok in body[:n_vertices] if not _all_float(tok[:3]))
        raise DataFormatError(f"line {bad}: expected three vertex coordinates", path) from None
    if vertices.shape != (n_vertices, 3):
        bad = next(no for no, tok in body[:n_vertices] if len(tok) < 3)
        raise DataFormatError(f"line {bad}: expected three vertex coordinates", path)
    if not np.isfinite(vertices).all():
        row = int(np.flatnonzero(~np.isfinite(vertices).all(1))[0])
        raise DataFormatError(f"line {body[row][0]}: non-finite vertex coordinate", path)
    triangles = []
    for no, tok in body[n_vertices : n_vertices + n_faces]:
        try:
            k = int(tok[0])
            idx = [int(t) for t in tok[1 : 1 + k]]
        except ValueError:
            raise DataFormatError(
                f"line {no}: expected 'n i_1 ... i_n' vertex indices", path
            ) from None
        if k < 3 or len(idx) != k:
            raise DataFormatError(
                f"line {no}: a face needs n >= 3 followed by n vertex indices", path
            )
        if min(idx) < 0 or max(idx) >= n_vertices:
            raise DataFormatError(f"line {no}: vertex index out of range [0, {n_vertices})", path)
        triangles.extend((idx[0], idx[j], idx[j + 1]) for j in range(1, k - 1))
    if not triangles:
        raise DataFormatError("the mesh has no faces (nothing to sample a surface from)", path)
    return vertices, np.asarray(triangles, dtype=np.int64)


def _read_triangles_fast(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The mesh of a plain triangle OFF file (no comments or blank lines, every face ``3 a b c``
    with indices in range, finite vertices), parsed by numpy's C reader; None for anything else,
    which :func:`read_off`'s line-by-line parser then reads or reports: about 10x faster on a
    real ModelNet40 mesh (figures in ``docs/benchmarks.md``)."""
    if "#" in text:
        return None
    lines = text.split("\n", 2)
    match = _HEADER.match(lines[0])
    if match is None:
        return None
    if match.group(1).strip():  # counts glued to the keyword: "OFF490 518 0"
        counts, start = match.group(1).split(), 1
    else:
        counts, start = (lines[1].split() if len(lines) > 1 else []), 2
    try:
        n_vertices, n_faces = int(counts[0]), int(counts[1])
    except (ValueError, IndexError):
        return None
    rows = text.split("\n", start + n_vertices + n_faces)
    if n_vertices < 1 or n_faces < 1 or len(rows) < start + n_vertices + n_faces:
        return None
    try:  # a blank or short line makes a section come out short or ragged: refused below
        vertices = np.loadtxt(
            io.StringIO("\n".join(rows[start : start + n_vertices])),
            dtype=np.float64,
            comments=None,
            ndmin=2,
        )
        faces = np.loadtxt(
            io.StringIO("\n".join(rows[start + n_vertices : start + n_vertices + n_faces])),
            dtype=np.int64,
            comments=None,
            ndmin=2,
        )
    except ValueError:
        return None
    if (
        vertices.shape[0] != n_vertices
        or vertices.shape[1] < 3
        or faces.shape[0] != n_faces
        or faces.shape[1] < 4
    ):
        return None
    vertices, triangles = vertices[:, :3], faces[:, 1:4]
    if (
        (faces[:, 0] != 3).any()
        or triangles.min() < 0
        or triangles.max() >= n_vertices
        or not np.isfinite(vertices).all()
    ):
        return None
    return np.ascontiguousarray(vertices), np.ascontiguousarray(triangles)


def _all_float(tokens: list[str]) -> bool:
    try:
        [float(t) for t in tokens]
        return len(tokens) == 3
    except ValueError:
        return False


def write_off(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a triangle mesh (``vertices [V, 3]``, ``faces [F, 3]`` 0-based) as an OFF file."""
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    lines = ["OFF", f"{len(vertices)} {len(faces)} 0"]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"3 {a} {b} {c}" for a, b, c in faces]
    Path(path).write_text("\n".join(lines) + "\n", encoding="ascii")

"""Spike voxel coding: normalisation, sampling, voxelisation and integer spikes, checked by hand
and against brute-force implementations."""

from __future__ import annotations

import numpy as np
import pytest

from neuroflow.encoding import (
    encode_spikes,
    farthest_point_sample,
    grid_extent,
    grid_sample,
    normalize_unit_sphere,
    random_sample,
    spike_voxel_code,
)
from neuroflow.errors import InputShapeError, InvalidArgumentError


def test_unit_sphere_normalisation_by_hand():
    # centroid (1, 1, 1); farthest points at distance 3 -> they land on the unit sphere
    cloud = np.array(
        [[2, 1, 1, 0, 0, 1], [0, 1, 1, 0, 1, 0], [1, 4, 1, 1, 0, 0], [1, -2, 1, 0, 0, -1]],
        dtype=np.float32,
    )
    out = normalize_unit_sphere(cloud)
    np.testing.assert_allclose(
        out[:, :3], [[1 / 3, 0, 0], [-1 / 3, 0, 0], [0, 1, 0], [0, -1, 0]], atol=1e-7
    )
    np.testing.assert_array_equal(out[:, 3:], cloud[:, 3:])  # normals are direction only: unchanged
    radius = np.linalg.norm(
        normalize_unit_sphere(np.random.default_rng(0).normal(5, 3, (500, 3))), axis=1
    )
    assert radius.max() == pytest.approx(1.0, abs=1e-6)


def test_bad_clouds():
    with pytest.raises(InputShapeError, match="empty point cloud"):
        normalize_unit_sphere(np.zeros((0, 3)))
    with pytest.raises(InvalidArgumentError, match="NaN"):
        normalize_unit_sphere(np.array([[0, 0, 0], [np.nan, 1, 1]]))
    with pytest.raises(InputShapeError, match=r"\[N, 3\+\]"):
        grid_sample(np.zeros((4, 2)), 0.1)
    # every entry point refuses non-finite values, naming the row, instead of voxelising them
    bad_normal = np.array([[0, 0, 0, 0, 0, 1], [0.5, 0, 0, np.inf, 0, 1]])
    for call in (
        lambda: spike_voxel_code(bad_normal, 0.1),
        lambda: farthest_point_sample(bad_normal, 1),
        lambda: grid_sample(bad_normal[:, :3] * np.nan, 0.1),
    ):
        with pytest.raises(InvalidArgumentError, match="NaN or infinite values .*row [01]"):
            call()
    # an unnormalised cloud at a fine voxel size: 1e7 cells per axis would overflow the linear keys
    with pytest.raises(InvalidArgumentError, match="voxel_size=0.001 .*normalise"):
        grid_sample(np.array([[0.0, 0, 0], [1e4, 1e4, 1e4]]), 0.001)


def _brute_force_fps(xyz: np.ndarray, n: int, start: int) -> list[int]:
    chosen = [start]
    while len(chosen) < n:
        d = np.min(((xyz[:, None, :] - xyz[None, chosen, :]) ** 2).sum(-1), axis=1)
        chosen.append(int(np.argmax(d)))  # argmax: first index among ties, like the kernel
    return chosen


def test_farthest_point_sampling():
    line = np.stack([np.arange(11.0), np.zeros(11), np.zeros(11)], axis=1)
    # 0, then the far end 10, then the middle 5, then 2
    # (ties 2, 3, 7, 8 at distance 2: the lowest index wins)
    assert farthest_point_sample(line, 4).tolist() == [0, 10, 5, 2]
    cloud = np.random.default_rng(1).normal(size=(300, 6))
    for start in (0, 17):
        assert farthest_point_sample(cloud, 40, start).tolist() == _brute_force_fps(
            cloud[:, :3], 40, start
        )
    # a lattice: many equal distances at every step, the lowest index must win each tie
    lattice = np.stack(np.meshgrid(*[np.arange(6.0)] * 3, indexing="ij"), -1).reshape(-1, 3)
    assert farthest_point_sample(lattice, 120, 7).tolist() == _brute_force_fps(lattice, 120, 7)
    # fewer points than asked: all of them, repeated cyclically
    assert farthest_point_sample(line[:3], 5).tolist() == [0, 1, 2, 0, 1]


def test_random_sample():
    rng = np.random.default_rng(0)
    idx = random_sample(100, 30, rng)
    assert len(set(idx.tolist())) == 30 and idx.max() < 100
    assert len(random_sample(5, 12, rng)) == 12
    with pytest.raises(InputShapeError):
        random_sample(0, 3, rng)


def test_grid_sample_counts_by_hand():
    xyz = np.array(
        [
            [0.01, 0.01, 0.01],
            [0.02, 0.03, 0.04],
            [0.15, 0.0, 0.0],
            [0.05, 0.25, 0.0],
            [0.06, 0.21, 0.09],
        ]
    )
    coords, index = grid_sample(xyz, 0.1)
    # voxels (0,0,0) holds points 0, 1; (1,0,0) point 2; (0,2,0) points 3, 4 -> 3 occupied voxels
    assert coords.tolist() == [[0, 0, 0], [0, 2, 0], [1, 0, 0]]
    assert index.tolist() == [0, 3, 2]  # without a generator: the first point of each voxel
    kept = {tuple(grid_sample(xyz, 0.1, np.random.default_rng(s))[1].tolist()) for s in range(30)}
    assert {k[0] for k in kept} == {0, 1} and {k[1] for k in kept} == {3, 4}  # random: both occur
    # negative coordinates are shifted so that the smallest voxel index is 0
    coords, _ = grid_sample(xyz - 1.0, 0.1)
    assert coords.min(0).tolist() == [0, 0, 0]


def test_grid_extent_holds_every_scaled_cloud():
    # by hand: x = -1 and +1 at voxel 0.3 fall in cells floor(-3.33) = -4 and floor(3.33) = 3,
    # i.e. 8 cells after the shift, although 2 / 0.3 = 6.7
    coords, _ = grid_sample(np.array([[-1.0, 0, 0], [1.0, 0, 0]]), 0.3)
    assert coords[:, 0].tolist() == [0, 7] and grid_extent(1.0, 0.3) >= 8
    rng = np.random.default_rng(2)
    for scale, voxel in [(1.0, 0.05), (1.1, 0.02), (1.1, 0.3)]:
        extent = grid_extent(scale, voxel)
        for _ in range(20):
            cloud = normalize_unit_sphere(rng.normal(size=(400, 3))) * scale
            coords, _ = grid_sample(cloud, voxel)
            assert coords.max() < extent


def test_integer_spikes_by_hand():
    f = np.array([[0.3, -0.6, 1.7]])
    # round(0.3 * 4) = 1, round(-0.6 * 4) = -2, clamp(1.7) * 4 = 4
    assert encode_spikes(f, 1, 4).tolist() == [[1, -2, 4]]
    assert encode_spikes(f, 2, 4).tolist() == [[1, -2, 4, 1, -2, 4]]  # T steps along the channels
    np.testing.assert_allclose(encode_spikes(f, 1, None), f)
    with pytest.raises(InvalidArgumentError, match="time_steps"):
        encode_spikes(f, 0, 4)
    with pytest.raises(InvalidArgumentError, match="levels"):
        encode_spikes(f, 1, 0)


def test_spike_voxel_code():
    rng = np.random.default_rng(3)
    xyz = normalize_unit_sphere(rng.normal(size=(2000, 3)))
    cloud = np.concatenate([xyz, xyz], axis=1)  # normals of a sphere-like blob point outwards
    coords, feats = spike_voxel_code(cloud, 0.1, use_normals=True, time_steps=2, levels=4)
    assert coords.dtype == np.int32 and feats.shape == (len(coords), 12)
    assert len(np.unique(coords, axis=0)) == len(coords)  # one point per voxel
    assert set(np.unique(feats).tolist()) <= set(range(-4, 5))
    _, feats3 = spike_voxel_code(cloud, 0.1, use_normals=False)
    assert feats3.shape[1] == 3
    with pytest.raises(InputShapeError, match="use_normals"):
        spike_voxel_code(xyz, 0.1, use_normals=True)

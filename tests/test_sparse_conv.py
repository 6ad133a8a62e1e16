"""Sparse tensor, kernel maps and sparse convolution against dense ``torch.nn.functional.conv3d``.

The reference for every convolution is conv3d on the densified grid, sampled at the active sites
(for strided convolutions: at the sites where some input falls in the receptive field).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers import (
    FeatureWise,
    SparseBatchNorm,
    SparseConv3d,
    SparseGlobalAvgPool,
    SparseGlobalMaxPool,
    SparseTensor,
    SubMConv3d,
    build_kernel_map,
    global_max_pool,
    global_mean_pool,
    sparse_conv,
)
from neuroflow.layers.sparse.kernel_map import PairsByVoxel
from neuroflow.layers.sparse.kernels.layout import _pairs_by_voxel, pairs_by_voxel


def random_coords(batch: int, shape: tuple[int, int, int], n: int, seed: int) -> torch.Tensor:
    """``n`` unique voxels, including the grid's corners (boundary handling)."""
    gen = torch.Generator().manual_seed(seed)
    X, Y, Z = shape
    corners = torch.tensor([[0, 0, 0, 0], [batch - 1, X - 1, Y - 1, Z - 1], [0, X - 1, 0, Z - 1]])
    corner_keys = ((corners[:, 0] * X + corners[:, 1]) * Y + corners[:, 2]) * Z + corners[:, 3]
    keys = torch.randperm(batch * X * Y * Z, generator=gen)
    keys = torch.cat([corner_keys, keys[~torch.isin(keys, corner_keys)][: n - 3]])
    return torch.stack([keys // (X * Y * Z), keys // (Y * Z) % X, keys // Z % Y, keys % Z], 1)


def spikes_with_silent_rows(
    n: int, channels: int, seed: int, dtype=torch.float64, silent: float = 0.33
):
    """Integer spikes 0..4 with about a fraction ``silent`` of the rows all zero."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 5, (n, channels), generator=gen).to(dtype)
    return x * (torch.rand(n, 1, generator=gen) >= silent).to(dtype)


def dense_reference(
    x: SparseTensor, weight: torch.Tensor, kmap, stride: int, submanifold: bool
) -> torch.Tensor:
    """conv3d of the densified input, sampled at ``kmap.out_coords``; ``weight [K, Cin, Cout]``."""
    k = round(weight.shape[0] ** (1 / 3))
    w = weight.reshape(k, k, k, *weight.shape[1:]).permute(4, 3, 0, 1, 2)
    grid = x.dense()
    if submanifold:
        y = F.conv3d(grid, w, padding=k // 2)
    else:  # pad at the high end to the grid the strided map covers
        pads = [(o - 1) * stride + k - s for s, o in zip(x.spatial_shape, kmap.out_spatial_shape)]
        y = F.conv3d(F.pad(grid, (0, pads[2], 0, pads[1], 0, pads[0])), w, stride=stride)
    c = kmap.out_coords
    return y.permute(0, 2, 3, 4, 1)[c[:, 0], c[:, 1], c[:, 2], c[:, 3]], y


CASES = [  # (kernel, stride, submanifold, grid)
    (3, 1, True, (7, 5, 6)),
    (1, 1, True, (4, 4, 4)),
    (2, 2, False, (7, 6, 5)),  # odd sizes: the last cell is half outside
    (3, 2, False, (6, 7, 5)),  # overlapping receptive fields
]


@pytest.mark.parametrize("kernel,stride,submanifold,shape", CASES)
@pytest.mark.parametrize("backend", ["batched", "torch"])
@pytest.mark.parametrize("event_driven", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_sparse_conv_equals_dense_conv3d(
    kernel, stride, submanifold, shape, backend, event_driven, threads, monkeypatch
):
    if threads > 1:  # split the event kernels over numba's threads even at this small size
        monkeypatch.setattr(
            importlib.import_module("neuroflow.layers.sparse.kernels.events"),
            "_EVENT_PARALLEL_MIN_MACS",
            0,
        )
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        batch, n, cin, cout = 3, 90, 5, 4
        coords = random_coords(batch, shape, n, seed=kernel)
        features = spikes_with_silent_rows(n, cin, seed=1).requires_grad_()
        gen = torch.Generator().manual_seed(2)
        weight = torch.randn(
            kernel**3, cin, cout, generator=gen, dtype=torch.float64
        ).requires_grad_()
        x = SparseTensor(coords, features, shape, batch)
        kmap = build_kernel_map(coords, shape, batch, kernel, stride, 1, submanifold)
        y = sparse_conv(features, weight, kmap, backend=backend, event_driven=event_driven)
        y_ref, _ = dense_reference(x, weight, kmap, stride, submanifold)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        if (
            not submanifold
        ):  # active output sites = where a dense all-ones convolution of the occupancy is > 0
            occupancy = x.replace_features(torch.ones(n, 1, dtype=torch.float64))
            _, reach = dense_reference(
                occupancy, torch.ones(kernel**3, 1, 1, dtype=torch.float64), kmap, stride, False
            )
            assert kmap.num_out == int((reach > 0).sum()) > 0
        g = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        grads = torch.autograd.grad((y * g).sum(), (features, weight))
        grads_ref = torch.autograd.grad((y_ref * g).sum(), (features, weight))
        for got, want in zip(grads, grads_ref):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    finally:
        torch.set_num_threads(previous)


# the event-driven path's regimes in training: every voxel spiked; most; 50%; 10%, for a narrow
# layer (always the event kernels), a middle one (event kernels up to 60% spiking, then the
# batched path with the event forward) and a wide one (up to 40%, then the batched path laying
# out the spiking pairs or not); submanifold and strided maps
@pytest.mark.parametrize("silent", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("cin,cout", [(16, 8), (64, 64), (128, 96)])
@pytest.mark.parametrize("submanifold", [True, False])
def test_float32_matches_dense_and_event_driven_matches_plain(silent, cin, cout, submanifold):
    coords = random_coords(2, (9, 9, 9), 300, seed=3)
    x = spikes_with_silent_rows(
        300, cin, seed=4, dtype=torch.float32, silent=silent
    ).requires_grad_()
    kernel, stride = (3, 1) if submanifold else (2, 2)
    w = (
        torch.randn(kernel**3, cin, cout, generator=torch.Generator().manual_seed(5)) * 0.1
    ).requires_grad_()
    kmap = build_kernel_map(coords, (9, 9, 9), 2, kernel, stride, submanifold=submanifold)
    g = torch.randn(kmap.num_out, cout, generator=torch.Generator().manual_seed(6))
    plain = sparse_conv(x, w, kmap)
    skipping = sparse_conv(x, w, kmap, event_driven=True)
    torch.testing.assert_close(skipping, plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(
        torch.autograd.grad(skipping, (x, w), g), torch.autograd.grad(plain, (x, w), g)
    ):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    reference, _ = dense_reference(
        SparseTensor(coords, x.detach(), (9, 9, 9), 2), w.detach(), kmap, stride, submanifold
    )
    # float32 sums of up to 27 x 128 products: rounding scales with the outputs' magnitude
    torch.testing.assert_close(
        plain.detach(), reference, rtol=1e-5, atol=1e-6 * float(reference.abs().max())
    )


@pytest.mark.parametrize("needs", ["x", "w"])
@pytest.mark.parametrize("voxels", [300, 1500])
def test_event_driven_training_of_one_argument(needs, voxels):
    """A first layer (input spikes without a gradient) or frozen weights: the event path gives the
    one gradient asked for, equal to the plain path's; with 1,500 voxels (~300 spiking) the weight
    gradient sums the centre offset's pairs in two chunks (``_WEIGHT_GRAD_CHUNK``)."""
    from neuroflow.layers.sparse.kernels.events import _WEIGHT_GRAD_CHUNK

    coords = random_coords(2, (12, 12, 12), voxels, seed=13)
    x = spikes_with_silent_rows(voxels, 16, seed=14, dtype=torch.float32, silent=0.8)
    assert (int(x.ne(0).any(1).sum()) > _WEIGHT_GRAD_CHUNK) == (voxels > 300)
    w = torch.randn(27, 16, 8, generator=torch.Generator().manual_seed(15)) * 0.1
    g = torch.randn(voxels, 8, generator=torch.Generator().manual_seed(16))
    kmap = build_kernel_map(coords, (12, 12, 12), 2, 3)
    leaf = {"x": x, "w": w}[needs].requires_grad_()
    (skipping,) = torch.autograd.grad(sparse_conv(x, w, kmap, event_driven=True), (leaf,), g)
    (plain,) = torch.autograd.grad(sparse_conv(x, w, kmap), (leaf,), g)
    torch.testing.assert_close(skipping, plain, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("silent", [0.0, 0.1, 0.5, 0.9])
@pytest.mark.parametrize("submanifold", [True, False])
@pytest.mark.parametrize("split", [False, True])  # the GEMMs on one thread / split over two
def test_event_driven_inference_matches_plain_and_dense(silent, submanifold, split, monkeypatch):
    kernels = importlib.import_module("neuroflow.layers.sparse.kernels.events")
    if split:
        monkeypatch.setattr(kernels, "_EVENT_PARALLEL_MIN_MACS", 0)
    coords = random_coords(2, (9, 9, 9), 300, seed=7)
    x = spikes_with_silent_rows(300, 16, seed=8, dtype=torch.float32, silent=silent)
    w = (
        torch.randn(27 if submanifold else 8, 16, 8, generator=torch.Generator().manual_seed(9))
        * 0.1
    )
    kmap = build_kernel_map(
        coords,
        (9, 9, 9),
        2,
        3 if submanifold else 2,
        1 if submanifold else 2,
        submanifold=submanifold,
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.no_grad():
            skipping = sparse_conv(x, w, kmap, event_driven=True)
            plain = sparse_conv(x, w, kmap)
    finally:
        torch.set_num_threads(previous)
    torch.testing.assert_close(skipping, plain, rtol=1e-6, atol=1e-6)
    reference, _ = dense_reference(
        SparseTensor(coords, x, (9, 9, 9), 2), w, kmap, 1 if submanifold else 2, submanifold
    )
    torch.testing.assert_close(skipping, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "silent", [0.0, 0.6]
)  # the forward kernel's two loops: every row spiked, or not
@pytest.mark.parametrize("parts", [2, 3])
def test_event_kernels_split_into_parts_equal_one_part(parts, silent):
    """The event kernels split over numba's threads give the one-thread result bit for bit: the
    forward (row test, per-output sums; also with the caller's row test) and the weight gradient
    (offsets dealt to the parts), whatever the split."""
    kernels = importlib.import_module("neuroflow.layers.sparse.kernels.events")
    coords = random_coords(2, (9, 9, 9), 300, seed=17)
    x = spikes_with_silent_rows(300, 16, seed=18, dtype=torch.float32, silent=silent).numpy()
    w = (torch.randn(27, 16, 8, generator=torch.Generator().manual_seed(19)) * 0.1).numpy()
    g = torch.randn(300, 8, generator=torch.Generator().manual_seed(20)).numpy()
    kmap = build_kernel_map(coords, (9, 9, 9), 2, 3)
    block = 16  # 19 blocks of output rows, so that 2 and 3 parts split them
    by_output = _pairs_by_voxel(
        kmap.out_idx.numpy(), kmap.in_idx.numpy(), kmap.offset_ptr.numpy(), 300, block
    )
    common = (x, w, *by_output, block, 300, 300)
    y1, active1, done1 = kernels._event_conv(*common, kernels._NOT_TESTED, -1, 1)
    y2, active2, done2 = kernels._event_conv_parallel(*common, kernels._NOT_TESTED, -1, parts)
    assert done1 and done2 and (active1 == active2).all() and (y1 == y2).all()
    assert (active1 == (x != 0).any(1)).all() and (active1.sum() == 300) == (silent == 0)
    y3, _, done3 = kernels._event_conv_parallel(*common, active1, int(active1.sum()), parts)
    assert done3 and (y3 == y1).all()
    for active, every in ((active1, False), (kernels._NOT_TESTED, True)):
        grads = [np.empty((27, 16, 8), np.float32) for _ in range(2)]
        kernels._weight_grad(x, g, *kmap.pair_arrays, active, every, grads[0], 1)
        kernels._weight_grad_parallel(x, g, *kmap.pair_arrays, active, every, grads[1], parts)
        assert (grads[0] == grads[1]).all()


@pytest.mark.parametrize("cout", [1, 8, 16, 20, 32, 40, 64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_event_weight_grad_against_per_offset_products(cout, dtype):
    """``event_weight_grad`` (vector blocks of 32, 16 and 8 columns, a scalar tail, rows two or
    four at a time, an odd ``Cin``) against ``x[in]^T g[out]`` per offset over the pairs whose
    input spiked, summed by torch; with every row (``active=None``) against all pairs."""
    from neuroflow.layers.sparse.kernels.events import event_weight_grad

    coords = random_coords(1, (8, 8, 8), 260, seed=31)
    kmap = build_kernel_map(coords, (8, 8, 8), 1, 3)
    x = spikes_with_silent_rows(260, 11, seed=32, dtype=dtype, silent=0.5)
    g = torch.randn(260, cout, generator=torch.Generator().manual_seed(33), dtype=dtype)
    active = x.ne(0).any(1)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    for rows in (active, None):
        expected = torch.stack(
            [
                x[i].t() @ g[o] if rows is None else x[i[rows[i]]].t() @ g[o[rows[i]]]
                for i, o in (kmap.pairs(k) for k in range(kmap.kernel_volume))
            ]
        )
        got = event_weight_grad(x, g, rows, kmap.pair_arrays, 2)
        torch.testing.assert_close(got, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("cout", [1, 8, 16, 24, 32, 40, 56, 64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_event_inference_kernel_column_blocks(cout, dtype):
    """The inference kernel's 32-, 16- and 8-column vector blocks and its scalar tail, for float32
    and float64, against the torch reference (gather, matmul, index_add per offset)."""
    coords = random_coords(1, (8, 8, 8), 150, seed=21)
    kmap = build_kernel_map(coords, (8, 8, 8), 1, 3)
    x = spikes_with_silent_rows(150, 12, seed=22, dtype=dtype, silent=0.5)
    w = torch.randn(27, 12, cout, generator=torch.Generator().manual_seed(23), dtype=dtype) * 0.1
    with torch.no_grad():
        skipping = sparse_conv(x, w, kmap, event_driven=True)
        again = sparse_conv(x, w, kmap, event_driven=True)  # the map's pairs by output now cached
        reference = sparse_conv(x, w, kmap, backend="torch")
    assert torch.equal(again, skipping)
    tolerance = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(skipping, reference, rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("grid", [8, 20])  # ~11 and ~1.4 pairs per voxel
def test_event_driven_inference_of_wide_layers_and_odd_channels(grid):
    """Channels too wide for the event kernels (128 x 160 > 16,384) take the batched path, an odd
    float32 channel count the generic row test, layers wider than the narrow ones (80 x 72, 128 x
    96 > 8,192) the event kernel on a map of many neighbours, else the row test before the map's
    pairs are sorted, then the event kernel or, with most voxels spiking, the fallback; all still
    equal the non-skipping path, outputs and gradients."""
    coords = random_coords(1, (grid,) * 3, 200, seed=10)
    kmap = build_kernel_map(coords, (grid,) * 3, 1, 3)
    gen = torch.Generator().manual_seed(11)
    for cin, cout in ((128, 160), (7, 5), (80, 72), (128, 96)):
        x = spikes_with_silent_rows(200, cin, seed=12, dtype=torch.float32, silent=0.7)
        w = torch.randn(27, cin, cout, generator=gen) * 0.05
        dense = spikes_with_silent_rows(200, cin, seed=13, dtype=torch.float32, silent=0.1)
        with torch.no_grad():
            for features in (x, dense, x):  # the map's pairs by output are cached after the first
                plain = sparse_conv(features, w, kmap)  # float32 rounding grows with the sums
                torch.testing.assert_close(
                    sparse_conv(features, w, kmap, event_driven=True),
                    plain,
                    rtol=1e-5,
                    atol=1e-6 * max(1.0, float(plain.abs().max())),
                )
        x.requires_grad_(), w.requires_grad_()
        g = torch.randn(200, cout, generator=gen)
        skipping = torch.autograd.grad(sparse_conv(x, w, kmap, event_driven=True), (x, w), g)
        for a, b in zip(skipping, torch.autograd.grad(sparse_conv(x, w, kmap), (x, w), g)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_nonzero_rows_counts_negative_zero_as_zero():
    from neuroflow.layers.sparse.kernels.events import nonzero_rows

    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([[0.0, -0.0], [0.0, 1e-30], [-2.0, 0.0], [-0.0, -0.0]], dtype=dtype)
        assert nonzero_rows(x).tolist() == [False, True, True, False] == x.ne(0).any(1).tolist()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_spiking_rows_of_a_large_input_on_several_threads(threads):
    """Above ``_ROW_TEST_PARALLEL_MIN`` elements the row test splits over numba's threads; rows and
    count against torch's ``ne(0).any(1)``."""
    from neuroflow.layers.sparse.kernels.events import _ROW_TEST_PARALLEL_MIN, spiking_rows

    x = spikes_with_silent_rows(
        _ROW_TEST_PARALLEL_MIN // 8 + 5, 8, seed=30, dtype=torch.float32, silent=0.7
    )
    rows, count = spiking_rows(x, threads)
    expected = x.ne(0).any(1)
    assert rows.tolist() == expected.tolist() and count == int(expected.sum()) > 0


@pytest.mark.parametrize("kernel,stride,submanifold", [(3, 1, True), (2, 2, False), (3, 2, False)])
def test_pairs_by_voxel_are_the_stable_sorts_of_the_pairs(kernel, stride, submanifold):
    """The counting sorts behind ``KernelMap.by_input_blocks`` and ``by_output`` (by block of input
    or output rows; here also by single input voxel) against a stable argsort of the pairs by that
    key (within a key the pairs keep their offset order)."""
    coords = random_coords(2, (9, 8, 7), 200, seed=20)
    kmap = build_kernel_map(coords, (9, 8, 7), 2, kernel, stride, 1, submanifold)
    offset = torch.repeat_interleave(torch.arange(kmap.kernel_volume), kmap.offset_ptr.diff())
    by_16, by_12 = (
        pairs_by_voxel(kmap.out_idx, kmap.in_idx, kmap.offset_ptr, kmap.num_out, b)
        for b in (16, 12)
    )
    by_input = PairsByVoxel(
        *pairs_by_voxel(kmap.in_idx, kmap.out_idx, kmap.offset_ptr, kmap.num_in), block=1
    )
    cases = (
        (kmap.in_idx, kmap.out_idx, by_input, 1, kmap.num_in),
        (kmap.in_idx, kmap.out_idx, kmap.by_input_blocks, kmap.by_input_blocks.block, kmap.num_in),
        (kmap.out_idx, kmap.in_idx, kmap.by_output, kmap.by_output.block, kmap.num_out),
        (
            kmap.out_idx,
            kmap.in_idx,
            PairsByVoxel(*by_16, block=16),
            16,
            kmap.num_out,
        ),  # several blocks
        (kmap.out_idx, kmap.in_idx, PairsByVoxel(*by_12, block=12), 12, kmap.num_out),
    )  # not a power of two
    for key, partner, pairs, block, count in cases:
        order = torch.argsort(key // block, stable=True)
        assert pairs.block == block
        assert torch.equal(pairs.offset.long(), offset[order])
        assert torch.equal(pairs.voxel.long(), key[order])
        assert torch.equal(pairs.partner.long(), partner[order])
        assert torch.equal(
            pairs.ptr.diff(), torch.bincount(key // block, minlength=-(-count // block))
        )


def test_strided_output_sites_are_the_occupied_cells():
    coords = random_coords(2, (9, 8, 7), 120, seed=6)
    kmap = build_kernel_map(coords, (9, 8, 7), 2, 2, 2, 1, submanifold=False)
    cells = torch.cat([coords[:, :1], coords[:, 1:] // 2], 1)
    assert kmap.out_spatial_shape == (5, 4, 4)  # ceil(size / 2)
    assert sorted(map(tuple, kmap.out_coords.tolist())) == sorted(set(map(tuple, cells.tolist())))
    assert kmap.num_pairs == coords.shape[0]  # k = s = 2: each input feeds exactly one output


def test_hashed_neighbours_equal_brute_force():
    """Every (offset, out, in) triple of the hashed map, against all-pairs coordinate
    differences."""
    coords = random_coords(2, (10, 10, 10), 400, seed=7)
    kmap = build_kernel_map(coords, (10, 10, 10), 2, 3)
    delta = coords[None, :, 1:] - coords[:, None, 1:]  # [out, in, 3]: in - out
    same_batch = coords[:, None, 0] == coords[None, :, 0]
    out_idx, in_idx = torch.nonzero(same_batch & (delta.abs().amax(-1) <= 1), as_tuple=True)
    offset = ((delta[out_idx, in_idx] + 1) * torch.tensor([9, 3, 1])).sum(-1)
    expected = sorted(zip(offset.tolist(), out_idx.tolist(), in_idx.tolist()))
    got = [(o, int(j), int(i)) for o in range(27) for i, j in zip(*kmap.pairs(o))]
    assert got == expected  # also checks the order: by offset, then output


@pytest.mark.parametrize("parts", [1, 3])  # the voxels swept in one range, or split in three
@pytest.mark.parametrize(
    "order", ["random", "sorted"]
)  # voxelised clouds arrive sorted: no argsort
@pytest.mark.parametrize("shifts", ["mirrored", "one-sided"])
def test_neighbour_search_of_any_shift_set_equals_a_dictionary(shifts, order, parts):
    """The neighbour search looks up half the offsets when the shifts come in opposite pairs and
    fills the other half by symmetry: against a plain dictionary of the voxels, for an anisotropic
    dilated kernel (3 x 1 x 5, dilation (1, 1, 2)) and for shifts without mirrors; the pairs listed
    from the table against the table's entries, in the same split."""
    from neuroflow.layers.sparse.kernels import maps as kernels

    coords = random_coords(2, (8, 8, 8), 300, seed=21)
    if order == "sorted":
        coords = coords[
            torch.argsort(((coords[:, 0] * 8 + coords[:, 1]) * 8 + coords[:, 2]) * 8 + coords[:, 3])
        ]
    if shifts == "mirrored":
        shift = torch.tensor([[a - 1, 0, 2 * (c - 2)] for a in range(3) for c in range(5)])
    else:
        shift = torch.tensor([[1, 0, 0], [0, 2, -1], [0, 0, 0], [-1, -1, 3]])
    search = kernels._submanifold_found_parallel if parts > 1 else kernels._submanifold_found
    found, duplicate = search(coords.numpy(), np.array([8, 8, 8]), shift.numpy(), parts)
    rows = {tuple(c): i for i, c in enumerate(coords.tolist())}
    expected = [
        [rows.get((b, x + dx, y + dy, z + dz), -1) for b, x, y, z in coords.tolist()]
        for dx, dy, dz in shift.tolist()
    ]
    assert duplicate.tolist() == [-1, -1] and found.tolist() == expected
    listing = kernels._found_pairs_parallel if parts > 1 else kernels._found_pairs
    ptr, columns, values = listing(found, parts)
    entries = [(o, j, v) for o, row in enumerate(expected) for j, v in enumerate(row) if v >= 0]
    assert ptr.tolist() == [0, *np.cumsum([sum(v >= 0 for v in row) for row in expected]).tolist()]
    assert [
        (o, int(j), int(v))
        for o in range(len(expected))
        for j, v in zip(columns[ptr[o] : ptr[o + 1]], values[ptr[o] : ptr[o + 1]])
    ] == entries


def test_strided_lookup_equals_brute_force():
    """Strided maps bucket the voxels by their remainders modulo the stride: against the defining
    relation ``c = stride q + position`` checked for every (position, voxel), for an anisotropic
    kernel, stride and dilation, outputs numbered in key order (batch, x, y, z)."""
    from neuroflow.layers.sparse.kernel_map import _kernel_positions
    from neuroflow.layers.sparse.kernels.maps import strided_found

    coords = random_coords(2, (11, 9, 8), 250, seed=23)
    kernel, stride, dilation, out_shape = (3, 2, 3), (2, 1, 2), (1, 2, 1), (5, 7, 4)
    positions = _kernel_positions(kernel, dilation, "cpu")
    found, out_coords = strided_found(coords, out_shape, positions, stride)
    cells = []  # per position, per voxel: its output cell or None
    for p in positions.tolist():
        line = []
        for b, *c in coords.tolist():
            q = [(ci - pi) // si for ci, pi, si in zip(c, p, stride)]
            inside = all(
                (ci - pi) % si == 0 and 0 <= qi < so
                for ci, pi, si, qi, so in zip(c, p, stride, q, out_shape)
            )
            line.append((b, *q) if inside else None)
        cells.append(line)
    rows = {
        cell: r for r, cell in enumerate(sorted({cell for line in cells for cell in line if cell}))
    }
    assert found.tolist() == [[rows[cell] if cell else -1 for cell in line] for line in cells]
    assert list(map(tuple, out_coords.tolist())) == list(rows)


def test_padded_blocks_hold_every_pair_once():
    """The batched layout: every non-centre pair exactly once, each offset's row filled to at least
    75% of its block's width, the rest padding into the dump row ``num_out``."""
    coords = random_coords(2, (9, 9, 9), 300, seed=3)
    kmap = build_kernel_map(coords, (9, 9, 9), 2, 3)
    grouped = kmap.grouped
    assert len(grouped.blocks) > 1  # this map's offsets differ enough in length to need several
    got = []
    for offsets, entries, (rows, width) in grouped.split():
        ins, outs = (
            grouped.in_idx[entries].view(rows, width),
            grouped.out_idx[entries].view(rows, width),
        )
        for o, in_row, out_row in zip(offsets.tolist(), ins, outs):
            n = int((out_row != kmap.num_out).sum())
            assert n >= 0.75 * width and (out_row[n:] == kmap.num_out).all()
            got += [(o, int(i), int(q)) for i, q in zip(in_row[:n], out_row[:n])]
    expected = [
        (o, int(i), int(q)) for o in range(27) if o != kmap.center for i, q in zip(*kmap.pairs(o))
    ]
    assert sorted(got) == sorted(expected)


def test_huge_grid_with_few_points_builds_a_small_map():
    """A 2^20-wide grid (2^61 cells with the batch) works: memory follows the voxels, not the
    volume."""
    side = 1 << 20
    coords = torch.tensor(
        [[0, 5, 5, 5], [0, 5, 5, 6], [0, side - 1, side - 1, side - 1], [1, 5, 6, 5], [1, 6, 6, 6]]
    )
    kmap = build_kernel_map(coords, (side,) * 3, 2, 3)
    # brute force: pairs (i, j) with the same batch and every |coordinate difference| <= 1
    diff = (coords[:, None, 1:] - coords[None, :, 1:]).abs().amax(-1)
    expected = int(((diff <= 1) & (coords[:, None, 0] == coords[None, :, 0])).sum())
    assert kmap.num_pairs == expected == 5 + 2 + 2
    x = torch.randn(5, 3, dtype=torch.float64)
    w = torch.randn(27, 3, 2, dtype=torch.float64)
    y = sparse_conv(x, w, kmap)
    # voxel 0 sees itself (centre, offset 13) and voxel 1 at +z (offset 14)
    torch.testing.assert_close(y[0], x[0] @ w[13] + x[1] @ w[14])
    strided = build_kernel_map(coords, (side,) * 3, 2, 2, 2, 1, submanifold=False)
    cells = {(b, x // 2, y // 2, z // 2) for b, x, y, z in coords.tolist()}
    assert strided.num_out == len(cells) == 5 and strided.out_spatial_shape == (side // 2,) * 3


def test_kernel_map_cache_is_shared_within_a_stage():
    coords = random_coords(1, (6, 6, 6), 50, seed=8)
    x = SparseTensor(coords, torch.randn(50, 4), (6, 6, 6), 1)
    a, b = SubMConv3d(4, 4), SubMConv3d(4, 4)
    h = b(a(x))
    assert len(x.kernel_maps) == 1 and h.kernel_maps is x.kernel_maps
    assert a.kernel_map(x) is b.kernel_map(h)
    assert SubMConv3d(4, 4, indice_key="other").kernel_map(x) is not a.kernel_map(x)
    down = SparseConv3d(4, 8)(x)
    assert down.kernel_maps is not x.kernel_maps and down.num_channels == 8
    assert x.to(torch.float64).kernel_maps is x.kernel_maps


def test_modules_batchnorm_pooling_and_dense():
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 1, 1], [2, 3, 3, 3]])
    feats = torch.tensor([[1.0, -2.0], [3.0, 4.0], [5.0, 6.0]])
    x = SparseTensor(coords, feats, (4, 4, 4), 3)
    # sample 1 has no voxels: pooled to 0
    torch.testing.assert_close(
        SparseGlobalAvgPool()(x), torch.tensor([[2.0, 1.0], [0.0, 0.0], [5.0, 6.0]])
    )
    torch.testing.assert_close(
        SparseGlobalMaxPool()(x), torch.tensor([[3.0, 4.0], [0.0, 0.0], [5.0, 6.0]])
    )
    torch.testing.assert_close(global_mean_pool(feats, coords[:, 0], 3), SparseGlobalAvgPool()(x))
    torch.testing.assert_close(
        global_max_pool(-feats, coords[:, 0], 3)[0], torch.tensor([-1.0, 2.0])
    )
    bn = SparseBatchNorm(2)
    torch.testing.assert_close(bn(x).features, torch.nn.BatchNorm1d(2)(feats))
    assert FeatureWise(torch.nn.ReLU())(x).features.min() == 0
    assert x.dense()[2, :, 3, 3, 3].tolist() == [5.0, 6.0] and x.dense().sum() == feats.sum()


def test_bad_input_errors():
    coords = torch.tensor([[0, 0, 0, 0], [0, 1, 2, 3]])
    feats = torch.randn(2, 3)
    with pytest.raises(
        InvalidArgumentError, match=r"column 3 \(z\) spans \[0, 3\], outside \[0, 2\]"
    ):
        SparseTensor(coords, feats, (4, 4, 3), 1)
    with pytest.raises(InvalidArgumentError, match="batch"):
        SparseTensor(coords + torch.tensor([1, 0, 0, 0]), feats, (4, 4, 4), 1)
    with pytest.raises(InputShapeError, match="empty SparseTensor"):
        SparseTensor(coords[:0], feats[:0], (4, 4, 4), 1)
    with pytest.raises(InputShapeError, match="features has 1 rows but coords has 2"):
        SparseTensor(coords, feats[:1], (4, 4, 4), 1)
    with pytest.raises(InputShapeError, match="int32 or int64"):
        SparseTensor(coords.float(), feats, (4, 4, 4), 1)
    with pytest.raises(InputShapeError, match=r"\[N, 4\]"):
        SparseTensor(coords[:, :3], feats, (4, 4, 4), 1)
    with pytest.raises(InvalidArgumentError, match="spatial_shape"):
        SparseTensor(coords, feats, (4, 4), 1)
    x = SparseTensor(coords, feats, (4, 4, 4), 1)
    with pytest.raises(
        InputShapeError, match="expects 5 feature channels, got features of shape \\(2, 3\\)"
    ):
        SubMConv3d(5, 2)(x)
    with pytest.raises(InputShapeError, match="expects a SparseTensor"):
        SubMConv3d(3, 2)(feats)
    with pytest.raises(InputShapeError, match="one row per voxel"):
        x.replace_features(torch.randn(3, 3))
    with pytest.raises(InvalidArgumentError, match="odd kernel_size and stride 1"):
        SubMConv3d(3, 2, kernel_size=2)
    with pytest.raises(InvalidArgumentError, match="kernel_size"):
        SparseConv3d(3, 2, kernel_size=0)
    with pytest.raises(InvalidArgumentError, match="backend"):
        SubMConv3d(3, 2, backend="cuda-magic")
    # the same voxel twice (rows 0 and 3), unsorted: the submanifold map refuses it, naming the rows
    twice = torch.tensor([[0, 1, 2, 3], [0, 0, 0, 0], [0, 3, 3, 0], [0, 1, 2, 3]])
    with pytest.raises(
        InvalidArgumentError, match=r"rows 0 and 3 are the same voxel \(0, 1, 2, 3\)"
    ):
        SubMConv3d(3, 2)(SparseTensor(twice, torch.randn(4, 3), (4, 4, 4), 1))
    kmap = build_kernel_map(coords, (4, 4, 4), 1, 3)
    with pytest.raises(InputShapeError, match="weight must be"):
        sparse_conv(feats, torch.randn(27, 4, 2), kmap)
    with pytest.raises(InputShapeError, match="same dtype"):
        sparse_conv(feats, torch.randn(27, 3, 2, dtype=torch.float64), kmap)


# --- the dispatch policy ------------------------------------------------------------------------
def _count_kernel_calls(monkeypatch) -> dict:
    """Spy on the event kernels as the convolution module calls them: ``{"event_conv": n,
    "event_weight_grad": n}`` counts calls (forward and input gradient; weight gradient)."""
    conv = importlib.import_module("neuroflow.layers.sparse.conv")
    calls = {"event_conv": 0, "event_weight_grad": 0}
    for name in calls:
        kernel = getattr(conv, name)

        def counted(*args, _kernel=kernel, _name=name, **kwargs):
            calls[_name] += 1
            return _kernel(*args, **kwargs)

        monkeypatch.setattr(conv, name, counted)
    return calls


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("how", ["call", "module", "global", "context"])
def test_policy_changes_the_path_not_the_result(training, how, monkeypatch):
    """The same event-driven convolution under ``SparseConvPolicy.event_always()`` and
    ``batched_only()``, given per call, per module, process-wide and by the context manager: the
    event kernels run under the first only (spied calls), and outputs and gradients agree within
    float32 rounding with each other and with the non-skipping path."""
    from neuroflow.layers import SparseConvPolicy, set_sparse_policy, sparse_policy

    coords = random_coords(2, (9, 9, 9), 300, seed=40)
    x = spikes_with_silent_rows(300, 16, seed=41, dtype=torch.float32, silent=0.5)
    g = torch.randn(300, 8, generator=torch.Generator().manual_seed(43))
    conv = SubMConv3d(16, 8, event_driven=True)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(27, 16, 8, generator=torch.Generator().manual_seed(42)) * 0.1)
    tensor = SparseTensor(coords, x, (9, 9, 9), 2)

    def run(policy):
        conv.policy = policy if how == "module" else None
        features = x.clone().requires_grad_(training)
        with torch.set_grad_enabled(training):
            if how == "call":
                kmap = conv.kernel_map(tensor)
                y = sparse_conv(features, conv.weight, kmap, event_driven=True, policy=policy)
            elif how == "context":
                with sparse_policy(policy):
                    y = conv(tensor.replace_features(features)).features
            else:
                previous = set_sparse_policy(policy) if how == "global" else None
                try:
                    y = conv(tensor.replace_features(features)).features
                finally:
                    if how == "global":
                        set_sparse_policy(previous)
            grads = torch.autograd.grad(y, (features, conv.weight), g) if training else ()
        return [y.detach(), *grads]

    calls = _count_kernel_calls(monkeypatch)
    batched = run(SparseConvPolicy.batched_only())
    assert calls == {"event_conv": 0, "event_weight_grad": 0}
    event = run(SparseConvPolicy.event_always())
    # forward (and, in training, the input gradient on the transposed map) and the weight gradient
    assert calls == {"event_conv": 2 if training else 1, "event_weight_grad": int(training)}
    with torch.set_grad_enabled(training):
        features = x.clone().requires_grad_(training)
        plain = sparse_conv(features, conv.weight, conv.kernel_map(tensor))
        plain = [
            plain.detach(),
            *(torch.autograd.grad(plain, (features, conv.weight), g) if training else ()),
        ]
    for k, (a, b, c) in enumerate(zip(event, batched, plain)):
        tolerance = 1e-5 if k == 0 else 1e-4  # gradients sum over many more float32 products
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance)
        torch.testing.assert_close(a, c, rtol=tolerance, atol=tolerance)
    assert get_policy_module().get_sparse_policy() is get_policy_module().DEFAULT_POLICY


def get_policy_module():
    return importlib.import_module("neuroflow.layers.sparse.policy")


@pytest.mark.parametrize(
    "changes,event_calls",
    [
        ({}, 1),  # 16 x 8 = 128 <= inference_event_macs: the event kernel at any density
        ({"inference_event_macs": 64, "event_min_pairs_per_voxel": 1e9}, 1),  # 50% <= 60%
        (
            {
                "inference_event_macs": 64,
                "event_min_pairs_per_voxel": 1e9,
                "inference_event_max_density": 0.3,
            },
            0,
        ),  # 50% > 30%: the batched path
        (
            {
                "inference_event_macs": 64,
                "event_min_pairs_per_voxel": 1,
                "inference_event_max_density": 0.0,
            },
            1,
        ),  # a map of >= 1 pair per voxel: the event kernel
        ({"event_max_macs": 127}, 0),  # wider than the event kernels may take
    ],
)
def test_each_inference_threshold_flips_the_path(changes, event_calls, monkeypatch):
    """One inference layer at ~50% spiking voxels: each threshold of the policy, moved across the
    layer's width, density or pairs per voxel, sends it to the other path (spied), same output."""
    from neuroflow.layers import sparse_policy

    coords = random_coords(2, (9, 9, 9), 300, seed=44)
    x = spikes_with_silent_rows(300, 16, seed=45, dtype=torch.float32, silent=0.5)
    w = torch.randn(27, 16, 8, generator=torch.Generator().manual_seed(46)) * 0.1
    kmap = build_kernel_map(coords, (9, 9, 9), 2, 3)
    calls = _count_kernel_calls(monkeypatch)
    with torch.no_grad(), sparse_policy(**changes):
        y = sparse_conv(x, w, kmap, event_driven=True)
    assert calls["event_conv"] == event_calls
    with torch.no_grad():
        torch.testing.assert_close(y, sparse_conv(x, w, kmap), rtol=1e-5, atol=1e-5)


def test_policy_rejects_bad_values():
    from neuroflow.layers import SparseConvPolicy, sparse_policy

    with pytest.raises(
        InvalidArgumentError, match=r"inference_event_max_density must be a share in \[0, 1\]"
    ):
        SparseConvPolicy(inference_event_max_density=1.5)
    with pytest.raises(InvalidArgumentError, match="event_max_macs must be an int >= 0"):
        SparseConvPolicy(event_max_macs=-1)
    with pytest.raises(InvalidArgumentError, match="relayout_min_saving must be a number"):
        SparseConvPolicy(relayout_min_saving="10")
    with pytest.raises(InvalidArgumentError, match="SparseConvPolicy fields are: event_max_macs"):
        with sparse_policy(event_threshold=3):
            pass
    with pytest.raises(InvalidArgumentError, match="policy must be a SparseConvPolicy"):
        SubMConv3d(3, 2, policy={"event_max_macs": 0})
    kmap = build_kernel_map(torch.tensor([[0, 0, 0, 0]]), (2, 2, 2), 1, 3)
    with pytest.raises(InvalidArgumentError, match="policy must be a SparseConvPolicy"):
        sparse_conv(torch.ones(1, 2), torch.ones(27, 2, 2), kmap, policy="batched")
    assert get_policy_module().get_sparse_policy() is get_policy_module().DEFAULT_POLICY

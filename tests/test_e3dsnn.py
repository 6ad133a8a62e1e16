"""E-3DSNN models: parameter counts, a forward + backward pass, registry use, bad input."""

from __future__ import annotations

import pytest
import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers import SparseConv3d, SparseTensor, SubMConv3d
from neuroflow.models import MODELS, build, build_model
from neuroflow.neurons import MultiSpike


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def counted_by_hand(stem: int, channels: list[int], in_features: int = 6, classes: int = 40) -> int:
    """The architecture's parameters, summed layer by layer (3x3x3 convs without bias, BN 2 C)."""
    total = 27 * in_features * stem + 2 * 27 * stem * stem + 3 * 2 * stem  # stem: 3 convs + 3 BN
    width = stem
    for c in channels:  # down conv k=2 + BN, then one BasicBlock: 3 convs + 3 BN
        total += 8 * width * c + 2 * c + 3 * 27 * c * c + 3 * 2 * c
        width = c
    return total + width * classes + classes  # 1x1x1 head with bias


@pytest.mark.parametrize(
    "name,expected,channels",
    [
        # ModelNet40 (40 classes, xyz + normal): the architecture of the reference implementation
        # (github bollossom/E-3DSNN); Qiu et al., arXiv 2412.07360, report 1.87M for E-3DSNN-T
        ("e3dsnn_t", 1_874_216, [16, 32, 64, 128]),
        ("e3dsnn_s", 3_271_144, [24, 48, 96, 160]),
    ],
)
def test_parameter_counts(name, expected, channels):
    model = build(name, num_classes=40)
    assert count(model) == expected == counted_by_hand(channels[0], channels)


def small_input(
    batch: int = 2, voxels: int = 400, side: int = 24, features: int = 6, seed: int = 0
) -> SparseTensor:
    gen = torch.Generator().manual_seed(seed)
    keys = torch.randperm(batch * side**3, generator=gen)[:voxels]
    coords = torch.stack(
        [keys // side**3, keys // side**2 % side, keys // side % side, keys % side], 1
    )
    return SparseTensor(coords, torch.randn(voxels, features, generator=gen), (side,) * 3, batch)


def test_forward_backward_of_e3dsnn_t():
    torch.manual_seed(0)
    model = build("e3dsnn_t", num_classes=40)
    x = small_input()
    logits = model(x)
    assert logits.shape == (1, 2, 40) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits.mean(0), torch.tensor([3, 7])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.stem[0].weight.grad.abs().sum() > 0  # the gradient reaches the first layer
    # stages 1..4 halve the grid: 24 -> 12 -> 6 -> 3 -> 2
    convs = [m for m in model.modules() if isinstance(m, SparseConv3d)]
    assert len(convs) == 4 and convs[-1].out_channels == 128


def test_event_driven_model_equals_plain_model():
    torch.manual_seed(1)
    plain = build("e3dsnn", num_classes=5, channels=[8, 8, 16, 16], event_driven=False).eval()
    skipping = build("e3dsnn", num_classes=5, channels=[8, 8, 16, 16], event_driven=True).eval()
    skipping.load_state_dict(plain.state_dict())
    x = small_input(seed=2)
    torch.testing.assert_close(skipping(x), plain(x), rtol=1e-5, atol=1e-5)


def test_model_is_walkable_and_exposes_kernel_maps():
    model = build("e3dsnn", num_classes=10, channels=[4, 4, 8, 8], depths=[1, 0, 1, 0])
    names = dict(model.named_modules())
    assert isinstance(names["stem.0"], SubMConv3d) and isinstance(
        names["stages.0.down.0.module"], MultiSpike
    )
    x = small_input(seed=3)
    model(x)
    kmap = names["stem.0"].kernel_map(x)  # cached by the forward pass
    assert kmap is names["stem.3"].kernel_map(x)
    in_idx, out_idx = kmap.pairs(13)  # centre offset: every voxel feeds itself
    assert torch.equal(in_idx, out_idx) and in_idx.numel() == x.num_points
    assert int(kmap.fan_out().sum()) == kmap.num_pairs


def test_registry_and_bad_input():
    assert {"e3dsnn", "e3dsnn_t", "e3dsnn_s"} <= set(MODELS.names())
    model = build_model("e3dsnn", {"channels": [4, 8], "depths": [1, 1]}, 3, (4,))
    assert model(small_input(features=4)).shape == (1, 2, 3)
    with pytest.raises(InputShapeError, match="expects 4 features per voxel"):
        model(small_input(features=6))
    with pytest.raises(InputShapeError, match="SparseTensor"):
        model(torch.randn(2, 4))
    with pytest.raises(InvalidArgumentError, match="input_shape"):
        build("e3dsnn_t", input_shape=(2, 34, 34))
    with pytest.raises(InvalidArgumentError, match="equally long"):
        build("e3dsnn", channels=[4, 8], depths=[1])


def test_bn_momentum_reaches_every_batchnorm_and_is_checked():
    from neuroflow.layers import SparseBatchNorm

    model = build_model(
        "e3dsnn", {"channels": [4, 4, 4, 4], "bn_momentum": 0.1}, num_classes=3, input_shape=(6,)
    )
    momenta = {m.momentum for m in model.modules() if isinstance(m, SparseBatchNorm)}
    assert momenta == {0.1}
    assert {
        m.momentum
        for m in build("e3dsnn_t", num_classes=40).modules()
        if isinstance(m, SparseBatchNorm)
    } == {0.01}  # the reference's BatchNorm1d(eps=1e-3, momentum=0.01) (bollossom/E-3DSNN)
    with pytest.raises(InvalidArgumentError, match="bn_momentum"):
        build_model("e3dsnn", {"bn_momentum": 0.0}, num_classes=3, input_shape=(6,))

"""Meta-SpikeFormer: parameter counts, shapes, gradients, bad input, spike-driven check, config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from neuroflow.config import load_config
from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers import reparameterize
from neuroflow.models import MODELS, MetaSpikeFormer, build_model
from neuroflow.models.spike_driven_check import check_spike_driven

REPO = Path(__file__).resolve().parents[1]

IMAGENET_VARIANTS = {
    # name: (dims, parameters reported in the paper: Yao et al., ICLR 2024, Table 2)
    "metaspikeformer_15m": ((64, 128, 256, 360), 15.11e6),
    "metaspikeformer_31m": ((96, 192, 384, 480), 31.33e6),
    "metaspikeformer_55m": ((128, 256, 512, 640), 55.35e6),
}


def reference_parameter_count(dims, classes=1000, in_channels=3):
    """Parameters of the reference architecture, counted by hand per module from
    BICLab/Spike-Driven-Transformer-V2 ``classification/models.py`` (conv weights, conv biases where
    the reference has them, two affine parameters per BatchNorm channel; running statistics are
    buffers, not parameters)."""
    c0, c1, c2, c3 = dims

    def downsample(cin, cout, k):  # conv with bias + BN
        return cin * cout * k * k + cout + 2 * cout

    def conv_block(
        c,
    ):  # SepConv (1x1 c->2c, BN, dw7x7, 1x1 2c->c, BN) + 3x3 c->4c BN + 3x3 4c->c BN
        sep = 2 * c * c + 4 * c + 49 * 2 * c + 2 * c * c + 2 * c
        return sep + 36 * c * c + 8 * c + 36 * c * c + 2 * c

    def repconv_bn(c):  # 1x1 + BN + dw3x3 + 1x1 + BN, then the BN that follows it in SDSA
        return c * c + 2 * c + 9 * c + c * c + 2 * c + 2 * c

    def block(c):  # SDSA (q, k, v, proj) + MLP (1x1 convs with bias, BN)
        return 4 * repconv_bn(c) + (c * 4 * c + 4 * c + 8 * c) + (4 * c * c + c + 2 * c)

    return (
        downsample(in_channels, c0 // 2, 7)
        + conv_block(c0 // 2)
        + downsample(c0 // 2, c0, 3)
        + conv_block(c0)
        + downsample(c0, c1, 3)
        + 2 * conv_block(c1)
        + downsample(c1, c2, 3)
        + 6 * block(c2)
        + downsample(c2, c3, 3)
        + 2 * block(c3)
        + c3 * classes
        + classes
    )


@pytest.mark.parametrize("name", sorted(IMAGENET_VARIANTS))
def test_imagenet_parameter_counts(name):
    dims, paper = IMAGENET_VARIANTS[name]
    model = MODELS.get(name)(num_classes=1000)
    count = sum(p.numel() for p in model.parameters())
    assert count == reference_parameter_count(dims)
    assert abs(count - paper) / paper < 0.005, (count, paper)


def calibrated(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Spread BN affine parameters so that every layer fires, then put running stats in place."""
    g = torch.Generator().manual_seed(0)
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.weight.data.copy_(1 + torch.rand(bn.num_features, generator=g))
            bn.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


SMALL_INPUTS = {
    "metaspikeformer_15m": (3, 32, 32),
    "metaspikeformer_31m": (3, 32, 32),
    "metaspikeformer_55m": (3, 32, 32),
    "metaspikeformer_event": (2, 34, 34),
    "metaspikeformer_cifar": (3, 32, 32),
}


@pytest.mark.parametrize(
    "name",
    [
        # 31m and 55m differ from 15m in widths only; they take ~15 s each on 2 shared cores
        pytest.param(n, marks=pytest.mark.slow)
        if n in ("metaspikeformer_31m", "metaspikeformer_55m")
        else n
        for n in sorted(SMALL_INPUTS)
    ],
)
def test_every_variant_is_spike_driven_after_reparameterization(name):
    torch.manual_seed(0)
    shape = SMALL_INPUTS[name]
    model = MODELS.get(name)(num_classes=10, input_shape=shape)
    x = torch.randn(2, 1, *shape) * 2  # T=2, B=1 keeps the ImageNet variants fast
    calibrated(model, x)
    small = name not in IMAGENET_VARIANTS  # the wide variants get the check only (test time)
    if small:
        reference = model(x)
        # the training form is not spike-driven: RepConv's inner convolutions read real values
        unfused = check_spike_driven(model, x)
        assert any(".depthwise" in v.site or ".pointwise" in v.site for v in unfused.violations)
    reparameterize(model)
    report = check_spike_driven(model, x)
    assert report.ok, str(report)
    assert report.sites[0][0] == "downsample1_1.conv.0"  # the exempt encoder
    # one conv per synaptic layer, plus the two matmuls of every V2 attention
    n_attn = sum(1 for m in model.modules() if type(m).__name__ == "SpikeDrivenSelfAttention")
    n_conv = sum(1 for m in model.modules() if isinstance(m, nn.Conv2d))
    assert len(report.sites) == n_conv + 2 * n_attn + 1  # + the Linear head
    if (
        small
    ):  # fusing changed no spike (float rounding could flip one near threshold; none did here)
        assert torch.allclose(model(x), reference, atol=1e-4)


def test_the_check_catches_a_layer_fed_with_real_values():
    torch.manual_seed(0)
    model = MODELS.get("metaspikeformer_cifar")(num_classes=10)
    x = torch.randn(1, 2, 3, 32, 32) * 2
    calibrated(model, x)
    reparameterize(model)
    assert check_spike_driven(model, x).ok
    model.blocks3[0].mlp.lif2 = nn.Identity()  # the MLP's second conv now reads membrane values
    report = check_spike_driven(model, x)
    assert [v.site for v in report.violations] == ["blocks3.0.mlp.fc2.0"]
    assert "not spikes" in str(report.violations[0])


def test_event_variant_forward_backward_and_logit_shape():
    torch.manual_seed(0)
    model = build_model("metaspikeformer_event", {}, num_classes=10, input_shape=(2, 34, 34))
    x = (torch.rand(3, 4, 2, 34, 34) < 0.2).float()
    out = model(x)
    assert out.shape == (3, 4, 10)
    nn.functional.cross_entropy(out.mean(0), torch.arange(4)).backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
    ]
    assert not missing
    assert model.feature_sizes == [(16, 16), (8, 8), (8, 8), (8, 8), (8, 8)]


@pytest.mark.parametrize(
    "shape,strides,match",
    [
        ((3, 100, 100), (2, 2, 2, 2, 1), r"downsampling 3 \(stride 2\) gets 25x25"),
        ((2, 34, 34), (2, 2, 1, 1, 1), r"downsampling 2 \(stride 2\) gets 17x17"),
    ],
)
def test_input_size_the_strides_cannot_divide_is_rejected_at_build(shape, strides, match):
    with pytest.raises(InputShapeError, match=match) as err:
        MetaSpikeFormer(10, shape, dims=(8, 8, 8, 8), strides=strides, stem_kernel=3, num_heads=2)
    assert str(shape) in str(err.value) and str(list(strides)) in str(err.value)


def test_bad_arguments_are_named():
    with pytest.raises(InvalidArgumentError, match="num_heads=3"):
        MetaSpikeFormer(10, (3, 32, 32), dims=(8, 8, 8, 8), num_heads=3)
    with pytest.raises(InvalidArgumentError, match="dims"):
        MetaSpikeFormer(10, (3, 32, 32), dims=(8, 8, 8))
    with pytest.raises(InputShapeError, match=r"\[T, B, 3, 32, 32\]"):
        MODELS.get("metaspikeformer_cifar")(num_classes=10)(torch.zeros(1, 1, 3, 30, 30))


def test_config_builds_the_event_variant_with_v1_attention_too():
    cfg = load_config(REPO / "configs" / "nmnist_spikeformer.yaml")
    assert cfg.model.name == "metaspikeformer_event" and cfg.data.name == "synthetic-nmnist"
    params = dict(cfg.model.params, attention_version=1)
    model = build_model(cfg.model.name, params, num_classes=10, input_shape=(2, 34, 34))
    assert {m.version for m in model.modules() if hasattr(m, "version")} == {1}
    assert model((torch.rand(2, 1, 2, 34, 34) < 0.2).float()).shape == (2, 1, 10)

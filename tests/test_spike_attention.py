"""Spike-driven self-attention and RepConv: the functional core against dense references."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from neuroflow.errors import InputShapeError, InvalidArgumentError, NeuroflowError
from neuroflow.layers import (
    RepConv,
    SepConv,
    SpikeDrivenSelfAttention,
    merge_heads,
    sdsa_v1_mask,
    sdsa_v2,
    split_heads,
)
from neuroflow.neurons import LIF


def spikes(*shape, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g) < p).float()


def randomize_batchnorm(module: nn.Module, seed: int = 0) -> None:
    """Give every BN non-trivial running statistics and affine parameters (eval != identity)."""
    g = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            bn.running_mean.copy_(torch.randn(c, generator=g))
            bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            bn.weight.data.copy_(torch.randn(c, generator=g))
            bn.bias.data.copy_(torch.randn(c, generator=g))


def test_split_and_merge_heads_are_inverse_and_group_channels_by_head():
    x = torch.arange(2 * 6 * 3 * 4, dtype=torch.float32).reshape(2, 6, 3, 4)
    heads = split_heads(x, 3)
    assert heads.shape == (2, 3, 12, 2)
    # head h, token n, feature j = channel 2h + j at pixel n (row-major)
    assert torch.equal(heads[1, 2, 5, 1], x[1, 5, 5 // 4, 5 % 4])
    assert torch.equal(merge_heads(heads, 3, 4), x)
    with pytest.raises(InputShapeError, match="heads"):
        split_heads(x, 4)


def test_v2_linear_attention_equals_quadratic_order_exactly():
    # reference: the softmax-free attention (Q K^T) V, the O(N^2) order; integer-valued so exact
    q, k, v = spikes(2, 3, 50, 8, seed=1), spikes(2, 3, 50, 8, seed=2), spikes(2, 3, 50, 8, seed=3)
    out = sdsa_v2(q, k, v, 0.125)
    assert torch.equal(out, ((q @ k.transpose(-2, -1)) @ v) * 0.125)
    # hand check of one entry: sum_m q[n,m] * #{tokens t with k[t,m] = v[t,j] = 1}
    n, j = 7, 5
    ref = sum(q[0, 1, n, m] * (k[0, 1, :, m] * v[0, 1, :, j]).sum() for m in range(8)) * 0.125
    assert out[0, 1, n, j] == ref


def test_v1_mask_is_the_token_sum_of_k_times_v():
    k, v = spikes(4, 2, 30, 6, seed=4), spikes(4, 2, 30, 6, seed=5)
    mask = sdsa_v1_mask(k, v)
    assert mask.shape == (4, 2, 1, 6)
    loop = torch.zeros(4, 2, 1, 6)
    for t in range(30):
        loop[..., 0, :] += k[..., t, :] * v[..., t, :]
    assert torch.equal(mask, loop)


@pytest.mark.parametrize("version", [1, 2])
def test_attention_module_shapes_spikes_and_gradients(version):
    torch.manual_seed(0)
    neuron = functools.partial(LIF, detach_reset=True)
    # scale 1 (not 0.125) so that the few co-firing tokens of a random 30-token input reach 0.5
    attn = SpikeDrivenSelfAttention(16, 4, neuron, version=version, scale=1.0)
    assert attn.attn_lif.v_threshold == 0.5 and attn.q_lif.v_threshold == 1.0
    x = torch.randn(3, 2, 16, 5, 6, requires_grad=True) * 3
    s = attn.attention(x)
    assert s.shape == (3, 2, 16, 5, 6) and set(s.unique().tolist()) <= {0.0, 1.0} and s.sum() > 0
    out = attn(x)
    assert out.shape == x.shape
    out.square().mean().backward()
    for name, p in attn.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_attention_module_matches_a_hand_written_v2_forward():
    torch.manual_seed(0)
    neuron = functools.partial(LIF, detach_reset=True)
    attn = SpikeDrivenSelfAttention(8, 2, neuron).eval()
    randomize_batchnorm(attn)
    x = torch.randn(2, 3, 8, 4, 4) * 2
    lif, lif05 = LIF(detach_reset=True), LIF(v_threshold=0.5, detach_reset=True)
    s = lif(x)
    q, k, v = (lif(conv(s)) for conv in (attn.q_conv, attn.k_conv, attn.v_conv))
    # per head: q_h [N, 4] @ (k_h^T [4, N] @ v_h [N, 4]), written with explicit loops over heads
    out = torch.zeros_like(q)
    for h in range(2):
        ch = slice(4 * h, 4 * h + 4)
        qh, kh, vh = (t[:, :, ch].flatten(3).transpose(-1, -2) for t in (q, k, v))  # [T, B, N, 4]
        out[:, :, ch] = (
            (qh @ (kh.transpose(-1, -2) @ vh) * 0.125).transpose(-1, -2).reshape(2, 3, 4, 4, 4)
        )
    assert torch.equal(attn(x), attn.proj_conv(lif05(out)))


def test_attention_rejects_bad_heads_and_shapes():
    neuron = functools.partial(LIF)
    with pytest.raises(InvalidArgumentError, match="num_heads"):
        SpikeDrivenSelfAttention(10, 4, neuron)
    with pytest.raises(InputShapeError, match=r"\[T, B, 8, H, W\]"):
        SpikeDrivenSelfAttention(8, 2, neuron)(torch.zeros(2, 3, 4, 4, 4))


@pytest.mark.parametrize("cin,cout", [(6, 6), (4, 7)])
def test_reparameterized_repconv_equals_training_form(cin, cout):
    torch.manual_seed(0)
    rep = RepConv(cin, cout)
    randomize_batchnorm(rep, seed=cin)
    rep.eval()
    x = spikes(5, cin, 9, 7, seed=6)
    with torch.no_grad():
        ref = rep(x)
        fused = rep.fused_conv()
        assert fused.kernel_size == (3, 3) and fused.padding == (1, 1)
        assert torch.allclose(fused(x), ref, atol=1e-5, rtol=1e-5)
        # the borders are the delicate part (BN pads with its value at zero input)
        assert torch.allclose(fused(x)[..., 0, :], ref[..., 0, :], atol=1e-5, rtol=1e-5)
        rep.reparameterize_()
        assert torch.allclose(rep(x), ref, atol=1e-5, rtol=1e-5)
    assert [n for n, _ in rep.named_children()] == ["fused"]


def test_repconv_needs_eval_mode_to_fuse():
    with pytest.raises(NeuroflowError, match="eval"):
        RepConv(4, 4).reparameterize_()


def test_fused_sepconv_equals_training_form():
    torch.manual_seed(0)
    sep = SepConv(4, functools.partial(LIF, detach_reset=True))
    randomize_batchnorm(sep, seed=3)
    sep.eval()
    x = torch.randn(2, 3, 4, 8, 8) * 3
    with torch.no_grad():
        ref = sep(x)
        sep.reparameterize_()
        assert sep.dwconv_pwconv2[0].kernel_size == (7, 7) and sep.dwconv_pwconv2[0].groups == 1
        assert torch.allclose(sep(x), ref, atol=1e-5, rtol=1e-5)

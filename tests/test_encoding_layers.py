import pytest
import torch
from torch import nn

from neuroflow.encoding import direct_encode, latency_encode, rate_encode
from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers import TimeDistributed
from neuroflow.layers.time_distributed import _runs_channels_last


def test_direct_encode_repeats():
    x = torch.randn(3, 4)
    y = direct_encode(x, 5)
    assert y.shape == (5, 3, 4) and all(torch.equal(y[t], x) for t in range(5))


def test_rate_encode_seeded_and_rate():
    x = torch.full((1000,), 0.3)
    a = rate_encode(x, 50, torch.Generator().manual_seed(0))
    b = rate_encode(x, 50, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert abs(a.mean().item() - 0.3) < 0.01  # 50,000 Bernoulli(0.3) draws: std 0.002
    with pytest.raises(InvalidArgumentError, match=r"\[0, 1\]"):
        rate_encode(torch.tensor([1.5]), 4)


def test_latency_encode_by_hand():
    s = latency_encode(torch.tensor([1.0, 0.5, 0.0]), 5)
    # intensity 1 -> t=0; 0.5 -> t=2; 0 never fires
    assert torch.equal(s, torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]]))
    with pytest.raises(InvalidArgumentError, match="time_steps"):
        latency_encode(torch.tensor([0.5]), 0)


def test_time_distributed_equals_per_step():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3)
    td = TimeDistributed(conv)
    x = torch.randn(4, 2, 2, 8, 8)
    y = td(x)
    assert y.shape == (4, 2, 3, 6, 6)
    for t in range(4):
        torch.testing.assert_close(y[t], conv(x[t]))
    assert td[0] is conv  # layers stay reachable for export
    with pytest.raises(InputShapeError):
        td(torch.randn(5))


@pytest.mark.parametrize("pool", [nn.AvgPool2d, nn.MaxPool2d])
def test_time_distributed_in_channels_last_equals_nchw(pool):
    """A conv-BN-pool stack runs in the channels-last layout on the CPU; its output (contiguous
    NCHW) and its gradients equal the same modules run on the NCHW folded input (torch's NCHW
    kernels as the reference)."""
    torch.manual_seed(0)
    td = TimeDistributed(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), pool(2))
    x = torch.randn(3, 5, 2, 10, 10, requires_grad=True)
    assert _runs_channels_last(td, x.reshape(15, 2, 10, 10))
    assert not _runs_channels_last(
        TimeDistributed(nn.Conv2d(2, 4, 1)), x.reshape(15, 2, 10, 10)
    )  # no pooling
    y = td(x)
    assert y.shape == (3, 5, 4, 5, 5) and y.is_contiguous()
    reference = nn.Sequential.forward(td, x.reshape(15, 2, 10, 10)).reshape(3, 5, 4, 5, 5)
    torch.testing.assert_close(y, reference, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, td[0].weight, td[1].weight), g)
    want = torch.autograd.grad(reference, (x, td[0].weight, td[1].weight), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)

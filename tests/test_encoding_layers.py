import pytest
import torch
from torch import nn

from neuroflow.encoding import direct_encode, latency_encode, rate_encode
from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers import TimeDistributed


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

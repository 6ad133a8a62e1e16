"""The lsm reservoir against an independent Brian2 implementation of the same equations."""

from __future__ import annotations

import pytest
import torch

from neuroflow.rram import run_reservoir

pytest.importorskip("brian2")

from neuroflow.rram.brian2_reservoir import run_reservoir_brian2  # noqa: E402


def test_reservoir_spikes_equal_brian2():
    # Weights and input currents are multiples of 1/4, so every sum is exact in float64 and both
    # simulators must agree bit for bit whatever order they add in; decay 0.9 and threshold 5 are
    # the paper's (the product decay * v is the same IEEE operation in both).
    g = torch.Generator().manual_seed(0)
    steps, batch, n = 30, 3, 40
    u = torch.randint(0, 9, (steps, batch, n), generator=g).double() * 0.25
    w = torch.randint(-6, 7, (n, n), generator=g).double() * 0.25
    w = w * (torch.rand(n, n, generator=g) < 0.2)
    ours = run_reservoir(u, w, 0.9, 5.0)
    theirs = run_reservoir_brian2(u, w, 0.9, 5.0)
    assert 0.02 < float(ours.mean()) < 0.5  # recurrent spikes matter: neither silent nor saturated
    assert torch.equal(ours, theirs)

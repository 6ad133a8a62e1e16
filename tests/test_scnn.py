"""The scnn model: shapes, gradient flow, structure, registry and config-driven parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuroflow.config import config_from_dict
from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers import TimeDistributed
from neuroflow.models import MODELS, SCNN, build_model, builder_parameters
from neuroflow.neurons import LIF, SpikingNeuron, surrogate


def events(t=4, b=3, seed=0, rate=0.2):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, b, 2, 34, 34, generator=g) < rate).float()


def test_output_is_time_first_logits():
    torch.manual_seed(0)
    model = build_model("scnn", {}, num_classes=10, input_shape=(2, 34, 34))
    out = model(events(t=5, b=3))
    assert out.shape == (5, 3, 10)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("channels", [[4], [4, 8], [4, 8, 8]])
def test_channels_set_depth_and_width(channels):
    model = SCNN(7, (2, 34, 34), channels=channels)
    assert model(events(t=2, b=2)).shape == (2, 2, 7)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == channels
    side = 34 // 2 ** len(channels)
    assert model.fc[-1].in_features == channels[-1] * side * side


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = SCNN(10, (2, 34, 34), channels=[4, 8])
    out = model(events(t=4, b=4, rate=0.3))
    nn.functional.cross_entropy(out.mean(0), torch.tensor([0, 1, 2, 3])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    # the first conv sits behind two spiking layers: its gradient flows through both surrogates
    assert model.conv1[0].weight.grad.abs().sum() > 0
    assert model.conv2[0].weight.grad.abs().sum() > 0


def test_plain_walkable_structure_without_hidden_state():
    model = SCNN(10, (2, 34, 34), channels=[4, 8])
    assert isinstance(model, nn.Sequential)
    assert list(dict(model.named_children())) == ["conv1", "lif1", "conv2", "lif2", "fc"]
    assert isinstance(model.conv1, TimeDistributed) and isinstance(model.fc, TimeDistributed)
    kinds = [type(m).__name__ for m in model.conv1]
    assert kinds == ["Conv2d", "BatchNorm2d", "AvgPool2d"]
    # fresh state at every call: the same input twice gives the same output
    model.eval()
    x = events(t=3, b=2)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    assert not any(
        isinstance(v, torch.Tensor)
        and k not in dict(model.named_buffers())
        and k not in dict(model.named_parameters())
        for k, v in vars(model).items()
    )


def test_neuron_parameters_come_from_config():
    cfg = config_from_dict(
        {
            "model": {
                "name": "scnn",
                "channels": [4, 8],
                "tau": 3.0,
                "v_threshold": 0.5,
                "detach_reset": True,
                "surrogate": "atan",
                "surrogate_alpha": 2.5,
                "backend": "torch",
                "batch_norm": False,
                "pool": "max",
            }
        }
    )
    model = build_model(cfg.model.name, cfg.model.params, num_classes=10, input_shape=(2, 34, 34))
    neurons = [m for m in model.modules() if isinstance(m, SpikingNeuron)]
    assert len(neurons) == 2 and all(isinstance(n, LIF) for n in neurons)
    for n in neurons:
        assert n.tau == 3.0 and n.v_threshold == 0.5 and n.detach_reset is True
        assert isinstance(n.surrogate, surrogate.ATan) and n.surrogate.alpha == 2.5
        assert n.backend == "torch"
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.conv1[0].bias is not None  # without BN the conv keeps its bias


def test_registry_and_signature():
    assert "scnn" in MODELS and MODELS.get("scnn") is SCNN
    params = builder_parameters(SCNN)
    assert {"channels", "tau", "v_threshold", "surrogate", "detach_reset", "backend"} <= set(params)
    assert "num_classes" not in params and "input_shape" not in params  # set by the dataset


def test_bad_inputs_are_clear_errors():
    model = SCNN(10, (2, 34, 34), channels=[4])
    with pytest.raises(InputShapeError, match=r"\[T, B, 2, 34, 34\]"):
        model(torch.zeros(3, 2, 34, 34))
    with pytest.raises(InvalidArgumentError, match="channels"):
        SCNN(10, (2, 34, 34), channels=[])
    with pytest.raises(InvalidArgumentError, match="pooling stages"):
        SCNN(10, (2, 8, 8), channels=[4, 4, 4, 4])

"""E-3DSNN: a spiking sparse-convolution network for point clouds (Qiu et al., AAAI 2025;
reference code github bollossom/E-3DSNN, ``SNN_3dv``).

Architecture (as in the reference; ``S`` = integer multi-spike neuron ``round(clamp(u, 0, D))``):

* stem: SubMConv3d(Cin -> C0) BN S SubMConv3d BN S SubMConv3d BN (3x3x3, no bias);
* 4 stages ``i``: S -> SparseConv3d(k=2, s=2, C_{i-1} -> C_i) -> BN, then ``depth_i`` BasicBlocks;
* BasicBlock: ``u = u + [S SubM BN](u)``, then ``u = u + [S SubM BN S SubM BN](u)`` (residual adds
  on the pre-spike values, the "membrane shortcut");
* head: SubMConv3d(C3 -> classes, k=1, bias) then the mean over each sample's voxels (no FC).

BatchNorm1d(eps=1e-3, momentum=0.01). SubMConv3d weights start trunc-normal(std 0.02) with zero
bias, the reference's ``_init_weights``; strided convolutions keep the conv default.

Input: a :class:`~neuroflow.layers.SparseTensor` whose features are the reference's 6 floats per
voxel (xyz + normal; the stem's first convolution is the only real-valued, MAC layer) or any
``input_shape[0]`` features a voxel encoder produces. Output: logits ``[1, B, classes]``. The
network has no time dimension (one stateless pass; a multi-spike value stands for up to ``D``
spikes), and the trainer expects time-first logits it averages over dim 0, hence the ``T = 1``.

Parameter counts (40 classes, 6 input features): ``e3dsnn_t`` (16/32/64/128, depth 1) 1,874,216;
``e3dsnn_s`` (24/48/96/160) 3,271,144, the paper's 1.87M / 3.27M.
"""

from __future__ import annotations

import torch
from torch import nn

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.layers import (
    FeatureWise,
    SparseBatchNorm,
    SparseConv3d,
    SparseGlobalAvgPool,
    SparseTensor,
    SubMConv3d,
)
from neuroflow.models.registry import MODELS
from neuroflow.neurons import MultiSpike


class _Builder:
    """Shared constructor settings of one network's layers."""

    def __init__(self, D: int, event_driven: bool, backend: str, bn_momentum: float):
        self.D, self.event_driven, self.backend, self.bn_momentum = (
            D,
            event_driven,
            backend,
            bn_momentum,
        )

    def spike(self) -> FeatureWise:
        return FeatureWise(MultiSpike(self.D))

    def bn(self, channels: int) -> SparseBatchNorm:
        return SparseBatchNorm(channels, eps=1e-3, momentum=self.bn_momentum)

    def subm(self, cin: int, cout: int, key: str) -> SubMConv3d:
        return SubMConv3d(
            cin, cout, 3, indice_key=key, backend=self.backend, event_driven=self.event_driven
        )

    def spiking_subm(self, channels: int, key: str) -> list[nn.Module]:
        """S -> SubMConv3d -> BN."""
        return [self.spike(), self.subm(channels, channels, key), self.bn(channels)]


class BasicBlock(nn.Module):
    """Two residual sub-blocks on pre-spike values.

    ``[S SubM BN]`` and ``[S SubM BN S SubM BN]``.
    """

    def __init__(self, channels: int, make: _Builder, indice_key: str):
        super().__init__()
        self.block = nn.Sequential(*make.spiking_subm(channels, indice_key))
        self.voxel_block = nn.Sequential(
            *make.spiking_subm(channels, indice_key), *make.spiking_subm(channels, indice_key)
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        x = x.replace_features(self.block(x).features + x.features)
        return x.replace_features(self.voxel_block(x).features + x.features)


class DownStage(nn.Module):
    """S -> SparseConv3d(k=2, s=2) -> BN, then ``depth`` BasicBlocks sharing one kernel map."""

    def __init__(self, cin: int, cout: int, depth: int, make: _Builder, index: int):
        super().__init__()
        self.down = nn.Sequential(
            make.spike(),
            SparseConv3d(
                cin,
                cout,
                2,
                2,
                indice_key=f"spconv{index}",
                backend=make.backend,
                event_driven=make.event_driven,
            ),
            make.bn(cout),
        )
        self.blocks = nn.Sequential(
            *(BasicBlock(cout, make, f"subm{index + 1}") for _ in range(depth))
        )

    def forward(self, x: SparseTensor) -> SparseTensor:
        return self.blocks(self.down(x))


class E3DSNN(nn.Module):
    """E-3DSNN classifier: SparseTensor ``[N, Cin]`` -> logits ``[1, B, num_classes]``.

    Args:
        num_classes: number of classes (40 for ModelNet40).
        in_channels: voxel feature count (6: xyz + normal).
        channels: stage widths ``C0..C3``; the stem has ``stem_channels`` (default ``C0``).
        depths: BasicBlocks per stage.
        D: the multi-spike neuron's largest integer spike.
        event_driven: convolutions skip the voxels whose input spikes are all zero (same result,
            less work); their inputs are spikes: the spike voxel code or a spiking layer's output.
        backend: sparse convolution backend (see :func:`neuroflow.layers.sparse_conv`).
        bn_momentum: BatchNorm running-statistics momentum; the reference's 0.01 needs a few hundred
            steps before evaluation is meaningful, so very short runs may want 0.1.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 6,
        channels=(16, 32, 64, 128),
        depths=(1, 1, 1, 1),
        stem_channels: int | None = None,
        D: int = 4,
        event_driven: bool = True,
        backend: str = "auto",
        bn_momentum: float = 0.01,
    ):
        super().__init__()
        if not 0.0 < float(bn_momentum) <= 1.0:
            raise InvalidArgumentError(
                f"e3dsnn: bn_momentum must be in (0, 1], got bn_momentum={bn_momentum!r}"
            )
        channels, depths = [int(c) for c in channels], [int(d) for d in depths]
        if len(channels) != len(depths) or not channels or min(channels) < 1 or min(depths) < 0:
            raise InvalidArgumentError(
                "e3dsnn: channels and depths must be equally long lists of "
                "positive / non-negative ints, "
                f"got channels={channels}, depths={depths}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise InvalidArgumentError(
                f"e3dsnn: num_classes must be a positive int, got {num_classes!r}"
            )
        stem = channels[0] if stem_channels is None else int(stem_channels)
        make = _Builder(D, event_driven, backend, float(bn_momentum))
        self.in_channels = in_channels
        self.stem = nn.Sequential(
            # its input, the spike voxel code, is integer spikes too: event-driven like the others
            # (in inference the event kernel then serves this narrow layer, several times faster
            # than the non-skipping path: docs/benchmarks.md)
            make.subm(in_channels, stem, "stem"),
            make.bn(stem),
            *make.spiking_subm(stem, "stem"),
            *make.spiking_subm(stem, "stem"),
        )
        widths = [stem, *channels]
        self.stages = nn.Sequential(
            *(DownStage(widths[i], widths[i + 1], depths[i], make, i) for i in range(len(channels)))
        )
        self.head = SubMConv3d(channels[-1], num_classes, 1, bias=True, backend=backend)
        self.pool = SparseGlobalAvgPool()
        self.apply(_init_weights)

    def forward(self, x: SparseTensor) -> torch.Tensor:
        if not isinstance(x, SparseTensor):
            raise InputShapeError(
                f"e3dsnn expects a SparseTensor of voxels, got {type(x).__name__}"
            )
        if x.num_channels != self.in_channels:
            raise InputShapeError(
                f"e3dsnn expects {self.in_channels} features per voxel, "
                f"got features of shape {tuple(x.features.shape)}"
            )
        return self.pool(self.head(self.stages(self.stem(x))))[None]


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, SubMConv3d):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _in_channels(input_shape: tuple[int, ...]) -> int:
    if len(input_shape) != 1 or int(input_shape[0]) < 1:
        raise InvalidArgumentError(
            f"e3dsnn: input_shape must be (features per voxel,), got {tuple(input_shape)}"
        )
    return int(input_shape[0])


@MODELS.register("e3dsnn")
def e3dsnn(
    num_classes: int,
    input_shape: tuple[int, ...] = (6,),
    channels: list[int] = (16, 32, 64, 128),
    depths: list[int] = (1, 1, 1, 1),
    stem_channels: int | None = None,
    D: int = 4,
    event_driven: bool = True,
    backend: str = "auto",
    bn_momentum: float = 0.01,
) -> E3DSNN:
    """E-3DSNN of any size (``channels``, ``depths``); see :class:`E3DSNN`."""
    return E3DSNN(
        num_classes,
        _in_channels(input_shape),
        channels,
        depths,
        stem_channels,
        D,
        event_driven,
        backend,
        bn_momentum,
    )


@MODELS.register("e3dsnn_t")
def e3dsnn_t(
    num_classes: int,
    input_shape: tuple[int, ...] = (6,),
    D: int = 4,
    event_driven: bool = True,
    backend: str = "auto",
) -> E3DSNN:
    """E-3DSNN-T: channels 16/32/64/128, depth 1.

    1,874,216 parameters at 40 classes, 6 features.
    """
    return e3dsnn(
        num_classes, input_shape, (16, 32, 64, 128), (1, 1, 1, 1), None, D, event_driven, backend
    )


@MODELS.register("e3dsnn_s")
def e3dsnn_s(
    num_classes: int,
    input_shape: tuple[int, ...] = (6,),
    D: int = 4,
    event_driven: bool = True,
    backend: str = "auto",
) -> E3DSNN:
    """E-3DSNN-S: channels 24/48/96/160, depth 1.

    3,271,144 parameters at 40 classes, 6 features.
    """
    return e3dsnn(
        num_classes, input_shape, (24, 48, 96, 160), (1, 1, 1, 1), None, D, event_driven, backend
    )

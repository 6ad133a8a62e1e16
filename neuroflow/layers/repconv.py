"""RepConv: a re-parameterisable 3x3 convolution (Spike-driven Transformer V2, Yao et al. 2024).

Training form (per time step, input ``[N, C_in, H, W]``, output ``[N, C_out, H, W]``)::

    conv1x1 (C_in -> C_in, no bias) -> BN_pad -> depthwise 3x3 (no padding, no bias)
        -> pointwise 1x1 (C_in -> C_out, no bias) -> BN

``BN_pad`` pads its output by one pixel with the value BN gives for a zero input, which is what a
zero-padded *input* would produce. With that padding every stage is linear in the input and the
borders agree, so in eval mode the whole chain equals one 3x3 convolution (padding 1, with bias)
applied to the input. :meth:`RepConv.reparameterize_` swaps the chain for that convolution, so at
inference the only synaptic layer sees the block's (spike) input.

Parameters: ``2 C_in^2`` (if ``C_out = C_in``; ``C_in^2 + C_in C_out`` in general) ``+ 9 C_in``
weights and ``2 C_in + 2 C_out`` BN affine parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neuroflow.errors import NeuroflowError


def batchnorm_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BN as ``y = scale * x + shift`` (per channel, from the running statistics)."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.affine:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.affine:
        shift = shift + bn.bias
    return scale, shift


class RepConv(nn.Module):
    """3x3 convolution trained as ``1x1 -> BN -> dw3x3 -> 1x1 -> BN``, fused to one conv for
    inference.

    Input ``[N, C_in, H, W]`` -> ``[N, C_out, H, W]`` (stride 1, same size).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv1x1 = nn.Conv2d(in_channels, in_channels, 1, bias=False)
        self.bn_pad = nn.BatchNorm2d(in_channels)
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, groups=in_channels, bias=False)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.fused: nn.Conv2d | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:
            return self.fused(x)
        z = self.bn_pad(self.conv1x1(x))
        # border value = BN of a zero input (running statistics, as in the reference code), so the
        # chain stays equal to a zero-padded 3x3 convolution of x once BN uses running statistics
        border = batchnorm_scale_shift(self.bn_pad)[1].detach().view(1, -1, 1, 1)
        z = F.pad(z - border, (1, 1, 1, 1)) + border
        return self.bn(self.pointwise(self.depthwise(z)))

    @torch.no_grad()
    def fused_conv(self) -> nn.Conv2d:
        """The single 3x3 convolution (padding 1, bias) equal to the eval-mode training form.

        With ``s1, b1`` / ``s2, b2`` the eval BN scales and shifts, ``W1`` the 1x1, ``D`` the
        depthwise and ``P`` the pointwise weights:
        ``W[o, i, k] = s2[o] sum_m P[o, m] D[m, k] s1[m] W1[m, i]`` and
        ``b[o] = s2[o] sum_m P[o, m] b1[m] sum_k D[m, k] + b2[o]``.
        """
        if self.fused is not None:
            return self.fused
        s1, b1 = batchnorm_scale_shift(self.bn_pad)
        s2, b2 = batchnorm_scale_shift(self.bn)
        w1 = self.conv1x1.weight[:, :, 0, 0] * s1[:, None]  # [m, i]
        dw = self.depthwise.weight[:, 0]  # [m, 3, 3]
        pw = self.pointwise.weight[:, :, 0, 0] * s2[:, None]  # [o, m]
        weight = torch.einsum("om,mhw,mi->oihw", pw, dw, w1)
        bias = pw @ (b1 * dw.sum(dim=(1, 2))) + b2
        conv = nn.Conv2d(self.in_channels, self.out_channels, 3, padding=1, bias=True)
        conv = conv.to(device=weight.device, dtype=weight.dtype)
        conv.weight.copy_(weight)
        conv.bias.copy_(bias)
        return conv

    def reparameterize_(self) -> None:
        """Replace the training chain by :meth:`fused_conv` in place.

        Inference only; irreversible.
        """
        if self.training:
            raise NeuroflowError(
                "RepConv.reparameterize_ needs eval mode: BN must use running statistics"
            )
        conv = self.fused_conv()
        for name in ("conv1x1", "bn_pad", "depthwise", "pointwise", "bn"):
            delattr(self, name)
        self.fused = conv

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, fused={self.fused is not None}"

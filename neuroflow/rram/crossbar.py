"""An RRAM crossbar computing a matrix-vector product in place, with bit-serial inputs and
per-column ADCs.

A crossbar of ``rows x cols`` cells stores signed weights in one of two ways:

- ``"differential"``: two cells per weight, ``W = G+ - G-`` (uS); the column pair's currents are
  subtracted before the ADC (differential sensing);
- ``"offset"``: one cell per weight and a reference of ``offset_us`` per row,
  ``W = G - offset_us`` (the reference current is subtracted before the ADC).

Inputs are non-negative integers of ``input_bits`` bits applied **bit-serially**: read ``b`` drives
row ``i`` with bit ``b`` of ``x_i`` (read voltage on or off), the column currents
``I_b = sum_i bit_b(x_i) W_ij`` are digitised, and the results are shifted and added,
``y = sum_b 2**b ADC(I_b)``. Currents are in uS x (read voltage) units: with a unit read voltage
``y`` equals ``x @ W`` when the read is ideal.

**Read noise** is multiplicative per cell and redrawn at every read
(:func:`neuroflow.rram.device.read`). Because a sum of independent Gaussians is Gaussian, a
column's noisy current ``sum_i x_i G_ij (1 + sigma eps_ij)`` has exactly the distribution
``sum_i x_i G_ij + sigma sqrt(sum_i x_i**2 G_ij**2) eps_j``: the default ``noise="column"``
draws one normal per column and read instead of one per cell (same distribution, rows x fewer
draws);
``noise="cell"`` draws every cell (the reference, for tests).

**ADC**: ``adc_bits`` (``None`` = ideal) signed codes ``round(I / lsb)`` clipped to
``[-2**(bits-1), 2**(bits-1) - 1]`` with ``lsb = full_scale / 2**(bits-1)``; ``full_scale``
defaults to the largest column's ``sum_i |W_ij|`` (the current with every row on).

**Not modelled**: IR drop on the word and bit lines (wire resistance is taken as 0, so a column's
current is the exact sum of its cells' currents), sneak paths, the read voltage's own noise, and
ADC offset or non-linearity.
"""

from __future__ import annotations

from typing import Literal

import torch

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.rram.device import read

NOISE_MODES = ("column", "cell")


def adc_quantise(
    current: torch.Tensor, bits: int | None, full_scale: torch.Tensor | float
) -> torch.Tensor:
    """A signed ``bits``-bit ADC of full scale ``full_scale`` (per column or scalar); the value the
    digital side sees (code x lsb). ``bits=None`` returns ``current`` unchanged."""
    if bits is None:
        return current
    half = 2 ** (int(bits) - 1)
    lsb = torch.as_tensor(full_scale, dtype=current.dtype, device=current.device) / half
    lsb = torch.where(lsb > 0, lsb, torch.ones_like(lsb))  # an all-zero column reads 0 anyway
    return torch.clamp(torch.round(current / lsb), -half, half - 1) * lsb


def check_input_bits(x: torch.Tensor, bits: int) -> None:
    """``x`` must hold integers in ``[0, 2**bits - 1]``; else an error naming ``input_bits``."""
    if x.numel() == 0:
        return
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 2**bits - 1 or not torch.equal(x, torch.round(x)):
        raise InvalidArgumentError(
            f"crossbar input must be integers in [0, {2**bits - 1}] for input_bits={bits}, got "
            f"values in [{lo:g}, {hi:g}]"
            + ("" if torch.equal(x, torch.round(x)) else " (not integers)")
        )


class Crossbar:
    """A programmed crossbar. Conductance tensors are ``[rows, cols]`` uS.

    Args:
        g_pos: the (positive) cells.
        g_neg: the negative cells of a differential pair (``scheme="differential"``).
        scheme: ``"differential"`` or ``"offset"``.
        offset_us: the reference conductance of the offset scheme.
        read_noise: relative read-noise std (redrawn every read).
        input_bits: bits per input, applied bit-serially (>= 1).
        adc_bits: per-column ADC precision, ``None`` = ideal.
        adc_full_scale: ADC range (uS x read voltage), ``None`` = the largest column ``sum |W|``.
        noise: ``"column"`` (exact in distribution, fast) or ``"cell"`` (every cell drawn).
    """

    def __init__(
        self,
        g_pos: torch.Tensor,
        g_neg: torch.Tensor | None = None,
        scheme: Literal["differential", "offset"] = "differential",
        offset_us: float = 0.0,
        read_noise: float = 0.02,
        input_bits: int = 4,
        adc_bits: int | None = None,
        adc_full_scale: float | None = None,
        noise: Literal["column", "cell"] = "column",
    ):
        if g_pos.dim() != 2:
            raise InputShapeError(f"crossbar: g_pos must be [rows, cols], got {list(g_pos.shape)}")
        if scheme not in ("differential", "offset"):
            raise InvalidArgumentError(
                f"crossbar: scheme must be 'differential' or 'offset', got {scheme!r}"
            )
        if scheme == "differential":
            if g_neg is None or g_neg.shape != g_pos.shape:
                raise InvalidArgumentError(
                    "crossbar: scheme='differential' needs g_neg of the same shape as g_pos "
                    f"{list(g_pos.shape)}, got {None if g_neg is None else list(g_neg.shape)}"
                )
        if bool((g_pos < 0).any()) or (g_neg is not None and bool((g_neg < 0).any())):
            raise InvalidArgumentError("crossbar: conductances must be >= 0 uS")
        if int(input_bits) != input_bits or input_bits < 1:
            raise InvalidArgumentError(
                f"crossbar: input_bits must be an integer >= 1, got {input_bits!r}"
            )
        if adc_bits is not None and (int(adc_bits) != adc_bits or adc_bits < 1):
            raise InvalidArgumentError(
                f"crossbar: adc_bits must be an integer >= 1 or None, got {adc_bits!r}"
            )
        if read_noise < 0:
            raise InvalidArgumentError(f"crossbar: read_noise must be >= 0, got {read_noise}")
        if noise not in NOISE_MODES:
            raise InvalidArgumentError(
                f"crossbar: noise must be one of {NOISE_MODES}, got {noise!r}"
            )
        self.g_pos = g_pos
        self.g_neg = g_neg if scheme == "differential" else None
        self.scheme = scheme
        self.offset_us = float(offset_us)
        self.read_noise = float(read_noise)
        self.input_bits = int(input_bits)
        self.adc_bits = None if adc_bits is None else int(adc_bits)
        self.noise = noise
        # the arrays are fixed once programmed: the weights and squared conductances are kept
        self._weights = (
            self.g_pos - self.g_neg if scheme == "differential" else self.g_pos - self.offset_us
        )
        if scheme == "differential":
            self._g2 = self.g_pos**2 + self.g_neg**2
        else:
            self._g2 = self.g_pos**2 + self.offset_us**2  # the reference cell is read too
        w = self._weights
        self.adc_full_scale = (
            w.abs().sum(0).max()
            if adc_full_scale is None
            else torch.tensor(float(adc_full_scale), dtype=w.dtype)
        )
        #: reads performed so far (one per input bit per MVM row vector), for energy accounting
        self.reads = 0

    @property
    def rows(self) -> int:
        return self.g_pos.shape[0]

    @property
    def cols(self) -> int:
        return self.g_pos.shape[1]

    def weights(self) -> torch.Tensor:
        """The noise-free signed weights ``[rows, cols]`` (uS)."""
        return self._weights

    def _squared_conductance(self) -> torch.Tensor:
        """Squared conductances read per weight, summed (noise variance per unit input)."""
        return self._g2

    def _one_read(self, bits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Column currents ``[B, cols]`` of one read driven by 0/1 ``bits [B, rows]``."""
        if self.read_noise == 0:
            return bits @ self.weights()
        if self.noise == "column":
            mean = bits @ self.weights()
            std = self.read_noise * torch.sqrt(bits @ self._squared_conductance())
            eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
            return mean + std * eps
        out = torch.empty(bits.shape[0], self.cols, dtype=bits.dtype)
        for b in range(bits.shape[0]):  # every cell redrawn per sample: the reference path
            g = read(self.g_pos, self.read_noise, generator)
            if self.scheme == "differential":
                g = g - read(self.g_neg, self.read_noise, generator)
            else:
                ref = read(torch.full_like(self.g_pos, self.offset_us), self.read_noise, generator)
                g = g - ref
            out[b] = bits[b] @ g
        return out

    def mvm(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``y [B, cols] = sum_b 2**b ADC(bit_b(x) @ W_read)`` for ``x [B, rows]`` (or ``[rows]``).

        ``x`` must hold integers in ``[0, 2**input_bits - 1]``; float64 math.
        """
        squeeze = x.dim() == 1
        if squeeze:
            x = x.unsqueeze(0)
        if x.dim() != 2 or x.shape[1] != self.rows:
            raise InputShapeError(
                f"crossbar input x must be [B, {self.rows}] (a value per row), got {list(x.shape)}"
                + (
                    f": {x.shape[-1]} inputs are wider than the crossbar's {self.rows} rows"
                    if x.dim() >= 1 and x.shape[-1] > self.rows
                    else ""
                )
            )
        check_input_bits(x, self.input_bits)
        xi = x.to(torch.int64)
        y = torch.zeros(x.shape[0], self.cols, dtype=self.g_pos.dtype)
        for b in range(self.input_bits):
            plane = (xi >> b) & 1
            self.reads += x.shape[0]
            if not bool(plane.any()):
                continue  # no row driven: every column reads exactly 0 (noise is multiplicative)
            current = self._one_read(plane.to(self.g_pos.dtype), generator)
            y += (2**b) * adc_quantise(current, self.adc_bits, self.adc_full_scale)
        return y.squeeze(0) if squeeze else y


def program_crossbar(
    rows: int,
    cols: int,
    device,
    generator: torch.Generator,
    scheme: Literal["differential", "offset"] = "differential",
    drift_s: float = 0.0,
    **options,
) -> Crossbar:
    """Program a ``rows x cols`` crossbar from ``device`` (a :class:`~neuroflow.rram.DeviceConfig`):
    two arrays for ``"differential"`` (G+ drawn first), one for ``"offset"`` with the reference at
    the forming mean, read ``drift_s`` seconds after programming. ``options`` go to
    :class:`Crossbar` (read noise comes from ``device``)."""
    from neuroflow.rram.device import drift, program

    g_pos = drift(program((rows, cols), device, generator), drift_s, device)
    if scheme == "differential":
        g_neg = drift(program((rows, cols), device, generator), drift_s, device)
        return Crossbar(g_pos, g_neg, "differential", read_noise=device.read_noise, **options)
    return Crossbar(
        g_pos, None, "offset", offset_us=device.mean_us, read_noise=device.read_noise, **options
    )

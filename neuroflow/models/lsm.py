"""``lsm``: a liquid state machine whose random weights come from an RRAM device model, with a
trained readout (Lin et al., "Resistive memory-based zero-shot liquid state machine for
multimodal event data learning", Nat. Comput. Sci. 2025; arXiv 2307.00771).

Structure, for event frames ``[T, B, C, H, W]``::

    crop       centre crop (``crop`` x ``crop``), keep ``channels``, flatten      [T, B, D]
    input      binary events (``binarize_input``) or counts clipped to 2**input_bits - 1
    project    u = x @ W_in x weight_scale: an RRAM crossbar read bit-serially       [T, B, N]
    reservoir  v = decay v + u + ADC(s(t-1) @ W_rec); s = v >= threshold; reset to 0  [T, B, N]
    features   spike counts per neuron (per time bin with ``time_bins`` > 1) / steps  [B, F]
    readout    Linear or a small MLP (the only trained part)                         [1, B, classes]

Paper settings (github MrLinNing/MemristorLSM, ``LSM-NMNIST``): 16 x 16 centre crop of one
polarity (256 inputs), 50 time steps, 200 neurons, decay 0.9, threshold 5, weight scale 0.07 per
uS. What the paper leaves open is a parameter: connection densities (the formed share of each
crossbar), the excitatory share, the recurrent scale.

**Weights.** ``weights="rram"`` programs the crossbars from :class:`~neuroflow.rram.DeviceConfig`
(forming distribution, unformed cells, quantisation, faults, drift) and reads them with
multiplicative read noise redrawn at every read, bit-serial inputs and per-column ADCs.
``weights="software"`` draws the *same* chip (same seed, same forming draws and connectivity)
with every non-ideality off: the software twin of the same network. Input weights are signed
through differential pairs ``G+ - G-`` (or ``G - mean`` with ``input_scheme="offset"``); a
recurrent weight is one cell whose sign is its presynaptic neuron's (excitatory or inhibitory:
Dale's law, ``recurrent_scheme="dale"``) or a differential pair (``"differential"``).

The reservoir holds no trainable parameter (its weights are buffers, saved in checkpoints); the
readout trains with the ordinary trainer. Output ``[1, B, classes]`` logits (one "time step").
``features="input"`` skips the reservoir and reads out the cropped input counts: the baseline the
reservoir must beat; ``"both"`` concatenates the two.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from neuroflow.errors import InputShapeError, InvalidArgumentError
from neuroflow.models.registry import MODELS
from neuroflow.neurons.functional import multistep
from neuroflow.rram import (
    DeviceConfig,
    make_generator,
    program_crossbar,
    run_reservoir,
    run_reservoir_torch,
)
from neuroflow.rram.device import drift, program
from neuroflow.rram.reservoir import ReservoirParams


def centre_crop(x: torch.Tensor, size: int | None) -> torch.Tensor:
    """The central ``size x size`` window of ``x [..., H, W]`` (``None``: unchanged)."""
    if size is None:
        return x
    h, w = x.shape[-2:]
    if size > min(h, w):
        hint = (
            " (one-row inputs, e.g. N-TIDIGITS' 1 x 64 cochlea, take crop: null)" if h == 1 else ""
        )
        raise InvalidArgumentError(f"lsm: crop={size} is larger than the {h}x{w} frames{hint}")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


class LSM(nn.Module):
    """Liquid state machine on RRAM weights with a trained readout (see the module docstring).

    Args:
        num_classes, input_shape: from the dataset; ``input_shape = (C, H, W)``.
        crop: centre crop size (``None``: the whole frame); channels: input channels kept.
        binarize_input: one event per pixel and step at most (else counts, clipped to the input
            bits).
        neurons, decay, threshold, weight_scale: the reservoir (``weight_scale`` per uS).
        input_density, recurrent_density: formed share of the input and recurrent crossbars.
        excitatory_fraction: share of excitatory reservoir neurons (Dale's law scheme).
        recurrent_scale: multiplies ``weight_scale`` for the recurrent weights.
        input_scheme, recurrent_scheme: how signed weights are stored.
        weights: ``"rram"`` (device non-idealities) or ``"software"`` (the ideal twin).
        mean_us, std_us, distribution, levels, read_noise, stuck_on_rate, stuck_off_rate,
            drift_nu, drift_time_s: the device (see :class:`~neuroflow.rram.DeviceConfig`).
        input_bits, adc_bits: bit-serial input width and per-column ADC precision (``None``: ideal).
        chip_seed: seeds the programmed chip (and its read-noise stream).
        time_bins: spike counts per neuron (and input counts, for ``features="input"``) in this
            many equal time bins.
        features: ``"reservoir"``, ``"input"`` (raw cropped counts) or ``"both"``.
        readout: ``"linear"`` or ``"mlp"`` (one hidden GELU layer of ``hidden`` units).
        backend: ``"auto"``/``"numba"`` (compiled time loop) or ``"torch"`` (plain loop).
    """

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        crop: int | None = 16,
        channels: list[int] = (0,),
        binarize_input: bool = True,
        neurons: int = 200,
        decay: float = 0.9,
        threshold: float = 5.0,
        weight_scale: float = 0.07,
        input_density: float = 1.0,
        recurrent_density: float = 0.1,
        excitatory_fraction: float = 0.8,
        recurrent_scale: float = 1.0,
        input_scheme: Literal["differential", "offset"] = "differential",
        recurrent_scheme: Literal["dale", "differential"] = "dale",
        weights: Literal["rram", "software"] = "rram",
        distribution: Literal["gaussian", "lognormal", "uniform"] = "gaussian",
        mean_us: float = 14.25,
        std_us: float = 2.46,
        levels: int | None = None,
        read_noise: float = 0.02,
        stuck_on_rate: float = 0.0,
        stuck_off_rate: float = 0.0,
        drift_nu: float = 0.0,
        drift_time_s: float = 0.0,
        input_bits: int = 4,
        adc_bits: int | None = None,
        chip_seed: int = 0,
        time_bins: int = 1,
        features: Literal["reservoir", "input", "both"] = "reservoir",
        readout: Literal["linear", "mlp"] = "linear",
        hidden: int = 64,
        backend: Literal["auto", "numba", "torch"] = "auto",
    ):
        super().__init__()
        if len(input_shape) != 3:
            raise InvalidArgumentError(f"lsm: input_shape must be (C, H, W), got {input_shape}")
        c, h, w = (int(s) for s in input_shape)
        if not channels or any(not 0 <= ch < c for ch in channels):
            raise InvalidArgumentError(
                f"lsm: channels must be indices in [0, {c}), got {list(channels)}"
            )
        for name, value in (("neurons", neurons), ("time_bins", time_bins), ("hidden", hidden)):
            if int(value) != value or value < 1:
                raise InvalidArgumentError(f"lsm: {name} must be a positive integer, got {value!r}")
        for name, value in (
            ("input_density", input_density),
            ("recurrent_density", recurrent_density),
            ("excitatory_fraction", excitatory_fraction),
        ):
            if not 0.0 <= value <= 1.0:
                raise InvalidArgumentError(f"lsm: {name} must be in [0, 1], got {value!r}")
        if not 0.0 <= decay <= 1.0:
            raise InvalidArgumentError(f"lsm: decay must be in [0, 1], got {decay!r}")
        if weights not in ("rram", "software"):
            raise InvalidArgumentError(
                f"lsm: weights must be 'rram' or 'software', got {weights!r}"
            )
        if features not in ("reservoir", "input", "both"):
            raise InvalidArgumentError(
                f"lsm: features must be reservoir/input/both, got {features!r}"
            )
        if backend not in ("auto", "numba", "torch"):
            raise InvalidArgumentError(f"lsm: backend must be auto/numba/torch, got {backend!r}")
        self.input_shape = (c, h, w)
        self.crop = crop
        self.channels = [int(ch) for ch in channels]
        side = (h, w) if crop is None else (int(crop), int(crop))
        centre_crop(torch.zeros(1, h, w), crop)  # validates crop
        self.input_size = len(self.channels) * side[0] * side[1]
        self.binarize_input = bool(binarize_input)
        self.neurons = int(neurons)
        self.decay = float(decay)
        self.threshold = float(threshold)
        self.weight_scale = float(weight_scale)
        self.recurrent_scale = float(recurrent_scale)
        self.weights_kind = weights
        self.input_bits = int(input_bits)
        self.adc_bits = None if adc_bits is None else int(adc_bits)
        self.time_bins = int(time_bins)
        self.features_kind = features
        self.backend = backend
        self.chip_seed = int(chip_seed)

        ideal = weights == "software"
        device = DeviceConfig(
            distribution=distribution,
            mean_us=mean_us,
            std_us=std_us,
            levels=None if ideal else levels,
            read_noise=0.0 if ideal else read_noise,
            stuck_on_rate=0.0 if ideal else stuck_on_rate,
            stuck_off_rate=0.0 if ideal else stuck_off_rate,
            drift_nu=0.0 if ideal else drift_nu,
        )
        self.device = device
        self.drift_time_s = float(drift_time_s)
        generator = make_generator(self.chip_seed)
        n, d = self.neurons, self.input_size
        self.input_crossbar = program_crossbar(
            d,
            n,
            device.replace(unformed_fraction=1.0 - input_density),
            generator,
            scheme=input_scheme,
            input_bits=self.input_bits,
            adc_bits=None if ideal else self.adc_bits,
            drift_s=self.drift_time_s,
        )
        rec_device = device.replace(unformed_fraction=1.0 - recurrent_density)
        g_rec = drift(program((n, n), rec_device, generator), self.drift_time_s, device)
        g_rec.fill_diagonal_(0.0)  # no self-connections
        n_exc = int(round(excitatory_fraction * n))
        sign = torch.ones(n, dtype=torch.float64)
        sign[n_exc:] = -1.0  # neurons n_exc.. are inhibitory: their outgoing weights are negative
        scale_rec = self.weight_scale * self.recurrent_scale
        if recurrent_scheme == "differential":
            g_neg = drift(program((n, n), rec_device, generator), self.drift_time_s, device)
            g_neg.fill_diagonal_(0.0)
            w_rec = scale_rec * (g_rec - g_neg)
            w_var = (device.read_noise * scale_rec) ** 2 * (g_rec**2 + g_neg**2)
        else:
            w_rec = scale_rec * sign[:, None] * g_rec
            w_var = (device.read_noise * scale_rec) ** 2 * g_rec**2
        self.register_buffer("sign", sign.float())
        self.register_buffer("w_in", (self.weight_scale * self.input_crossbar.weights()).float())
        self.register_buffer("w_rec", w_rec.float())
        self.register_buffer("w_rec_var", w_var.float())
        if self.adc_bits is not None and not ideal:
            full_scale = w_rec.abs().sum(0).max()
            lsb = torch.full((n,), float(full_scale) / 2 ** (self.adc_bits - 1))
            self.register_buffer("rec_lsb", lsb.float())
        else:
            self.rec_lsb = None
        self._noise = make_generator(self.chip_seed + 1)  # read noise: a stream per chip

        width = {"reservoir": n * self.time_bins, "input": d, "both": n * self.time_bins + d}[
            features
        ]
        self.feature_size = width
        if readout == "linear":
            self.readout = nn.Linear(width, num_classes)
        elif readout == "mlp":
            self.readout = nn.Sequential(
                nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, num_classes)
            )
        else:
            raise InvalidArgumentError(f"lsm: readout must be 'linear' or 'mlp', got {readout!r}")
        self.num_classes = num_classes

    # ------------------------------------------------------------------ parts
    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` frames -> ``[T, B, D]`` crossbar inputs (integers)."""
        if x.dim() != 5 or tuple(x.shape[2:]) != self.input_shape:
            raise InputShapeError(
                f"lsm expects [T, B, {', '.join(map(str, self.input_shape))}], got {list(x.shape)}"
            )
        x = centre_crop(x[:, :, self.channels], self.crop).flatten(2)
        if self.binarize_input:
            return (x > 0).to(torch.float32)
        return torch.clamp(torch.round(x), 0, 2**self.input_bits - 1).to(torch.float32)

    def input_current(self, x: torch.Tensor) -> torch.Tensor:
        """The input projection ``[T, B, D] -> [T, B, N]`` (bit-serial crossbar reads on RRAM)."""
        steps, batch, d = x.shape
        if self.weights_kind == "software":
            return x @ self.w_in
        flat = x.reshape(steps * batch, d).to(torch.float64)
        current = self.input_crossbar.mvm(flat, self._noise) * self.weight_scale
        return current.to(torch.float32).reshape(steps, batch, self.neurons)

    def reservoir_from_input(self, x: torch.Tensor) -> torch.Tensor:
        """Reservoir spikes ``[T, B, N]`` (0/1 float32) for crossbar inputs ``x [T, B, D]``."""
        with torch.no_grad():
            u = self.input_current(x)
            noisy = self.weights_kind == "rram" and self.device.read_noise > 0
            eps = torch.randn(u.shape, generator=self._noise) if noisy else None
            w_var = self.w_rec_var if noisy else None
            qmax = 0 if self.rec_lsb is None else 2 ** (self.adc_bits - 1) - 1
            if not noisy:  # the registered neuron kind "lsm_reservoir" (step and fused kernel)
                params = ReservoirParams(self.decay, self.threshold, self.w_rec, self.rec_lsb, qmax)
                return multistep(u, None, params, backend=self.backend)[0]
            # read noise needs a draw per step: the kernel takes the draws as an input
            run = run_reservoir_torch if self.backend == "torch" else run_reservoir
            return run(u, self.w_rec, self.decay, self.threshold, w_var, eps, self.rec_lsb, qmax)

    def reservoir_spikes(self, x: torch.Tensor) -> torch.Tensor:
        """Reservoir spikes ``[T, B, N]`` (0/1 float32) for frames ``x [T, B, C, H, W]``."""
        return self.reservoir_from_input(self.prepare_input(x))

    def spike_features(self, spikes: torch.Tensor) -> torch.Tensor:
        """Counts per neuron (or input) and time bin, divided by the bin length: ``[B, N x bins]``
        for ``spikes [T, B, N]``."""
        steps = spikes.shape[0]
        edges = torch.linspace(0, steps, self.time_bins + 1).round().long().tolist()
        parts = [spikes[a:b].sum(0) / max(1, b - a) for a, b in zip(edges[:-1], edges[1:])]
        return torch.cat(parts, dim=1)

    def features_from_input(self, x: torch.Tensor) -> torch.Tensor:
        """Readout features ``[B, F]`` for crossbar inputs ``x [T, B, D]`` (no gradient)."""
        with torch.no_grad():
            parts = []
            if self.features_kind in ("reservoir", "both"):
                parts.append(self.spike_features(self.reservoir_from_input(x)))
            if self.features_kind in ("input", "both"):
                parts.append(self.spike_features(x))
            return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Readout features ``[B, F]`` for frames ``x [T, B, C, H, W]`` (no gradient)."""
        return self.features_from_input(self.prepare_input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.features(x)).unsqueeze(0)


#: the registry entry (a class is a builder: its ``__init__`` keywords are the config keys)
lsm = MODELS.register("lsm")(LSM)

"""RRAM cell model: conductance after forming, unformed cells, quantisation, faults, drift and
read noise. Pure functions on tensors plus one validated parameter record, :class:`DeviceConfig`.

Units: conductances in microsiemens (uS), times in seconds.

One "chip" is the conductance array that :func:`program` returns for a seed; every read of it
(:func:`read`) draws fresh multiplicative noise ``G_read = G (1 + sigma * eps)``, ``eps ~ N(0, 1)``
per cell and read, as measured on the 40 nm macro of Lin et al. (sigma = 2%). The steps of
:func:`program`, in order:

1. **forming**: every cell draws its conductance from ``distribution`` (default Gaussian,
   mean 14.25 uS, std 2.46 uS; a draw below 0 is set to 0, a physical conductance);
2. **unformed cells**: a share ``unformed_fraction`` of the cells did not form at the programming
   voltage and stay at ``unformed_us`` (~0): this share sets the sparsity of a random network;
3. **quantisation** to ``levels`` evenly spaced conductances in ``[0, g_max_us]`` (formed cells);
4. **faults**: a share ``stuck_off_rate`` of the cells reads ``unformed_us`` and a share
   ``stuck_on_rate`` reads ``g_on_us`` whatever was programmed (disjoint draws);
5. **drift** (:func:`drift`, on demand): ``G(t) = G(t0) (t / t0) ** (-drift_nu)``, the power law
   used for resistive and phase-change memories (e.g. Ielmini, Semicond. Sci. Technol. 2016).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch

from neuroflow.errors import InvalidArgumentError

DISTRIBUTIONS = ("gaussian", "lognormal", "uniform")

#: a Gaussian forming distribution may put at most this share of its mass below 0 uS
MAX_NEGATIVE_MASS = 1e-3


@dataclass(frozen=True)
class DeviceConfig:
    """Parameters of one RRAM cell population (a crossbar's cells are drawn from it).

    Attributes:
        distribution: ``"gaussian"``, ``"lognormal"`` (of the given mean and std) or ``"uniform"``
            (mean +- sqrt(3) std).
        mean_us, std_us: conductance after forming (uS); defaults from the 40 nm macro.
        unformed_fraction: share of cells left unformed (in [0, 1]).
        unformed_us: conductance of an unformed or stuck-off cell (uS, >= 0).
        levels: number of programmable conductance levels in ``[0, g_max_us]``; ``None`` keeps the
            analogue value.
        g_max_us: the largest conductance (quantisation range and stuck-on value); ``None`` means
            ``mean_us + 4 std_us``.
        read_noise: relative standard deviation of the multiplicative read noise (>= 0).
        stuck_on_rate, stuck_off_rate: fault shares (each in [0, 1], sum <= 1).
        drift_nu: power-law drift exponent (>= 0); ``drift_t0_s`` the reference time (> 0, s).
    """

    distribution: Literal["gaussian", "lognormal", "uniform"] = "gaussian"
    mean_us: float = 14.25
    std_us: float = 2.46
    unformed_fraction: float = 0.0
    unformed_us: float = 0.0
    levels: int | None = None
    g_max_us: float | None = None
    read_noise: float = 0.02
    stuck_on_rate: float = 0.0
    stuck_off_rate: float = 0.0
    drift_nu: float = 0.0
    drift_t0_s: float = 1.0

    def __post_init__(self) -> None:
        validate_device(self)

    @property
    def g_on_us(self) -> float:
        """Conductance of a stuck-on cell and top of the quantisation range (uS)."""
        return self.g_max_us if self.g_max_us is not None else self.mean_us + 4.0 * self.std_us

    def replace(self, **changes) -> DeviceConfig:
        values = asdict(self)
        unknown = set(changes) - set(values)
        if unknown:
            raise InvalidArgumentError(
                f"DeviceConfig has no parameter(s) {sorted(unknown)} (known: {sorted(values)})"
            )
        values.update(changes)
        return DeviceConfig(**values)


def _share(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise InvalidArgumentError(f"rram device: {name} must be a share in [0, 1], got {value!r}")


def validate_device(cfg: DeviceConfig) -> None:
    """Raise :class:`InvalidArgumentError` naming the first bad parameter of ``cfg``."""
    if cfg.distribution not in DISTRIBUTIONS:
        raise InvalidArgumentError(
            f"rram device: distribution must be one of {DISTRIBUTIONS}, got {cfg.distribution!r}"
        )
    for name in ("mean_us", "std_us", "unformed_us", "read_noise", "drift_nu", "drift_t0_s"):
        value = getattr(cfg, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidArgumentError(
                f"rram device: {name} must be a finite number, got {value!r}"
            )
    if cfg.mean_us <= 0:
        raise InvalidArgumentError(
            f"rram device: mean_us must be > 0 (a conductance is not negative), got {cfg.mean_us}"
        )
    if cfg.std_us < 0:
        raise InvalidArgumentError(f"rram device: std_us must be >= 0, got {cfg.std_us}")
    if cfg.distribution == "gaussian" and cfg.std_us > 0:
        below = 0.5 * math.erfc(cfg.mean_us / (cfg.std_us * math.sqrt(2.0)))
        if below > MAX_NEGATIVE_MASS:
            raise InvalidArgumentError(
                f"rram device: a Gaussian with mean_us={cfg.mean_us} and std_us={cfg.std_us} puts "
                f"{below:.2%} of the cells at a negative conductance (at most "
                f"{MAX_NEGATIVE_MASS:.1%} allowed): raise mean_us, lower std_us or use "
                "distribution='lognormal'"
            )
    if cfg.distribution == "uniform" and cfg.mean_us - math.sqrt(3.0) * cfg.std_us < 0:
        raise InvalidArgumentError(
            f"rram device: a uniform distribution with mean_us={cfg.mean_us} and "
            f"std_us={cfg.std_us} starts below 0 uS (mean - sqrt(3) std must be >= 0)"
        )
    if cfg.unformed_us < 0:
        raise InvalidArgumentError(f"rram device: unformed_us must be >= 0, got {cfg.unformed_us}")
    if cfg.read_noise < 0:
        raise InvalidArgumentError(f"rram device: read_noise must be >= 0, got {cfg.read_noise}")
    for name in ("unformed_fraction", "stuck_on_rate", "stuck_off_rate"):
        _share(name, getattr(cfg, name))
    if cfg.stuck_on_rate + cfg.stuck_off_rate > 1.0:
        raise InvalidArgumentError(
            "rram device: stuck_on_rate + stuck_off_rate must be <= 1, got "
            f"{cfg.stuck_on_rate} + {cfg.stuck_off_rate}"
        )
    if cfg.levels is not None and (
        isinstance(cfg.levels, bool) or int(cfg.levels) != cfg.levels or cfg.levels < 2
    ):
        raise InvalidArgumentError(
            f"rram device: levels must be an integer >= 2 or None, got {cfg.levels!r}"
        )
    if cfg.g_max_us is not None and not (math.isfinite(cfg.g_max_us) and cfg.g_max_us > 0):
        raise InvalidArgumentError(
            f"rram device: g_max_us must be > 0 or None, got {cfg.g_max_us!r}"
        )
    if cfg.drift_nu < 0:
        raise InvalidArgumentError(f"rram device: drift_nu must be >= 0, got {cfg.drift_nu}")
    if cfg.drift_t0_s <= 0:
        raise InvalidArgumentError(f"rram device: drift_t0_s must be > 0, got {cfg.drift_t0_s}")


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (one chip = one seed)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def form(shape: tuple[int, ...], cfg: DeviceConfig, generator: torch.Generator) -> torch.Tensor:
    """Conductances right after forming (step 1), ``shape``, float64 uS, all >= 0."""
    if cfg.distribution == "gaussian":
        g = cfg.mean_us + cfg.std_us * torch.randn(shape, generator=generator, dtype=torch.float64)
    elif cfg.distribution == "lognormal":
        # log-space parameters that give the requested mean and std in linear space
        sigma2 = math.log1p((cfg.std_us / cfg.mean_us) ** 2)
        mu = math.log(cfg.mean_us) - 0.5 * sigma2
        z = torch.randn(shape, generator=generator, dtype=torch.float64)
        g = torch.exp(mu + math.sqrt(sigma2) * z)
    else:
        half = math.sqrt(3.0) * cfg.std_us
        u = torch.rand(shape, generator=generator, dtype=torch.float64)
        g = cfg.mean_us - half + 2.0 * half * u
    return g.clamp_min_(0.0)


def quantise(g: torch.Tensor, levels: int, g_max_us: float) -> torch.Tensor:
    """Round conductances to the nearest of ``levels`` evenly spaced values in ``[0, g_max_us]``
    (values above ``g_max_us`` saturate)."""
    step = g_max_us / (levels - 1)
    return torch.round(g.clamp(0.0, g_max_us) / step) * step


def program(shape: tuple[int, ...], cfg: DeviceConfig, generator: torch.Generator) -> torch.Tensor:
    """One programmed array (steps 1-4 of the module docstring): ``shape`` float64 uS.

    The random draws are made in a fixed order (forming, unformed mask, fault draw), so a seed
    gives the same chip whatever the parameters; a cell's fault draw is independent of its
    conductance.
    """
    g = form(shape, cfg, generator)
    unformed = torch.rand(shape, generator=generator, dtype=torch.float64) < cfg.unformed_fraction
    if cfg.levels is not None:
        g = quantise(g, int(cfg.levels), cfg.g_on_us)
    g = torch.where(unformed, torch.full_like(g, cfg.unformed_us), g)
    fault = torch.rand(shape, generator=generator, dtype=torch.float64)
    g = torch.where(fault < cfg.stuck_off_rate, torch.full_like(g, cfg.unformed_us), g)
    stuck_on = (fault >= cfg.stuck_off_rate) & (fault < cfg.stuck_off_rate + cfg.stuck_on_rate)
    return torch.where(stuck_on, torch.full_like(g, cfg.g_on_us), g)


def drift(g: torch.Tensor, t_s: float, cfg: DeviceConfig) -> torch.Tensor:
    """Conductances ``t_s`` seconds after programming: ``g (t / t0) ** -nu`` for ``t > t0``
    (unchanged before ``t0``)."""
    if not math.isfinite(t_s) or t_s < 0:
        raise InvalidArgumentError(f"rram device: drift time t_s must be >= 0 s, got {t_s!r}")
    if cfg.drift_nu == 0 or t_s <= cfg.drift_t0_s:
        return g
    return g * (t_s / cfg.drift_t0_s) ** (-cfg.drift_nu)


def read(
    g: torch.Tensor, read_noise: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One read of every cell: ``g (1 + read_noise * eps)``, a fresh ``eps ~ N(0, 1)`` per cell."""
    if read_noise < 0:
        raise InvalidArgumentError(f"rram device: read_noise must be >= 0, got {read_noise}")
    if read_noise == 0:
        return g
    eps = torch.randn(g.shape, generator=generator, dtype=g.dtype, device=g.device)
    return g * (1.0 + read_noise * eps)

"""Hardware profiles: per-operation energies (pJ) read from ``hardware/<name>.yaml``.

Schema (every number is a ``{value, source}`` pair, ``value >= 0``; unknown keys are errors)::

    name: loihi                      # must equal the file name
    description: one line
    default_precision: native        # a key of precisions
    precisions:                      # at least one; a profile's arithmetic variants
      native:
        mac: {value: 4.6, source: "..."}   # pJ per multiply-accumulate (real-valued inputs)
        ac:  {value: 23.6, source: "..."}  # pJ per accumulate / synaptic operation
    neuron_update: {value: 52.0, source: "..."}   # pJ per neuron state update
    spike: {value: 1.7, source: "..."}            # pJ per spike emitted
    limits:                          # optional core limits, each {value, source}
      cores: {value: 128, source: "..."}
    notes: optional free text

``--hardware NAME`` resolves a profile of the repository's ``hardware/`` folder by name, or takes
a path to any YAML file in this schema (e.g. an RRAM macro with your own per-operation energy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from neuroflow.errors import ConfigError
from neuroflow.registry import Registry

#: the repository's ``hardware/`` folder (profiles are data files beside the package)
HARDWARE_DIR = Path(__file__).resolve().parents[2] / "hardware"

_TOP_KEYS = {
    "name",
    "description",
    "default_precision",
    "precisions",
    "neuron_update",
    "spike",
    "limits",
    "notes",
}
_REQUIRED = ("name", "description", "default_precision", "precisions", "neuron_update", "spike")
_OPS = ("mac", "ac")


@dataclass(frozen=True)
class HardwareProfile:
    """Resolved energies (pJ) of one profile at one precision, with their sources."""

    name: str
    description: str
    precision: str
    mac_pj: float
    ac_pj: float
    neuron_update_pj: float
    spike_pj: float
    sources: dict[str, str] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)
    precisions: tuple[str, ...] = ()
    path: str = ""


def _number(raw, where: str, path: Path) -> tuple[float, str]:
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: field {where!r} must be a mapping {{value, source}}, got {raw!r}"
        )
    unknown = set(raw) - {"value", "source"}
    if unknown:
        raise ConfigError(
            f"{path}: field {where!r} has unknown key(s) {sorted(unknown)} (expected value, source)"
        )
    if "value" not in raw or raw["value"] is None:
        raise ConfigError(f"{path}: field '{where}.value' is missing")
    value = raw["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{path}: field '{where}.value' must be a finite number, got {value!r}")
    if value < 0:
        raise ConfigError(f"{path}: field '{where}.value' must be >= 0, got {value!r}")
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(
            f"{path}: field '{where}.source' is missing (every number cites its source)"
        )
    return float(value), source.strip()


def parse_profile(raw, path: Path, precision: str | None = None) -> HardwareProfile:
    """Validate a loaded YAML document and resolve it at ``precision`` (default: the profile's)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a hardware profile must be a mapping, got {type(raw).__name__}")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(
            f"{path}: unknown field(s) {sorted(unknown)} (expected {sorted(_TOP_KEYS)})"
        )
    for key in _REQUIRED:
        if key not in raw or raw[key] is None:
            raise ConfigError(f"{path}: field {key!r} is missing")
    precisions = raw["precisions"]
    if not isinstance(precisions, dict) or not precisions:
        raise ConfigError(f"{path}: field 'precisions' must map precision names to {{mac, ac}}")
    sources: dict[str, str] = {}
    energies: dict[str, dict[str, float]] = {}
    for pname, ops in precisions.items():
        if not isinstance(ops, dict):
            raise ConfigError(
                f"{path}: field 'precisions.{pname}' must be a mapping with mac and ac"
            )
        extra = set(ops) - set(_OPS)
        if extra:
            raise ConfigError(
                f"{path}: field 'precisions.{pname}' has unknown key(s) {sorted(extra)}"
            )
        energies[pname] = {}
        for op in _OPS:
            if op not in ops:
                raise ConfigError(f"{path}: field 'precisions.{pname}.{op}' is missing")
            energies[pname][op], sources[f"{pname}.{op}"] = _number(
                ops[op], f"precisions.{pname}.{op}", path
            )
    scalars = {}
    for key in ("neuron_update", "spike"):
        scalars[key], sources[key] = _number(raw[key], key, path)
    limits = {}
    for key, entry in (raw.get("limits") or {}).items():
        limits[key], sources[f"limits.{key}"] = _number(entry, f"limits.{key}", path)
    chosen = precision if precision is not None else raw["default_precision"]
    if chosen not in energies:
        raise ConfigError(
            f"{path}: precision {chosen!r} is not defined (available: {', '.join(energies)})"
        )
    return HardwareProfile(
        name=str(raw["name"]),
        description=str(raw["description"]),
        precision=chosen,
        mac_pj=energies[chosen]["mac"],
        ac_pj=energies[chosen]["ac"],
        neuron_update_pj=scalars["neuron_update"],
        spike_pj=scalars["spike"],
        sources=sources,
        limits=limits,
        precisions=tuple(energies),
        path=str(path),
    )


def read_profile(path: str | Path, precision: str | None = None) -> HardwareProfile:
    """Read and validate one profile file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"hardware profile file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    profile = parse_profile(raw, path, precision)
    if path.parent == HARDWARE_DIR and profile.name != path.stem:
        raise ConfigError(
            f"{path}: field 'name' is {profile.name!r} but the file is named {path.stem!r}"
        )
    return profile


def hardware_registry(folder: Path = HARDWARE_DIR) -> Registry[Path]:
    """Profile name -> file, for the YAML files of ``folder``."""
    registry: Registry[Path] = Registry("hardware profile")
    for file in sorted(folder.glob("*.yaml")):
        registry.register(file.stem)(file)
    return registry


def load_hardware(name: str, precision: str | None = None) -> HardwareProfile:
    """The profile ``name`` of ``hardware/`` (or the YAML file at path ``name``) at ``precision``.

    An unknown name raises :class:`~neuroflow.errors.RegistryError` listing the available ones.
    """
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return read_profile(name, precision)
    return read_profile(hardware_registry().get(name), precision)


def hardware_names() -> list[str]:
    return hardware_registry().names()

"""Hardware profiles: per-operation energies (pJ) read from ``hardware/<name>.yaml``.

Schema (every number is a ``{value, source}`` pair, ``value >= 0``)::

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
    chip: {...}                      # optional sections read by other parts (see below)

The energy fields above are checked strictly. Any other top-level key must be a mapping: a
section that another part of neuroflow reads and validates itself (``chip:`` for the chip
emulator, a device section for the RRAM macro); it is kept, unvalidated, in
:attr:`HardwareProfile.sections`. An unknown key that is not a mapping, that looks like a
misspelt energy field, or that holds a ``{value, source}`` number is an error.

``--hardware NAME`` resolves a profile by name in :func:`hardware_dirs` (the checkout's
``hardware/`` folder when running from a source tree, else the copy a wheel installs under
``<prefix>/share/neuroflow/hardware``), or takes a path to any YAML file in this schema.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from neuroflow.errors import ConfigError
from neuroflow.registry import Registry

#: the source tree's ``hardware/`` folder (exists only when running from a checkout)
CHECKOUT_HARDWARE_DIR = Path(__file__).resolve().parents[2] / "hardware"
#: where a wheel installs the profiles, relative to the installation prefix (see pyproject.toml)
INSTALLED_SUBDIR = ("share", "neuroflow", "hardware")

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


def installed_hardware_dir() -> Path | None:
    """The profiles folder installed with this very package (a wheel's data files), or None.

    The distribution's file list is searched (rather than ``sys.prefix``), so ``--user`` and
    ``--prefix`` installs are found too; a distribution whose package is not the one imported
    here (another copy on the path) is ignored.
    """
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution("neuroflow")
        files = dist.files or []
    except PackageNotFoundError:
        return None
    here = Path(__file__).resolve().parents[1]
    owns_package = any(
        f.parts[:1] == ("neuroflow",) and Path(dist.locate_file(f)).resolve().parent == here
        for f in files
        if f.name == "__init__.py" and len(f.parts) == 2
    )
    if not owns_package:
        return None
    for f in files:
        if tuple(f.parts[-4:-1]) == INSTALLED_SUBDIR and f.suffix == ".yaml":
            return Path(dist.locate_file(f)).resolve().parent
    return None


def hardware_dirs() -> list[Path]:
    """Folders searched for profiles by name, first match wins: the checkout's ``hardware/``
    (so edits there take effect without reinstalling), then the installed copy."""
    dirs = [CHECKOUT_HARDWARE_DIR] if CHECKOUT_HARDWARE_DIR.is_dir() else []
    installed = installed_hardware_dir()
    if installed is not None and installed not in dirs:
        dirs.append(installed)
    return dirs


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
    #: other top-level sections of the file (e.g. ``chip``), for the parts that read them
    sections: dict[str, Any] = field(default_factory=dict)


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
    sections = _extra_sections(raw, path)
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
        sections=sections,
    )


def _extra_sections(raw: dict, path: Path) -> dict[str, Any]:
    """The top-level sections beyond the energy fields; misspelt energy fields are errors."""
    sections = {}
    for key in raw:
        if key in _TOP_KEYS:
            continue
        value = raw[key]
        near = difflib.get_close_matches(str(key), sorted(_TOP_KEYS), n=1, cutoff=0.75)
        looks_like_number = isinstance(value, dict) and set(value) <= {"value", "source"}
        if near or looks_like_number or not isinstance(value, dict):
            hint = f"; did you mean {near[0]!r}?" if near else ""
            fields = ", ".join(sorted(_TOP_KEYS))
            raise ConfigError(
                f"{path}: unknown field {key!r}{hint} (energy fields: {fields}; other top-level "
                "keys must be sections, i.e. mappings such as chip:)"
            )
        sections[key] = value
    return sections


def read_profile(path: str | Path, precision: str | None = None) -> HardwareProfile:
    """Read and validate one profile file."""
    path = Path(path)
    raw = read_profile_document(path)
    profile = parse_profile(raw, path, precision)
    if path.resolve().parent in hardware_dirs() and profile.name != path.stem:
        raise ConfigError(
            f"{path}: field 'name' is {profile.name!r} but the file is named {path.stem!r}"
        )
    return profile


def read_profile_document(path: str | Path) -> dict:
    """A profile file's YAML as loaded (all sections), without validating the energy fields."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"hardware profile file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read hardware profile ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a hardware profile must be a mapping, got {type(raw).__name__}")
    return raw


def hardware_registry(folders: list[Path] | None = None) -> Registry[Path]:
    """Profile name -> file, for the YAML files of ``folders`` (default :func:`hardware_dirs`;
    the first folder holding a name wins)."""
    registry: Registry[Path] = Registry("hardware profile")
    for folder in hardware_dirs() if folders is None else folders:
        for file in sorted(Path(folder).glob("*.yaml")):
            if file.stem not in registry:
                registry.register(file.stem)(file)
    return registry


def profile_path(name: str) -> Path:
    """The file of profile ``name`` (a name in :func:`hardware_dirs` or a path to a YAML file).

    No profiles found at all (a broken installation) is a ConfigError saying where it looked.
    """
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return Path(name)
    registry = hardware_registry()
    if not registry.names():
        raise ConfigError(
            f"no hardware profiles found (looked in {CHECKOUT_HARDWARE_DIR} and in the installed "
            f"package's <prefix>/{'/'.join(INSTALLED_SUBDIR)}); reinstall neuroflow or pass "
            "--hardware a profile YAML file"
        )
    return registry.get(name)


def load_hardware(name: str, precision: str | None = None) -> HardwareProfile:
    """The profile ``name`` (see :func:`profile_path`) at ``precision``.

    An unknown name raises :class:`~neuroflow.errors.RegistryError` listing the available ones.
    """
    return read_profile(profile_path(name), precision)


def hardware_names() -> list[str]:
    return hardware_registry().names()

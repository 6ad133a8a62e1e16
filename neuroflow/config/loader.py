"""Load a YAML experiment file, apply ``--set a.b=value`` overrides, validate against the schema.

Nothing here evaluates text as code: files and override values go through a ``yaml.SafeLoader``
(plain scalars, lists and mappings only). The loader departs from SafeLoader's YAML 1.1 in two
ways, both as YAML 1.2 reads them: ``1e-3`` is a float (YAML 1.1 wants ``1.0e-3`` and would
return the string ``"1e-3"``), and only ``true`` / ``false`` are booleans (YAML 1.1 also reads
``yes``, ``no``, ``on`` and ``off`` as booleans, so ``format: off`` or ``--set data.format=off``,
the ModelNet40 OFF meshes, became ``False``).

Every problem is a :class:`~neuroflow.errors.ConfigError` naming the full dotted key path:
an unknown key comes with the nearest valid key, a wrong type with the value and the expected type.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from neuroflow.config.schema import DataConfig, ExperimentConfig, ModelConfig
from neuroflow.errors import ConfigError, InvalidArgumentError, RegistryError
from neuroflow.registry import nearest


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` / ``5E+2`` as floats and only ``true`` / ``false`` as
    booleans."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)
_BOOL = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL]
    for first, resolvers in _Loader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML text with the safe loader; a syntax error names ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}{where}: invalid YAML: {problem}") from None


# ---------------------------------------------------------------------------------------------
# overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optimizer.lr=0.01"`` -> (["optimizer", "lr"], 0.01). The value is one YAML scalar/list."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"bad override {text!r}: expected KEY=VALUE, e.g. optimizer.lr=0.01")
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"bad override {text!r}: empty component in key {key!r}")
    return parts, parse_yaml(raw, source=f"override {text!r}")


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    """Set each ``a.b=value`` in the nested dict ``raw`` (in place, creating sections as needed).

    Keys are not checked here: validation afterwards reports unknown ones with their full path.
    """
    for text in overrides:
        parts, value = parse_override(text)
        node = raw
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                prefix = ".".join(parts[: i + 1])
                raise ConfigError(f"bad override {text!r}: {prefix!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return raw


# ---------------------------------------------------------------------------------------------
# type checking


def _describe(tp: Any) -> str:
    """A readable name of a schema type: ``float or null``, ``list of int``, ``one of 'a', 'b'``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in typing.get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {_describe(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if tp is Any or tp is inspect.Parameter.empty:
        return "any value"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def key_error(path: str, message: str) -> ConfigError:
    """A ConfigError about the key ``path`` (kept as ``.key`` to tell file keys from overrides)."""
    exc = ConfigError(message)
    exc.key = path
    return exc


def _type_error(path: str, value: Any, tp: Any) -> ConfigError:
    return key_error(
        path,
        f"config key {path!r}: expected {_describe(tp)}, got {value!r} ({type(value).__name__})",
    )


def coerce(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (ints widened to float,
    tuples to lists, mappings to dataclasses); raise ConfigError naming ``path`` otherwise."""
    origin = typing.get_origin(tp)
    if tp is Any or tp is inspect.Parameter.empty:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _type_error(path, value, tp)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, path)
            except ConfigError:
                continue
        raise _type_error(path, value, tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        # `type(...) is` keeps True from matching a Literal[1] and 1 from matching "1"
        if any(value == c and type(value) is type(c) for c in choices):
            return value
        hint = nearest(str(value), [str(c) for c in choices])
        suggestion = f"; did you mean {hint!r}?" if hint else ""
        raise key_error(path, f"config key {path!r}: {value!r} is not {_describe(tp)}{suggestion}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _type_error(path, value, tp)
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        return [coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _type_error(path, value, tp)
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if value is None:  # an empty section (`optimizer:` alone) means "all defaults"
            value = {}
        if not isinstance(value, dict):
            raise key_error(
                path,
                f"config key {path!r}: expected a mapping (section), got {value!r} "
                f"({type(value).__name__})",
            )
        return from_dict(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _type_error(path, value, tp)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _type_error(path, value, tp)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _type_error(path, value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _type_error(path, value, tp)
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _type_error(path, value, tp)
    return value


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def leaf_paths(cls: type = ExperimentConfig, prefix: str = "") -> list[str]:
    """All dotted key paths of a schema dataclass (``optimizer.lr``, ``data.batch_size``...)."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = _join(prefix, f.name)
        tp = hints[f.name]
        if tp is DataConfig:  # every registered dataset's keys
            out.extend(f"{path}.{key}" for key in _all_data_keys())
        elif dataclasses.is_dataclass(tp):
            out.extend(leaf_paths(tp, path))
        else:
            out.append(path)
    return out


def _all_data_keys() -> list[str]:
    from neuroflow.data import DATASETS

    keys: dict[str, None] = {}
    for name in DATASETS.names():
        keys.update(dict.fromkeys(DATASETS.get(name).options.keys()))
    return list(keys)


def unknown_key_error(path: str, valid: Iterable[str], prefix: str) -> ConfigError:
    """``unknown key 'optimizer.lrr'; did you mean 'optimizer.lr'?``.

    The suggestion is the nearest sibling key; failing that, a key of the same name elsewhere in
    the schema (``lr`` at the top level -> ``optimizer.lr``).
    """
    key = path.rsplit(".", 1)[-1]
    valid = list(valid)
    hint = nearest(key, valid)
    if hint is not None:
        return key_error(path, f"unknown key {path!r}; did you mean {_join(prefix, hint)!r}?")
    elsewhere = [p for p in leaf_paths() if p.rsplit(".", 1)[-1] == key]
    if not elsewhere:
        by_leaf = {p.rsplit(".", 1)[-1]: p for p in leaf_paths()}
        close = nearest(key, by_leaf)
        elsewhere = [by_leaf[close]] if close else []
    if elsewhere:
        return key_error(path, f"unknown key {path!r}; did you mean {elsewhere[0]!r}?")
    where = f"in {prefix!r}" if prefix else "at the top level"
    return key_error(path, f"unknown key {path!r} (valid keys {where}: {', '.join(valid)})")


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build the dataclass ``cls`` from a mapping, checking every key and value."""
    if cls is ModelConfig:
        return _model_from_dict(data, prefix)
    if cls is DataConfig:
        return _data_from_dict(data, prefix)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = _join(prefix, str(key))
        if key not in names:
            raise unknown_key_error(path, names, prefix)
        kwargs[key] = coerce(value, hints[key], path)
    return cls(**kwargs)


# ---------------------------------------------------------------------------------------------
# the model section: checked against the builder's signature


def _model_from_dict(data: dict, prefix: str) -> ModelConfig:
    from neuroflow.models import MODELS, builder_parameters

    data = dict(data)
    name = data.pop("name", ModelConfig.name)
    name_path = _join(prefix, "name")
    if not isinstance(name, str):
        raise _type_error(name_path, name, str)
    nested = data.pop("params", None)  # accept the resolved form {name, params: {...}} too
    if nested is not None:
        if not isinstance(nested, dict):
            raise _type_error(_join(prefix, "params"), nested, dict)
        data = {**nested, **data}
    try:
        builder = MODELS.get(name)
    except RegistryError as exc:
        raise key_error(name_path, f"config key {name_path!r}: {exc}") from None
    spec = builder_parameters(builder)
    given = {}
    for key, value in data.items():
        path = _join(prefix, str(key))
        if key not in spec:
            raise unknown_key_error(path, ["name", *spec], prefix)
        given[key] = coerce(value, spec[key].annotation, path)
    params = {}
    for key, p in spec.items():  # signature order, so resolved configs read like the builder
        if key in given:
            params[key] = given[key]
            continue
        if p.default is inspect.Parameter.empty:
            path = _join(prefix, key)
            raise key_error(path, f"missing key {path!r} (required by model {name!r})")
        # resolved configs carry every parameter, so a checkpoint says exactly what was built
        params[key] = list(p.default) if isinstance(p.default, tuple) else p.default
    return ModelConfig(name=name, params=params)


# ---------------------------------------------------------------------------------------------
# the data section: checked against the named dataset's registered options


#: every key of the single data section of configs resolved before each dataset had its own
#: options (checkpoints store resolved configs, so theirs hold all of these)
_LEGACY_DATA_KEYS = frozenset(
    "name root time_steps split_by denoise_us translate val_fraction test_fraction cache "
    "on_bad_file max_samples prepare synthetic_train_per_class synthetic_test_per_class format "
    "num_points surface_points sampling voxel_size use_normals scale_range shift spike_levels "
    "batch_size num_workers".split()
)


def _data_from_dict(data: dict, prefix: str) -> DataConfig:
    from neuroflow.data import DATASETS
    from neuroflow.data.registry import DEFAULT_DATASET

    name = data.get("name", DEFAULT_DATASET)
    if _LEGACY_DATA_KEYS <= set(data) and isinstance(name, str) and name in DATASETS:
        # a config resolved by an older neuroflow (e.g. a checkpoint's): it lists every dataset's
        # keys, and the builders ignored those not theirs, so dropping them changes nothing
        own = set(DATASETS.get(name).options.keys())
        data = {k: v for k, v in data.items() if k in own}
    name_path = _join(prefix, "name")
    if not isinstance(name, str):
        raise _type_error(name_path, name, str)
    try:
        options_cls = DATASETS.get(name).options
    except RegistryError as exc:
        raise key_error(name_path, f"config key {name_path!r}: {exc}") from None
    keys = options_cls.keys()
    types_ = options_cls.types()
    given = {}
    for key, value in data.items():
        path = _join(prefix, str(key))
        if key not in keys:
            owners = [n for n in DATASETS.names() if key in DATASETS.get(n).options.keys()]
            if owners:
                raise key_error(
                    path,
                    f"config key {path!r} is not a setting of dataset {name!r} (it belongs to "
                    f"{', '.join(owners)}); {name!r} takes: {', '.join(keys)}",
                )
            raise unknown_key_error(path, keys, prefix)
        given[key] = coerce(value, types_[key], path)
    options = options_cls(**given)
    try:
        options.validate()
    except InvalidArgumentError as exc:
        key = getattr(exc, "key", None) or prefix
        message = str(exc).removeprefix(f"{key} ")
        raise key_error(key, f"config key {key!r}: {message}") from None
    return options


# ---------------------------------------------------------------------------------------------
# value ranges


def _check(ok: bool, path: str, rule: str, value: Any) -> None:
    if not ok:
        raise key_error(path, f"config key {path!r}: must be {rule}, got {value!r}")


def validate(cfg: ExperimentConfig) -> ExperimentConfig:
    """Range checks the types cannot express (positive sizes, fractions in [0, 1)...)."""
    o, s, loss, lp = cfg.optimizer, cfg.scheduler, cfg.loss, cfg.loop
    _check(o.lr > 0, "optimizer.lr", "> 0", o.lr)
    _check(o.weight_decay >= 0, "optimizer.weight_decay", ">= 0", o.weight_decay)
    _check(0 <= o.momentum < 1, "optimizer.momentum", "in [0, 1)", o.momentum)
    _check(o.eps > 0, "optimizer.eps", "> 0", o.eps)
    _check(
        len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
        "optimizer.betas",
        "two numbers in [0, 1)",
        o.betas,
    )
    if o.nesterov:
        _check(
            o.name == "sgd" and o.momentum > 0,
            "optimizer.nesterov",
            "used with name: sgd and momentum > 0",
            o.nesterov,
        )
    _check(s.warmup_epochs >= 0, "scheduler.warmup_epochs", ">= 0", s.warmup_epochs)
    _check(0 <= s.min_lr <= o.lr, "scheduler.min_lr", "in [0, optimizer.lr]", s.min_lr)
    _check(s.gamma > 0, "scheduler.gamma", "> 0", s.gamma)
    _check(
        all(m >= 1 for m in s.milestones) and s.milestones == sorted(s.milestones),
        "scheduler.milestones",
        "increasing epochs >= 1",
        s.milestones,
    )
    _check(0 <= loss.label_smoothing < 1, "loss.label_smoothing", "in [0, 1)", loss.label_smoothing)
    _check(0 <= loss.tet_lambda <= 1, "loss.tet_lambda", "in [0, 1]", loss.tet_lambda)
    _check(lp.epochs >= 1, "loop.epochs", ">= 1", lp.epochs)
    _check(lp.log_every >= 1, "loop.log_every", ">= 1", lp.log_every)
    _check(lp.eval_every >= 1, "loop.eval_every", ">= 1", lp.eval_every)
    if lp.clip_grad is not None:
        _check(lp.clip_grad > 0, "loop.clip_grad", "> 0 or null", lp.clip_grad)
    _check(
        cfg.distributed.timeout_s >= 1, "distributed.timeout_s", ">= 1", cfg.distributed.timeout_s
    )
    if cfg.name is not None:
        _check(
            bool(cfg.name) and "/" not in cfg.name, "name", "a non-empty name without '/'", cfg.name
        )
    return cfg


# ---------------------------------------------------------------------------------------------
# the builder's own checks, run at load time


def _build_for_check(cfg: ExperimentConfig, params: dict, num_classes: int, shape: tuple) -> None:
    """Build the model on the meta device: no memory, no initialisation cost (a builder that
    needs real values, e.g. ``.item()`` on a tensor, stops there with a non-neuroflow error,
    after its parameter checks; building it for real can take seconds, too long for a load)."""
    import torch

    from neuroflow.models import build_model

    with torch.device("meta"):
        build_model(cfg.model.name, params, num_classes, shape)


def _culprit(message: str, cfg: ExperimentConfig, build) -> str | None:
    """The model key a builder error is about: the one parameter named in the message, else the
    one set away from its default whose default makes the build pass."""
    from neuroflow.models import MODELS, builder_parameters

    params = cfg.model.params
    named = [k for k in params if re.search(rf"(?<![\w.]){re.escape(k)}(?![\w])", message)]
    if len(named) == 1:
        return named[0]
    spec = builder_parameters(MODELS.get(cfg.model.name))
    changed = [k for k, p in spec.items() if k in params and params[k] != p.default]
    for key in named + [k for k in changed if k not in named]:
        default = spec[key].default
        trial = {**params, key: list(default) if isinstance(default, tuple) else default}
        try:
            build(trial)
        except Exception:
            continue
        return key
    return None


def check_model_builds(cfg: ExperimentConfig) -> None:
    """Run the model builder's own parameter checks (``tau > 0``...) when the config is loaded,
    so that ``--set model.tau=0`` fails at ``config show`` with the key named, not in training.

    The model is built for the data section's dataset (its registered ``model_io``: classes
    and input shape, known without reading the data); a dataset whose shapes only its files tell
    is not checked here. Only neuroflow's own errors (the
    builders' checks) that one key causes are reported here; anything else is left to the run,
    which has the data.
    """
    from neuroflow.data import DATASETS
    from neuroflow.errors import NeuroflowError
    from neuroflow.models import MODELS, builder_parameters

    model_io = DATASETS.get(cfg.data.name).model_io(cfg.data)
    if model_io is None:
        return
    num_classes, shape = model_io
    spec = builder_parameters(MODELS.get(cfg.model.name))

    def build(params: dict) -> None:
        _build_for_check(cfg, params, num_classes, tuple(shape))

    try:
        build(cfg.model.params)
    except NeuroflowError as exc:
        message = str(exc)
        key = _culprit(message, cfg, build)
        if key is not None and key in spec:
            path = f"model.{key}"
            raise key_error(path, f"config key {path!r}: {message}") from None
        # no single key is to blame (e.g. a model that does not fit the data's shape): the run
        # reports it, as before
    except Exception:
        return  # not a parameter check: the run reports it, with the data in hand


# ---------------------------------------------------------------------------------------------
# entry points


def config_from_dict(
    raw: dict | None, overrides: Iterable[str] = (), name: str | None = None
) -> ExperimentConfig:
    """Validate a nested dict (plus overrides) into an :class:`ExperimentConfig`.

    ``name`` is the fallback experiment name (the file stem); ``output_dir`` defaults to
    ``runs/<name>``.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    raw = apply_overrides(_deep_copy(raw), overrides)
    if raw.get("model") is None:
        raw["model"] = {}  # resolve the default model's parameters too
    cfg = from_dict(ExperimentConfig, raw)
    if cfg.name is None:
        cfg.name = name or "experiment"
    if cfg.output_dir is None:
        cfg.output_dir = f"runs/{cfg.name}"
    validate(cfg)
    check_model_builds(cfg)
    return cfg


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read a YAML experiment file, apply ``--set`` overrides and validate."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    raw = parse_yaml(text, source=str(path))
    if raw is None:  # nothing but blanks or comments: a run on all defaults is never meant
        raise ConfigError(
            f"{path}: the config file is empty; write at least the sections you mean to set "
            "(see configs/quickstart.yaml), or `{}` to run on every default"
        )
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: a config must be a mapping of sections, got {type(raw).__name__}"
        )
    overrides = list(overrides)
    raw = apply_overrides({} if raw is None else raw, overrides)  # its errors name the override
    try:
        return config_from_dict(raw, name=path.stem)
    except ConfigError as exc:
        key = getattr(exc, "key", None)
        source = str(path)
        for text in overrides:
            k = text.partition("=")[0].strip()
            if key is not None and (
                key == k or key.startswith((k + ".", k + "[")) or k.startswith(key + ".")
            ):
                source = f"--set {text}"
        raise key_error(key, f"{source}: {exc}") from None


def to_dict(cfg: ExperimentConfig) -> dict:
    """The config as plain nested dicts/lists/scalars, with the model section flat again
    (``model: {name: scnn, channels: [...]}``): loadable by :func:`config_from_dict`."""
    out = dataclasses.asdict(cfg)
    model = out.pop("model")
    out_model = {"name": model["name"], **model["params"]}
    ordered = {}
    for key in out:
        ordered[key] = out[key]
        if key == "device":
            ordered["model"] = out_model
    return ordered


class _Dumper(yaml.SafeDumper):
    """Block-style sections, flow-style lists of scalars (``channels: [16, 32]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list):
    flow = all(not isinstance(v, (list, dict)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_config(cfg: ExperimentConfig) -> str:
    """The resolved config as YAML text (what ``neuroflow config show`` prints)."""
    return yaml.dump(to_dict(cfg), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def _deep_copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj

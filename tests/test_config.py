"""Config schema, YAML loading, --set overrides and validation messages."""

from __future__ import annotations

import pytest
import yaml

from neuroflow.config import (
    ExperimentConfig,
    config_from_dict,
    dump_config,
    load_config,
    parse_override,
    to_dict,
)
from neuroflow.errors import ConfigError, NeuroflowError


def write(tmp_path, text: str, name: str = "exp.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_and_name_from_file(tmp_path):
    cfg = load_config(write(tmp_path, "seed: 3\n", "my_exp.yaml"))
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.seed == 3
    assert cfg.name == "my_exp"
    assert cfg.output_dir == "runs/my_exp"
    assert cfg.model.name == "scnn"
    # the model section is resolved against the builder's signature, defaults included
    assert cfg.model.params["tau"] == 2.0 and cfg.model.params["channels"] == [16, 32]


def test_unknown_key_names_path_and_nearest_key(tmp_path):
    path = write(tmp_path, "optimizer:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "unknown key 'optimizer.lrr'; did you mean 'optimizer.lr'?" in str(info.value)
    assert str(path) in str(info.value)


def test_misplaced_key_suggests_its_section():
    with pytest.raises(ConfigError, match=r"unknown key 'lr'; did you mean 'optimizer.lr'\?"):
        config_from_dict({"lr": 0.1})


def test_unknown_model_parameter_checked_against_builder_signature():
    with pytest.raises(
        ConfigError, match=r"unknown key 'model.chanels'; did you mean 'model.channels'\?"
    ):
        config_from_dict({"model": {"name": "scnn", "chanels": [8, 16]}})
    with pytest.raises(ConfigError, match=r"'model.tau'.*expected float.*'fast' \(str\)"):
        config_from_dict({"model": {"name": "scnn", "tau": "fast"}})
    with pytest.raises(ConfigError, match=r"model.name.*did you mean 'scnn'"):
        config_from_dict({"model": {"name": "scn"}})
    with pytest.raises(ConfigError, match=r"'model.surrogate'.*'sigmoidd'.*did you mean 'sigmoid'"):
        config_from_dict({"model": {"surrogate": "sigmoidd"}})


def test_wrong_type_names_path_value_and_expected_type():
    with pytest.raises(ConfigError) as info:
        config_from_dict({"data": {"batch_size": "sixty-four"}})
    msg = str(info.value)
    assert "'data.batch_size'" in msg and "'sixty-four'" in msg and "expected int" in msg
    with pytest.raises(ConfigError, match=r"'loop.clip_grad'.*expected float or null.*\[1\]"):
        config_from_dict({"loop": {"clip_grad": [1]}})
    # a bool is not an int, even though Python says isinstance(True, int)
    with pytest.raises(ConfigError, match=r"'seed'.*expected int.*True"):
        config_from_dict({"seed": True})
    with pytest.raises(ConfigError, match=r"'optimizer'.*expected a mapping"):
        config_from_dict({"optimizer": 0.1})


def test_choices_and_ranges():
    with pytest.raises(
        ConfigError,
        match=r"'optimizer.name': 'sgdd' is not one of 'sgd', 'adamw'; did you mean 'sgd'",
    ):
        config_from_dict({"optimizer": {"name": "sgdd"}})
    with pytest.raises(ConfigError, match=r"'loop.epochs': must be >= 1, got 0"):
        config_from_dict({"loop": {"epochs": 0}})
    with pytest.raises(ConfigError, match=r"'loss.label_smoothing'"):
        config_from_dict({"loss": {"label_smoothing": 1.5}})


def test_ints_widen_to_float_and_empty_sections_mean_defaults():
    cfg = config_from_dict({"optimizer": {"lr": 1}, "loop": None})
    assert cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float)
    assert cfg.loop.epochs == 10


def test_parse_override_reads_yaml_scalars():
    assert parse_override("optimizer.lr=1e-3") == (["optimizer", "lr"], 1e-3)  # not the str "1e-3"
    assert parse_override("model.channels=[8, 16]") == (["model", "channels"], [8, 16])
    assert parse_override("loop.clip_grad=null") == (["loop", "clip_grad"], None)
    assert parse_override("optimizer.nesterov=true") == (["optimizer", "nesterov"], True)
    assert parse_override("name=a=b") == (["name"], "a=b")  # split at the first '=' only
    # YAML 1.2 booleans: 'off' is the ModelNet40 mesh format, not False as YAML 1.1 has it
    assert parse_override("data.format=off") == (["data", "format"], "off")
    assert [parse_override(f"k={v}")[1] for v in ("yes", "no", "on", "False", "TRUE")] == [
        "yes",
        "no",
        "on",
        False,
        True,
    ]
    for bad in ("optimizer.lr", "=3", "a..b=1"):
        with pytest.raises(ConfigError, match="bad override"):
            parse_override(bad)


def test_overrides_apply_and_are_validated(tmp_path):
    path = write(tmp_path, "optimizer:\n  name: sgd\n  lr: 0.1\n")
    cfg = load_config(path, ["optimizer.lr=0.05", "model.channels=[4, 8]", "loop.epochs=2"])
    assert cfg.optimizer.lr == 0.05 and cfg.optimizer.name == "sgd"
    assert cfg.model.params["channels"] == [4, 8]
    assert cfg.loop.epochs == 2
    with pytest.raises(ConfigError) as info:
        load_config(path, ["optimizer.lrr=3"])
    assert str(info.value) == (
        "--set optimizer.lrr=3: unknown key 'optimizer.lrr'; did you mean 'optimizer.lr'?"
    )
    with pytest.raises(ConfigError, match=r"'data.time_steps'.*expected int.*'ten'"):
        load_config(path, ["data.time_steps=ten"])
    with pytest.raises(ConfigError, match=r"--set seed.x=1: config key 'seed': expected int"):
        load_config(path, ["seed.x=1"])
    with pytest.raises(ConfigError, match=r"'optimizer.lr' is a value, not a section"):
        load_config(path, ["optimizer.lr.x=1"])


def test_off_format_reads_as_text_in_files_and_overrides(tmp_path):
    path = write(tmp_path, "data:\n  name: modelnet40\n  format: off\n")
    assert load_config(path).data.format == "off"
    assert load_config(path, ["data.format=auto"]).data.format == "auto"
    b = write(tmp_path, "seed: 1\n", "b.yaml")
    assert load_config(b, ["data.name=modelnet40", "data.format=off"]).data.format == "off"
    # the default dataset (event data) has no format: the key is refused, naming its owners
    with pytest.raises(
        ConfigError,
        match=r"'data.format' is not a setting of dataset "
        r"'synthetic-nmnist' \(it belongs to modelnet40, synthetic-shapes\)",
    ):
        load_config(b, ["data.format=off"])
    # a boolean key given 'yes' is refused by name rather than read as True
    with pytest.raises(ConfigError, match=r"'data.use_normals'.*expected bool.*'yes'"):
        load_config(path, ["data.use_normals=yes"])


def test_values_are_never_evaluated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    # a python tag is refused by the safe loader; nothing runs
    with pytest.raises(ConfigError, match="invalid YAML"):
        parse_override(f"name=!!python/object/apply:os.system ['touch {marker}']")
    file_attack = write(tmp_path, f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(file_attack)
    # text that looks like code stays text
    cfg = load_config(write(tmp_path, "seed: 1\n"), ["name=__import__('os').system('touch pwned')"])
    assert cfg.name.startswith("__import__")
    assert not marker.exists()


def test_yaml_errors_name_file_and_line(tmp_path):
    path = write(tmp_path, "seed: 1\noptimizer:\n  lr: [0.1\n")
    with pytest.raises(ConfigError, match=r"exp.yaml \(line \d+, column \d+\): invalid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping of sections"):
        load_config(write(tmp_path, "- 1\n- 2\n", "list.yaml"))


def test_config_error_is_a_neuroflow_error():
    with pytest.raises(NeuroflowError):
        config_from_dict({"nope": 1})


def test_dump_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, "model:\n  channels: [4, 8]\n"), ["optimizer.lr=0.02"])
    text = dump_config(cfg)
    assert "channels: [4, 8]" in text  # model parameters stay flat in the YAML
    again = config_from_dict(yaml.safe_load(text))
    assert again == cfg
    assert to_dict(again) == to_dict(cfg)


def test_shipped_configs_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    quick = load_config(root / "quickstart.yaml")
    assert quick.data.name == "synthetic-nmnist" and quick.model.name == "scnn"
    real = load_config(root / "nmnist_scnn.yaml")
    assert real.data.name == "nmnist" and real.data.root == "datasets/nmnist"
    assert real.output_dir == "runs/nmnist_scnn"


def _options_given_to_builder(name: str, cfg, monkeypatch):
    """The options object build_datasets hands to dataset ``name``'s builder for ``cfg``."""
    import dataclasses

    from neuroflow.data import DATASETS, build_datasets

    captured = []
    entry = DATASETS.get(name)
    monkeypatch.setitem(
        DATASETS._items, name, dataclasses.replace(entry, build=lambda o, seed: captured.append(o))
    )
    build_datasets(cfg, seed=0)
    return captured[0]


@pytest.mark.parametrize(
    "name", ["nmnist", "synthetic-nmnist", "ntidigits", "modelnet40", "synthetic-shapes", "tonic"]
)
def test_data_settings_same_from_yaml_and_python(tmp_path, monkeypatch, name):
    """One definition per dataset: `data: {name: X}` from YAML and `{"name": X}` from Python
    resolve to the same settings (before, synthetic-shapes gave root datasets/synthetic-nmnist
    and time_steps 10 from YAML, datasets/synthetic-shapes and 1 from Python)."""
    from neuroflow.data import DATASETS

    assert name in DATASETS
    if name == "tonic":
        pytest.importorskip("tonic.datasets")
    from_yaml = load_config(write(tmp_path, f"data:\n  name: {name}\n")).data
    from_python = _options_given_to_builder(name, {"name": name}, monkeypatch)
    keys = ("root", "time_steps", "val_fraction", "test_fraction", "cache", "max_samples")
    assert sorted(DATASETS.names()) == [
        "modelnet40",
        "nmnist",
        "ntidigits",
        "synthetic-nmnist",
        "synthetic-shapes",
        "tonic",
    ]  # every one is tested
    for key in keys:
        assert getattr(from_yaml, key) == getattr(from_python, key), key
    # every key YAML resolves is one the builder receives, with the same value
    yaml_settings = {
        k: v
        for k, v in to_dict(load_config(write(tmp_path, f"data:\n  name: {name}\n")))[
            "data"
        ].items()
    }
    for key, value in yaml_settings.items():
        if key not in ("batch_size", "num_workers"):
            assert getattr(from_python, key) == value, key
    # and the loaded config section itself builds with exactly those options
    assert _options_given_to_builder(name, from_yaml, monkeypatch) == from_python


def test_data_setting_errors_name_the_key_from_yaml_and_python(tmp_path):
    from neuroflow.data import build_datasets
    from neuroflow.errors import InvalidArgumentError

    path = write(tmp_path, "data:\n  name: synthetic-shapes\n")
    with pytest.raises(
        ConfigError,
        match=r"--set data.voxel_size=0: config key 'data.voxel_size': "
        r"must be > 0 \(a number",
    ):
        load_config(path, ["data.voxel_size=0"])
    with pytest.raises(InvalidArgumentError, match=r"data.voxel_size must be > 0 \(a number"):
        build_datasets({"name": "synthetic-shapes", "voxel_size": 0}, seed=0)
    with pytest.raises(
        InvalidArgumentError,
        match=r"data.split_by is not a setting of dataset "
        r"'synthetic-shapes'",
    ):
        build_datasets({"name": "synthetic-shapes", "split_by": "time"}, seed=0)
    with pytest.raises(ConfigError, match=r"'data.name'.*unknown dataset 'modelnet'; did you mean"):
        load_config(path, ["data.name=modelnet"])


def test_builder_checks_run_at_load_and_name_the_key(tmp_path):
    """`--set model.tau=0` fails when the config is loaded (as `config show` does), naming the
    key, instead of deep inside training with "tau must be > 0"."""
    path = write(tmp_path, "model:\n  name: scnn\n")
    with pytest.raises(
        ConfigError, match=r"--set model.tau=0: config key 'model.tau': tau must be > 0"
    ):
        load_config(path, ["model.tau=0"])
    with pytest.raises(ConfigError, match=r"config key 'model.tau'"):
        config_from_dict({"model": {"name": "scnn", "tau": -1.0}})
    bad = write(tmp_path, "model:\n  name: scnn\n  tau: 0.0\n", "bad.yaml")
    with pytest.raises(ConfigError, match=r"bad.yaml: config key 'model.tau'"):
        load_config(bad)
    # the model is checked against the data it will see: point clouds for e3dsnn
    assert (
        load_config(
            write(
                tmp_path, "model:\n  name: e3dsnn_t\ndata:\n  name: synthetic-shapes\n", "pc.yaml"
            )
        ).model.name
        == "e3dsnn_t"
    )


def test_cli_config_show_refuses_a_bad_builder_parameter(tmp_path, capsys):
    from neuroflow.cli import main

    path = write(tmp_path, "model:\n  name: scnn\n")
    assert main(["config", "show", str(path), "--set", "model.tau=0"]) == 2
    assert "config key 'model.tau'" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_config_file_is_an_error_naming_it(tmp_path, text):
    path = write(tmp_path, text, "empty.yaml")
    with pytest.raises(ConfigError, match=r"empty.yaml: the config file is empty"):
        load_config(path)
    # an explicit empty mapping still means "every default"
    assert load_config(write(tmp_path, "{}\n", "defaults.yaml")).name == "defaults"


def test_configs_resolved_before_per_dataset_options_still_load():
    """A checkpoint stores its resolved config; one written before each dataset had its own
    options lists every dataset's keys in `data` (the builders ignored the others). It loads,
    with the dataset's own values kept."""
    old_points = {
        "format": "auto",
        "num_points": 1024,
        "surface_points": 10000,
        "sampling": "fps",
        "voxel_size": 0.05,
        "use_normals": True,
        "scale_range": [0.9, 1.1],
        "shift": 0.2,
        "spike_levels": 4,
    }
    old_events = {"split_by": "time", "denoise_us": None, "translate": 0}
    common = {
        "val_fraction": 0.1,
        "test_fraction": 0.1,
        "cache": True,
        "on_bad_file": "error",
        "max_samples": None,
        "prepare": True,
        "synthetic_train_per_class": None,
        "synthetic_test_per_class": None,
        "batch_size": 32,
        "num_workers": 0,
    }
    events = {
        "name": "synthetic-nmnist",
        "root": "datasets/synthetic-nmnist",
        "time_steps": 6,
        **common,
        **old_events,
        **old_points,
    }
    cfg = config_from_dict({"data": events})
    assert cfg.data.time_steps == 6 and cfg.data.batch_size == 32
    assert not hasattr(cfg.data, "voxel_size")
    points = {
        **events,
        "name": "synthetic-shapes",
        "time_steps": 1,
        "voxel_size": 0.08,
        "translate": 3,
    }
    cfg = config_from_dict({"model": {"name": "e3dsnn_t"}, "data": points})
    assert cfg.data.voxel_size == 0.08 and not hasattr(cfg.data, "translate")
    # a YAML file naming one foreign key is still an error (it would have no effect)
    with pytest.raises(ConfigError, match="'data.voxel_size' is not a setting"):
        config_from_dict({"data": {"name": "synthetic-nmnist", "voxel_size": 0.1}})


def _shipped_configs():
    from pathlib import Path

    return sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", _shipped_configs(), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_round_trips(path):
    cfg = load_config(path)
    assert config_from_dict(to_dict(cfg)) == cfg  # what a checkpoint stores loads back the same

"""neuroflow.experiment: config + checkpoint -> model + loaders, with one-line errors."""

from __future__ import annotations

import os

import pytest
import torch

from neuroflow.config import config_from_dict, to_dict
from neuroflow.errors import CheckpointError, NeuroflowError
from neuroflow.experiment import (
    OutputPathError,
    atomic_write,
    build_loaders,
    build_model,
    load_checkpoint,
    load_trained_model,
    save_checkpoint,
)


def _cfg(tmp_path, **model):
    return config_from_dict(
        {"device": "cpu", "model": {"name": "scnn", "channels": [4, 8], **model}}, name="exp"
    )


def _saved(tmp_path, cfg, io=True):
    model = build_model(cfg, num_classes=10, input_shape=(2, 34, 34))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)  # differs from a freshly seeded model: loading must really load
    payload = {"epoch": 2, "model": model.state_dict(), "config": to_dict(cfg)}
    if io:
        payload["model_io"] = {"num_classes": 10, "input_shape": [2, 34, 34]}
    path = tmp_path / "model.pt"
    save_checkpoint(path, payload)
    return path, model


def test_build_model_is_seeded(tmp_path):
    cfg = _cfg(tmp_path)
    a = build_model(cfg, num_classes=10, input_shape=(2, 34, 34))
    torch.rand(100)  # randomness consumed in between does not change the initial weights
    b = build_model(cfg, num_classes=10, input_shape=(2, 34, 34))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_load_trained_model_without_data_from_the_checkpoints_own_config(tmp_path):
    cfg = _cfg(tmp_path)
    path, reference = _saved(tmp_path, cfg)
    model = load_trained_model(None, path)  # no config given, no data folder needed
    assert not model.training
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_load_trained_model_names_the_differing_config_keys(tmp_path):
    path, _ = _saved(tmp_path, _cfg(tmp_path))
    other = _cfg(tmp_path, channels=[4, 16])
    with pytest.raises(CheckpointError, match=r"model.pt: .*differs in model.channels"):
        load_trained_model(other, path)


def test_garbage_checkpoint_is_one_line_without_torchs_advice(tmp_path):
    garbage = tmp_path / "garbage.pt"
    # a pickle header (torch's weights_only page of advice) and plain bytes (a KeyError inside)
    for content in (b"\x80\x04not a checkpoint at all" * 10, b"hello garbage" * 10):
        garbage.write_bytes(content)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(garbage)
        text = str(info.value)
        assert text.startswith(f"{garbage}: not a readable checkpoint (")
        assert "\n" not in text and "Please file" not in text and "weights_only" not in text
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


def test_atomic_write_into_an_unwritable_place_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "sub" / "out.json"  # a folder that cannot exist below a file
    with pytest.raises(OutputPathError, match=f"cannot write {target}: Not a directory"):
        atomic_write(target, lambda tmp: tmp.write_text("{}"))
    assert issubclass(OutputPathError, NeuroflowError)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputPathError, match="Permission denied"):
            atomic_write(locked / "x.json", lambda tmp: tmp.write_text("{}"))


def test_build_loaders_rejects_unknown_split(tmp_path):
    with pytest.raises(NeuroflowError, match="unknown split 'dev'"):
        build_loaders(_cfg(tmp_path), ["dev"])

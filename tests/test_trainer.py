"""The trainer: a tiny run's outputs, determinism, losses, schedules, checkpoints, firing rates."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from neuroflow.config import config_from_dict
from neuroflow.config.schema import LossConfig, OptimizerConfig, SchedulerConfig
from neuroflow.errors import CheckpointError
from neuroflow.neurons import LIF
from neuroflow.train import (
    FiringRateMonitor,
    LRSchedule,
    build_loss,
    build_optimizer,
    evaluate,
    evaluate_checkpoint,
    load_checkpoint,
    save_checkpoint,
    train,
)
from neuroflow.train.optim import param_groups

TIME_KEYS = {"epoch_time_s", "samples_per_s"}


def _without_times(records):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


def _records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_one_epoch_writes_summary_metrics_and_checkpoints(tiny_config, capsys):
    raw, _ = tiny_config()
    cfg = config_from_dict(raw)
    summary = train(cfg)
    out = Path(cfg.output_dir)
    for name in ("summary.json", "metrics.jsonl", "metrics.csv", "last.pt", "best.pt"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".*.tmp-*"))  # atomic writes leave no temporary files

    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert 0.0 <= on_disk["test_accuracy"] <= 1.0 and on_disk["test_samples"] > 0
    assert set(on_disk["firing_rates"]) == {"lif1", "lif2"}
    assert 0.0 <= on_disk["mean_firing_rate"] <= 1.0
    assert on_disk["checkpoint"] == str(out / "best.pt") and on_disk["epochs"] == 1
    assert on_disk["wall_time_s"] > 0

    records = _records(out)
    assert len(records) == 1 and records[0]["epoch"] == 1
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"} <= set(records[0])
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "epoch" and "val_accuracy" in header

    ckpt = torch.load(out / "last.pt", weights_only=True)  # tensors and plain containers only
    assert ckpt["epoch"] == 1 and ckpt["global_step"] > 0
    assert ckpt["config"]["model"]["channels"] == [4, 8]
    assert {"python", "numpy", "torch"} <= set(ckpt["rng"])
    assert ckpt["versions"]["torch"] == str(torch.__version__)
    assert {"model", "optimizer", "scheduler"} <= set(ckpt)
    assert ckpt["model_io"] == {"num_classes": 10, "input_shape": [2, 34, 34]}
    assert on_disk["energy"]["hardware"] == "cmos45nm" and on_disk["energy"]["total_energy_pj"] > 0

    printed = capsys.readouterr().out
    assert "test accuracy:" in printed and "firing rates:" in printed
    assert f"checkpoint: {out / 'best.pt'}" in printed


def test_energy_summary_failure_is_reported_not_swallowed(tiny_config, monkeypatch):
    """A wheel without its hardware profiles used to end training with energy None, silently."""
    import neuroflow.energy.hardware as hardware

    monkeypatch.setattr(hardware, "hardware_dirs", lambda: [])  # an installation without profiles
    raw, _ = tiny_config()
    cfg = config_from_dict(raw)
    with pytest.warns(RuntimeWarning, match="energy estimate failed: ConfigError: no hardware "):
        summary = train(cfg)
    on_disk = json.loads((Path(cfg.output_dir) / "summary.json").read_text())
    assert "no hardware profiles found" in on_disk["energy"]["error"]
    assert on_disk["test_accuracy"] == summary["test_accuracy"] is not None  # the run is kept


def test_same_seed_same_result_other_seed_differs(tiny_config):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        raw, _ = tiny_config(name=name, seed=seed)
        cfg = config_from_dict(raw)
        summary = train(cfg)
        out = Path(cfg.output_dir)
        runs[name] = (
            summary,
            _records(out),
            torch.load(out / "last.pt", weights_only=True)["model"],
        )
    (sa, ra, ma), (sb, rb, mb), (_, _, mc) = runs["a"], runs["b"], runs["c"]
    assert _without_times(ra) == _without_times(rb)
    assert sa["test_accuracy"] == sb["test_accuracy"] and sa["firing_rates"] == sb["firing_rates"]
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    assert not all(torch.equal(ma[k], mc[k]) for k in ma)


def test_eval_checkpoint_matches_training_summary(tiny_config):
    raw, _ = tiny_config()
    cfg = config_from_dict(raw)
    summary = train(cfg)
    result = evaluate_checkpoint(cfg, summary["checkpoint"], "test")
    assert result["accuracy"] == pytest.approx(summary["test_accuracy"])
    assert result["mean_firing_rate"] == pytest.approx(summary["mean_firing_rate"])
    assert result["num_samples"] == summary["test_samples"]


def test_losses():
    torch.manual_seed(0)
    logits, target = torch.randn(5, 4, 10), torch.tensor([1, 2, 3, 4])
    ce = build_loss(LossConfig(name="ce"))
    assert torch.allclose(ce(logits, target), F.cross_entropy(logits.mean(0), target))
    smooth = build_loss(LossConfig(name="ce", label_smoothing=0.2))
    assert torch.allclose(
        smooth(logits, target), F.cross_entropy(logits.mean(0), target, label_smoothing=0.2)
    )
    tet = build_loss(LossConfig(name="tet"))
    per_step = torch.stack([F.cross_entropy(logits[t], target) for t in range(5)]).mean()
    assert torch.allclose(tet(logits, target), per_step)
    tet_mse = build_loss(LossConfig(name="tet", tet_lambda=0.25, tet_phi=1.0))
    expected = 0.75 * per_step + 0.25 * ((logits - 1.0) ** 2).mean()
    assert torch.allclose(tet_mse(logits, target), expected)


def test_lr_schedules():
    cos = LRSchedule(SchedulerConfig(name="cosine", warmup_epochs=1, min_lr=0.01), 0.1, 10, 5)
    assert cos.lr(0) == pytest.approx(0.01) and cos.lr(9) == pytest.approx(0.1)  # linear warm-up
    assert cos.lr(10) == pytest.approx(0.1) and cos.lr(49) == pytest.approx(0.01)
    assert cos.lr(30) < cos.lr(20) < cos.lr(10)
    step = LRSchedule(SchedulerConfig(name="step", milestones=[2, 4], gamma=0.1), 1.0, 10, 5)
    assert [step.lr(s) for s in (0, 19, 20, 39, 40)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    const = LRSchedule(SchedulerConfig(name="constant"), 0.3, 7, 2)
    assert const.lr(0) == const.lr(13) == 0.3


def test_optimizers():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    sgd = build_optimizer(
        model, OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    )
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"]
    decays = sorted(g["weight_decay"] for g in sgd.param_groups)
    assert decays == [0.0, 1e-3]  # no decay on biases / BN parameters
    assert len(sgd.param_groups[0]["params"]) == 1  # only the Linear weight is decayed
    adamw = build_optimizer(model, OptimizerConfig(name="adamw", lr=1e-3, betas=[0.8, 0.9]))
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.9)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_fused_optimizer_equals_unfused_and_resumes_from_it(name):
    """The optimiser is torch's fused one on the CPU; its steps equal the unfused optimiser's within
    float32 rounding (the unfused torch implementation is the reference), and the state of an
    unfused optimiser (a checkpoint of an older run) loads into it and training continues alike."""
    torch.manual_seed(0)
    # no bias before a BatchNorm: its true gradient is 0 and Adam would normalise rounding noise
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    cfg = OptimizerConfig(name=name, lr=0.05, momentum=0.9, weight_decay=1e-2)
    ours = build_optimizer(model, cfg)
    assert ours.defaults["fused"]
    twin = copy.deepcopy(model)
    groups = param_groups(twin, cfg.weight_decay)
    reference = (
        torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
        if name == "sgd"
        else torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    )
    x = torch.randn(16, 5)

    def step(m, opt):
        opt.zero_grad()
        m(x).square().mean().backward()
        opt.step()

    for _ in range(3):
        step(model, ours), step(twin, reference)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    ours.load_state_dict(
        copy.deepcopy(reference.state_dict())
    )  # unfused state -> a fresh model's optimiser
    for _ in range(2):
        step(model, ours), step(twin, reference)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_checkpoint_errors(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"epoch": 3, "model": {"w": torch.ones(2)}})
    assert load_checkpoint(path)["epoch"] == 3
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    torn = tmp_path / "torn.pt"
    torn.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="torn.pt: not a readable checkpoint"):
        load_checkpoint(torn)
    foreign = tmp_path / "foreign.pt"
    torch.save({"w": torch.ones(1)}, foreign)
    with pytest.raises(CheckpointError, match="not a neuroflow checkpoint"):
        load_checkpoint(foreign)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "neuroflow-checkpoint", "x": Evil()}, evil)
    with pytest.raises(CheckpointError, match="evil.pt"):  # weights_only refuses objects
        load_checkpoint(evil)


def test_resume_without_checkpoint_is_an_error(tiny_config):
    raw, _ = tiny_config()
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(config_from_dict(raw), resume=True)


def test_firing_rate_monitor_counts_spikes():
    net = torch.nn.Sequential(LIF(tau=2.0), torch.nn.Identity(), LIF(tau=2.0))
    x = torch.zeros(4, 2, 10)
    x[:, 0, :5] = 10.0  # strong input: these 5 neurons of sample 0 fire at every step
    with FiringRateMonitor(net) as monitor:
        net(x)
    rates = monitor.rates()
    assert set(rates) == {"0", "2"}
    assert rates["0"] == pytest.approx(5 * 4 / (4 * 2 * 10))
    assert math.isclose(monitor.mean_rate(), (rates["0"] + rates["2"]) / 2)
    assert not net[0]._forward_hooks  # hooks are removed on exit


class _FixedLogits(torch.nn.Module):
    """Logits ``[T=1, B, C]`` taken from each sample's input (a one-hot of the prediction)."""

    def forward(self, x):
        return x[None]


def test_evaluate_reports_mean_class_accuracy():
    from torch.utils.data import DataLoader, TensorDataset

    from neuroflow.train.distributed import DistContext

    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    predicted = torch.tensor([0, 1, 0, 1, 0, 2])
    data = TensorDataset(F.one_hot(predicted, 4).float(), labels)
    data.num_classes = 4  # class 3 has no test sample
    result = evaluate(_FixedLogits(), DataLoader(data, batch_size=4), DistContext())
    # by hand: 4 of 6 right; per class 2/3, 1/1, 1/2, and none for class 3
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert (
        result["class_accuracy"][:3] == pytest.approx([2 / 3, 1.0, 0.5])
        and result["class_accuracy"][3] is None
    )
    assert result["mean_class_accuracy"] == pytest.approx((2 / 3 + 1.0 + 0.5) / 3)
    plain = TensorDataset(F.one_hot(predicted, 4).float(), labels)  # no num_classes: not computed
    assert (
        evaluate(_FixedLogits(), DataLoader(plain, batch_size=4), DistContext())[
            "mean_class_accuracy"
        ]
        is None
    )


def test_tensorboard_is_opt_in_and_its_absence_is_said_once(tmp_path, monkeypatch):
    """Issue 19.2: loop.tensorboard was true by default and nothing was logged without a word."""
    import sys
    import warnings

    from neuroflow.config.schema import LoopConfig
    from neuroflow.train import MetricsLogger

    assert LoopConfig().tensorboard is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # off: no import attempted, no warning
        MetricsLogger(tmp_path / "off").close()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the package is missing
    with pytest.warns(RuntimeWarning, match="tensorboard package is not installed") as caught:
        logger = MetricsLogger(tmp_path / "on", tensorboard=True)
    assert len(caught) == 1 and "pip install tensorboard" in str(caught[0].message)
    logger.log({"epoch": 1, "train_loss": 1.0})  # the run goes on: metrics still written
    logger.close()
    assert (tmp_path / "on" / "metrics.jsonl").read_text().count("\n") == 1


def test_a_slow_first_step_says_what_it_is_doing(monkeypatch):
    """Issue 19.9: the first batch ran silent for 20+ s while numba compiled the kernels."""
    import threading

    from neuroflow.train import trainer
    from neuroflow.train.distributed import DistContext

    said, printed = [], threading.Event()

    def write(text, **kwargs):
        said.append(text)
        printed.set()

    monkeypatch.setattr(trainer.tqdm, "write", write)
    with trainer._SlowNotice(DistContext(), trainer.COMPILE_NOTICE, after_s=0.0):
        assert printed.wait(30)  # the block outlives the delay: the notice comes
    with trainer._SlowNotice(DistContext(), "never", after_s=3600.0):
        pass  # done before the delay: cancelled, nothing printed
    with trainer._SlowNotice(DistContext(rank=1, world_size=2), "rank 1", after_s=0.0) as n:
        assert n.timer is None  # only rank 0 talks
    assert said == [trainer.COMPILE_NOTICE]
    assert "compiling the kernels (first run only" in trainer.COMPILE_NOTICE

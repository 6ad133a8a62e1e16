"""Tune the lsm reservoir on validation data only: k-fold cross-validation on the train + val
splits of an lsm config (the test split is never loaded), reservoir features against the raw
cropped input counts read out by the same logistic readout at the same time binning.

    python benchmarks/lsm_search.py configs/lsm_nmnist.yaml --set data.root=PATH/TO/nmnist \
        [--grid NAME=v1,v2 ...] [--folds 5] [--json FILE]

Every ``--grid`` axis (an ``lsm`` model parameter, values as YAML scalars) is crossed with the
others; every other model key keeps the config's value. The reservoir is frozen, so its features
are computed once per setting (software weights: the ideal twin of the configured chip, which
keeps the search deterministic) and only the readout (``neuroflow.lsm.readout.fit_logistic``)
is refitted per fold. For every ``time_bins`` value the raw-count baseline is scored on the same
folds. Printed: one row per setting with the mean CV accuracy, its standard error over folds,
the difference to the raw baseline at the same binning with its paired standard error (the
per-fold differences: both sides are scored on the same held-out samples), and the reservoir's
firing rate. ``--fold-seed`` reshuffles the folds (repeated CV).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time

import torch

from neuroflow.config import load_config
from neuroflow.lsm.readout import fit_logistic
from neuroflow.lsm.sweep import features_of, load_inputs, parse_axis
from neuroflow.models import build_model


def fold_indices(count: int, folds: int, seed: int = 0) -> list[torch.Tensor]:
    """``folds`` disjoint index sets covering ``range(count)`` after one seeded shuffle."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return [order[i::folds] for i in range(folds)]


def cv_accuracy(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, folds, l2: float
) -> list[float]:
    """Accuracy on each held-out fold of a logistic readout fitted on the other folds."""
    scores = []
    for held in folds:
        mask = torch.ones(len(labels), dtype=torch.bool)
        mask[held] = False
        fitted = fit_logistic(features[mask], labels[mask], num_classes, l2=l2)
        scores.append(fitted.accuracy(features[held], labels[held]))
    return scores


def summarise(scores: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(scores)
    sem = statistics.stdev(scores) / len(scores) ** 0.5 if len(scores) > 1 else 0.0
    return 100 * mean, 100 * sem


def test_once(cfg, l2: float) -> list[dict]:
    """The configured setting measured once on the test split: readouts fitted on train + val,
    raw counts vs the reservoir's software twin vs its RRAM weights, at the config's binning."""
    inputs, num_classes, input_shape = load_inputs(cfg, ("train", "val", "test"))
    x = torch.cat([inputs["train"].x, inputs["val"].x], 1)
    y = torch.cat([inputs["train"].y, inputs["val"].y])
    rows = []
    for features, weights in (
        ("input", "software"),
        ("reservoir", "software"),
        ("reservoir", "rram"),
    ):
        params = {**cfg.model.params, "features": features, "weights": weights}
        model = build_model("lsm", params, num_classes, input_shape)
        fitted = fit_logistic(features_of(model, x), y, num_classes, l2=l2)
        acc = fitted.accuracy(features_of(model, inputs["test"].x), inputs["test"].y)
        rows.append(
            {
                "features": features,
                "weights": weights,
                "time_bins": params.get("time_bins", 1),
                "train_samples": len(y),
                "test_samples": len(inputs["test"].y),
                "test_accuracy": 100 * acc,
            }
        )
        print(
            f"{features:>10} {weights:>9}: test {100 * acc:.1f}% "
            f"({len(inputs['test'].y)} test, fitted on {len(y)})",
            flush=True,
        )
    return rows


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--grid", action="append", default=[], metavar="NAME=v1,v2")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--fold-seed", type=int, default=0, help="added to the config seed")
    p.add_argument("--l2", type=float, default=1e-3, help="readout L2 (both sides)")
    p.add_argument("--weights", default="software", choices=["software", "rram"])
    p.add_argument(
        "--fan-in",
        type=float,
        help="set recurrent_density = FAN_IN / neurons (a fixed mean recurrent in-degree)",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the raw-count rows")
    p.add_argument(
        "--test",
        action="store_true",
        help="no search: measure the config's setting once on the test split",
    )
    p.add_argument("--json", help="write the rows to this file")
    args = p.parse_args(argv)

    cfg = load_config(args.config, overrides=args.set)
    if args.test:
        rows = test_once(cfg, args.l2)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=2)
        return rows
    inputs, num_classes, input_shape = load_inputs(cfg, ("train", "val"))
    x = torch.cat([inputs["train"].x, inputs["val"].x], 1)
    y = torch.cat([inputs["train"].y, inputs["val"].y])
    folds = fold_indices(len(y), args.folds, seed=cfg.seed + args.fold_seed)
    print(f"train+val samples: {len(y)}, folds: {args.folds}, classes: {num_classes}")

    grid = dict(parse_axis(text) for text in args.grid)
    names = list(grid)
    base = {**cfg.model.params, "weights": args.weights}
    rows: list[dict] = []
    baselines: dict[int, list[float]] = {}

    def score(params: dict, label: dict) -> dict:
        start = time.perf_counter()
        model = build_model("lsm", params, num_classes, input_shape)
        feats = features_of(model, x)
        rate = None
        if model.features_kind != "input":
            rate = float(model.reservoir_from_input(x[:, :128]).mean())
        scores = cv_accuracy(feats, y, num_classes, folds, args.l2)
        mean, sem = summarise(scores)
        row = {
            **label,
            "features": params.get("features", "reservoir"),
            "cv_accuracy": mean,
            "cv_sem": sem,
            "fold_scores": scores,
            "firing_rate": rate,
            "feature_size": int(feats.shape[1]),
            "seconds": time.perf_counter() - start,
        }
        rows.append(row)
        return row

    bins_values = grid.get("time_bins", [base.get("time_bins", 1)])
    for bins in [] if args.no_baseline else bins_values:
        row = score({**base, "features": "input", "time_bins": bins}, {"time_bins": bins})
        baselines[bins] = row["fold_scores"]
        print(f"raw counts, time_bins={bins}: {row['cv_accuracy']:.1f} +- {row['cv_sem']:.1f}%")

    header = "".join(f"{n:>20}" for n in names)
    print(f"{header}{'cv acc':>9}{'sem':>6}{'vs raw':>8}{'sem':>6}{'rate':>8}{'F':>7}{'s':>6}")
    for values in itertools.product(*(grid[n] for n in names)):
        label = dict(zip(names, values))
        params = {**base, **label, "features": "reservoir"}
        if args.fan_in is not None:
            params["recurrent_density"] = min(1.0, args.fan_in / params["neurons"])
            label = {**label, "recurrent_density": round(params["recurrent_density"], 4)}
        row = score(params, label)
        bins = params.get("time_bins", 1)
        if bins in baselines:  # paired over folds: both sides see the same held-out samples
            diff, diff_sem = summarise([a - b for a, b in zip(row["fold_scores"], baselines[bins])])
        else:
            diff, diff_sem = float("nan"), float("nan")
        row["vs_raw"], row["vs_raw_sem"] = diff, diff_sem
        cells = "".join(f"{str(v):>20}" for v in values)
        print(
            f"{cells}{row['cv_accuracy']:>8.1f}%{row['cv_sem']:>6.1f}"
            f"{row['vs_raw']:>+8.1f}{row['vs_raw_sem']:>6.1f}"
            f"{row['firing_rate']:>8.3f}{row['feature_size']:>7}{row['seconds']:>6.0f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return rows


if __name__ == "__main__":
    main()

"""The ``neuroflow`` command (also ``python -m neuroflow``).

    neuroflow train CONFIG [--set KEY=VALUE ...] [--resume] [--overwrite]
    neuroflow eval CONFIG --checkpoint CKPT [--split test] [--json] [--set KEY=VALUE ...]
    neuroflow eval CONFIG --nir MODEL.nir [--dt S] [--neuron-mode MODE] [--split test] [--json]
    neuroflow export CONFIG --checkpoint CKPT -o MODEL.nir [--dt S] [--set KEY=VALUE ...]
    neuroflow energy CONFIG --checkpoint CKPT [--hardware NAME] [--precision P] [--json FILE]
                     [--png FILE] [--split test] [--max-samples N] [--set KEY=VALUE ...]
    neuroflow data prepare NAME [--root DIR] [--seed N]
    neuroflow config show CONFIG [--set KEY=VALUE ...]
    neuroflow plot RUN_DIR [RUN_DIR ...] [-o PNG]
    neuroflow lsm sweep CONFIG [--axis NAME=V1,V2 ...] [--split test] [--out DIR] [--json]
    neuroflow lsm energy CONFIG [--hardware NAME ...] [--json]
    neuroflow lsm zeroshot CONFIG [--seen 1,...,7 --unseen 8,9] [--image-data CONFIG2] [--json]
    neuroflow emulate CONFIG --checkpoint CKPT --hardware loihi|speck|xylo [--json FILE]
    neuroflow emulate MODEL.nir --data CONFIG --hardware NAME [--processes N]

Distributed: ``torchrun --nproc-per-node N -m neuroflow train CONFIG``.

Threads: the command sets ``OMP_WAIT_POLICY=PASSIVE`` before torch loads (unless the variable is
already set), so torch's OpenMP threads sleep between parallel regions instead of spinning. On a
machine whose cores other processes also use, spinning threads took the CPU from the threads
doing the work. ``OMP_WAIT_POLICY=ACTIVE`` (or ``OMP_NUM_THREADS``) in the environment
overrides it.

Any :class:`~neuroflow.errors.NeuroflowError` (bad config, missing data, bad checkpoint...) is
printed as one line ``error: ...`` on stderr with exit status 2, without a traceback; argparse
usage errors also exit with 2. neuroflow's own warnings (a skipped bad file, a read-only cache
folder) print as one line ``warning: ...``, without the source line. Each subcommand is a pair
``_add_<name>(subparsers)`` / ``_cmd_<name>(args)``, so new commands plug in the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from neuroflow.allocator import retain_freed_memory
from neuroflow.errors import InvalidArgumentError, NeuroflowError

EXIT_ERROR = 2


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override a config key, e.g. --set optimizer.lr=0.01 loop.epochs=3 "
        "(VALUE is read as a YAML scalar or list, never evaluated)",
    )


def _load(args):
    from neuroflow.config import load_config

    return load_config(args.config, args.overrides)


# ------------------------------------------------------------------------------------ train


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config",
        description="Train a model from a YAML experiment config. Writes checkpoints (last.pt, "
        "best.pt), metrics.jsonl/.csv and summary.json under the config's output_dir "
        "(default runs/<config name>). Run under `torchrun --nproc-per-node N -m neuroflow "
        "train ...` for data-parallel training; data.batch_size is the global batch.",
    )
    p.add_argument("config", help="experiment YAML file, e.g. configs/quickstart.yaml")
    _add_set(p)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue exactly from <output_dir>/last.pt, with the config stored in it "
        "(--set values given with --resume apply on top)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in output_dir (without it, such a run is never "
        "overwritten: training stops with an error)",
    )
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from neuroflow.train import resume_config, train

    cfg = _load(args)
    if args.resume:
        cfg, lines = resume_config(cfg, args.overrides)
        if int(os.environ.get("RANK", "0")) == 0:
            print("\n".join(lines))
    train(cfg, resume=args.resume, overwrite=args.overwrite)
    return 0


# ------------------------------------------------------------------------------------- eval


def _add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint",
        description="Evaluate a checkpoint on one split of the config's data: accuracy, loss "
        "and firing rates.",
    )
    p.add_argument("config", help="experiment YAML file (defines the data and the model)")
    p.add_argument("--checkpoint", metavar="CKPT", help="checkpoint file (.pt)")
    p.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test"],
        help="which split to evaluate (default: test)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_set(p)
    p.add_argument(
        "--nir",
        metavar="MODEL.nir",
        help="evaluate this NIR graph (anyone's) on the config's data instead of a "
        "checkpoint (see docs/nir.md)",
    )
    p.add_argument(
        "--dt",
        type=float,
        default=None,
        help="with --nir: time step in seconds (default: the graph's, else 1e-4)",
    )
    p.add_argument(
        "--neuron-mode",
        default="spec",
        choices=["spec", "sinabs"],
        help="with --nir: NIR's neurons, or IF/LIF as Sinabs and Speck run them",
    )
    p.set_defaults(func=_cmd_eval)


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    return obj


def _cmd_eval(args) -> int:
    if args.nir:
        return _cmd_eval_nir(args)
    if not args.checkpoint:
        raise InvalidArgumentError("neuroflow eval needs --checkpoint CKPT (or --nir MODEL.nir)")
    from neuroflow.train import evaluate_checkpoint

    cfg = _load(args)
    result = evaluate_checkpoint(cfg, args.checkpoint, args.split, progress=not args.json)
    if args.json:
        print(json.dumps(_json_safe(result)))
    else:
        print(f"{args.split} accuracy: {result['accuracy']:.2%} ({result['num_samples']} samples)")
        if result["mean_class_accuracy"] is not None:
            print(f"{args.split} mean class accuracy: {result['mean_class_accuracy']:.2%}")
        print(f"{args.split} loss: {result['loss']:.4f}")
        rates = ", ".join(f"{k} {v:.4f}" for k, v in result["firing_rates"].items())
        print(f"firing rates: {rates} (mean {result['mean_firing_rate']:.4f})")
        print(f"checkpoint: {result['checkpoint']} (epoch {result['epoch']})")
    return 0


def _cmd_eval_nir(args) -> int:
    from neuroflow.nir.commands import evaluate_nir

    result = evaluate_nir(args.nir, _load(args), args.split, args.dt, args.neuron_mode)
    if args.json:
        print(json.dumps(_json_safe(result)))
    else:
        print(f"{args.split} accuracy: {result['accuracy']:.2%} ({result['num_samples']} samples)")
        print(f"nir: {result['nir']} (dt {result['dt']:g} s, neuron mode {result['neuron_mode']})")
    return 0


# ----------------------------------------------------------------------------------- export


def _add_export(sub) -> None:
    p = sub.add_parser(
        "export",
        help="export a checkpoint as a NIR graph",
        description="Write the checkpoint's trained model (BatchNorm folded) as a NIR graph "
        "(HDF5) that SpikingJelly, snnTorch, Norse, Sinabs and chip toolchains read; "
        "docs/nir.md says how each reads it.",
    )
    p.add_argument("config", help="experiment YAML file (defines the model)")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint file (.pt)")
    p.add_argument("-o", "--output", required=True, metavar="MODEL.nir", help="NIR file to write")
    p.add_argument(
        "--dt",
        type=float,
        default=1e-4,
        help="time step in seconds the NIR time constants are written for "
        "(default: 1e-4; give importers the same)",
    )
    _add_set(p)
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from neuroflow.nir.commands import export_checkpoint

    _check_output_files(args.output)
    info = export_checkpoint(_load(args), args.checkpoint, args.output, args.dt)
    print(
        f"wrote {info['nir']}: {info['nodes']} nodes ({', '.join(info['node_types'])}), "
        f"input {info['input_shape']}, dt {info['dt']:g} s"
    )
    return 0


# ----------------------------------------------------------------------------------- energy


def _add_energy(sub) -> None:
    p = sub.add_parser(
        "energy",
        help="estimate a checkpoint's energy per sample on a hardware profile",
        description="Count the checkpoint's operations on one split of the config's data "
        "(MACs, ACs, neuron updates, spikes per layer), price them on a hardware profile and "
        "print a per-layer table with the SNN and ANN-equivalent energy per sample.",
    )
    p.add_argument("config", help="experiment YAML file (defines the data and the model)")
    p.add_argument("--checkpoint", required=True, metavar="CKPT", help="checkpoint file (.pt)")
    p.add_argument(
        "--hardware",
        default="cmos45nm",
        metavar="NAME",
        help="profile name in hardware/ (cmos45nm, loihi, truenorth, rram_macro) "
        "or a profile YAML file (default: cmos45nm)",
    )
    p.add_argument(
        "--precision",
        default=None,
        help="arithmetic precision of the profile, e.g. fp32, fp16, int8 for cmos45nm "
        "(default: the profile's)",
    )
    p.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test"],
        help="which split to run (default: test)",
    )
    p.add_argument(
        "--max-samples",
        type=int,
        default=None,
        metavar="N",
        help="count on at most N samples (default: the whole split)",
    )
    p.add_argument(
        "--json",
        dest="json_path",
        default=None,
        metavar="FILE",
        help="also write the report as JSON",
    )
    p.add_argument(
        "--png", default=None, metavar="FILE", help="also write a bar chart of energy per layer"
    )
    _add_set(p)
    p.set_defaults(func=_cmd_energy)


def _cmd_energy(args) -> int:
    from neuroflow.energy import estimate_checkpoint

    _check_output_files(args.json_path, args.png)  # before the estimate, not after it
    report = estimate_checkpoint(
        _load(args), args.checkpoint, args.hardware, args.precision, args.split, args.max_samples
    )
    print(report.table())
    if args.json_path:
        report.save_json(args.json_path)
        print(f"json: {args.json_path}")
    if args.png:
        report.plot(args.png)
        print(f"chart: {args.png}")
    return 0


# ------------------------------------------------------------------------------------- data


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="dataset utilities", description="Dataset utilities.")
    dsub = p.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    prep = dsub.add_parser(
        "prepare",
        help="prepare a dataset (generate synthetic data, or check a downloaded one)",
        description="Prepare dataset NAME under --root (default datasets/NAME): synthetic "
        "datasets are generated; real ones are checked and told how to obtain when missing.",
    )
    prep.add_argument(
        "name",
        help="dataset name: synthetic-nmnist, synthetic-shapes, nmnist, modelnet40 or ntidigits",
    )
    prep.add_argument("--root", default=None, help="target folder (default: datasets/NAME)")
    prep.add_argument("--seed", type=int, default=0, help="seed of synthetic generators")
    prep.set_defaults(func=_cmd_data_prepare)


def _cmd_data_prepare(args) -> int:
    from neuroflow.data import prepare_dataset

    root = args.root if args.root is not None else os.path.join("datasets", args.name)
    path = prepare_dataset(args.name, root, seed=args.seed)
    print(f"{args.name} ready in {path}")
    return 0


# ----------------------------------------------------------------------------------- config


def _add_config(sub) -> None:
    p = sub.add_parser("config", help="inspect configs", description="Inspect configs.")
    csub = p.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    show = csub.add_parser(
        "show",
        help="print the resolved config (defaults and overrides applied) as YAML",
        description="Validate CONFIG, apply --set overrides and defaults, print it as YAML.",
    )
    show.add_argument("config", help="experiment YAML file")
    _add_set(show)
    show.set_defaults(func=_cmd_config_show)


def _cmd_config_show(args) -> int:
    from neuroflow.config import dump_config

    sys.stdout.write(dump_config(_load(args)))
    return 0


# ------------------------------------------------------------------------------------- plot


def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot",
        help="redraw the training curves of one or several runs",
        description="Draw loss and accuracy per epoch of each RUN_DIR (its metrics.jsonl or "
        "metrics.csv) into one PNG, one line per run and split.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="output_dir of a training run")
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="PNG",
        help="where to write (default: RUN_DIR/curves.png for one run, ./curves.png for several)",
    )
    p.set_defaults(func=_cmd_plot)


def _cmd_plot(args) -> int:
    from neuroflow.viz import plot_runs

    print(f"curves: {plot_runs(args.run_dirs, args.output)}")
    return 0


# ------------------------------------------------------------------------------------- main


def _check_output_files(*paths: str | None) -> None:
    """Create the folders of output files given on the command line, so that a typo or an
    unwritable place fails at once with one line instead of after a long computation."""
    from neuroflow.experiment import ensure_output_dir

    for path in paths:
        if path:
            ensure_output_dir(Path(path).parent if Path(path).parent != Path("") else Path("."))


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("neuroflow")
    except Exception:  # a source tree that is not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuroflow",
        description="Spiking neural networks on PyTorch: train, evaluate, estimate energy, "
        "prepare data.",
    )
    parser.add_argument("--version", action="version", version=f"neuroflow {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # imported here, not at the top: the emulator package loads torch, which must start after
    # thread_defaults() (main() calls it first)
    from neuroflow.emulator.command import add_emulate_parser
    from neuroflow.lsm.command import add_lsm_parser

    for add in (_add_train, _add_eval, _add_export, _add_energy, _add_data, _add_config, _add_plot):
        add(sub)
    add_lsm_parser(sub)  # neuroflow lsm sweep (neuroflow.lsm.command)
    add_emulate_parser(sub)  # neuroflow emulate (neuroflow.emulator.command)
    return parser


def _rank_prefix() -> str:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return f"[rank {os.environ.get('RANK', '0')}] " if world > 1 else ""


_PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep
_python_format_warning = warnings.formatwarning


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """neuroflow's own warnings as one line ``warning: ...``; others (torch, numpy) as Python
    formats them, with their source line for whoever reports them upstream."""
    if str(Path(filename).resolve()).startswith(_PACKAGE_DIR):
        return f"warning: {_rank_prefix()}{message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


def thread_defaults(environ=os.environ) -> None:
    """Passive OpenMP waiting unless the environment chose otherwise (see the module notes).

    Only effective before torch is imported: OpenMP reads the variable when it starts."""
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 error, 130 interrupted)."""
    thread_defaults()
    args = build_parser().parse_args(argv)
    # a training process reuses its freed tensors' memory instead of page-faulting it back in
    retain_freed_memory()
    previous_format, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        return int(args.func(args) or 0)
    except NeuroflowError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message holds
        print(f"error: {_rank_prefix()}{message}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # a file a command reads or writes; its path and the reason
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {_rank_prefix()}{where}{exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = previous_format


if __name__ == "__main__":
    sys.exit(main())

"""``neuroflow lsm ...`` subcommands; the CLI registers them with :func:`add_lsm_parser`. Heavy
imports happen only when a subcommand runs."""

from __future__ import annotations

import json
import sys


def add_lsm_parser(sub) -> None:
    """Add ``lsm sweep`` to the ``neuroflow`` subparsers ``sub``."""
    p = sub.add_parser(
        "lsm",
        help="liquid state machine tools",
        description="Liquid state machine (RRAM reservoir) tools.",
    )
    lsub = p.add_subparsers(dest="lsm_command", metavar="COMMAND", required=True)
    sweep = lsub.add_parser(
        "sweep",
        help="accuracy against device non-idealities (table, JSON, plot)",
        description="For an lsm CONFIG: refit a readout on the training split for the software "
        "twin, the RRAM chip, and every value of each axis (one axis at a time), and score it on "
        "--split. Writes sweep.json and sweep.png into --out.",
    )
    sweep.add_argument("config", help="experiment YAML file with model.name: lsm")
    sweep.add_argument(
        "--axis",
        action="append",
        default=None,
        metavar="NAME=V1,V2,...",
        help="an lsm model parameter and its values (repeatable); default: "
        "read_noise, stuck_off_rate, stuck_on_rate, input_density, adc_bits",
    )
    sweep.add_argument("--readout", default="logistic", choices=["logistic", "ridge"])
    sweep.add_argument("--split", default="test", choices=["train", "val", "test"])
    sweep.add_argument("--out", default=None, help="output folder (default: <output_dir>/sweep)")
    sweep.add_argument("--json", action="store_true", help="print the rows as JSON")
    sweep.add_argument(
        "--set",
        dest="overrides",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override a config key (YAML scalar or list)",
    )
    sweep.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args) -> int:
    from pathlib import Path

    from neuroflow.config import load_config
    from neuroflow.lsm.sweep import format_table, parse_axis, run_sweep, write_results

    cfg = load_config(args.config, args.overrides)
    axes = dict(parse_axis(a) for a in args.axis) if args.axis else None
    rows = run_sweep(cfg, axes, readout=args.readout, split=args.split)
    out = Path(args.out) if args.out else Path(cfg.output_dir) / "sweep"
    write_results(rows, out)
    if args.json:
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(format_table(rows))
        print(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")
    return 0

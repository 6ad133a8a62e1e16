"""``neuroflow emulate``: a trained network on a chip, scored on a dataset split.

neuroflow emulate CONFIG --checkpoint CKPT --hardware speck [--split test] [--json FILE]
neuroflow emulate model.nir --hardware loihi --data CONFIG [--json FILE]
"""

from __future__ import annotations

import json
from pathlib import Path

from neuroflow.emulator.compiler import CHIPS
from neuroflow.errors import InvalidArgumentError


def add_emulate_parser(sub) -> None:
    p = sub.add_parser(
        "emulate",
        help="run a trained network on an emulated neuromorphic chip",
        description="Compile a checkpoint (or a NIR graph) for Loihi, Speck or Xylo, run the "
        "split in the chip's integer arithmetic and report accuracy against the float model, "
        "agreement, energy and latency per sample and the per-layer resources (docs/emulator.md).",
    )
    p.add_argument(
        "source", help="experiment YAML (with --checkpoint) or a .nir graph (with --data)"
    )
    p.add_argument("--checkpoint", metavar="CKPT", help="checkpoint of the config's model")
    p.add_argument("--hardware", required=True, choices=CHIPS, help="the chip to emulate")
    p.add_argument(
        "--data", metavar="CONFIG", help="with a .nir source: the config whose data to use"
    )
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--max-samples", type=int, default=None, help="score only the first N samples")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="shard each batch's streams over N worker processes (same figures; default 1)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON to FILE")
    p.set_defaults(func=run_emulate)


def _check_json_path(path: str) -> None:
    """Fail at once, in one line, when ``--json FILE`` cannot be written (its folder is a file
    or read-only, or FILE is a folder), rather than after the whole emulation."""
    from neuroflow.experiment import OutputPathError, ensure_output_dir

    target = Path(path)
    ensure_output_dir(target.parent)
    if target.is_dir():
        raise OutputPathError(f"cannot write --json {target}: it is a folder")


def _write_json(path: str, payload: dict) -> None:
    from neuroflow.experiment import atomic_write

    text = json.dumps(payload, indent=2) + "\n"
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def run_emulate(args) -> int:
    from neuroflow.config import load_config
    from neuroflow.emulator.compiler import compile
    from neuroflow.emulator.evaluate import evaluate
    from neuroflow.emulator.shard import check_processes
    from neuroflow.experiment import build_loaders, load_trained_model

    check_processes(args.processes)
    if args.json:
        _check_json_path(args.json)
    if args.source.endswith(".nir"):
        if not args.data:
            raise InvalidArgumentError(
                "neuroflow emulate MODEL.nir needs --data CONFIG (the data to run)"
            )
        from neuroflow.nir import from_nir, read_graph

        cfg = load_config(args.data)
        graph = read_graph(args.source)
        model = from_nir(graph)
        net = compile(graph, hardware=args.hardware)
    else:
        if not args.checkpoint:
            raise InvalidArgumentError("neuroflow emulate CONFIG needs --checkpoint CKPT")
        cfg = load_config(args.source)
        model = load_trained_model(cfg, args.checkpoint)
        net = compile(model, hardware=args.hardware, input_shape=model.input_shape)
    loader = build_loaders(cfg, (args.split,))[args.split]
    summary = evaluate(net, model, loader, args.max_samples, processes=args.processes)
    summary["source"] = args.source
    summary["split"] = args.split
    print(
        f"{args.hardware}: {args.split} accuracy {summary['accuracy']:.2%} on the chip, "
        f"{summary['float_accuracy']:.2%} float, agreement {summary['agreement']:.2%} "
        f"({summary['num_samples']} samples)"
    )
    print(
        f"energy {summary['energy_per_sample_pj'] / 1e6:.4g} uJ/sample, latency "
        f"{summary['latency_per_sample_s'] * 1e3:.4g} ms/sample"
    )
    for row in summary["layers"]:
        mem = ", ".join(
            f"{k} {v['used']:,}/{v['limit']:,}" for k, v in row.get("memory", {}).items()
        )
        corr = row.get("spike_count_correlation")
        print(
            f"  {row['name']:>10}: cores {row.get('cores')}, "
            f"{row.get('synaptic_events_per_sample', 0):,.0f} "
            f"syn events/sample, {mem}"
            + (f", spike-count r {corr:.3f}" if corr is not None else "")
        )
    for note in summary["approximations"]:
        print(f"  approximation: {note}")
    if args.json:
        _write_json(args.json, summary)
    return 0

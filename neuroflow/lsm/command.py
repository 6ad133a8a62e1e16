"""``neuroflow lsm ...`` subcommands; the CLI registers them with :func:`add_lsm_parser`. Heavy
imports happen only when a subcommand runs."""

from __future__ import annotations

import json
import sys


def _add_set(
    parser,
    flag: str = "--set",
    dest: str = "overrides",
    text: str = "override a config key (YAML scalar or list, never evaluated)",
) -> None:
    parser.add_argument(
        flag, dest=dest, metavar="KEY=VALUE", nargs="+", action="extend", default=[], help=text
    )


def add_lsm_parser(sub) -> None:
    """Add ``lsm sweep``, ``lsm energy`` and ``lsm zeroshot`` to the ``neuroflow`` subparsers."""
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
    _add_set(sweep)
    sweep.set_defaults(func=_cmd_sweep)
    energy = lsub.add_parser(
        "energy",
        help="energy per sample on the RRAM macro against digital hardware",
        description="Run the lsm of CONFIG (a freshly programmed chip; the readout's size is all "
        "that matters) on --samples samples of --split and price its operations on each "
        "--hardware profile (default rram_macro, cmos45nm, loihi).",
    )
    energy.add_argument("config", help="experiment YAML file with model.name: lsm")
    energy.add_argument("--hardware", nargs="+", default=["rram_macro", "cmos45nm", "loihi"])
    energy.add_argument("--split", default="test", choices=["train", "val", "test"])
    energy.add_argument("--samples", type=int, default=100)
    energy.add_argument("--json", action="store_true", help="print counts and energies as JSON")
    _add_set(energy)
    energy.set_defaults(func=_cmd_energy)
    zs = lsub.add_parser(
        "zeroshot",
        help="zero-shot event <-> image retrieval on unseen classes (CLIP-style readout)",
        description="Train one FC+GELU projection per modality (reservoir features of the "
        "recordings: N-MNIST events or N-TIDIGITS audio; the image side: rate-coded static digit "
        "images, or with --image-data the reservoir features of another event dataset through its "
        "own lsm, e.g. N-MNIST as in the paper's audio -> image scripts) with a symmetric "
        "contrastive loss on the --seen digits of the training split, then score top-1 "
        "retrieval on the --unseen digits of --split in both directions.",
    )
    zs.add_argument("config", help="experiment YAML file with model.name: lsm")
    zs.add_argument("--seen", default="1,2,3,4,5,6,7", help="comma-separated training digits")
    zs.add_argument("--unseen", default="8,9", help="comma-separated test digits")
    zs.add_argument("--split", default="test", choices=["val", "test"])
    zs.add_argument("--dim", type=int, default=64)
    zs.add_argument("--epochs", type=int, default=100)
    zs.add_argument(
        "--image-data",
        metavar="CONFIG",
        default=None,
        help="image side from a second lsm config: its data and model sections (e.g. "
        "configs/lsm_zeroshot.yaml: N-MNIST through a decay 0.9, threshold 5 reservoir); "
        "default: rate-coded static 8x8 digit images",
    )
    _add_set(
        zs,
        "--image-set",
        "image_overrides",
        "override a key of the --image-data config (as --set does for CONFIG)",
    )
    zs.add_argument("--json", action="store_true", help="print the result as JSON")
    _add_set(zs)
    zs.set_defaults(func=_cmd_zeroshot)


def _classes(text: str) -> list[int]:
    from neuroflow.errors import ConfigError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"classes must be comma-separated integers, got {text!r}") from None


def _image_config(args):
    """The ``--image-data`` config, checked before any recording is read."""
    from neuroflow.config import load_config
    from neuroflow.errors import ConfigError

    if args.image_data is None:
        if args.image_overrides:
            raise ConfigError("--image-set needs --image-data CONFIG (the config it overrides)")
        return None
    cfg = load_config(args.image_data, args.image_overrides)
    if cfg.model.name != "lsm":
        raise ConfigError(
            f"--image-data {args.image_data}: model.name is {cfg.model.name!r}; the image side "
            "runs its recordings through its own reservoir, so it needs model.name: lsm"
        )
    return cfg


def _image_side(cfg, path: str, split: str):
    """The image side from an lsm config: its reservoir's features of its ``train`` and
    ``split`` recordings, each labelled with the digit it shows."""
    from neuroflow.lsm.sweep import features_of, load_inputs
    from neuroflow.lsm.zeroshot import reservoir_modality
    from neuroflow.models import build_model

    inputs, num_classes, input_shape = load_inputs(cfg, ("train", split))
    model = build_model("lsm", dict(cfg.model.params), num_classes, input_shape)
    train, test = inputs["train"], inputs[split]
    return reservoir_modality(
        features_of(model, train.x),
        train.digits,
        features_of(model, test.x),
        test.digits,
        name=f"{cfg.data.name} recordings through their own lsm ({path})",
    )


def _cmd_zeroshot(args) -> int:
    from neuroflow.config import load_config
    from neuroflow.lsm.sweep import features_of, load_inputs
    from neuroflow.lsm.zeroshot import static_digit_images, train_zero_shot
    from neuroflow.models import build_model

    cfg = load_config(args.config, args.overrides)
    image_cfg = _image_config(args)
    inputs, num_classes, input_shape = load_inputs(cfg, ("train", args.split))
    model = build_model("lsm", dict(cfg.model.params), num_classes, input_shape)
    train, test = inputs["train"], inputs[args.split]
    if image_cfg is None:
        images = static_digit_images(cfg.data.time_steps)
    else:
        images = _image_side(image_cfg, args.image_data, args.split)
    # pairs link a recording to images of its class's digit (N-TIDIGITS: "oh", "zero" -> 0)
    result = train_zero_shot(
        features_of(model, train.x),
        train.digits,
        features_of(model, test.x),
        test.digits,
        _classes(args.seen),
        _classes(args.unseen),
        dim=args.dim,
        epochs=args.epochs,
        seed=cfg.seed,
        images=images,
    ).as_dict()
    if args.json:
        json.dump({**result, "image_side": images.name}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"image side: {images.name}")
        print(
            f"unseen {args.unseen}: event->image {100 * result['event_to_image']:.1f}%, "
            f"image->event {100 * result['image_to_event']:.1f}% "
            f"(chance {100 * result['chance_unseen']:.1f}%)"
        )
        print(
            f"seen {args.seen}: event->image {100 * result['seen_event_to_image']:.1f}%, "
            f"image->event {100 * result['seen_image_to_event']:.1f}% "
            f"(chance {100 * result['chance_seen']:.1f}%)"
        )
    return 0


def _cmd_energy(args) -> int:
    import torch

    from neuroflow.config import load_config
    from neuroflow.errors import InvalidArgumentError
    from neuroflow.lsm.energy import compare_energy, format_energy
    from neuroflow.lsm.sweep import load_inputs
    from neuroflow.models import build_model

    if args.samples < 1:
        raise InvalidArgumentError(f"--samples must be >= 1, got {args.samples}")
    cfg = load_config(args.config, args.overrides)
    inputs, num_classes, input_shape = load_inputs(cfg, (args.split,), args.samples)
    model = build_model("lsm", dict(cfg.model.params), num_classes, input_shape)
    with torch.no_grad():
        result = compare_energy(model, inputs[args.split].x, tuple(args.hardware))
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_energy(result))
    return 0


def _cmd_sweep(args) -> int:
    from pathlib import Path

    from neuroflow.config import load_config
    from neuroflow.experiment import ensure_output_dir
    from neuroflow.lsm.sweep import format_table, parse_axis, run_sweep, write_results

    cfg = load_config(args.config, args.overrides)
    axes = dict(parse_axis(a) for a in args.axis) if args.axis else None
    out = ensure_output_dir(Path(args.out) if args.out else Path(cfg.output_dir) / "sweep")
    rows = run_sweep(cfg, axes, readout=args.readout, split=args.split)  # minutes: check out first
    write_results(rows, out)
    if args.json:
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(format_table(rows))
        print(f"wrote {out / 'sweep.json'} and {out / 'sweep.png'}")
    return 0

"""Per-epoch metrics: ``metrics.jsonl`` (one JSON object per epoch), ``metrics.csv`` (the same
table) and, when asked (``loop.tensorboard: true``), TensorBoard scalars under ``tensorboard/``.

TensorBoard is not a dependency: asked for without the package installed, the run goes on and
one warning says so and how to install it."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path


class MetricsLogger:
    """Append one record per epoch. ``resume_epoch``: keep only records with ``epoch <=`` it
    (a run killed after logging an epoch but before its checkpoint would otherwise log it twice);
    ``None`` starts both files afresh."""

    def __init__(
        self, out_dir: str | Path, resume_epoch: int | None = None, tensorboard: bool = False
    ):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = self.dir / "metrics.jsonl"
        self.csv = self.dir / "metrics.csv"
        self.records: list[dict] = []
        if resume_epoch is not None and self.jsonl.exists():
            for line in self.jsonl.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line torn by a kill
                    continue
                if rec.get("epoch", math.inf) <= resume_epoch:
                    self.records.append(rec)
        self.jsonl.write_text("".join(json.dumps(r) + "\n" for r in self.records))
        self._write_csv()
        self.writer = None
        if tensorboard:
            self.writer = _tensorboard_writer(self.dir / "tensorboard")

    def _write_csv(self) -> None:
        columns: list[str] = []
        for r in self.records:
            columns += [k for k in r if k not in columns]
        with open(self.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=columns)
            w.writeheader()
            w.writerows(self.records)

    def log(self, record: dict) -> None:
        self.records.append(record)
        with open(self.jsonl, "a") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
        self._write_csv()  # the csv header may grow (validation columns appear later)
        if self.writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, record["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _tensorboard_writer(folder: Path):
    """A SummaryWriter on ``folder``, or None with one warning when TensorBoard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's module imports the tensorboard package, which is optional
        warnings.warn(
            "loop.tensorboard is true but the tensorboard package is not installed: no "
            "TensorBoard logs (metrics.jsonl and metrics.csv are written); "
            "pip install tensorboard, or set loop.tensorboard: false",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return SummaryWriter(str(folder))

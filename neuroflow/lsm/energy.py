"""Energy of an ``lsm`` inference on the RRAM macro against digital hardware, from the operations
the network actually performs on given inputs (per sample, pJ).

Counted per sample (``T`` steps, ``D`` inputs, ``N`` neurons, ``F`` features, ``C`` classes):

- **input projection**: digital hardware does one accumulate per input event and target neuron
  it reaches (``events x fan-out`` ACs, fan-out = the input's non-zero weights, ``N`` for a fully
  formed crossbar; an event count ``k`` is ``k`` events). The macro reads its crossbar
  bit-serially: per step and input bit plane with at least one driven row, one read; each read
  costs one cell read per driven row and column (``rows_on x N``) and one ADC conversion per
  column (``N``). Planes with no driven row are skipped (their columns read exactly 0).
- **recurrent**: digital: ``spikes x fan-out`` ACs (fan-out = the neuron's non-zero outgoing
  weights). Macro: one read per step in which any neuron spiked, ``spikes x N`` cell reads and
  ``N`` conversions.
- **neurons**: ``T x N`` updates and the spikes emitted, priced by each profile's
  ``neuron_update`` / ``spike`` (0 on cmos45nm, by the SNN energy convention, and on the macro,
  whose digital periphery is not modelled).
- **readout**: ``F x C`` multiply-accumulates of real-valued features: ``mac`` on the digital
  profiles; on the macro the digital readout's ``readout_mac_pj``.

Profiles come from :func:`neuroflow.energy.load_hardware`; the macro's ``adc_conversion_pj`` and
``readout_mac_pj`` are read from its ``limits`` section (documented parameters, see
``hardware/rram_macro.yaml``). Differential pairs count one cell read per weight (the pair's two
cells share one read of the column pair; their second cell's energy is inside the per-read
figure), an assumption stated in docs/rram_lsm.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from neuroflow.energy import load_hardware
from neuroflow.errors import ConfigError
from neuroflow.models import LSM


@dataclass
class LSMOpCounts:
    """Per-sample operation counts of one lsm inference."""

    input_events: float = 0.0
    input_synaptic_ops: float = 0.0
    input_reads: float = 0.0
    input_cell_reads: float = 0.0
    recurrent_synaptic_ops: float = 0.0
    recurrent_reads: float = 0.0
    recurrent_cell_reads: float = 0.0
    adc_conversions: float = 0.0
    neuron_updates: float = 0.0
    spikes: float = 0.0
    readout_macs: float = 0.0
    columns: int = 0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def count_lsm_ops(model: LSM, x: torch.Tensor) -> LSMOpCounts:
    """Operation counts per sample for prepared crossbar inputs ``x [T, B, D]`` (see the module
    docstring)."""
    steps, batch, _ = x.shape
    n = model.neurons
    c = LSMOpCounts(columns=n)
    xi = x.to(torch.int64)
    c.input_events = float(xi.sum()) / batch
    in_fan_out = (model.w_in != 0).sum(1).to(torch.float64)  # [D] non-zero weights per input
    c.input_synaptic_ops = float((xi.to(torch.float64) * in_fan_out).sum()) / batch
    rows_on = torch.zeros((), dtype=torch.float64)
    reads = torch.zeros((), dtype=torch.float64)
    for bit in range(model.input_bits):
        plane = (xi >> bit) & 1  # [T, B, D]
        on = plane.sum(-1).to(torch.float64)  # driven rows per read
        rows_on += on.sum()
        reads += (on > 0).sum()
    c.input_reads = float(reads) / batch
    c.input_cell_reads = float(rows_on) * n / batch
    if model.features_kind != "input":
        spikes = model.reservoir_from_input(x)
        fan_out = (model.w_rec != 0).sum(1).to(torch.float64)  # [N] outgoing synapses
        # spikes of steps 0..T-2 are read back at the next step
        sent = spikes[:-1]
        c.recurrent_synaptic_ops = float((sent.to(torch.float64) * fan_out).sum()) / batch
        c.recurrent_reads = float((sent.sum(-1) > 0).sum()) / batch
        c.recurrent_cell_reads = float(sent.sum()) * n / batch
        c.neuron_updates = float(steps * n)
        c.spikes = float(spikes.sum()) / batch
    c.adc_conversions = (c.input_reads + c.recurrent_reads) * n
    c.readout_macs = float(model.feature_size * model.num_classes)
    return c


def lsm_energy(counts: LSMOpCounts, hardware: str) -> dict[str, float]:
    """Per-sample energy (pJ) by part on profile ``hardware`` (a name or a YAML path). A profile
    with ``adc_conversion_pj`` and ``readout_mac_pj`` under ``limits`` is priced as an in-memory
    macro (cell reads + ADC conversions), any other as digital hardware (ACs)."""
    hw = load_hardware(hardware)
    macro = "adc_conversion_pj" in hw.limits
    if macro and "readout_mac_pj" not in hw.limits:
        raise ConfigError(f"{hw.path}: an in-memory macro profile needs limits.readout_mac_pj too")
    neurons = counts.neuron_updates * hw.neuron_update_pj + counts.spikes * hw.spike_pj
    if macro:
        adc = hw.limits["adc_conversion_pj"]
        parts = {
            "input_projection": counts.input_cell_reads * hw.ac_pj
            + counts.input_reads * counts.columns * adc,
            "recurrent": counts.recurrent_cell_reads * hw.ac_pj
            + counts.recurrent_reads * counts.columns * adc,
            "neurons": neurons,
            "readout": counts.readout_macs * hw.limits["readout_mac_pj"],
        }
    else:
        parts = {
            "input_projection": counts.input_synaptic_ops * hw.ac_pj,
            "recurrent": counts.recurrent_synaptic_ops * hw.ac_pj,
            "neurons": neurons,
            "readout": counts.readout_macs * hw.mac_pj,
        }
    parts["total"] = sum(parts.values())
    return {"hardware": hw.name, **parts}


def compare_energy(
    model: LSM, x: torch.Tensor, profiles=("rram_macro", "cmos45nm", "loihi")
) -> dict:
    """Counts and per-profile energies for prepared inputs ``x [T, B, D]``."""
    counts = count_lsm_ops(model, x)
    return {"counts": counts.as_dict(), "energy_pj": [lsm_energy(counts, p) for p in profiles]}


def format_energy(result: dict) -> str:
    rows = result["energy_pj"]
    head = (
        f"{'hardware':<12}{'input':>12}{'recurrent':>12}{'neurons':>12}{'readout':>12}{'total':>12}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['hardware']:<12}"
            + "".join(
                f"{r[k] / 1e3:>10.2f}nJ"
                for k in ("input_projection", "recurrent", "neurons", "readout", "total")
            )
        )
    base = rows[0]["total"]
    lines.append(
        "ratios to "
        + rows[0]["hardware"]
        + ": "
        + ", ".join(f"{r['hardware']} {r['total'] / base:.1f}x" for r in rows[1:] if base)
    )
    return "\n".join(lines)

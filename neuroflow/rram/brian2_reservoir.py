"""The reservoir of :mod:`neuroflow.rram.reservoir` written in Brian2 (clock-driven), as an
independent cross-check and a speed reference. Needs ``brian2`` (a dev dependency).

Brian2's default schedule runs, every step: ``groups`` (our ``run_regularly`` update), then
``thresholds``, ``synapses``, ``resets``. So a spike at step ``t`` is delivered by the synapses
into a separate variable ``I_rec`` of its targets (after thresholding, so the reset cannot erase
it), and the next step's update consumes it::

    v = decay * v + I_ext(t, i) + I_rec;  I_rec = 0      (groups)
    spike if v >= threshold                                (thresholds)
    I_rec_post += w  for each spike                        (synapses)
    v = 0 for the spiking neurons                          (resets)

which is the same recurrence as :func:`~neuroflow.rram.reservoir.reservoir_step` without read
noise or ADC (software weights). A batch of ``B`` samples runs as one group of ``B x N``
neurons with ``B`` disjoint copies of the recurrent synapses.
"""

from __future__ import annotations

import numpy as np
import torch

from neuroflow.errors import InputShapeError, NeuroflowError


def run_reservoir_brian2(
    u: torch.Tensor, w: torch.Tensor, decay: float, threshold: float, target: str = "numpy"
) -> torch.Tensor:
    """Spikes ``[T, B, N]`` (float64 0/1) of the reservoir driven by ``u [T, B, N]`` with
    recurrent weights ``w [N, N]`` (rows presynaptic), simulated by Brian2 with codegen
    ``target`` (``"numpy"`` or ``"cython"``)."""
    try:
        import brian2 as b2
    except ImportError:
        raise NeuroflowError(
            "the Brian2 reservoir needs brian2: pip install brian2==2.9.0"
        ) from None
    if u.dim() != 3 or w.shape != (u.shape[2], u.shape[2]):
        raise InputShapeError(
            f"expected u [T, B, N] and w [N, N], got {list(u.shape)} and {list(w.shape)}"
        )
    steps, batch, n = u.shape
    b2.prefs.codegen.target = target
    dt = 1.0 * b2.ms
    current = b2.TimedArray(u.detach().double().reshape(steps, batch * n).numpy(), dt=dt)
    group = b2.NeuronGroup(
        batch * n,
        "v : 1\nI_rec : 1",
        threshold="v >= vth",
        reset="v = 0",
        dt=dt,
        namespace={"vth": float(threshold)},
    )
    group.run_regularly("v = decay * v + current(t, i) + I_rec\nI_rec = 0", when="groups", dt=dt)
    group.namespace.update({"decay": float(decay), "current": current})
    wn = w.detach().double().numpy()
    pre, post = np.nonzero(wn)
    synapses = b2.Synapses(group, group, "w : 1", on_pre="I_rec_post += w", dt=dt)
    if len(pre):
        offsets = (np.arange(batch) * n)[:, None]
        synapses.connect(i=(offsets + pre).ravel(), j=(offsets + post).ravel())
        synapses.w = np.tile(wn[pre, post], batch)
    monitor = b2.SpikeMonitor(group)
    net = b2.Network(group, synapses, monitor)
    net.run(steps * dt)
    out = np.zeros((steps, batch * n))
    step = np.rint(np.asarray(monitor.t / dt)).astype(np.int64)
    out[step, np.asarray(monitor.i)] = 1.0
    return torch.from_numpy(out.reshape(steps, batch, n))

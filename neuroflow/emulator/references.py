"""Drivers for the independent peer simulators the emulator is checked and timed against.

Each imports its peer lazily (dev-only packages): ``xylosim`` (SynSense's C++ XyloSim).
"""

from __future__ import annotations

import numpy as np

from neuroflow.emulator.xylo import XyloNetwork


class XyloSimReference:
    """A ``xylosim.v2.XyloLayer`` holding the same integers as ``net``; synapses are listed in
    the emulator's table order (per presynaptic neuron, ascending target and synapse)."""

    def __init__(self, net: XyloNetwork):
        from xylosim import v2

        def table(w3):
            rows = []
            for pre in range(w3.shape[0]):
                post, syn = np.nonzero(w3[pre])
                rows.append(
                    [v2.XyloSynapse(int(p), int(s), int(w3[pre, p, s])) for p, s in zip(post, syn)]
                )
            return rows

        # XyloLayer keeps raw pointers to these objects: they must live as long as the layer
        self._tables = [table(net.w_in), table(net.w_rec), table(net.w_out[:, :, None])]
        self.layer = v2.XyloLayer(
            *self._tables,
            [[] for _ in range(net.n_hidden)],
            net.threshold.tolist(),
            net.threshold_out.tolist(),
            True,
            net.bias.tolist(),
            net.bias_out.tolist(),
            net.shift_in,
            net.shift_rec,
            net.shift_out,
            net.dash_mem.tolist(),
            net.dash_mem_out.tolist(),
            net.dash_syn.tolist(),
            [[int(d)] for d in net.dash_syn_out],
            "reference",
        )

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Hidden ``[T, H]``, output ``[T, O]`` spikes and hidden ``v_mem [T, H]`` for one stream
        ``x [T, n_in]``, from a reset state."""
        self.layer.reset_all()
        out = np.array(self.layer.evolve(np.asarray(x).astype(int).tolist()), np.uint8)
        hidden = np.array(self.layer.rec_recurrent_spikes, np.uint8)
        return hidden, out, np.array(self.layer.rec_v_mem).T


def brian2_xylo_spikes(
    net: XyloNetwork, x: np.ndarray, target: str = "numpy", timings: dict | None = None
) -> np.ndarray:
    """Hidden spike counts ``[T, H]`` of ``net``'s hidden population simulated by Brian2
    with integer state variables (``x [T, n_in]`` input events, 0/1).

    The bit-shift decays are floor divisions, saturation is ``clip``; Brian2 fires one spike
    per tick and sums a tick's synaptic events before any saturation, so it equals the chip
    model only where no neuron fires twice in a tick and no current saturates. Brian2 delivers
    a tick's spikes after that tick's state update, which is where the chip delivers recurrent
    spikes (next tick, before the decay); the chip adds input events of tick ``t`` before
    tick ``t``'s decay, so they are given to Brian2 at step ``t - 1`` (tick 0's as initial
    currents). Returns ``[T, H]``, tick for tick the emulator's.
    ``target``: Brian2's code generation target (``numpy`` or ``cython``), or
    ``cpp_standalone``: Brian2 writes, compiles (g++) and runs a C++ program, one thread, in a
    temporary folder; ``timings`` (a dict) then receives Brian2's own figures, ``run_s`` (the
    simulation loop, as the program measures it), ``binary_s`` (the program's wall time) and
    ``compile_s``.
    """
    import brian2 as b2

    if target != "cpp_standalone":
        b2.prefs.codegen.target = target
        return _brian2_xylo_run(b2, net, x)
    import shutil
    import tempfile

    folder = tempfile.mkdtemp(prefix="neuroflow_brian2_")
    b2.set_device("cpp_standalone", directory=folder, build_on_run=True)
    b2.prefs.devices.cpp_standalone.openmp_threads = 0
    try:
        counts = _brian2_xylo_run(b2, net, x)
        if timings is not None:
            timings["run_s"] = float(b2.device._last_run_time)
            timings["binary_s"] = float(b2.device.timers["run_binary"])
            timings["compile_s"] = float(sum(filter(None, b2.device.timers["compile"].values())))
    finally:
        from brian2.devices.device import reset_device

        b2.device.reinit()
        reset_device()
        shutil.rmtree(folder, ignore_errors=True)
    return counts


def _brian2_xylo_run(b2, net: XyloNetwork, x: np.ndarray) -> np.ndarray:
    ms = b2.ms
    H, T = net.n_hidden, x.shape[0]
    eqs = "v : integer\ni0 : integer\ni1 : integer\nthr : integer\nbias : integer\n"
    eqs += "dm : integer\nd0 : integer\nd1 : integer"
    group = b2.NeuronGroup(H, eqs, threshold="v >= thr", reset="v -= thr", dt=1 * ms)
    group.run_regularly(
        "i0 = i0 - (i0 // 2**d0 + int(i0 > 0 and i0 // 2**d0 == 0))\n"
        "i1 = i1 - (i1 // 2**d1 + int(i1 > 0 and i1 // 2**d1 == 0))\n"
        "v = clip(v + clip(clip(-(v // 2**dm + int(v > 0 and v // 2**dm == 0)) + i0 + i1,"
        " -32768, 32767) + bias, -32768, 32767), -32768, 32767)",
        when="groups",
    )
    # int64 copies: Brian2's C++ code generation knows no uint8 arrays
    group.thr, group.bias, group.dm = (
        np.asarray(a, np.int64) for a in (net.threshold, net.bias, net.dash_mem)
    )
    group.d0, group.d1 = (np.asarray(net.dash_syn[:, k], np.int64) for k in (0, 1))
    objects = [group]
    w_in = net.w_in.astype(np.int64) << net.shift_in
    first = np.asarray(x[0], np.int64)
    group.i0, group.i1 = first @ w_in[:, :, 0], first @ w_in[:, :, 1]
    t_idx, n_idx = np.nonzero(x[1:])
    source = b2.SpikeGeneratorGroup(net.n_in, n_idx, t_idx * ms, dt=1 * ms)
    objects.append(source)
    model = "w : integer\nsyn : integer"
    on_pre = "i0_post += w * int(syn == 0)\ni1_post += w * int(syn == 1)"
    for pre_group, weights, shift in (
        (source, net.w_in, net.shift_in),
        (group, net.w_rec, net.shift_rec),
    ):
        pre, post, syn = np.nonzero(weights)
        if pre.size == 0:
            continue
        s = b2.Synapses(pre_group, group, model, on_pre=on_pre, dt=1 * ms)
        s.connect(i=pre, j=post)
        s.w = weights[pre, post, syn].astype(np.int64) << shift
        s.syn = syn
        objects.append(s)
    monitor = b2.SpikeMonitor(group)
    objects.append(monitor)
    b2.Network(*objects).run(T * ms, namespace={})
    counts = np.zeros((T, H), np.int64)
    np.add.at(counts, (np.round(monitor.t[:] / ms).astype(int), monitor.i[:]), 1)
    return counts

"""When the sparse convolution takes its event kernels and when its batched path: one policy.

:func:`~neuroflow.layers.sparse.conv.sparse_conv` has two CPU implementations whose speeds cross
over with the layer's width (``Cin Cout``, multiply-adds per pair), the share of input voxels
that spiked and the map's neighbours per voxel:

* the *event kernels* (:mod:`~neuroflow.layers.sparse.kernels.events`): work proportional to the
  spiking inputs' pairs, products accumulated in vector registers, no gather or scatter;
* the *batched path*: the centre offset as one dense matmul, the other offsets gathered into padded
  blocks, one ``bmm`` and one scatter-add per block, on torch's BLAS threads.

Every threshold that picks between them lives in :class:`SparseConvPolicy`, whose defaults were
measured on a 2-core x86 VM (AVX2) with ``benchmarks/bench_sparse_conv.py`` (its ``--sweep``
table sets each one; ``docs/sparse_convolution.md`` has the measurements). Another machine may
cross over elsewhere: run the sweep there and pass a policy per call (``sparse_conv(...,
policy=)``), per module (``SubMConv3d(..., policy=)``) or for the process
(:func:`set_sparse_policy`, or the context manager :func:`sparse_policy`). Like spconv's explicit
``algo=`` per convolution with its tuner as the way to find the best one, the choice is explicit
and measured; unlike spconv's tuner nothing is timed at run time, so runs are reproducible.

Every path gives the same result up to float rounding (the tests compare them); a policy only
changes the speed.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from neuroflow.errors import InvalidArgumentError

#: a width larger than any layer's ``Cin Cout``: "always" for the ``*_macs`` fields
UNLIMITED_MACS = 1 << 62


@dataclass(frozen=True)
class SparseConvPolicy:
    """Thresholds of the event-driven sparse convolution on the CPU (float32/64).

    ``*_macs`` fields compare with the layer's ``Cin Cout`` (multiply-adds per pair), ``*_density``
    fields with the share of input voxels that spiked (rows with a non-zero entry), in [0, 1].
    Each field names the comparison that set its default: event kernel against batched path on
    8,192 random voxels (~1.8 pairs each) and on a sphere shell (~13.5 pairs each), as ``--sweep``
    of ``benchmarks/bench_sparse_conv.py`` measures it, or whole E-3DSNN runs on real ModelNet40
    clouds; the figures are in ``docs/sparse_convolution.md``.

    Attributes:
        event_max_macs: widest layer the event kernels take at all (forward, input and weight
            gradient); wider ones always take the batched path. Set to the widest layer measured
            (128 -> 128); 0 turns the event kernels off.
        inference_event_macs: in inference, layers up to this width take the event kernel at any
            share of spiking voxels (up to 64 -> 128 it beat the batched path at 95% on real
            clouds, 64 -> 64 at 100% on random voxels).
        inference_event_max_density: in inference, wider layers take it up to this share (128 ->
            128 on random voxels crossed over between 50% and 70%).
        event_min_pairs_per_voxel: in inference, and for the input gradient of layers up to
            ``input_grad_event_wide_macs``, maps with at least this many pairs per voxel (or
            strided maps, which have no centre offset) take the event kernel at any share: the
            batched path's dense centre matmul is then under a third of its work (sphere shell 128
            -> 128 at 100%: event kernel faster; on random voxels not).
        training_event_macs: in training, layers up to this width take the event kernels (forward
            and weight gradient) at any share of spiking voxels (forward + backward at 100%: 32 ->
            32 level on random voxels, faster on the sphere shell; 64 -> 64 slower on random
            voxels).
        training_narrow_macs: in training, layers up to this width take them up to
            ``training_narrow_max_density``, and above it the batched path still computes its
            forward with the event kernel.
        training_narrow_max_density: see ``training_narrow_macs`` (64 -> 64 and 64 -> 128 on
            random voxels crossed over between 60% and 100%).
        training_event_max_density: in training, wider layers take the event kernels up to this
            share (128 -> 128 on random voxels crossed over between 40% and 60%).
        weight_grad_event_macs: the weight gradient comes from the event kernel (over the spiking
            pairs) for layers up to this width, on every path (the weight gradient alone at 100%:
            32 -> 32 faster, 64 -> 64 slower on random voxels).
        input_grad_event_macs: the input gradient comes from the event kernel on the transposed
            map for layers up to this width, on every path (the input gradient alone: 64 -> 64
            faster on random voxels, 64 -> 128 slower).
        input_grad_event_wide_macs: ... and up to this width on maps of
            ``event_min_pairs_per_voxel`` or more (64 -> 128 faster on the sphere shell).
        relayout_max_density: the batched path lays out the spiking voxels' pairs anew (skipping
            the silent ones) only below this share; above it, it multiplies the silent rows too in
            the map's cached layout (E-3DSNN-T inference at ~97% spiking voxels: the per-call
            layout lost).
        relayout_min_saving: ... and only where the silent pairs' multiply-adds,
            ``(1 - density) Cin Cout`` per pair, exceed this many times ``Cin + Cout``, the
            layout's gather and scatter cost per pair (forward + backward at 50%: 64 -> 64 faster
            with a new layout, 32 -> 32 slower).
    """

    event_max_macs: int = 16384
    inference_event_macs: int = 8192
    inference_event_max_density: float = 0.6
    event_min_pairs_per_voxel: float = 3
    training_event_macs: int = 2048
    training_narrow_macs: int = 8192
    training_narrow_max_density: float = 0.6
    training_event_max_density: float = 0.4
    weight_grad_event_macs: int = 2048
    input_grad_event_macs: int = 4096
    input_grad_event_wide_macs: int = 8192
    relayout_max_density: float = 0.8
    relayout_min_saving: float = 10

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise InvalidArgumentError(
                    f"SparseConvPolicy.{field.name} must be a number, got {value!r}"
                )
            if field.name.endswith("_macs") and (not isinstance(value, int) or value < 0):
                raise InvalidArgumentError(
                    f"SparseConvPolicy.{field.name} must be an int >= 0 (Cin x Cout), got {value!r}"
                )
            if field.name.endswith("_density") and not 0 <= value <= 1:
                raise InvalidArgumentError(
                    f"SparseConvPolicy.{field.name} must be a share in [0, 1], got {value!r}"
                )
            if value < 0:
                raise InvalidArgumentError(
                    f"SparseConvPolicy.{field.name} must be >= 0, got {value!r}"
                )

    @classmethod
    def batched_only(cls) -> SparseConvPolicy:
        """Never the event kernels: the batched path everywhere (it still skips silent voxels
        with ``event_driven=True``)."""
        return cls(event_max_macs=0)

    @classmethod
    def event_always(cls) -> SparseConvPolicy:
        """The event kernels wherever they apply (CPU, float32/64), at any width and density."""
        return cls(
            event_max_macs=UNLIMITED_MACS,
            inference_event_macs=UNLIMITED_MACS,
            training_event_macs=UNLIMITED_MACS,
            training_narrow_macs=UNLIMITED_MACS,
            weight_grad_event_macs=UNLIMITED_MACS,
            input_grad_event_macs=UNLIMITED_MACS,
            input_grad_event_wide_macs=UNLIMITED_MACS,
        )


#: the measured defaults
DEFAULT_POLICY = SparseConvPolicy()
_current = DEFAULT_POLICY


def get_sparse_policy() -> SparseConvPolicy:
    """The policy that convolutions without one of their own use (process-wide)."""
    return _current


def set_sparse_policy(policy: SparseConvPolicy | None) -> SparseConvPolicy:
    """Make ``policy`` (``None``: :data:`DEFAULT_POLICY`) the process-wide policy; returns the
    previous one. Not thread-local: set it before starting threads that convolve."""
    global _current
    if policy is not None and not isinstance(policy, SparseConvPolicy):
        raise InvalidArgumentError(
            f"policy must be a SparseConvPolicy or None, got {type(policy).__name__}"
        )
    previous, _current = _current, DEFAULT_POLICY if policy is None else policy
    return previous


@contextlib.contextmanager
def sparse_policy(policy: SparseConvPolicy | None = None, **changes) -> Iterator[SparseConvPolicy]:
    """Within the block, ``policy`` (default: the current one) with the fields in ``changes``
    replaced is the process-wide policy; e.g. ``with sparse_policy(training_event_macs=4096):``."""
    base = get_sparse_policy() if policy is None else policy
    try:
        chosen = dataclasses.replace(base, **changes)
    except TypeError as error:
        names = ", ".join(f.name for f in dataclasses.fields(SparseConvPolicy))
        raise InvalidArgumentError(f"{error}; SparseConvPolicy fields are: {names}") from None
    previous = set_sparse_policy(chosen)
    try:
        yield chosen
    finally:
        set_sparse_policy(previous)


def resolve_policy(policy: SparseConvPolicy | None) -> SparseConvPolicy:
    """``policy``, or the process-wide one where it is ``None``."""
    if policy is None:
        return _current
    if not isinstance(policy, SparseConvPolicy):
        raise InvalidArgumentError(
            f"policy must be a SparseConvPolicy or None, got {type(policy).__name__}"
        )
    return policy

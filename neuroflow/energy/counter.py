"""Count operations of a model's forward passes with hooks, without changing the model.

``with OpCounter(model) as counter: model(x)`` then ``counter.per_sample()``.

- **Layers** are counted by a handler registered for their type:
  ``handler(module, inputs, output) -> OpCounts``. Linear, Conv1d/2d/3d, pooling and every
  :class:`~neuroflow.neurons.SpikingNeuron` have handlers here; another layer plugs in with
  ``@register_op_counter(MyLayer, kind="crossbar")``. Sparse convolutions (``SubMConv3d``,
  ``SparseConv3d``) are counted from the kernel map of their input. While a handled module runs,
  nothing inside it is counted again (its own handler covers it).
- **Products written in the model** (``a @ b``, ``torch.matmul``, ``torch.mm``, ``torch.bmm`` and
  their method forms, e.g. spike-driven attention ``Q @ (K.T @ V)``) are counted by a
  ``TorchFunctionMode`` and named after the module that computed them, ``<module>.matmul<i>``.
  ``F.linear`` called directly and ``einsum`` are not counted: wrap them in a module (or register
  a handler) to count them.
- **Samples and time steps**: inputs are time-first ``[T, B, ...]``; each forward call of the
  root model adds ``B`` samples and sets ``T`` from its first tensor argument. Models with other
  inputs (e.g. a sparse tensor) pass ``time_first=False`` and call :meth:`OpCounter.add_samples`.

Leaf modules with parameters that no handler covers (other than normalisation layers, which fold
into the weights at inference) are listed in :attr:`OpCounter.uncounted`, so a report can say
what it left out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from neuroflow.energy.ops import (
    OpCounts,
    clear_marked_spikes,
    conv_synaptic_ops,
    linear_synaptic_ops,
    mark_spikes,
    matmul_ops,
    neuron_ops,
    pool_ops,
    sparse_conv_synaptic_ops,
)
from neuroflow.errors import InvalidArgumentError
from neuroflow.layers import SparseConv3d, SubMConv3d
from neuroflow.neurons import SpikingNeuron

Handler = Callable[[nn.Module, tuple, object], OpCounts]

#: module type -> (kind, handler); looked up along the module's MRO
_HANDLERS: dict[type, tuple[str, Handler]] = {}

#: parameterised layers that fold into neighbouring weights at inference: never "uncounted"
_FOLDED = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def register_op_counter(*types: type, kind: str) -> Callable[[Handler], Handler]:
    """Register ``handler(module, inputs, output) -> OpCounts`` for modules of ``types``.

    ``kind`` labels the layer in reports (``"conv"``, ``"sparse_conv"``, ``"neuron"``...). A later
    registration for the same type replaces the earlier one (so a model package can refine it).
    """

    def add(handler: Handler) -> Handler:
        for t in types:
            _HANDLERS[t] = (kind, handler)
        return handler

    return add


def find_handler(module: nn.Module) -> tuple[str, Handler] | None:
    for cls in type(module).__mro__:
        if cls in _HANDLERS:
            return _HANDLERS[cls]
    return None


def _first_tensor(value):
    return value[0] if isinstance(value, (tuple, list)) else value


def _tuple(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * n


@register_op_counter(nn.Linear, kind="linear")
def _linear(m: nn.Linear, inputs, output) -> OpCounts:
    return linear_synaptic_ops(inputs[0], m.out_features)


@register_op_counter(nn.Conv1d, nn.Conv2d, nn.Conv3d, kind="conv")
def _conv(m: nn.modules.conv._ConvNd, inputs, output) -> OpCounts:
    x = inputs[0]
    dims = len(m.kernel_size)
    # _reversed_padding_repeated_twice holds (left, right) pads, last dimension first
    pads = m._reversed_padding_repeated_twice
    left, right = pads[0::2][::-1], pads[1::2][::-1]
    if m.padding_mode != "zeros":  # replicated/reflected values are real inputs: pad explicitly
        x = torch.nn.functional.pad(x, pads, mode=m.padding_mode)
        padding = (0,) * dims
    elif tuple(left) != tuple(right):
        raise InvalidArgumentError(
            f"energy counting: asymmetric padding {pads} of {m} is not supported"
        )
    else:
        padding = tuple(left)
    return conv_synaptic_ops(
        x, m.out_channels, m.kernel_size, m.stride, padding, m.dilation, m.groups
    )


@register_op_counter(
    nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, kind="pool"
)
def _pool(m: nn.Module, inputs, output) -> OpCounts:
    # ceil_mode's extra partial windows at the far edge are not counted
    x = inputs[0]
    dims = x.dim() - 2
    kernel = _tuple(m.kernel_size, dims)
    stride = _tuple(m.stride if m.stride is not None else m.kernel_size, dims)
    dilation = _tuple(getattr(m, "dilation", 1), dims)
    return pool_ops(x, kernel, stride, _tuple(m.padding, dims), dilation)


@register_op_counter(SubMConv3d, SparseConv3d, kind="sparse_conv")
def _sparse_conv(m: SubMConv3d | SparseConv3d, inputs, output) -> OpCounts:
    x = inputs[0]
    kmap = m.kernel_map(x)  # cached on the input: the map the forward pass used
    pairs = [kmap.pairs(o) for o in range(kmap.kernel_volume)]
    return sparse_conv_synaptic_ops(x.features, pairs, m.out_channels)


@register_op_counter(SpikingNeuron, kind="neuron")
def _neuron(m: nn.Module, inputs, output) -> OpCounts:
    spikes = _first_tensor(output)
    if not getattr(m, "normalize", False):  # MultiSpike(normalize=True) emits k / D, not integers
        mark_spikes(spikes)
    return neuron_ops(spikes)


_MATMULS = {
    torch.matmul,
    torch.mm,
    torch.bmm,
    torch.Tensor.matmul,
    torch.Tensor.mm,
    torch.Tensor.bmm,
    torch.Tensor.__matmul__,
}


class _ProductMode(TorchFunctionMode):
    """Sees every torch function call while active; counts the matrix products."""

    def __init__(self, counter: OpCounter):
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.Tensor.__rmatmul__:  # b.__rmatmul__(a) computes a @ b
            self.counter._product(args[1], args[0])
        elif func in _MATMULS:
            self.counter._product(args[0], args[1])
        return func(*args, **kwargs)


class OpCounter:
    """Context manager accumulating :class:`OpCounts` per layer over forward passes of ``model``.

    Args:
        model: the network; layer names are its ``named_modules`` names (e.g. ``conv1.0``).
        time_first: read ``T, B`` from the root model's first input ``[T, B, ...]``.
        count_products: also count ``@`` / ``matmul`` / ``mm`` / ``bmm`` products.
    """

    def __init__(self, model: nn.Module, time_first: bool = True, count_products: bool = True):
        self.model = model
        self.time_first = time_first
        self.count_products = count_products
        self.layers: OrderedDict[str, tuple[str, OpCounts]] = OrderedDict()
        self.samples = 0
        self.time_steps = 1
        self.uncounted: list[str] = []
        self._handles: list = []
        self._names: list[str] = []  # enclosing module names, innermost last
        self._product_index: list[int] = []
        self._active: nn.Module | None = None  # the handled module now running
        self._mode: _ProductMode | None = None

    # ----------------------------------------------------------------- context
    def __enter__(self) -> OpCounter:
        self._handles.append(self.model.register_forward_pre_hook(self._root_pre_hook))
        for name, module in self.model.named_modules():
            entry = find_handler(module)
            if entry is not None:
                self._handles.append(module.register_forward_pre_hook(self._pre_handled(module)))
                self._handles.append(
                    module.register_forward_hook(
                        self._post_handled(name, module, *entry), always_call=True
                    )
                )
            elif (
                not list(module.children())
                and any(True for _ in module.parameters(recurse=False))
                and not isinstance(module, _FOLDED)
            ):
                self.uncounted.append(f"{name} ({type(module).__name__})")
            if self.count_products:
                self._handles.append(module.register_forward_pre_hook(self._push(name)))
                self._handles.append(module.register_forward_hook(self._pop, always_call=True))
        if self.count_products:
            self._mode = _ProductMode(self)
            self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        for h in self._handles:
            h.remove()
        self._handles.clear()
        clear_marked_spikes()
        self._active = None
        self._names.clear()
        self._product_index.clear()

    # ------------------------------------------------------------------- hooks
    def _root_pre_hook(self, module, inputs) -> None:
        clear_marked_spikes()
        self._names.clear()
        self._product_index.clear()
        self._active = None
        x = inputs[0] if inputs else None
        if self.time_first and isinstance(x, torch.Tensor) and x.dim() >= 2:
            self.time_steps = int(x.shape[0])
            self.samples += int(x.shape[1])

    def _pre_handled(self, module: nn.Module):
        def hook(mod, inputs):
            if self._active is None:
                self._active = module

        return hook

    def _post_handled(self, name: str, module: nn.Module, kind: str, handler: Handler):
        def hook(mod, inputs, output):
            if self._active is not module:
                return
            try:
                with torch.no_grad():
                    self._add(name, kind, handler(mod, inputs, output))
            finally:
                self._active = None

        return hook

    def _push(self, name: str):
        def hook(mod, inputs):
            self._names.append(name)
            self._product_index.append(0)

        return hook

    def _pop(self, mod, inputs, output) -> None:
        if self._names:
            self._names.pop()
            self._product_index.pop()

    def _product(self, a, b) -> None:
        if (
            self._active is not None
            or not isinstance(a, torch.Tensor)
            or not isinstance(b, torch.Tensor)
        ):
            return
        owner = self._names[-1] if self._names else ""
        index = 0
        if self._product_index:
            index = self._product_index[-1]
            self._product_index[-1] += 1
        name = f"{owner}.matmul{index}" if owner else f"matmul{index}"
        with torch.no_grad():
            self._add(name, "matmul", matmul_ops(a, b))

    # ----------------------------------------------------------------- results
    def _add(self, name: str, kind: str, counts: OpCounts) -> None:
        if name in self.layers:
            self.layers[name][1].__iadd__(counts)
        else:
            self.layers[name] = (kind, counts)

    def add_samples(self, samples: int, time_steps: int | None = None) -> None:
        """Record samples (and time steps) for models whose input is not ``[T, B, ...]``."""
        self.samples += int(samples)
        if time_steps is not None:
            self.time_steps = int(time_steps)

    def per_sample(self) -> OrderedDict[str, tuple[str, OpCounts]]:
        """``{name: (kind, counts per sample)}`` in execution order."""
        if self.samples <= 0:
            raise InvalidArgumentError(
                "no samples were recorded: run the model inside the counter "
                "(or call add_samples for inputs that are not [T, B, ...])"
            )
        return OrderedDict(
            (n, (k, c.scaled(1.0 / self.samples))) for n, (k, c) in self.layers.items()
        )

"""Receptive fields of a network's units, derived from its layers, and what follows a layer.

The network is traced with torch.fx and each tensor's geometry is propagated
from the input: a convolution or pooling of kernel k, stride s, padding p and
dilation d turns (size r, jump j, start t) into (r + (k_eff − 1)·j, j·s,
t − p·j), with k_eff = d·(k − 1) + 1; elementwise operations (nonlinearities,
batch norm, dropout, sums of maps) keep it, and anything that mixes all
positions (flatten, linear layers, global pooling) makes the units see the
whole input. Unit (row, col) of a layer then sees input rows
``t + row·j … t + row·j + r − 1`` (and likewise for columns). Nothing is
hard-coded: the MNIST CNN's conv1 comes out 5×5 and conv2 14×14 because of
its kernels and pooling.

The same trace says which nonlinearity a layer's output goes through
(``post_activation``), so "post-nonlinearity" activations can be read at the
layer itself even when, as in the bundled CNN, pooling comes before the ReLU
(max pooling commutes with monotone nonlinearities).

Qt-free; used by core.sta and its tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F


class ReceptiveFieldError(ValueError):
    """A layer's receptive field or activation cannot be derived; the message says why (one line)."""


@dataclass(frozen=True)
class Geometry:
    """Where the units of a tensor look in the input, per axis (rows, cols).

    Unit ``p`` along an axis sees input pixels ``start + p·jump … start + p·jump + size − 1``.
    ``padded``: a padding lies on the way (units near the border see zeros beyond the image).
    ``exact``: every operation on the way was understood (else the field is the whole input).
    ``whole``: the units see the whole input (flatten, linear layers, global pooling).
    """

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)
    start: tuple[int, int] = (0, 0)
    padded: bool = False
    exact: bool = True
    whole: bool = False

    def through(self, kernel, stride, padding, dilation) -> "Geometry":
        """After a convolution or pooling with these (per-axis) settings."""
        if self.whole:
            return self
        size, jump, start = [], [], []
        for axis in range(2):
            k_eff = dilation[axis] * (kernel[axis] - 1) + 1
            size.append(self.size[axis] + (k_eff - 1) * self.jump[axis])
            start.append(self.start[axis] - padding[axis] * self.jump[axis])
            jump.append(self.jump[axis] * stride[axis])
        return Geometry(_pair(size), _pair(jump), _pair(start), self.padded or any(p > 0 for p in padding),
                        self.exact)

    @staticmethod
    def union(geometries: list["Geometry"]) -> "Geometry":
        """The field of a map combining maps of these fields position by position (a residual sum)."""
        if len(geometries) == 1:
            return geometries[0]
        if any(g.whole for g in geometries):
            return Geometry(whole=True, exact=all(g.exact for g in geometries),
                            padded=any(g.padded for g in geometries))
        start = _pair([min(g.start[a] for g in geometries) for a in range(2)])
        end = _pair([max(g.start[a] + g.size[a] for g in geometries) for a in range(2)])
        jumps = {g.jump for g in geometries}
        return Geometry(_pair([end[a] - start[a] for a in range(2)]), max(jumps), start,
                        any(g.padded for g in geometries), all(g.exact for g in geometries) and len(jumps) == 1)


@dataclass(frozen=True)
class LayerGeometry:
    """A conv or linear layer: its units, their output map and their receptive field in the input."""

    name: str
    layer_type: str  # "conv" | "linear"
    units: int
    output_size: tuple[int, int]  # (H, W) of a conv layer's output map; (1, 1) for a linear layer
    input_shape: tuple[int, int, int]  # (C, H, W) of the network's input
    field: Geometry
    kernel_size: tuple[int, int] | None = None  # a conv layer's own kernel

    @property
    def whole(self) -> bool:
        return self.field.whole or self.layer_type == "linear"

    @property
    def size(self) -> tuple[int, int]:
        """Receptive-field size (rows, cols) in input pixels."""
        return _pair(self.input_shape[1:]) if self.whole else self.field.size

    def centre(self) -> tuple[int, int]:
        """The unit position whose field is centred best on the image (ties: the lower index)."""
        if self.whole:
            return (0, 0)
        out = []
        for axis in range(2):
            extent = self.input_shape[axis + 1]
            ideal = ((extent - self.field.size[axis]) / 2 - self.field.start[axis]) / self.field.jump[axis]
            out.append(min(max(int(math.floor(ideal + 0.5)), 0), self.output_size[axis] - 1))
        return _pair(out)

    def check_position(self, position: tuple[int, int] | None) -> tuple[int, int]:
        """``position`` (None: the centre) checked against the output map; ValueError (one line) when outside."""
        if self.whole:
            return (0, 0)
        if position is None:
            return self.centre()
        rows, cols = self.output_size
        if not (0 <= position[0] < rows and 0 <= position[1] < cols):
            raise ReceptiveFieldError(f"position {position[0]},{position[1]} is outside {self.name}'s "
                                      f"{rows}×{cols} output map (rows 0–{rows - 1}, columns 0–{cols - 1})")
        return _pair(position)

    def field_at(self, position: tuple[int, int]) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the field of unit ``position`` in input pixels (may leave the image)."""
        if self.whole:
            return (0, 0, *self.input_shape[1:])
        top = self.field.start[0] + position[0] * self.field.jump[0]
        left = self.field.start[1] + position[1] * self.field.jump[1]
        return (top, left, *self.field.size)

    def crop_at(self, position: tuple[int, int]) -> tuple[int, int, int, int]:
        """The field of ``position`` clipped to the image: (top, left, height, width) of the pixels it sees."""
        top, left, height, width = self.field_at(position)
        rows, cols = self.input_shape[1:]
        bottom, right = min(top + height, rows), min(left + width, cols)
        top, left = max(top, 0), max(left, 0)
        return (top, left, bottom - top, right - left)

    def inside(self, position: tuple[int, int]) -> bool:
        """Whether the whole field of ``position`` lies within the image."""
        top, left, height, width = self.field_at(position)
        rows, cols = self.input_shape[1:]
        return top >= 0 and left >= 0 and top + height <= rows and left + width <= cols

    def describe(self) -> str:
        if self.whole:
            return f"{self.name}: {self.units} units, each sees the whole {self.input_shape[1]}×{self.input_shape[2]} input"
        rows, cols = self.size
        return (f"{self.name}: {self.units} units on a {self.output_size[0]}×{self.output_size[1]} map, receptive "
                f"field {rows}×{cols}, stride {self.field.jump[0]}×{self.field.jump[1]}")


# --- the trace ---

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_POOL_FUNCTIONS = {F.max_pool2d: "max", F.avg_pool2d: "avg", torch.max_pool2d: "max"}
_CONV_FUNCTIONS = (F.conv2d, torch.conv2d)
_GLOBAL_MODULES = (nn.Linear, nn.Flatten, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def unit_layers(net: nn.Module) -> dict[str, nn.Module]:
    """The network's conv (Conv2d) and linear layers by name, in definition order: the layers whose units STA maps."""
    if isinstance(net, torch.jit.ScriptModule):
        return {}
    return {name: module for name, module in net.named_modules()
            if name and isinstance(module, (nn.Conv2d, nn.Linear))}


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1])) if len(value) else (1, 1)
    return (int(value), int(value))


def _arg(node, index: int, name: str, default):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _conv_padding(padding, kernel, dilation) -> tuple[int, int]:
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        # "same": PyTorch pads (total // 2) before and the rest after.
        return tuple((dilation[a] * (kernel[a] - 1)) // 2 for a in range(2))
    return _pair(padding)


@dataclass
class Trace:
    """A traced network: its graph, each node's output shape, and the geometry of each spatial tensor."""

    graph_module: torch.fx.GraphModule
    input_shape: tuple[int, ...]
    shapes: dict = field(default_factory=dict)  # node → output shape (without the batch), when a tensor
    geometry: dict = field(default_factory=dict)  # node → Geometry

    def layer_node(self, name: str):
        nodes = [n for n in self.graph_module.graph.nodes if n.op == "call_module" and n.target == name]
        if not nodes:
            raise ReceptiveFieldError(f"layer {name!r} is never called by the network's forward pass")
        if len(nodes) > 1:
            raise ReceptiveFieldError(f"layer {name!r} is used {len(nodes)} times in the forward pass; "
                                      "its units have no single receptive field")
        return nodes[0]


def trace(net: nn.Module, input_shape: tuple[int, ...]) -> Trace:
    """Trace ``net`` (which takes normalised input of ``input_shape`` = (C, H, W)) and propagate geometries."""
    from torch.fx.passes.shape_prop import ShapeProp

    if isinstance(net, torch.jit.ScriptModule):
        raise ReceptiveFieldError("receptive fields need an eager PyTorch model; a TorchScript model cannot be "
                                  "traced or hooked")
    try:
        graph_module = torch.fx.symbolic_trace(net)
    except Exception as exc:
        raise ReceptiveFieldError(f"the network's forward pass cannot be traced ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    parameter = next(iter(net.parameters()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            ShapeProp(graph_module).propagate(torch.zeros(2, *input_shape, device=device))
    except Exception as exc:
        raise ReceptiveFieldError(f"the network does not run on input of shape {tuple(input_shape)} "
                                  f"({type(exc).__name__})") from None
    finally:
        net.train(was_training)
    result = Trace(graph_module, tuple(input_shape))
    modules = dict(graph_module.named_modules())
    for node in graph_module.graph.nodes:
        meta = node.meta.get("tensor_meta")
        shape = tuple(meta.shape[1:]) if meta is not None and hasattr(meta, "shape") else None
        result.shapes[node] = shape
        result.geometry[node] = _node_geometry(node, shape, result, modules)
    return result


def _node_geometry(node, shape, traced: Trace, modules: dict) -> Geometry:
    if node.op == "placeholder":
        return Geometry()
    inputs = [a for a in node.all_input_nodes if a in traced.geometry and traced.shapes.get(a) is not None]
    if node.op in ("get_attr", "output") or not inputs:
        return Geometry(whole=True)
    spatial_in = [a for a in inputs if len(traced.shapes[a]) == 3]
    if shape is None or len(shape) != 3 or not spatial_in:
        # Not a (C, H, W) map any more (flattened, linear, a sequence): every unit sees everything.
        return Geometry(whole=True, exact=True, padded=any(traced.geometry[a].padded for a in inputs))
    source = traced.geometry[node.args[0]] if node.args and node.args[0] in traced.geometry else \
        traced.geometry[spatial_in[0]]
    if node.op == "call_module":
        module = modules[node.target]
        if isinstance(module, nn.Conv2d):
            kernel, dilation = _pair(module.kernel_size), _pair(module.dilation)
            return source.through(kernel, _pair(module.stride), _conv_padding(module.padding, kernel, dilation),
                                  dilation)
        if isinstance(module, _POOLS):
            kernel = _pair(module.kernel_size)
            stride = _pair(module.stride if module.stride is not None else module.kernel_size)
            dilation = _pair(getattr(module, "dilation", 1))
            return source.through(kernel, stride, _pair(module.padding), dilation)
        if isinstance(module, _GLOBAL_MODULES):
            return _same_or_whole(node, shape, source, traced)
    if node.op == "call_function" and node.target in _POOL_FUNCTIONS:
        kernel = _pair(_arg(node, 1, "kernel_size", 1))
        stride = _arg(node, 2, "stride", None)
        stride = _pair(stride if stride not in (None, [], ()) else kernel)
        padding = _pair(_arg(node, 3, "padding", 0))
        dilation = _pair(_arg(node, 4, "dilation", 1)) if _POOL_FUNCTIONS[node.target] == "max" else (1, 1)
        return source.through(kernel, stride, padding, dilation)
    if node.op == "call_function" and node.target in _CONV_FUNCTIONS:
        weight = node.args[1] if len(node.args) > 1 else None
        meta = weight.meta.get("tensor_meta") if weight is not None and hasattr(weight, "meta") else None
        if meta is None:
            return Geometry(whole=True, exact=False)
        kernel = _pair([int(s) for s in meta.shape[-2:]])
        dilation = _pair(_arg(node, 5, "dilation", 1))
        return source.through(kernel, _pair(_arg(node, 3, "stride", 1)),
                              _conv_padding(_arg(node, 4, "padding", 0), kernel, dilation), dilation)
    return _same_or_whole(node, shape, Geometry.union([traced.geometry[a] for a in spatial_in]), traced)


def _same_or_whole(node, shape, source: Geometry, traced: Trace) -> Geometry:
    """An operation that keeps the map's size is taken as position-wise; one that changes it unknowingly is not."""
    sizes = {tuple(traced.shapes[a][1:]) for a in node.all_input_nodes
             if traced.shapes.get(a) is not None and len(traced.shapes[a]) == 3}
    if sizes == {tuple(shape[1:])}:
        return source
    if tuple(shape[1:]) == (1, 1):
        return Geometry(whole=True, exact=True, padded=source.padded)  # a global pooling
    return Geometry(whole=True, exact=False, padded=source.padded)


def layer_geometry(net: nn.Module, input_shape: tuple[int, ...], name: str,
                   traced: Trace | None = None) -> LayerGeometry:
    """The geometry of layer ``name`` (a Conv2d or Linear of ``net``), derived from the layers before it."""
    layers = unit_layers(net)
    if name not in layers:
        raise ReceptiveFieldError(f"{name!r} is not a conv or linear layer of this model; its layers are "
                                  f"{', '.join(layers) or 'none'}")
    traced = traced or trace(net, input_shape)
    node = traced.layer_node(name)
    module = layers[name]
    shape = traced.shapes[node]
    geometry = traced.geometry[node]
    channels, height, width = (int(size) for size in input_shape)
    if isinstance(module, nn.Conv2d):
        if shape is None or len(shape) != 3:
            raise ReceptiveFieldError(f"layer {name} does not output a (C, H, W) map")
        if geometry.whole and not geometry.exact:
            raise ReceptiveFieldError(f"the receptive field of {name} cannot be derived from the layers before it")
        return LayerGeometry(name, "conv", int(shape[0]), (int(shape[1]), int(shape[2])), (channels, height, width),
                             geometry, _pair(module.kernel_size))
    if shape is None or len(shape) != 1:
        raise ReceptiveFieldError(f"layer {name} does not output one vector per sample (shape {shape})")
    return LayerGeometry(name, "linear", int(shape[0]), (1, 1), (channels, height, width), Geometry(whole=True))


def is_first_conv(net: nn.Module, name: str, traced: Trace) -> bool:
    """Whether ``name`` is a conv layer reading the input through position-wise operations only (its field is its
    kernel): the layer whose STA should equal its kernel."""
    node = traced.layer_node(name)
    seen = set()
    stack = list(node.all_input_nodes)
    modules = dict(traced.graph_module.named_modules())
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        if current.op == "placeholder":
            continue
        if current.op == "call_module" and isinstance(modules.get(current.target), (nn.Conv2d, nn.Linear, *_POOLS)):
            return False
        if current.op == "call_function" and (current.target in _POOL_FUNCTIONS or current.target in _CONV_FUNCTIONS):
            return False
        stack.extend(current.all_input_nodes)
    return isinstance(modules.get(name), nn.Conv2d)


# --- what follows a layer ---

_MONOTONE_MODULES = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.ReLU6, nn.Hardtanh, nn.Softplus,
                     nn.SELU, nn.CELU, nn.Hardsigmoid)
_OTHER_MODULES = (nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish)
_MONOTONE_FUNCTIONS = {torch.relu: "relu", F.relu: "relu", torch.tanh: "tanh", F.tanh: "tanh",
                       torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.leaky_relu: "leaky_relu", F.elu: "elu",
                       F.relu6: "relu6", F.hardtanh: "hardtanh", F.softplus: "softplus", F.selu: "selu",
                       torch.relu_: "relu", F.relu_: "relu", torch.tanh_: "tanh"}
_OTHER_FUNCTIONS = {F.gelu: "gelu", F.silu: "silu", F.mish: "mish", F.hardswish: "hardswish"}
_MONOTONE_METHODS = {"relu": "relu", "relu_": "relu", "tanh": "tanh", "tanh_": "tanh", "sigmoid": "sigmoid",
                     "sigmoid_": "sigmoid"}
_IDENTITY_MODULES = (nn.Dropout, nn.Dropout2d, nn.Identity, nn.AlphaDropout)
_IDENTITY_FUNCTIONS = (F.dropout, F.dropout2d)


@dataclass(frozen=True)
class PostActivation:
    """The position-wise operations between a layer and its nonlinearity, applied to (B, C[, H, W]) activations."""

    steps: tuple = ()  # callables tensor → tensor (per channel, position-wise)
    description: str = "none"  # e.g. "batch norm → relu"; "none" when no nonlinearity follows
    found: bool = False  # whether a nonlinearity follows the layer

    def __call__(self, activations: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            activations = step(activations)
        return activations


def _batch_norm_step(module: nn.modules.batchnorm._BatchNorm, name: str) -> Callable:
    """The batch norm as the eval-mode network applies it, from its running statistics; a batch norm without
    them (track_running_stats=False) normalises every batch by that batch's own statistics even in eval mode,
    so a unit's response would depend on the other images of the batch: refused."""
    if module.running_mean is None or module.running_var is None:
        raise ReceptiveFieldError(f"layer {name} is a batch norm without running statistics "
                                  "(track_running_stats=False): it normalises by each batch's own statistics even "
                                  "in eval mode, so a unit's response depends on the rest of the batch")

    def step(x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        # read when applied, not when built: moving the network to a device replaces its buffers
        mean, var = torch.as_tensor(module.running_mean), torch.as_tensor(module.running_var)
        x = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + module.eps)
        if module.affine:
            x = x * module.weight.reshape(shape) + module.bias.reshape(shape)
        return x

    return step


def _constant_args(node) -> bool:
    return not any(isinstance(a, torch.fx.Node) for a in (*node.args[1:], *node.kwargs.values()))


def post_activation(traced: Trace, name: str) -> PostActivation:
    """The nonlinearity a layer's output goes through (and any batch norm on the way), from the trace.

    Dropout and identities are skipped; max pooling is skipped when a monotone
    nonlinearity follows it (pooling then commutes with it). Anything else
    ends the search: the layer then has no nonlinearity of its own ("post" = "pre").
    """
    modules = dict(traced.graph_module.named_modules())
    node = traced.layer_node(name)
    steps, words, pooled = [], [], False
    while len(node.users) == 1:
        node = next(iter(node.users))
        module = modules.get(node.target) if node.op == "call_module" else None
        if module is not None and isinstance(module, _IDENTITY_MODULES) or \
                node.op == "call_function" and node.target in _IDENTITY_FUNCTIONS:
            continue
        if module is not None and isinstance(module, nn.modules.batchnorm._BatchNorm) and not pooled:
            steps.append(_batch_norm_step(module, str(node.target)))
            words.append("batch norm")
            continue
        if module is not None and isinstance(module, nn.MaxPool2d) or \
                node.op == "call_function" and _POOL_FUNCTIONS.get(node.target) == "max":
            pooled = True
            continue
        if module is not None and isinstance(module, _MONOTONE_MODULES):
            steps.append(module)
            words.append(type(module).__name__.lower())
            return PostActivation(tuple(steps), " → ".join(words), True)
        if module is not None and isinstance(module, _OTHER_MODULES) and not pooled:
            steps.append(module)
            words.append(type(module).__name__.lower())
            return PostActivation(tuple(steps), " → ".join(words), True)
        if node.op == "call_function" and _constant_args(node) and (
                node.target in _MONOTONE_FUNCTIONS or node.target in _OTHER_FUNCTIONS and not pooled):
            function, args, kwargs = node.target, node.args[1:], dict(node.kwargs)
            kwargs.pop("inplace", None)
            if function in (torch.relu_, F.relu_):
                function = torch.relu
            if function is torch.tanh_:
                function = torch.tanh
            steps.append(lambda x, f=function, a=args, k=kwargs: f(x, *a, **k))
            words.append(_MONOTONE_FUNCTIONS.get(node.target) or _OTHER_FUNCTIONS[node.target])
            return PostActivation(tuple(steps), " → ".join(words), True)
        if node.op == "call_method" and node.target in _MONOTONE_METHODS and len(node.args) == 1 and not node.kwargs:
            method = _MONOTONE_METHODS[node.target]
            steps.append(lambda x, m=method: getattr(x, m)())
            words.append(method)
            return PostActivation(tuple(steps), " → ".join(words), True)
        break
    return PostActivation()


# --- reading a layer's activations ---

class _Stop(Exception):
    """Raised by the capture hook: the rest of the forward pass is not needed."""


def capture(network: nn.Module, layer: nn.Module, x: torch.Tensor,
            select: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``select(output of layer)`` for input ``x``, running ``network`` only as far as ``layer``."""
    captured = []

    def hook(module, inputs, output):
        captured.append(select(output))
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        network(x)
    except _Stop:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ReceptiveFieldError("the layer was not reached by the forward pass")
    return captured[0]


def capture_all(network: nn.Module, layers: dict[str, nn.Module], x: torch.Tensor,
                select: Callable[[str, torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The network's output for ``x`` and ``select(name, output)`` of every layer in ``layers``."""
    captured: dict[str, torch.Tensor] = {}
    handles = [module.register_forward_hook(
        lambda module, inputs, output, name=name: captured.__setitem__(name, select(name, output)))
        for name, module in layers.items()]
    try:
        output = network(x)
    finally:
        for handle in handles:
            handle.remove()
    return output, captured


def autograd_field(net: nn.Module, input_shape: tuple[int, ...], name: str, position: tuple[int, int],
                   trials: int = 16, seed: int = 0) -> tuple[int, int, int, int]:
    """The bounding box (top, left, height, width) of the input pixels that move layer ``name``'s units at
    ``position``, from input gradients at random inputs: an independent check of :func:`layer_geometry`.

    Positive weights and a linear pass make every path count (no ReLU or max can hide a pixel): the
    network is copied with its parameters set to 1 / fan-in and run in double precision.
    """
    import copy

    probe = copy.deepcopy(net).double().eval()
    with torch.no_grad():
        for module in probe.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
    layer = dict(probe.named_modules())[name]
    generator = torch.Generator().manual_seed(seed)
    support = torch.zeros(input_shape[1:], dtype=torch.bool)
    for _ in range(trials):
        x = torch.rand((1, *input_shape), generator=generator, dtype=torch.float64, requires_grad=True)

        def select(output):
            return output[:, :, position[0], position[1]].sum() if output.ndim == 4 else output.sum()

        value = capture(probe, layer, x, select)
        (gradient,) = torch.autograd.grad(value, x)
        support |= gradient[0].abs().sum(0) > 0
    rows = torch.nonzero(support.any(1)).flatten()
    cols = torch.nonzero(support.any(0)).flatten()
    if rows.numel() == 0:
        return (0, 0, 0, 0)
    return (int(rows[0]), int(cols[0]), int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))

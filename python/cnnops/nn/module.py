"""Module and Parameter: the base of the layer API.

There is no tape. A module's ``forward(x)`` keeps what its ``backward`` needs; ``backward(grad_out)``
returns the gradient with respect to the input and adds the parameter gradients into ``.grad``.
Containers (Sequential, Residual, Concat) call their children's backward in reverse order.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np


class Parameter:
    """A trainable array. ``data`` holds the values, ``grad`` the accumulated gradient (None after
    ``zero_grad``) and ``requires_grad`` whether backward computes a gradient for it and optimizers
    update it (set it to False to freeze a layer for transfer learning)."""

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data, requires_grad: bool = True):
        self.data = data
        self.grad = None
        self.requires_grad = bool(requires_grad)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def accumulate(self, g) -> None:
        """Add ``g`` into ``grad`` (``g`` is taken over, not copied, when ``grad`` is None)."""
        if self.grad is None:
            self.grad = g
        else:
            np.add(self.grad, g, out=self.grad)

    def __repr__(self):
        return f"Parameter(shape={tuple(self.data.shape)}, dtype={self.data.dtype}, requires_grad={self.requires_grad})"


class Module:
    """Base class of every layer and model.

    Subclasses set Parameters, sub-Modules and buffers (``register_buffer``) as attributes; they
    are found in the order they were assigned, and named as in PyTorch (``conv1.weight``,
    ``0.bias``, ``bn.running_mean``), so a PyTorch state_dict of the same architecture loads.

    ``needs_input_grad``: when False, ``backward`` may skip the input gradient and return None
    (the first layer of a network does not need it; Sequential forwards this flag to its first
    child)."""

    def __init__(self):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "needs_input_grad", True)

    def __setattr__(self, name, value):
        if "_params" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call Module.__init__() before assigning attributes")
        if isinstance(value, (Parameter, Module)) or name not in self._buffers:
            # a buffer stays registered when given a new array (e.g. ``self.running_mean = ...``)
            for d in (self._params, self._modules, self._buffers):
                d.pop(name, None)
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value) -> None:
        """A non-trainable array that belongs to the state (e.g. BatchNorm running statistics)."""
        object.__setattr__(self, name, value)
        self._buffers[name] = None  # the value lives in the attribute; this records the name and order

    # --- computation -------------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, grad_out):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def macs(self, input_shape, output_shape) -> int:
        """Multiply-adds of one forward call that took an input of ``input_shape`` and gave an
        output of ``output_shape``, counting this module's own weighted sums only (its children
        count theirs). Layers without them (activations, pooling, normalisation, containers)
        count 0, as torch.utils.flop_counter does; convolutions and Linear override this."""
        return 0

    # --- traversal ---------------------------------------------------------------------------
    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = ""):
        """(dotted name, Parameter) for every parameter, each once, in registration order."""
        seen = set()
        for mname, m in self.named_modules(prefix):
            for pname, p in m._params.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{mname}.{pname}" if mname else pname), p

    def parameters(self, trainable_only: bool = False):
        """List of Parameters (only those with requires_grad when ``trainable_only``)."""
        return [p for _, p in self.named_parameters() if p.requires_grad or not trainable_only]

    def zero_grad(self) -> None:
        """Drop every parameter gradient (``grad = None``; the next backward stores a fresh one)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True):
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def freeze(self):
        """requires_grad = False on every parameter of this module (transfer learning)."""
        for p in self.parameters():
            p.requires_grad = False
        return self

    def unfreeze(self):
        for p in self.parameters():
            p.requires_grad = True
        return self

    def num_parameters(self) -> int:
        return int(sum(p.data.size for p in self.parameters()))

    def astype(self, dtype):
        """Convert every parameter and floating buffer to ``dtype`` (in place); returns self."""
        dtype = np.dtype(dtype)
        for m in self.modules():
            for p in m._params.values():
                p.data = np.ascontiguousarray(p.data, dtype=dtype)
                p.grad = None
            for b in m._buffers:
                v = getattr(m, b)
                if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                    object.__setattr__(m, b, np.ascontiguousarray(v, dtype=dtype))
        return self

    # --- state -------------------------------------------------------------------------------
    def state_dict(self):
        """OrderedDict name -> NumPy array (copies) of every parameter and buffer."""
        out = OrderedDict()
        for mname, m in self.named_modules():
            pre = f"{mname}." if mname else ""
            for pname, p in m._params.items():
                out[pre + pname] = np.array(p.data, copy=True)
            for bname in m._buffers:
                v = getattr(m, bname)
                if v is not None:
                    out[pre + bname] = np.array(v, copy=True)
        return out

    def load_state_dict(self, state, strict: bool = True) -> None:
        """Copy arrays (NumPy, or anything np.asarray accepts, e.g. CPU torch tensors) into the
        parameters and buffers, keeping each one's dtype. Shapes must match; with ``strict`` the
        key sets must be equal. Raises KeyError/ValueError naming the offending entries."""
        targets = OrderedDict()
        for mname, m in self.named_modules():
            pre = f"{mname}." if mname else ""
            for pname, p in m._params.items():
                targets[pre + pname] = (m, pname, True)
            for bname in m._buffers:
                if getattr(m, bname) is not None:
                    targets[pre + bname] = (m, bname, False)
        if strict:
            missing = [k for k in targets if k not in state]
            unexpected = [k for k in state if k not in targets]
            if missing or unexpected:
                raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, (m, name, is_param) in targets.items():
            if key not in state:
                continue
            v = state[key]
            if hasattr(v, "detach"):
                v = v.detach().cpu().numpy()
            v = np.asarray(v)
            cur = m._params[name].data if is_param else getattr(m, name)
            if tuple(v.shape) != tuple(cur.shape):
                raise ValueError(f"load_state_dict: {key} expected shape {tuple(cur.shape)}, got {tuple(v.shape)}")
            if is_param:
                m._params[name].data = np.array(v, dtype=cur.dtype, copy=True)
            else:
                object.__setattr__(m, name, np.array(v, dtype=cur.dtype, copy=True))

    def save(self, path) -> None:
        """Write the state_dict to an .npz file."""
        np.savez(path, **self.state_dict())

    def load(self, path, strict: bool = True):
        """Read a state_dict written by ``save`` (.npz) into this module; returns self."""
        with np.load(path) as f:
            self.load_state_dict({k: f[k] for k in f.files}, strict=strict)
        return self

    # --- printing ----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, m in self._modules.items():
            sub = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + "\n)"


def check_dtype(x, op: str):
    """TypeError unless x is a float32/float64 NumPy array (the layer API works on NumPy)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{op}: expected a NumPy array, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: expected float32 or float64, got {x.dtype}")


def check_ndim(x, ndims, layout: str, op: str):
    if x.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{op}: expected input with {want} dimensions {layout}, got {x.ndim} with shape {x.shape}")


def saved(value, op: str):
    """Raise a clear error when backward runs before forward."""
    if value is None:
        raise RuntimeError(f"{op}: backward called before forward")
    return value

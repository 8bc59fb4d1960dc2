"""Containers that chain backward explicitly: Sequential, Residual (x + F(x)), Concat (parallel
branches joined along channels, as in Inception)."""
from __future__ import annotations

import numpy as np

from .module import Module, saved


class Sequential(Module):
    """Runs its children in order; backward runs their backward in reverse. Children are named
    "0", "1", ... as in torch.nn.Sequential (so state_dict keys match), or given as one dict
    {name: module} (an OrderedDict keeps the order)."""

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], dict):
            named = list(layers[0].items())  # named children, e.g. features / classifier
        else:
            if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
                layers = tuple(layers[0])
            named = [(str(i), m) for i, m in enumerate(layers)]
        for i, (name, m) in enumerate(named):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: expected Modules, got {type(m).__name__} at position {i}")
            setattr(self, name, m)

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, m):
        if not isinstance(m, Module):
            raise TypeError(f"Sequential: expected a Module, got {type(m).__name__}")
        setattr(self, str(len(self._modules)), m)
        return self

    def __setattr__(self, name, value):
        if name == "needs_input_grad" and self._modules:
            object.__setattr__(next(iter(self._modules.values())), "needs_input_grad", value)
        super().__setattr__(name, value)

    def forward(self, x):
        for m in self._modules.values():
            x = m.forward(x)
        return x

    def backward(self, grad_out):
        mods = list(self._modules.values())
        g = grad_out
        for m in reversed(mods):
            g = m.backward(g)
            if g is None:
                break
        return g


class Residual(Module):
    """y = F(x) + shortcut(x), shortcut the identity or a ``projection`` module (e.g. 1x1 conv +
    BatchNorm when shapes change). Backward: grad_in = F.backward(g) + shortcut.backward(g)."""

    def __init__(self, body, projection=None):
        super().__init__()
        self.body = body
        self.projection = projection

    def forward(self, x):
        y = self.body.forward(x)
        s = x if self.projection is None else self.projection.forward(x)
        if y.shape != s.shape:
            raise ValueError(f"Residual: body output shape {y.shape} differs from shortcut shape {s.shape}; "
                             f"give a projection")
        # a new array: the body's last layer may have kept its output for backward (Tanh, Sigmoid)
        return y + s

    def backward(self, grad_out):
        gb = self.body.backward(grad_out)
        gs = grad_out if self.projection is None else self.projection.backward(grad_out)
        if not self.needs_input_grad:
            return None
        if gb is None:
            return gs
        if gs is None:
            return gb
        return gb + gs


class Concat(Module):
    """Applies each branch to the same input and concatenates the outputs along ``dim`` (default
    1, channels). Backward splits the gradient and sums the branch input gradients. Branches are
    named "0", "1", ..., or given as one dict {name: module} (torchvision's Inception names them
    branch1 ... branch4)."""

    def __init__(self, *branches, dim=1):
        super().__init__()
        if len(branches) == 1 and isinstance(branches[0], dict):
            named = list(branches[0].items())
        else:
            if len(branches) == 1 and isinstance(branches[0], (list, tuple)):
                branches = tuple(branches[0])
            named = [(str(i), m) for i, m in enumerate(branches)]
        for i, (name, m) in enumerate(named):
            if not isinstance(m, Module):
                raise TypeError(f"Concat: expected Modules, got {type(m).__name__} at position {i}")
            setattr(self, name, m)
        self.dim = dim
        self._sizes = None

    def forward(self, x):
        outs = [m.forward(x) for m in self._modules.values()]
        self._sizes = [o.shape[self.dim] for o in outs]
        return np.concatenate(outs, axis=self.dim)

    def backward(self, grad_out):
        sizes = saved(self._sizes, "Concat")
        cuts = np.cumsum(sizes)[:-1]
        parts = np.split(grad_out, cuts, axis=self.dim)
        total = None
        for m, g in zip(self._modules.values(), parts):
            gi = m.backward(np.ascontiguousarray(g))
            if gi is None:
                continue
            total = gi if total is None else total + gi
        return total

"""Model summary and multiply-add count: ``summary(model, input_shape)`` and ``flops(model, input_shape)``.

Both run one forward pass of a zero batch through the model in eval mode, with every module's
``forward`` wrapped for the duration to record the shapes it saw. Each module then reports its own
multiply-adds through ``Module.macs(input_shape, output_shape)``: convolutions (C_in/groups *
prod(kernel) per output element; per input element for transposed ones), Linear (in * out per
row) and LocallyConnected2d; every other layer counts 0. That is the convention of
torch.utils.flop_counter (which counts 2 FLOPs per multiply-add, and nothing for activations,
pooling, normalisation or bias additions) and of the "GFLOPS" column of torchvision's model
table, which is multiply-adds: AlexNet 0.714 G, VGG-16 15.47 G, ResNet-50 4.09 G at 224x224.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

import numpy as np

from .module import Module


@dataclass
class LayerInfo:
    """One row of a summary: a module that holds parameters itself or has no children."""

    name: str                 # dotted name, as in state_dict keys ("features.0")
    type: str                 # class name
    output_shape: tuple | None  # of its last call; None when the forward pass did not call it
    params: int               # parameters held by this module itself (shared ones counted once)
    trainable: int            # of which requires_grad
    macs: int                 # multiply-adds of all its calls in the pass
    calls: int                # how many times the forward pass called it


@dataclass
class ModelSummary:
    """What :func:`summary` returns; ``str()`` (and ``repr()``) give the table."""

    model_type: str
    input_shape: tuple
    dtype: str
    layers: list = field(default_factory=list)
    output_shape: tuple | None = None

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(r.trainable for r in self.layers)

    @property
    def frozen_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.layers)

    def __str__(self) -> str:
        return format_summary(self)

    __repr__ = __str__


def _human(v: float, unit: str) -> str:
    """v with a k/M/G prefix on unit: "4.089 GMAC", "25.6 M", "12 MAC"."""
    for prefix, scale, digits in (("G", 1e9, 3), ("M", 1e6, 1), ("k", 1e3, 1)):
        if abs(v) >= scale:
            return f"{v / scale:.{digits}f} {prefix}{unit}"
    return f"{int(v)} {unit}".rstrip()


def format_summary(s: ModelSummary) -> str:
    """The summary as a table: one row per layer, then the totals."""
    def shape(t):
        return "(not run)" if t is None else "(" + ", ".join(str(int(v)) for v in t) + ")"

    def state(r):
        if r.params == 0:
            return ""
        if r.trainable == r.params:
            return "yes"
        return "frozen" if r.trainable == 0 else "partly"

    head = ("layer", "type", "output shape", "params", "trainable", "multiply-adds")
    rows = [(r.name, r.type + (f" x{r.calls}" if r.calls > 1 else ""), shape(r.output_shape), f"{r.params:,}",
             state(r), f"{r.macs:,}") for r in s.layers]
    widths = [max(len(head[i]), *(len(row[i]) for row in rows)) if rows else len(head[i]) for i in range(6)]
    right = (False, False, False, True, False, True)

    def line(cells):
        return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

    rule = "-" * len(line(["x" * w for w in widths]))
    itemsize = np.dtype(s.dtype).itemsize
    out = [f"{s.model_type}: input {shape(s.input_shape)} {s.dtype}", rule, line(head), rule]
    out += [line(r) for r in rows]
    out += [rule,
            f"output shape:       {shape(s.output_shape)}",
            f"parameters:         {s.total_params:,} ({_human(s.total_params, '')}, "
            f"{s.total_params * itemsize / 2**20:.1f} MiB as {s.dtype})",
            f"  trainable:        {s.trainable_params:,}",
            f"  frozen:           {s.frozen_params:,}",
            f"multiply-adds:      {s.total_macs:,} ({_human(s.total_macs, 'MAC')}; 2 FLOPs each)"]
    return "\n".join(out)


def _first_array(v):
    if isinstance(v, np.ndarray):
        return v
    if isinstance(v, (tuple, list)):
        for e in v:
            a = _first_array(e)
            if a is not None:
                return a
    return None


def _model_dtype(model):
    for p in model.parameters():
        if p.data.dtype in (np.float32, np.float64):
            return p.data.dtype
    return np.dtype(np.float32)


def summary(model, input_shape, batch_size: int = 1, dtype=None, depth=None) -> ModelSummary:
    """A per-layer table of ``model`` for inputs of ``input_shape`` (one sample, without the batch
    dimension: ``(3, 224, 224)``, ``(in_features,)``).

    Runs one forward pass of a zero batch of ``batch_size`` samples in ``dtype`` (default: the
    parameters' dtype) in eval mode; the modules' modes and ``forward`` methods and the state of
    cnnops.nn.init's generator are restored afterwards. Rows are the modules that hold parameters
    or have no children, in the order the pass first called them (modules it did not call, such as
    auxiliary heads in eval mode, come last with no shape); each gives its output shape, its own
    parameter count (a shared parameter counts once), whether those are trainable ("yes",
    "frozen", "partly") and its multiply-adds (see the module docstring). ``depth=d`` stops at
    dotted names of d parts: a module deeper down is counted in its ancestor of depth d (depth=1
    gives one row per block of a ResNet's ``layer1``...). Returns a :class:`ModelSummary`; print
    it for the table, or read ``layers``, ``total_params``, ``trainable_params``, ``frozen_params``
    and ``total_macs``."""
    from . import init

    op = "summary"
    if not isinstance(model, Module):
        raise TypeError(f"{op}: expected a cnnops.nn Module, got {type(model).__name__}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else (input_shape,)
    if not shape or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                            for v in shape):
        raise ValueError(f"{op}: expected input_shape as positive integers (one sample, e.g. (3, 224, 224)), got "
                         f"{input_shape!r}")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise ValueError(f"{op}: expected batch_size >= 1, got {batch_size!r}")
    if depth is not None and not (isinstance(depth, (int, np.integer)) and depth >= 0):
        raise ValueError(f"{op}: expected depth None or >= 0, got {depth!r}")
    dt = _model_dtype(model) if dtype is None else np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{op}: expected dtype float32 or float64, got {dt}")

    # every module once (one reachable under two names keeps its first), each parameter at its
    # first owner; `key` is the row a module's own parameters and multiply-adds go to
    modules, seen_mod, seen_par = [], set(), set()
    for name, m in model.named_modules():
        if id(m) in seen_mod:
            continue
        seen_mod.add(id(m))
        own = [p for p in m._params.values() if p is not None and id(p) not in seen_par]
        seen_par.update(id(p) for p in own)
        parts = name.split(".") if name else []
        key = name if depth is None or len(parts) <= depth else ".".join(parts[:depth])
        modules.append((name, m, own, key, bool(own) or not m._modules))
    by_name = {name: m for name, m, *_ in modules}
    calls = {id(m): [] for _, m, *_ in modules}
    order = []

    def wrap(m, orig):
        def forward(*args, **kwargs):
            out = orig(*args, **kwargs)
            xin, yout = _first_array(args), _first_array(out)
            if not calls[id(m)]:
                order.append(id(m))
            calls[id(m)].append((None if xin is None else xin.shape, None if yout is None else yout.shape))
            return out
        return forward

    modes = [(m, m.training) for _, m, *_ in modules]
    rng_state = init.get_rng().bit_generator.state
    patched = []
    try:
        for _, m, *_ in modules:
            before = m.__dict__.get("forward")
            object.__setattr__(m, "forward", wrap(m, m.forward))
            patched.append((m, before))
        model.eval()
        x = np.zeros((batch_size,) + shape, dtype=dt)
        try:
            y = model(x)
        except Exception as e:
            raise ValueError(f"{op}: the forward pass of {type(model).__name__} on an input of shape {x.shape} "
                             f"failed: {type(e).__name__}: {e}") from e
    finally:
        for m, before in patched:
            if before is None:
                del m.__dict__["forward"]
            else:
                object.__setattr__(m, "forward", before)
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
        init.get_rng().bit_generator.state = rng_state

    rows = {}
    for name, m, own, key, counted in modules:
        if not counted:
            continue
        if key not in rows:
            km = by_name[key]
            seen = calls[id(km)]
            rows[key] = LayerInfo(key or type(km).__name__, type(km).__name__, seen[-1][1] if seen else None,
                                  0, 0, 0, len(seen))
        r = rows[key]
        r.params += int(sum(p.data.size for p in own))
        r.trainable += int(sum(p.data.size for p in own if p.requires_grad))
        r.macs += sum(int(m.macs(sin, sout)) for sin, sout in calls[id(m)] if sin is not None and sout is not None)
    rank = {k: i for i, k in enumerate(order)}
    out = ModelSummary(type(model).__name__, (batch_size,) + shape, str(dt))
    out.layers = [rows[k] for k in sorted(rows, key=lambda k: rank.get(id(by_name[k]), len(rank)))]
    y0 = _first_array(y)
    out.output_shape = None if y0 is None else y0.shape
    return out


def flops(model, input_shape, batch_size: int = 1, dtype=None) -> int:
    """Multiply-adds of one forward pass of ``model`` on ``batch_size`` inputs of ``input_shape``
    (one sample, without the batch dimension), counted as :func:`summary` does: the number
    torchvision's model table quotes as "GFLOPS" (AlexNet 0.714 G, VGG-16 15.47 G, ResNet-50
    4.09 G at (3, 224, 224)), and half the FLOPs torch.utils.flop_counter reports."""
    return summary(model, input_shape, batch_size=batch_size, dtype=dtype).total_macs


# ----------------------------------------------------------------------------------------------
# python -m cnnops summary

# builder name -> default input shape of one sample (C, H, W)
SUMMARY_MODELS = {
    "lenet5": (1, 32, 32),
    "mnist_cnn": (1, 28, 28),
    "alexnet": (3, 224, 224),
    "alexnet_paper": (3, 227, 227),
    "vgg11": (3, 224, 224),
    "vgg16": (3, 224, 224),
    "resnet18": (3, 224, 224),
    "resnet34": (3, 224, 224),
    "resnet50": (3, 224, 224),
    "googlenet": (3, 224, 224),
    "inception_net": (1, 28, 28),
    "fcn": (3, 64, 64),
    "yolo_tiny": (1, 32, 32),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``python -m cnnops summary``."""
    p.add_argument("--model", required=True, choices=list(SUMMARY_MODELS), metavar="MODEL",
                   help="a builder of cnnops.nn.models: " + ", ".join(
                       f"{k} ({'x'.join(map(str, v))})" for k, v in SUMMARY_MODELS.items()))
    p.add_argument("--input", default=None, metavar="C,H,W",
                   help="one input's shape (default: the model's usual one, in brackets above)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the builder's)")
    p.add_argument("--batch-size", type=int, default=1, help="batch of the counted pass (default 1)")
    p.add_argument("--depth", type=int, default=None,
                   help="count modules below this many name parts in their ancestor (default: every layer)")


def run(args, parser=None) -> int:
    """Build the model named by ``args.model``, print its summary; 0, or 2 for bad arguments."""
    from .._args import usage_error
    from . import models

    shape = SUMMARY_MODELS[args.model]
    if args.input is not None:
        try:
            shape = tuple(int(v) for v in args.input.replace("x", ",").split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3 or min(shape) < 1:
            return usage_error(parser, "cnnops summary", f"argument --input: expected C,H,W positive integers, "
                                                         f"got {args.input!r}")
    if args.batch_size < 1:
        return usage_error(parser, "cnnops summary", f"argument --batch-size: expected >= 1, got {args.batch_size}")
    if args.depth is not None and args.depth < 0:
        return usage_error(parser, "cnnops summary", f"argument --depth: expected >= 0, got {args.depth}")
    kwargs = {"in_channels": shape[0]}
    if args.num_classes is not None:
        if args.num_classes < 1:
            return usage_error(parser, "cnnops summary",
                               f"argument --num-classes: expected >= 1, got {args.num_classes}")
        kwargs["num_classes"] = args.num_classes
    if args.model in ("lenet5", "mnist_cnn"):
        if shape[1] != shape[2]:
            return usage_error(parser, "cnnops summary", f"argument --input: {args.model} takes square images, got "
                                                         f"{shape[1]}x{shape[2]}")
        kwargs["input_size"] = shape[1]
    try:
        model = getattr(models, args.model)(rng=np.random.default_rng(0), **kwargs)
        print(summary(model, shape, batch_size=args.batch_size, depth=args.depth))
    except ValueError as e:
        print(f"cnnops summary: {e}", file=sys.stderr)
        return 2
    return 0

"""Helpers shared by the test files: array makers, moving arrays to a device and back, the
relative-error check, and builder-style testers per op family (as NNPACK's `PoolingTester`).

A tester describes one problem with chained calls, each returning a new tester (so a shared case
can be specialised without changing it), and checks it with `.test(device)`:

    ConvTester().batch(2).channels(3, 4).input_size(5, 7).kernel(3, 3).stride(2).padding(1) \\
        .dtype("f4").algo("gemm").test(device)

builds random inputs, runs the forward and the backward through cnnops on `device` with every
output NaN-poisoned first, and compares them with the float64 references in tests/reference.py;
`.test_torch(device)` compares with PyTorch's float64 autograd as a second oracle. Inputs and
references are built once per problem and dtype and cached, so running a case under every
algorithm costs one reference."""
from __future__ import annotations

import contextlib
import types
import zlib

import numpy as np
import pytest

import cnnops
import reference as R

# Relative error bounds ||out - ref|| / ||ref|| of the convolution family: every algorithm is an
# exact-arithmetic method (direct loops, implicit GEMM, depthwise planes, slab kernels, Winograd
# F(2x2, 3x3) and F(2x2, 5x5) in the working precision).
TOL = {np.float32: 1e-5, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["f32", "f64"]
MODES = ["zeros", "reflect", "replicate", "circular"]

_DTYPE_NAMES = {"f4": np.float32, "f32": np.float32, "float32": np.float32,
                "f8": np.float64, "f64": np.float64, "float64": np.float64}


def as_dtype(dtype):
    """"f4"/"f32"/"float32"/np.float32 -> np.float32 (and the float64 spellings -> np.float64)."""
    if isinstance(dtype, str):
        return _DTYPE_NAMES[dtype]
    return np.dtype(dtype).type


# ----------------------------------------------------------------------------- arrays


def randn(rng, shape, dtype=np.float64, ties=False):
    """Standard normal values of `dtype`, or small integers (many exact ties) when `ties`."""
    if ties:
        return rng.integers(-3, 4, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def zeros(shape, dtype=np.float64):
    """A zero array: the placeholder argument of the bad-argument tables."""
    return np.zeros(shape, dtype)


def to_cl(a):
    """(N, C, *spatial) -> (N, *spatial, C) as a contiguous array (channels-last input)."""
    return np.ascontiguousarray(np.moveaxis(a, 1, -1))


def from_cl(a):
    """(N, *spatial, C) -> (N, C, *spatial) as a view (for comparing channels-last outputs)."""
    return np.moveaxis(np.asarray(a), -1, 1)


@contextlib.contextmanager
def poisoned_outputs():
    """Fill every new cnnops output with NaN bytes before the kernel writes it, so an element a
    kernel forgets to write fails the comparison instead of holding an old value."""
    cnnops._C._set_poison_outputs(True)
    try:
        yield
    finally:
        cnnops._C._set_poison_outputs(False)


# ----------------------------------------------------------------------------- devices


def _cuda_module():
    """The array library that holds CUDA arrays here: torch when it sees a GPU, else CuPy, else the
    package's own CUDA arrays (cnnops.cuda.array; the only kind in an emulation build)."""
    if cnnops.cuda.is_emulated():
        return "cnnops"
    try:
        import torch

        if torch.cuda.is_available():
            return "torch"
    except ImportError:
        pass
    try:
        import cupy  # noqa: F401

        return "cupy"
    except ImportError:
        return "cnnops"


def to_device(a, device):
    """A NumPy array as an array on `device` ("cpu": the array itself; "cuda": a torch CUDA tensor,
    a CuPy array where torch has no GPU, or a cnnops CUDA array). None stays None."""
    if a is None or device == "cpu":
        return a
    assert device == "cuda", device
    mod = _cuda_module()
    if mod == "torch":
        import torch

        return torch.from_numpy(np.ascontiguousarray(a)).to("cuda")
    if mod == "cupy":
        import cupy

        return cupy.asarray(a)
    return cnnops.cuda.array(a)


def to_host(a, device, what="output"):
    """An op's result on `device` as a NumPy array, after checking it is the array kind the inputs
    were (cnnops returns the caller's own array type). None stays None."""
    if a is None:
        return None
    if device == "cpu":
        assert isinstance(a, np.ndarray), f"{what}: expected a NumPy array, got {type(a).__name__}"
        return a
    mod = _cuda_module()
    if mod == "cnnops":
        assert isinstance(a, cnnops.Array), f"{what}: expected a cnnops.Array, got {type(a).__name__}"
        assert a.device.startswith("cuda"), f"{what}: expected a CUDA array, got one on {a.device}"
        return a.numpy()
    assert type(a).__module__.split(".")[0] == mod, f"{what}: expected a {mod} array, got {type(a).__name__}"
    if mod == "torch":
        assert a.device.type == "cuda", f"{what}: expected a CUDA tensor, got one on {a.device}"
        return a.cpu().numpy()
    import cupy

    return cupy.asnumpy(a)


# Half precision on CUDA arrays (float16 / bfloat16, accumulated in float32 by the kernels).
HALF = ["float16", "bfloat16"]
# relative error of float32 sums stored in 16 bits (2^-11 and 2^-8 per element, with margin)
HALF_EPS = {"float16": 2e-3, "bfloat16": 1.6e-2}


def half_array(a, dtype):
    """`a` rounded to `dtype` ("float16" or "bfloat16") as a cnnops CUDA array, and the rounded
    values as float32 NumPy (what the float32 CPU kernels are fed for the reference)."""
    if dtype == "float16":
        h = np.asarray(a, np.float32).astype(np.float16)
        return cnnops.cuda.array(h), h.astype(np.float32)
    torch = pytest.importorskip("torch")  # NumPy has no bfloat16: the values cross as a torch CPU tensor
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(torch.bfloat16)
    return cnnops.cuda.array(t), t.float().numpy()


def half_to_float(a, dtype=None):
    """A float16/bfloat16 cnnops CUDA array as float32 NumPy (checking its dtype when given)."""
    assert a.device.startswith("cuda") and (dtype is None or str(a.dtype) == dtype), (a.dtype, a.device)
    if str(a.dtype) == "float16":
        return a.numpy().astype(np.float32)
    torch = pytest.importorskip("torch")
    return torch.from_dlpack(a.to("cpu")).float().numpy()


# ----------------------------------------------------------------------------- comparisons


def check_close(out, ref, dtype, what, tol=None):
    """`out` is a NumPy array of `dtype` and `ref`'s shape within relative error `tol` (a bound or a
    {dtype: bound} table; TOL by default) of `ref`. NaN and infinities must sit where the reference
    has them, with the same signs; with a finite reference any non-finite output fails."""
    tol = TOL if tol is None else tol
    tol = tol[dtype] if isinstance(tol, dict) else tol
    assert isinstance(out, np.ndarray), f"{what}: expected a NumPy array, got {type(out).__name__}"
    assert out.dtype == dtype, f"{what}: dtype {out.dtype}, expected {np.dtype(dtype)}"
    assert out.shape == tuple(ref.shape), f"{what}: shape {out.shape}, expected {tuple(ref.shape)}"
    both_nan = np.isnan(out) & np.isnan(ref)
    assert not (np.isnan(out) != np.isnan(ref)).any(), f"{what}: NaN where the reference has none (or vice versa)"
    o, r = np.where(both_nan, 0, out), np.where(both_nan, 0, ref)
    inf = np.isinf(r)
    assert np.array_equal(o[inf], r[inf]), f"{what}: infinities differ from the reference"
    err = R.rel_err(np.where(inf, 0, o), np.where(inf, 0, r))
    assert err < tol, f"{what}: relative error {err:.3g} >= {tol:.0e}"


# ----------------------------------------------------------------------------- builders


def _set(field, convert=None):
    """A chained setter of parameter `field` (its value passed through `convert` when given)."""
    def setter(self, value):
        return self._with(**{field: convert(value) if convert else value})
    return setter


def _flag(field):
    """A chained setter of the boolean parameter `field`, True when called without a value."""
    def setter(self, on=True):
        return self._with(**{field: on})
    return setter


def _sizes(field):
    """A chained setter of the tuple parameter `field` from its entries: .input_size(5, 7)."""
    def setter(self, *sizes):
        return self._with(**{field: tuple(sizes)})
    return setter


class _Builder:
    """Immutable parameter set with chained setters: every setter returns a changed copy."""

    _defaults: dict = {}

    def __init__(self, id=None, **params):
        self._p = dict(self._defaults)
        self._p.update(params)
        self._p["id"] = id if id is not None else self._p.get("id")

    def _with(self, **changes):
        out = object.__new__(type(self))
        out._p = {**self._p, **changes}
        return out

    named = _set("id")
    dtype = _set("dtype", lambda d: as_dtype(d))

    @property
    def id(self):
        return self._p["id"]

    @property
    def p(self):
        """The parameters as a read-only mapping (name -> value)."""
        return types.MappingProxyType(self._p)

    def _key(self, *skip):
        return repr(sorted((k, v) for k, v in self._p.items() if k not in ("id",) + skip))

    def __repr__(self):
        return f"{type(self).__name__}({self._key()})"


def case_algo_params(testers):
    """pytest.param(tester, algo) for every algorithm valid for each tester, ids "<id>-<algo>"."""
    return [pytest.param(t, a, id=f"{t.id}-{a}") for t in testers for a in t.algos()]


# ----------------------------------------------------------------------------- convolution

_CONV_FWD = {1: "conv1d", 2: "conv2d", 3: "conv3d"}
_CONV_DATA = {}


class ConvTester(_Builder):
    """Convolution (conv1d/2d/3d) or transposed convolution (.transposed()) with its backward.

    channels(c_in, c_out): input and output channels; the weight is (c_out, c_in / groups, *kernel)
    for a convolution and (c_in, c_out / groups, *kernel) for a transposed one. padding takes any
    spelling the op accepts; input_size's length picks the dimensionality."""

    _defaults = dict(batch=1, c_in=1, c_out=1, input_size=(5, 5), kernel=(3, 3), stride=1, padding=0,
                     dilation=1, groups=1, mode="zeros", bias=False, transposed=False, output_padding=0,
                     output_size=None, dtype=np.float32, algo="auto")

    # setters
    batch = _set("batch")

    def channels(self, c_in, c_out):
        return self._with(c_in=c_in, c_out=c_out)

    input_size = _sizes("input_size")
    kernel = _sizes("kernel")
    stride = _set("stride")
    padding = _set("padding")
    dilation = _set("dilation")
    groups = _set("groups")
    padding_mode = _set("mode")
    bias = _flag("bias")
    transposed = _flag("transposed")
    output_padding = _set("output_padding")

    def output_size(self, sizes):
        return self._with(output_size=tuple(sizes))

    algo = _set("algo")

    def shape(self, x_shape, c_out, kernel):
        """Batch, input channels and sizes from an input shape (N, C, *spatial) in one call."""
        return self._with(batch=x_shape[0], c_in=x_shape[1], input_size=tuple(x_shape[2:]), c_out=c_out,
                          kernel=tuple(kernel))

    def with_mode(self, mode):
        """This problem with padding mode `mode`, its id suffixed "-<mode>"."""
        return self._with(mode=mode, id=f"{self.id}-{mode}")

    # derived values
    @property
    def nd(self):
        return len(self._p["input_size"])

    @property
    def x_shape(self):
        return (self._p["batch"], self._p["c_in"]) + self._p["input_size"]

    @property
    def w_shape(self):
        p = self._p
        if p["transposed"]:
            return (p["c_in"], p["c_out"] // p["groups"]) + p["kernel"]
        return (p["c_out"], p["c_in"] // p["groups"]) + p["kernel"]

    @property
    def pads(self):
        """Flat (before_0, after_0, before_1, ...) pads; (top, bottom, left, right) in 2-D."""
        p = self._p
        if self.nd == 2 and not p["transposed"]:
            return R.resolve_pads(p["padding"], p["input_size"], p["kernel"], p["stride"], p["dilation"])
        return R.resolve_pads_nd(p["padding"], p["input_size"], p["kernel"], p["stride"], p["dilation"])

    @property
    def outs(self):
        """Output spatial sizes of a transposed convolution."""
        p = self._p
        if p["output_size"] is not None:
            return tuple(p["output_size"][-self.nd:])
        return R.conv_transpose_out_sizes(p["input_size"], p["kernel"], p["stride"], self.pads, p["dilation"],
                                          p["output_padding"])

    @property
    def op_pad(self):
        """The output_padding that gives self.outs (a transposed convolution)."""
        p = self._p
        base = R.conv_transpose_out_sizes(p["input_size"], p["kernel"], p["stride"], self.pads, p["dilation"], 0)
        return tuple(o - b for o, b in zip(self.outs, base))

    @property
    def symmetric(self):
        """Equal padding before and after in every dimension (what PyTorch's transposed ops take)."""
        pads = self.pads
        return all(pads[2 * i] == pads[2 * i + 1] for i in range(self.nd))

    def kwargs(self):
        """Keyword arguments of the forward op (without algo)."""
        p = self._p
        kw = dict(stride=p["stride"], padding=p["padding"], dilation=p["dilation"], groups=p["groups"])
        if p["transposed"]:
            if p["output_size"] is not None:
                kw["output_size"] = p["output_size"]
            else:
                kw["output_padding"] = p["output_padding"]
        else:
            kw["padding_mode"] = p["mode"]
        return kw

    def bwd_kwargs(self):
        """Keyword arguments of the backward op (without algo)."""
        kw = self.kwargs()
        if self._p["transposed"]:
            kw.pop("output_size", None)
            kw["output_padding"] = self.op_pad
        return kw

    def ref_kwargs(self):
        p = self._p
        kw = dict(stride=p["stride"], dilation=p["dilation"], groups=p["groups"])
        if p["transposed"]:
            return dict(kw, pads=self.pads)
        if self.nd == 2:
            return dict(kw, pads4=self.pads, mode=p["mode"])
        return dict(kw, pads=self.pads, mode=p["mode"])

    def algos(self):
        """Every algorithm valid for this problem: depthwise needs groups == the channels of the
        convolution's input (for a transposed one, its adjoint's: c_out) and, in 3-D, a depth-1
        kernel; Winograd a 3x3 or 5x5 kernel over height and width with stride and dilation 1 there
        (convolutions in 2-D and 3-D)."""
        p = self._p
        a = ["direct", "gemm", "auto", "smallc"]
        dw_channels = p["c_out"] if p["transposed"] else p["c_in"]
        if p["groups"] == dw_channels and (self.nd < 3 or p["kernel"][0] == 1):
            a.append("depthwise")
        if not p["transposed"] and self.nd >= 2 and p["kernel"][-2:] in ((3, 3), (5, 5)) \
                and _last2_ones(p["stride"]) and _last2_ones(p["dilation"]):
            a.append("winograd")
        return a

    # the ops
    @property
    def _name(self):
        return ("conv_transpose" if self._p["transposed"] else "conv") + f"{self.nd}d"

    def forward_op(self):
        return getattr(cnnops, self._name)

    def backward_op(self):
        return getattr(cnnops, self._name + "_backward")

    def run_forward(self, x, w, b=None, **extra):
        """The forward op on these arrays with this problem's arguments (and algo)."""
        return self.forward_op()(x, w, b, **{"algo": self._p["algo"], **self.kwargs(), **extra})

    def run_backward(self, gy, x, w, **extra):
        """The backward op: (grad_input, grad_weight, grad_bias)."""
        return self.backward_op()(gy, x, w, **{"algo": self._p["algo"], **self.bwd_kwargs(), **extra})

    # data and references
    def data(self):
        """(x, w, b, gy, y_ref, (gx_ref, gw_ref, gb_ref)) in this dtype, the references in float64
        from the very values the kernel sees; built once per problem and dtype."""
        key = self._key("algo")
        if key not in _CONV_DATA:
            p = self._p
            dtype = p["dtype"]
            rng = np.random.default_rng(zlib.crc32(self._key("algo", "dtype").encode()))
            x = rng.standard_normal(self.x_shape).astype(dtype)
            w = rng.standard_normal(self.w_shape).astype(dtype)
            b = rng.standard_normal(p["c_out"]).astype(dtype) if p["bias"] else None
            if p["transposed"]:
                y_ref = R.conv_transpose_ref(x, w, b, outs=self.outs, **self.ref_kwargs())
            else:
                y_ref = _CONV_REF[self.nd][0](x, w, b, **self.ref_kwargs())
            gy = rng.standard_normal(y_ref.shape).astype(dtype)
            if p["transposed"]:
                grads = R.conv_transpose_backward_ref(gy, x, w, **self.ref_kwargs())
            else:
                grads = _CONV_REF[self.nd][1](gy, x, w, **self.ref_kwargs())
            _CONV_DATA[key] = (x, w, b, gy, y_ref, grads)
        return _CONV_DATA[key]

    # checks
    def _skip_unless_on(self, device):
        """CUDA has no Winograd kernel: algo="winograd" raises there (tested in test_conv_cuda.py)."""
        if device == "cuda" and self._p["algo"] == "winograd":
            pytest.skip("no CUDA Winograd kernel")

    def test_forward(self, device="cpu"):
        self._skip_unless_on(device)
        x, w, b, _, y_ref, _ = self.data()
        with poisoned_outputs():
            y = self.run_forward(*(to_device(a, device) for a in (x, w, b)))
        what = f"{self._name}[{self._p['algo']}] on {device}"
        check_close(to_host(y, device, what), y_ref, self._p["dtype"], what)
        return self

    def test_backward(self, device="cpu"):
        self._skip_unless_on(device)
        x, w, _, gy, _, refs = self.data()
        with poisoned_outputs():
            grads = self.run_backward(*(to_device(a, device) for a in (gy, x, w)))
        for name, g, r in zip(("grad_input", "grad_weight", "grad_bias"), grads, refs):
            what = f"{name} of {self._name}[{self._p['algo']}] on {device}"
            check_close(to_host(g, device, what), r, self._p["dtype"], what)
        return self

    def test(self, device="cpu"):
        """Forward and backward against the float64 references."""
        return self.test_forward(device).test_backward(device)

    def test_torch(self, device="cpu"):
        """Forward and backward against PyTorch's float64 autograd on the same values; cnnops is
        fed torch tensors of this dtype on `device` and must return torch tensors there."""
        torch = pytest.importorskip("torch")
        if device == "cuda" and not torch.cuda.is_available():
            pytest.skip("PyTorch sees no CUDA device (the comparison needs torch CUDA tensors)")
        p = self._p
        dtype = p["dtype"]
        x, w, b, gy, _, _ = self.data()
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
        bt = torch.tensor(b, dtype=torch.float64, requires_grad=True) if b is not None else None
        yt = self.torch_forward(torch, xt, wt, bt)
        yt.backward(torch.tensor(gy, dtype=torch.float64))

        dev = "cuda" if device == "cuda" else "cpu"
        tx, tw, tgy = (torch.from_numpy(a).to(dev) for a in (x, w, gy))
        tb = torch.from_numpy(b).to(dev) if b is not None else None
        with poisoned_outputs():
            y = self.run_forward(tx, tw, tb, algo="auto")
            gx, gw, gb = self.run_backward(tgy, tx, tw, algo="auto")
        for out, ref, what in ((y, yt, "output"), (gx, xt.grad, "grad_input"), (gw, wt.grad, "grad_weight"),
                               (gb, None if bt is None else bt.grad, "grad_bias")):
            assert isinstance(out, torch.Tensor), what
            assert out.dtype == tx.dtype and out.device.type == dev, what
            if ref is None:
                continue
            assert tuple(out.shape) == tuple(ref.shape), what
            err = R.rel_err(out.cpu().numpy(), ref.detach().numpy())
            assert err < TOL[dtype], f"{what}: relative error {err:.3g} vs torch"
        # grad_bias is the sum of grad_output over all but the channel dimension, bias or not
        sums = gy.astype(np.float64).sum(axis=(0,) + tuple(range(2, 2 + self.nd)))
        assert tuple(gb.shape) == (p["c_out"],)
        assert R.rel_err(gb.cpu().numpy(), sums) < TOL[dtype]
        return self

    def torch_forward(self, torch, x, w, b):
        """PyTorch's op on float64 tensors: F.conv*d on the F.pad-ed input (explicit pads in every
        mode, last dimension first), or F.conv_transpose*d with symmetric padding."""
        F = torch.nn.functional
        p = self._p
        pads = self.pads
        if p["transposed"]:
            assert self.symmetric, "PyTorch's transposed convolutions take symmetric padding only"
            fn = getattr(F, f"conv_transpose{self.nd}d")
            return fn(x, w, b, stride=p["stride"], padding=tuple(pads[0::2]), output_padding=self.op_pad,
                      groups=p["groups"], dilation=p["dilation"])
        torch_pads = []
        for i in reversed(range(self.nd)):
            torch_pads += [pads[2 * i], pads[2 * i + 1]]
        xp = F.pad(x, torch_pads, mode=R.TORCH_PAD_MODE[p["mode"]]) if any(pads) else x
        fn = getattr(F, f"conv{self.nd}d")
        return fn(xp, w, b, stride=p["stride"], dilation=p["dilation"], groups=p["groups"])


_CONV_REF = {1: (R.conv1d_ref, R.conv1d_backward_ref), 2: (R.conv2d_ref, R.conv2d_backward_ref),
             3: (R.conv3d_ref, R.conv3d_backward_ref)}


def _last2_ones(v):
    """True when a stride/dilation argument (int or tuple) is 1 in its last two dimensions."""
    return all(t == 1 for t in (v[-2:] if isinstance(v, (tuple, list)) else (v,)))


# ----------------------------------------------------------------------------- pooling

# Relative error bounds of the pooling family: window sums in the working precision (max pooling
# and its indices are compared exactly). LP pooling is checked in float64 (and its float32 forward
# against the float64 result).
POOL_TOL = {np.float32: 2e-6, np.float64: 1e-12}
LP_TOL = {"forward": {np.float32: 5e-6, np.float64: 1e-13}, "backward": {np.float32: 5e-6, np.float64: 1e-12}}
_POOL_DATA = {}
_FORMATS = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


def ntuple(v, nd):
    """An int (or a sequence of nd ints) as a tuple of nd ints."""
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * nd


def pool_pads(padding, nd):
    """Pooling's padding (int, nd ints, or 2*nd ints) as flat (before_0, after_0, ...) pads."""
    p = ntuple(padding, nd)
    return [e for v in p for e in (v, v)] if len(p) == nd else list(p)


def data_format(nd, channels_last):
    """The data_format string of an nd-dimensional op: "NCHW"/"NHWC" in 2-D and so on."""
    return _FORMATS[nd][int(channels_last)]


def check_equal(out, ref, dtype, what):
    """`out` is a NumPy array of `dtype` and `ref`'s shape holding exactly `ref`'s values."""
    assert isinstance(out, np.ndarray), f"{what}: expected a NumPy array, got {type(out).__name__}"
    assert out.dtype == dtype, f"{what}: dtype {out.dtype}, expected {np.dtype(dtype)}"
    assert out.shape == tuple(ref.shape), f"{what}: shape {out.shape}, expected {tuple(ref.shape)}"
    np.testing.assert_array_equal(out, np.asarray(ref).astype(dtype), err_msg=what)


class PoolTester(_Builder):
    """Max, average, LP and adaptive pooling (kind "max", "avg", "lp", "adaptive_avg",
    "adaptive_max") in 1-D, 2-D or 3-D with its backward, channels-first or channels-last.

    Max pooling runs with and without indices (the values must agree, the indices equal the
    reference's) and its backward with the forward's indices and with recomputed ones."""

    _defaults = dict(kind="max", batch=2, channels=3, input_size=(9, 9), kernel=3, stride=None, padding=0,
                     dilation=1, ceil_mode=False, count_include_pad=True, divisor_override=None, norm=2.0,
                     output_size=None, channels_last=False, dtype=np.float64)

    def __init__(self, kind="max", id=None, **params):
        super().__init__(id=id, kind=kind, **params)

    batch = _set("batch")
    channels = _set("channels")
    input_size = _sizes("input_size")
    kernel = _set("kernel")
    stride = _set("stride")
    padding = _set("padding")
    dilation = _set("dilation")
    ceil_mode = _flag("ceil_mode")
    count_include_pad = _flag("count_include_pad")
    divisor_override = _set("divisor_override")

    def norm(self, p):
        """The LP norm's p."""
        return self._with(norm=p)

    def output_size(self, sizes):
        """Adaptive pooling's output size (an int, or one entry per dimension, None keeps the input's)."""
        return self._with(output_size=sizes)

    channels_last = _flag("channels_last")

    # derived values
    @property
    def nd(self):
        return len(self._p["input_size"])

    @property
    def x_shape(self):
        return (self._p["batch"], self._p["channels"]) + self._p["input_size"]

    @property
    def data_format(self):
        return data_format(self.nd, self._p["channels_last"])

    def _geometry(self):
        """(kernel, stride, flat pads, dilation) as tuples for the references."""
        p, nd = self._p, self.nd
        k = ntuple(p["kernel"], nd)
        s = k if p["stride"] is None else ntuple(p["stride"], nd)
        return k, s, pool_pads(p["padding"], nd), ntuple(p["dilation"], nd)

    @property
    def out_sizes(self):
        """Adaptive pooling's output sizes with None entries resolved."""
        return tuple(self._p["input_size"][i] if v is None else v
                     for i, v in enumerate(ntuple(self._p["output_size"], self.nd)))

    @property
    def _name(self):
        return f"{self._p['kind']}_pool{self.nd}d"

    def _args(self):
        """Positional arguments after the input, as the op takes them."""
        p = self._p
        kind = p["kind"]
        if kind == "max":
            return (p["kernel"], p["stride"], p["padding"], p["dilation"], p["ceil_mode"])
        if kind == "avg":
            return (p["kernel"], p["stride"], p["padding"], p["ceil_mode"], p["count_include_pad"])
        if kind == "lp":
            return (p["norm"], p["kernel"], p["stride"], p["ceil_mode"])
        return (p["output_size"],)

    def _kwargs(self):
        kw = {"data_format": self.data_format}
        if self._p["kind"] == "avg" and self.nd > 1:
            kw["divisor_override"] = self._p["divisor_override"]
        return kw

    # the ops, on arrays in this tester's layout
    def run_forward(self, x, return_indices=False):
        f = getattr(cnnops, self._name)
        if self._p["kind"] in ("max", "adaptive_max"):
            return f(x, *self._args(), return_indices, **self._kwargs())
        return f(x, *self._args(), **self._kwargs())

    def run_backward(self, go, x, indices=None):
        f = getattr(cnnops, self._name + "_backward")
        kind = self._p["kind"]
        if kind in ("max", "adaptive_max"):
            return f(go, x, indices, *self._args()[: (5 if kind == "max" else 0)], **self._kwargs())
        if kind == "adaptive_avg":
            return f(go, x, **self._kwargs())
        return f(go, x, *self._args(), **self._kwargs())

    # data and references (channels-first, float64 references)
    def data(self):
        """(x, go, y_ref, indices_ref or None, gx_ref) in this dtype, channels-first."""
        key = self._key("channels_last")
        if key not in _POOL_DATA:
            p = self._p
            dtype, kind = p["dtype"], p["kind"]
            rng = np.random.default_rng(zlib.crc32(self._key("channels_last", "dtype").encode()))
            x = rng.standard_normal(self.x_shape)
            if kind == "lp":
                x = np.abs(x) + 0.1  # LP pooling of positive values: differentiable everywhere
            x = x.astype(dtype)
            k, s, pads, d = self._geometry()
            idx_ref = None
            if kind == "max":
                y_ref, idx_ref = R.max_pool_ref(x, k, s, pads, d, p["ceil_mode"])
            elif kind == "avg":
                y_ref = R.avg_pool_ref(x, k, s, pads, p["ceil_mode"], p["count_include_pad"], p["divisor_override"])
            elif kind == "lp":
                y_ref = R.lp_pool_ref(x, p["norm"], k, s, p["ceil_mode"])
            elif kind == "adaptive_avg":
                y_ref = R.adaptive_pool_ref(x, self.out_sizes, "avg")
            else:
                y_ref, idx_ref = R.adaptive_pool_ref(x, self.out_sizes, "max")
            go = rng.standard_normal(y_ref.shape).astype(dtype)
            if idx_ref is not None:
                g_ref = R.max_pool_backward_ref(go, idx_ref, x.shape)
            elif kind == "avg":
                g_ref = R.avg_pool_backward_ref(go, x.shape, k, s, pads, p["ceil_mode"], p["count_include_pad"],
                                                p["divisor_override"])
            elif kind == "lp":
                g_ref = R.lp_pool_backward_ref(go, x, p["norm"], k, s, p["ceil_mode"])
            else:
                g_ref = R.adaptive_avg_pool_backward_ref(go, x.shape)
            _POOL_DATA[key] = (x, go, y_ref, idx_ref, g_ref)
        return _POOL_DATA[key]

    def _in(self, a, device):
        return to_device(to_cl(a) if self._p["channels_last"] else a, device)

    def _out(self, a, device, what):
        a = to_host(a, device, what)
        return from_cl(a) if self._p["channels_last"] else a

    def _tol(self, which):
        return LP_TOL[which] if self._p["kind"] == "lp" else POOL_TOL

    # checks
    def test_forward(self, device="cpu"):
        x, _, y_ref, idx_ref, _ = self.data()
        dtype = self._p["dtype"]
        what = f"{self._name}[{self.data_format}] on {device}"
        xin = self._in(x, device)
        with poisoned_outputs():
            if idx_ref is None:
                check_close(self._out(self.run_forward(xin), device, what), y_ref, dtype, what, self._tol("forward"))
                return self
            y, idx = self.run_forward(xin, True)
            y2 = self.run_forward(xin)
        check_equal(self._out(y, device, what), y_ref, dtype, what)  # a maximum is exact
        check_equal(self._out(idx, device, what), idx_ref, np.int64, f"indices of {what}")
        check_equal(self._out(y2, device, what), y_ref, dtype, f"{what} without indices")
        return self

    def test_backward(self, device="cpu"):
        x, go, _, idx_ref, g_ref = self.data()
        dtype = self._p["dtype"]
        what = f"{self._name}_backward[{self.data_format}] on {device}"
        xin, goin = self._in(x, device), self._in(go, device)
        with poisoned_outputs():
            if idx_ref is None:
                g = self.run_backward(goin, xin)
                check_close(self._out(g, device, what), g_ref, dtype, what, self._tol("backward"))
                return self
            # with the forward's indices and with indices recomputed from the input
            _, idx = self.run_forward(xin, True)
            for ind, how in ((idx, "given indices"), (None, "recomputed indices")):
                g = self.run_backward(goin, xin, ind)
                check_close(self._out(g, device, what), g_ref, dtype, f"{what} ({how})", POOL_TOL)
        return self

    def test(self, device="cpu"):
        """Forward and backward against the float64 references."""
        return self.test_forward(device).test_backward(device)

    def test_torch(self, device="cpu"):
        """Forward and backward in float64 against torch.nn.functional's op with autograd; the
        indices of max pooling must be PyTorch's."""
        torch = pytest.importorskip("torch")
        p = self._p
        kind = p["kind"]
        tf = getattr(torch.nn.functional, self._name, None)
        if tf is None:
            pytest.skip(f"torch has no {self._name}")
        t = self.dtype(np.float64)._with(channels_last=False)
        x, go, _, _, _ = t.data()
        xt = torch.from_numpy(x).requires_grad_()
        if kind == "max":
            yt, it = tf(xt, *t._args(), True)
        elif kind == "adaptive_max":
            yt, it = tf(xt, p["output_size"], True)
        elif kind == "avg":
            yt, it = tf(xt, *t._args(), **({} if self.nd == 1 else {"divisor_override": p["divisor_override"]})), None
        else:
            yt, it = tf(xt, *t._args()), None
        yt.backward(torch.from_numpy(go))
        xin = to_device(x, device)
        with poisoned_outputs():
            if it is None:
                y, idx = t.run_forward(xin), None
            else:
                y, idx = t.run_forward(xin, True)
            g = t.run_backward(to_device(go, device), xin, *(() if idx is None else (idx,)))
        y, g = to_host(y, device), to_host(g, device)
        fwd_tol, bwd_tol = (LP_TOL["forward"][np.float64], LP_TOL["backward"][np.float64]) if kind == "lp" \
            else (1e-14, 1e-14)
        if it is not None:
            np.testing.assert_array_equal(y, yt.detach().numpy())
            np.testing.assert_array_equal(to_host(idx, device), it.numpy())
        else:
            assert R.rel_err(y, yt.detach().numpy()) < fwd_tol
        assert R.rel_err(g, xt.grad.numpy()) < bwd_tol
        return self


# ----------------------------------------------------------------------------- unpooling and upsampling

# Nearest upsampling's backward sums the gradient over each input's copies: float64 within 1e-13,
# float32 within 1e-6 of the float64 reference. The forward and both unpoolings move values only
# and are compared exactly.
UPSAMPLE_BWD_TOL = {np.float32: 1e-6, np.float64: 1e-13}
_UNPOOL_DATA = {}


def pool_indices(rng, N, C, out_sp, in_sp, unique=True):
    """Random valid max-pooling indices (N, C, *in_sp) into planes of size prod(out_sp), distinct
    per plane when `unique`."""
    plane = int(np.prod(out_sp))
    m = int(np.prod(in_sp))
    idx = np.empty((N, C, m), dtype=np.int64)
    for n in range(N):
        for c in range(C):
            idx[n, c] = rng.choice(plane, size=m, replace=not unique)
    return idx.reshape((N, C) + tuple(in_sp))


class UnpoolTester(_Builder):
    """Nearest upsampling ("upsample": scale_factor or size, mode "nearest" or "nearest-exact"),
    max-unpooling with indices ("max_unpool": kernel, stride, padding, output_size) and bed-of-nails
    unpooling ("bed_of_nails", 2-D: scale) with their backward, checked channels-first against the
    float64 references and channels-last against the channels-first result."""

    _defaults = dict(kind="upsample", batch=2, channels=3, input_size=(5, 7), mode="nearest", scale_factor=None,
                     size=None, recompute_scale_factor=None, kernel=2, stride=None, padding=0, output_size=None,
                     scale=2, dtype=np.float64)

    def __init__(self, kind="upsample", id=None, **params):
        super().__init__(id=id, kind=kind, **params)

    input_size = _sizes("input_size")
    mode = _set("mode")

    def scale_factor(self, f, recompute=None):
        return self._with(scale_factor=f, recompute_scale_factor=recompute)

    size = _set("size")
    kernel = _set("kernel")
    stride = _set("stride")
    padding = _set("padding")
    output_size = _set("output_size")

    def scale(self, s):
        """Bed-of-nails scale: an int or (sh, sw)."""
        return self._with(scale=s)

    @property
    def nd(self):
        return len(self._p["input_size"])

    @property
    def x_shape(self):
        return (self._p["batch"], self._p["channels"]) + self._p["input_size"]

    @property
    def out_sizes(self):
        p, nd = self._p, self.nd
        if p["kind"] == "upsample":
            if p["size"] is not None:
                return ntuple(p["size"], nd)
            return tuple(int(np.floor(i * f)) for i, f in zip(p["input_size"], ntuple(p["scale_factor"], nd)))
        if p["kind"] == "bed_of_nails":
            return tuple(i * s for i, s in zip(p["input_size"], ntuple(p["scale"], 2)))
        if p["output_size"] is not None:
            return tuple(p["output_size"])
        k = ntuple(p["kernel"], nd)
        s = k if p["stride"] is None else ntuple(p["stride"], nd)
        pad = ntuple(p["padding"], nd)
        return tuple((i - 1) * st - 2 * pp + kk for i, st, pp, kk in zip(p["input_size"], s, pad, k))

    def _scales(self):
        """The scales the reference maps outputs with (None: from the sizes)."""
        p = self._p
        if p["size"] is not None or p["recompute_scale_factor"]:
            return None
        return ntuple(p["scale_factor"], self.nd)

    def _kwargs(self):
        p = self._p
        if p["kind"] == "upsample":
            kw = {"mode": p["mode"]}
            for name in ("scale_factor", "size", "recompute_scale_factor"):
                if p[name] is not None:
                    kw[name] = p[name]
            return kw
        if p["kind"] == "max_unpool":
            return {"stride": p["stride"], "padding": p["padding"], "output_size": p["output_size"]}
        return {}

    @property
    def _name(self):
        kind = self._p["kind"]
        return {"upsample": f"upsample_nearest{self.nd}d", "max_unpool": f"max_unpool{self.nd}d",
                "bed_of_nails": "bed_of_nails_unpool2d"}[kind]

    def data(self):
        """(x, indices or None, gy, y_ref, gx_ref) in this dtype, channels-first."""
        key = self._key()
        if key not in _UNPOOL_DATA:
            p = self._p
            dtype, kind = p["dtype"], p["kind"]
            rng = np.random.default_rng(zlib.crc32(self._key("dtype").encode()))
            x = rng.standard_normal(self.x_shape).astype(dtype)
            out = self.out_sizes
            gy = rng.standard_normal(self.x_shape[:2] + out).astype(dtype)
            idx = None
            if kind == "upsample":
                exact = p["mode"] == "nearest-exact"
                y_ref = R.upsample_nearest_ref(x, out, self._scales(), exact)
                gx_ref = R.upsample_nearest_backward_ref(gy, p["input_size"], self._scales(), exact)
            elif kind == "max_unpool":
                idx = pool_indices(rng, p["batch"], p["channels"], out, p["input_size"])
                y_ref = R.max_unpool_ref(x, idx, out)
                gx_ref = R.max_unpool_backward_ref(gy, idx)
            else:
                s = ntuple(p["scale"], 2)
                y_ref = R.bed_of_nails_ref(x, s)
                gx_ref = gy[:, :, ::s[0], ::s[1]].astype(np.float64)
            _UNPOOL_DATA[key] = (x, idx, gy, y_ref, gx_ref)
        return _UNPOOL_DATA[key]

    def run_forward(self, x, idx=None, channels_last=False):
        p = self._p
        f = getattr(cnnops, self._name)
        kw = dict(self._kwargs(), **({"data_format": data_format(self.nd, True)} if channels_last else {}))
        if p["kind"] == "upsample":
            return f(x, **kw)
        if p["kind"] == "max_unpool":
            return f(x, idx, p["kernel"], **kw)
        return f(x, p["scale"], **kw)

    def run_backward(self, gy, x_or_sizes, idx=None, channels_last=False):
        p = self._p
        f = getattr(cnnops, self._name + "_backward")
        kw = dict(self._kwargs(), **({"data_format": data_format(self.nd, True)} if channels_last else {}))
        if p["kind"] == "upsample":
            return f(gy, x_or_sizes, **kw)
        if p["kind"] == "max_unpool":
            return f(gy, idx, p["kernel"], **kw)
        return f(gy, p["scale"], **kw)

    def test_forward(self, device="cpu"):
        x, idx, _, y_ref, _ = self.data()
        dtype = self._p["dtype"]
        what = f"{self._name} on {device}"
        with poisoned_outputs():
            y = to_host(self.run_forward(to_device(x, device), to_device(idx, device)), device, what)
            ycl = self.run_forward(to_device(to_cl(x), device), None if idx is None else to_device(to_cl(idx), device),
                                   channels_last=True)
        check_equal(y, y_ref, dtype, what)
        check_equal(from_cl(to_host(ycl, device, what)), y, dtype, f"{what} channels-last")
        return self

    def test_backward(self, device="cpu"):
        x, idx, gy, _, gx_ref = self.data()
        p = self._p
        dtype = p["dtype"]
        what = f"{self._name}_backward on {device}"
        dx, didx, dgy = to_device(x, device), to_device(idx, device), to_device(gy, device)
        with poisoned_outputs():
            gx = to_host(self.run_backward(dgy, dx, didx), device, what)
            gcl = self.run_backward(to_device(to_cl(gy), device), to_device(to_cl(x), device),
                                    None if idx is None else to_device(to_cl(idx), device), channels_last=True)
            if p["kind"] == "upsample":  # the input's sizes in place of the input give the same
                gs = to_host(self.run_backward(dgy, p["input_size"]), device, what)
                check_equal(gs, gx, dtype, f"{what} given the input sizes")
        if p["kind"] == "upsample":
            check_close(gx, gx_ref, dtype, what, UPSAMPLE_BWD_TOL)
        else:
            check_equal(gx, gx_ref, dtype, what)
        check_equal(from_cl(to_host(gcl, device, what)), gx, dtype, f"{what} channels-last")
        return self

    def test(self, device="cpu"):
        return self.test_forward(device).test_backward(device)


# ----------------------------------------------------------------------------- boxes and NMS

# Box metrics in the working precision: 1e-6 (float32) and 1e-12 (float64) relative error per
# unit of the tolerance; pairwise tables and losses are held to ten units (a few divisions and
# square roots each).
BOX_TOL = {np.float32: 1e-6, np.float64: 1e-12}
_BOX_KINDS = ("iou", "giou", "diou", "ciou")
_BOX_PAIRWISE = {"iou": "box_iou", "giou": "generalized_box_iou", "diou": "distance_box_iou",
                 "ciou": "complete_box_iou"}
_BOX_DATA = {}


def rand_boxes(rng, n, dtype=np.float64, degenerate=0):
    """n xyxy boxes, lower corners in [0, 25], sides in [0.5, 15]; the first `degenerate` have zero
    width or height (or both)."""
    xy = rng.uniform(0, 25, (n, 2))
    wh = rng.uniform(0.5, 15, (n, 2))
    for i in range(min(degenerate, n)):
        wh[i, i % 3 if i % 3 < 2 else slice(None)] = 0.0
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def make_boxes(rng, n, dtype=np.float32, kind="uniform", span=1000.0, size=(10, 80)):
    """n boxes for NMS: "uniform" corners over [0, span]^2, "clustered" jittered copies of a few
    boxes (many heavy overlaps), "mixed" sizes from points to half the image."""
    if kind == "clustered":
        k = max(1, n // 50)
        centres = rng.uniform(0, span, (k, 2))
        sizes = rng.uniform(*size, (k, 2))
        pick = rng.integers(0, k, n)
        c = centres[pick] + rng.normal(0, 0.1, (n, 2)) * sizes[pick]
        wh = sizes[pick] * rng.uniform(0.8, 1.2, (n, 2))
        xy = c - wh / 2
    elif kind == "mixed":
        xy = rng.uniform(0, span, (n, 2))
        wh = np.exp(rng.uniform(np.log(0.5), np.log(span / 2), (n, 2)))
        wh[rng.random(n) < 0.05] = 0.0  # some zero-area boxes
    else:
        xy = rng.uniform(0, span, (n, 2))
        wh = rng.uniform(*size, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(dtype)


def make_scores(rng, n, dtype=np.float32):
    return rng.random(n).astype(dtype)


class BoxTester(_Builder):
    """A box metric kind ("iou", "giou", "diou", "ciou") as a pairwise table (.pairwise(): boxes
    (n, 4) x (m, 4) -> (n, m), one box of the second set a copy of a non-degenerate box of the
    first, whose entry must be 1) or as a loss between paired boxes (.loss(reduction)) with its
    backward, against the float64 references."""

    _defaults = dict(kind="iou", op="pairwise", n=13, m=17, degenerate=(0, 0), offset=0, reduction="none",
                     dtype=np.float64)

    def __init__(self, kind="iou", id=None, **params):
        assert kind in _BOX_KINDS, kind
        super().__init__(id=id, kind=kind, **params)

    def pairwise(self, n, m):
        return self._with(op="pairwise", n=n, m=m)

    def loss(self, n, reduction="none"):
        return self._with(op="loss", n=n, m=n, reduction=reduction)

    def degenerate(self, d1, d2):
        """How many boxes of each set have zero width or height."""
        return self._with(degenerate=(d1, d2))

    offset = _set("offset")

    def data(self):
        """(boxes1, boxes2, grad_output or None, forward reference, gradient references or None)."""
        key = self._key()
        if key not in _BOX_DATA:
            p = self._p
            dtype, (d1, d2) = p["dtype"], p["degenerate"]
            rng = np.random.default_rng(zlib.crc32(self._key("dtype").encode()))
            b1 = rand_boxes(rng, p["n"], dtype, degenerate=d1)
            go = grads = None
            if p["op"] == "pairwise":
                assert d1 < p["n"], "the copied box must not be degenerate"
                b2 = np.concatenate([rand_boxes(rng, p["m"] - 1, dtype, degenerate=d2), b1[d1:d1 + 1]])
                ref = R.box_pairwise_ref(b1.astype(np.float64), b2.astype(np.float64), p["kind"], p["offset"])
            else:
                b2 = rand_boxes(rng, p["n"], dtype, degenerate=d2)
                # three overlapping pairs after the degenerate boxes, their corners kept ordered
                i = slice(max(d1, d2), max(d1, d2) + 3)
                b2[i] = b1[i] + rng.uniform(-2, 2, b2[i].shape)
                b2[i, 2:] = np.maximum(b2[i, 2:], b2[i, :2] + 0.5)
                ref = R.box_loss_ref(b1.astype(np.float64), b2.astype(np.float64), p["kind"], p["reduction"], 1e-7,
                                     p["offset"])
                go = rng.standard_normal(p["n"]) if p["reduction"] == "none" else np.array(1.7)
                if dtype == np.float64:
                    grads = R.box_loss_grad_ref(b1, b2, p["kind"], p["reduction"], 1e-7, p["offset"],
                                                go if p["reduction"] == "none" else 1.7)
            _BOX_DATA[key] = (b1, b2, go, ref, grads)
        return _BOX_DATA[key]

    def test_forward(self, device="cpu"):
        p = self._p
        b1, b2, _, ref, _ = self.data()
        dtype, tol = p["dtype"], BOX_TOL[p["dtype"]] * 10
        with poisoned_outputs():
            if p["op"] == "pairwise":
                out = getattr(cnnops, _BOX_PAIRWISE[p["kind"]])(to_device(b1, device), to_device(b2, device),
                                                                offset=p["offset"])
            else:
                out = getattr(cnnops, f"{p['kind']}_loss")(to_device(b1, device), to_device(b2, device),
                                                           reduction=p["reduction"], offset=p["offset"])
        what = f"{p['kind']} {p['op']} on {device}"
        check_close(to_host(out, device, what), ref, dtype, what, tol)
        if p["op"] == "pairwise":
            d1 = p["degenerate"][0]
            assert abs(to_host(out, device)[d1, -1] - 1.0) < tol, f"{what}: a box against itself"
        return self

    def test_backward(self, device="cpu"):
        """The loss gradients against the reference's central differences (float64 only)."""
        p = self._p
        assert p["op"] == "loss" and p["dtype"] == np.float64, "the backward is checked for float64 losses"
        b1, b2, go, _, (r1, r2) = self.data()
        with poisoned_outputs():
            g1, g2 = getattr(cnnops, f"{p['kind']}_loss_backward")(
                to_device(go, device), to_device(b1, device), to_device(b2, device), reduction=p["reduction"],
                offset=p["offset"])
        what = f"{p['kind']}_loss_backward on {device}"
        check_close(to_host(g1, device, what), r1, np.float64, f"grad boxes1 of {what}", 1e-6)
        check_close(to_host(g2, device, what), r2, np.float64, f"grad boxes2 of {what}", 1e-6)
        return self

    def test(self, device="cpu"):
        """The forward; for a float64 loss without degenerate boxes (where the loss has kinks the
        reference's differences straddle) also the backward."""
        p = self._p
        self.test_forward(device)
        if p["op"] == "loss" and p["dtype"] == np.float64 and p["degenerate"] == (0, 0):
            self.test_backward(device)
        return self


class NmsTester(_Builder):
    """Greedy NMS on `n` boxes of a layout ("uniform", "clustered", "mixed"; see make_boxes) with
    random scores, at several IoU thresholds: the keep list (int64 indices) must equal the float64
    reference's exactly."""

    _defaults = dict(n=61, layout="uniform", span=300.0, thresholds=(0.0, 0.3, 0.5, 0.7, 1.0), dtype=np.float32)

    def boxes(self, n, layout="uniform", span=300.0):
        return self._with(n=n, layout=layout, span=span)

    def thresholds(self, *ts):
        return self._with(thresholds=tuple(ts))

    def data(self):
        p = self._p
        rng = np.random.default_rng(zlib.crc32(self._key().encode()))
        b = make_boxes(rng, p["n"], p["dtype"], p["layout"], span=p["span"])
        return b, make_scores(rng, p["n"], p["dtype"])

    def test(self, device="cpu"):
        b, s = self.data()
        for t in self._p["thresholds"]:
            with poisoned_outputs():
                k = to_host(cnnops.nms(to_device(b, device), to_device(s, device), t), device, f"nms t={t}")
            assert k.dtype == np.int64 and k.ndim == 1, f"nms t={t}: keep list {k.dtype} with shape {k.shape}"
            want = R.nms_ref_vec(b, s, t)
            assert [int(v) for v in k] == [int(v) for v in np.asarray(want)], f"nms t={t} on {device}"
        return self

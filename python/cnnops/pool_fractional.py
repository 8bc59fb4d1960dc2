"""Fractional max pooling (Graham 2014), 2-D and 3-D, forward and backward, in two conventions.

PyTorch convention (``kernel_size`` with ``output_size`` or ``output_ratio``, ``_random_samples``):
with the same samples the output and indices equal ``torch.nn.functional.fractional_max_pool2d/3d``.
For a dimension of input size ``in``, output size ``out``, kernel ``k`` and sample ``u`` in [0, 1),
window ``i < out - 1`` starts at ``int((i + u) * alpha) - int(u * alpha)`` with
``alpha = (in - k) / (out - 1)`` computed in the input's dtype (float32 for float16/bfloat16 CUDA
inputs, as torch's CUDA kernels), and the last window starts at ``in - k``; every window is ``k``
long. Samples are (N, C, 2) ordered (w, h) in 2-D and (N, C, 3) ordered (d, h, w) in 3-D, one set
per (n, c) plane, as in torch; they may be host arrays for a CUDA input.

TensorFlow convention (``pooling_ratio``, ``pseudo_random``, ``overlapping``, ``seed``), as
``tf.nn.fractional_max_pool``: output size floor(in / ratio) per dimension; one cumulative pooling
sequence per dimension, shared by all planes, returned so a call can be reproduced (pass them back
as ``pooling_sequences``). Sequence rules (TensorFlow's fractional_pool_common):

- in % out == 0: every step is in / out;
- random (pseudo_random=False): steps are k = in // out, the first in % out of them k + 1, then
  shuffled uniformly;
- pseudo-random: alpha = in / out, u uniform in [0, min((k + 2) / alpha - 1,
  (in + 1 - k) / alpha - (out - 1))), a_0 = 1, a_out = in + 1, a_i = ceil(alpha * (i + u)); the
  sequence is a_i - 1.

Window i covers [seq[i], seq[i + 1]) or, with overlapping=True, [seq[i], seq[i + 1]] clipped to the
input. The random numbers come from ``numpy.random.default_rng(seed)``, not TensorFlow's Philox
stream, so sequences follow TF's rules without reproducing TF's draws (seed=None: fresh entropy).

Indices (int64) are flat over the spatial positions of one (n, c) plane of the input, as torch's.
The maximum is the first one in window order (d, h, w ascending); a NaN wins over numbers (the
last NaN in window order), as in torch's kernel."""
from __future__ import annotations

import math

import numpy as np

from . import _C
from ._args import channels_last, is_int, is_real, ntuple, shape_of, spatial, spatial_sizes, to_float
from ._arrays import prepare, wrap

_NAMES = {2: ("height", "width"), 3: ("depth", "height", "width")}


def _dtype_name(x) -> str:
    return str(x.dtype).split(".")[-1]


def _ratios(v, nd, name, op, cl):
    if is_real(v):
        return (to_float(v, name, op),) * nd
    if isinstance(v, (tuple, list)) and all(is_real(e) for e in v):
        if len(v) == nd:
            return tuple(to_float(e, name, op) for e in v)
        if len(v) == nd + 2:  # TensorFlow's form [1, r..., 1] (or [1, 1, r...] channels first)
            outer = (v[0], v[-1]) if cl else (v[0], v[1])
            if any(to_float(e, name, op) != 1.0 for e in outer):
                raise ValueError(f"{op}: expected {name} 1.0 for the batch and channel dimensions, got {tuple(v)}")
            return tuple(to_float(e, name, op) for e in spatial(tuple(v), nd, cl))
    raise TypeError(f"{op}: expected {name} as a number or {nd} numbers, got {v!r}")


def pooling_sequence(in_size: int, out_size: int, pseudo_random: bool, rng) -> np.ndarray:
    """TensorFlow's cumulative pooling sequence (out_size + 1 int64 values from 0 to in_size)."""
    if not 1 <= out_size <= in_size:
        raise ValueError(f"pooling_sequence: expected 1 <= output size <= input size, got {out_size} for {in_size}")
    k = in_size // out_size
    if in_size % out_size == 0:
        diff = np.full(out_size, k, dtype=np.int64)
    elif pseudo_random:
        alpha = in_size / out_size
        u_max1 = (k + 2) / alpha - 1
        u_max2 = (in_size + 1 - k) / alpha - (out_size - 1)
        u = rng.random() * min(u_max1, u_max2)
        cum = np.empty(out_size + 1, dtype=np.int64)
        cum[0] = 1
        cum[out_size] = in_size + 1
        for i in range(1, out_size):
            cum[i] = int(math.ceil(alpha * (i + u)))
        diff = np.diff(cum)
    else:
        diff = np.full(out_size, k, dtype=np.int64)
        diff[: in_size % out_size] += 1
        diff = rng.permutation(diff)
    return np.concatenate([[0], np.cumsum(diff)]).astype(np.int64)


def _rng(seed, op):
    """numpy.random.default_rng(seed) for seed None or a non-negative int."""
    if seed is not None and (not is_int(seed) or seed < 0):
        raise TypeError(f"{op}: expected seed as None or a non-negative int, got {seed!r}")
    return np.random.default_rng(seed)


def _core_refuses(op, x, nd, cl):
    """Let the core report what is wrong with an input of the wrong rank or dtype (its checks name
    the op and the expected layout); the output sizes are computed from the input, so Python
    cannot go on with it."""
    _C.fractional_max_pool(op, x, None, nd, cl, [], [], [[0, 1]] * nd, False)
    raise ValueError(f"{op}: expected input with {nd + 2} dimensions in float32 or float64, got shape "
                     f"{tuple(x.shape)} and dtype {_dtype_name(x)}")


def _fractional(nd, op, input, kernel_size, output_size, output_ratio, return_indices, _random_samples,
                pooling_ratio, pseudo_random, overlapping, seed, pooling_sequences, data_format):
    cl = channels_last(data_format, nd, op)
    x = prepare(input, op, "input")
    in_sp = spatial_sizes(x, nd, cl)
    if in_sp is None or _dtype_name(x) not in ("float32", "float64", "float16", "bfloat16"):
        _core_refuses(op, x, nd, cl)
    if not isinstance(return_indices, (bool, np.bool_)):
        raise TypeError(f"{op}: expected return_indices as a bool, got {return_indices!r}")
    tf_mode = pooling_ratio is not None or pooling_sequences is not None
    if tf_mode:
        if any(v is not None for v in (kernel_size, output_size, output_ratio, _random_samples)):
            raise ValueError(f"{op}: expected either the PyTorch arguments (kernel_size, output_size/output_ratio, "
                             f"_random_samples) or the TensorFlow ones (pooling_ratio / pooling_sequences), got both")
        if pooling_sequences is not None:
            if pooling_ratio is not None:
                raise ValueError(f"{op}: expected pooling_ratio or pooling_sequences, got both")
            if not (isinstance(pooling_sequences, (tuple, list)) and len(pooling_sequences) == nd):
                raise TypeError(f"{op}: expected pooling_sequences as {nd} integer sequences, "
                                f"got {pooling_sequences!r}")
            seqs = [np.asarray(q) for q in pooling_sequences]
            if any(q.ndim != 1 or q.dtype.kind not in "iu" for q in seqs):
                raise TypeError(f"{op}: expected pooling_sequences as {nd} one-dimensional integer sequences")
            seqs = [q.astype(np.int64) for q in seqs]
        else:
            ratio = _ratios(pooling_ratio, nd, "pooling_ratio", op, cl)
            if not all(math.isfinite(r) and r >= 1.0 for r in ratio):
                raise ValueError(f"{op}: expected pooling_ratio >= 1, got {ratio}")
            out = [int(math.floor(i / r)) for i, r in zip(in_sp, ratio)]
            if any(o < 1 for o in out):
                raise ValueError(f"{op}: expected a positive output size, got {tuple(out)} = floor(input size "
                                 f"{in_sp} / pooling_ratio {ratio})")
            rng = _rng(seed, op)
            seqs = [pooling_sequence(i, o, bool(pseudo_random), rng) for i, o in zip(in_sp, out)]
        y, idx = _C.fractional_max_pool(op, x, None, nd, cl, [], [], [q.tolist() for q in seqs], bool(overlapping))
        res = (wrap(y, input),) + ((wrap(idx, input),) if return_indices else ())
        return res + tuple(seqs)

    if kernel_size is None:
        raise ValueError(f"{op}: expected kernel_size (PyTorch convention) or pooling_ratio (TensorFlow convention)")
    k = ntuple(kernel_size, nd, "kernel_size", op)
    if (output_size is None) == (output_ratio is None):
        raise ValueError(f"{op}: expected exactly one of output_size and output_ratio, got "
                         f"{'both' if output_size is not None else 'neither'}")
    if output_size is not None:
        out = ntuple(output_size, nd, "output_size", op)
    else:
        ratio = _ratios(output_ratio, nd, "output_ratio", op, cl)
        if not all(0.0 < r < 1.0 for r in ratio):
            raise ValueError(f"{op}: expected output_ratio in (0, 1), got {ratio}")
        out = tuple(int(i * r) for i, r in zip(in_sp, ratio))
        if any(o < 1 for o in out):
            raise ValueError(f"{op}: expected a positive output size, got {out} from input size {in_sp} and "
                             f"output_ratio {ratio}")
    for i in range(nd):
        if out[i] + k[i] - 1 > in_sp[i]:
            raise ValueError(f"{op}: expected output_size + kernel_size - 1 <= input size, got {_NAMES[nd][i]} "
                             f"output {out[i]} + kernel {k[i]} - 1 > input {in_sp[i]}")
    if _random_samples is None:
        s = shape_of(x)
        # float16/bfloat16 inputs (CUDA) get float32 samples: their windows are computed in float32
        sdt = "float64" if _dtype_name(x) == "float64" else "float32"
        samples = np.random.default_rng().random((s[0], s[nd + 1] if cl else s[1], nd)).astype(sdt)
    else:
        samples = prepare(_random_samples, op, "_random_samples")
    y, idx = _C.fractional_max_pool(op, x, samples, nd, cl, list(k), list(out), [], False)
    return (wrap(y, input), wrap(idx, input)) if return_indices else wrap(y, input)


def fractional_max_pool2d(input, kernel_size=None, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None, *, pooling_ratio=None, pseudo_random=False, overlapping=False,
                          seed=None, pooling_sequences=None, data_format="NCHW"):
    """Fractional max pooling of input (N, C, H, W) (or (N, H, W, C) with data_format="NHWC").

    PyTorch convention: kernel_size (int or pair), output_size (pair) or output_ratio (in (0, 1),
    output = int(input * ratio)), _random_samples (N, C, 2) in [0, 1) in the input's dtype (or
    float32 for float16/bfloat16; drawn when None). Returns output (N, C, H_out, W_out), plus
    indices (int64, same shape) when return_indices. Needs output + kernel - 1 <= input in each dimension.

    TensorFlow convention: pooling_ratio (number, pair, or TF's [1, rh, rw, 1]; each >= 1),
    pseudo_random, overlapping, seed; or pooling_sequences=(row_seq, col_seq) from an earlier
    call. Returns (output, row_pooling_sequence, col_pooling_sequence), or
    (output, indices, row_pooling_sequence, col_pooling_sequence) when return_indices."""
    return _fractional(2, "fractional_max_pool2d", input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples, pooling_ratio, pseudo_random, overlapping, seed, pooling_sequences,
                       data_format)


def fractional_max_pool3d(input, kernel_size=None, output_size=None, output_ratio=None, return_indices=False,
                          _random_samples=None, *, pooling_ratio=None, pseudo_random=False, overlapping=False,
                          seed=None, pooling_sequences=None, data_format="NCDHW"):
    """Fractional max pooling of input (N, C, D, H, W) (or (N, D, H, W, C)); as
    :func:`fractional_max_pool2d` with triples, _random_samples (N, C, 3) ordered (d, h, w), and in
    the TensorFlow convention three sequences (depth, row, col) returned after the output (and
    indices)."""
    return _fractional(3, "fractional_max_pool3d", input, kernel_size, output_size, output_ratio, return_indices,
                       _random_samples, pooling_ratio, pseudo_random, overlapping, seed, pooling_sequences,
                       data_format)


def _backward(nd, op, grad_output, input, indices, data_format):
    cl = channels_last(data_format, nd, op)
    dy, x, ix = (prepare(grad_output, op, "grad_output"), prepare(input, op, "input"),
                 prepare(indices, op, "indices"))
    return wrap(_C.fractional_max_pool_backward(op, dy, x, ix, nd, cl), grad_output)


def fractional_max_pool2d_backward(grad_output, input, indices, data_format="NCHW"):
    """Gradient of :func:`fractional_max_pool2d` (either convention): grad_output and indices
    (N, C, H_out, W_out), input (N, C, H, W) -> grad_input (N, C, H, W), each element the sum of the
    output gradients whose index names it, added in output order (deterministic for any thread
    count; windows may overlap, so an element can receive several)."""
    return _backward(2, "fractional_max_pool2d_backward", grad_output, input, indices, data_format)


def fractional_max_pool3d_backward(grad_output, input, indices, data_format="NCDHW"):
    """Gradient of :func:`fractional_max_pool3d`: grad_input (N, C, D, H, W), as the 2-D version."""
    return _backward(3, "fractional_max_pool3d_backward", grad_output, input, indices, data_format)


FRACTIONAL_FUNCTIONS = ["fractional_max_pool2d", "fractional_max_pool3d", "fractional_max_pool2d_backward",
                        "fractional_max_pool3d_backward"]


def _with_stream_argument():
    """Every entry point takes ``stream=`` for CUDA arrays (see cnnops.cuda.streamable)."""
    from .cuda import streamable

    g = globals()
    for name in FRACTIONAL_FUNCTIONS:
        g[name] = streamable(g[name])


_with_stream_argument()

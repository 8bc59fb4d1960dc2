"""Argument spellings -> explicit values, in one place for every op.

Each entry point turns what the caller wrote (an int or a tuple, a padding string, a data-format
name, a Python number) into the explicit values the C++ core takes: tuples of 64-bit ints, per-side
pads, a channels-last flag, floats. Errors here are about the spelling or the Python type of an
argument and name the op: ``ValueError``/``TypeError: conv2d: expected stride as ...``.

Checks on arrays (rank, shape, dtype, device) belong to the core, which reports them with the op's
name; helpers below that need an array's sizes (``spatial_sizes``) return None for an array of the
wrong rank so the caller can hand it to the core and let it say what it expected.

Accepted spellings, shared by every op:

* sizes (kernel_size, stride, dilation, ...): an int, or a tuple/list of one int per spatial
  dimension; bools are not ints.
* padding: an int; one int per dimension (symmetric); two per dimension, (before, after) in order
  (``(top, bottom, left, right)`` in 2-D); or a string, case-insensitive: ``"valid"`` (no padding),
  ``"same"`` (TensorFlow's rule, any stride, the odd pixel at the end) and, for convolution,
  ``"full"`` (``dilation * (k - 1)`` on every side).
* data_format, case-insensitive: ``"NCW"``/``"NWC"`` (1-D), ``"NCHW"``/``"NHWC"`` (2-D),
  ``"NCDHW"``/``"NDHWC"`` (3-D), or ``"channels_first"``/``"channels_last"`` for any rank.
"""
from __future__ import annotations

import numbers

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

DATA_FORMATS = {1: ("NCW", "NWC"), 2: ("NCHW", "NHWC"), 3: ("NCDHW", "NDHWC")}


# ---- Python scalars --------------------------------------------------------------------------------

def is_int(v) -> bool:
    """An integer that is not a bool (True/False are refused wherever a size or count is expected)."""
    if type(v) is int:  # the common case, without the slower abstract-base-class check
        return True
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_real(v) -> bool:
    """A real number that is not a bool."""
    if type(v) is float or type(v) is int:
        return True
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_int64(values, name: str, op: str):
    """Return `values` (ints) after checking each fits the core's 64-bit signed sizes; a larger one
    is a ValueError naming the op and the argument, not a failed conversion inside the binding."""
    for v in values:
        if not INT64_MIN <= v <= INT64_MAX:
            raise ValueError(f"{op}: expected {name} to fit a 64-bit integer (magnitude below 2**63), got {v}")
    return values


def to_float(v, name: str, op: str) -> float:
    """A real number as a Python float; an int too large for a float is a ValueError naming the op."""
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{op}: expected {name} as a finite number, got an int too large for a float") from None


def real(v, name: str, op: str) -> float:
    """A real number (not a bool) as a float; anything else is a TypeError."""
    if not is_real(v):
        raise TypeError(f"{op}: expected {name} as a real number, got {v!r}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{op}: expected {name} as a finite real number, got an int too large for a float") from None


def integer(v, name: str, op: str, minimum=None) -> int:
    """An int (not a bool) within 64 bits, and >= `minimum` when given."""
    if not is_int(v):
        raise TypeError(f"{op}: expected {name} as an int, got {v!r}")
    v = check_int64((int(v),), name, op)[0]
    if minimum is not None and v < minimum:
        raise ValueError(f"{op}: expected {name} >= {minimum}, got {v}")
    return v


def flag(v, name: str, op: str) -> bool:
    """A bool (ints and NumPy bools are read as truth values, as Python does)."""
    if not isinstance(v, (bool, numbers.Integral)) and type(v).__name__ != "bool_":
        raise TypeError(f"{op}: expected {name} as a bool, got {v!r}")
    return bool(v)


def choice(v, choices, name: str, op: str) -> str:
    """`v` must be one of the strings in `choices` (exact spelling); returns it."""
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{op}: expected {name} one of {', '.join(repr(c) for c in choices)}, got {v!r}")
    return v


def ntuple(v, n: int, name: str, op: str, minimum=None) -> tuple:
    """An int, or a tuple/list of n ints -> tuple of n ints (each within 64 bits, and >= `minimum`
    when given)."""
    if is_int(v):
        t = (int(v),) * n
    elif isinstance(v, (tuple, list)) and len(v) == n and all(is_int(e) for e in v):
        t = tuple(int(e) for e in v)
    else:
        what = {1: "a 1-tuple", 2: "a pair of ints", 3: "a triple of ints"}.get(n, f"{n} ints")
        raise TypeError(f"{op}: expected {name} as an int or {what}, got {v!r}")
    check_int64(t, name, op)
    if minimum is not None and any(e < minimum for e in t):
        raise ValueError(f"{op}: expected {name} >= {minimum}, got {t if n > 1 else t[0]}")
    return t


def sizes(v, nd: int, name: str, op: str, channels_last: bool = False) -> tuple:
    """Output sizes: an int, nd ints, or a full (nd + 2)-dimensional shape whose spatial part (in the
    given layout) is taken."""
    if is_int(v):
        return check_int64((int(v),) * nd, name, op)
    if isinstance(v, (tuple, list)) and all(is_int(e) for e in v) and len(v) in (nd, nd + 2):
        t = check_int64(tuple(int(e) for e in v), name, op)
        return t if len(t) == nd else spatial(t, nd, channels_last)
    raise TypeError(f"{op}: expected {name} as {nd} ints (or the full {nd + 2}-dimensional shape), got {v!r}; "
                    f"one int stands for every dimension")


# ---- data formats ----------------------------------------------------------------------------------

def channels_last(data_format, nd: int, op: str) -> bool:
    """True for a channels-last data_format ("NWC", "NHWC", "NDHWC", "channels_last"), False for
    channels first ("NCW", "NCHW", "NCDHW", "channels_first"); case-insensitive."""
    first, last = DATA_FORMATS[nd]
    if isinstance(data_format, str):
        f = data_format.upper()
        if f in (first, "CHANNELS_FIRST"):
            return False
        if f in (last, "CHANNELS_LAST"):
            return True
    raise ValueError(f"{op}: expected data_format {first!r} or {last!r}, got {data_format!r} (also accepted: "
                     f"'channels_first', 'channels_last', in any case)")


def layout(nd: int, cl: bool) -> str:
    """"(N, C, H, W)" style description of a layout."""
    return "(" + ", ".join(DATA_FORMATS[nd][1 if cl else 0]) + ")"


# ---- array sizes -----------------------------------------------------------------------------------

def shape_of(x) -> tuple:
    return tuple(int(s) for s in x.shape)


def spatial(shape, nd: int, cl: bool) -> tuple:
    """The nd spatial entries of a full shape in its layout."""
    return tuple(shape[1:1 + nd]) if cl else tuple(shape[2:2 + nd])


def spatial_sizes(x, nd: int, cl: bool = False):
    """The nd spatial sizes of array `x`, or None when `x` does not have nd + 2 dimensions (the core
    reports that, naming the op and the expected layout)."""
    s = shape_of(x)
    return spatial(s, nd, cl) if len(s) == nd + 2 else None


# ---- padding ---------------------------------------------------------------------------------------

def same_pads(size: int, k: int, stride: int, dil: int):
    """TensorFlow's SAME rule: output = ceil(size / stride); the odd pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dil + 1 - size, 0)
    return total // 2, total - total // 2


def explicit_pads(padding, nd: int):
    """Per-side pads for the numeric spellings (an int, nd ints symmetric per dimension, or 2*nd
    ints before/after per dimension); None for anything else (strings, wrong lengths)."""
    if is_int(padding):
        return [int(padding)] * (2 * nd)
    if isinstance(padding, (tuple, list)) and all(is_int(e) for e in padding):
        if len(padding) == nd:
            return [int(e) for e in padding for _ in range(2)]
        if len(padding) == 2 * nd:
            return [int(e) for e in padding]
    return None


def padding_string(padding, allowed, op: str):
    """The lower-case padding string if `padding` is one of `allowed` (compared without case; listed
    in errors as written there: "SAME"/"VALID" for the ops that follow TensorFlow), None when it is
    not a string; another string is a ValueError listing the allowed ones."""
    if not isinstance(padding, str):
        return None
    p = padding.lower()
    if p not in (a.lower() for a in allowed):
        listed = ", ".join(repr(a) for a in allowed[:-1]) + f" or {allowed[-1]!r}"
        raise ValueError(f"{op}: expected padding {listed} as a string, got {padding!r}")
    return p


_PAD_FORMS = {1: "(p,) or (left, right)", 2: "(ph, pw) or (top, bottom, left, right)",
              3: "(pd, ph, pw) or (front, back, top, bottom, left, right)"}


def resolve_padding(padding, in_sizes, k_sizes, strides, dilations, op: str, allowed=("valid", "same", "full")):
    """Per-side pads [before_0, after_0, before_1, after_1, ...] for any accepted spelling.

    `in_sizes` and `k_sizes` are only read for "same" and "full"; pass None for an array of the
    wrong rank and the pads come back as zeros for the core to refuse the array."""
    nd = len(strides)
    p = padding_string(padding, allowed, op)
    if p is not None:
        if p == "valid" or in_sizes is None or k_sizes is None:
            return [0] * (2 * nd)
        pads = []
        for i in range(nd):
            if p == "same":
                pads += same_pads(in_sizes[i], k_sizes[i], strides[i], dilations[i])
            else:  # "full"
                pads += [dilations[i] * (k_sizes[i] - 1)] * 2
        return pads
    pads = explicit_pads(padding, nd)
    if pads is not None:
        return check_int64(pads, "padding", op)
    strings = ", ".join(repr(a) for a in allowed)
    raise TypeError(f"{op}: expected padding as an int, {_PAD_FORMS[nd]}, or one of {strings}, got {padding!r}")


# ---- counts ----------------------------------------------------------------------------------------

def optional_count(v, name: str, op: str) -> int:
    """-1 for None, else an int in [0, 2**63 - 1] (the kernels count in int64)."""
    if v is None:
        return -1
    if not is_int(v):
        raise TypeError(f"{op}: expected {name} as a non-negative int or None, got {v!r}")
    v = int(v)
    if v < 0:
        raise ValueError(f"{op}: expected {name} >= 0, got {v}")
    if v > INT64_MAX:
        raise ValueError(f"{op}: expected {name} <= 2**63 - 1 (a 64-bit count), got {v}")
    return v


def needs3(needs, op: str) -> tuple:
    """The `needs` argument of a backward: three truth values (input, weight, bias)."""
    if not (isinstance(needs, (tuple, list)) and len(needs) == 3):
        raise TypeError(f"{op}: expected needs as three booleans (input, weight, bias), got {needs!r}")
    return tuple(bool(n) for n in needs)


def usage_error(parser, prog: str, problem: str) -> int:
    """Print a command-line `problem` as argparse does (the usage line of `parser` when given, then
    "<prog>: error: ..."); returns the exit status 2."""
    import sys

    if parser is not None:
        parser.print_usage(sys.stderr)
    print(f"{parser.prog if parser is not None else prog}: error: {problem}", file=sys.stderr)
    return 2

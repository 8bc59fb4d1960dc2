"""Slow, obviously-correct float64 NumPy references for conv2d and its gradients.

Everything here is written from the definition and is the oracle for tests/test_conv.py:

* the input is padded explicitly with ``np.pad`` (padding_mode -> np.pad mode below), then
* a plain loop over the kernel taps (r, s) adds one einsum per tap: the tap sees the strided
  window of the padded input that starts at (r * dh, s * dw).

The gradients reuse the same tap loop: grad_weight correlates grad_output with each tap's window,
grad_input scatters grad_output back through each tap's window into a gradient of the *padded*
input and then folds that padded gradient back onto the input (zeros: the border is dropped;
reflect / replicate / circular: every padded position is added to the input pixel it was copied
from). Nothing here is tuned for speed; keep the test shapes small.
"""
from __future__ import annotations

import numpy as np

# padding_mode (cnnops / PyTorch spelling) -> np.pad mode
NP_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
# padding_mode -> torch.nn.functional.pad mode
TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def pair(v):
    """int -> (v, v); a pair stays a pair."""
    if isinstance(v, (tuple, list)):
        assert len(v) == 2
        return int(v[0]), int(v[1])
    return int(v), int(v)


def out_size(n, k, stride, pad_lo, pad_hi, dil):
    """Output length of one spatial dimension."""
    return (n + pad_lo + pad_hi - dil * (k - 1) - 1) // stride + 1


def same_pads_1d(n, k, stride, dil):
    """TensorFlow's SAME rule for one dimension: output ceil(n / stride), odd pixel at the end."""
    out = (n + stride - 1) // stride
    total = max((out - 1) * stride + (k - 1) * dil + 1 - n, 0)
    return total // 2, total - total // 2


def same_pads(in_hw, kernel_rs, stride=1, dilation=1):
    """(top, bottom, left, right) for padding='same'."""
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    t, b = same_pads_1d(in_hw[0], kernel_rs[0], sh, dh)
    l, r = same_pads_1d(in_hw[1], kernel_rs[1], sw, dw)
    return (t, b, l, r)


def resolve_pads(padding, in_hw, kernel_rs, stride=1, dilation=1):
    """Every padding spelling the API accepts -> (top, bottom, left, right)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding == "same":
            return same_pads(in_hw, kernel_rs, stride, dilation)
        if padding == "full":
            dh, dw = pair(dilation)
            ph, pw = dh * (kernel_rs[0] - 1), dw * (kernel_rs[1] - 1)
            return (ph, ph, pw, pw)
        raise ValueError(padding)
    if isinstance(padding, int):
        return (padding,) * 4
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    assert len(padding) == 4
    return padding


def pad_input(x, pads4, mode="zeros"):
    """Explicitly padded copy of x (N, C, H, W) with pads (top, bottom, left, right)."""
    t, b, l, r = pads4
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), mode=NP_PAD_MODE[mode])


def _geometry(x_shape, w_shape, stride, pads4, dilation, groups):
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    sh, sw = pair(stride)
    dh, dw = pair(dilation)
    t, b, l, r = pads4
    assert C % groups == 0 and K % groups == 0 and Cg == C // groups
    P = out_size(H, R, sh, t, b, dh)
    Q = out_size(W, S, sw, l, r, dw)
    assert P >= 1 and Q >= 1
    return N, C, H, W, K, Cg, R, S, sh, sw, dh, dw, P, Q


def _tap_window(r, s, sh, sw, dh, dw, P, Q):
    """Index of the (P, Q) window of the padded input that kernel tap (r, s) multiplies."""
    return (
        slice(r * dh, r * dh + (P - 1) * sh + 1, sh),
        slice(s * dw, s * dw + (Q - 1) * sw + 1, sw),
    )


def conv2d_ref(x, w, b=None, stride=1, pads4=(0, 0, 0, 0), dilation=1, groups=1, mode="zeros"):
    """y[n, k, p, q] = b[k] + sum_{c, r, s} w[k, c, r, s] * xpad[n, g*Cg + c, p*sh + r*dh, q*sw + s*dw]."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    N, C, H, W, K, Cg, R, S, sh, sw, dh, dw, P, Q = _geometry(x.shape, w.shape, stride, pads4, dilation, groups)
    G, Kg = groups, K // groups
    xp = pad_input(x, pads4, mode)
    xg = xp.reshape(N, G, Cg, xp.shape[2], xp.shape[3])
    wg = w.reshape(G, Kg, Cg, R, S)
    y = np.zeros((N, G, Kg, P, Q))
    for r in range(R):
        for s in range(S):
            hs, ws = _tap_window(r, s, sh, sw, dh, dw, P, Q)
            y += np.einsum("ngcpq,gkc->ngkpq", xg[:, :, :, hs, ws], wg[:, :, :, r, s])
    y = y.reshape(N, K, P, Q)
    if b is not None:
        y += np.asarray(b, dtype=np.float64)[None, :, None, None]
    return y


def _source_index(n, lo, hi, mode):
    """For each position of a dimension of length n padded by (lo, hi): the input index the padded
    value was copied from, or -1 where it is a constant zero. Taken from np.pad itself (pad an
    index vector with the same mode), so it agrees with pad_input by construction."""
    idx = np.arange(n)
    if mode == "zeros":
        return np.pad(idx, (lo, hi), mode="constant", constant_values=-1)
    return np.pad(idx, (lo, hi), mode=NP_PAD_MODE[mode])


def fold_padded_grad(gpad, hw, pads4, mode="zeros"):
    """Adjoint of pad_input: add every element of the padded gradient (N, C, Hp, Wp) into the input
    pixel it was read from. Done one axis at a time (padding is separable: a corner of the padded
    array is input[row_src(i), col_src(j)]), with an explicit loop over padded positions."""
    H, W = hw
    t, b, l, r = pads4
    rows = _source_index(H, t, b, mode)
    cols = _source_index(W, l, r, mode)
    N, C, Hp, Wp = gpad.shape
    assert Hp == len(rows) and Wp == len(cols)
    g_rows = np.zeros((N, C, H, Wp))
    for i, src in enumerate(rows):
        if src >= 0:
            g_rows[:, :, src, :] += gpad[:, :, i, :]
    g = np.zeros((N, C, H, W))
    for j, src in enumerate(cols):
        if src >= 0:
            g[:, :, :, src] += g_rows[:, :, :, j]
    return g


def conv2d_backward_ref(gy, x, w, stride=1, pads4=(0, 0, 0, 0), dilation=1, groups=1, mode="zeros"):
    """(grad_input, grad_weight, grad_bias) of conv2d_ref for the upstream gradient gy (N, K, P, Q)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    gy = np.asarray(gy, dtype=np.float64)
    N, C, H, W, K, Cg, R, S, sh, sw, dh, dw, P, Q = _geometry(x.shape, w.shape, stride, pads4, dilation, groups)
    assert gy.shape == (N, K, P, Q), (gy.shape, (N, K, P, Q))
    G, Kg = groups, K // groups
    xp = pad_input(x, pads4, mode)
    Hp, Wp = xp.shape[2], xp.shape[3]
    xg = xp.reshape(N, G, Cg, Hp, Wp)
    wg = w.reshape(G, Kg, Cg, R, S)
    gyg = gy.reshape(N, G, Kg, P, Q)
    gxp = np.zeros((N, G, Cg, Hp, Wp))
    gw = np.zeros((G, Kg, Cg, R, S))
    for r in range(R):
        for s in range(S):
            hs, ws = _tap_window(r, s, sh, sw, dh, dw, P, Q)
            gxp[:, :, :, hs, ws] += np.einsum("ngkpq,gkc->ngcpq", gyg, wg[:, :, :, r, s])
            gw[:, :, :, r, s] = np.einsum("ngkpq,ngcpq->gkc", gyg, xg[:, :, :, hs, ws])
    gx = fold_padded_grad(gxp.reshape(N, C, Hp, Wp), (H, W), pads4, mode)
    gb = gy.sum(axis=(0, 2, 3))
    return gx, gw.reshape(K, Cg, R, S), gb


def numerical_grad(f, x, eps=1e-6):
    """Central differences of the scalar function f() with respect to every element of the float64
    array x, which is perturbed in place (and restored)."""
    assert x.dtype == np.float64
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous so it can be perturbed in place"
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        fp = f()
        flat[i] = orig - eps
        fm = f()
        flat[i] = orig
        gflat[i] = (fp - fm) / (2 * eps)
    return g


def rel_err(a, ref):
    """||a - ref|| / ||ref|| in float64 (0 when both are zero)."""
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    num = np.linalg.norm((a - ref).ravel())
    den = np.linalg.norm(ref.ravel())
    if den == 0.0:
        return float(num)
    return float(num / den)


# ============================================================================= N-d convolution
#
# The same recipe as conv2d_ref above for any number of spatial dimensions (conv1d: 1, conv3d: 3):
# np.pad by mode, then one einsum per kernel tap over the strided window of the padded input that
# tap reads; the backward scatters through the same windows and folds the padded gradient back.
# Pads are a flat tuple (before_0, after_0, before_1, after_1, ...).


# einsum letters for up to three spatial dimensions (reductions over them need explicit subscripts)
_SPATIAL = "uvw"


def ntuple(v, nd):
    """int -> (v,) * nd; a sequence of nd ints stays as it is."""
    if isinstance(v, (tuple, list)):
        assert len(v) == nd, (v, nd)
        return tuple(int(e) for e in v)
    return (int(v),) * nd


def resolve_pads_nd(padding, in_sizes, k_sizes, stride=1, dilation=1):
    """Every padding spelling conv1d/conv3d accept -> flat (before_0, after_0, before_1, ...)."""
    nd = len(in_sizes)
    stride, dilation = ntuple(stride, nd), ntuple(dilation, nd)
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * (2 * nd)
        if padding == "same":
            pads = ()
            for i in range(nd):
                pads += same_pads_1d(in_sizes[i], k_sizes[i], stride[i], dilation[i])
            return pads
        if padding == "full":
            pads = ()
            for i in range(nd):
                pads += (dilation[i] * (k_sizes[i] - 1),) * 2
            return pads
        raise ValueError(padding)
    if isinstance(padding, int):
        return (padding,) * (2 * nd)
    padding = tuple(int(p) for p in padding)
    if len(padding) == nd:
        return tuple(p for p in padding for _ in range(2))
    assert len(padding) == 2 * nd, padding
    return padding


def pad_input_nd(x, pads, mode="zeros"):
    """Explicitly padded copy of x (N, C, *spatial) with flat per-side pads."""
    nd = x.ndim - 2
    assert len(pads) == 2 * nd
    widths = [(0, 0), (0, 0)] + [(pads[2 * i], pads[2 * i + 1]) for i in range(nd)]
    return np.pad(x, widths, mode=NP_PAD_MODE[mode])


def _geometry_nd(x_shape, w_shape, stride, pads, dilation, groups):
    nd = len(x_shape) - 2
    assert len(w_shape) == nd + 2 and len(pads) == 2 * nd
    N, C = x_shape[:2]
    K, Cg = w_shape[:2]
    assert C % groups == 0 and K % groups == 0 and Cg == C // groups
    stride, dilation = ntuple(stride, nd), ntuple(dilation, nd)
    outs = tuple(out_size(x_shape[2 + i], w_shape[2 + i], stride[i], pads[2 * i], pads[2 * i + 1], dilation[i])
                 for i in range(nd))
    assert all(o >= 1 for o in outs), outs
    return nd, N, C, K, Cg, stride, dilation, outs


def _tap_window_nd(tap, stride, dilation, outs):
    """Index (one slice per spatial dim) of the window of the padded input that kernel tap `tap` reads."""
    return tuple(slice(t * d, t * d + (o - 1) * s + 1, s) for t, s, d, o in zip(tap, stride, dilation, outs))


def convnd_ref(x, w, b=None, stride=1, pads=None, dilation=1, groups=1, mode="zeros"):
    """y[n, g*Kg + k, p...] = b[.] + sum_{c, taps} w[g*Kg + k, c, taps] * xpad[n, g*Cg + c, p*s + tap*d ...]."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    pads = tuple(pads) if pads is not None else (0,) * (2 * (x.ndim - 2))
    nd, N, C, K, Cg, stride, dilation, outs = _geometry_nd(x.shape, w.shape, stride, pads, dilation, groups)
    G, Kg = groups, K // groups
    xp = pad_input_nd(x, pads, mode)
    xg = xp.reshape((N, G, Cg) + xp.shape[2:])
    wg = w.reshape((G, Kg, Cg) + w.shape[2:])
    y = np.zeros((N, G, Kg) + outs)
    for tap in np.ndindex(*w.shape[2:]):
        win = _tap_window_nd(tap, stride, dilation, outs)
        y += np.einsum("ngc...,gkc->ngk...", xg[(Ellipsis,) + win], wg[(Ellipsis,) + tap])
    y = y.reshape((N, K) + outs)
    if b is not None:
        y += np.asarray(b, dtype=np.float64).reshape((K,) + (1,) * nd)
    return y


def fold_padded_grad_nd(gpad, sizes, pads, mode="zeros"):
    """Adjoint of pad_input_nd: every element of the padded gradient is added into the input element
    it was copied from (dropped where it is a constant zero), one spatial axis at a time."""
    nd = len(sizes)
    g = np.asarray(gpad, dtype=np.float64)
    for i in range(nd):
        axis = 2 + i
        src = _source_index(sizes[i], pads[2 * i], pads[2 * i + 1], mode)
        assert g.shape[axis] == len(src)
        shape = list(g.shape)
        shape[axis] = sizes[i]
        folded = np.zeros(shape)
        for j, s in enumerate(src):
            if s >= 0:
                dst = [slice(None)] * g.ndim
                dst[axis] = s
                take = [slice(None)] * g.ndim
                take[axis] = j
                folded[tuple(dst)] += g[tuple(take)]
        g = folded
    return g


def convnd_backward_ref(gy, x, w, stride=1, pads=None, dilation=1, groups=1, mode="zeros"):
    """(grad_input, grad_weight, grad_bias) of convnd_ref for the upstream gradient gy (N, K, *outs)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    gy = np.asarray(gy, dtype=np.float64)
    pads = tuple(pads) if pads is not None else (0,) * (2 * (x.ndim - 2))
    nd, N, C, K, Cg, stride, dilation, outs = _geometry_nd(x.shape, w.shape, stride, pads, dilation, groups)
    assert gy.shape == (N, K) + outs, (gy.shape, (N, K) + outs)
    G, Kg = groups, K // groups
    xp = pad_input_nd(x, pads, mode)
    xg = xp.reshape((N, G, Cg) + xp.shape[2:])
    wg = w.reshape((G, Kg, Cg) + w.shape[2:])
    gyg = gy.reshape((N, G, Kg) + outs)
    gxp = np.zeros(xg.shape)
    gw = np.zeros(wg.shape)
    sp = _SPATIAL[:nd]
    for tap in np.ndindex(*w.shape[2:]):
        win = _tap_window_nd(tap, stride, dilation, outs)
        gxp[(Ellipsis,) + win] += np.einsum("ngk...,gkc->ngc...", gyg, wg[(Ellipsis,) + tap])
        gw[(Ellipsis,) + tap] = np.einsum(f"ngk{sp},ngc{sp}->gkc", gyg, xg[(Ellipsis,) + win])
    gx = fold_padded_grad_nd(gxp.reshape((N, C) + xp.shape[2:]), x.shape[2:], pads, mode)
    gb = gy.sum(axis=(0,) + tuple(range(2, 2 + nd)))
    return gx, gw.reshape(w.shape), gb


def conv1d_ref(x, w, b=None, stride=1, pads=(0, 0), dilation=1, groups=1, mode="zeros"):
    """conv1d: x (N, C, L), w (K, C/groups, kL), pads (left, right)."""
    assert np.ndim(x) == 3 and np.ndim(w) == 3 and len(pads) == 2
    return convnd_ref(x, w, b, stride, pads, dilation, groups, mode)


def conv1d_backward_ref(gy, x, w, stride=1, pads=(0, 0), dilation=1, groups=1, mode="zeros"):
    assert np.ndim(x) == 3 and np.ndim(w) == 3 and len(pads) == 2
    return convnd_backward_ref(gy, x, w, stride, pads, dilation, groups, mode)


def conv3d_ref(x, w, b=None, stride=1, pads=(0,) * 6, dilation=1, groups=1, mode="zeros"):
    """conv3d: x (N, C, D, H, W), w (K, C/groups, T, R, S), pads (front, back, top, bottom, left, right)."""
    assert np.ndim(x) == 5 and np.ndim(w) == 5 and len(pads) == 6
    return convnd_ref(x, w, b, stride, pads, dilation, groups, mode)


def conv3d_backward_ref(gy, x, w, stride=1, pads=(0,) * 6, dilation=1, groups=1, mode="zeros"):
    assert np.ndim(x) == 5 and np.ndim(w) == 5 and len(pads) == 6
    return convnd_backward_ref(gy, x, w, stride, pads, dilation, groups, mode)


# ============================================================================= transposed convolution
#
# Written as the scatter of the definition, independently of the convolution references: every input
# element x[n, g*Cig + c, i] is spread through the kernel onto the output
#     y[n, g*Cog + o, i*s - p_before + k*d] += x[n, g*Cig + c, i] * w[g*Cig + c, o, k]   (each spatial dim)
# Positions that land before 0 or at/after the output size are dropped; output positions nothing lands
# on (output_padding past the last tap) stay zero (+ bias). Implemented with an uncropped buffer whose
# index j is output position j - p_before: one einsum per kernel tap scatters all input positions i at
# once into the strided slice starting at k*d; the buffer is then cropped to [p_before, p_before + out).


def conv_transpose_out_sizes(in_sizes, k_sizes, stride=1, pads=None, dilation=1, output_padding=0):
    """(in - 1)*s - (p_before + p_after) + d*(k - 1) + output_padding + 1 per spatial dim."""
    nd = len(in_sizes)
    stride, dilation, op = ntuple(stride, nd), ntuple(dilation, nd), ntuple(output_padding, nd)
    pads = tuple(pads) if pads is not None else (0,) * (2 * nd)
    return tuple((in_sizes[i] - 1) * stride[i] - pads[2 * i] - pads[2 * i + 1] + dilation[i] * (k_sizes[i] - 1)
                 + op[i] + 1 for i in range(nd))


def _transpose_geometry(x_shape, w_shape, stride, pads, dilation, groups, outs):
    nd = len(x_shape) - 2
    assert len(w_shape) == nd + 2 and len(pads) == 2 * nd and len(outs) == nd
    N, Ci = x_shape[:2]
    assert w_shape[0] == Ci and Ci % groups == 0
    Cig, Cog = Ci // groups, w_shape[1]
    stride, dilation = ntuple(stride, nd), ntuple(dilation, nd)
    ins, ks = tuple(x_shape[2:]), tuple(w_shape[2:])
    # uncropped buffer: long enough for every tap's scatter and for the cropped output window
    buf = tuple(max((ins[i] - 1) * stride[i] + dilation[i] * (ks[i] - 1) + 1, pads[2 * i] + outs[i])
                for i in range(nd))
    return nd, N, Ci, Cig, Cog, stride, dilation, ins, ks, buf


def _scatter_window(tap, stride, dilation, ins):
    """Buffer positions i*s + tap*d for i in range(in), one slice per spatial dim."""
    return tuple(slice(t * d, t * d + (n - 1) * s + 1, s) for t, s, d, n in zip(tap, stride, dilation, ins))


def _crop(pads, outs):
    return tuple(slice(pads[2 * i], pads[2 * i] + outs[i]) for i in range(len(outs)))


def conv_transpose_ref(x, w, b=None, stride=1, pads=None, dilation=1, groups=1, outs=None, output_padding=0):
    """Transposed convolution of x (N, C_in, *in) with w (C_in, C_out/groups, *k) -> (N, C_out, *outs).
    outs defaults to conv_transpose_out_sizes(..., output_padding)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    nd = x.ndim - 2
    pads = tuple(pads) if pads is not None else (0,) * (2 * nd)
    if outs is None:
        outs = conv_transpose_out_sizes(x.shape[2:], w.shape[2:], stride, pads, dilation, output_padding)
    outs = tuple(outs)
    nd, N, Ci, Cig, Cog, stride, dilation, ins, ks, buf = _transpose_geometry(
        x.shape, w.shape, stride, pads, dilation, groups, outs)
    G = groups
    xg = x.reshape((N, G, Cig) + ins)
    wg = w.reshape((G, Cig, Cog) + ks)
    yb = np.zeros((N, G, Cog) + buf)
    for tap in np.ndindex(*ks):
        win = _scatter_window(tap, stride, dilation, ins)
        yb[(Ellipsis,) + win] += np.einsum("ngc...,gco->ngo...", xg, wg[(Ellipsis,) + tap])
    y = yb[(Ellipsis,) + _crop(pads, outs)].reshape((N, G * Cog) + outs)
    if b is not None:
        y = y + np.asarray(b, dtype=np.float64).reshape((G * Cog,) + (1,) * nd)
    return y


def conv_transpose_backward_ref(gy, x, w, stride=1, pads=None, dilation=1, groups=1):
    """(grad_input, grad_weight, grad_bias) of conv_transpose_ref; the output size is gy's. From the
    definition: each product x[c, i] * w[c, o, k] landed on output position i*s - p + k*d, so
        grad_x[c, i] = sum_{o, k} gy[o, i*s - p + k*d] * w[c, o, k]
        grad_w[c, o, k] = sum_{n, i} gy[o, i*s - p + k*d] * x[c, i]
    with gy read as zero outside the output (gy placed into a zero buffer at offset p_before)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    gy = np.asarray(gy, dtype=np.float64)
    nd = x.ndim - 2
    pads = tuple(pads) if pads is not None else (0,) * (2 * nd)
    outs = tuple(gy.shape[2:])
    nd, N, Ci, Cig, Cog, stride, dilation, ins, ks, buf = _transpose_geometry(
        x.shape, w.shape, stride, pads, dilation, groups, outs)
    G = groups
    assert gy.shape[:2] == (N, G * Cog), gy.shape
    gb_buf = np.zeros((N, G, Cog) + buf)
    gb_buf[(Ellipsis,) + _crop(pads, outs)] = gy.reshape((N, G, Cog) + outs)
    xg = x.reshape((N, G, Cig) + ins)
    wg = w.reshape((G, Cig, Cog) + ks)
    gx = np.zeros(xg.shape)
    gw = np.zeros(wg.shape)
    sp = _SPATIAL[:nd]
    for tap in np.ndindex(*ks):
        win = gb_buf[(Ellipsis,) + _scatter_window(tap, stride, dilation, ins)]
        gx += np.einsum("ngo...,gco->ngc...", win, wg[(Ellipsis,) + tap])
        gw[(Ellipsis,) + tap] = np.einsum(f"ngo{sp},ngc{sp}->gco", win, xg)
    gbias = gy.sum(axis=(0,) + tuple(range(2, 2 + nd)))
    return gx.reshape(x.shape), gw.reshape(w.shape), gbias


def tf_transpose_pads(out_sizes, k_sizes, stride=1, dilation=1, padding="SAME"):
    """tf.nn.conv*_transpose pads: SAME is TensorFlow's SAME rule applied to the output size (the
    image the forward convolution reads); VALID is no padding."""
    nd = len(out_sizes)
    stride, dilation = ntuple(stride, nd), ntuple(dilation, nd)
    if padding.upper() == "VALID":
        return (0,) * (2 * nd)
    assert padding.upper() == "SAME"
    pads = ()
    for i in range(nd):
        pads += same_pads_1d(out_sizes[i], k_sizes[i], stride[i], dilation[i])
    return pads


# ==============================================================================================
# Non-max suppression family (tests/test_nms.py). Plain float64 loops written from each paper's
# definition; O(N^2) and slow, keep the inputs small. Boxes are (x1, y1, x2, y2).


def nms_iou_ref(a, b):
    """IoU of two boxes in float64; 0 when the union is 0."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def nms_diou_ref(a, b, beta=1.0):
    """IoU - (rho^2 / c^2)^beta (penalty 0 when c = 0)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    cw = max(a[2], b[2]) - min(a[0], b[0])
    ch = max(a[3], b[3]) - min(a[1], b[1])
    c2 = cw * cw + ch * ch
    rho2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
    return nms_iou_ref(a, b) - ((rho2 / c2) ** beta if c2 > 0 else 0.0)


def nms_order_ref(scores, score_threshold=None):
    """Candidate indices by descending score, ties by ascending index."""
    s = np.asarray(scores, np.float64)
    idx = [i for i in range(len(s)) if score_threshold is None or s[i] > score_threshold]
    return sorted(idx, key=lambda i: (-s[i], i))


def nms_ref(boxes, scores, t, score_threshold=None, max_output_size=None, idxs=None, metric=None):
    """Greedy NMS: walk by descending score; keep a box iff no kept box (of its class) has
    metric > t with it. Returns an int64 array in descending score order."""
    metric = metric or nms_iou_ref
    b = np.asarray(boxes, np.float64)
    keep = []
    for i in nms_order_ref(scores, score_threshold):
        if max_output_size is not None and len(keep) >= max_output_size:
            break
        if all((idxs is not None and idxs[k] != idxs[i]) or not metric(b[k], b[i]) > t for k in keep):
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def soft_nms_ref(boxes, scores, t, sigma, score_threshold, method, max_output_size=None):
    """Soft-NMS as in Bodla et al.: select the best remaining box, decay the others
    (linear: s *= 1 - iou when iou > t; gaussian: s *= exp(-iou^2 / sigma)), drop s <= threshold."""
    b = np.asarray(boxes, np.float64)
    s = {i: float(v) for i, v in enumerate(np.asarray(scores, np.float64)) if v > score_threshold}
    keep, kept = [], []
    while s and (max_output_size is None or len(keep) < max_output_size):
        m = min(s, key=lambda i: (-s[i], i))
        keep.append(m)
        kept.append(s.pop(m))
        for j in list(s):
            iou = nms_iou_ref(b[m], b[j])
            if method == "linear":
                if iou > t:
                    s[j] *= 1 - iou
            else:
                s[j] *= np.exp(-iou * iou / sigma)
            if not s[j] > score_threshold:
                del s[j]
    return np.array(keep, dtype=np.int64), np.array(kept)


def nms_iou_matrix_ref(boxes, order, idxs=None):
    """Upper-triangular IoU matrix X[i][j] (i < j) of the boxes in `order`, 0 across classes."""
    b = np.asarray(boxes, np.float64)
    k = len(order)
    x = np.zeros((k, k))
    for j in range(k):
        for i in range(j):
            if idxs is None or idxs[order[i]] == idxs[order[j]]:
                x[i, j] = nms_iou_ref(b[order[i]], b[order[j]])
    return x


def matrix_nms_ref(boxes, scores, idxs=None, method="gaussian", sigma=0.5, score_threshold=None, top_k=None):
    """SOLOv2's Matrix NMS with the full matrix, as the paper's code computes it: column-wise
    min over all rows of f(X[i][j]) / f(compensate_i). Returns (indices, decayed scores) sorted by
    decayed score (stable)."""
    order = nms_order_ref(scores)[:top_k]
    s = np.asarray(scores, np.float64)
    x = nms_iou_matrix_ref(boxes, order, idxs)
    comp = x.max(axis=0) if len(order) else np.zeros(0)
    dec = []
    for j in range(len(order)):
        vals = []
        for i in range(len(order)):
            if method == "gaussian":
                vals.append(np.exp(-(x[i, j] ** 2 - comp[i] ** 2) / sigma))
            elif 1 - comp[i] > 0:
                vals.append((1 - x[i, j]) / (1 - comp[i]))
        dec.append(min(vals + [1.0]))
    d = [s[order[j]] * dec[j] for j in range(len(order))]
    sel = [j for j in range(len(order)) if score_threshold is None or d[j] > score_threshold]
    sel.sort(key=lambda j: (-d[j], j))
    return np.array([order[j] for j in sel], dtype=np.int64), np.array([d[j] for j in sel])


def fast_nms_ref(boxes, scores, t, idxs=None, top_k=None, cluster=False):
    """YOLACT's Fast NMS (keep j iff the column max of X is <= t) and, with cluster=True,
    Cluster-NMS (repeat with the rows of suppressed boxes zeroed until keep stops changing)."""
    order = nms_order_ref(scores)[:top_k]
    x = nms_iou_matrix_ref(boxes, order, idxs)
    keep = np.ones(len(order), dtype=bool)
    for _ in range(len(order) + 1):
        new = np.array([not any(keep[i] and x[i, j] > t for i in range(j)) for j in range(len(order))], dtype=bool)
        if not cluster or np.array_equal(new, keep):
            keep = new
            break
        keep = new
    return np.array([order[j] for j in range(len(order)) if keep[j]], dtype=np.int64)


def nms_ref_vec(boxes, scores, t, score_threshold=None, max_output_size=None):
    """nms_ref with the test of one candidate against all kept boxes vectorised (same definition,
    float64), for inputs of a few thousand boxes."""
    b = np.asarray(boxes, np.float64)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    kept = []
    for i in nms_order_ref(scores, score_threshold):
        if max_output_size is not None and len(kept) >= max_output_size:
            break
        if kept:
            k = np.array(kept)
            w = np.clip(np.minimum(b[k, 2], b[i, 2]) - np.maximum(b[k, 0], b[i, 0]), 0, None)
            h = np.clip(np.minimum(b[k, 3], b[i, 3]) - np.maximum(b[k, 1], b[i, 1]), 0, None)
            inter = w * h
            union = area[k] + area[i] - inter
            iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
            if (iou > t).any():
                continue
        kept.append(i)
    return np.array(kept, dtype=np.int64)

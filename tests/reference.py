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


# ================================================================================================
# Pooling references (tests/test_pool.py). Channels-first (N, C, *spatial), any 1-3 spatial
# dimensions, float64. Windows are enumerated explicitly: output position o along a dimension
# starts at o*stride - pad_before, its taps are start + j*dilation (j < k), and taps outside the
# input are skipped (max) or count as zeros (sum). Loops over outputs and taps; vectorised over
# (N, C) only. Keep shapes small.
# ================================================================================================
import itertools as _it  # noqa: E402
import math as _math  # noqa: E402


def pool_out_size(size, k, stride, pad_before, pad_after, dilation=1, ceil_mode=False):
    """PyTorch's output length, written out: floor (or ceil) of the padded span over the stride,
    plus one; with ceil_mode a window that would start past the input and leading pad is dropped."""
    span = size + pad_before + pad_after - dilation * (k - 1) - 1
    out = (_math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_before:
        out -= 1
    return out


def _windows(in_sizes, k, s, pads, d, ceil_mode):
    """For every output position: (position, list of valid taps as index tuples, list of window
    extents per dimension clipped to the padded input (for count_include_pad))."""
    nd = len(in_sizes)
    outs = [pool_out_size(in_sizes[i], k[i], s[i], pads[2 * i], pads[2 * i + 1], d[i], ceil_mode) for i in range(nd)]
    for o in _it.product(*[range(n) for n in outs]):
        starts = [o[i] * s[i] - pads[2 * i] for i in range(nd)]
        per_dim, extents = [], []
        for i in range(nd):
            per_dim.append([starts[i] + j * d[i] for j in range(k[i]) if 0 <= starts[i] + j * d[i] < in_sizes[i]])
            end = min(starts[i] + k[i], in_sizes[i] + pads[2 * i + 1])
            extents.append(end - starts[i])
        yield o, list(_it.product(*per_dim)), extents, outs


def _flat(idx, in_sizes):
    f = 0
    for i, n in zip(idx, in_sizes):
        f = f * n + i
    return f


def max_pool_ref(x, k, s, pads, d, ceil_mode=False):
    """(values, PyTorch-format indices). Scan order over taps; a tap replaces the best so far
    when it is larger or NaN (so NaN propagates, the last NaN's index is kept). A window with no
    tap inside the input gives -inf and index -1 (any index inside the plane is then acceptable)."""
    x = np.asarray(x, np.float64)
    sp = x.shape[2:]
    y = idx = None
    for o, taps, _, outs in _windows(sp, k, s, pads, d, ceil_mode):
        if y is None:
            y = np.full(x.shape[:2] + tuple(outs), np.nan)
            idx = np.full(x.shape[:2] + tuple(outs), -1, np.int64)
        best = np.full(x.shape[:2], -np.inf)
        # a window whose taps all fall in the padding (possible with dilation) is -inf, index -1
        bi = np.full(x.shape[:2], _flat(taps[0], sp) if taps else -1, np.int64)
        for t in taps:
            v = x[(slice(None), slice(None)) + t]
            take = (v > best) | np.isnan(v)
            best = np.where(take, v, best)
            bi = np.where(take, _flat(t, sp), bi)
        y[(slice(None), slice(None)) + o] = best
        idx[(slice(None), slice(None)) + o] = bi
    return y, idx


def max_pool_backward_ref(grad_out, idx, in_shape):
    """Scatter-add each output's gradient to its argmax (flat position in the (n, c) plane)."""
    n, c = in_shape[:2]
    g = np.zeros((n, c, int(np.prod(in_shape[2:]))))
    go = np.asarray(grad_out, np.float64).reshape(n, c, int(np.prod(np.shape(idx)[2:])))  # explicit: N may be 0
    ix = np.asarray(idx).reshape(go.shape)
    for a in range(n):
        for b in range(c):
            np.add.at(g[a, b], ix[a, b], go[a, b])
    return g.reshape(in_shape)


def avg_pool_ref(x, k, s, pads, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Window sum over the valid taps divided by divisor_override, else the window clipped to the
    padded input (count_include_pad) or the number of valid taps."""
    x = np.asarray(x, np.float64)
    y = None
    for o, taps, ext, outs in _windows(x.shape[2:], k, s, pads, [1] * len(k), ceil_mode):
        if y is None:
            y = np.full(x.shape[:2] + tuple(outs), np.nan)
        tot = sum(x[(slice(None), slice(None)) + t] for t in taps)
        div = divisor_override or (int(np.prod(ext)) if count_include_pad else len(taps))
        y[(slice(None), slice(None)) + o] = tot / div
    return y


def avg_pool_backward_ref(grad_out, in_shape, k, s, pads, ceil_mode=False, count_include_pad=True,
                          divisor_override=None):
    g = np.zeros(in_shape)
    go = np.asarray(grad_out, np.float64)
    for o, taps, ext, _ in _windows(in_shape[2:], k, s, pads, [1] * len(k), ceil_mode):
        div = divisor_override or (int(np.prod(ext)) if count_include_pad else len(taps))
        for t in taps:
            g[(slice(None), slice(None)) + t] += go[(slice(None), slice(None)) + o] / div
    return g


def lp_pool_ref(x, p, k, s, ceil_mode=False):
    """PyTorch's LP pooling: (mean over the valid taps of x^p, times prod(k)) ** (1/p)."""
    x = np.asarray(x, np.float64)
    y = None
    for o, taps, _, outs in _windows(x.shape[2:], k, s, [0] * (2 * len(k)), [1] * len(k), ceil_mode):
        if y is None:
            y = np.full(x.shape[:2] + tuple(outs), np.nan)
        tot = sum(x[(slice(None), slice(None)) + t] ** p for t in taps)
        y[(slice(None), slice(None)) + o] = (tot / len(taps) * int(np.prod(k))) ** (1.0 / p)
    return y


def lp_pool_backward_ref(grad_out, x, p, k, s, ceil_mode=False):
    """d/dx_t of (c * sum x^p)^(1/p) = c * x_t^(p-1) * (c * sum x^p)^(1/p - 1), c = prod(k)/taps."""
    x = np.asarray(x, np.float64)
    g = np.zeros(x.shape)
    go = np.asarray(grad_out, np.float64)
    for o, taps, _, _ in _windows(x.shape[2:], k, s, [0] * (2 * len(k)), [1] * len(k), ceil_mode):
        c = int(np.prod(k)) / len(taps)
        a = c * sum(x[(slice(None), slice(None)) + t] ** p for t in taps)
        for t in taps:
            g[(slice(None), slice(None)) + t] += (go[(slice(None), slice(None)) + o] * c *
                                                  x[(slice(None), slice(None)) + t] ** (p - 1) * a ** (1.0 / p - 1))
    return g


def adaptive_windows(in_sizes, out_sizes):
    """PyTorch's adaptive rule: output i pools [floor(i*In/Out), ceil((i+1)*In/Out))."""
    per = [[range((i * n) // m, -((-(i + 1) * n) // m)) for i in range(m)] for n, m in zip(in_sizes, out_sizes)]
    for o in _it.product(*[range(m) for m in out_sizes]):
        yield o, list(_it.product(*[per[d][o[d]] for d in range(len(o))]))


def adaptive_pool_ref(x, out_sizes, kind):
    """kind 'avg' -> mean over the window; 'max' -> (values, indices) with the max_pool_ref rule."""
    x = np.asarray(x, np.float64)
    sp = x.shape[2:]
    y = np.full(x.shape[:2] + tuple(out_sizes), np.nan)
    idx = np.full(x.shape[:2] + tuple(out_sizes), -1, np.int64)
    for o, taps in adaptive_windows(sp, out_sizes):
        at = (slice(None), slice(None)) + o
        if kind == "avg":
            y[at] = sum(x[(slice(None), slice(None)) + t] for t in taps) / len(taps)
            continue
        best = np.full(x.shape[:2], -np.inf)
        bi = np.full(x.shape[:2], _flat(taps[0], sp), np.int64)
        for t in taps:
            v = x[(slice(None), slice(None)) + t]
            take = (v > best) | np.isnan(v)
            best, bi = np.where(take, v, best), np.where(take, _flat(t, sp), bi)
        y[at], idx[at] = best, bi
    return y if kind == "avg" else (y, idx)


def adaptive_avg_pool_backward_ref(grad_out, in_shape):
    g = np.zeros(in_shape)
    go = np.asarray(grad_out, np.float64)
    for o, taps in adaptive_windows(in_shape[2:], go.shape[2:]):
        for t in taps:
            g[(slice(None), slice(None)) + t] += go[(slice(None), slice(None)) + o] / len(taps)
    return g
# ============================================================================= boxes
#
# Box utilities and the IoU family, one pair at a time in plain Python floats (float64), written
# from the definitions in the contract of python/cnnops/boxes.py: sort corners when asked, widths
# carry the +offset, a ratio whose denominator is 0 counts as 0, CIoU's angle is atan2(w, h).

import math  # noqa: E402


def box_to_xyxy_ref(b, fmt):
    """One box (4 floats) in format fmt -> (x1, y1, x2, y2) as given (not sorted)."""
    p, q, r, s = (float(v) for v in b)
    if fmt == "xyxy":
        return p, q, r, s
    if fmt == "xywh":
        return p, q, p + r, q + s
    return p - r / 2, q - s / 2, p + r / 2, q + s / 2


def sort_corners_ref(b):
    x1, y1, x2, y2 = (float(v) for v in b)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def box_convert_ref(boxes, in_fmt, out_fmt):
    out = np.zeros((len(boxes), 4))
    for i, b in enumerate(boxes):
        x1, y1, x2, y2 = sort_corners_ref(box_to_xyxy_ref(b, in_fmt))
        if out_fmt == "xyxy":
            out[i] = (x1, y1, x2, y2)
        elif out_fmt == "xywh":
            out[i] = (x1, y1, x2 - x1, y2 - y1)
        else:
            out[i] = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    return out


def box_area_ref(boxes, offset=0):
    out = np.zeros(len(boxes))
    for i, b in enumerate(boxes):
        x1, y1, x2, y2 = sort_corners_ref(b)
        out[i] = (x2 - x1 + offset) * (y2 - y1 + offset)
    return out


def _ratio(num, den):
    return num / den if den > 0 else 0.0


def box_metric_ref(a, b, kind, offset=0, eps_iou=0.0, eps_pen=0.0, alpha=None, eps_alpha=None):
    """IoU / GIoU / DIoU / CIoU of two boxes (sorted first). eps_iou is added to the union, eps_pen
    to the GIoU enclosing area and the DIoU/CIoU squared diagonal, eps_alpha (eps_pen when None) to
    CIoU's 1 - IoU + v. alpha: CIoU's weight, computed from the boxes when None (pass a number to
    hold it fixed, as the losses' gradient does)."""
    ax1, ay1, ax2, ay2 = sort_corners_ref(a)
    bx1, by1, bx2, by2 = sort_corners_ref(b)
    wa, ha = ax2 - ax1 + offset, ay2 - ay1 + offset
    wb, hb = bx2 - bx1 + offset, by2 - by1 + offset
    iw = min(ax2, bx2) - max(ax1, bx1) + offset
    ih = min(ay2, by2) - max(ay1, by1) + offset
    inter = iw * ih if (iw > 0 and ih > 0) else 0.0
    union = wa * ha + wb * hb - inter
    iou = _ratio(inter, union + eps_iou)
    if kind == "iou":
        return iou
    cw = max(ax2, bx2) - min(ax1, bx1) + offset
    ch = max(ay2, by2) - min(ay1, by1) + offset
    if kind == "giou":
        return iou - _ratio(cw * ch - union, cw * ch + eps_pen)
    rho2 = ((ax1 + ax2) / 2 - (bx1 + bx2) / 2) ** 2 + ((ay1 + ay2) / 2 - (by1 + by2) / 2) ** 2
    diou = iou - _ratio(rho2, cw * cw + ch * ch + eps_pen)
    if kind == "diou":
        return diou
    v = 4 / math.pi ** 2 * (math.atan2(wb, hb) - math.atan2(wa, ha)) ** 2
    if alpha is None:
        alpha = _ratio(v, 1 - iou + v + (eps_pen if eps_alpha is None else eps_alpha))
    return diou - alpha * v


def loss_eps_ref(kind, eps):
    """(eps_iou, eps_pen, eps_alpha) of the losses, as torchvision places them: eps everywhere,
    except CIoU, whose union and squared diagonal always carry 1e-7 (complete_box_iou_loss takes
    them from its DIoU helper called without eps) and whose alpha carries eps."""
    return (1e-7, 1e-7, eps) if kind == "ciou" else (eps, eps, eps)


def ciou_alpha_ref(a, b, offset=0, eps=1e-7):
    """CIoU's alpha = v / (1 - IoU + v + eps) of one pair, with the CIoU loss's IoU (1e-7 in the
    union)."""
    ax1, ay1, ax2, ay2 = sort_corners_ref(a)
    bx1, by1, bx2, by2 = sort_corners_ref(b)
    iou = box_metric_ref(a, b, "iou", offset, 1e-7, 1e-7)
    v = 4 / math.pi ** 2 * (math.atan2(bx2 - bx1 + offset, by2 - by1 + offset)
                            - math.atan2(ax2 - ax1 + offset, ay2 - ay1 + offset)) ** 2
    return _ratio(v, 1 - iou + v + eps)


def box_pairwise_ref(boxes1, boxes2, kind, offset=0, eps=1e-7):
    """(N, M) matrix; eps only in the DIoU/CIoU penalties (as torchvision's pairwise functions)."""
    eps_pen = 0.0 if kind in ("iou", "giou") else eps
    out = np.zeros((len(boxes1), len(boxes2)))
    for i, a in enumerate(boxes1):
        for j, b in enumerate(boxes2):
            out[i, j] = box_metric_ref(a, b, kind, offset, 0.0, eps_pen)
    return out


def box_loss_ref(boxes1, boxes2, kind, reduction="none", eps=1e-7, offset=0, alphas=None):
    """1 - metric per pair with eps placed as loss_eps_ref says; alphas: fixed CIoU weights."""
    e_iou, e_pen, e_alpha = loss_eps_ref(kind, eps)
    per = np.array([1.0 - box_metric_ref(a, b, kind, offset, e_iou, e_pen, None if alphas is None else alphas[i],
                                         e_alpha)
                    for i, (a, b) in enumerate(zip(boxes1, boxes2))])
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    return per.mean() if len(per) else 0.0


def box_loss_grad_ref(boxes1, boxes2, kind, reduction="none", eps=1e-7, offset=0, grad_output=None, h=1e-6):
    """(grad_boxes1, grad_boxes2) of box_loss_ref by central differences in float64, with CIoU's
    alpha held at its unperturbed value (the gradient convention of torchvision and cnnops)."""
    b1 = np.array(boxes1, dtype=np.float64)
    b2 = np.array(boxes2, dtype=np.float64)
    alphas = [ciou_alpha_ref(a, b, offset, eps) for a, b in zip(b1, b2)] if kind == "ciou" else None
    go = np.ones(len(b1)) if grad_output is None else np.asarray(grad_output, dtype=np.float64)

    def f():
        return float(np.sum(go * box_loss_ref(b1, b2, kind, reduction, eps, offset, alphas)))

    return numerical_grad(f, b1, h), numerical_grad(f, b2, h)
# ---- torchvision's formulas, transcribed term by term ----
#
# Vectorised NumPy in the boxes' dtype (float32 stays float32, as torch computes it; Python
# numbers such as eps are weak scalars and take the array's dtype, as in torch), so they pin down
# where eps enters each term. xyxy boxes with x1 < x2 and y1 < y2 (torchvision's domain).


def _tv_cols(boxes):
    b = np.asarray(boxes)
    return b[..., 0], b[..., 1], b[..., 2], b[..., 3]


def _tv_loss_inter_union(b1, b2):
    x1, y1, x2, y2 = _tv_cols(b1)
    x1g, y1g, x2g, y2g = _tv_cols(b2)
    xk1, yk1, xk2, yk2 = np.maximum(x1, x1g), np.maximum(y1, y1g), np.minimum(x2, x2g), np.minimum(y2, y2g)
    mask = (yk2 > yk1) & (xk2 > xk1)
    inter = np.where(mask, (xk2 - xk1) * (yk2 - yk1), np.zeros_like(x1))
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    return inter, union


def _tv_diou_iou_loss(b1, b2, eps):
    inter, union = _tv_loss_inter_union(b1, b2)
    iou = inter / (union + eps)
    x1, y1, x2, y2 = _tv_cols(b1)
    x1g, y1g, x2g, y2g = _tv_cols(b2)
    diag = (np.maximum(x2, x2g) - np.minimum(x1, x1g)) ** 2 + (np.maximum(y2, y2g) - np.minimum(y1, y1g)) ** 2 + eps
    dist = ((x2 + x1) / 2 - (x1g + x2g) / 2) ** 2 + ((y2 + y1) / 2 - (y1g + y2g) / 2) ** 2
    return 1 - iou + dist / diag, iou


def tv_box_loss_ref(boxes1, boxes2, kind, eps=1e-7):
    """Per-pair loss of torchvision's generalized_box_iou_loss ("giou"), distance_box_iou_loss
    ("diou") and complete_box_iou_loss ("ciou"), reduction none; "iou" is 1 - inter / (union + eps)."""
    b1, b2 = np.asarray(boxes1), np.asarray(boxes2)
    if kind in ("iou", "giou"):
        inter, union = _tv_loss_inter_union(b1, b2)
        iou = inter / (union + eps)
        if kind == "iou":
            return 1 - iou
        x1, y1, x2, y2 = _tv_cols(b1)
        x1g, y1g, x2g, y2g = _tv_cols(b2)
        area_c = (np.maximum(x2, x2g) - np.minimum(x1, x1g)) * (np.maximum(y2, y2g) - np.minimum(y1, y1g))
        return 1 - (iou - (area_c - union) / (area_c + eps))
    if kind == "diou":
        return _tv_diou_iou_loss(b1, b2, eps)[0]
    diou_loss, iou = _tv_diou_iou_loss(b1, b2, 1e-7)  # the helper's default eps, not the caller's
    x1, y1, x2, y2 = _tv_cols(b1)
    x1g, y1g, x2g, y2g = _tv_cols(b2)
    v = (4 / math.pi ** 2) * (np.arctan((x2g - x1g) / (y2g - y1g)) - np.arctan((x2 - x1) / (y2 - y1))) ** 2
    alpha = v / (1 - iou + v + eps)
    return diou_loss + alpha * v


def tv_box_pairwise_ref(boxes1, boxes2, kind, eps=1e-7):
    """(N, M) matrix of torchvision's box_iou, generalized_box_iou, distance_box_iou(eps) and
    complete_box_iou(eps)."""
    b1, b2 = np.asarray(boxes1)[:, None, :], np.asarray(boxes2)[None, :, :]
    x1, y1, x2, y2 = _tv_cols(b1)
    x1g, y1g, x2g, y2g = _tv_cols(b2)
    w = np.clip(np.minimum(x2, x2g) - np.maximum(x1, x1g), 0, None)
    h = np.clip(np.minimum(y2, y2g) - np.maximum(y1, y1g), 0, None)
    inter = w * h
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    iou = inter / union
    cw = np.clip(np.maximum(x2, x2g) - np.minimum(x1, x1g), 0, None)
    ch = np.clip(np.maximum(y2, y2g) - np.minimum(y1, y1g), 0, None)
    if kind == "iou":
        return iou
    if kind == "giou":
        return iou - (cw * ch - union) / (cw * ch)
    diou = iou - (((x1 + x2) / 2 - (x1g + x2g) / 2) ** 2 + ((y1 + y2) / 2 - (y1g + y2g) / 2) ** 2) / (
        cw ** 2 + ch ** 2 + eps)
    if kind == "diou":
        return diou
    v = (4 / math.pi ** 2) * (np.arctan((x2 - x1) / (y2 - y1)) - np.arctan((x2g - x1g) / (y2g - y1g))) ** 2
    return diou - v / (1 - iou + v + eps) * v


# ============================================================================= unpooling, upsampling,
# fractional max pooling
#
# Written from the definitions, one output element at a time (plain loops or np.take/np.add.at over
# explicit index maps). Arrays are channels first (N, C, *spatial); tests transpose for channels last.

import itertools  # noqa: E402  (kept with the section that uses it)


def nearest_source(o, n_in, n_out, scale, exact, shortcuts=False):
    """PyTorch's nearest source index of output o (UpSample.h): the scale s is a float32,
    1/scale_factor when given (scale > 0) else n_in/n_out; "nearest" is floor(o * s),
    "nearest-exact" floor((o + 0.5) * s), both clamped to n_in - 1. With `shortcuts` (torch's
    2-D "nearest" forward) out == in maps o -> o and out == 2*in maps o -> o // 2."""
    if shortcuts and n_out == n_in:
        return o
    if shortcuts and n_out == 2 * n_in:
        return o // 2
    s = np.float32(1.0 / scale) if scale and scale > 0 else np.float32(n_in) / np.float32(n_out)
    if exact:
        v = np.float32((o + 0.5) * np.float64(s))
    else:
        v = np.float32(o) * s
    return min(int(np.floor(v)), n_in - 1)


def nearest_maps(in_sizes, out_sizes, scales, exact):
    if scales is None:
        scales = [None] * len(in_sizes)
    short = not exact and len(in_sizes) == 2
    return [np.array([nearest_source(o, i, n, s, exact, short) for o in range(n)], dtype=np.int64)
            for i, n, s in zip(in_sizes, out_sizes, scales)]


def upsample_nearest_ref(x, out_sizes, scales=None, exact=False):
    """y[n, c, o...] = x[n, c, src(o)...] for (N, C, *spatial) x."""
    y = np.asarray(x, dtype=np.float64)
    for d, m in enumerate(nearest_maps(x.shape[2:], out_sizes, scales, exact)):
        y = np.take(y, m, axis=2 + d)
    return y


def upsample_nearest_backward_ref(gy, in_sizes, scales=None, exact=False):
    """The adjoint: every output gradient added to its source element."""
    gy = np.asarray(gy, dtype=np.float64)
    maps = nearest_maps(in_sizes, gy.shape[2:], scales, exact)
    gx = np.zeros(gy.shape[:2] + tuple(in_sizes))
    for pos in np.ndindex(*gy.shape[2:]):
        src = tuple(int(m[p]) for m, p in zip(maps, pos))
        gx[(slice(None), slice(None)) + src] += gy[(slice(None), slice(None)) + pos]
    return gx


def max_unpool_ref(x, idx, out_sizes):
    """Zeros, then x[n, c, i] written at flat position idx[n, c, i] of plane (n, c), in memory order."""
    N, C = x.shape[:2]
    y = np.zeros((N, C, int(np.prod(out_sizes))))
    xf, jf = x.reshape(N, C, int(np.prod(x.shape[2:]))), idx.reshape(N, C, int(np.prod(x.shape[2:])))
    for n in range(N):
        for c in range(C):
            for i in range(xf.shape[2]):
                y[n, c, jf[n, c, i]] = xf[n, c, i]
    return y.reshape((N, C) + tuple(out_sizes))


def max_unpool_backward_ref(gy, idx):
    N, C = gy.shape[:2]
    g = gy.reshape(N, C, int(np.prod(gy.shape[2:])))
    j = idx.reshape(N, C, int(np.prod(idx.shape[2:])))
    return np.take_along_axis(g, j, axis=2).reshape(idx.shape).astype(np.float64)


def bed_of_nails_ref(x, scale):
    sh, sw = scale
    N, C, H, W = x.shape
    y = np.zeros((N, C, H * sh, W * sw))
    for h in range(H):
        for w in range(W):
            y[:, :, h * sh, w * sw] = x[:, :, h, w]
    return y


def fractional_windows_torch(u, n_in, n_out, k, dtype):
    """Window starts of PyTorch's fractional max pooling for sample u, computed in `dtype`."""
    t = np.dtype(dtype).type
    starts = []
    if n_out > 1:
        alpha = t(n_in - k) / t(n_out - 1)
        for i in range(n_out - 1):
            starts.append(int(t(t(i) + t(u)) * alpha) - int(t(u) * alpha))
    starts.append(n_in - k)
    return [(s, s + k) for s in starts]


def fractional_windows_tf(seq, n_in, overlapping):
    return [(int(seq[i]), min(int(seq[i + 1]) + (1 if overlapping else 0), n_in)) for i in range(len(seq) - 1)]


def window_max_ref(x, windows):
    """Max over explicit windows. windows[n][c] is a list (one per spatial dim) of [(start, end)];
    returns (values, flat indices) with the first maximum in window order and NaN winning."""
    N, C = x.shape[:2]
    sp = x.shape[2:]
    outs = tuple(len(w) for w in windows[0][0])
    y = np.zeros((N, C) + outs)
    idx = np.zeros((N, C) + outs, dtype=np.int64)
    for n in range(N):
        for c in range(C):
            win = windows[n][c]
            for o in np.ndindex(*outs):
                ranges = [range(*win[d][o[d]]) for d in range(len(sp))]
                best, bi = -np.inf, None
                for p in itertools.product(*ranges):
                    v = x[(n, c) + p]
                    if bi is None:
                        bi = p
                    if v > best or np.isnan(v):
                        best, bi = v, p
                y[(n, c) + o] = best
                idx[(n, c) + o] = np.ravel_multi_index(bi, sp)
    return y, idx


def fractional_max_pool_torch_ref(x, kernel, out_sizes, samples):
    """torch's rule: samples (N, C, nd), ordered (w, h) in 2-D and (d, h, w) in 3-D."""
    N, C = x.shape[:2]
    nd = x.ndim - 2
    order = [1, 0] if nd == 2 else [0, 1, 2]
    wins = [[[fractional_windows_torch(samples[n, c, order[d]], x.shape[2 + d], out_sizes[d], kernel[d], x.dtype)
              for d in range(nd)] for c in range(C)] for n in range(N)]
    return window_max_ref(x, wins)


def fractional_max_pool_tf_ref(x, seqs, overlapping):
    N, C = x.shape[:2]
    w = [fractional_windows_tf(s, x.shape[2 + d], overlapping) for d, s in enumerate(seqs)]
    return window_max_ref(x, [[w] * C] * N)


def index_scatter_add_ref(gy, idx, in_sizes):
    """Gradient of a max pooling with indices: grad_output added at the remembered positions."""
    N, C = gy.shape[:2]
    gx = np.zeros((N, C, int(np.prod(in_sizes))))
    g, j = gy.reshape(N, C, int(np.prod(gy.shape[2:]))), idx.reshape(N, C, int(np.prod(gy.shape[2:])))
    for n in range(N):
        for c in range(C):
            np.add.at(gx[n, c], j[n, c], g[n, c])
    return gx.reshape((N, C) + tuple(in_sizes))
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


def tv_iou_ref(kept, box, dtype):
    """IoU of each row of kept (K, 4) with box (4,) in torchvision's nms arithmetic: w, h,
    intersection, areas, union and intersection / union each rounded to `dtype` (float32 or
    float64), returned as float64 (what torchvision compares with the double threshold). A union
    of 0 gives NaN (torchvision's 0 / 0), which no comparison passes."""
    k = np.asarray(kept, dtype).reshape(-1, 4)
    b = np.asarray(box, dtype)
    zero = dtype(0)
    w = np.maximum(zero, np.minimum(k[:, 2], b[2]) - np.maximum(k[:, 0], b[0]))
    h = np.maximum(zero, np.minimum(k[:, 3], b[3]) - np.maximum(k[:, 1], b[1]))
    inter = w * h
    union = (k[:, 2] - k[:, 0]) * (k[:, 3] - k[:, 1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return (inter / union).astype(np.float64)


def tv_diou_ref(kept, box, dtype, beta=1.0):
    """DIoU-NMS criterion IoU - (rho^2 / c^2)^beta of each row of kept with box, in `dtype` the way
    torchvision's distance_box_iou (eps 0) computes IoU - rho^2 / c^2 (penalty 0 when c^2 is 0;
    beta != 1: the power taken in float64 and rounded to dtype), returned as float64."""
    k = np.asarray(kept, dtype).reshape(-1, 4)
    b = np.asarray(box, dtype)
    iou = tv_iou_ref(k, b, dtype).astype(dtype)
    cw = np.maximum(k[:, 2], b[2]) - np.minimum(k[:, 0], b[0])
    ch = np.maximum(k[:, 3], b[3]) - np.minimum(k[:, 1], b[1])
    c2 = cw * cw + ch * ch
    two = dtype(2)
    dx = (k[:, 0] + k[:, 2]) / two - (b[0] + b[2]) / two
    dy = (k[:, 1] + k[:, 3]) / two - (b[1] + b[3]) / two
    rho2 = dx * dx + dy * dy
    with np.errstate(divide="ignore", invalid="ignore"):
        pen = np.where(c2 > 0, rho2 / c2, np.zeros_like(c2))
    if beta != 1.0:
        pen = (pen.astype(np.float64) ** beta).astype(dtype)
    return (iou - pen).astype(np.float64)


def nms_tv_ref(boxes, scores, t, score_threshold=None, max_output_size=None, idxs=None, criterion="iou", beta=1.0):
    """Greedy NMS with torchvision's arithmetic in the boxes' dtype: walk by descending score
    (ties: lower index), keep a box iff no kept box of its class has criterion > t, the criterion
    rounded to the dtype and compared as float64. Vectorised over the kept boxes."""
    b = np.asarray(boxes)
    dtype = b.dtype.type
    kept = []
    for i in nms_order_ref(scores, score_threshold):
        if max_output_size is not None and len(kept) >= max_output_size:
            break
        k = [j for j in kept if idxs is None or idxs[j] == idxs[i]]
        if k:
            m = tv_iou_ref(b[k], b[i], dtype) if criterion == "iou" else tv_diou_ref(b[k], b[i], dtype, beta)
            if (m > t).any():
                continue
        kept.append(i)
    return np.array(kept, dtype=np.int64)


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


def soft_nms_ref(boxes, scores, t, sigma, score_threshold, method, max_output_size=None, tv=False):
    """Soft-NMS as in Bodla et al.: select the best remaining box, decay the others
    (linear: s *= 1 - iou when iou > t; gaussian: s *= exp(-iou^2 / sigma)), drop s <= threshold.
    tv=True: each IoU in torchvision's arithmetic in the boxes' dtype (tv_iou_ref)."""
    b = np.asarray(boxes) if tv else np.asarray(boxes, np.float64)
    s = {i: float(v) for i, v in enumerate(np.asarray(scores, np.float64)) if v > score_threshold}
    keep, kept = [], []
    while s and (max_output_size is None or len(keep) < max_output_size):
        m = min(s, key=lambda i: (-s[i], i))
        keep.append(m)
        kept.append(s.pop(m))
        for j in list(s):
            iou = tv_iou_ref(b[m], b[j], b.dtype.type)[0] if tv else nms_iou_ref(b[m], b[j])
            iou = 0.0 if np.isnan(iou) else iou  # a 0 / 0 union (two zero-area boxes) counts as IoU 0
            if method == "linear":
                if iou > t:
                    s[j] *= 1 - iou
            else:
                s[j] *= np.exp(-iou * iou / sigma)
            if not s[j] > score_threshold:
                del s[j]
    return np.array(keep, dtype=np.int64), np.array(kept)


def nms_iou_matrix_ref(boxes, order, idxs=None, tv=False):
    """Upper-triangular IoU matrix X[i][j] (i < j) of the boxes in `order`, 0 across classes.
    tv=True: each IoU in torchvision's arithmetic in the boxes' dtype (tv_iou_ref)."""
    b = np.asarray(boxes) if tv else np.asarray(boxes, np.float64)
    k = len(order)
    x = np.zeros((k, k))
    for j in range(k):
        if tv and j:
            x[:j, j] = np.nan_to_num(tv_iou_ref(b[order[:j]], b[order[j]], b.dtype.type), nan=0.0)
        for i in range(j):
            if idxs is not None and idxs[order[i]] != idxs[order[j]]:
                x[i, j] = 0.0
            elif not tv:
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


def fast_nms_ref(boxes, scores, t, idxs=None, top_k=None, cluster=False, tv=False):
    """YOLACT's Fast NMS (keep j iff the column max of X is <= t) and, with cluster=True,
    Cluster-NMS (repeat with the rows of suppressed boxes zeroed until keep stops changing).
    tv=True: X in torchvision's arithmetic (nms_iou_matrix_ref)."""
    order = nms_order_ref(scores)[:top_k]
    x = nms_iou_matrix_ref(boxes, order, idxs, tv)
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


# ============================================================================= layer API (nn) extras
def locally_connected2d_ref(x, w, b, stride, padding):
    """Unshared convolution by plain loops: x (N, C, H, W), w (OH, OW, O, C, kH, kW), b (O, OH, OW)
    or None; y[n, o, i, j] = b[o, i, j] + sum_{c,u,v} w[i, j, o, c, u, v] x_pad[n, c, i*sh+u, j*sw+v]."""
    x = np.asarray(x, np.float64)
    (sh, sw), (ph, pw) = stride, padding
    oh, ow, o_ch, c_in, kh, kw = w.shape
    xp = np.zeros((x.shape[0], c_in, x.shape[2] + 2 * ph, x.shape[3] + 2 * pw))
    xp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x
    y = np.zeros((x.shape[0], o_ch, oh, ow))
    for n in range(x.shape[0]):
        for o in range(o_ch):
            for i in range(oh):
                for j in range(ow):
                    patch = xp[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    y[n, o, i, j] = np.sum(patch * w[i, j, o]) + (0.0 if b is None else b[o, i, j])
    return y


# ============================================================================= region ops (roi)
#
# torchvision's region ops written from their definition, one bin at a time. The geometry (box
# times scale, bins, sample positions, rounding) is computed with NumPy scalars of `geom` (the
# features' dtype, as the kernels do: the discrete choices -- adaptive grid, rounded corners,
# floor/ceil windows -- then agree), the sums in float64.

def roi_rows(boxes):
    """(batch, x1, y1, x2, y2) rows from a (K, 5) array or a list of per-image (Ki, 4) arrays."""
    if isinstance(boxes, (list, tuple)):
        return [(i, *map(float, r)) for i, b in enumerate(boxes) for r in np.asarray(b)]
    return [(int(r[0]), *map(float, r[1:])) for r in np.asarray(boxes)]


def _align_axis(start, p, bin_, grid, size, geom):
    """Sample coordinates of bin p on one axis and, per sample, (valid, lo, hi, l, h)."""
    out = []
    for i in range(max(grid, 0)):
        v = geom(start) + geom(p) * geom(bin_) + geom(np.float32(i) + np.float32(0.5)) * geom(bin_) / geom(grid)
        if not (v >= -1 and v <= size):
            out.append((False, 0, 0, 0.0, 0.0))
            continue
        v = max(float(v), 0.0)
        lo = int(v)
        if lo >= size - 1:
            lo = hi = size - 1
            v = float(lo)
        else:
            hi = lo + 1
        lv = float(geom(v) - geom(lo))
        out.append((True, lo, hi, lv, float(geom(1) - geom(lv))))
    return out


def _align_region(row, out_size, scale, sr, aligned, ps, geom):
    ph_n, pw_n = out_size
    s = [geom(c) * geom(scale) for c in row[1:]]
    off = geom(0.5) if (aligned or ps) else geom(0)
    sw, sh, ew, eh = (v - off for v in s)
    rw, rh = ew - sw, eh - sh
    if not ps and not aligned:
        rw, rh = max(rw, geom(1)), max(rh, geom(1))
    bh, bw = rh / geom(ph_n), rw / geom(pw_n)
    gh = sr if sr > 0 else int(np.ceil(bh))
    gw = sr if sr > 0 else int(np.ceil(bw))
    count = geom(gh * gw) if ps else geom(max(gh * gw, 1))
    return sh, sw, bh, bw, gh, gw, count


def roi_align_ref(x, boxes, out_size, scale, sr, aligned=False, ps=False, grad=None):
    """RoI Align / PS RoI Align of x (N, C, H, W) -> (K, C', PH, PW) in float64; with grad
    (K, C', PH, PW) returns the gradient (N, C, H, W) instead."""
    geom = x.dtype.type
    N, C, H, W = x.shape
    ph_n, pw_n = out_size
    rows = roi_rows(boxes)
    co = C // (ph_n * pw_n) if ps else C
    xf = np.asarray(x, np.float64)
    y = np.zeros((len(rows), co, ph_n, pw_n))
    dx = np.zeros(x.shape)
    for k, row in enumerate(rows):
        n = row[0]
        sh, sw, bh, bw, gh, gw, count = _align_region(row, out_size, scale, sr, aligned, ps, geom)
        for ph in range(ph_n):
            ys = _align_axis(sh, ph, bh, gh, H, geom)
            for pw in range(pw_n):
                xs = _align_axis(sw, pw, bw, gw, W, geom)
                ch = [(c * ph_n + ph) * pw_n + pw for c in range(co)] if ps else list(range(C))
                acc = np.zeros(co)
                for vy, ylo, yhi, ly, hy in ys:
                    for vx, xlo, xhi, lx, hx in xs:
                        if not (vy and vx):
                            continue
                        taps = ((ylo, xlo, hy * hx), (ylo, xhi, hy * lx), (yhi, xlo, ly * hx), (yhi, xhi, ly * lx))
                        for yy, xx, wt in taps:
                            if grad is None:
                                acc += wt * xf[n, ch, yy, xx]
                            else:
                                dx[n, ch, yy, xx] += wt * grad[k, :, ph, pw] / float(count)
                if grad is None:
                    with np.errstate(invalid="ignore"):  # ps_roi_align's 0 / 0 for an empty adaptive grid
                        y[k, :, ph, pw] = acc / np.float64(count)
    return y if grad is None else dx


def _round_half_away(v):
    """C's round(): halves away from zero."""
    a = abs(float(v))
    f = np.floor(a)
    return int(np.copysign(f + 1 if a - f >= 0.5 else f, v))


def _pool_region(row, out_size, scale, ps, geom):
    c = [_round_half_away(geom(v) * geom(scale)) for v in row[1:]]
    plus = 0 if ps else 1
    rw, rh = max(c[2] - c[0] + plus, 1), max(c[3] - c[1] + plus, 1)
    return c[0], c[1], geom(rh) / geom(out_size[0]), geom(rw) / geom(out_size[1])


def _pool_window(start, bin_, p, clip, geom):
    b = int(np.floor(geom(p) * bin_)) + start
    e = int(np.ceil(geom(p + 1) * bin_)) + start
    return min(max(b, 0), clip), min(max(e, 0), clip)


def roi_pool_ref(x, boxes, out_size, scale, ps=False):
    """RoI max pool (values, argmax h * W + w or -1) or PS RoI average pool (values, None) of
    x (N, C, H, W), torchvision's windows (ps: clipped to H - 1, W - 1)."""
    geom = x.dtype.type
    N, C, H, W = x.shape
    ph_n, pw_n = out_size
    rows = roi_rows(boxes)
    co = C // (ph_n * pw_n) if ps else C
    y = np.zeros((len(rows), co, ph_n, pw_n))
    idx = np.full((len(rows), co, ph_n, pw_n), -1, np.int64)
    for k, row in enumerate(rows):
        n = row[0]
        sw, sh, bh, bw = _pool_region(row, out_size, scale, ps, geom)
        for ph in range(ph_n):
            hs, he = _pool_window(sh, bh, ph, H - 1 if ps else H, geom)
            for pw in range(pw_n):
                ws, we = _pool_window(sw, bw, pw, W - 1 if ps else W, geom)
                for c in range(co):
                    if he <= hs or we <= ws:
                        continue
                    ci = (c * ph_n + ph) * pw_n + pw if ps else c
                    win = np.asarray(x[n, ci, hs:he, ws:we], np.float64)
                    if ps:
                        y[k, c, ph, pw] = win.sum() / ((he - hs) * (we - ws))
                        continue
                    best, bi = -np.finfo(np.float32).max, -1
                    for h in range(hs, he):
                        for w in range(ws, we):
                            if x[n, ci, h, w] > best:
                                best, bi = float(x[n, ci, h, w]), h * W + w
                    y[k, c, ph, pw], idx[k, c, ph, pw] = best, bi
    return y, (None if ps else idx)


def roi_pool_backward_ref(grad, x_shape, boxes, out_size, scale, idx=None, ps=False, geom=np.float64):
    """Gradient of roi_pool_ref (at idx) or of its PS form (each bin's gradient spread over its
    window), (N, C, H, W) float64."""
    N, C, H, W = x_shape
    ph_n, pw_n = out_size
    dx = np.zeros(x_shape)
    for k, row in enumerate(roi_rows(boxes)):
        n = row[0]
        sw, sh, bh, bw = _pool_region(row, out_size, scale, ps, geom)
        for ph in range(ph_n):
            hs, he = _pool_window(sh, bh, ph, H - 1 if ps else H, geom)
            for pw in range(pw_n):
                ws, we = _pool_window(sw, bw, pw, W - 1 if ps else W, geom)
                for c in range(grad.shape[1]):
                    if not ps:
                        a = idx[k, c, ph, pw]
                        if a >= 0:
                            dx[n, c, a // W, a % W] += grad[k, c, ph, pw]
                    elif he > hs and we > ws:
                        ci = (c * ph_n + ph) * pw_n + pw
                        dx[n, ci, hs:he, ws:we] += grad[k, c, ph, pw] / ((he - hs) * (we - ws))
    return dx


def affine_warp_ref(x, matrix, translate, fill):
    """Bilinear affine resampling by plain loops: output pixel (r, c) of image n reads the input at
    (qx, qy) = A_n^-1 ((c, r) - centre - t_n) + centre, each of the four neighbours outside the
    image counting as fill."""
    x = np.asarray(x, np.float64)
    n_img, ch, h, w = x.shape
    out = np.zeros(x.shape)
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    for n in range(n_img):
        inv = np.linalg.inv(np.asarray(matrix[n], np.float64))
        for r in range(h):
            for c in range(w):
                qx, qy = inv @ (np.array([c, r]) - centre - translate[n]) + centre
                x0, y0 = int(np.floor(qx)), int(np.floor(qy))
                fx, fy = qx - x0, qy - y0
                for yy, xx, wgt in ((y0, x0, (1 - fy) * (1 - fx)), (y0, x0 + 1, (1 - fy) * fx),
                                    (y0 + 1, x0, fy * (1 - fx)), (y0 + 1, x0 + 1, fy * fx)):
                    v = x[n, :, yy, xx] if 0 <= yy < h and 0 <= xx < w else np.full(ch, fill)
                    out[n, :, r, c] += wgt * v
    return out


# ---- batch normalisation -----------------------------------------------------------------------------

def batch_norm_ref(x, w=None, b=None, mean=None, var=None, eps=1e-5):
    """(y, mean, var) in float64: per channel of (N, C, *), batch statistics (biased var) unless given."""
    x = np.asarray(x, np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if mean is None:
        mean = x.mean(axis=axes)
        var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    xhat = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    w = np.ones(x.shape[1]) if w is None else np.asarray(w, np.float64)
    b = np.zeros(x.shape[1]) if b is None else np.asarray(b, np.float64)
    return xhat * w.reshape(shape) + b.reshape(shape), mean, var


def batch_norm_backward_ref(dy, x, w, mean, var, eps=1e-5, batch_stats=True):
    """(dx, dw, db) in float64, written out from the definition: through the batch statistics when
    batch_stats (d mean / dx = 1/M, d var / dx = 2 (x - mean) / M), else with them constant."""
    dy, x = np.asarray(dy, np.float64), np.asarray(x, np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    M = x.size // x.shape[1]
    w = np.ones(x.shape[1]) if w is None else np.asarray(w, np.float64)
    mean, var = np.asarray(mean, np.float64).reshape(shape), np.asarray(var, np.float64).reshape(shape)
    inv = 1 / np.sqrt(var + eps)
    xc = x - mean
    db = dy.sum(axis=axes)
    dw = (dy * xc * inv).sum(axis=axes)
    dxhat = dy * w.reshape(shape)
    dx = dxhat * inv
    if batch_stats:
        dvar = (dxhat * xc).sum(axis=axes, keepdims=True) * -0.5 * inv ** 3
        dmean = -(dxhat * inv).sum(axis=axes, keepdims=True) + dvar * -2 * xc.mean(axis=axes, keepdims=True)
        dx = dx + dvar * 2 * xc / M + dmean / M
    return dx, dw, db

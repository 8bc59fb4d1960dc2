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

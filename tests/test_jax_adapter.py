"""cnnops.jax: the kernels under jax.jit, jax.grad and jax.vmap, against jax.lax's convolution and
reduce_window on the same inputs (values and gradients)."""
from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
cj = pytest.importorskip("cnnops.jax")
jnp = jax.numpy
lax = jax.lax

import cnnops  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def x64():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def lax_conv(x, w, b, stride, pads, dilation, groups):
    nd = x.ndim - 2
    dn = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW"), 3: ("NCDHW", "OIDHW", "NCDHW")}[nd]
    y = lax.conv_general_dilated(x, w, stride, [(pads[2 * i], pads[2 * i + 1]) for i in range(nd)],
                                 rhs_dilation=dilation, dimension_numbers=dn, feature_group_count=groups)
    return y + b.reshape((1, -1) + (1,) * nd)


@pytest.mark.parametrize("nd,stride,pads,dil,groups", [(2, (2, 1), (1, 0, 2, 1), (1, 2), 1), (1, (1,), (2, 2), (2,), 2),
                                                       (3, (1, 2, 1), (1,) * 6, (1, 1, 1), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_value_and_grad_match_lax(nd, stride, pads, dil, groups, dtype, rng):
    sp = (7, 8, 5)[:nd]
    x = jnp.asarray(rng.standard_normal((2, 4, *sp)), dtype)
    w = jnp.asarray(rng.standard_normal((6, 4 // groups, *(3,) * nd)), dtype)
    b = jnp.asarray(rng.standard_normal(6), dtype)
    f = getattr(cj, f"conv{nd}d")
    ours = jax.jit(lambda x, w, b: f(x, w, b, stride, list(pads), dil, groups))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(ours(x, w, b), lax_conv(x, w, b, stride, pads, dil, groups), rtol=tol, atol=tol)
    loss = lambda fn: lambda x, w, b: jnp.sum(jnp.sin(fn(x, w, b)))  # noqa: E731
    g1 = jax.grad(loss(ours), argnums=(0, 1, 2))(x, w, b)
    g2 = jax.grad(loss(lambda x, w, b: lax_conv(x, w, b, stride, pads, dil, groups)), argnums=(0, 1, 2))(x, w, b)
    for a, c in zip(g1, g2):
        np.testing.assert_allclose(a, c, rtol=tol * 10, atol=tol * 10)


def test_conv_transpose_matches_lax_gradient_of_conv(rng):
    # conv_transpose2d is the input-gradient of conv2d: compare with jax.vjp of lax's convolution
    w = jnp.asarray(rng.standard_normal((3, 5, 3, 3)))
    g = jnp.asarray(rng.standard_normal((2, 3, 4, 4)))
    _, vjp = jax.vjp(lambda x: lax_conv(x, w, jnp.zeros(3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
                     jnp.zeros((2, 5, 8, 8)))
    y = cj.conv_transpose2d(g, w, None, 2, 1, 1)
    np.testing.assert_allclose(y, vjp(g)[0], rtol=1e-12, atol=1e-12)
    gx = jax.grad(lambda g: jnp.sum(cj.conv_transpose2d(g, w, None, 2, 1, 1) ** 2))(g)
    assert gx.shape == g.shape and np.isfinite(np.asarray(gx)).all()


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("data_format", ["NCHW", "NHWC"])
def test_pool_matches_reduce_window(kind, data_format, rng):
    x = jnp.asarray(rng.standard_normal((2, 3, 9, 8)))
    if data_format == "NHWC":
        x = jnp.transpose(x, (0, 2, 3, 1))
    win = (1, 1, 3, 3) if data_format == "NCHW" else (1, 3, 3, 1)
    strides = (1, 1, 2, 2) if data_format == "NCHW" else (1, 2, 2, 1)
    pad = [(0, 0), (0, 0), (1, 1), (1, 1)] if data_format == "NCHW" else [(0, 0), (1, 1), (1, 1), (0, 0)]
    if kind == "max":
        ref = lambda x: lax.reduce_window(x, -jnp.inf, lax.max, win, strides, pad)  # noqa: E731
        ours = lambda x: cj.max_pool2d(x, 3, 2, 1, data_format=data_format)  # noqa: E731
    else:
        ref = lambda x: lax.reduce_window(x, 0.0, lax.add, win, strides, pad) / 9  # noqa: E731
        ours = lambda x: cj.avg_pool2d(x, 3, 2, 1, data_format=data_format)  # noqa: E731
    np.testing.assert_allclose(jax.jit(ours)(x), ref(x), rtol=1e-12)
    g1 = jax.grad(lambda x: jnp.sum(jnp.cos(ours(x))))(x)
    g2 = jax.grad(lambda x: jnp.sum(jnp.cos(ref(x))))(x)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-12)


def test_vmap_maps_over_a_leading_axis(rng):
    x = jnp.asarray(rng.standard_normal((3, 2, 4, 7, 7)))
    w = jnp.asarray(rng.standard_normal((5, 4, 3, 3)))
    y = jax.vmap(lambda x: cj.conv2d(x, w, padding=1))(x)
    for i in range(3):
        np.testing.assert_allclose(y[i], cnnops.conv2d(np.asarray(x[i]), np.asarray(w), padding=1), rtol=1e-12)
    m = jax.vmap(lambda x: cj.max_pool2d(x, 2))(x)
    assert m.shape == (3, 2, 4, 3, 3)


def test_adaptive_upsample_and_losses(rng):
    x = jnp.asarray(rng.standard_normal((2, 3, 9, 7)))
    np.testing.assert_allclose(cj.adaptive_avg_pool2d(x, (4, 3)), cnnops.adaptive_avg_pool2d(np.asarray(x), (4, 3)))
    g = jax.grad(lambda x: jnp.sum(cj.adaptive_avg_pool2d(x, 1)))(x)
    np.testing.assert_allclose(g, np.full(x.shape, 1 / 63), rtol=1e-12)
    u = jax.grad(lambda x: jnp.sum(cj.upsample_nearest2d(x, (18, 14))))(x)
    np.testing.assert_allclose(u, np.full(x.shape, 4.0))
    b = rng.random((5, 4)) * 10
    b[:, 2:] += b[:, :2] + 1
    b1, b2 = jnp.asarray(b), jnp.asarray(b[::-1].copy())
    for kind in ("giou", "diou", "ciou"):
        v = getattr(cj, f"{kind}_loss")(b1, b2, "sum")
        np.testing.assert_allclose(v, getattr(cnnops, f"{kind}_loss")(b, b[::-1].copy(), "sum"))
        grads = jax.grad(lambda a: getattr(cj, f"{kind}_loss")(a, b2, "mean"))(b1)
        ref = getattr(cnnops, f"{kind}_loss_backward")(np.asarray(1.0), b, b[::-1].copy(), "mean")[0]
        np.testing.assert_allclose(grads, ref)
    # a jitted training step: two SGD updates of a conv + pool + loss
    w = jnp.asarray(rng.standard_normal((4, 3, 3, 3)))

    @jax.jit
    def step(w, x):
        loss = lambda w: jnp.mean(cj.max_pool2d(cj.conv2d(x, w, padding=1), 2) ** 2)  # noqa: E731
        val, g = jax.value_and_grad(loss)(w)
        return w - 0.1 * g, val

    w1, l1 = step(w, x)
    _, l2 = step(w1, x)
    assert float(l2) < float(l1)

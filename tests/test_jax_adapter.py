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


@pytest.fixture(params=cj.BRIDGES)
def bridge(request):
    """Each test once per bridge this build has (the XLA FFI handlers need jaxlib at build time)."""
    if request.param == "xla_ffi" and cj.FFI_UNAVAILABLE:
        pytest.skip(cj.FFI_UNAVAILABLE)
    before = cj.BRIDGE
    cj.set_bridge(request.param)
    yield request.param
    cj.BRIDGE = before


def lax_conv(x, w, b, stride, pads, dilation, groups):
    nd = x.ndim - 2
    dn = {1: ("NCH", "OIH", "NCH"), 2: ("NCHW", "OIHW", "NCHW"), 3: ("NCDHW", "OIDHW", "NCDHW")}[nd]
    y = lax.conv_general_dilated(x, w, stride, [(pads[2 * i], pads[2 * i + 1]) for i in range(nd)],
                                 rhs_dilation=dilation, dimension_numbers=dn, feature_group_count=groups)
    return y + b.reshape((1, -1) + (1,) * nd)


@pytest.mark.parametrize("nd,stride,pads,dil,groups", [(2, (2, 1), (1, 0, 2, 1), (1, 2), 1), (1, (1,), (2, 2), (2,), 2),
                                                       (3, (1, 2, 1), (1,) * 6, (1, 1, 1), 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_value_and_grad_match_lax(nd, stride, pads, dil, groups, dtype, rng, bridge):
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


def test_conv_transpose_matches_lax_gradient_of_conv(rng, bridge):
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
def test_pool_matches_reduce_window(kind, data_format, rng, bridge):
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


def test_vmap_maps_over_a_leading_axis(rng, bridge):
    x = jnp.asarray(rng.standard_normal((3, 2, 4, 7, 7)))
    w = jnp.asarray(rng.standard_normal((5, 4, 3, 3)))
    y = jax.vmap(lambda x: cj.conv2d(x, w, padding=1))(x)
    for i in range(3):
        np.testing.assert_allclose(y[i], cnnops.conv2d(np.asarray(x[i]), np.asarray(w), padding=1), rtol=1e-12)
    m = jax.vmap(lambda x: cj.max_pool2d(x, 2))(x)
    assert m.shape == (3, 2, 4, 3, 3)


def test_adaptive_upsample_and_losses(rng, bridge):
    x = jnp.asarray(rng.standard_normal((2, 3, 9, 7)))
    np.testing.assert_allclose(cj.adaptive_avg_pool2d(x, (4, 3)), cnnops.adaptive_avg_pool2d(np.asarray(x), (4, 3)))
    g = jax.grad(lambda x: jnp.sum(cj.adaptive_avg_pool2d(x, 1)))(x)
    np.testing.assert_allclose(g, np.full(x.shape, 1 / 63), rtol=1e-12)
    u = jax.grad(lambda x: jnp.sum(cj.upsample_nearest2d(x, size=(18, 14))))(x)
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


# ---- both bridges against the cnnops functions, over the options -----------------------------------

def _both(fn, *args):
    """fn(*args) and its gradients (of sum(sin(out))) through each available bridge, as NumPy."""
    out = {}
    for b in cj.BRIDGES:
        if b == "xla_ffi" and cj.FFI_UNAVAILABLE:
            continue
        cj.set_bridge(b)
        y = jax.jit(fn)(*args)
        g = jax.jit(jax.grad(lambda *a: jnp.sum(jnp.sin(fn(*a))), argnums=tuple(range(len(args)))))(*args)
        out[b] = (np.asarray(y), [np.asarray(e) for e in g])
    return out


@pytest.fixture
def restore_bridge():
    before = cj.BRIDGE
    yield
    cj.BRIDGE = before


CONV_CASES = [  # nd, input spatial, kernel, options
    (2, (9, 7), (3, 3), dict(stride=2, padding="same", padding_mode="reflect")),
    (2, (6, 6), (5, 5), dict(padding=(2, 1), dilation=1, groups=2, padding_mode="circular")),
    (2, (1, 1), (1, 1), dict()),
    (2, (4, 5), (3, 3), dict(padding="full", dilation=(2, 1))),
    (1, (11,), (4,), dict(stride=3, padding="valid", padding_mode="replicate", algo="direct")),
    (3, (4, 5, 3), (2, 3, 2), dict(padding=1, stride=(1, 2, 1))),
    (2, (10, 10), (3, 3), dict(padding=1, algo="winograd")),
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
def test_conv_bridges_agree_with_cnnops(case, rng, restore_bridge):
    nd, sp, k, opts = CONV_CASES[case]
    groups = opts.get("groups", 1)
    x = rng.standard_normal((2, 4, *sp))
    w = rng.standard_normal((6, 4 // groups, *k))
    b = rng.standard_normal(6)
    f = getattr(cj, f"conv{nd}d")
    res = _both(lambda x, w, b: f(x, w, b, **opts), jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
    ref = getattr(cnnops, f"conv{nd}d")(x, w, b, **opts)
    y = ref
    dy = np.cos(y)
    rgi, rgw, rgb = getattr(cnnops, f"conv{nd}d_backward")(dy, x, w, **{k: v for k, v in opts.items()})
    for _, (yy, (gi, gw, gb)) in res.items():
        np.testing.assert_array_equal(yy, ref)
        np.testing.assert_allclose(gi, rgi, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gw, rgw, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gb, rgb, rtol=1e-12, atol=1e-12)
    if len(res) == 2:  # the two bridges run the same kernels on the same values: the same bits
        (y1, g1), (y2, g2) = res.values()
        np.testing.assert_array_equal(y1, y2)
        for a, c in zip(g1, g2):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("opts", [dict(stride=2, padding=1, output_padding=1), dict(stride=3, output_size=(13, 10)),
                                  dict(groups=2, dilation=2, padding=(1, 0))])
def test_conv_transpose_bridges_agree_with_cnnops(opts, rng, restore_bridge):
    g = opts.get("groups", 1)
    x = rng.standard_normal((2, 4, 4, 3))
    w = rng.standard_normal((4, 6 // g, 3, 3))
    b = rng.standard_normal(6)
    res = _both(lambda x, w, b: cj.conv_transpose2d(x, w, b, **opts), jnp.asarray(x), jnp.asarray(w), jnp.asarray(b))
    ref = cnnops.conv_transpose2d(x, w, b, **opts)
    bw = {k: v for k, v in opts.items() if k != "output_size"}
    rgi, rgw, rgb = cnnops.conv_transpose2d_backward(np.cos(ref), x, w, **bw)
    for _, (y, (gi, gw, gb)) in res.items():
        np.testing.assert_array_equal(y, ref)
        for a, c in ((gi, rgi), (gw, rgw), (gb, rgb)):
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


POOL_CASES = [  # jax/cnnops function, extra positional args, options, channels-last
    ("max_pool2d", (3,), dict(stride=2, padding=1, ceil_mode=True), False),
    ("max_pool1d", (2,), dict(dilation=2), True),
    ("max_pool3d", ((2, 2, 1),), dict(), False),
    ("avg_pool2d", ((3, 2),), dict(stride=(2, 1), padding=(1, 0), count_include_pad=False), True),
    ("avg_pool2d", (3,), dict(divisor_override=5, ceil_mode=True, stride=2), False),
    ("avg_pool3d", (2,), dict(padding="SAME"), False),
    ("lp_pool2d", (2.5, 2), dict(), False),
    ("adaptive_avg_pool2d", ((4, 3),), dict(), True),
    ("adaptive_max_pool2d", ((3, 5),), dict(), False),
    ("adaptive_avg_pool1d", (1,), dict(), False),
    ("adaptive_max_pool3d", ((2, 1, 3),), dict(), False),
]


@pytest.mark.parametrize("case", range(len(POOL_CASES)))
def test_pool_bridges_agree_with_cnnops(case, rng, restore_bridge):
    name, args, opts, cl = POOL_CASES[case]
    nd = int(name[-2])
    sp = (7, 6, 5)[:nd]
    x = rng.random((2, 3, *sp)) + 0.1  # positive: lp pooling
    fmt = {1: "NWC", 2: "NHWC", 3: "NDHWC"}[nd] if cl else {1: "NCW", 2: "NCHW", 3: "NCDHW"}[nd]
    if cl:
        x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    res = _both(lambda x: getattr(cj, name)(x, *args, **opts, data_format=fmt), jnp.asarray(x))
    ref = getattr(cnnops, name)(x, *args, **opts, data_format=fmt)
    bargs = args if not name.startswith("max") else (None, *args)  # max_pool*_backward takes indices
    if name.startswith("adaptive"):
        bargs = (None,) if "max" in name else ()
    rg = getattr(cnnops, f"{name}_backward")(np.cos(ref), x, *bargs, **opts, data_format=fmt)
    for _, (y, (g,)) in res.items():
        np.testing.assert_array_equal(y, ref)
        np.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("nd,opts", [(1, dict(scale_factor=2.5)), (2, dict(size=(5, 9), mode="nearest-exact")),
                                     (3, dict(scale_factor=(1, 2, 1.5)))])
def test_upsample_bridges_agree_with_cnnops(nd, opts, rng, restore_bridge):
    x = rng.standard_normal((2, 3, *(4, 3, 2)[:nd]))
    res = _both(lambda x: getattr(cj, f"upsample_nearest{nd}d")(x, **opts), jnp.asarray(x))
    ref = getattr(cnnops, f"upsample_nearest{nd}d")(x, **opts)
    rg = getattr(cnnops, f"upsample_nearest{nd}d_backward")(np.cos(ref), x, **opts)
    for _, (y, (g,)) in res.items():
        np.testing.assert_array_equal(y, ref)
        np.testing.assert_allclose(g, rg, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", ["iou", "giou", "diou", "ciou"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_box_losses_bridges_agree_with_cnnops(kind, reduction, rng, restore_bridge):
    b = rng.random((2, 3, 4)) * 10
    b[..., 2:] += b[..., :2] + 1
    c = b[::-1, ::-1].copy() + rng.random((2, 3, 4))
    f = getattr(cj, f"{kind}_loss")
    res = _both(lambda p, q: f(p, q, reduction), jnp.asarray(b), jnp.asarray(c))
    ref = getattr(cnnops, f"{kind}_loss")(b, c, reduction)
    rg1, rg2 = getattr(cnnops, f"{kind}_loss_backward")(np.cos(ref), b, c, reduction)
    for _, (y, (g1, g2)) in res.items():
        np.testing.assert_allclose(y, ref, rtol=1e-14)
        np.testing.assert_allclose(g1, rg1, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(g2, rg2, rtol=1e-12, atol=1e-14)


def test_ffi_results_are_written_in_place(rng, restore_bridge):
    """The kernels write into XLA's result buffers: no result of these calls is copied."""
    if cj.FFI_UNAVAILABLE:
        pytest.skip(cj.FFI_UNAVAILABLE)
    cj.set_bridge("xla_ffi")
    x = jnp.asarray(rng.standard_normal((4, 3, 20, 20)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((8, 3, 3, 3)), jnp.float32)
    before = cnnops._C.xla_ffi_copied_results()
    loss = jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(cj.max_pool2d(cj.conv2d(x, w, padding=1), 2) ** 2),
                                      argnums=(0, 1)))
    val, (gx, gw) = loss(x, w)
    gx.block_until_ready()
    assert cnnops._C.xla_ffi_copied_results() == before
    assert np.isfinite(float(val)) and gx.shape == x.shape and gw.shape == w.shape


@pytest.fixture
def offer_mode():
    """Sets how the XLA FFI handlers offer XLA's result buffers to the ops; restored after the test."""
    if cj.FFI_UNAVAILABLE:
        pytest.skip(cj.FFI_UNAVAILABLE)
    before = cnnops._C._xla_ffi_set_offer_mode(0)
    yield cnnops._C._xla_ffi_set_offer_mode
    cnnops._C._xla_ffi_set_offer_mode(before)


@pytest.mark.parametrize("mode", [1, 2], ids=["not-offered", "reversed"])
def test_ffi_copy_fallback_delivers_every_result(mode, rng, restore_bridge, offer_mode):
    """Results that do not land in XLA's buffers are copied there: with no buffer offered every
    result is copied; offered in reverse order, the two equal-shaped box gradients land in each
    other's buffers and are set aside before the copies. Values bitwise those of in-place calls."""
    cj.set_bridge("xla_ffi")
    x = jnp.asarray(rng.standard_normal((3, 2, 9, 8)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((4, 2, 3, 3)), jnp.float32)
    b1 = rng.random((5, 4)) * 10
    b1[:, 2:] += b1[:, :2] + 1
    b2 = b1[::-1].copy() + rng.random((5, 4))
    b1, b2 = jnp.asarray(b1), jnp.asarray(b2)

    def run():
        conv = jax.jit(jax.value_and_grad(lambda x, w: jnp.sum(cj.max_pool2d(cj.conv2d(x, w, padding=1), 2) ** 3),
                                          argnums=(0, 1)))
        loss = jax.jit(jax.value_and_grad(lambda p, q: jnp.sum(jnp.sin(cj.giou_loss(p, q, "none"))), argnums=(0, 1)))
        return [np.asarray(a) for a in jax.tree_util.tree_leaves((conv(x, w), loss(b1, b2)))]

    want = run()
    offer_mode(mode)
    before = cnnops._C.xla_ffi_copied_results()
    got = run()
    copied = cnnops._C.xla_ffi_copied_results() - before
    # not offered: conv, pool (values, indices), pool backward, conv backward (input and weight
    # gradients), loss, loss backward (two gradients); reversed: only the two box gradients
    assert copied == (9 if mode == 1 else 2)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_ffi_offer_mode_rejects_bad_values(offer_mode):
    with pytest.raises(ValueError, match=r"_xla_ffi_set_offer_mode: expected 0 \(in order\), 1 \(none\) or 2"):
        offer_mode(3)


def test_bad_arguments_raise_while_tracing(rng, bridge):
    x = jnp.asarray(rng.standard_normal((2, 4, 5, 5)))
    with pytest.raises(ValueError, match=r"cnnops\.jax\.conv2d: expected weight\.shape\[1\]"):
        cj.conv2d(x, jnp.ones((3, 2, 3, 3)))
    with pytest.raises(ValueError, match=r"cnnops\.jax\.conv2d: expected the \(dilated\) kernel"):
        jax.jit(lambda x: cj.conv2d(x, jnp.ones((3, 4, 7, 7))))(x)
    with pytest.raises(TypeError, match=r"cnnops\.jax\.conv2d: expected float32 or float64"):
        cj.conv2d(x.astype(jnp.int32), jnp.ones((3, 4, 3, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"cnnops\.jax\.max_pool2d: expected a window that fits"):
        cj.max_pool2d(x, 7)
    with pytest.raises(ValueError, match=r"cnnops\.jax\.giou_loss: expected boxes1 and boxes2"):
        cj.giou_loss(jnp.ones((3, 4)), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"cnnops\.jax\.upsample_nearest2d: expected exactly one of size"):
        cj.upsample_nearest2d(x)
    with pytest.raises(ValueError, match="expected one of"):
        cj.set_bridge("ctypes")


def test_core_errors_at_run_time_name_the_op(rng, bridge):
    # checks only the core makes (the algorithm against the transposed problem) surface when the
    # call runs, with the op's name and the Python exception the bindings would raise
    x = jnp.asarray(rng.standard_normal((2, 4, 5, 5)))
    with pytest.raises(Exception, match=r"cnnops\.jax\.conv_transpose2d: algo='winograd' needs"):
        jax.block_until_ready(cj.conv_transpose2d(x, jnp.ones((4, 3, 3, 3)), None, 2, algo="winograd"))


def test_info_reports_the_bridge():
    want = "xla_ffi" if hasattr(cnnops._C, "xla_ffi_targets") else "pure_callback"
    assert cnnops.info()["jax_bridge"].startswith(want)


# ---- vmap: pooling, upsampling and element-wise losses take the mapped axes into their batch ------

VMAP_CASES = [  # function, extra positional arguments, keyword arguments, input shape per element
    ("max_pool2d", (3, 2, 1), {}, (2, 3, 9, 8)),
    ("avg_pool2d", (2,), {"data_format": "NHWC"}, (2, 6, 7, 3)),
    ("adaptive_max_pool1d", (4,), {}, (3, 2, 11)),
    ("lp_pool3d", (2.0, 2), {}, (1, 2, 4, 5, 4)),
    ("upsample_nearest2d", (), {"scale_factor": 2}, (2, 3, 4, 5)),
]


def _loop(fn, xs):
    return np.stack([np.asarray(fn(x)) for x in xs])


@pytest.mark.parametrize("case", range(len(VMAP_CASES)))
def test_vmap_over_pooling_equals_a_loop(case, rng, bridge):
    name, args, kw, shape = VMAP_CASES[case]
    f = getattr(cj, name)
    xs = jnp.asarray(rng.random((3, *shape)) + 0.1)

    def fn(x):
        return f(x, *args, **kw)

    np.testing.assert_array_equal(jax.jit(jax.vmap(fn))(xs), _loop(fn, xs))
    # per-example gradients (vmap of grad) and the gradient of a vmapped sum (grad of vmap)
    per = jax.vmap(jax.grad(lambda x: jnp.sum(jnp.sin(fn(x)))))(xs)
    np.testing.assert_array_equal(per, _loop(jax.grad(lambda x: jnp.sum(jnp.sin(fn(x)))), xs))
    whole = jax.grad(lambda xs: jnp.sum(jnp.sin(jax.vmap(fn)(xs))))(xs)
    np.testing.assert_array_equal(whole, per)
    # nested: two mapped axes
    xss = jnp.stack([xs, xs * 2])
    np.testing.assert_array_equal(jax.vmap(jax.vmap(fn))(xss), np.stack([_loop(fn, xs), _loop(fn, xs * 2)]))
    # an axis other than the first
    np.testing.assert_array_equal(jax.vmap(fn, in_axes=1, out_axes=1)(jnp.moveaxis(xs, 0, 1)),
                                  np.moveaxis(_loop(fn, xs), 0, 1))


def test_vmapped_pooling_is_one_call(rng, bridge):
    xs = jnp.asarray(rng.random((5, 2, 3, 8, 8)))
    text = jax.jit(jax.vmap(lambda x: cj.max_pool2d(x, 2))).lower(xs).as_text()
    if bridge == "xla_ffi":
        assert text.count("@cnnops_pool(") == 1 and "tensor<5x2x3x8x8xf64>" in text.split("@cnnops_pool(")[1]
    assert "while" not in text  # no per-element loop


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_vmap_over_box_losses_equals_a_loop(reduction, rng, bridge):
    b = rng.random((4, 6, 4)) * 10
    b[..., 2:] += b[..., :2] + 1
    c = b[:, ::-1].copy() + rng.random((4, 6, 4))
    b1, b2 = jnp.asarray(b), jnp.asarray(c)

    def fn(p, q):
        return cj.ciou_loss(p, q, reduction)

    want = np.stack([np.asarray(fn(p, q)) for p, q in zip(b1, b2)])
    np.testing.assert_allclose(jax.jit(jax.vmap(fn))(b1, b2), want, rtol=1e-15)
    g = jax.vmap(jax.grad(lambda p, q: jnp.sum(fn(p, q))))(b1, b2)
    want_g = np.stack([np.asarray(jax.grad(lambda p: jnp.sum(fn(p, q)))(p)) for p, q in zip(b1, b2)])
    np.testing.assert_allclose(g, want_g, rtol=1e-14, atol=1e-15)
    # boxes2 shared by every element: broadcast, not mapped
    np.testing.assert_allclose(jax.vmap(fn, in_axes=(0, None))(b1, b2[0]),
                               np.stack([np.asarray(fn(p, b2[0])) for p in b1]), rtol=1e-15)

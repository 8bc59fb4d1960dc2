"""cnnops.torch: the kernels as PyTorch custom operators with autograd, torch.nn-compatible modules,
patch(model), torchvision-compatible box ops, torch.compile and DistributedDataParallel. Every
result is compared with PyTorch's own op on the same inputs."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ct = pytest.importorskip("cnnops.torch")
F = torch.nn.functional
CF = ct.functional
OPS = ct._ops

D64 = torch.float64


def r(rng, *shape, dtype=D64, grad=True):
    t = torch.from_numpy(rng.standard_normal(shape)).to(dtype)
    return t.requires_grad_(grad)


def boxes(rng, n, dtype=D64):
    b = torch.from_numpy(rng.random((n, 4)) * 10).to(dtype)
    b[:, 2:] += b[:, :2] + 0.5
    return b


# ---- every operator passes torch.library.opcheck (schema, fake tensors, autograd, AOT dispatch) ----

def _op_cases(rng):
    x4 = r(rng, 2, 3, 9, 9)
    y, i = F.max_pool2d(torch.randn(2, 3, 8, 8, dtype=D64), 2, return_indices=True)
    cl = r(rng, 2, 5, 9, 7, grad=False).contiguous(memory_format=torch.channels_last).requires_grad_()
    b1, b2 = boxes(rng, 6).requires_grad_(), boxes(rng, 6).requires_grad_()
    return {
        "conv2d": (OPS.conv, (x4, r(rng, 4, 3, 3, 3), r(rng, 4), [2, 2], [1, 1, 1, 1], [1, 1], 1, "zeros", "auto")),
        "conv1d_reflect_groups": (OPS.conv, (r(rng, 2, 4, 9), r(rng, 4, 2, 3), None, [1], [2, 1], [2], 2, "reflect",
                                             "auto")),
        "conv3d": (OPS.conv, (r(rng, 1, 2, 5, 6, 5), r(rng, 3, 2, 2, 3, 2), r(rng, 3), [1, 2, 1], [0] * 6, [1, 1, 1],
                              1, "zeros", "auto")),
        "conv_transpose2d": (OPS.conv_transpose, (r(rng, 2, 3, 5, 5), r(rng, 3, 4, 3, 3), r(rng, 4), [2, 2], [1, 1],
                                                  [1, 1], 1, [1, 1], "auto")),
        "max_pool2d": (OPS.pool, (x4, "max", [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], False, True, 0, 2.0, False)),
        "max_pool2d_nhwc": (OPS.pool, (cl, "max", [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], True, True, 0, 2.0, True)),
        "avg_pool2d": (OPS.pool, (x4, "avg", [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], True, False, 0, 2.0, False)),
        "avg_pool1d": (OPS.pool, (r(rng, 2, 3, 11), "avg", [4], [3], [2, 2], [1], True, True, 0, 2.0, False)),
        "lp_pool2d": (OPS.pool, (x4.detach().abs().requires_grad_(), "lp", [2, 2], [2, 2], [0] * 4, [1, 1], False,
                                 True, 0, 3.0, False)),
        "adaptive_avg_pool2d": (OPS.adaptive_pool, (r(rng, 2, 3, 9, 7), "avg", [4, 3], False)),
        "adaptive_max_pool3d": (OPS.adaptive_pool, (r(rng, 1, 2, 5, 4, 6), "max", [2, 3, 4], False)),
        "fractional_max_pool2d": (OPS.fractional_max_pool, (x4, [2, 2], [5, 5], torch.rand(2, 3, 2, dtype=D64),
                                                            False)),
        "max_unpool2d": (OPS.max_unpool, (y.requires_grad_(), i, [2, 2], [2, 2], [0, 0], [8, 8])),
        "upsample_nearest2d": (OPS.upsample_nearest, (r(rng, 2, 3, 4, 5), None, [2.0, 1.5], "nearest", False, False)),
        "upsample_nearest_exact": (OPS.upsample_nearest, (r(rng, 1, 2, 5), [7], None, "nearest-exact", False, False)),
        "bed_of_nails": (OPS.bed_of_nails, (x4, [2, 3], False)),
        "giou_loss": (OPS.box_loss, ("giou", b1, b2, "mean", 1e-7)),
        "ciou_loss": (OPS.box_loss, ("ciou", b1, b2, "none", 1e-7)),
        "nms": (OPS.nms, (boxes(rng, 30), torch.rand(30, dtype=D64), 0.5)),
        "batched_nms": (OPS.batched_nms, (boxes(rng, 30), torch.rand(30, dtype=D64), torch.randint(0, 3, (30,)), 0.5)),
        "box_iou": (OPS.pairwise_iou, ("box_iou", boxes(rng, 5), boxes(rng, 3), 0.0)),
    }


@pytest.mark.parametrize("name", sorted(_op_cases(np.random.default_rng(0))))
def test_opcheck(name, rng):
    op, args = _op_cases(rng)[name]
    torch.library.opcheck(op, args)


# ---- results and gradients equal PyTorch's; gradcheck in float64 ----

def _compare(fn_c, fn_t, inputs, rtol=1e-10):
    a = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    b = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    yc, yt = fn_c(*a), fn_t(*b)
    yc = yc if isinstance(yc, tuple) else (yc,)
    yt = yt if isinstance(yt, tuple) else (yt,)
    assert yc[0].grad_fn is not None
    for u, v in zip(yc, yt):
        torch.testing.assert_close(u, v, rtol=rtol, atol=rtol)
    g = torch.randn_like(yt[0])
    yc[0].backward(g)
    yt[0].backward(g)
    for u, v in zip(a, b):
        if u.requires_grad:
            torch.testing.assert_close(u.grad, v.grad, rtol=rtol, atol=rtol)


CONV_CASES = [
    (2, dict(stride=2, padding=1)), (2, dict(padding="same", dilation=2)), (2, dict(groups=3, stride=(1, 2))),
    (1, dict(padding=2, padding_mode="circular")), (3, dict(stride=(1, 2, 1), padding=1)),
    (2, dict(padding=1, padding_mode="replicate")),
]


@pytest.mark.parametrize("nd,kw", CONV_CASES)
def test_conv_matches_torch(nd, kw, rng):
    sp = (7, 8, 6)[:nd] if nd < 3 else (5, 6, 4)
    x, w, b = r(rng, 2, 6, *sp), r(rng, 6, 6 // kw.get("groups", 1), *(3,) * nd), r(rng, 6)
    kw = dict(kw)
    pm = kw.pop("padding_mode", "zeros")
    if pm == "zeros":
        ref = lambda x, w, b: getattr(F, f"conv{nd}d")(x, w, b, **kw)  # noqa: E731
    else:
        tkw = {k: v for k, v in kw.items() if k != "padding"}
        p = kw["padding"]
        ref = lambda x, w, b: getattr(F, f"conv{nd}d")(F.pad(x, (p,) * (2 * nd), mode=pm), w, b, **tkw)  # noqa: E731
    _compare(lambda x, w, b: getattr(CF, f"conv{nd}d")(x, w, b, padding_mode=pm, **kw), ref, (x, w, b))
    torch.autograd.gradcheck(lambda x, w, b: getattr(CF, f"conv{nd}d")(x, w, b, padding_mode=pm, **kw),
                             (x[:1, :, :5], w, b), fast_mode=True)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_conv_transpose_matches_torch(nd, rng):
    sp = (4, 5, 3)[:nd]
    x, w, b = r(rng, 2, 4, *sp), r(rng, 4, 3, *(3,) * nd), r(rng, 6)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    _compare(lambda x, w, b: getattr(CF, f"conv_transpose{nd}d")(x, w, b, **kw),
             lambda x, w, b: getattr(F, f"conv_transpose{nd}d")(x, w, b, **kw), (x, w, b))
    torch.autograd.gradcheck(lambda x, w, b: getattr(CF, f"conv_transpose{nd}d")(x, w, b, **kw), (x[:1], w, b),
                             fast_mode=True)


POOL_CASES = [
    ("max_pool2d", (3, 2, 1), {}), ("max_pool2d", (2,), dict(ceil_mode=True, dilation=2)),
    ("max_pool1d", (3, 2, 1), {}), ("max_pool3d", (2, 1), {}),
    ("avg_pool2d", (3, 2, 1), dict(count_include_pad=False, ceil_mode=True)),
    ("avg_pool2d", (3, 2, 1), dict(divisor_override=5)), ("avg_pool1d", (4, 3, 2), {}), ("avg_pool3d", (2,), {}),
    ("lp_pool2d", (2.0, 3, 2), {}), ("lp_pool1d", (3.0, 2), {}),
    ("adaptive_avg_pool2d", ((4, 3),), {}), ("adaptive_max_pool2d", ((4, 5),), {}),
    ("adaptive_avg_pool1d", (4,), {}), ("adaptive_max_pool3d", ((2, 3, 2),), {}),
]


@pytest.mark.parametrize("name,args,kw", POOL_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(POOL_CASES)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_pool_matches_torch(name, args, kw, channels_last, rng):
    nd = int(name[-2])
    if channels_last and nd == 1:
        pytest.skip("PyTorch has no channels-last 1-D layout")
    x = r(rng, 2, 3, *(9, 8, 7)[:nd], grad=False)
    if name.startswith("lp"):
        x = x.abs() + 0.1
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last if nd == 2 else torch.channels_last_3d)
    x.requires_grad_()
    ours = lambda x: getattr(CF, name)(x, *args, **kw)  # noqa: E731
    _compare(ours, lambda x: getattr(F, name)(x, *args, **kw), (x,))
    y = ours(x)
    if channels_last:  # the NHWC kernels: channels-last in, channels-last out, no layout copy
        fmt = torch.channels_last if nd == 2 else torch.channels_last_3d
        assert y.is_contiguous(memory_format=fmt)
    torch.autograd.gradcheck(ours, (x,), fast_mode=True)


def test_pool_return_indices_and_modules(rng):
    x = r(rng, 2, 3, 8, 8)
    y, i = CF.max_pool2d(x, 2, return_indices=True)
    yt, it = F.max_pool2d(x, 2, return_indices=True)
    assert torch.equal(i, it) and torch.equal(y, yt)
    u = CF.max_unpool2d(y, i, 2)
    torch.testing.assert_close(u, F.max_unpool2d(yt, it, 2))
    torch.autograd.gradcheck(lambda y: CF.max_unpool2d(y, i, 2, output_size=(8, 8)), (y.detach().requires_grad_(),),
                             fast_mode=True)
    samples = torch.rand(2, 3, 2, dtype=D64)
    _compare(lambda x: CF.fractional_max_pool2d(x, 2, (5, 5), _random_samples=samples, return_indices=True),
             lambda x: F.fractional_max_pool2d(x, 2, (5, 5), _random_samples=samples, return_indices=True), (x,))
    nails = CF.bed_of_nails_unpool2d(x, (2, 3))
    ref = torch.zeros(2, 3, 16, 24, dtype=D64)
    ref[:, :, ::2, ::3] = x.detach()
    assert torch.equal(nails.detach(), ref)
    torch.autograd.gradcheck(lambda x: CF.bed_of_nails_unpool2d(x, 2), (x,), fast_mode=True)
    torch.testing.assert_close(CF.global_avg_pool2d(x), x.mean((2, 3), keepdim=True))
    for mode, kw in (("nearest", dict(scale_factor=(2.0, 1.5))), ("nearest-exact", dict(size=(11, 5)))):
        _compare(lambda x: CF.interpolate(x, mode=mode, **kw), lambda x: F.interpolate(x, mode=mode, **kw), (x,))


def _loss_ref(kind, a, b, reduction, eps=1e-7):
    """The IoU-family losses in plain torch ops, torchvision's formulas (CIoU's alpha without
    gradient, as torchvision computes it under no_grad)."""
    x1, y1, x2, y2 = a.unbind(-1)
    u1, v1, u2, v2 = b.unbind(-1)
    inter = (torch.min(x2, u2) - torch.max(x1, u1)).clamp(min=0) * (torch.min(y2, v2) - torch.max(y1, v1)).clamp(min=0)
    union = (x2 - x1) * (y2 - y1) + (u2 - u1) * (v2 - v1) - inter
    iou = inter / (union + eps)
    cw, ch = torch.max(x2, u2) - torch.min(x1, u1), torch.max(y2, v2) - torch.min(y1, v1)
    if kind == "giou":
        area = cw * ch
        loss = 1 - (iou - (area - union) / (area + eps))
    else:
        d2 = ((x1 + x2 - u1 - u2) / 2) ** 2 + ((y1 + y2 - v1 - v2) / 2) ** 2
        loss = 1 - iou + d2 / (cw ** 2 + ch ** 2 + eps)
        if kind == "ciou":
            v = (4 / torch.pi ** 2) * (torch.atan((u2 - u1) / (v2 - v1)) - torch.atan((x2 - x1) / (y2 - y1))) ** 2
            with torch.no_grad():
                alpha = v / (1 - iou + v + eps)
            loss = loss + alpha * v
    return loss if reduction == "none" else loss.mean() if reduction == "mean" else loss.sum()


@pytest.mark.parametrize("kind", ["giou", "diou", "ciou"])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_box_losses_match_torch_formulas(kind, reduction, rng):
    b1, b2 = boxes(rng, 7).requires_grad_(), boxes(rng, 7).requires_grad_()
    _compare(lambda a, b: getattr(CF, f"{kind}_loss")(a, b, reduction), lambda a, b: _loss_ref(kind, a, b, reduction),
             (b1, b2), rtol=1e-9)
    if kind != "ciou":  # CIoU's gradient treats alpha as a constant, so it is not the derivative
        torch.autograd.gradcheck(lambda a, b: getattr(CF, f"{kind}_loss")(a, b, reduction), (b1, b2))


# ---- double backward, errors ----

def test_double_backward_is_refused_clearly(rng):
    x, w = r(rng, 1, 2, 5, 5), r(rng, 3, 2, 3, 3)
    y = CF.conv2d(x, w)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="no second derivative"):
        g.sum().backward()


def test_bad_arguments_name_the_function(rng):
    x = r(rng, 1, 2, 5, 5)
    with pytest.raises(TypeError, match="cnnops.torch.conv2d: expected input as a torch.Tensor"):
        CF.conv2d(np.zeros((1, 2, 5, 5)), x)
    with pytest.raises(ValueError, match="cnnops.torch.max_pool2d: expected input with 4 dimensions"):
        CF.max_pool2d(x[0], 2)
    with pytest.raises(ValueError, match="conv2d"):
        CF.conv2d(x, r(rng, 3, 5, 3, 3))  # channel mismatch: cnnops' own message
    with pytest.raises(NotImplementedError, match="only mode 'nearest'"):
        CF.interpolate(x, scale_factor=2, mode="bilinear")
    x_before = x.detach().clone()
    CF.avg_pool2d(x, 2).sum().backward()
    assert torch.equal(x.detach(), x_before)


# ---- modules, state_dict, patch / unpatch ----

class Net(torch.nn.Module):
    """A small ResNet-style network with every patched module kind."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.MaxPool2d(3, 2, 1)
        self.block = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
                                         torch.nn.Conv2d(8, 8, 3, padding=1, groups=2))
        self.up = torch.nn.Upsample(scale_factor=2, mode="nearest")
        self.down = torch.nn.AvgPool2d(2)
        self.head_pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn(self.stem(x))))
        x = torch.relu(x + self.block(x))
        x = self.down(self.up(x))
        return self.fc(self.head_pool(x).flatten(1))


def test_modules_keep_torch_state_dict_and_arguments():
    conv = ct.nn.Conv2d(3, 4, 3, stride=2, padding="SAME", algo="direct")
    ref = torch.nn.Conv2d(3, 4, 3, stride=2)
    assert isinstance(conv, torch.nn.Conv2d) and conv.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(1, 3, 9, 9)
    assert conv(x).shape == (1, 4, 5, 5)  # TensorFlow's SAME for stride 2
    mp = ct.nn.MaxPool2d(3, 2, 1, return_indices=True)
    y, i = mp(x)
    assert torch.equal(i, F.max_pool2d(x, 3, 2, 1, return_indices=True)[1])
    assert repr(ct.nn.AvgPool2d(2)) == repr(torch.nn.AvgPool2d(2))


def test_patch_gives_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    model = Net().double()
    twin = Net().double()
    twin.load_state_dict(model.state_dict())
    report = ct.patch(model)
    swapped = {name for name, _ in report.swapped}
    assert {"stem", "pool", "block.0", "block.2", "up", "down", "head_pool"} <= swapped
    assert "patched" not in str(report)
    x = torch.randn(2, 3, 32, 32, dtype=D64)
    ya, yb = model(x), twin(x)
    torch.testing.assert_close(ya, yb, rtol=1e-10, atol=1e-10)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for (n, p), q in zip(model.named_parameters(), twin.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-10, msg=n)
    assert model.state_dict().keys() == twin.state_dict().keys()
    assert ct.unpatch(model) == len(report.swapped)
    assert type(model.stem) is torch.nn.Conv2d


def test_patch_reports_what_it_leaves():
    class MyConv(torch.nn.Conv2d):
        pass

    m = torch.nn.Sequential(MyConv(3, 3, 3), torch.nn.Conv2d(3, 3, 3).half(), torch.nn.Upsample(scale_factor=2,
                                                                                                mode="bilinear"))
    report = ct.patch(m)
    left = {name: why for name, _, why in report.left}
    assert "subclass" in left["0"] and "float16" in left["1"]
    assert [n for n, _ in report.swapped] == ["2"]  # bilinear goes on to PyTorch inside the cnnops class
    x = torch.randn(1, 3, 4, 4)
    torch.testing.assert_close(m[2](x), F.interpolate(x, scale_factor=2, mode="bilinear"))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        ct.patch("model")


# ---- torch.compile ----

def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    model = Net()
    ct.patch(model)
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), model(x))
    y = compiled(x).sum()
    y.backward()
    assert model.stem.weight.grad is not None


# ---- torchvision-compatible box ops ----

def test_box_ops_match_torchvision_semantics(rng):
    b, s = boxes(rng, 60, torch.float32), torch.rand(60)
    keep = ct.ops.nms(b, s, 0.5)
    assert keep.dtype == torch.int64 and torch.all(s[keep][:-1] >= s[keep][1:])
    iou = ct.ops.box_iou(b, b)
    assert torch.all(iou[keep][:, keep].triu(1) <= 0.5)
    idx = torch.randint(0, 4, (60,))
    kb = ct.ops.batched_nms(b, s, idx, 0.5)
    for c in range(4):
        m = (idx == c).nonzero().flatten()
        assert torch.equal(torch.sort(kb[idx[kb] == c]).values, torch.sort(m[ct.ops.nms(b[m], s[m], 0.5)]).values)
    for name in ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"):
        b1 = b[:10].clone().requires_grad_()
        loss = getattr(ct.ops, name)(b1, b[10:20], reduction="mean")
        loss.backward()
        assert b1.grad.shape == (10, 4)
    with pytest.raises(ValueError, match="reduction"):
        ct.ops.generalized_box_iou_loss(b, b, reduction="avg")


def test_box_ops_equal_torchvision():
    tv = pytest.importorskip("torchvision")
    g = torch.Generator().manual_seed(5)
    b = torch.rand(300, 4, generator=g) * 100
    b[:, 2:] += b[:, :2]
    s = torch.rand(300, generator=g)
    idx = torch.randint(0, 5, (300,), generator=g)
    assert torch.equal(ct.ops.nms(b, s, 0.5), tv.ops.nms(b, s, 0.5))
    assert torch.equal(ct.ops.batched_nms(b, s, idx, 0.5), tv.ops.batched_nms(b, s, idx, 0.5))
    for name in ("box_iou", "generalized_box_iou", "distance_box_iou", "complete_box_iou"):
        torch.testing.assert_close(getattr(ct.ops, name)(b[:50], b[50:90]), getattr(tv.ops, name)(b[:50], b[50:90]))
    for name in ("generalized_box_iou_loss", "distance_box_iou_loss", "complete_box_iou_loss"):
        b1 = b[:40].clone().requires_grad_()
        b2 = b1.detach().clone().requires_grad_()
        ours, theirs = getattr(ct.ops, name)(b1, b[40:80], "sum"), getattr(tv.ops, name)(b2, b[40:80], "sum")
        torch.testing.assert_close(ours, theirs)
        ours.backward()
        theirs.backward()
        torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-4, atol=1e-5)


def test_patched_torchvision_resnet18_matches():
    tv = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    model = tv.models.resnet18(num_classes=10).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=D64)
    ref = model(x)
    report = ct.patch(model)
    assert len(report.swapped) == 22 and not report.left  # 20 convolutions, the max and the adaptive pool
    torch.testing.assert_close(model(x), ref, rtol=1e-10, atol=1e-10)


# ---- DistributedDataParallel over two CPU processes ----

def _ddp_worker(rank, world, port, path):
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = Net().double()
    ct.patch(model)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(4, 3, 16, 16, generator=g, dtype=D64), torch.randint(0, 10, (4,), generator=g)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(ddp(x[2 * rank:2 * rank + 2]), t[2 * rank:2 * rank + 2]).backward()
        opt.step()
    if rank == 0:
        torch.save(model.state_dict(), path)
    dist.destroy_process_group()


@pytest.mark.skipif(sys.platform != "linux", reason="gloo over localhost on Linux")
def test_distributed_data_parallel_matches_single_process(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = str(tmp_path / "ddp.pt")
    mp.spawn(_ddp_worker, args=(2, port, path), nprocs=2, join=True)
    torch.manual_seed(0)
    model = Net().double()  # unpatched, one process, the whole batch: the mean of the two halves' gradients
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(4, 3, 16, 16, generator=g, dtype=D64), torch.randint(0, 10, (4,), generator=g)
    for _ in range(2):
        opt.zero_grad()
        loss = (F.cross_entropy(model(x[:2]), t[:2]) + F.cross_entropy(model(x[2:]), t[2:])) / 2
        loss.backward()
        opt.step()
    got = torch.load(path)
    for k, v in model.state_dict().items():
        if k.endswith("running_mean") or k.endswith("running_var") or k.endswith("num_batches_tracked"):
            continue  # DDP keeps rank 0's batch-norm statistics
        torch.testing.assert_close(got[k], v, rtol=1e-9, atol=1e-10, msg=k)


@pytest.mark.slow
def test_compile_with_inductor_matches_eager():
    torch.manual_seed(0)
    model = Net()
    ct.patch(model)
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)

"""cnnops.nn pooling layers over the pooling/unpooling kernels, box losses, and the model
builders: a whole LeNet-5 forward+backward against PyTorch with the same weights, finite
differences through the ResNet blocks, Inception, FCN and the YOLO loss, torchvision weights in
ResNet-18/VGG-11/AlexNet (when torchvision is installed), decode with NMS."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from cnnops import nn
from cnnops.nn import models
from reference import numerical_grad, rel_err
from test_nn_layers import fd_check, torch_check


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- pooling over kernels
POOLS = [
    (lambda: nn.MaxPool2d(3, 2, padding=1), "MaxPool2d", dict(kernel_size=3, stride=2, padding=1)),
    (lambda: nn.MaxPool2d(2, 1, dilation=2, ceil_mode=True), "MaxPool2d",
     dict(kernel_size=2, stride=1, dilation=2, ceil_mode=True)),
    (lambda: nn.AvgPool2d(3, 2, padding=1, count_include_pad=False), "AvgPool2d",
     dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    (lambda: nn.AvgPool2d((2, 3), ceil_mode=True, divisor_override=4), "AvgPool2d",
     dict(kernel_size=(2, 3), ceil_mode=True, divisor_override=4)),
    (lambda: nn.LPPool2d(2, 3, 2), "LPPool2d", dict(norm_type=2, kernel_size=3, stride=2)),
    (lambda: nn.AdaptiveAvgPool2d((3, 2)), "AdaptiveAvgPool2d", dict(output_size=(3, 2))),
    (lambda: nn.AdaptiveMaxPool2d((2, 3)), "AdaptiveMaxPool2d", dict(output_size=(2, 3))),
    (lambda: nn.Upsample(size=(9, 8)), "Upsample", dict(size=(9, 8))),
    (lambda: nn.Upsample(scale_factor=1.5), "Upsample", dict(scale_factor=1.5)),
]


@pytest.mark.parametrize("make,tname,kw", POOLS)
def test_pool_layers_fd_and_torch(make, tname, kw, rng):
    x = rng.standard_normal((2, 3, 7, 5))
    if tname == "LPPool2d":
        x = np.abs(x) + 0.1  # away from the kink of |x|^p at 0
    fd_check(make(), x, rng, params=False)
    torch = pytest.importorskip("torch")
    torch_check(make(), getattr(torch.nn, tname)(**kw), x, rng)


def test_maxpool_return_indices_and_unpool(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 6, 7))
    mp = nn.MaxPool2d(2, return_indices=True)
    y, idx = mp(x)
    ty, tidx = torch.nn.MaxPool2d(2, return_indices=True)(torch.from_numpy(x))
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    un = nn.MaxUnpool2d(2)
    u = un(y, idx, output_size=(6, 7))
    np.testing.assert_array_equal(u, torch.nn.MaxUnpool2d(2)(ty, tidx, output_size=(6, 7)).numpy())
    # unpool backward is a gather at the indices: check against finite differences in y
    G = rng.standard_normal(u.shape)
    g = un.backward(G)
    yy = y.copy()
    ng = numerical_grad(lambda: float((un(yy, idx, output_size=(6, 7)) * G).sum()), yy)
    assert rel_err(g, ng) < 1e-8
    # pooling + unpooling chained backward routes to the maxima
    gi = mp.backward(g)
    assert gi.shape == x.shape and np.count_nonzero(gi) <= y.size


def test_fractional_max_pool_fixed_samples(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 9, 8))
    samples = rng.random((2, 3, 2))
    m = nn.FractionalMaxPool2d(2, output_size=(5, 4), _random_samples=samples)
    fd_check(m, x, rng, params=False)
    tm = torch.nn.FractionalMaxPool2d(2, output_size=(5, 4), _random_samples=torch.from_numpy(samples))
    torch_check(nn.FractionalMaxPool2d(2, output_size=(5, 4), _random_samples=samples), tm, x, rng)
    # without samples: a fresh draw each call, the shape from output_ratio
    r = nn.FractionalMaxPool2d(2, output_ratio=0.5)
    assert r(x).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="give exactly one of output_size and output_ratio"):
        nn.FractionalMaxPool2d(2)


def test_fractional_max_pool3d_fd_and_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 2, 7, 6, 8))
    samples = rng.random((2, 2, 3))
    make = lambda: nn.FractionalMaxPool3d((2, 3, 2), output_size=(4, 3, 5), _random_samples=samples)
    fd_check(make(), x, rng, params=False)
    tm = torch.nn.FractionalMaxPool3d((2, 3, 2), output_size=(4, 3, 5), _random_samples=torch.from_numpy(samples))
    torch_check(make(), tm, x, rng)
    assert nn.FractionalMaxPool3d(2, output_ratio=0.5)(x).shape == (2, 2, 3, 3, 4)


def test_fractional_max_pool_tensorflow_options(rng):
    from reference import fractional_max_pool_tf_ref

    x = rng.standard_normal((2, 3, 11, 9))
    m = nn.FractionalMaxPool2d(pooling_ratio=1.44, pseudo_random=True, overlapping=True)
    nn.init.manual_seed(3)
    y = m(x)
    seqs = m.pooling_sequences
    assert y.shape == (2, 3, 7, 6) and [len(q) for q in seqs] == [8, 7]
    np.testing.assert_array_equal(y, fractional_max_pool_tf_ref(x, seqs, overlapping=True)[0])
    nn.init.manual_seed(3)
    np.testing.assert_array_equal(m(x), y)  # the sequences are drawn from cnnops.nn.init's generator
    draws = set()
    for _ in range(8):
        m(x)
        draws.add(tuple(np.concatenate(m.pooling_sequences)))
    assert len(draws) > 1  # and change from one forward to the next
    fixed = nn.FractionalMaxPool2d(_pooling_sequences=seqs, overlapping=True)
    fd_check(fixed, x, rng, params=False)
    np.testing.assert_array_equal(fixed(x), y)
    m3 = nn.FractionalMaxPool3d(pooling_ratio=(1.5, 1.2, 2.0))
    x3 = rng.standard_normal((1, 2, 7, 6, 9))
    y3 = m3(x3)
    assert y3.shape == (1, 2, 4, 5, 4) and len(m3.pooling_sequences) == 3
    np.testing.assert_array_equal(y3, fractional_max_pool_tf_ref(x3, m3.pooling_sequences, overlapping=False)[0])
    with pytest.raises(ValueError, match=r"FractionalMaxPool2d: expected kernel_size \(PyTorch's convention\) or "
                                         r"pooling_ratio \(TensorFlow's\), got neither"):
        nn.FractionalMaxPool2d()
    with pytest.raises(ValueError, match="FractionalMaxPool3d: expected either kernel_size .* got both"):
        nn.FractionalMaxPool3d(2, pooling_ratio=2.0)
    with pytest.raises(ValueError, match=r"FractionalMaxPool3d: expected input with 5 dimensions \(N, C, D, H, W\)"):
        m3(x)


def test_pool_layer_errors():
    with pytest.raises(ValueError, match=r"MaxPool2d: expected input with 4 dimensions \(N, C, H, W\), got 3"):
        nn.MaxPool2d(2)(np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="Upsample: only mode='nearest'"):
        nn.Upsample(scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError):  # the kernel's own check (window larger than the padded input)
        nn.MaxPool2d(5, 1)(np.zeros((1, 1, 3, 3), np.float32))


def _box_pairs(rng):
    xy = rng.uniform(0, 10, (6, 2))
    pred = np.concatenate([xy, xy + rng.uniform(1, 5, (6, 2))], axis=1)
    tgt = pred + rng.normal(0, 1.0, (6, 4))
    tgt[:, 2:] = np.maximum(tgt[:, 2:], tgt[:, :2] + 0.5)
    return pred, tgt


def test_box_ciou_loss_reductions(rng):
    # CIoU's kernel gradient holds alpha constant (as torchvision's autograd), so it is not the
    # finite-difference gradient; check the layer's reductions are consistent with each other
    pred, tgt = _box_pairs(rng)
    per = nn.BoxIoULoss("ciou", reduction="none")
    v = per(pred, tgt)
    g_none = per.backward(np.full(6, 1 / 6))
    mean = nn.BoxIoULoss("ciou", reduction="mean")
    assert abs(mean(pred, tgt) - v.mean()) < 1e-14
    np.testing.assert_allclose(mean.backward(), g_none, rtol=1e-12)


@pytest.mark.parametrize("kind", ["iou", "giou", "diou"])
def test_box_iou_loss(kind, rng):
    pred, tgt = _box_pairs(rng)
    loss = nn.BoxIoULoss(kind, reduction="sum")
    v = loss(pred, tgt)
    g = loss.backward(0.5)
    ng = numerical_grad(lambda: 0.5 * float(loss(pred, tgt)), pred)
    assert rel_err(g, ng) < 1e-5
    assert loss.grad_target.shape == (6, 4)
    with pytest.raises(ValueError, match="BoxIoULoss: expected kind one of"):
        nn.BoxIoULoss("xiou")
    assert np.ndim(v) == 0


# ----------------------------------------------------------------------------- LeNet-5 vs PyTorch
def torch_lenet(torch, input_size, activation, pool):
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]
    pl = {"max": torch.nn.MaxPool2d, "avg": torch.nn.AvgPool2d}[pool]
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2 if input_size == 28 else 0), act(), pl(2),
        torch.nn.Conv2d(6, 16, 5), act(), pl(2), torch.nn.Flatten(),
        torch.nn.Linear(400, 120), act(), torch.nn.Linear(120, 84), act(), torch.nn.Linear(84, 10))


@pytest.mark.parametrize("input_size,activation,pool", [(32, "relu", "max"), (28, "tanh", "avg"),
                                                        (28, "relu", "max")])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lenet5_forward_backward_matches_torch(input_size, activation, pool, dtype, rng, threads):
    torch = pytest.importorskip("torch")
    threads(2)
    m = models.lenet5(input_size=input_size, activation=activation, pool=pool, dtype=dtype, rng=rng)
    tm = torch_lenet(torch, input_size, activation, pool)
    tm = tm.double() if dtype == np.float64 else tm.float()
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    x = rng.standard_normal((13, 1, input_size, input_size)).astype(dtype)
    y = rng.integers(0, 10, 13)
    lf = nn.CrossEntropyLoss()
    loss = lf(m(x), y)
    m.zero_grad()
    gx = m.backward(lf.backward())
    xt = torch.from_numpy(x.copy()).requires_grad_()
    lt = torch.nn.functional.cross_entropy(tm(xt), torch.from_numpy(y))
    lt.backward()
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert abs(float(loss) - lt.item()) <= tol * abs(lt.item())
    assert rel_err(gx, xt.grad.numpy()) < tol
    tp = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        assert p.grad.dtype == dtype
        assert rel_err(p.grad, tp[name].grad.numpy()) < tol, name
    # and one SGD step with momentum lands where torch.optim's does
    opt = nn.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    opt.step()
    topt.step()
    for name, p in m.named_parameters():
        assert rel_err(p.data, tp[name].detach().numpy()) < tol, name


def test_lenet5_learns_a_small_problem(rng):
    # two classes of 28x28 blobs (left or right half bright): a few Adam steps must fit them
    n = 32
    x = rng.normal(0, 0.3, (n, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 2, n)
    x[y == 0, :, :, :14] += 1
    x[y == 1, :, :, 14:] += 1
    m = models.lenet5(num_classes=2, input_size=28, rng=np.random.default_rng(0))
    opt = nn.Adam(m.parameters(), lr=3e-3)
    lf = nn.CrossEntropyLoss()
    first = None
    for _ in range(20):
        loss = lf(m(x), y)
        first = loss if first is None else first
        opt.zero_grad()
        m.backward(lf.backward())
        opt.step()
    m.eval()
    assert float(loss) < 0.2 * float(first)
    assert (m(x).argmax(1) == y).mean() > 0.95


def test_builder_errors():
    with pytest.raises(ValueError, match="lenet5: expected input_size 28 or 32, got 30"):
        models.lenet5(input_size=30)
    with pytest.raises(ValueError, match="lenet5: expected activation"):
        models.lenet5(activation="gelu")
    with pytest.raises(ValueError, match="vgg: expected config one of"):
        models.vgg("vgg12")
    with pytest.raises(ValueError, match="mnist_cnn: expected input_size >= 1, got 0"):
        models.mnist_cnn(input_size=0)
    with pytest.raises(ValueError, match="mnist_cnn: expected init 'default' or 'tf', got 'he'"):
        models.mnist_cnn(init="he")
    with pytest.raises(ValueError, match="alexnet_paper: expected init 'default' or 'paper', got 'tf'"):
        models.alexnet_paper(init="tf")
    with pytest.raises(ValueError, match="FCN: expected input"):
        models.fcn()(np.zeros((1, 3, 12, 12), np.float32))


# ----------------------------------------------------------------------------- blocks and nets (FD)
def test_resnet_blocks_fd(rng):
    d = np.float64
    ds = nn.Sequential(nn.Conv2d(3, 4, 1, stride=2, bias=False, dtype=d, rng=rng), nn.BatchNorm2d(4, dtype=d))
    fd_check(models.BasicBlock(3, 4, stride=2, downsample=ds, dtype=d, rng=rng), rng.standard_normal((2, 3, 5, 5)),
             rng)
    fd_check(models.BasicBlock(3, 3, dtype=d, rng=rng), rng.standard_normal((2, 3, 4, 3)), rng)
    ds = nn.Sequential(nn.Conv2d(3, 8, 1, bias=False, dtype=d, rng=rng), nn.BatchNorm2d(8, dtype=d))
    fd_check(models.Bottleneck(3, 2, downsample=ds, dtype=d, rng=rng), rng.standard_normal((2, 3, 3, 4)), rng)


def test_inception_block_fd_and_shape(rng):
    blk = models.inception_block(3, 2, 2, 3, 1, 2, 2, dtype=np.float64, rng=rng)
    y, _ = fd_check(blk, rng.standard_normal((2, 3, 5, 4)), rng)
    assert y.shape == (2, 2 + 3 + 2 + 2, 5, 4)


def test_fcn_fd_and_shape(rng):
    m = models.fcn(num_classes=2, in_channels=1, width=2, dtype=np.float64, rng=rng)
    x = rng.standard_normal((1, 1, 8, 16))
    y = m(x)
    assert y.shape == (1, 2, 8, 16)
    # input gradient and a few parameters by finite differences (the whole set is slow)
    G = rng.standard_normal(y.shape)
    m.zero_grad()
    gx = m.backward(G)

    def f():
        return float((m(x) * G).sum())

    assert rel_err(gx, numerical_grad(f, x)) < 1e-6
    for p in (m.stage1[0].weight, m.score2.bias, m.up2.weight, m.up4.weight):
        assert rel_err(p.grad, numerical_grad(f, p.data)) < 1e-6


def test_bilinear_kernel_upsamples_constants():
    # interior of a bilinear 2x upsampling of a constant map stays that constant
    up = nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1, bias=False, dtype=np.float64)
    up.weight.data[...] = models.bilinear_kernel(1, 4, np.float64)
    y = up(np.full((1, 1, 5, 5), 3.0))
    np.testing.assert_allclose(y[0, 0, 1:-1, 1:-1], 3.0)


def test_yolo_loss_fd_and_decode(rng):
    m = models.yolo_tiny(num_classes=3, width=4, dtype=np.float64, rng=rng)
    head = m.head
    raw = rng.normal(0, 0.5, (2, head.num_anchors * 8, 4, 4))
    targets = [(np.array([[2.0, 3.0, 12.0, 14.0]]), np.array([1])),
               (np.array([[10.0, 9.0, 30.0, 20.0], [17.0, 1.0, 22.0, 6.0]]), np.array([0, 2]))]
    lf = models.YOLOLoss(head)
    lf(raw, targets)
    assert set(lf.parts) == {"obj", "box", "cls"}
    g = lf.backward(0.8)
    ng = numerical_grad(lambda: 0.8 * float(lf(raw, targets)), raw)
    assert rel_err(g, ng) < 1e-6
    # decode: a confident box in one cell comes back as that box, duplicates suppressed
    raw = np.full((1, head.num_anchors * 8, 4, 4), -10.0)
    p = head.split(raw)
    aw, ah = head.anchors[0]
    for cell in ((1, 2), (1, 2)):
        p[0, 0, cell[0], cell[1], :4] = [0.0, 0.0, np.log(20 / aw), np.log(10 / ah)]
        p[0, 0, cell[0], cell[1], 4] = 10.0
        p[0, 0, cell[0], cell[1], 5 + 2] = 5.0
    # a near-duplicate in the neighbouring anchor, lower score
    p[0, 1, 1, 2, :5] = [0.1, 0.0, np.log(20 / head.anchors[1, 0]), np.log(10 / head.anchors[1, 1]), 3.0]
    p[0, 1, 1, 2, 5 + 2] = 5.0
    dets = head.decode(raw, score_threshold=0.5, iou_threshold=0.5)
    boxes, scores, labels = dets[0]
    assert len(boxes) == 1 and labels[0] == 2
    np.testing.assert_allclose(boxes[0], [20 - 10, 12 - 5, 20 + 10, 12 + 5], atol=1e-6)
    assert scores[0] > 0.9
    assert models.YOLOLoss(head).assign([(np.zeros((0, 4)), np.zeros(0))], raw.shape)[0].shape == (0, 4)


def test_yolo_training_reduces_loss(rng):
    m = models.yolo_tiny(num_classes=1, width=4, rng=np.random.default_rng(0))
    lf = models.YOLOLoss(m.head)
    x = rng.normal(0, 0.1, (4, 1, 32, 32)).astype(np.float32)
    targets = []
    for i in range(4):
        x0, y0 = rng.integers(0, 16, 2)
        x[i, 0, y0:y0 + 12, x0:x0 + 12] += 1
        targets.append((np.array([[x0, y0, x0 + 12, y0 + 12]], np.float64), np.array([0])))
    opt = nn.Adam(m.parameters(), lr=5e-3)
    losses = []
    for _ in range(25):
        losses.append(lf(m(x), targets))
        opt.zero_grad()
        m.backward(lf.backward())
        opt.step()
    assert losses[-1] < 0.5 * losses[0]


# ----------------------------------------------------------------------------- GoogLeNet, the paper's AlexNet, TF MNIST
def torch_googlenet(t, num_classes, aux, five=False):
    """GoogLeNet written out in torch with torchvision's module names (BasicConv2d = conv without
    bias + BatchNorm(eps 0.001) + ReLU; the "5x5" branch 3x3 unless five)."""
    class BasicConv2d(t.nn.Module):
        def __init__(self, cin, cout, **kw):
            super().__init__()
            self.conv = t.nn.Conv2d(cin, cout, bias=False, **kw)
            self.bn = t.nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return t.relu(self.bn(self.conv(x)))

    class Inception(t.nn.Module):
        def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
            super().__init__()
            k = 5 if five else 3
            self.branch1 = BasicConv2d(cin, c1, kernel_size=1)
            self.branch2 = t.nn.Sequential(BasicConv2d(cin, c3r, kernel_size=1),
                                           BasicConv2d(c3r, c3, kernel_size=3, padding=1))
            self.branch3 = t.nn.Sequential(BasicConv2d(cin, c5r, kernel_size=1),
                                           BasicConv2d(c5r, c5, kernel_size=k, padding=k // 2))
            self.branch4 = t.nn.Sequential(t.nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv2d(cin, pp, kernel_size=1))

        def forward(self, x):
            return t.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)

    class Aux(t.nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.conv = BasicConv2d(cin, 128, kernel_size=1)
            self.fc1 = t.nn.Linear(2048, 1024)
            self.fc2 = t.nn.Linear(1024, num_classes)

        def forward(self, x):
            x = self.conv(t.nn.functional.adaptive_avg_pool2d(x, (4, 4))).flatten(1)
            return self.fc2(t.relu(self.fc1(x)))

    class Net(t.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
            self.maxpool1 = t.nn.MaxPool2d(3, 2, ceil_mode=True)
            self.conv2 = BasicConv2d(64, 64, kernel_size=1)
            self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
            self.maxpool2 = t.nn.MaxPool2d(3, 2, ceil_mode=True)
            self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
            self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
            self.maxpool3 = t.nn.MaxPool2d(3, 2, ceil_mode=True)
            self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
            self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
            self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
            self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
            self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
            self.maxpool4 = t.nn.MaxPool2d(2, 2, ceil_mode=True)
            self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
            self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
            if aux:
                self.aux1, self.aux2 = Aux(512), Aux(528)
            self.fc = t.nn.Linear(1024, num_classes)

        def forward(self, x):
            for name in ("conv1", "maxpool1", "conv2", "conv3", "maxpool2", "inception3a", "inception3b", "maxpool3",
                         "inception4a"):
                x = getattr(self, name)(x)
            a1 = self.aux1(x) if aux and self.training else None
            x = self.inception4d(self.inception4c(self.inception4b(x)))
            a2 = self.aux2(x) if aux and self.training else None
            x = self.inception5b(self.inception5a(self.maxpool4(self.inception4e(x))))
            x = self.fc(t.flatten(t.nn.functional.adaptive_avg_pool2d(x, 1), 1))
            return (x, a2, a1) if aux and self.training else x

    return Net()


def test_googlenet_parameter_counts():
    assert models.googlenet().num_parameters() == 6_624_904  # torchvision's documented count
    assert models.googlenet(aux_logits=True).num_parameters() == 13_004_888


def test_googlenet_matches_torch(rng):
    torch = pytest.importorskip("torch")
    m = models.googlenet(num_classes=7, aux_logits=True, dropout=0.0, dropout_aux=0.0, dtype=np.float64, rng=rng)
    tm = torch_googlenet(torch, 7, aux=True).double()
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})  # strict: the same names
    x = rng.standard_normal((2, 3, 35, 35))
    for training in (True, False):
        m.train(training)
        tm.train(training)
        xt = torch.from_numpy(x.copy()).requires_grad_()
        yt = tm(xt)
        y = m(x)
        outs, touts = (y, yt) if training else ((y,), (yt,))
        assert len(outs) == len(touts) == (3 if training else 1)
        grads = tuple(rng.standard_normal(o.shape) for o in outs)
        torch.autograd.backward(touts, [torch.from_numpy(g) for g in grads])
        for o, to in zip(outs, touts):
            assert rel_err(o, to.detach().numpy()) < 1e-10
        m.zero_grad()
        gx = m.backward(grads if training else grads[0])
        assert rel_err(gx, xt.grad.numpy()) < 1e-9
        tp = dict(tm.named_parameters())
        for name in ("conv1.conv.weight", "inception4a.branch3.1.bn.weight", "aux1.fc1.weight", "aux2.conv.conv.weight",
                     "fc.bias"):
            p = dict(m.named_parameters())[name]
            if training or not name.startswith("aux"):
                assert rel_err(p.grad, tp[name].grad.numpy()) < 1e-9, name
        tm.zero_grad()
    with pytest.raises(TypeError, match="GoogLeNet.backward: expected \\(grad_logits, grad_aux2, grad_aux1\\)"):
        m.train()
        m(x)
        m.backward(np.ones((2, 7)))
    with pytest.raises(ValueError, match="GoogLeNet: expected input .* H, W >= 31"):
        m(x[:, :, :30, :30])


def test_googlenet_five_by_five_branch():
    m = models.googlenet(five_by_five=True)
    assert m.inception3a.branch3[1].conv.kernel_size == (5, 5)
    # each "5x5" branch holds 16/9 times the 3x3 weights: 6,624,904 + 7/9 of the 3x3 ones
    extra = sum(w[4] * w[5] * 16 for w in models.GOOGLENET_BLOCKS.values())
    assert m.num_parameters() == 6_624_904 + extra


def test_alexnet_paper_matches_torch(rng):
    torch = pytest.importorskip("torch")
    m = models.alexnet_paper(num_classes=5, hidden=32, dtype=np.float64, rng=rng).eval()
    t = torch.nn
    tm = t.Sequential(OrderedDict(features=t.Sequential(
        t.Conv2d(3, 96, 11, 4), t.ReLU(), t.LocalResponseNorm(5, 5e-4, 0.75, 2.0), t.MaxPool2d(3, 2),
        t.Conv2d(96, 256, 5, padding=2, groups=2), t.ReLU(), t.LocalResponseNorm(5, 5e-4, 0.75, 2.0),
        t.MaxPool2d(3, 2), t.Conv2d(256, 384, 3, padding=1), t.ReLU(), t.Conv2d(384, 384, 3, padding=1, groups=2),
        t.ReLU(), t.Conv2d(384, 256, 3, padding=1, groups=2), t.ReLU(), t.MaxPool2d(3, 2)),
        avgpool=t.AdaptiveAvgPool2d(6), flatten=t.Flatten(), classifier=t.Sequential(
        t.Linear(9216, 32), t.ReLU(), t.Dropout(), t.Linear(32, 32), t.ReLU(), t.Dropout(),
        t.Linear(32, 5)))).double().eval()
    torch_check(m, tm, rng.standard_normal((1, 3, 67, 67)), rng, tol=1e-9)


def test_alexnet_paper_layout_normalisation_and_init(rng):
    m = models.alexnet_paper(num_classes=5, hidden=32, dtype=np.float64, rng=rng)
    # the response normalisation is the paper's formula b = a / (2 + 1e-4 * sum of 5 squares)^0.75
    a = rng.standard_normal((1, 7, 2, 2)) * 30
    sq = np.pad(a * a, ((0, 0), (2, 2), (0, 0), (0, 0)))
    want = a / (2 + 1e-4 * sum(sq[:, j:j + 7] for j in range(5))) ** 0.75
    np.testing.assert_allclose(m.features[2](a), want, rtol=1e-12)
    p = models.alexnet_paper(init="paper", rng=rng)
    assert p.num_parameters() == 60_965_224  # the two-GPU network's count
    shapes = {r.name: r.output_shape for r in nn.summary(p, (3, 227, 227)).layers}
    assert [shapes[f"features.{i}"] for i in (0, 3, 7, 14)] == [(1, 96, 55, 55), (1, 96, 27, 27), (1, 256, 13, 13),
                                                                (1, 256, 6, 6)]
    assert shapes["classifier.6"] == (1, 1000)
    convs = [l for l in p.modules() if isinstance(l, (nn.Conv2d, nn.Linear))]
    assert [float(l.bias.data[0]) for l in convs] == [0, 1, 0, 1, 1, 1, 1, 0]
    assert abs(float(convs[5].weight.data.std()) - 0.01) < 1e-4


def test_mnist_cnn_count_and_tensorflow_init(rng):
    assert models.mnist_cnn().num_parameters() == 3_274_634  # 7*7*64*1024 + ... as in the tutorial
    tf = models.mnist_cnn(init="tf", rng=rng)
    w = tf[7].weight.data
    assert np.all(np.abs(w) <= 0.2) and abs(float(w.std()) - 0.0880) < 0.001  # N(0, 0.1) truncated at 2 std
    assert all(np.all(l.bias.data == np.float32(0.1)) for l in tf if isinstance(l, (nn.Conv2d, nn.Linear)))


def test_mnist_cnn_is_the_tensorflow_tutorial_network(rng):
    torch = pytest.importorskip("torch")
    t = torch.nn
    for size, pool in ((28, lambda: t.MaxPool2d(2)), (30, lambda: t.MaxPool2d(2, ceil_mode=True))):
        # TF's SAME 2x2/2 pooling = ceil(n / 2) outputs, the odd last window cut by the border
        m = models.mnist_cnn(input_size=size, dtype=np.float64, rng=rng).eval()
        s = -(-(-(-size // 2)) // 2)
        tm = t.Sequential(t.Conv2d(1, 32, 5, padding="same"), t.ReLU(), pool(), t.Conv2d(32, 64, 5, padding="same"),
                          t.ReLU(), pool(), t.Flatten(), t.Linear(64 * s * s, 1024), t.ReLU(), t.Dropout(),
                          t.Linear(1024, 10)).double().eval()
        torch_check(m, tm, rng.standard_normal((2, 1, size, size)), rng, tol=1e-9)


# ----------------------------------------------------------------------------- big builders
def test_resnet_and_vgg_alexnet_shapes_and_backward(rng, threads):
    threads(2)
    for m, shape in ((models.resnet18(num_classes=7), (2, 3, 32, 32)),
                     (models.resnet50(num_classes=7, small_input=True), (2, 3, 8, 8)),
                     (models.vgg11(num_classes=7, hidden=16, batch_norm=True), (2, 3, 32, 32)),
                     (models.alexnet(num_classes=7, hidden=16, lrn=True), (1, 3, 63, 63)),
                     (models.inception_net(), (2, 1, 16, 16)),
                     (models.mnist_cnn(), (2, 1, 28, 28))):
        x = rng.standard_normal(shape).astype(np.float32)
        y = m(x)
        assert y.shape == (shape[0], 7 if y.shape[1] == 7 else 10) and np.isfinite(y).all()
        g = m.backward(np.ones_like(y))
        assert g.shape == x.shape and np.isfinite(g).all()
        assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())
    assert models.resnet34().num_parameters() == 21797672  # torchvision's count


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "vgg11", "alexnet"])
def test_torchvision_weights_give_the_same_outputs(name, rng, threads):
    torchvision = pytest.importorskip("torchvision")
    torch = pytest.importorskip("torch")
    threads(2)
    torch.manual_seed(0)
    tm = getattr(torchvision.models, name)(num_classes=5).double().eval()
    kw = {"num_classes": 5, "dtype": np.float64}
    m = getattr(models, name)(**kw).eval()
    m.load_state_dict(tm.state_dict())
    size = 64 if name == "alexnet" else 32
    x = rng.standard_normal((2, 3, size, size))
    xt = torch.from_numpy(x.copy()).requires_grad_()
    yt = tm(xt)
    y = m(x)
    assert rel_err(y, yt.detach().numpy()) < 1e-10
    G = rng.standard_normal(y.shape)
    yt.backward(torch.from_numpy(G))
    assert rel_err(m.backward(G), xt.grad.numpy()) < 1e-10

"""cnnops.nn.summary and cnnops.nn.flops: multiply-adds of every layer type against
torch.utils.flop_counter (2 FLOPs per multiply-add) on torch modules of the same configuration,
whole networks against torch models written out here independently (built on the meta device:
shapes only, no arithmetic) and against the totals of torchvision's model table, the Inception
bottleneck arithmetic of the lecture notes, the table's rows and totals, what summary restores,
bad input, and ``python -m cnnops summary``."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from cnnops import nn
from cnnops.__main__ import main
from cnnops.nn import models

pytestmark = pytest.mark.usefixtures("one_thread")


def torch_flops(make, input_shape):
    """FLOPs torch.utils.flop_counter counts for one forward of the module make(torch) on an
    input of input_shape (meta tensors)."""
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode

    tm = make(torch).to("meta").eval()
    with FlopCounterMode(display=False) as fc:
        tm(torch.empty(input_shape, device="meta"))
    return fc.get_total_flops()


# cnnops layer, the torch module of the same configuration, input shape (with the batch)
LAYERS = [
    (lambda: nn.Conv1d(3, 6, 3, stride=2, padding=1, groups=3), lambda t: t.nn.Conv1d(3, 6, 3, 2, 1, groups=3),
     (2, 3, 11)),
    (lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), dilation=(1, 2), groups=2, bias=False),
     lambda t: t.nn.Conv2d(4, 6, (3, 2), (2, 1), dilation=(1, 2), groups=2, bias=False), (3, 4, 9, 8)),
    (lambda: nn.Conv2d(3, 5, 3, padding="same"), lambda t: t.nn.Conv2d(3, 5, 3, padding="same"), (1, 3, 7, 6)),
    (lambda: nn.Conv3d(2, 4, (2, 3, 2), padding=(1, 1, 0)), lambda t: t.nn.Conv3d(2, 4, (2, 3, 2), padding=(1, 1, 0)),
     (2, 2, 4, 5, 3)),
    (lambda: nn.ConvTranspose1d(4, 6, 3, stride=2, groups=2), lambda t: t.nn.ConvTranspose1d(4, 6, 3, 2, groups=2),
     (2, 4, 7)),
    (lambda: nn.ConvTranspose2d(3, 4, 4, stride=2, padding=1, output_padding=1),
     lambda t: t.nn.ConvTranspose2d(3, 4, 4, 2, 1, output_padding=1), (2, 3, 5, 6)),
    (lambda: nn.ConvTranspose3d(2, 3, 2, stride=2, dilation=2),
     lambda t: t.nn.ConvTranspose3d(2, 3, 2, 2, dilation=2), (1, 2, 3, 4, 3)),
    (lambda: nn.Linear(7, 5), lambda t: t.nn.Linear(7, 5), (2, 3, 7)),
    (lambda: nn.Linear(7, 5, bias=False, drop_connect=0.3), lambda t: t.nn.Linear(7, 5, bias=False), (4, 7)),
    (lambda: nn.MaxPool2d(3, 2, padding=1), lambda t: t.nn.MaxPool2d(3, 2, 1), (2, 3, 9, 8)),
    (lambda: nn.AvgPool2d(2), lambda t: t.nn.AvgPool2d(2), (2, 3, 8, 8)),
    (lambda: nn.AdaptiveAvgPool2d((3, 2)), lambda t: t.nn.AdaptiveAvgPool2d((3, 2)), (2, 3, 7, 5)),
    (lambda: nn.BatchNorm2d(3), lambda t: t.nn.BatchNorm2d(3), (2, 3, 4, 4)),
    (lambda: nn.LocalResponseNorm(5), lambda t: t.nn.LocalResponseNorm(5), (2, 6, 4, 4)),
    (lambda: nn.ReLU(), lambda t: t.nn.ReLU(), (2, 3, 4)),
    (lambda: nn.GELU(), lambda t: t.nn.GELU(), (2, 3, 4)),
    (lambda: nn.Softplus(), lambda t: t.nn.Softplus(), (2, 3, 4)),
    (lambda: nn.ELU(), lambda t: t.nn.ELU(), (2, 3, 4)),
    (lambda: nn.Softmax(), lambda t: t.nn.Softmax(1), (2, 5)),
    (lambda: nn.Upsample(scale_factor=2), lambda t: t.nn.Upsample(scale_factor=2), (1, 2, 3, 3)),
    (lambda: nn.Flatten(), lambda t: t.nn.Flatten(), (2, 3, 2, 2)),
]


@pytest.mark.parametrize("make,make_torch,shape", LAYERS)
def test_layer_multiply_adds_match_torch_flop_counter(make, make_torch, shape):
    macs = nn.flops(make().astype(np.float64), shape[1:], batch_size=shape[0])
    assert 2 * macs == torch_flops(make_torch, shape)


def test_locally_connected_counts_as_the_convolution_of_its_shape():
    lc = nn.LocallyConnected2d(3, 4, (9, 8), 3, stride=2, padding=1)
    conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
    assert nn.flops(lc, (3, 9, 8), batch_size=2) == nn.flops(conv, (3, 9, 8), batch_size=2) == 2 * 4 * 5 * 4 * 27


def test_inception_bottleneck_of_the_notes():
    """A 5x5 convolution from 28x28x192 to 32 channels: 120.4 M multiply-adds; through a 1x1
    bottleneck of 16 channels first: 12.4 M."""
    direct = nn.Conv2d(192, 32, 5, padding=2)
    bottleneck = nn.Sequential(nn.Conv2d(192, 16, 1), nn.Conv2d(16, 32, 5, padding=2))
    assert nn.flops(direct, (192, 28, 28)) == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    assert nn.flops(bottleneck, (192, 28, 28)) == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16 == 12_443_648


# ----------------------------------------------------------------------------- whole networks
def torch_alexnet(t):
    return t.nn.Sequential(
        t.nn.Conv2d(3, 64, 11, 4, 2), t.nn.ReLU(), t.nn.MaxPool2d(3, 2), t.nn.Conv2d(64, 192, 5, padding=2),
        t.nn.ReLU(), t.nn.MaxPool2d(3, 2), t.nn.Conv2d(192, 384, 3, padding=1), t.nn.ReLU(),
        t.nn.Conv2d(384, 256, 3, padding=1), t.nn.ReLU(), t.nn.Conv2d(256, 256, 3, padding=1), t.nn.ReLU(),
        t.nn.MaxPool2d(3, 2), t.nn.AdaptiveAvgPool2d(6), t.nn.Flatten(), t.nn.Linear(9216, 4096), t.nn.ReLU(),
        t.nn.Linear(4096, 4096), t.nn.ReLU(), t.nn.Linear(4096, 1000))


def torch_vgg16(t):
    layers, c = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(t.nn.MaxPool2d(2))
        else:
            layers += [t.nn.Conv2d(c, v, 3, padding=1), t.nn.ReLU()]
            c = v
    return t.nn.Sequential(*layers, t.nn.AdaptiveAvgPool2d(7), t.nn.Flatten(), t.nn.Linear(25088, 4096),
                           t.nn.ReLU(), t.nn.Linear(4096, 4096), t.nn.ReLU(), t.nn.Linear(4096, 1000))


def torch_resnet50(t):
    class Bottleneck(t.nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            cout = 4 * planes
            self.body = t.nn.Sequential(
                t.nn.Conv2d(cin, planes, 1, bias=False), t.nn.BatchNorm2d(planes), t.nn.ReLU(),
                t.nn.Conv2d(planes, planes, 3, stride, 1, bias=False), t.nn.BatchNorm2d(planes), t.nn.ReLU(),
                t.nn.Conv2d(planes, cout, 1, bias=False), t.nn.BatchNorm2d(cout))
            self.short = (t.nn.Sequential(t.nn.Conv2d(cin, cout, 1, stride, bias=False), t.nn.BatchNorm2d(cout))
                          if stride != 1 or cin != cout else t.nn.Identity())

        def forward(self, x):
            return t.relu(self.body(x) + self.short(x))

    layers, cin = [t.nn.Conv2d(3, 64, 7, 2, 3, bias=False), t.nn.BatchNorm2d(64), t.nn.ReLU(),
                   t.nn.MaxPool2d(3, 2, 1)], 64
    for planes, n, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(n):
            layers.append(Bottleneck(cin, planes, stride if i == 0 else 1))
            cin = 4 * planes
    return t.nn.Sequential(*layers, t.nn.AdaptiveAvgPool2d(1), t.nn.Flatten(), t.nn.Linear(2048, 1000))


# builder, torch model, torchvision's table in GMAC (its "GFLOPS" column), and its parameter count
NETWORKS = [
    ("alexnet", torch_alexnet, 0.714, 61_100_840),
    ("vgg16", torch_vgg16, 15.47, 138_357_544),
    ("resnet50", torch_resnet50, 4.09, 25_557_032),
]


@pytest.mark.parametrize("name,make_torch,gmacs,params", NETWORKS)
def test_imagenet_networks_at_224(name, make_torch, gmacs, params):
    s = nn.summary(getattr(models, name)(rng=0), (3, 224, 224))
    assert s.total_params == params and s.output_shape == (1, 1000)
    assert round(s.total_macs / 1e9, len(str(gmacs).split(".")[1])) == gmacs
    assert 2 * s.total_macs == torch_flops(make_torch, (1, 3, 224, 224))


def test_googlenet_multiply_adds_are_torchvisions():
    # torchvision's table: GoogLeNet 1.50 GFLOPS (multiply-adds), 6,624,904 parameters
    s = nn.summary(models.googlenet(rng=0), (3, 224, 224))
    assert round(s.total_macs / 1e9, 2) == 1.50 and s.total_params == 6_624_904


# ----------------------------------------------------------------------------- the table
def small_net(rng):
    return nn.Sequential(OrderedDict(
        conv=nn.Conv2d(1, 4, 3, padding=1, rng=rng), relu=nn.ReLU(),
        pool=nn.MaxPool2d(2), flat=nn.Flatten(),
        head=nn.Sequential(nn.Linear(4 * 4 * 4, 6, rng=rng), nn.ReLU(), nn.Linear(6, 3, rng=rng))))


def test_rows_totals_and_frozen_parameters(rng):
    net = small_net(rng)
    net.conv.freeze()
    net.head[2].bias.requires_grad = False
    s = nn.summary(net, (1, 8, 8), batch_size=5)
    got = [(r.name, r.type, r.output_shape, r.params, r.trainable, r.macs) for r in s.layers]
    assert got == [
        ("conv", "Conv2d", (5, 4, 8, 8), 40, 0, 5 * 4 * 64 * 9),
        ("relu", "ReLU", (5, 4, 8, 8), 0, 0, 0),
        ("pool", "MaxPool2d", (5, 4, 4, 4), 0, 0, 0),
        ("flat", "Flatten", (5, 64), 0, 0, 0),
        ("head.0", "Linear", (5, 6), 390, 390, 5 * 64 * 6),
        ("head.1", "ReLU", (5, 6), 0, 0, 0),
        ("head.2", "Linear", (5, 3), 21, 18, 5 * 6 * 3),
    ]
    assert (s.total_params, s.trainable_params, s.frozen_params) == (451, 408, 43)
    assert s.trainable_params == sum(p.data.size for p in net.parameters(trainable_only=True))
    assert s.total_macs == 5 * (4 * 64 * 9 + 64 * 6 + 6 * 3)
    text = str(s)
    for line in ("conv    Conv2d     (5, 4, 8, 8)      40  frozen", "head.2  Linear     (5, 3)            21  partly",
                 "parameters:         451 ", "  frozen:           43", "multiply-adds:      13,530 "):
        assert line in text, line
    by_block = nn.summary(net, (1, 8, 8), batch_size=5, depth=0)
    assert [(r.name, r.params, r.macs) for r in by_block.layers] == [("Sequential", 451, s.total_macs)]
    head = nn.summary(net, (1, 8, 8), batch_size=5, depth=1).layers[-1]
    assert (head.name, head.type, head.output_shape, head.params, head.trainable) == ("head", "Sequential", (5, 3),
                                                                                      411, 408)


def test_shared_layers_and_modules_not_called(rng):
    lin = nn.Linear(4, 4, rng=rng)
    shared = nn.Sequential(lin, nn.ReLU(), lin)  # one module called twice: both calls counted, parameters once
    s = nn.summary(shared, (4,), batch_size=3)
    assert [(r.name, r.calls, r.params, r.macs) for r in s.layers] == [("0", 2, 20, 2 * 3 * 16), ("1", 1, 0, 0)]
    assert "Linear x2" in str(s)
    g = nn.summary(models.googlenet(num_classes=5, aux_logits=True, rng=rng), (3, 32, 32))
    aux = [r for r in g.layers if r.name.startswith("aux")]
    assert aux and all(r.output_shape is None and r.macs == 0 for r in aux)
    assert g.layers[-1].name == "aux2.fc2" and "(not run)" in str(g)
    assert g.total_params == models.googlenet(num_classes=5, aux_logits=True).num_parameters()


def test_summary_restores_modes_forward_and_the_generator(rng):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, rng=rng), nn.BatchNorm2d(2), nn.Dropout(0.5),
                        nn.FractionalMaxPool2d(2, output_ratio=0.5))
    net.train()
    net[1].eval()
    before = nn.init.get_rng().bit_generator.state
    mean = net[1].running_mean.copy()
    nn.summary(net, (1, 9, 9))
    assert net.training and not net[1].training and net[2].training
    assert all("forward" not in m.__dict__ for m in net.modules())
    assert nn.init.get_rng().bit_generator.state == before
    np.testing.assert_array_equal(net[1].running_mean, mean)  # eval mode: no statistics update


def test_summary_bad_input(rng):
    net = small_net(rng)
    with pytest.raises(TypeError, match="summary: expected a cnnops.nn Module, got list"):
        nn.summary([net], (1, 8, 8))
    for bad in ((1, 0, 8), (), "1,8,8", (1.0, 8, 8), (True, 8, 8)):
        with pytest.raises(ValueError, match=r"summary: expected input_shape as positive integers"):
            nn.summary(net, bad)
    with pytest.raises(ValueError, match="summary: expected batch_size >= 1, got 0"):
        nn.summary(net, (1, 8, 8), batch_size=0)
    with pytest.raises(ValueError, match="summary: expected depth None or >= 0, got -1"):
        nn.summary(net, (1, 8, 8), depth=-1)
    with pytest.raises(TypeError, match="summary: expected dtype float32 or float64, got int32"):
        nn.summary(net, (1, 8, 8), dtype=np.int32)
    with pytest.raises(ValueError, match=r"summary: the forward pass of Sequential on an input of shape "
                                         r"\(1, 3, 8, 8\) failed: ValueError: conv2d: "):
        nn.summary(net, (3, 8, 8))
    assert all("forward" not in m.__dict__ for m in net.modules())


# ----------------------------------------------------------------------------- command line
def test_cli_summary(capsys):
    assert main(["summary", "--model", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "Sequential: input (1, 1, 32, 32) float32" in out
    assert "parameters:         61,706 " in out  # LeNet-5's classic count
    assert f"multiply-adds:      {nn.flops(models.lenet5(), (1, 32, 32)):,} " in out
    assert main(["summary", "--model", "mnist_cnn", "--input", "1x30x30", "--num-classes", "4", "--depth", "0"]) == 0
    out = capsys.readouterr().out
    assert "(1, 4)" in out and "Sequential  Sequential" in out


@pytest.mark.parametrize("argv,message", [
    (["--input", "3,x"], "argument --input: expected C,H,W positive integers, got '3,x'"),
    (["--input", "3,32"], "argument --input: expected C,H,W positive integers, got '3,32'"),
    (["--batch-size", "0"], "argument --batch-size: expected >= 1, got 0"),
    (["--num-classes", "0"], "argument --num-classes: expected >= 1, got 0"),
    (["--depth", "-2"], "argument --depth: expected >= 0, got -2"),
    (["--input", "1,28,30"], "argument --input: lenet5 takes square images, got 28x30"),
    (["--input", "1,30,30"], "cnnops summary: lenet5: expected input_size 28 or 32, got 30"),
    (["--model", "inception_net", "--input", "1,2,2"],
     "cnnops summary: summary: the forward pass of Sequential on an input of shape (1, 1, 2, 2) failed"),
])
def test_cli_summary_errors(argv, message, capsys):
    assert main(["summary", "--model", "lenet5"] + argv) == 2
    assert message in capsys.readouterr().err

"""Model builders: the classic CNNs as cnnops.nn modules.

Every builder takes ``dtype`` (float32 default) and ``rng`` (a Generator or seed for the initial
weights; default cnnops.nn.init's generator). Module names follow torchvision where it has the
model (``features``/``classifier``, ``conv1``/``bn1``/``layer1``...), so its state_dicts map
closely."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .activation import Dropout, LeakyReLU, ReLU, Tanh, sigmoid, softmax
from .containers import Concat, Sequential
from .conv import Conv2d, ConvTranspose2d
from .linear import Flatten, Linear
from .loss import BCEWithLogitsLoss, BoxIoULoss, CrossEntropyLoss
from .module import Module, check_dtype, saved
from .norm import BatchNorm2d, LocalResponseNorm
from .pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d


def _act(cls):
    # ReLU right after a conv/linear output may overwrite it: nothing else reads that array
    return cls(inplace=True) if cls is ReLU else cls()


def lenet5(num_classes=10, in_channels=1, input_size=32, activation="relu", pool="max", dtype=np.float32,
           rng=None):
    """LeNet-5 (LeCun et al. 1998) for (N, in_channels, 32, 32) inputs, or 28x28 (``input_size=28``:
    the first convolution pads by 2): conv5x5-6, act, pool2, conv5x5-16, act, pool2, flatten,
    fc120, act, fc84, act, fc(num_classes). ``activation`` "relu" or "tanh"; ``pool`` "max" or
    "avg" (the original subsampling). Returns a Sequential (indices 0..11 as the equivalent
    torch.nn.Sequential)."""
    if input_size not in (28, 32):
        raise ValueError(f"lenet5: expected input_size 28 or 32, got {input_size}")
    act = {"relu": ReLU, "tanh": Tanh}.get(activation)
    if act is None:
        raise ValueError(f"lenet5: expected activation 'relu' or 'tanh', got {activation!r}")
    pl = {"max": MaxPool2d, "avg": AvgPool2d}.get(pool)
    if pl is None:
        raise ValueError(f"lenet5: expected pool 'max' or 'avg', got {pool!r}")
    pad = 2 if input_size == 28 else 0
    return Sequential(
        Conv2d(in_channels, 6, 5, padding=pad, dtype=dtype, rng=rng), _act(act), pl(2),
        Conv2d(6, 16, 5, dtype=dtype, rng=rng), _act(act), pl(2),
        Flatten(),
        Linear(16 * 5 * 5, 120, dtype=dtype, rng=rng), _act(act),
        Linear(120, 84, dtype=dtype, rng=rng), _act(act),
        Linear(84, num_classes, dtype=dtype, rng=rng),
    )


def mnist_cnn(num_classes=10, in_channels=1, input_size=28, dropout=0.5, init="default", dtype=np.float32,
              rng=None):
    """The MNIST CNN of TensorFlow's "Deep MNIST for experts" tutorial: conv5x5-32 SAME, ReLU,
    maxpool 2x2/2 SAME, conv5x5-64 SAME, ReLU, maxpool 2x2/2 SAME, flatten, fc1024, ReLU, dropout,
    fc(num_classes). Input (N, in_channels, input_size, input_size). SAME pooling gives
    ceil(size / 2): 28 -> 14 -> 7 as in the tutorial; on an even size it is plain 2x2 pooling, so
    only odd sizes get the padded "same" pool. ``init="tf"`` draws the tutorial's initial values
    (weights from a normal of std 0.1 truncated at 2 std, biases 0.1); ``"default"`` PyTorch's.
    The flatten order is (C, H, W) where TensorFlow's is (H, W, C): a TensorFlow checkpoint's fc1
    weight needs its rows permuted to load."""
    from . import init as _init

    if not (isinstance(input_size, (int, np.integer)) and input_size >= 1):
        raise ValueError(f"mnist_cnn: expected input_size >= 1, got {input_size}")
    if init not in ("default", "tf"):
        raise ValueError(f"mnist_cnn: expected init 'default' or 'tf', got {init!r}")

    def pool(size):
        return MaxPool2d(2) if size % 2 == 0 else MaxPool2d(2, padding="same")

    s1 = (input_size + 1) // 2
    s2 = (s1 + 1) // 2
    model = Sequential(
        Conv2d(in_channels, 32, 5, padding=2, dtype=dtype, rng=rng), ReLU(), pool(input_size),
        Conv2d(32, 64, 5, padding=2, dtype=dtype, rng=rng), ReLU(), pool(s1),
        Flatten(),
        Linear(64 * s2 * s2, 1024, dtype=dtype, rng=rng), ReLU(), Dropout(dropout),
        Linear(1024, num_classes, dtype=dtype, rng=rng),
    )
    if init == "tf":
        for m in model:
            if isinstance(m, (Conv2d, Linear)):
                _init.trunc_normal_(m.weight, 0.0, 0.1, -0.2, 0.2, rng=rng)
                m.bias.data[...] = 0.1
    return model


# ----------------------------------------------------------------------------- AlexNet, VGG
def alexnet(num_classes=1000, in_channels=3, dropout=0.5, hidden=4096, lrn=False, dtype=np.float32, rng=None):
    """AlexNet as torchvision builds it (features / avgpool / classifier; state_dict keys match
    torchvision's alexnet when ``lrn`` is False): input (N, in_channels, H, W) with H, W >= 63
    (224 in the paper). ``lrn=True`` adds the paper's LocalResponseNorm(5, 1e-4, 0.75, 2) after
    the first two ReLUs. ``hidden`` is the width of the two hidden fully connected layers."""
    kw = dict(dtype=dtype, rng=rng)
    f = [Conv2d(in_channels, 64, 11, stride=4, padding=2, **kw), ReLU(inplace=True)]
    if lrn:
        f.append(LocalResponseNorm(5, 1e-4, 0.75, 2.0))
    f += [MaxPool2d(3, 2), Conv2d(64, 192, 5, padding=2, **kw), ReLU(inplace=True)]
    if lrn:
        f.append(LocalResponseNorm(5, 1e-4, 0.75, 2.0))
    f += [MaxPool2d(3, 2),
          Conv2d(192, 384, 3, padding=1, **kw), ReLU(inplace=True),
          Conv2d(384, 256, 3, padding=1, **kw), ReLU(inplace=True),
          Conv2d(256, 256, 3, padding=1, **kw), ReLU(inplace=True), MaxPool2d(3, 2)]
    classifier = Sequential(Dropout(dropout), Linear(256 * 6 * 6, hidden, **kw), ReLU(inplace=True),
                            Dropout(dropout), Linear(hidden, hidden, **kw), ReLU(inplace=True),
                            Linear(hidden, num_classes, **kw))
    return Sequential(OrderedDict(features=Sequential(*f), avgpool=AdaptiveAvgPool2d((6, 6)), flatten=Flatten(),
                                  classifier=classifier))


def alexnet_paper(num_classes=1000, in_channels=3, dropout=0.5, hidden=4096, init="default", dtype=np.float32,
                  rng=None):
    """AlexNet as in Krizhevsky, Sutskever & Hinton (2012), for (N, 3, 227, 227) inputs: the
    two-GPU layout written as grouped convolutions.

    conv11x11/4-96, ReLU, LRN, maxpool 3/2 (227 -> 55 -> 27); conv5x5-256 pad 2 in 2 groups (each
    filter sees 48 channels), ReLU, LRN, maxpool 3/2 (-> 13); conv3x3-384 pad 1 (across both
    groups); conv3x3-384 pad 1 in 2 groups; conv3x3-256 pad 1 in 2 groups; maxpool 3/2 (-> 6);
    fc4096, ReLU, dropout, fc4096, ReLU, dropout, fc(num_classes): 60,965,224 parameters for
    1000 classes. The response normalisation is the paper's b = a / (2 + 1e-4 * sum a^2)^0.75
    over 5 neighbouring channels: LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2), since that
    layer (as PyTorch's and Caffe's) divides alpha by the size. An AdaptiveAvgPool2d(6) before
    the classifier (the identity at 227x227, as in torchvision's variant :func:`alexnet`) lets
    other input sizes through. ``hidden`` is the width of fc6 and fc7 (4096 in the paper).
    ``init="paper"`` draws the paper's initial values (weights
    N(0, 0.01^2); biases 1 in conv2, conv4, conv5 and the hidden fully connected layers, 0
    elsewhere); ``"default"`` PyTorch's."""
    from . import init as _init

    if init not in ("default", "paper"):
        raise ValueError(f"alexnet_paper: expected init 'default' or 'paper', got {init!r}")
    kw = dict(dtype=dtype, rng=rng)
    convs = [Conv2d(in_channels, 96, 11, stride=4, **kw), Conv2d(96, 256, 5, padding=2, groups=2, **kw),
             Conv2d(256, 384, 3, padding=1, **kw), Conv2d(384, 384, 3, padding=1, groups=2, **kw),
             Conv2d(384, 256, 3, padding=1, groups=2, **kw)]
    lrn = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)
    features = Sequential(convs[0], ReLU(inplace=True), LocalResponseNorm(**lrn), MaxPool2d(3, 2),
                          convs[1], ReLU(inplace=True), LocalResponseNorm(**lrn), MaxPool2d(3, 2),
                          convs[2], ReLU(inplace=True), convs[3], ReLU(inplace=True),
                          convs[4], ReLU(inplace=True), MaxPool2d(3, 2))
    fcs = [Linear(256 * 6 * 6, hidden, **kw), Linear(hidden, hidden, **kw), Linear(hidden, num_classes, **kw)]
    classifier = Sequential(fcs[0], ReLU(inplace=True), Dropout(dropout), fcs[1], ReLU(inplace=True),
                            Dropout(dropout), fcs[2])
    if init == "paper":
        for i, m in enumerate(convs + fcs):
            _init.normal_(m.weight, 0.0, 0.01, rng=rng)
            m.bias.data[...] = 1.0 if i in (1, 3, 4, 5, 6) else 0.0
    return Sequential(OrderedDict(features=features, avgpool=AdaptiveAvgPool2d((6, 6)), flatten=Flatten(),
                                  classifier=classifier))


VGG_CONFIGS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def vgg(config="vgg16", num_classes=1000, in_channels=3, batch_norm=False, dropout=0.5, hidden=4096,
        dtype=np.float32, rng=None):
    """VGG (Simonyan & Zisserman) as torchvision builds it: 3x3 "same" convolutions and 2x2 max
    pools from ``VGG_CONFIGS[config]`` (optionally with BatchNorm), AdaptiveAvgPool2d(7),
    classifier fc``hidden``-ReLU-dropout x2, fc(num_classes). Input (N, in_channels, H, W), H and
    W >= 32. State_dict keys match torchvision's vgg11/vgg16(_bn)."""
    if config not in VGG_CONFIGS:
        raise ValueError(f"vgg: expected config one of {sorted(VGG_CONFIGS)}, got {config!r}")
    kw = dict(dtype=dtype, rng=rng)
    layers, c = [], in_channels
    for v in VGG_CONFIGS[config]:
        if v == "M":
            layers.append(MaxPool2d(2, 2))
            continue
        layers.append(Conv2d(c, v, 3, padding=1, **kw))
        if batch_norm:
            layers.append(BatchNorm2d(v, dtype=dtype))
        layers.append(ReLU(inplace=True))
        c = v
    classifier = Sequential(Linear(512 * 7 * 7, hidden, **kw), ReLU(inplace=True), Dropout(dropout),
                            Linear(hidden, hidden, **kw), ReLU(inplace=True), Dropout(dropout),
                            Linear(hidden, num_classes, **kw))
    return Sequential(OrderedDict(features=Sequential(*layers), avgpool=AdaptiveAvgPool2d((7, 7)),
                                  flatten=Flatten(), classifier=classifier))


def vgg11(**kwargs):
    """VGG-11 (configuration A); keyword arguments as :func:`vgg`."""
    return vgg("vgg11", **kwargs)


def vgg16(**kwargs):
    """VGG-16 (configuration D); keyword arguments as :func:`vgg`."""
    return vgg("vgg16", **kwargs)


# ----------------------------------------------------------------------------- ResNet
def _conv_bn(cin, cout, k, stride, dtype, rng):
    return (Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False, dtype=dtype, rng=rng),
            BatchNorm2d(cout, dtype=dtype))


class BasicBlock(Module):
    """ResNet basic block: relu(bn2(conv3x3(relu(bn1(conv3x3(x))))) + shortcut(x)), shortcut the
    identity or ``downsample`` (1x1 conv stride s + BatchNorm). Names as torchvision's, so
    torchvision ResNet-18/34 weights load. Backward adds the body and shortcut gradients."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, dtype=np.float32, rng=None):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(inplanes, planes, 3, stride, dtype, rng)
        self.relu = ReLU(inplace=True)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3, 1, dtype, rng)
        self.downsample = downsample
        self.relu_out = ReLU(inplace=True)

    def _body(self):
        return (self.conv1, self.bn1, self.relu, self.conv2, self.bn2)

    def forward(self, x):
        out = x
        for m in self._body():
            out = m.forward(out)
        out += x if self.downsample is None else self.downsample.forward(x)
        return self.relu_out.forward(out)

    def backward(self, grad_out):
        g = self.relu_out.backward(grad_out)
        gb = g
        for m in reversed(self._body()):
            gb = m.backward(gb)
        gs = g if self.downsample is None else self.downsample.backward(g)
        if gb is None or gs is None:
            return None
        gb += gs
        return gb


class Bottleneck(BasicBlock):
    """ResNet-50 bottleneck: 1x1 reduce, 3x3 (stride here, as torchvision's v1.5), 1x1 expand by
    4, each with BatchNorm; relu(body + shortcut)."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, dtype=np.float32, rng=None):
        Module.__init__(self)
        self.conv1, self.bn1 = _conv_bn(inplanes, planes, 1, 1, dtype, rng)
        self.conv2, self.bn2 = _conv_bn(planes, planes, 3, stride, dtype, rng)
        self.conv3, self.bn3 = _conv_bn(planes, planes * 4, 1, 1, dtype, rng)
        self.relu1, self.relu2 = ReLU(inplace=True), ReLU(inplace=True)
        self.downsample = downsample
        self.relu_out = ReLU(inplace=True)

    def _body(self):
        return (self.conv1, self.bn1, self.relu1, self.conv2, self.bn2, self.relu2, self.conv3, self.bn3)


class ResNet(Module):
    """ResNet (He et al. 2016), torchvision layout: conv1 7x7/2, bn1, relu, maxpool 3x3/2, layer1..4,
    global average pool, fc. ``small_input=True`` uses a 3x3/1 stem without the max pool (CIFAR-
    sized inputs). Input (N, in_channels, H, W) -> logits (N, num_classes)."""

    def __init__(self, block, layers, num_classes=1000, in_channels=3, small_input=False, dtype=np.float32,
                 rng=None):
        super().__init__()
        self._dtype, self._rng = dtype, rng
        self.inplanes = 64
        if small_input:
            self.conv1 = Conv2d(in_channels, 64, 3, padding=1, bias=False, dtype=dtype, rng=rng)
        else:
            self.conv1 = Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False, dtype=dtype, rng=rng)
        self.bn1 = BatchNorm2d(64, dtype=dtype)
        self.relu = ReLU(inplace=True)
        self.maxpool = None if small_input else MaxPool2d(3, 2, padding=1)
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            setattr(self, f"layer{i + 1}", self._make_layer(block, planes, n, 1 if i == 0 else 2))
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = Linear(512 * block.expansion, num_classes, dtype=dtype, rng=rng)

    def _make_layer(self, block, planes, n, stride):
        dt, rng = self._dtype, self._rng
        ds = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            ds = Sequential(*_conv_bn(self.inplanes, planes * block.expansion, 1, stride, dt, rng))
            ds[0].padding = 0
        blocks = [block(self.inplanes, planes, stride, ds, dtype=dt, rng=rng)]
        self.inplanes = planes * block.expansion
        blocks += [block(self.inplanes, planes, dtype=dt, rng=rng) for _ in range(1, n)]
        return Sequential(*blocks)

    def _chain(self):
        return [m for m in (self.conv1, self.bn1, self.relu, self.maxpool, self.layer1, self.layer2, self.layer3,
                            self.layer4, self.avgpool, self.flatten, self.fc) if m is not None]

    def forward(self, x):
        for m in self._chain():
            x = m.forward(x)
        return x

    def backward(self, grad_out):
        object.__setattr__(self.conv1, "needs_input_grad", self.needs_input_grad)
        g = grad_out
        for m in reversed(self._chain()):
            g = m.backward(g)
        return g


def resnet18(**kwargs):
    """ResNet-18: BasicBlock x [2, 2, 2, 2]; keyword arguments as :class:`ResNet`."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


def resnet34(**kwargs):
    """ResNet-34: BasicBlock x [3, 4, 6, 3]."""
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


def resnet50(**kwargs):
    """ResNet-50: Bottleneck x [3, 4, 6, 3] (2048 features before fc)."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


# ----------------------------------------------------------------------------- Inception
def inception_block(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, dtype=np.float32, rng=None):
    """GoogLeNet Inception (v1) block: four parallel branches joined along channels:
    1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max pool (stride 1, pad 1) -> 1x1, each convolution followed
    by ReLU. (N, in_channels, H, W) -> (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)."""
    kw = dict(dtype=dtype, rng=rng)
    return Concat(
        Sequential(Conv2d(in_channels, ch1x1, 1, **kw), ReLU(inplace=True)),
        Sequential(Conv2d(in_channels, ch3x3red, 1, **kw), ReLU(inplace=True),
                   Conv2d(ch3x3red, ch3x3, 3, padding=1, **kw), ReLU(inplace=True)),
        Sequential(Conv2d(in_channels, ch5x5red, 1, **kw), ReLU(inplace=True),
                   Conv2d(ch5x5red, ch5x5, 5, padding=2, **kw), ReLU(inplace=True)),
        Sequential(MaxPool2d(3, 1, padding=1), Conv2d(in_channels, pool_proj, 1, **kw), ReLU(inplace=True)),
    )


def inception_net(num_classes=10, in_channels=1, dtype=np.float32, rng=None):
    """A small GoogLeNet-style classifier: conv3x3-32, ReLU, maxpool2, two Inception blocks
    (3a/3b widths divided by 4), maxpool2, global average pool, fc."""
    kw = dict(dtype=dtype, rng=rng)
    return Sequential(
        Conv2d(in_channels, 32, 3, padding=1, **kw), ReLU(inplace=True), MaxPool2d(2),
        inception_block(32, 16, 24, 32, 4, 8, 8, **kw),
        inception_block(64, 32, 32, 48, 8, 24, 16, **kw),
        MaxPool2d(2), AdaptiveAvgPool2d(1), Flatten(), Linear(120, num_classes, **kw))


def basic_conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dtype=np.float32, rng=None):
    """torchvision's BasicConv2d of GoogLeNet: conv (no bias), BatchNorm2d(eps=0.001), ReLU, as a
    Sequential with children conv, bn, relu (state_dict keys conv.weight, bn.running_mean, ...)."""
    return Sequential(OrderedDict(
        conv=Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False, dtype=dtype,
                    rng=rng),
        bn=BatchNorm2d(out_channels, eps=0.001, dtype=dtype), relu=ReLU(inplace=True)))


def googlenet_inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, five_by_five=False,
                        dtype=np.float32, rng=None):
    """GoogLeNet's Inception block as torchvision builds it: branch1 1x1; branch2 1x1 -> 3x3;
    branch3 1x1 -> 3x3 (torchvision's choice, which its weights and its parameter count follow;
    ``five_by_five=True`` gives the paper's 5x5); branch4 3x3/1 max pool (ceil mode) -> 1x1;
    every convolution a :func:`basic_conv2d`. (N, in_channels, H, W) ->
    (N, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)."""
    kw = dict(dtype=dtype, rng=rng)
    k = 5 if five_by_five else 3
    return Concat(OrderedDict(
        branch1=basic_conv2d(in_channels, ch1x1, 1, **kw),
        branch2=Sequential(basic_conv2d(in_channels, ch3x3red, 1, **kw),
                           basic_conv2d(ch3x3red, ch3x3, 3, padding=1, **kw)),
        branch3=Sequential(basic_conv2d(in_channels, ch5x5red, 1, **kw),
                           basic_conv2d(ch5x5red, ch5x5, k, padding=k // 2, **kw)),
        branch4=Sequential(MaxPool2d(3, 1, padding=1, ceil_mode=True), basic_conv2d(in_channels, pool_proj, 1, **kw)),
    ))


def googlenet_aux(in_channels, num_classes, dropout=0.7, dtype=np.float32, rng=None):
    """GoogLeNet's auxiliary classifier (torchvision's InceptionAux): adaptive average pool to
    4x4, 1x1 basic_conv2d to 128 channels, flatten, fc1024, ReLU, dropout, fc(num_classes)."""
    kw = dict(dtype=dtype, rng=rng)
    return Sequential(OrderedDict(
        pool=AdaptiveAvgPool2d((4, 4)), conv=basic_conv2d(in_channels, 128, 1, **kw), flatten=Flatten(),
        fc1=Linear(2048, 1024, **kw), relu=ReLU(inplace=True), dropout=Dropout(dropout), fc2=Linear(1024, num_classes,
                                                                                                   **kw)))


# Inception widths of GoogLeNet (Szegedy et al. 2015, table 1): in, #1x1, #3x3 reduce, #3x3,
# #5x5 reduce, #5x5, pool proj
GOOGLENET_BLOCKS = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNet(Module):
    """GoogLeNet (Inception v1, Szegedy et al. 2015) in torchvision's layout, so its state_dict
    keys are torchvision's: conv1 7x7/2, maxpool1, conv2 1x1, conv3 3x3, maxpool2, inception3a/3b,
    maxpool3, inception4a-4e, maxpool4 2x2, inception5a/5b, global average pool, dropout 0.2,
    fc(num_classes). Convolutions carry BatchNorm (torchvision's :func:`basic_conv2d`); pools are
    3x3/2 in ceil mode. 6,624,904 parameters for 1000 classes (torchvision's count).

    ``aux_logits=True`` adds the two auxiliary classifiers (after inception4a and 4d; 13,004,888
    parameters in all): in training mode forward then returns (logits, aux2, aux1) and backward
    takes a tuple (grad_logits, grad_aux2, grad_aux1) (None for a head without a loss; the paper
    weights the auxiliary losses by 0.3); in eval mode forward returns the logits only, as
    torchvision's. Input (N, in_channels, H, W), H and W >= 31 (224 in the paper; smaller inputs
    leave a pooling window larger than its input, which cnnops' pooling refuses)."""

    def __init__(self, num_classes=1000, in_channels=3, aux_logits=False, dropout=0.2, dropout_aux=0.7,
                 five_by_five=False, dtype=np.float32, rng=None):
        super().__init__()
        kw = dict(dtype=dtype, rng=rng)
        self.aux_logits = bool(aux_logits)
        self.conv1 = basic_conv2d(in_channels, 64, 7, stride=2, padding=3, **kw)
        self.maxpool1 = MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = basic_conv2d(64, 64, 1, **kw)
        self.conv3 = basic_conv2d(64, 192, 3, padding=1, **kw)
        self.maxpool2 = MaxPool2d(3, 2, ceil_mode=True)
        for name, widths in GOOGLENET_BLOCKS.items():
            setattr(self, name, googlenet_inception(*widths, five_by_five=five_by_five, **kw))
            if name == "inception3b":
                self.maxpool3 = MaxPool2d(3, 2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = MaxPool2d(2, 2, ceil_mode=True)
        if self.aux_logits:
            self.aux1 = googlenet_aux(512, num_classes, dropout_aux, **kw)
            self.aux2 = googlenet_aux(528, num_classes, dropout_aux, **kw)
        else:
            self.aux1 = self.aux2 = None
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.flatten = Flatten()
        self.dropout = Dropout(dropout)
        self.fc = Linear(1024, num_classes, **kw)

    def _stages(self):
        """The main path in three pieces: up to inception4a (aux1 reads its output), up to
        inception4d (aux2), and the rest."""
        a = [self.conv1, self.maxpool1, self.conv2, self.conv3, self.maxpool2, self.inception3a, self.inception3b,
             self.maxpool3, self.inception4a]
        b = [self.inception4b, self.inception4c, self.inception4d]
        c = [self.inception4e, self.maxpool4, self.inception5a, self.inception5b, self.avgpool, self.flatten,
             self.dropout, self.fc]
        return a, b, c

    def forward(self, x):
        check_dtype(x, "GoogLeNet")
        if x.ndim != 4 or min(x.shape[2:]) < 31:
            raise ValueError(f"GoogLeNet: expected input (N, C, H, W) with H, W >= 31, got shape {x.shape}")
        a, b, c = self._stages()
        with_aux = self.aux_logits and self.training
        for m in a:
            x = m.forward(x)
        aux1 = self.aux1.forward(x) if with_aux else None
        for m in b:
            x = m.forward(x)
        aux2 = self.aux2.forward(x) if with_aux else None
        for m in c:
            x = m.forward(x)
        self._with_aux = with_aux
        return (x, aux2, aux1) if with_aux else x

    def backward(self, grad_out):
        with_aux = saved(getattr(self, "_with_aux", None), "GoogLeNet")
        g_aux2 = g_aux1 = None
        if with_aux:
            if not (isinstance(grad_out, (tuple, list)) and len(grad_out) == 3):
                raise TypeError("GoogLeNet.backward: expected (grad_logits, grad_aux2, grad_aux1) after a training "
                                "forward with aux_logits, got a single gradient")
            grad_out, g_aux2, g_aux1 = grad_out
        a, b, c = self._stages()
        object.__setattr__(self.conv1, "needs_input_grad", self.needs_input_grad)
        g = grad_out
        for m in reversed(c):
            g = m.backward(g)
        if g_aux2 is not None:
            g = g + self.aux2.backward(g_aux2)
        for m in reversed(b):
            g = m.backward(g)
        if g_aux1 is not None:
            g = g + self.aux1.backward(g_aux1)
        for m in reversed(a):
            g = m.backward(g)
            if g is None:
                break
        return g


def googlenet(**kwargs):
    """GoogLeNet (Inception v1); keyword arguments as :class:`GoogLeNet`."""
    return GoogLeNet(**kwargs)


# ----------------------------------------------------------------------------- FCN
def bilinear_kernel(channels, k, dtype=np.float32):
    """ConvTranspose2d weight (channels, 1, k, k) (use groups=channels) that upsamples bilinearly
    with stride k // 2 (the FCN initialisation)."""
    f = (k + 1) // 2
    c = f - 1 if k % 2 == 1 else f - 0.5
    og = np.arange(k)
    filt = 1 - np.abs(og - c) / f
    w = np.zeros((channels, 1, k, k), dtype=dtype)
    w[:, 0] = np.outer(filt, filt)
    return w


class FCN(Module):
    """A small FCN-style segmentation net (Long et al. 2015, the 8s idea at toy width):
    encoder of three stages (two 3x3 conv + ReLU, then 2x2 max pool) to 1/8 resolution, 1x1
    class scores, a learned 2x upsampling (ConvTranspose2d 4x4/2) fused with 1x1 scores from the
    1/4-resolution stage, and a learned 4x upsampling (ConvTranspose2d 8x8/4) back to the input
    size. Input (N, in_channels, H, W) with H, W divisible by 8 -> scores (N, num_classes, H, W).
    The transposed convolutions start as bilinear upsampling."""

    def __init__(self, num_classes=2, in_channels=3, width=16, dtype=np.float32, rng=None):
        super().__init__()
        kw = dict(dtype=dtype, rng=rng)
        w = width

        def stage(cin, cout):
            return Sequential(Conv2d(cin, cout, 3, padding=1, **kw), ReLU(inplace=True),
                              Conv2d(cout, cout, 3, padding=1, **kw), ReLU(inplace=True), MaxPool2d(2))

        self.stage1, self.stage2, self.stage3 = stage(in_channels, w), stage(w, 2 * w), stage(2 * w, 4 * w)
        self.score3 = Conv2d(4 * w, num_classes, 1, **kw)
        self.score2 = Conv2d(2 * w, num_classes, 1, **kw)
        self.up2 = ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, groups=num_classes,
                                   bias=False, **kw)
        self.up4 = ConvTranspose2d(num_classes, num_classes, 8, stride=4, padding=2, groups=num_classes,
                                   bias=False, **kw)
        self.up2.weight.data[...] = bilinear_kernel(num_classes, 4, dtype)
        self.up4.weight.data[...] = bilinear_kernel(num_classes, 8, dtype)

    def forward(self, x):
        check_dtype(x, "FCN")
        if x.ndim != 4 or x.shape[2] % 8 or x.shape[3] % 8:
            raise ValueError(f"FCN: expected input (N, C, H, W) with H and W divisible by 8, got shape {x.shape}")
        f2 = self.stage2.forward(self.stage1.forward(x))
        f3 = self.stage3.forward(f2)
        s = self.up2.forward(self.score3.forward(f3))
        s += self.score2.forward(f2)
        return self.up4.forward(s)

    def backward(self, grad_out):
        g = self.up4.backward(grad_out)
        g2 = self.score2.backward(g)
        g3 = self.stage3.backward(self.score3.backward(self.up2.backward(g)))
        g2 += g3
        object.__setattr__(self.stage1, "needs_input_grad", self.needs_input_grad)
        return self.stage1.backward(self.stage2.backward(g2))


def fcn(num_classes=2, in_channels=3, width=16, dtype=np.float32, rng=None):
    """Build an :class:`FCN`."""
    return FCN(num_classes, in_channels, width, dtype, rng)


# ----------------------------------------------------------------------------- YOLO-style detection
class YOLOHead(Module):
    """YOLO (v2/v3-style) grid detection head: a 1x1 convolution to A * (5 + num_classes) channels
    over an (N, C, S_h, S_w) feature map, A = len(anchors). For anchor a at cell (i, j) the raw
    outputs (tx, ty, tw, th, to, class logits) decode to the box centre
    ((j + sigmoid(tx)) * stride, (i + sigmoid(ty)) * stride), size (anchor_w * exp(tw),
    anchor_h * exp(th)) in input pixels, objectness sigmoid(to) and class probabilities
    softmax(logits). ``anchors`` are (w, h) pairs in input pixels; ``stride`` is the input
    pixels per cell."""

    def __init__(self, in_channels, num_classes, anchors, stride, dtype=np.float32, rng=None):
        super().__init__()
        self.num_classes, self.stride = int(num_classes), float(stride)
        self.anchors = np.asarray(anchors, dtype=np.float64).reshape(-1, 2)
        self.num_anchors = len(self.anchors)
        self.conv = Conv2d(in_channels, self.num_anchors * (5 + num_classes), 1, dtype=dtype, rng=rng)

    def forward(self, x):
        return self.conv.forward(x)

    def backward(self, grad_out):
        object.__setattr__(self.conv, "needs_input_grad", self.needs_input_grad)
        return self.conv.backward(grad_out)

    def split(self, raw):
        """raw (N, A*(5+K), S_h, S_w) -> view (N, A, S_h, S_w, 5+K)."""
        n, _, sh, sw = raw.shape
        return raw.reshape(n, self.num_anchors, 5 + self.num_classes, sh, sw).transpose(0, 1, 3, 4, 2)

    def decode_boxes(self, raw):
        """Boxes (N, A, S_h, S_w, 4) as (cx, cy, w, h) in input pixels, objectness logits and class
        logits, from the head's raw output."""
        p = self.split(raw)
        sh, sw = p.shape[2], p.shape[3]
        gy, gx = np.meshgrid(np.arange(sh), np.arange(sw), indexing="ij")
        cx = (sigmoid(p[..., 0]) + gx) * self.stride
        cy = (sigmoid(p[..., 1]) + gy) * self.stride
        aw = self.anchors[:, 0].reshape(1, -1, 1, 1)
        ah = self.anchors[:, 1].reshape(1, -1, 1, 1)
        w = aw * np.exp(np.minimum(p[..., 2], 20.0))
        h = ah * np.exp(np.minimum(p[..., 3], 20.0))
        return np.stack([cx, cy, w, h], axis=-1).astype(raw.dtype), p[..., 4], p[..., 5:]

    def decode(self, raw, score_threshold=0.3, iou_threshold=0.5, max_detections=100):
        """Detections per image: a list of (boxes (M, 4) xyxy, scores (M,), labels (M,) int64).
        score = sigmoid(objectness) * max class probability; boxes under ``score_threshold`` are
        dropped, then class-aware non-max suppression (cnnops.batched_nms) at ``iou_threshold``;
        at most ``max_detections`` per image, best first. Boxes go from (cx, cy, w, h) to xyxy
        with cnnops.box_convert."""
        import cnnops

        boxes, obj, cls = self.decode_boxes(raw)
        n = raw.shape[0]
        prob = softmax(cls, axis=-1) if self.num_classes > 1 else np.ones(cls.shape, raw.dtype)
        labels = prob.argmax(-1)
        scores = (sigmoid(obj) * prob.max(-1)).astype(raw.dtype)
        out = []
        for i in range(n):
            s = scores[i].reshape(-1)
            keep = s >= score_threshold
            b = np.ascontiguousarray(boxes[i].reshape(-1, 4)[keep])
            s, lab = np.ascontiguousarray(s[keep]), labels[i].reshape(-1)[keep].astype(np.int64)
            b = cnnops.box_convert(b, "cxcywh", "xyxy")
            if len(s):
                k = np.asarray(cnnops.batched_nms(b, s, lab, iou_threshold))[:max_detections]
                b, s, lab = b[k], s[k], lab[k]
            out.append((b, s, lab))
        return out


class YOLOLoss(Module):
    """Training loss of :class:`YOLOHead` outputs against ground-truth boxes.

    ``forward(raw, targets)`` with targets a list (one per image) of (boxes (M, 4) xyxy in input
    pixels, labels (M,) int). Each box is assigned to the cell holding its centre and to the anchor
    whose (w, h) has the largest IoU with it (same centre). Loss = ``box_weight`` * IoU-family loss
    (``box_loss``, default GIoU, mean over assigned boxes, through the cnnops box kernels and back
    through the decode) + ``obj_weight`` * BCE-with-logits of objectness over every anchor of every
    cell (target 1 where assigned; mean) + ``cls_weight`` * cross-entropy of the class logits of the
    assigned anchors (mean). ``backward()`` returns the gradient of the total with respect to raw."""

    def __init__(self, head, box_loss="giou", box_weight=5.0, obj_weight=1.0, cls_weight=1.0):
        super().__init__()
        object.__setattr__(self, "head", head)  # a reference, not a child (no duplicate parameters)
        self.box_weight, self.obj_weight, self.cls_weight = float(box_weight), float(obj_weight), float(cls_weight)
        self.box_loss = BoxIoULoss(box_loss, reduction="mean")
        self.obj_loss = BCEWithLogitsLoss()
        self.cls_loss = CrossEntropyLoss()
        self._cache = None
        self.parts = {}

    def assign(self, targets, shape):
        """Indices (image, anchor, row, col) and target boxes/labels of the assigned anchors."""
        n, _, sh, sw = shape
        hd = self.head
        idx, tb, tl = [], [], []
        for i, (boxes, labels) in enumerate(targets):
            boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
            labels = np.asarray(labels).reshape(-1)
            for b, lab in zip(boxes, labels):
                cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                w, h = b[2] - b[0], b[3] - b[1]
                j = int(min(max(cx // hd.stride, 0), sw - 1))
                r = int(min(max(cy // hd.stride, 0), sh - 1))
                inter = np.minimum(w, hd.anchors[:, 0]) * np.minimum(h, hd.anchors[:, 1])
                iou = inter / (w * h + hd.anchors[:, 0] * hd.anchors[:, 1] - inter)
                idx.append((i, int(iou.argmax()), r, j))
                tb.append(b)
                tl.append(int(lab))
        if not idx:
            return np.zeros((0, 4), np.int64), np.zeros((0, 4)), np.zeros(0, np.int64)
        return np.array(idx, np.int64), np.array(tb), np.array(tl, np.int64)

    def forward(self, raw, targets):
        check_dtype(raw, "YOLOLoss")
        hd = self.head
        if len(targets) != raw.shape[0]:
            raise ValueError(f"YOLOLoss: expected one target per image ({raw.shape[0]}), got {len(targets)}")
        idx, tb, tl = self.assign(targets, raw.shape)
        p = hd.split(raw)
        obj_t = np.zeros(p.shape[:4], raw.dtype)
        i, a, r, c = idx.T if len(idx) else (np.zeros(0, np.int64),) * 4
        obj_t[i, a, r, c] = 1
        total = self.obj_weight * float(self.obj_loss(np.ascontiguousarray(p[..., 4]), obj_t))
        self.parts = {"obj": total}
        box_cache = None
        if len(idx):
            sel = p[i, a, r, c]  # (M, 5+K) copies
            s = sigmoid(sel[:, :4])
            aw, ah = hd.anchors[a, 0], hd.anchors[a, 1]
            ew, eh = aw * np.exp(np.minimum(sel[:, 2], 20.0)), ah * np.exp(np.minimum(sel[:, 3], 20.0))
            cx, cy = (s[:, 0] + c) * hd.stride, (s[:, 1] + r) * hd.stride
            pred = np.stack([cx - ew / 2, cy - eh / 2, cx + ew / 2, cy + eh / 2], axis=1).astype(raw.dtype)
            lb = float(self.box_loss(pred, tb.astype(raw.dtype)))
            lc = float(self.cls_loss(np.ascontiguousarray(sel[:, 5:]), tl)) if hd.num_classes > 1 else 0.0
            total += self.box_weight * lb + self.cls_weight * lc
            self.parts.update(box=self.box_weight * lb, cls=self.cls_weight * lc)
            box_cache = (s, ew, eh)
        self._cache = (raw.shape, raw.dtype, idx, box_cache)
        return total

    def backward(self, grad_output=1.0):
        shape, dtype, idx, box_cache = saved(self._cache, "YOLOLoss")
        hd = self.head
        go = float(grad_output)
        g = np.zeros(shape, dtype)
        gp = hd.split(g)  # a view: writes land in g
        gp[..., 4] = self.obj_loss.backward(self.obj_weight * go)
        if len(idx):
            i, a, r, c = idx.T
            s, ew, eh = box_cache
            gb = self.box_loss.backward(self.box_weight * go).astype(np.float64)  # (M, 4) on x1 y1 x2 y2
            gcx, gcy = gb[:, 0] + gb[:, 2], gb[:, 1] + gb[:, 3]
            gw, gh = (gb[:, 2] - gb[:, 0]) / 2, (gb[:, 3] - gb[:, 1]) / 2
            gsel = np.zeros((len(idx), 5 + hd.num_classes))
            gsel[:, 0] = gcx * hd.stride * s[:, 0] * (1 - s[:, 0])
            gsel[:, 1] = gcy * hd.stride * s[:, 1] * (1 - s[:, 1])
            gsel[:, 2] = gw * ew
            gsel[:, 3] = gh * eh
            if hd.num_classes > 1:
                gsel[:, 5:] = self.cls_loss.backward(self.cls_weight * go)
            np.add.at(gp, (i, a, r, c), gsel.astype(dtype))
        return g


def yolo_tiny(num_classes=1, in_channels=1, anchors=((8, 8), (16, 16), (24, 12)), width=16, dtype=np.float32,
              rng=None):
    """A small YOLO-style detector: four conv3x3-BatchNorm-LeakyReLU(0.1) stages, the first three
    followed by 2x2 max pooling (stride 8 overall), then a :class:`YOLOHead`. Input
    (N, in_channels, H, W) with H, W divisible by 8. Returns Sequential(backbone, head); the head
    is ``model.head`` (decode, YOLOLoss(model.head))."""
    kw = dict(dtype=dtype, rng=rng)
    layers, c = [], in_channels
    for i, cout in enumerate((width, 2 * width, 4 * width, 4 * width)):
        layers += [Conv2d(c, cout, 3, padding=1, bias=False, **kw), BatchNorm2d(cout, dtype=dtype), LeakyReLU(0.1)]
        if i < 3:
            layers.append(MaxPool2d(2))
        c = cout
    head = YOLOHead(c, num_classes, anchors, stride=8, **kw)
    return Sequential(OrderedDict(backbone=Sequential(*layers), head=head))

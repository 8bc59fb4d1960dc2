"""``torch.nn`` modules that run the cnnops kernels.

Each class subclasses PyTorch's own module of the same name, so constructor arguments,
parameters, buffers, ``state_dict`` keys, ``repr`` and hooks are PyTorch's; only ``forward`` differs.
The extras are keyword arguments: ``algo=`` for convolutions (see :func:`cnnops.conv2d`) and, for
``Conv*d`` and the pooling layers, TensorFlow's ``"SAME"`` / ``"VALID"`` padding for any stride.
:func:`cnnops.torch.patch` turns an existing model's modules into these in place."""
from __future__ import annotations

import torch

from . import functional as F


def _tf_padding(padding):
    """TensorFlow's "SAME"/"VALID" (any case, any stride) kept as a string; PyTorch's constructor
    gets "valid" for them, which it accepts for every stride."""
    if isinstance(padding, str) and padding.lower() in ("same", "valid"):
        return padding.lower(), "valid"
    return None, padding


class _ConvMixin:
    algo = "auto"
    _cnnops_padding = None

    def _padding_arg(self):
        if self._cnnops_padding is not None:
            return self._cnnops_padding
        return self.padding if isinstance(self.padding, str) else list(self.padding)


def _conv_class(base, fn):
    class Conv(_ConvMixin, base):
        __doc__ = f"``torch.nn.{base.__name__}`` running :func:`cnnops.torch.functional.{fn.__name__}`."

        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                     bias=True, padding_mode="zeros", device=None, dtype=None, *, algo="auto"):
            tf, padding = _tf_padding(padding)
            super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                             padding_mode, device, dtype)
            self._cnnops_padding, self.algo = tf, algo

        def forward(self, input):
            return fn(input, self.weight, self.bias, self.stride, self._padding_arg(), self.dilation, self.groups,
                      padding_mode=self.padding_mode, algo=self.algo)

    Conv.__name__ = Conv.__qualname__ = base.__name__
    return Conv


Conv1d = _conv_class(torch.nn.Conv1d, F.conv1d)
Conv2d = _conv_class(torch.nn.Conv2d, F.conv2d)
Conv3d = _conv_class(torch.nn.Conv3d, F.conv3d)


def _conv_transpose_class(base, fn):
    class ConvTranspose(base):
        __doc__ = f"``torch.nn.{base.__name__}`` running :func:`cnnops.torch.functional.{fn.__name__}`."
        algo = "auto"

        def __init__(self, *args, algo="auto", **kwargs):
            super().__init__(*args, **kwargs)
            self.algo = algo

        def forward(self, input, output_size=None):
            if self.padding_mode != "zeros":
                raise ValueError(f"cnnops.torch.nn.{base.__name__}: only padding_mode 'zeros' is supported, as PyTorch")
            nd = len(self.kernel_size)
            output_padding = self._output_padding(input, output_size, list(self.stride), list(self.padding),
                                                  list(self.kernel_size), nd, list(self.dilation))
            return fn(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                      self.dilation, algo=self.algo)

    ConvTranspose.__name__ = ConvTranspose.__qualname__ = base.__name__
    return ConvTranspose


ConvTranspose1d = _conv_transpose_class(torch.nn.ConvTranspose1d, F.conv_transpose1d)
ConvTranspose2d = _conv_transpose_class(torch.nn.ConvTranspose2d, F.conv_transpose2d)
ConvTranspose3d = _conv_transpose_class(torch.nn.ConvTranspose3d, F.conv_transpose3d)


def _named(cls, base):
    cls.__name__ = cls.__qualname__ = base.__name__
    cls.__doc__ = f"``torch.nn.{base.__name__}`` running the cnnops kernels."
    return cls


def _max_pool_class(base, fn):
    class MaxPool(base):
        def forward(self, input):
            return fn(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                      self.return_indices)
    return _named(MaxPool, base)


MaxPool1d = _max_pool_class(torch.nn.MaxPool1d, F.max_pool1d)
MaxPool2d = _max_pool_class(torch.nn.MaxPool2d, F.max_pool2d)
MaxPool3d = _max_pool_class(torch.nn.MaxPool3d, F.max_pool3d)


class AvgPool1d(torch.nn.AvgPool1d):
    def forward(self, input):
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


def _avg_pool_class(base, fn):
    class AvgPool(base):
        def forward(self, input):
            return fn(input, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                      self.divisor_override)
    return _named(AvgPool, base)


AvgPool1d = _named(AvgPool1d, torch.nn.AvgPool1d)
AvgPool2d = _avg_pool_class(torch.nn.AvgPool2d, F.avg_pool2d)
AvgPool3d = _avg_pool_class(torch.nn.AvgPool3d, F.avg_pool3d)


def _lp_pool_class(base, fn):
    class LPPool(base):
        def forward(self, input):
            return fn(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)
    return _named(LPPool, base)


LPPool1d = _lp_pool_class(torch.nn.LPPool1d, F.lp_pool1d)
LPPool2d = _lp_pool_class(torch.nn.LPPool2d, F.lp_pool2d)
LPPool3d = _lp_pool_class(torch.nn.LPPool3d, F.lp_pool3d) if hasattr(torch.nn, "LPPool3d") else None


def _adaptive_class(base, fn, has_indices):
    class Adaptive(base):
        def forward(self, input):
            if has_indices:
                return fn(input, self.output_size, self.return_indices)
            return fn(input, self.output_size)
    return _named(Adaptive, base)


AdaptiveAvgPool1d = _adaptive_class(torch.nn.AdaptiveAvgPool1d, F.adaptive_avg_pool1d, False)
AdaptiveAvgPool2d = _adaptive_class(torch.nn.AdaptiveAvgPool2d, F.adaptive_avg_pool2d, False)
AdaptiveAvgPool3d = _adaptive_class(torch.nn.AdaptiveAvgPool3d, F.adaptive_avg_pool3d, False)
AdaptiveMaxPool1d = _adaptive_class(torch.nn.AdaptiveMaxPool1d, F.adaptive_max_pool1d, True)
AdaptiveMaxPool2d = _adaptive_class(torch.nn.AdaptiveMaxPool2d, F.adaptive_max_pool2d, True)
AdaptiveMaxPool3d = _adaptive_class(torch.nn.AdaptiveMaxPool3d, F.adaptive_max_pool3d, True)


def _fractional_class(base, fn):
    class Fractional(base):
        def forward(self, input):
            return fn(input, self.kernel_size, self.output_size, self.output_ratio, self.return_indices,
                      _random_samples=self._random_samples)
    return _named(Fractional, base)


FractionalMaxPool2d = _fractional_class(torch.nn.FractionalMaxPool2d, F.fractional_max_pool2d)
FractionalMaxPool3d = _fractional_class(torch.nn.FractionalMaxPool3d, F.fractional_max_pool3d)


def _unpool_class(base, fn):
    class Unpool(base):
        def forward(self, input, indices, output_size=None):
            return fn(input, indices, self.kernel_size, self.stride, self.padding, output_size)
    return _named(Unpool, base)


MaxUnpool1d = _unpool_class(torch.nn.MaxUnpool1d, F.max_unpool1d)
MaxUnpool2d = _unpool_class(torch.nn.MaxUnpool2d, F.max_unpool2d)
MaxUnpool3d = _unpool_class(torch.nn.MaxUnpool3d, F.max_unpool3d)


class Upsample(torch.nn.Upsample):
    """``torch.nn.Upsample``: the nearest modes run the cnnops kernels, the others PyTorch's."""

    def forward(self, input):
        if self.mode in ("nearest", "nearest-exact"):
            return F.upsample_nearest(input, self.size, self.scale_factor, self.mode, self.recompute_scale_factor)
        return super().forward(input)


class UpsamplingNearest2d(torch.nn.UpsamplingNearest2d):
    def forward(self, input):
        return F.upsample_nearest(input, self.size, self.scale_factor, "nearest")


# PyTorch class -> cnnops class, for patch() and unpatch()
SWAPS = {
    torch.nn.Conv1d: Conv1d, torch.nn.Conv2d: Conv2d, torch.nn.Conv3d: Conv3d,
    torch.nn.ConvTranspose1d: ConvTranspose1d, torch.nn.ConvTranspose2d: ConvTranspose2d,
    torch.nn.ConvTranspose3d: ConvTranspose3d,
    torch.nn.MaxPool1d: MaxPool1d, torch.nn.MaxPool2d: MaxPool2d, torch.nn.MaxPool3d: MaxPool3d,
    torch.nn.AvgPool1d: AvgPool1d, torch.nn.AvgPool2d: AvgPool2d, torch.nn.AvgPool3d: AvgPool3d,
    torch.nn.LPPool1d: LPPool1d, torch.nn.LPPool2d: LPPool2d,
    torch.nn.AdaptiveAvgPool1d: AdaptiveAvgPool1d, torch.nn.AdaptiveAvgPool2d: AdaptiveAvgPool2d,
    torch.nn.AdaptiveAvgPool3d: AdaptiveAvgPool3d, torch.nn.AdaptiveMaxPool1d: AdaptiveMaxPool1d,
    torch.nn.AdaptiveMaxPool2d: AdaptiveMaxPool2d, torch.nn.AdaptiveMaxPool3d: AdaptiveMaxPool3d,
    torch.nn.FractionalMaxPool2d: FractionalMaxPool2d, torch.nn.FractionalMaxPool3d: FractionalMaxPool3d,
    torch.nn.MaxUnpool1d: MaxUnpool1d, torch.nn.MaxUnpool2d: MaxUnpool2d, torch.nn.MaxUnpool3d: MaxUnpool3d,
    torch.nn.Upsample: Upsample, torch.nn.UpsamplingNearest2d: UpsamplingNearest2d,
}
if LPPool3d is not None:
    SWAPS[torch.nn.LPPool3d] = LPPool3d

__all__ = sorted({cls.__name__ for cls in SWAPS.values()})

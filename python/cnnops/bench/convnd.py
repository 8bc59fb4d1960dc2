"""The conv suite's layers beyond conv2d: conv1d, conv3d and conv_transpose2d.

Each layer knows its shapes, FLOP and byte counts, how to build its fixed-seed inputs and the four
calls the suite times: cnnops forward and backward, and their PyTorch peers
(``torch.nn.functional.conv1d/conv3d/conv_transpose2d`` forward with bias, and
``torch.ops.aten.convolution_backward`` with ``transposed`` set for conv_transpose2d and all three
gradients asked for). The driver, timing and report are in ``conv``; conv2d's layers are there too.

FLOPs are those of the underlying convolution, 2 per multiply-add, no multiplications by padding
or by the zeros a transposed convolution inserts between input pixels:
  conv1d/conv3d    2 * N * K * (C/groups) * prod(kernel) * prod(output spatial)
  conv_transpose2d 2 * N * C_in * (C_out/groups) * R * S * H_in * W_in, i.e. the convolution the
                   transposed op is the adjoint of (its input is the transposed op's output, its
                   output the transposed op's input), counted exactly as above.
Backward counts twice the forward (input gradient + weight gradient); the bias gradient is a
reduction and not counted. Bytes: each tensor read or written once in float32."""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

import cnnops

_SPATIAL_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
_KERNEL_NAMES = {1: ("k",), 2: ("R", "S"), 3: ("T", "R", "S")}


@dataclass(frozen=True)
class NdLayer:
    """One layer of family conv1d, conv3d or conv_transpose2d: input (N, C, *spatial) with C the
    op's input channels, K the op's output channels, a cubic kernel of side `k`, and the same
    stride, padding (both sides) and output_padding (transposed only) in every dimension."""

    family: str
    name: str
    N: int
    C: int
    spatial: tuple
    K: int
    k: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    output_padding: int = 0
    small: bool = False  # part of the --quick set

    def __post_init__(self):
        if self.family not in FAMILY_NAMES:
            raise ValueError(f"{self.name}: unknown family {self.family!r}")
        if len(self.spatial) != self.nd:
            raise ValueError(f"{self.name}: {self.family} needs {self.nd} spatial sizes, got {self.spatial}")
        if self.C % self.groups or self.K % self.groups:
            raise ValueError(f"{self.name}: channels {self.C} -> {self.K} not divisible by groups {self.groups}")
        if self.output_padding and not self.transposed:
            raise ValueError(f"{self.name}: output_padding is for transposed convolutions only")

    # ---- geometry

    @property
    def nd(self) -> int:
        return {"conv1d": 1, "conv3d": 3, "conv_transpose2d": 2}[self.family]

    @property
    def transposed(self) -> bool:
        return self.family.startswith("conv_transpose")

    @property
    def kernel(self) -> tuple:
        return (self.k,) * self.nd

    @property
    def out_spatial(self) -> tuple:
        if self.transposed:
            return tuple((i - 1) * self.stride - 2 * self.pad + (self.k - 1) + self.output_padding + 1
                         for i in self.spatial)
        return tuple((i + 2 * self.pad - self.k) // self.stride + 1 for i in self.spatial)

    @property
    def weight_shape(self) -> tuple:
        if self.transposed:  # (C_in, C_out/groups, *kernel), as in PyTorch
            return (self.C, self.K // self.groups, *self.kernel)
        return (self.K, self.C // self.groups, *self.kernel)

    @property
    def output_shape(self) -> tuple:
        return (self.N, self.K, *self.out_spatial)

    # ---- work and traffic

    @property
    def flops_forward(self) -> int:
        taps = math.prod(self.kernel)
        if self.transposed:
            # the adjoint convolution: C_out -> C_in channels, its output is our (smaller) input
            return 2 * self.N * self.C * (self.K // self.groups) * taps * math.prod(self.spatial)
        return 2 * self.N * self.K * (self.C // self.groups) * taps * math.prod(self.out_spatial)

    @property
    def flops_backward(self) -> int:
        return 2 * self.flops_forward

    def _sizes(self):
        return (self.N * self.C * math.prod(self.spatial), math.prod(self.weight_shape),
                math.prod(self.output_shape))

    @property
    def bytes_forward(self) -> int:
        x, w, y = self._sizes()
        return 4 * (x + w + self.K + y)  # read x, w, bias; write y

    @property
    def bytes_backward(self) -> int:
        x, w, y = self._sizes()
        return 4 * (y + x + w + x + w + self.K)  # read dy, x, w; write dx, dw, db

    # ---- description

    def shape_str(self) -> str:
        sp = "x".join(str(v) for v in self.spatial)
        ker = "x".join(str(v) for v in self.kernel)
        if self.transposed:
            s = f"{self.N}x{self.C}x{sp} -> {self.K} {ker}"
        else:
            s = f"{self.N}x{self.C}x{sp} k{self.K} {ker}"
        if self.stride != 1:
            s += f" s{self.stride}"
        if self.pad:
            s += f" p{self.pad}"
        if self.output_padding:
            s += f" op{self.output_padding}"
        if self.groups != 1:
            s += f" g{self.groups}"
        if self.transposed:
            s += f" (out {'x'.join(str(v) for v in self.out_spatial)})"
        return s

    def as_dict(self) -> dict:
        d = {"N": self.N, "C": self.C}
        d.update(dict(zip(_SPATIAL_NAMES[self.nd], self.spatial)))
        d["K"] = self.K
        d.update(dict(zip(_KERNEL_NAMES[self.nd], self.kernel)))
        d.update({"stride": self.stride, "padding": self.pad, "dilation": 1, "groups": self.groups})
        if self.transposed:
            d["output_padding"] = self.output_padding
            d["C_in"], d["C_out"] = self.C, self.K
        d["weight"] = list(self.weight_shape)
        d["output"] = list(self.output_shape)
        return d

    # ---- data and calls

    def make_inputs(self, torch):
        """Fixed-seed float32 tensors: x, w (scaled by 1/sqrt(fan-in)), bias, grad_output."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        x = rng.standard_normal((self.N, self.C, *self.spatial), dtype=np.float32)
        w = rng.standard_normal(self.weight_shape, dtype=np.float32)
        w *= np.float32(1.0 / math.sqrt(self.weight_shape[1] * math.prod(self.kernel)))
        b = rng.standard_normal((self.K,), dtype=np.float32)
        dy = rng.standard_normal(self.output_shape, dtype=np.float32)
        return tuple(torch.from_numpy(a) for a in (x, w, b, dy))

    def algo(self, x, w, dy) -> str:
        """The 2-D kernel cnnops' algo="auto" picks for the lowered problem (1-D: height 1; 3-D:
        kernel depth taps gathered into channels; transposed: the convolution it is the adjoint
        of, whose input has grad_output's shape)."""
        nd, s, p = self.nd, self.stride, self.pad
        src = dy if self.transposed else x
        try:
            return cnnops._C.conv_algo(self.family, src, w, nd, [s] * nd, [p] * (2 * nd), [1] * nd, self.groups,
                                       "zeros", "auto")
        except Exception:  # noqa: BLE001 - the name is a nicety; the timed calls report real errors
            return "?"

    def calls(self, torch, x, w, b, dy) -> dict:
        """The four timed callables: fwd/bwd of cnnops and of torch on the same tensors."""
        F = torch.nn.functional
        nd, s, p, g, op = self.nd, self.stride, self.pad, self.groups, self.output_padding
        needs = [True, True, True]
        aten_bwd = torch.ops.aten.convolution_backward
        c_fwd, c_bwd = getattr(cnnops, self.family), getattr(cnnops, f"{self.family}_backward")
        t_fwd = getattr(F, self.family)
        if self.transposed:
            return {
                "fwd_cnnops": lambda: c_fwd(x, w, b, stride=s, padding=p, output_padding=op, groups=g, dilation=1),
                "fwd_torch": lambda: t_fwd(x, w, b, stride=s, padding=p, output_padding=op, groups=g, dilation=1),
                "bwd_cnnops": lambda: c_bwd(dy, x, w, s, p, op, g, 1, needs=(True, True, True)),
                "bwd_torch": lambda: aten_bwd(dy, x, w, [self.K], [s] * nd, [p] * nd, [1] * nd, True, [op] * nd, g,
                                              needs),
            }
        return {
            "fwd_cnnops": lambda: c_fwd(x, w, b, stride=s, padding=p, dilation=1, groups=g),
            "fwd_torch": lambda: t_fwd(x, w, b, stride=s, padding=p, dilation=1, groups=g),
            "bwd_cnnops": lambda: c_bwd(dy, x, w, s, p, 1, g, "zeros", needs=(True, True, True)),
            "bwd_torch": lambda: aten_bwd(dy, x, w, [self.K], [s] * nd, [p] * nd, [1] * nd, False, [0] * nd, g,
                                          needs),
        }


FAMILY_NAMES = ("conv1d", "conv3d", "conv_transpose2d")

# A large and a small layer each for conv1d and conv3d, three decoder layers for
# conv_transpose2d; `small` ones make up --quick.
CONV1D_LAYERS = [
    # (N, C, L) = (32, 64, 4096), K = 64, k = 9, padding 4; then a 3-tap layer
    NdLayer("conv1d", "conv1d_k9", 32, 64, (4096,), 64, 9, pad=4),
    NdLayer("conv1d", "conv1d_k3", 16, 128, (1024,), 128, 3, pad=1, small=True),
]
CONV3D_LAYERS = [
    # (N, C, D, H, W) = (4, 32, 16, 56, 56), K = 64, 3x3x3, padding 1; then a
    # smaller C3D-like layer
    NdLayer("conv3d", "conv3d_56", 4, 32, (16, 56, 56), 64, 3, pad=1),
    NdLayer("conv3d", "c3d_28", 2, 64, (8, 28, 28), 64, 3, pad=1, small=True),
]
CONV_TRANSPOSE2D_LAYERS = [
    # DCGAN generator upsampling: 16x256x16x16 -> 128 channels, 4x4, stride 2, padding 1 (32x32 out)
    NdLayer("conv_transpose2d", "dcgan_up", 16, 256, (16, 16), 128, 4, stride=2, pad=1),
    # FCN score upsampling: 21 classes -> 21, 4x4, stride 2, padding 1 (128x128 out)
    NdLayer("conv_transpose2d", "fcn_up", 4, 21, (64, 64), 21, 4, stride=2, pad=1, small=True),
    # U-Net decoder up-convolution: 4x512x32x32 -> 256 channels, 2x2, stride 2 (64x64 out)
    NdLayer("conv_transpose2d", "unet_up", 4, 512, (32, 32), 256, 2, stride=2),
]

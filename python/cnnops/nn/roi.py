"""Region pooling layers for two-stage detectors, over the cnnops region kernels (cnnops.roi).

``forward(input, boxes)`` keeps the boxes (and RoI Pool's argmax) for ``backward(grad_out)``,
which returns the features' gradient; boxes are data, not parameters, and get none."""
from __future__ import annotations

from .module import Module, check_dtype, check_ndim, saved

_NCHW = "(N, C, H, W)"


class _RoI(Module):
    def __init__(self, output_size, spatial_scale=1.0):
        super().__init__()
        self.output_size, self.spatial_scale = output_size, spatial_scale
        self._cache = None

    def _check(self, x):
        name = type(self).__name__
        check_dtype(x, name)
        check_ndim(x, (4,), _NCHW, name)


class RoIAlign(_RoI):
    """RoI Align (torchvision.ops.RoIAlign): input (N, C, H, W) and boxes ((K, 5) with the batch
    index first, or a list of per-image (Ki, 4)) -> (K, C, PH, PW). See cnnops.roi_align."""

    def __init__(self, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
        super().__init__(output_size, spatial_scale)
        self.sampling_ratio, self.aligned = sampling_ratio, bool(aligned)

    def extra_repr(self):
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")

    def forward(self, x, boxes):
        import cnnops

        self._check(x)
        y = cnnops.roi_align(x, boxes, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)
        self._cache = (x.shape, boxes)
        return y

    def backward(self, grad_out):
        import cnnops

        shape, boxes = saved(self._cache, "RoIAlign")
        return cnnops.roi_align_backward(grad_out, tuple(shape), boxes, self.output_size, self.spatial_scale,
                                         self.sampling_ratio, self.aligned)


class RoIPool(_RoI):
    """RoI max pooling (torchvision.ops.RoIPool): input (N, C, H, W) and boxes -> (K, C, PH, PW);
    backward routes each bin's gradient to its argmax. See cnnops.roi_pool."""

    def extra_repr(self):
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"

    def forward(self, x, boxes):
        import cnnops

        self._check(x)
        y, idx = cnnops.roi_pool(x, boxes, self.output_size, self.spatial_scale, return_indices=True)
        self._cache = (x.shape, boxes, idx)
        return y

    def backward(self, grad_out):
        import cnnops

        shape, boxes, idx = saved(self._cache, "RoIPool")
        return cnnops.roi_pool_backward(grad_out, tuple(shape), boxes, self.output_size, self.spatial_scale,
                                        indices=idx)

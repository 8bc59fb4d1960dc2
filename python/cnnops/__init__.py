"""cnnops: hand-written C++ (OpenMP) and CUDA kernels for CNN operations with a thin Python API.

Arrays go in and out through DLPack (NumPy, PyTorch, CuPy, JAX), zero-copy."""
from __future__ import annotations

from . import _C, cuda
from ._args import integer as _integer
from ._C import Array, __version__
from .conv import (conv1d, conv1d_backward, conv2d, conv2d_algo, conv2d_backward, conv3d,
                   conv3d_backward)
from .conv_transpose import (conv_transpose1d, conv_transpose1d_backward, conv_transpose2d,
                             conv_transpose2d_backward, conv_transpose3d, conv_transpose3d_backward)
from .pool import POOL_FUNCTIONS as _POOL_FUNCTIONS
from .pool import (adaptive_avg_pool1d, adaptive_avg_pool1d_backward, adaptive_avg_pool2d,
                   adaptive_avg_pool2d_backward, adaptive_avg_pool3d, adaptive_avg_pool3d_backward,
                   adaptive_max_pool1d, adaptive_max_pool1d_backward, adaptive_max_pool2d,
                   adaptive_max_pool2d_backward, adaptive_max_pool3d, adaptive_max_pool3d_backward, avg_pool1d,
                   avg_pool1d_backward, avg_pool2d, avg_pool2d_backward, avg_pool3d, avg_pool3d_backward,
                   global_avg_pool2d, global_avg_pool2d_backward, global_max_pool2d, global_max_pool2d_backward,
                   lp_pool1d, lp_pool1d_backward, lp_pool2d, lp_pool2d_backward, lp_pool3d, lp_pool3d_backward,
                   max_pool1d, max_pool1d_backward, max_pool2d, max_pool2d_backward, max_pool3d,
                   max_pool3d_backward)
from .pool_fractional import (fractional_max_pool2d, fractional_max_pool2d_backward, fractional_max_pool3d,
                              fractional_max_pool3d_backward)
from .unpool import (bed_of_nails_unpool2d, bed_of_nails_unpool2d_backward, max_unpool1d, max_unpool1d_backward,
                     max_unpool2d, max_unpool2d_backward, max_unpool3d, max_unpool3d_backward, upsample_nearest1d,
                     upsample_nearest1d_backward, upsample_nearest2d, upsample_nearest2d_backward, upsample_nearest3d,
                     upsample_nearest3d_backward)
from .boxes import (box_area, box_convert, box_iou, ciou_loss, ciou_loss_backward, clip_boxes_to_image,
                    complete_box_iou, complete_box_iou_loss, diou_loss, diou_loss_backward, distance_box_iou,
                    distance_box_iou_loss, generalized_box_iou, generalized_box_iou_loss, giou_loss,
                    giou_loss_backward, iou_loss, iou_loss_backward, remove_small_boxes)
from .nms import (batched_nms, batched_nms_padded, cluster_nms, diou_nms, fast_nms, matrix_nms, nms,
                  soft_nms)
from .roi import HELPER_FUNCTIONS as _ROI_HELPERS
from .norm import batch_norm, batch_norm_backward
from .roi import ROI_FUNCTIONS as _ROI_FUNCTIONS
from .roi import (anchors, box_decode, box_encode, ps_roi_align, ps_roi_align_backward, ps_roi_pool,
                  ps_roi_pool_backward, roi_align, roi_align_backward, roi_levels, roi_pool, roi_pool_backward)


def get_num_threads() -> int:
    """Threads every kernel uses (OMP_NUM_THREADS at import, or set_num_threads)."""
    return _C.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads the kernels use (>= 1)."""
    n = _integer(n, "n", "set_num_threads")
    if not 1 <= n <= 2**31 - 1:  # the core keeps the count in a C int
        raise ValueError(f"set_num_threads: expected a thread count >= 1 and below 2**31, got {n}")
    _C.set_num_threads(int(n))


def empty_cache() -> None:
    """Return the cached host blocks (recycled outputs of 1 MB or more) to the system."""
    _C.empty_cache()


def simd_level() -> str:
    """The SIMD kernels chosen at run time: 'avx512' (AVX-512 F/BW/VL/DQ), 'avx2+fma' or 'portable'.

    The highest level the CPU (and OS) supports, unless the environment variable
    ``CNNOPS_SIMD=portable|avx2|avx512`` asked for a lower one when cnnops was imported."""
    return _C.simd_level()


def set_simd_level(level: str) -> str:
    """Use the 'portable', 'avx2' or 'avx512' kernels from now on (clamped to what the CPU supports);
    returns the level set, as :func:`simd_level` names it (which this function also accepts)."""
    if not isinstance(level, str):
        raise TypeError(f"set_simd_level: expected level 'portable', 'avx2' or 'avx512' as a string, got {level!r}")
    return _C.set_simd_level(level)


def info() -> dict:
    """Version, build flags, SIMD level, threads and CUDA state, as a dict."""
    d = {
        "version": __version__,
        "build": _C.build_info(),
        "simd": simd_level(),
        "cpu_avx2_fma": bool(_C.cpu_has_avx2_fma()),
        "cpu_avx512": bool(_C.cpu_has_avx512()),
        "openmp": _C.openmp_version(),
        "threads": get_num_threads(),
        "cuda_compiled": cuda.is_compiled(),
        "cuda_available": cuda.is_available(),
        "cuda_emulated": cuda.is_emulated(),
    }
    if cuda.is_compiled():
        d["cuda_runtime"] = cuda.runtime_version()
    import importlib.util

    # the framework adapters, when their framework is installed (imported lazily)
    d["torch_adapter"] = "custom operators" if importlib.util.find_spec("torch") else "not available (no torch)"
    if not importlib.util.find_spec("jax"):
        d["jax_bridge"] = "not available (no jax)"
    elif hasattr(_C, "xla_ffi_targets"):
        d["jax_bridge"] = "xla_ffi (XLA FFI API %d.%d)" % _C.xla_ffi_api_version
    else:
        d["jax_bridge"] = "pure_callback (built without jaxlib: no XLA FFI handlers)"
    if d["cuda_available"]:
        d["cuda_devices"] = [cuda.device_name(i) for i in range(cuda.device_count())]
    return d


__all__ = [
    "Array",
    "batch_norm",
    "batch_norm_backward",
    "conv1d",
    "conv1d_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_algo",
    "conv3d",
    "conv3d_backward",
    "conv_transpose1d",
    "conv_transpose1d_backward",
    "conv_transpose2d",
    "conv_transpose2d_backward",
    "conv_transpose3d",
    "conv_transpose3d_backward",
    "fractional_max_pool2d",
    "fractional_max_pool2d_backward",
    "fractional_max_pool3d",
    "fractional_max_pool3d_backward",
    "max_unpool1d",
    "max_unpool1d_backward",
    "max_unpool2d",
    "max_unpool2d_backward",
    "max_unpool3d",
    "max_unpool3d_backward",
    "bed_of_nails_unpool2d",
    "bed_of_nails_unpool2d_backward",
    "upsample_nearest1d",
    "upsample_nearest1d_backward",
    "upsample_nearest2d",
    "upsample_nearest2d_backward",
    "upsample_nearest3d",
    "upsample_nearest3d_backward",
    "box_convert",
    "box_area",
    "clip_boxes_to_image",
    "remove_small_boxes",
    "box_iou",
    "generalized_box_iou",
    "distance_box_iou",
    "complete_box_iou",
    "iou_loss",
    "giou_loss",
    "diou_loss",
    "ciou_loss",
    "iou_loss_backward",
    "giou_loss_backward",
    "diou_loss_backward",
    "ciou_loss_backward",
    "generalized_box_iou_loss",
    "distance_box_iou_loss",
    "complete_box_iou_loss",
    "nms",
    "batched_nms",
    "batched_nms_padded",
    "soft_nms",
    "matrix_nms",
    "fast_nms",
    "cluster_nms",
    "diou_nms",
    "cuda",
    "get_num_threads",
    "set_num_threads",
    "simd_level",
    "set_simd_level",
    "info",
    "empty_cache",
    "__version__",
]
# pooling (cnnops.pool)
__all__ += list(_POOL_FUNCTIONS)
# region ops and proposal helpers (cnnops.roi)
__all__ += list(_ROI_FUNCTIONS) + list(_ROI_HELPERS)

// Region ops for two-stage detectors: RoI Pool, RoI Align and their position-sensitive variants
// (torchvision.ops.roi_pool, roi_align, ps_roi_pool, ps_roi_align), forward and backward, on
// (N, C, H, W) or (N, H, W, C) features. Python (python/cnnops/roi.py) resolves spellings; this
// layer checks the tensors, reads the boxes on the host (they are small: 5 numbers a region) and
// turns each region into a roigeom::Region in the kernels' arithmetic, then takes one branch on
// the device to ops/cpu/roi.cpp or ops/cuda/roi.cu.
#pragma once
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "ops/roi_geom.h"

namespace cnnops {

struct RoiParams {
  roigeom::Kind kind = roigeom::Align;
  int64_t out_h = 1, out_w = 1;
  double spatial_scale = 1.0;
  int64_t sampling_ratio = -1;  // align kinds; <= 0: adaptive, ceil(bin size) samples per side
  bool aligned = false;         // roi_align: shift by -0.5 (ps_roi_align always does)
  bool channels_last = false;   // features (N, H, W, C) and outputs (K, PH, PW, C')
};

// The boxes as given: one (K, 5) tensor of (batch index, x1, y1, x2, y2), or one (Ki, 4) tensor
// of (x1, y1, x2, y2) per image (per_image), in which case image i's regions come i-th.
struct RoiBoxes {
  std::vector<Tensor> parts;
  bool per_image = false;
};

// Everything the kernels need: sizes, the regions in the order of the output, and the regions of
// each image in that order (backward: each image's gradient sums its regions in region order).
struct RoiPlan {
  RoiParams p;
  int64_t N = 0, C = 0, H = 0, W = 0;  // features
  int64_t K = 0, C_out = 0;            // regions and output channels (C, or C / (PH * PW))
  std::vector<roigeom::Region> regions;
  std::vector<int64_t> image_start;    // size N + 1: image n's regions are order[image_start[n] ...]
  std::vector<int64_t> order;          // region indices grouped by image, increasing within one

  std::vector<int64_t> out_shape() const {
    return p.channels_last ? std::vector<int64_t>{K, p.out_h, p.out_w, C_out}
                           : std::vector<int64_t>{K, C_out, p.out_h, p.out_w};
  }
  std::vector<int64_t> in_shape() const {
    return p.channels_last ? std::vector<int64_t>{N, H, W, C} : std::vector<int64_t>{N, C, H, W};
  }
};

struct RoiResult {
  Tensor output, indices;  // indices: roi_pool's argmax (int64, h * W + w, -1 for an empty bin)
  bool has_indices = false;
};

// input (N, C, H, W) (or NHWC) -> output (K, C', PH, PW) (or (K, PH, PW, C')); roi_pool also
// returns its argmax when return_indices.
RoiResult roi_forward(const char* op, const Tensor& input, const RoiBoxes& boxes, const RoiParams& p,
                      bool return_indices);

// grad_output (K, C', PH, PW) -> grad_input (N, C, H, W) for features of shape in_shape (in the
// layout of p). roi_pool needs `indices` from its forward.
Tensor roi_backward(const char* op, const Tensor& grad_output, const RoiBoxes& boxes, const Tensor* indices,
                    const std::vector<int64_t>& in_shape, const RoiParams& p);

}  // namespace cnnops

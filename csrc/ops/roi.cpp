// Region ops: argument checks, the boxes read on the host and turned into regions, dispatch.
#include "ops/roi.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/cuda.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "ops/cpu/roi.h"
#include "ops/cuda/roi.h"
#include "ops/pool.h"

namespace cnnops {

using roigeom::Region;

namespace {

// float16 / bfloat16 bits -> float (boxes of half-precision CUDA inputs, read on the host).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf / NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: normalise
    exp = 113;
    while (!(man & 0x400u)) {
      man <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((man & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
float bf16_to_float(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// A boxes tensor's values as doubles (exact for every floating dtype), read on the host.
std::vector<double> host_values(const Tensor& t) {
  Tensor c = contiguous(t);
  const int64_t n = c.numel();
  std::vector<unsigned char> raw(static_cast<size_t>(n) * dtype_size(c.dtype));
  if (n > 0) {
    if (c.device.type == DeviceType::CUDA) {
#ifdef CNNOPS_WITH_CUDA
      cuda::DeviceGuard guard(c.device.index, current_op());
      cuda::copy_to_host(raw.data(), c.data, raw.size(), cuda::current_stream(), current_op());
#else
      no_kernel_for_device(current_op(), c.device);
#endif
    } else {
      std::memcpy(raw.data(), c.data, raw.size());
    }
  }
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* p = raw.data() + i * dtype_size(c.dtype);
    switch (c.dtype) {
      case DType::Float32: {
        float f;
        std::memcpy(&f, p, 4);
        v[i] = f;
        break;
      }
      case DType::Float64: std::memcpy(&v[i], p, 8); break;
      case DType::Float16: {
        uint16_t h;
        std::memcpy(&h, p, 2);
        v[i] = half_to_float(h);
        break;
      }
      default: {
        uint16_t h;
        std::memcpy(&h, p, 2);
        v[i] = bf16_to_float(h);
        break;
      }
    }
  }
  return v;
}

// "boxes" or "boxes[i]" (per-image lists), for messages.
std::string part_name(const RoiBoxes& b, size_t i) { return b.per_image ? str("boxes[", i, "]") : "boxes"; }

const char* coord_name(int j) {
  static const char* names[] = {"x1", "y1", "x2", "y2"};
  return names[j];
}

// A float value converted to int64, saturating at +-2^60 (beyond int32, where torchvision's int
// arithmetic is undefined, the windows are clipped to the features anyway).
int64_t sat_i64(double v) {
  constexpr double kMax = 1152921504606846976.0;  // 2^60
  if (v >= kMax) return int64_t(1) << 60;
  if (v <= -kMax) return -(int64_t(1) << 60);
  return static_cast<int64_t>(v);
}

// The adaptive grid: ceil(bin) as torchvision's int, saturating at the int range.
int64_t grid_of(double ceil_bin) {
  if (ceil_bin >= 2147483647.0) return 2147483647;
  if (ceil_bin <= -2147483648.0) return -2147483648LL;
  return static_cast<int64_t>(ceil_bin);
}

// One region in arithmetic type T, as torchvision's kernels compute it.
template <typename T>
Region make_region(const char* op, const std::string& where, int64_t batch, const double* xyxy, const RoiParams& p,
                   int64_t H, int64_t W, const char* dtype) {
  using roigeom::Kind;
  Region r{};
  r.batch = batch;
  const T scale = static_cast<T>(p.spatial_scale);
  T s[4];
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<T>(xyxy[j]) * scale;
    CNNOPS_CHECK_VALUE(std::isfinite(s[j]), op, ": expected ", where, " times spatial_scale to be finite in ", dtype,
                       ", got ", coord_name(j), " = ", xyxy[j], " times ", p.spatial_scale);
  }
  const int64_t PH = p.out_h, PW = p.out_w;
  if (p.kind == roigeom::Align || p.kind == roigeom::PsAlign) {
    const T off = (p.kind == roigeom::PsAlign || p.aligned) ? T(0.5) : T(0);
    const T sw = s[0] - off, sh = s[1] - off, ew = s[2] - off, eh = s[3] - off;
    T rw = ew - sw, rh = eh - sh;
    CNNOPS_CHECK_VALUE(std::isfinite(rw) && std::isfinite(rh), op, ": expected the size of ", where,
                       " times spatial_scale to be finite in ", dtype);
    if (p.kind == roigeom::Align && !p.aligned) {
      rw = std::max(rw, T(1));
      rh = std::max(rh, T(1));
    }
    const T bh = rh / static_cast<T>(PH), bw = rw / static_cast<T>(PW);
    r.start_h = sh;
    r.start_w = sw;
    r.bin_h = bh;
    r.bin_w = bw;
    r.grid_h = p.sampling_ratio > 0 ? p.sampling_ratio : grid_of(std::ceil(bh));
    r.grid_w = p.sampling_ratio > 0 ? p.sampling_ratio : grid_of(std::ceil(bw));
    const int64_t n = r.grid_h * r.grid_w;
    r.count = static_cast<T>(p.kind == roigeom::Align ? std::max<int64_t>(n, 1) : n);
    r.row0 = r.row1 = 0;
    if (r.grid_h > 0 && r.grid_w > 0) {
      const T y0 = roigeom::sample_pos<T>(sh, 0, bh, 0, r.grid_h);
      const T y1 = roigeom::sample_pos<T>(sh, PH - 1, bh, r.grid_h - 1, r.grid_h);
      const T lo = std::min(y0, y1), hi = std::max(y0, y1);
      if (!(hi < T(-1) || lo > static_cast<T>(H))) {
        r.row0 = lo <= T(0) ? 0 : std::min<int64_t>(static_cast<int64_t>(lo), H - 1);
        r.row1 = hi <= T(0) ? std::min<int64_t>(2, H)
                            : static_cast<int64_t>(std::min<double>(std::floor(hi) + 2, static_cast<double>(H)));
      }
    }
  } else {
    int64_t c[4];
    for (int j = 0; j < 4; ++j) c[j] = sat_i64(std::round(s[j]));
    const int64_t plus = p.kind == roigeom::Pool ? 1 : 0;
    const int64_t rw = std::max<int64_t>(c[2] - c[0] + plus, 1), rh = std::max<int64_t>(c[3] - c[1] + plus, 1);
    const T bh = static_cast<T>(rh) / static_cast<T>(PH), bw = static_cast<T>(rw) / static_cast<T>(PW);
    r.istart_w = c[0];
    r.istart_h = c[1];
    r.bin_h = bh;
    r.bin_w = bw;
    const int64_t clip = p.kind == roigeom::Pool ? H : H - 1;
    int64_t b0, e0, b1, e1;
    roigeom::pool_window<T>(c[1], bh, 0, clip, &b0, &e0);
    roigeom::pool_window<T>(c[1], bh, PH - 1, clip, &b1, &e1);
    r.row0 = b0;
    r.row1 = std::max(b0, e1);
  }
  return r;
}

// Checks the boxes and builds the plan's regions (the features' sizes must be set).
void plan_regions(const char* op, RoiPlan& plan, const RoiBoxes& boxes, const Tensor& ref, const char* ref_name,
                  bool half_input) {
  const RoiParams& p = plan.p;
  CNNOPS_CHECK_VALUE(!boxes.parts.empty(), op, ": expected boxes as a (K, 5) array or a non-empty list of (Ki, 4) ",
                     "arrays, got an empty list");
  if (boxes.per_image)
    CNNOPS_CHECK_VALUE(static_cast<int64_t>(boxes.parts.size()) <= plan.N, op,
                       ": expected at most one (Ki, 4) box array per image (", plan.N, " images), got ",
                       boxes.parts.size(), " arrays");
  const int64_t cols = boxes.per_image ? 4 : 5;
  int64_t K = 0;
  for (size_t i = 0; i < boxes.parts.size(); ++i) {
    const Tensor& b = boxes.parts[i];
    const std::string name = part_name(boxes, i);
    check_same_device(op, ref, ref_name, b, name.c_str());
    const bool dtype_ok = b.dtype == ref.dtype || (half_input && b.dtype == DType::Float32);
    CNNOPS_CHECK_TYPE(dtype_ok, op, ": expected ", name, " with the ", ref_name, "'s dtype ", dtype_name(ref.dtype),
                      half_input ? " (or float32)" : "", ", got ", dtype_name(b.dtype));
    CNNOPS_CHECK_VALUE(b.ndim() == 2 && b.shape[1] == cols, op, ": expected ", name, " of shape ",
                       boxes.per_image ? "(Ki, 4) as (x1, y1, x2, y2)" : "(K, 5) as (batch index, x1, y1, x2, y2)",
                       ", got shape ", shape_str(b.shape));
    K = checked_add(K, b.shape[0], op, "the number of boxes");
  }
  plan.K = K;
  plan.regions.resize(static_cast<size_t>(K));
  const bool dbl = ref.dtype == DType::Float64;
  const char* arith = dbl ? "float64" : "float32";
  int64_t k = 0;
  for (size_t i = 0; i < boxes.parts.size(); ++i) {
    const std::vector<double> v = host_values(boxes.parts[i]);
    const int64_t rows = boxes.parts[i].shape[0];
    for (int64_t r = 0; r < rows; ++r, ++k) {
      const double* row = v.data() + r * cols;
      const std::string where = str(part_name(boxes, i), " row ", r);
      int64_t batch = static_cast<int64_t>(i);
      if (!boxes.per_image) {
        const double b = row[0];
        CNNOPS_CHECK_VALUE(std::isfinite(b) && b == std::floor(b) && b >= 0 && b < static_cast<double>(plan.N), op,
                           ": expected the batch index of ", where, " (column 0) to be an integer in [0, ", plan.N,
                           "), got ", b);
        batch = static_cast<int64_t>(b);
      }
      const double* xyxy = boxes.per_image ? row : row + 1;
      for (int j = 0; j < 4; ++j)
        CNNOPS_CHECK_VALUE(std::isfinite(xyxy[j]), op, ": expected finite box coordinates, got ", coord_name(j), " = ",
                           xyxy[j], " in ", where);
      plan.regions[k] = dbl ? make_region<double>(op, where, batch, xyxy, p, plan.H, plan.W, arith)
                            : make_region<float>(op, where, batch, xyxy, p, plan.H, plan.W, arith);
    }
  }
  // regions grouped by image, in increasing order within an image (a stable counting sort)
  plan.image_start.assign(static_cast<size_t>(plan.N) + 1, 0);
  for (const Region& r : plan.regions) ++plan.image_start[r.batch + 1];
  for (int64_t n = 0; n < plan.N; ++n) plan.image_start[n + 1] += plan.image_start[n];
  plan.order.resize(static_cast<size_t>(K));
  std::vector<int64_t> next(plan.image_start.begin(), plan.image_start.end() - 1);
  for (int64_t j = 0; j < K; ++j) plan.order[next[plan.regions[j].batch]++] = j;
}

void check_params(const char* op, const RoiParams& p) {
  CNNOPS_CHECK_VALUE(p.out_h >= 1 && p.out_w >= 1, op, ": expected output_size >= 1, got (", p.out_h, ", ", p.out_w,
                     ")");
  CNNOPS_CHECK_VALUE(std::isfinite(p.spatial_scale) && p.spatial_scale > 0, op,
                     ": expected a positive finite spatial_scale, got ", p.spatial_scale);
  CNNOPS_CHECK_VALUE(p.sampling_ratio < 2147483648LL, op, ": expected sampling_ratio below 2**31, got ",
                     p.sampling_ratio);
}

bool is_ps(const RoiParams& p) { return p.kind == roigeom::PsPool || p.kind == roigeom::PsAlign; }

// Feature sizes from a 4-d shape in the params' layout; the output channels.
void set_features(const char* op, RoiPlan& plan, const std::vector<int64_t>& shape, const char* name) {
  const RoiParams& p = plan.p;
  const char* layout = p.channels_last ? "(N, H, W, C)" : "(N, C, H, W)";
  CNNOPS_CHECK_VALUE(shape.size() == 4, op, ": expected ", name, " with 4 dimensions ", layout, ", got ", shape.size(),
                     " with shape ", shape_str(shape));
  for (int64_t s : shape)
    CNNOPS_CHECK_VALUE(s >= 0, op, ": expected non-negative sizes of ", name, ", got ", shape_str(shape));
  plan.N = shape[0];
  plan.C = p.channels_last ? shape[3] : shape[1];
  plan.H = p.channels_last ? shape[1] : shape[2];
  plan.W = p.channels_last ? shape[2] : shape[3];
  CNNOPS_CHECK_VALUE(plan.H > 0 && plan.W > 0, op, ": expected ", name, " with non-zero height and width ", layout,
                     ", got shape ", shape_str(shape));
  checked_numel(shape, op, "the number of input elements");
  plan.C_out = plan.C;
  if (is_ps(p)) {
    const int64_t bins = checked_mul(p.out_h, p.out_w, op, "output_size");
    CNNOPS_CHECK_VALUE(plan.C % bins == 0, op, ": expected input channels divisible by output height x width = ", bins,
                       ", got ", plan.C, " channels");
    plan.C_out = plan.C / bins;
  }
}

void check_output(const char* op, const RoiPlan& plan) {
  const int64_t n = checked_numel(plan.out_shape(), op, "the number of output elements");
  check_output_bytes(n, 8, op);
}

}  // namespace

RoiResult roi_forward(const char* op, const Tensor& input, const RoiBoxes& boxes, const RoiParams& p,
                      bool return_indices) {
  check_float_tensor(op, "input", input);
  check_params(op, p);
  RoiPlan plan;
  plan.p = p;
  set_features(op, plan, input.shape, "input");
  const bool half = input.dtype == DType::Float16 || input.dtype == DType::BFloat16;
  plan_regions(op, plan, boxes, input, "input", half);
  check_output(op, plan);
  Tensor x = contiguous(input);
  RoiResult r;
  r.output = empty(plan.out_shape(), x.dtype, x.device);
  r.has_indices = return_indices && p.kind == roigeom::Pool;
  // roi_pool's kernels always produce the argmax (its backward needs it); it is returned on request
  Tensor idx;
  if (p.kind == roigeom::Pool) idx = empty(plan.out_shape(), DType::Int64, x.device);
  switch (x.device.type) {
    case DeviceType::CPU: cpu::roi_forward(plan, x, r.output, p.kind == roigeom::Pool ? &idx : nullptr); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: cuda::roi_forward(plan, x, r.output, p.kind == roigeom::Pool ? &idx : nullptr); break;
#endif
    default: no_kernel_for_device(op, x.device);
  }
  if (r.has_indices) r.indices = idx;
  return r;
}

Tensor roi_backward(const char* op, const Tensor& grad_output, const RoiBoxes& boxes, const Tensor* indices,
                    const std::vector<int64_t>& in_shape, const RoiParams& p) {
  check_float_tensor(op, "grad_output", grad_output);
  check_params(op, p);
  RoiPlan plan;
  plan.p = p;
  set_features(op, plan, in_shape, "input");
  const bool half = grad_output.dtype == DType::Float16 || grad_output.dtype == DType::BFloat16;
  plan_regions(op, plan, boxes, grad_output, "grad_output", half);
  const std::vector<int64_t> want = plan.out_shape();
  CNNOPS_CHECK_VALUE(grad_output.shape == want, op, ": expected grad_output of shape ", shape_str(want),
                     " (the forward's output), got ", shape_str(grad_output.shape));
  Tensor ix;
  if (p.kind == roigeom::Pool) {
    CNNOPS_CHECK_VALUE(indices != nullptr, op, ": expected the indices of roi_pool's forward");
    check_index_tensor(op, "indices", *indices);
    check_same_device(op, grad_output, "grad_output", *indices, "indices");
    CNNOPS_CHECK_VALUE(indices->shape == want, op, ": expected indices of shape ", shape_str(want),
                       " (the forward's output), got ", shape_str(indices->shape));
    ix = contiguous(*indices);
  }
  check_output_bytes(checked_numel(plan.in_shape(), op, "the number of input elements"), 8, op);
  Tensor dy = contiguous(grad_output);
  Tensor dx = empty(plan.in_shape(), dy.dtype, dy.device);
  int64_t bad = 0;
  bool ok = true;
  const Tensor* ip = p.kind == roigeom::Pool ? &ix : nullptr;
  switch (dy.device.type) {
    case DeviceType::CPU: ok = cpu::roi_backward(plan, dy, ip, dx, &bad); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: ok = cuda::roi_backward(plan, dy, ip, dx, &bad); break;
#endif
    default: no_kernel_for_device(op, dy.device);
  }
  if (!ok) {
    int64_t v = 0;
    if (dy.device.type == DeviceType::CPU) {
      v = ix.ptr<int64_t>()[bad];
    } else {
#ifdef CNNOPS_WITH_CUDA
      cuda::DeviceGuard guard(dy.device.index, op);
      cuda::copy_to_host(&v, ix.ptr<int64_t>() + bad, sizeof(v), cuda::current_stream(), op);
#endif
    }
    throw ValueError(str(op, ": expected indices from roi_pool's forward (-1, or h * W + w inside the bin's window), ",
                         "got ", v, " at flat position ", bad));
  }
  return dx;
}

}  // namespace cnnops

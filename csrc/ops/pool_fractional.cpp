// Fractional max pooling: checks, window tables from torch samples or TF sequences, dispatch.
#include "ops/pool_fractional.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cuda.h"
#include "core/dispatch.h"
#include "core/error.h"
#include "ops/cpu/pool_fractional.h"
#include "ops/cuda/pool_fractional.h"
#include "ops/pool.h"

namespace cnnops {

static void set_spatial(Geom5& g, int nd, const std::vector<int64_t>& s) {
  g.D = nd == 3 ? s[0] : 1;
  g.H = s[nd - 2];
  g.W = s[nd - 1];
}

static const char* dim_name(int nd, int i) {
  static const char* n2[2] = {"height", "width"};
  static const char* n3[3] = {"depth", "height", "width"};
  return nd == 2 ? n2[i] : n3[i];
}

// Window starts of one dimension in PyTorch's rule, in the input's scalar type.
template <typename T>
static void torch_intervals(T u, int64_t in, int64_t out, int64_t k, int64_t* start) {
  if (out > 1) {
    const T alpha = static_cast<T>(in - k) / static_cast<T>(out - 1);
    for (int64_t i = 0; i < out - 1; ++i)
      start[i] = static_cast<int>((static_cast<T>(i) + u) * alpha) - static_cast<int>(u * alpha);
  }
  start[out - 1] = in - k;
}

// The contents of t (on the CPU or a CUDA device) as host bytes in row-major order.
static std::vector<unsigned char> host_bytes(const char* op, const Tensor& t) {
  std::vector<unsigned char> b(static_cast<size_t>(t.numel()) * dtype_size(t.dtype));
  if (b.empty()) return b;
  if (t.device.type == DeviceType::CPU) {
    std::memcpy(b.data(), contiguous(t).data, b.size());
    return b;
  }
#ifdef CNNOPS_WITH_CUDA
  cuda::DeviceGuard guard(t.device.index, op);
  cuda::copy_to_host(b.data(), contiguous(t).data, b.size(), cuda::current_stream(), op);
#else
  no_kernel_for_device(op, t.device);
#endif
  return b;
}

// Element i of host bytes holding values of dtype dt (a floating one), widened exactly to double.
static double float_value(const unsigned char* b, DType dt, int64_t i) {
  switch (dt) {
    case DType::Float64: {
      double v;
      std::memcpy(&v, b + 8 * i, 8);
      return v;
    }
    case DType::Float32: {
      float v;
      std::memcpy(&v, b + 4 * i, 4);
      return v;
    }
    case DType::Float16: {
      uint16_t h;
      std::memcpy(&h, b + 2 * i, 2);
      const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
      const double v = e == 0    ? std::ldexp(m, -24)
                       : e == 31 ? (m ? std::nan("") : HUGE_VAL)
                                 : std::ldexp(m | 0x400, e - 25);
      return (h & 0x8000) ? -v : v;
    }
    default: {  // bfloat16: the upper half of a float32
      uint16_t h;
      std::memcpy(&h, b + 2 * i, 2);
      const uint32_t bits = static_cast<uint32_t>(h) << 16;
      float v;
      std::memcpy(&v, &bits, 4);
      return v;
    }
  }
}

static FractionalResult run_forward(const char* op, const Tensor& input, int nd, const Geom5& in, const Geom5& out,
                                    const std::vector<int64_t>& win, bool per_plane) {
  Tensor x = contiguous(input);
  FractionalResult r;
  r.output = empty(geom5_shape(out, nd), x.dtype, x.device);
  r.indices = empty(geom5_shape(out, nd), DType::Int64, x.device);
  if (in.N == 0) return r;  // an empty batch: no windows to read
  switch (x.device.type) {
    case DeviceType::CPU:
      cpu::fractional_max_pool_forward(x, r.output, r.indices, in, out, win.data(), per_plane);
      break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA:
      cuda::fractional_max_pool_forward(x, r.output, r.indices, in, out, win.data(), per_plane);
      break;
#endif
    default: no_kernel_for_device(op, x.device);
  }
  return r;
}

static Geom5 checked_input(const char* op, const Tensor& input, int nd, bool cl) {
  check_float_tensor(op, "input", input);
  CNNOPS_CHECK_VALUE(nd == 2 || nd == 3, op, ": expected 2 or 3 spatial dimensions, got ", nd);
  Geom5 in = geom5_of(op, "input", input.shape, nd, cl);
  // an empty batch (N = 0) gives an empty result, as in PyTorch; other sizes must be positive
  CNNOPS_CHECK_VALUE(in.C > 0 && in.spatial() > 0, op,
                     ": expected an input with non-zero channels and spatial sizes, got shape ",
                     shape_str(input.shape));
  return in;
}

FractionalResult fractional_max_pool_samples(const char* op, const Tensor& input, const Tensor& samples, int nd,
                                             bool cl, const std::vector<int64_t>& kernel,
                                             const std::vector<int64_t>& out_size) {
  Geom5 in = checked_input(op, input, nd, cl);
  CNNOPS_CHECK_VALUE(static_cast<int>(kernel.size()) == nd && static_cast<int>(out_size.size()) == nd, op,
                     ": expected ", nd, " kernel sizes and ", nd, " output sizes, got ", shape_str(kernel), " and ",
                     shape_str(out_size));
  // float16/bfloat16 inputs (CUDA) also take float32 samples: their windows are computed in float32
  // (as torch's CUDA kernels do), and NumPy, which draws the samples Python makes, has no bfloat16
  const bool half = input.dtype == DType::Float16 || input.dtype == DType::BFloat16;
  CNNOPS_CHECK_TYPE(samples.dtype == input.dtype || (half && samples.dtype == DType::Float32), op,
                    ": expected _random_samples with the input's dtype ", dtype_name(input.dtype),
                    half ? " (or float32)" : "", ", got ", dtype_name(samples.dtype));
  // the samples only feed the host's window table: host memory or the input's device
  CNNOPS_CHECK_TYPE(samples.device.type == DeviceType::CPU || samples.device == input.device, op,
                    ": expected _random_samples on the CPU or on the input's device ", device_name(input.device),
                    ", got ", device_name(samples.device));
  const std::vector<int64_t> want{in.N, in.C, nd};
  CNNOPS_CHECK_VALUE(samples.shape == want, op, ": expected _random_samples of shape ", shape_str(want), ", got ",
                     shape_str(samples.shape));
  const int64_t ins[3] = {in.D, in.H, in.W};
  const int off = 3 - nd;
  for (int i = 0; i < nd; ++i) {
    CNNOPS_CHECK_VALUE(kernel[i] >= 1, op, ": expected kernel_size >= 1, got ", shape_str(kernel));
    CNNOPS_CHECK_VALUE(out_size[i] >= 1, op, ": expected output_size >= 1, got ", shape_str(out_size));
    CNNOPS_CHECK_VALUE(out_size[i] + kernel[i] - 1 <= ins[off + i], op,
                       ": expected output_size + kernel_size - 1 <= ", "input size in every dimension, got ",
                       dim_name(nd, i), " output ", out_size[i], " + kernel ", kernel[i], " - 1 > input ",
                       ins[off + i]);
  }
  Geom5 out = in;
  set_spatial(out, nd, out_size);
  const int64_t outs[3] = {out.D, out.H, out.W}, ks[3] = {nd == 3 ? kernel[0] : 1, kernel[nd - 2], kernel[nd - 1]};
  const int64_t planes = in.N * in.C, wstride = 2 * (out.D + out.H + out.W);
  std::vector<int64_t> win(planes * wstride);
  const std::vector<unsigned char> sv = host_bytes(op, samples);
  for (int64_t p = 0; p < planes; ++p) {
    int64_t* t = win.data() + p * wstride;
    for (int k = 0; k < 3; ++k) {
      int64_t* st = t;
      int64_t* en = t + outs[k];
      t += 2 * outs[k];
      if (k < off) {  // the depth of a 2-D problem
        st[0] = 0;
        en[0] = 1;
        continue;
      }
      // torch's sample order: 2-D (w, h); 3-D (d, h, w)
      const int dim = k - off;
      const int sidx = nd == 2 ? 1 - dim : dim;
      // the starts are computed in the samples' type: float64, else float32
      const double u = float_value(sv.data(), samples.dtype, p * nd + sidx);
      if (samples.dtype == DType::Float64) {
        CNNOPS_CHECK_VALUE(u >= 0.0 && u < 1.0, op, ": expected _random_samples in [0, 1), got ", u);
        torch_intervals<double>(u, ins[k], outs[k], ks[k], st);
      } else {
        const float uf = static_cast<float>(u);
        CNNOPS_CHECK_VALUE(uf >= 0.0f && uf < 1.0f, op, ": expected _random_samples in [0, 1), got ", uf);
        torch_intervals<float>(uf, ins[k], outs[k], ks[k], st);
      }
      for (int64_t i = 0; i < outs[k]; ++i) {
        CNNOPS_CHECK_VALUE(st[i] >= 0 && st[i] + ks[k] <= ins[k], op, ": window ", i, " of the ", dim_name(nd, dim),
                           " starts at ", st[i], ", outside the input of ", ins[k]);
        en[i] = st[i] + ks[k];
      }
    }
  }
  return run_forward(op, input, nd, in, out, win, true);
}

FractionalResult fractional_max_pool_sequences(const char* op, const Tensor& input, int nd, bool cl,
                                               const std::vector<std::vector<int64_t>>& seqs, bool overlapping) {
  Geom5 in = checked_input(op, input, nd, cl);
  CNNOPS_CHECK_VALUE(static_cast<int>(seqs.size()) == nd, op, ": expected ", nd, " pooling sequences, got ",
                     seqs.size());
  const int off = 3 - nd;
  const int64_t ins[3] = {in.D, in.H, in.W};
  std::vector<int64_t> out_size;
  for (int i = 0; i < nd; ++i) {
    const std::vector<int64_t>& q = seqs[i];
    CNNOPS_CHECK_VALUE(q.size() >= 2, op, ": expected the ", dim_name(nd, i),
                       " pooling sequence to have at least 2 entries, got ", shape_str(q));
    CNNOPS_CHECK_VALUE(q[0] == 0, op, ": expected the ", dim_name(nd, i), " pooling sequence to start at 0, got ",
                       shape_str(q));
    for (size_t j = 1; j < q.size(); ++j)
      CNNOPS_CHECK_VALUE(q[j] > q[j - 1], op, ": expected a strictly increasing ", dim_name(nd, i),
                         " pooling sequence, got ", shape_str(q));
    CNNOPS_CHECK_VALUE(q.back() <= ins[off + i], op, ": expected the ", dim_name(nd, i),
                       " pooling sequence to end at most at the input size ", ins[off + i], ", got ", shape_str(q));
    out_size.push_back(static_cast<int64_t>(q.size()) - 1);
  }
  Geom5 out = in;
  set_spatial(out, nd, out_size);
  const int64_t outs[3] = {out.D, out.H, out.W};
  std::vector<int64_t> win(2 * (out.D + out.H + out.W));
  int64_t* t = win.data();
  for (int k = 0; k < 3; ++k) {
    int64_t* st = t;
    int64_t* en = t + outs[k];
    t += 2 * outs[k];
    if (k < off) {
      st[0] = 0;
      en[0] = 1;
      continue;
    }
    const std::vector<int64_t>& q = seqs[k - off];
    for (int64_t i = 0; i < outs[k]; ++i) {
      st[i] = q[i];
      en[i] = std::min(overlapping ? q[i + 1] + 1 : q[i + 1], ins[k]);
    }
  }
  return run_forward(op, input, nd, in, out, win, false);
}

Tensor fractional_max_pool_backward(const char* op, const Tensor& grad_output, const Tensor& input,
                                    const Tensor& indices, int nd, bool cl) {
  check_float_tensor(op, "grad_output", grad_output);
  check_float_tensor(op, "input", input);
  check_index_tensor(op, "indices", indices);
  CNNOPS_CHECK_TYPE(grad_output.dtype == input.dtype, op, ": expected grad_output with the input's dtype ",
                    dtype_name(input.dtype), ", got ", dtype_name(grad_output.dtype));
  check_same_device(op, input, "input", grad_output, "grad_output");
  check_same_device(op, input, "input", indices, "indices");
  CNNOPS_CHECK_VALUE(nd == 2 || nd == 3, op, ": expected 2 or 3 spatial dimensions, got ", nd);
  Geom5 in = geom5_of(op, "input", input.shape, nd, cl);
  Geom5 out = geom5_of(op, "grad_output", grad_output.shape, nd, cl);
  CNNOPS_CHECK_VALUE(indices.shape == grad_output.shape, op, ": expected indices with the shape of grad_output ",
                     shape_str(grad_output.shape), ", got ", shape_str(indices.shape));
  CNNOPS_CHECK_VALUE(in.N == out.N && in.C == out.C, op,
                     ": expected grad_output with the batch and channels of the input ", shape_str(input.shape),
                     ", got ", shape_str(grad_output.shape));
  Tensor dy = contiguous(grad_output), ix = contiguous(indices);
  Tensor dx = empty(input.shape, dy.dtype, dy.device);
  int64_t bad = 0;
  bool ok = false;
  switch (dy.device.type) {
    case DeviceType::CPU: ok = cpu::fractional_max_pool_backward(dy, ix, dx, in, out, &bad); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: ok = cuda::fractional_max_pool_backward(dy, ix, dx, in, out, &bad); break;
#endif
    default: no_kernel_for_device(op, dy.device);
  }
  CNNOPS_CHECK_VALUE(ok, op, ": expected indices in [0, ", in.spatial(), ") (the input's spatial size), got ", bad);
  return dx;
}

}  // namespace cnnops

// Unpooling and nearest upsampling: argument checks against the tensors, index tables, dispatch.
#include "ops/unpool.h"

#include <cmath>

#include "core/dispatch.h"
#include "core/error.h"
#include "ops/cpu/unpool.h"
#include "ops/cuda/unpool.h"

namespace cnnops {

// The spatial sizes of g, outermost first, padded to 3 with leading ones.
static void set_spatial(Geom5& g, int nd, const std::vector<int64_t>& sizes) {
  g.D = nd == 3 ? sizes[0] : 1;
  g.H = nd >= 2 ? sizes[nd - 2] : 1;
  g.W = sizes[nd - 1];
}

static std::string sizes_str(const std::vector<int64_t>& v) { return shape_str(v); }

int64_t nearest_source_index(int64_t o, int64_t in, int64_t out, double scale, bool exact, bool shortcuts) {
  // PyTorch's arithmetic (aten/src/ATen/native/UpSample.h): the scale is a float, 1/scale_factor
  // when a scale factor was given, else in/out. torch's 2-D "nearest" forward also keeps two
  // historical shortcuts (out == in copies, out == 2*in halves the index); its 1-D and 3-D
  // forward kernels do not (measured on torch 2.13 CPU: scale_factor=1.05 on a length-5 axis maps
  // 1 -> 0 in 1-D and 3-D but 1 -> 1 in 2-D). They differ only when a scale factor other than
  // 1 or 2 gives out == in or out == 2*in.
  if (shortcuts) {
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
  }
  const float s = scale > 0 ? static_cast<float>(1.0 / scale) : static_cast<float>(in) / static_cast<float>(out);
  int64_t i;
  if (exact) i = static_cast<int64_t>(std::floor(static_cast<float>((static_cast<double>(o) + 0.5) * s)));
  else i = static_cast<int64_t>(std::floor(static_cast<float>(o) * s));
  return i < in - 1 ? i : in - 1;
}

namespace {
struct Tables {
  std::vector<int64_t> src[3];    // per output position: source index (d, h, w)
  std::vector<int64_t> range[3];  // per input position: [lo, hi) of the outputs reading it
};
}  // namespace

static Tables nearest_tables(const Geom5& in, const Geom5& out, int nd, const std::vector<double>& scales, bool exact,
                             bool ranges) {
  Tables t;
  const int64_t ins[3] = {in.D, in.H, in.W}, outs[3] = {out.D, out.H, out.W};
  for (int k = 0; k < 3; ++k) {
    const int dim = k - (3 - nd);  // index into scales, < 0 for a padded dimension
    const double sc = dim >= 0 ? scales[dim] : -1.0;
    t.src[k].resize(outs[k]);
    for (int64_t o = 0; o < outs[k]; ++o)
      t.src[k][o] = nearest_source_index(o, ins[k], outs[k], sc, exact, !exact && nd == 2);
    if (ranges) {
      // the map o -> src is non-decreasing, so the outputs reading input i form one run
      t.range[k].assign(2 * ins[k], 0);
      for (int64_t o = outs[k] - 1; o >= 0; --o) t.range[k][2 * t.src[k][o]] = o;
      for (int64_t o = 0; o < outs[k]; ++o) t.range[k][2 * t.src[k][o] + 1] = o + 1;
      for (int64_t i = 0; i < ins[k]; ++i)
        if (t.range[k][2 * i + 1] == 0) t.range[k][2 * i] = 0;  // read by no output: empty run
    }
  }
  return t;
}

// The output's element count and byte size fit in int64 (checked before any table or buffer is
// sized by it).
static void check_output_geom(const char* op, const Geom5& g) {
  int64_t n = 1;
  for (int64_t v : {g.N, g.C, g.D, g.H, g.W}) n = checked_mul(n, v, op, "the number of output elements");
  check_output_bytes(n, 8, op);
}

static void check_sizes(const char* op, const char* what, const std::vector<int64_t>& sizes, int nd) {
  CNNOPS_CHECK_VALUE(static_cast<int>(sizes.size()) == nd, op, ": expected ", nd, " ", what, ", got ",
                     sizes_str(sizes));
  for (int64_t s : sizes) CNNOPS_CHECK_VALUE(s >= 1, op, ": expected positive ", what, ", got ", sizes_str(sizes));
}

static void check_scales(const char* op, const std::vector<double>& scales, int nd) {
  CNNOPS_CHECK_VALUE(static_cast<int>(scales.size()) == nd, op, ": expected ", nd, " scale factors, got ",
                     scales.size());
}

Tensor upsample_nearest(const char* op, const Tensor& input, int nd, bool cl, const std::vector<int64_t>& out_size,
                        const std::vector<double>& scales, bool exact) {
  check_float_tensor(op, "input", input);
  Geom5 in = geom5_of(op, "input", input.shape, nd, cl);
  check_sizes(op, "output sizes", out_size, nd);
  check_scales(op, scales, nd);
  // an empty batch (N = 0) gives an empty result, as in PyTorch; other sizes must be positive
  CNNOPS_CHECK_VALUE(in.C > 0 && in.spatial() > 0, op,
                     ": expected an input with non-zero channels and spatial sizes, got shape ",
                     shape_str(input.shape));
  Geom5 out = in;
  set_spatial(out, nd, out_size);
  check_output_geom(op, out);
  const Tables t = nearest_tables(in, out, nd, scales, exact, false);
  Tensor x = contiguous(input);
  Tensor y = empty(geom5_shape(out, nd), x.dtype, x.device);
  switch (x.device.type) {
    case DeviceType::CPU:
      cpu::upsample_nearest_forward(x, y, in, out, t.src[0].data(), t.src[1].data(), t.src[2].data());
      break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA:
      cuda::upsample_nearest_forward(x, y, in, out, t.src[0].data(), t.src[1].data(), t.src[2].data());
      break;
#endif
    default: no_kernel_for_device(op, x.device);
  }
  return y;
}

Tensor upsample_nearest_backward(const char* op, const Tensor& grad_output, int nd, bool cl,
                                 const std::vector<int64_t>& in_size, const std::vector<double>& scales, bool exact) {
  check_float_tensor(op, "grad_output", grad_output);
  Geom5 out = geom5_of(op, "grad_output", grad_output.shape, nd, cl);
  check_sizes(op, "input sizes", in_size, nd);
  check_scales(op, scales, nd);
  Geom5 in = out;
  set_spatial(in, nd, in_size);
  check_output_geom(op, in);
  CNNOPS_CHECK_VALUE(in.C > 0 && in.spatial() > 0 && out.spatial() > 0, op,
                     ": expected a grad_output with non-zero channels and spatial sizes, got shape ",
                     shape_str(grad_output.shape));
  const Tables t = nearest_tables(in, out, nd, scales, exact, true);
  Tensor dy = contiguous(grad_output);
  Tensor dx = empty(geom5_shape(in, nd), dy.dtype, dy.device);
  switch (dy.device.type) {
    case DeviceType::CPU:
      cpu::upsample_nearest_backward(dy, dx, in, out, t.range[0].data(), t.range[1].data(), t.range[2].data());
      break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA:
      cuda::upsample_nearest_backward(dy, dx, in, out, t.range[0].data(), t.range[1].data(), t.range[2].data());
      break;
#endif
    default: no_kernel_for_device(op, dy.device);
  }
  return dx;
}

static void check_same_shape(const char* op, const char* name, const Tensor& t, const char* ref_name,
                             const Tensor& ref) {
  CNNOPS_CHECK_VALUE(t.shape == ref.shape, op, ": expected ", name, " with the shape of ", ref_name, " ",
                     shape_str(ref.shape), ", got ", shape_str(t.shape));
}

static void bad_index(const char* op, int64_t bad, const Geom5& out, int nd) {
  std::vector<int64_t> sp;
  if (nd == 3) sp.push_back(out.D);
  if (nd >= 2) sp.push_back(out.H);
  sp.push_back(out.W);
  throw ValueError(
      str(op, ": expected indices in [0, ", out.spatial(), ") for output spatial size ", shape_str(sp), ", got ", bad));
}

Tensor max_unpool(const char* op, const Tensor& input, const Tensor& indices, int nd, bool cl,
                  const std::vector<int64_t>& out_size) {
  check_float_tensor(op, "input", input);
  check_index_tensor(op, "indices", indices);
  check_same_device(op, input, "input", indices, "indices");
  Geom5 in = geom5_of(op, "input", input.shape, nd, cl);
  check_same_shape(op, "indices", indices, "input", input);
  check_sizes(op, "output sizes", out_size, nd);
  Geom5 out = in;
  set_spatial(out, nd, out_size);
  check_output_geom(op, out);
  Tensor x = contiguous(input), ix = contiguous(indices);
  Tensor y = empty(geom5_shape(out, nd), x.dtype, x.device);
  int64_t bad = 0;
  bool ok = false;
  switch (x.device.type) {
    case DeviceType::CPU: ok = cpu::max_unpool_forward(x, ix, y, in, out, &bad); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: ok = cuda::max_unpool_forward(x, ix, y, in, out, &bad); break;
#endif
    default: no_kernel_for_device(op, x.device);
  }
  if (!ok) bad_index(op, bad, out, nd);
  return y;
}

Tensor max_unpool_backward(const char* op, const Tensor& grad_output, const Tensor& indices, int nd, bool cl) {
  check_float_tensor(op, "grad_output", grad_output);
  check_index_tensor(op, "indices", indices);
  check_same_device(op, grad_output, "grad_output", indices, "indices");
  Geom5 out = geom5_of(op, "grad_output", grad_output.shape, nd, cl);
  Geom5 in = geom5_of(op, "indices", indices.shape, nd, cl);
  CNNOPS_CHECK_VALUE(in.N == out.N && in.C == out.C, op,
                     ": expected indices with the batch and channel sizes of grad_output ",
                     shape_str(grad_output.shape), ", got ", shape_str(indices.shape));
  Tensor dy = contiguous(grad_output), ix = contiguous(indices);
  Tensor dx = empty(indices.shape, dy.dtype, dy.device);
  int64_t bad = 0;
  bool ok = false;
  switch (dy.device.type) {
    case DeviceType::CPU: ok = cpu::max_unpool_backward(dy, ix, dx, in, out, &bad); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: ok = cuda::max_unpool_backward(dy, ix, dx, in, out, &bad); break;
#endif
    default: no_kernel_for_device(op, dy.device);
  }
  if (!ok) bad_index(op, bad, out, nd);
  return dx;
}

static void scale3(const char* op, const std::vector<int64_t>& scale, int nd, int64_t s[3]) {
  CNNOPS_CHECK_VALUE(static_cast<int>(scale.size()) == nd, op, ": expected ", nd, " scale factors, got ",
                     sizes_str(scale));
  for (int64_t v : scale) CNNOPS_CHECK_VALUE(v >= 1, op, ": expected scale factors >= 1, got ", sizes_str(scale));
  s[0] = nd == 3 ? scale[0] : 1;
  s[1] = nd >= 2 ? scale[nd - 2] : 1;
  s[2] = scale[nd - 1];
}

Tensor bed_of_nails(const char* op, const Tensor& input, int nd, bool cl, const std::vector<int64_t>& scale) {
  check_float_tensor(op, "input", input);
  Geom5 in = geom5_of(op, "input", input.shape, nd, cl);
  int64_t s[3];
  scale3(op, scale, nd, s);
  Geom5 out = in;
  out.D = checked_mul(in.D, s[0], op, "the output depth");
  out.H = checked_mul(in.H, s[1], op, "the output height");
  out.W = checked_mul(in.W, s[2], op, "the output width");
  check_output_geom(op, out);
  Tensor x = contiguous(input);
  Tensor y = empty(geom5_shape(out, nd), x.dtype, x.device);
  switch (x.device.type) {
    case DeviceType::CPU: cpu::bed_of_nails_forward(x, y, in, out, s); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: cuda::bed_of_nails_forward(x, y, in, out, s); break;
#endif
    default: no_kernel_for_device(op, x.device);
  }
  return y;
}

Tensor bed_of_nails_backward(const char* op, const Tensor& grad_output, int nd, bool cl,
                             const std::vector<int64_t>& scale) {
  check_float_tensor(op, "grad_output", grad_output);
  Geom5 out = geom5_of(op, "grad_output", grad_output.shape, nd, cl);
  int64_t s[3];
  scale3(op, scale, nd, s);
  CNNOPS_CHECK_VALUE(out.D % s[0] == 0 && out.H % s[1] == 0 && out.W % s[2] == 0, op,
                     ": expected grad_output spatial sizes divisible by the scale ", sizes_str(scale), ", got shape ",
                     shape_str(grad_output.shape));
  Geom5 in = out;
  in.D /= s[0];
  in.H /= s[1];
  in.W /= s[2];
  Tensor dy = contiguous(grad_output);
  Tensor dx = empty(geom5_shape(in, nd), dy.dtype, dy.device);
  switch (dy.device.type) {
    case DeviceType::CPU: cpu::bed_of_nails_backward(dy, dx, in, out, s); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: cuda::bed_of_nails_backward(dy, dx, in, out, s); break;
#endif
    default: no_kernel_for_device(op, dy.device);
  }
  return dx;
}

}  // namespace cnnops

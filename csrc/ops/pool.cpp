// Pooling argument checks, window arithmetic and the device branch of each entry point.
#include "ops/pool.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dispatch.h"
#include "core/error.h"
#include "core/parallel.h"
#include "ops/cpu/pool.h"
#include "ops/cuda/pool.h"

namespace cnnops {

static const char* layout(int nd, bool cl) {
  if (cl) return nd == 1 ? "(N, L, C)" : nd == 2 ? "(N, H, W, C)" : "(N, D, H, W, C)";
  return nd == 1 ? "(N, C, L)" : nd == 2 ? "(N, C, H, W)" : "(N, C, D, H, W)";
}

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Spatial sizes of the input in the caller's layout, after the rank and size checks.
static std::vector<int64_t> spatial_of(const char* op, const Tensor& x, const PoolParams& p) {
  const int nd = p.nd;
  CNNOPS_CHECK_VALUE(nd >= 1 && nd <= 3, op, ": expected 1, 2 or 3 spatial dimensions, got ", nd);
  CNNOPS_CHECK_VALUE(x.ndim() == nd + 2, op, ": expected input with ", nd + 2, " dimensions ",
                     layout(nd, p.channels_last), ", got ", x.ndim(), " with shape ", shape_str(x.shape));
  CNNOPS_CHECK_TYPE(pool_dtype_ok(x), op, ": expected input with dtype ", pool_dtypes(x), ", got ",
                    dtype_name(x.dtype));
  require_kernel(op, x);
  std::vector<int64_t> sp;
  const int off = p.channels_last ? 1 : 2;
  for (int i = 0; i < nd; ++i) sp.push_back(x.shape[off + i]);
  bool nonzero = x.shape[p.channels_last ? nd + 1 : 1] >= 1;
  for (int64_t s : sp) nonzero = nonzero && s >= 1;
  CNNOPS_CHECK_VALUE(nonzero, op, ": expected input with non-zero channels and spatial sizes, got shape ",
                     shape_str(x.shape), " ", layout(nd, p.channels_last));
  return sp;
}

// The kernels' view of the problem: every check on kernel, stride, padding, dilation and output
// size, then per-dimension window lists (PyTorch's rules, see pool.h).
// Kernel, stride, dilation and padding (or the adaptive output sizes) against the input's spatial
// sizes `sp`, before any window is built.
static void check_windows(const char* op, const Tensor& x, const PoolParams& p, const std::vector<int64_t>& sp) {
  const int nd = p.nd;
  const int64_t* k = p.kernel.data();
  if (!p.adaptive) {
    for (int i = 0; i < nd; ++i) {
      CNNOPS_CHECK_VALUE(k[i] >= 1, op, ": expected kernel_size >= 1, got ", tuple_str(k, nd));
      CNNOPS_CHECK_VALUE(p.stride[i] >= 1, op, ": expected stride >= 1, got ", tuple_str(p.stride.data(), nd));
      CNNOPS_CHECK_VALUE(p.dilation[i] >= 1, op, ": expected dilation >= 1, got ", tuple_str(p.dilation.data(), nd));
      CNNOPS_CHECK_VALUE(p.pad[2 * i] >= 0 && p.pad[2 * i + 1] >= 0, op, ": expected non-negative padding, got ",
                         tuple_str(p.pad.data(), 2 * nd), " (before, after per dimension)");
    }
    for (int i = 0; i < nd; ++i) {
      const int64_t eff = checked_mul(p.dilation[i], k[i] - 1, op, "the dilated kernel size") + 1;
      CNNOPS_CHECK_VALUE(p.pad[2 * i] <= eff / 2 && p.pad[2 * i + 1] <= eff / 2, op,
                         ": expected padding at most half the (dilated) kernel size, got padding ",
                         tuple_str(p.pad.data(), 2 * nd), " (before, after per dimension) for kernel_size ",
                         tuple_str(k, nd), (p.dilation[i] > 1 ? " with dilation" : ""));
    }
    for (int i = 0; i < nd; ++i) {
      const int64_t eff = p.dilation[i] * (k[i] - 1) + 1;  // checked above
      const int64_t padded = checked_add(checked_add(sp[i], p.pad[2 * i], op, "the padded input size"),
                                         p.pad[2 * i + 1], op, "the padded input size");
      CNNOPS_CHECK_VALUE(eff <= padded, op, ": expected the (dilated) kernel ", tuple_str(k, nd),
                         " to fit in the padded input, got padded size ", padded, " < kernel extent ", eff,
                         " in spatial dimension ", i, " of input shape ", shape_str(x.shape));
    }
  } else {
    for (int i = 0; i < nd; ++i)
      CNNOPS_CHECK_VALUE(p.out[i] >= 1, op, ": expected output_size >= 1, got ", tuple_str(p.out.data(), nd));
  }
}

// PyTorch's adaptive windows of one dimension: output o covers [floor(o * in / O), ceil((o + 1) * in / O)).
static void adaptive_windows(int64_t in, int64_t O, std::vector<int64_t>& b, std::vector<int64_t>& c,
                             std::vector<int64_t>& z) {
  b.reserve(static_cast<size_t>(O));
  c.reserve(static_cast<size_t>(O));
  z.reserve(static_cast<size_t>(O));
  for (int64_t o = 0; o < O; ++o) {
    // 128-bit products: o * in may exceed int64 for a long output over a long input
    const int64_t lo = static_cast<int64_t>(static_cast<__int128>(o) * in / O);
    const int64_t hi = static_cast<int64_t>((static_cast<__int128>(o + 1) * in + O - 1) / O);
    b.push_back(lo);
    c.push_back(hi - lo);
    z.push_back(hi - lo);
  }
}

// The O windows of one dimension with kernel K, stride st, dilation d and pads (plo, phi): first
// valid tap, number of valid taps, and the divisor (the window clipped to the padded input when
// padding counts, else the valid taps).
static void strided_windows(int64_t in, int64_t O, int64_t K, int64_t st, int64_t d, int64_t plo, int64_t phi,
                            bool count_pad, std::vector<int64_t>& b, std::vector<int64_t>& c, std::vector<int64_t>& z) {
  for (int64_t o = 0; o < O; ++o) {
    const int64_t start = o * st - plo;
    const int64_t j0 = start < 0 ? (-start + d - 1) / d : 0;
    int64_t j1 = floor_div(in - 1 - start, d);  // last tap inside the input
    if (j1 > K - 1) j1 = K - 1;
    const int64_t cnt = j1 >= j0 ? j1 - j0 + 1 : 0;
    int64_t first = start + j0 * d;
    if (first > in - 1) first = in - 1;
    b.push_back(first);
    c.push_back(cnt);
    if (count_pad) {
      const int64_t hend = std::min(start + K, in + phi);
      z.push_back(hend - start);
    } else {
      z.push_back(cnt);
    }
  }
}

static PoolGeom make_geom(const char* op, const Tensor& x, const PoolParams& p) {
  const std::vector<int64_t> sp = spatial_of(op, x, p);
  const int nd = p.nd;
  PoolGeom g;
  g.N = x.shape[0];
  g.C = p.channels_last ? x.shape[nd + 1] : x.shape[1];
  g.channels_last = p.channels_last;
  g.kind = p.kind;
  g.divisor_override = p.divisor_override;
  g.norm_type = p.norm_type;
  if (p.kind == PoolKind::Lp)
    CNNOPS_CHECK_VALUE(std::isfinite(p.norm_type) && p.norm_type > 0, op, ": expected a finite norm_type > 0, got ",
                       p.norm_type);
  CNNOPS_CHECK_VALUE(p.divisor_override >= 0, op, ": expected divisor_override > 0 or None, got ", p.divisor_override);
  check_windows(op, x, p, sp);
  const int64_t* k = p.kernel.data();
  g.kprod = 1;
  // Output elements so far (N, C and the dimensions done), checked before each dimension's window
  // tables (one entry per output position) are built.
  int64_t out_elems = checked_mul(g.N, g.C, op, "the number of output elements");
  for (int i = 0; i < nd; ++i) {
    const int s = 3 - nd + i;  // slot in (D, H, W)
    const int64_t in = sp[i];
    g.in[s] = in;
    auto& b = g.begin[s];
    auto& c = g.count[s];
    auto& z = g.size[s];
    if (p.adaptive) {
      const int64_t O = p.out[i];
      g.out[s] = O;
      out_elems = checked_mul(out_elems, O, op, "the number of output elements");
      check_output_bytes(out_elems, 8, op);
      adaptive_windows(in, O, b, c, z);
      continue;
    }
    const int64_t K = k[i], st = p.stride[i], d = p.dilation[i], plo = p.pad[2 * i], phi = p.pad[2 * i + 1];
    g.kprod *= static_cast<double>(K);
    g.dil[s] = d;
    const int64_t numer = in + plo + phi - d * (K - 1) - 1;
    int64_t O = (p.ceil_mode ? (numer + st - 1) / st : numer / st) + 1;
    if (p.ceil_mode && (O - 1) * st >= in + plo) --O;  // the last window must start inside input or left pad
    CNNOPS_CHECK_VALUE(O >= 1, op, ": expected a positive output size, got ", O, " in spatial dimension ", i,
                       " for input shape ", shape_str(x.shape));
    g.out[s] = O;
    out_elems = checked_mul(out_elems, O, op, "the number of output elements");
    check_output_bytes(out_elems, 8, op);
    strided_windows(in, O, K, st, d, plo, phi, p.kind == PoolKind::Avg && p.count_include_pad, b, c, z);
  }
  for (int s = 0; s < 3 - nd; ++s) {
    g.begin[s] = {0};
    g.count[s] = {1};
    g.size[s] = {1};
  }
  if (!p.adaptive && (nd <= 2 || (g.in[0] == 1 && g.out[0] == 1 && k[0] == 1))) {
    g.regular = true;
    g.kw = k[nd - 1];
    g.sw = p.stride[nd - 1];
    g.pw = p.pad[2 * (nd - 1)];
    if (nd >= 2) {
      g.kh = k[nd - 2];
      g.sh = p.stride[nd - 2];
      g.ph = p.pad[2 * (nd - 2)];
    }  // 1-D: a single row (kh = sh = 1, ph = 0)
  }
  return g;
}

static std::vector<int64_t> out_shape(const PoolGeom& g, int nd) {
  std::vector<int64_t> s = {g.N};
  if (!g.channels_last) s.push_back(g.C);
  for (int i = 0; i < nd; ++i) s.push_back(g.out[3 - nd + i]);
  if (g.channels_last) s.push_back(g.C);
  return s;
}

PoolResult pool(const char* op, const Tensor& input, const PoolParams& p) {
  const PoolGeom g = make_geom(op, input, p);
  CNNOPS_CHECK_VALUE(!p.return_indices || p.kind == PoolKind::Max, op, ": return_indices needs max pooling");
  const Tensor x = contiguous(input);
  PoolResult r;
  const auto shape = out_shape(g, p.nd);
  r.output = empty(shape, x.dtype, x.device);
  r.has_indices = p.return_indices;
  if (r.has_indices) r.indices = empty(shape, DType::Int64, x.device);
  switch (x.device.type) {
    case DeviceType::CPU: cpu::pool_forward(g, x, r, p.tf_indices); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: cuda::pool_forward(g, x, r, p.tf_indices); break;
#endif
    default: no_kernel_for_device(op, x.device);
  }
  return r;
}

Tensor pool_backward(const char* op, const Tensor& grad_output, const Tensor& input, const Tensor* indices,
                     const PoolParams& p) {
  const PoolGeom g = make_geom(op, input, p);
  const auto shape = out_shape(g, p.nd);
  CNNOPS_CHECK_TYPE(grad_output.dtype == input.dtype, op, ": expected grad_output with the input's dtype ",
                    dtype_name(input.dtype), ", got ", dtype_name(grad_output.dtype));
  check_same_device(op, input, "input", grad_output, "grad_output");
  CNNOPS_CHECK_VALUE(grad_output.shape == shape, op, ": expected grad_output of shape ", shape_str(shape),
                     " (the forward's output for input ", shape_str(input.shape), "), got ",
                     shape_str(grad_output.shape));
  Tensor ix;
  if (indices) {
    CNNOPS_CHECK_VALUE(p.kind == PoolKind::Max, op, ": indices are only used by max pooling");
    check_same_device(op, input, "input", *indices, "indices");
    CNNOPS_CHECK_TYPE(indices->dtype == DType::Int64, op, ": expected indices with dtype int64, got ",
                      dtype_name(indices->dtype));
    CNNOPS_CHECK_VALUE(indices->shape == shape, op, ": expected indices of shape ", shape_str(shape),
                       " (the forward's output), got ", shape_str(indices->shape));
    ix = contiguous(*indices);
  }
  const Tensor dy = contiguous(grad_output), x = contiguous(input);
  Tensor dx = empty(x.shape, x.dtype, x.device);
  bool ok = false;
  switch (x.device.type) {
    case DeviceType::CPU: ok = cpu::pool_backward(g, dy, x, indices ? &ix : nullptr, dx); break;
#ifdef CNNOPS_WITH_CUDA
    case DeviceType::CUDA: ok = cuda::pool_backward(g, dy, x, indices ? &ix : nullptr, dx); break;
#endif
    default: no_kernel_for_device(op, x.device);
  }
  CNNOPS_CHECK_VALUE(ok, op, ": expected indices in [0, ", g.in_plane(),
                     ") (PyTorch format: flat position in the input's spatial plane), got a value outside");
  return dx;
}

// ---- the 5-D view shared by the pooling family ----

Geom5 geom5_of(const char* op, const char* name, const std::vector<int64_t>& s, int nd, bool cl) {
  CNNOPS_CHECK_VALUE(nd >= 1 && nd <= 3, op, ": expected 1, 2 or 3 spatial dimensions, got ", nd);
  CNNOPS_CHECK_VALUE(static_cast<int>(s.size()) == nd + 2, op, ": expected ", name, " with ", nd + 2, " dimensions ",
                     layout(nd, cl), ", got ", s.size(), " with shape ", shape_str(s));
  Geom5 g;
  g.cl = cl;
  g.N = s[0];
  g.C = cl ? s[nd + 1] : s[1];
  const int64_t* sp = s.data() + (cl ? 1 : 2);
  g.W = sp[nd - 1];
  if (nd >= 2) g.H = sp[nd - 2];
  if (nd == 3) g.D = sp[0];
  return g;
}

std::vector<int64_t> geom5_shape(const Geom5& g, int nd) {
  std::vector<int64_t> sp;
  if (nd == 3) sp.push_back(g.D);
  if (nd >= 2) sp.push_back(g.H);
  sp.push_back(g.W);
  std::vector<int64_t> s{g.N};
  if (!g.cl) s.push_back(g.C);
  s.insert(s.end(), sp.begin(), sp.end());
  if (g.cl) s.push_back(g.C);
  return s;
}

void check_float_tensor(const char* op, const char* name, const Tensor& t) {
  CNNOPS_CHECK_TYPE(pool_dtype_ok(t), op, ": expected ", name, " with dtype ", pool_dtypes(t), ", got ",
                    dtype_name(t.dtype));
  require_kernel(op, t);
}

void check_index_tensor(const char* op, const char* name, const Tensor& t) {
  CNNOPS_CHECK_TYPE(t.dtype == DType::Int64, op, ": expected ", name, " with dtype int64, got ", dtype_name(t.dtype));
  require_kernel(op, t);
}

}  // namespace cnnops

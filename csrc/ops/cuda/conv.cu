// CUDA convolution and transposed convolution (1-D, 2-D, 3-D), forward and both gradients, in
// float32, float64, float16 and bfloat16 (float32 accumulation for the half types).
//
// Which kernel runs (conv_choose_algo; algo= picks one explicitly):
//   depthwise   groups == C (one input channel per group): one block per output plane, the
//               channel's taps in shared memory, one thread per output position. "auto" takes it
//               for every depthwise layer.
//   tensorcore  implicit GEMM on tensor cores (conv_mma.cu): float16/bfloat16 always ("auto"),
//               float32 when precision="tf32", or precision="auto" and the GEMM has at least
//               2^27 multiply-adds (smaller problems are launch- and gather-bound).
//   smallc      few input channels per group (C/groups <= 4, e.g. the RGB stem of a network):
//               one thread per output position and 8 output channels, the 8 channels' weights in
//               shared memory, no reduction tile to fill. "auto" takes it for C/groups <= 4 when
//               the weights of 8 channels fit in 32 KB.
//   gemm        implicit GEMM on CUDA cores (conv_gemm.cu), every other case.
//   direct      one thread per output value (forward, input gradient), one block per weight
//               (weight gradient): the reference loops, kept for checking and awkward shapes.
// The backward runs the same family: gemm/smallc -> the SIMT GEMMs, tensorcore -> the
// tensor-core GEMMs, direct and depthwise -> the direct gradient kernels (for one channel per
// group those are the efficient ones: a few taps per input value, a long reduction per weight).
// There is no CUDA Winograd.
//
// Input gradient: a gather GEMM per stride phase (conv_gemm.cuh), no zero insertion. Padding
// modes other than zeros: the gradient of the padded input is computed into a workspace and
// folded onto the input (each input value sums its mirror/clamp/wrap images in a fixed order).
// Weight gradient: split-K over the output positions into float/double partials, added in split
// order by a second kernel; bias gradient: one block per channel with a fixed-shape tree. No float
// atomics anywhere: every gradient is the same bits on every run. Workspaces come from the
// caching allocator on the caller's stream and the GEMMs' reduction tables are built there by
// kernels (no host-to-device copy); nothing synchronises the host.
// Registers and shared memory of every kernel (ptxas, sm_90; no spills):
// benchmarks/results/conv_ptxas_sm90.md. The depthwise kernel states its register budget
// (__maxnreg__): with a bare thread-count bound ptxas aims at full occupancy and spills.
#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "core/cuda_kernel.h"
#include "ops/cuda/conv.h"
#include "ops/cuda/conv_gemm.cuh"

namespace cnnops {
namespace cuda {

using igemm::GatherArgs;
using igemm::KTab;
using igemm::pad_coord;
using igemm::Phase;
using igemm::WgradArgs;

namespace {

// A data tensor's strides (n, c, z, y, x) and spatial sizes in the 3-D view (missing leading
// dimensions: size 1, stride 0).
struct View {
  int64_t s[5];
  int dim[3];
};

View view_of(const Tensor& t) {
  View v;
  const int nd = static_cast<int>(t.ndim()) - 2;
  v.s[0] = t.strides[0];
  v.s[1] = t.strides[1];
  for (int i = 0; i < 3; ++i) {
    const int j = i - (3 - nd);
    v.s[2 + i] = j < 0 ? 0 : t.strides[2 + j];
    v.dim[i] = j < 0 ? 1 : static_cast<int>(t.shape[2 + j]);
  }
  return v;
}

// The planned convolution in 3-D (depth and height 1 for lower dimensionalities).
struct Geo {
  int64_t N, C, K, G, Cg, Kg, taps;
  int in[3], ker[3], out[3], st[3], dil[3], pad[3], padhi[3];
  int mode;
};

int narrow_int(int64_t v, const char* op, const char* what) {
  CNNOPS_CHECK_VALUE(v <= std::numeric_limits<int>::max() / 2, op, ": ", what, " ", v,
                     " is too large for the CUDA kernels (at most 2^30)");
  return static_cast<int>(v);
}

Geo geo_of(const ConvPlan& pl, const char* op) {
  const Conv2dGeom& g = pl.g;
  Geo r;
  r.N = pl.N, r.C = pl.C, r.K = pl.K, r.G = g.G, r.Cg = pl.C / g.G, r.Kg = g.Kg;
  const int64_t in[3] = {pl.D, g.H, g.W}, ker[3] = {pl.T, g.R, g.S}, out[3] = {pl.Do, g.P, g.Q};
  const int64_t st[3] = {pl.sd, g.sh, g.sw}, dil[3] = {pl.dd, g.dh, g.dw};
  const int64_t lo[3] = {pl.pf, g.pt, g.pl}, hi[3] = {pl.pk, g.pb, g.pr};
  for (int i = 0; i < 3; ++i) {
    r.in[i] = narrow_int(in[i] + lo[i] + hi[i], op, "the padded input size");
    r.in[i] = static_cast<int>(in[i]);
    r.ker[i] = static_cast<int>(ker[i]);
    r.out[i] = static_cast<int>(out[i]);
    r.st[i] = narrow_int(st[i], op, "the stride");
    r.dil[i] = narrow_int(dil[i], op, "the dilation");
    r.pad[i] = static_cast<int>(lo[i]);
    r.padhi[i] = static_cast<int>(hi[i]);
  }
  r.taps = ker[0] * ker[1] * ker[2];
  narrow_int(checked_mul(checked_mul(r.Kg, r.Cg, op, "the weights per group"), r.taps, op, "the weights per group"), op,
             "the number of weights per group");
  r.mode = static_cast<int>(pl.mode);
  return r;
}

bool channels_last(const Tensor& t) { return t.ndim() >= 3 && t.shape[1] > 1 && t.strides[1] == 1; }

// ---------------------------------------------------------------- reduction tables
// Built on the device by the kernels below from a few scalars (no host-to-device copy, so no
// pageable transfer can wait for the stream).

// Forward table: entry (c, tap) -> channel, tap offsets, weight offset c * taps + tap. Channel
// innermost for channels-last inputs (consecutive entries read consecutive addresses).
struct ForwardSpec {
  int64_t n, taps;
  int Cg, ker[3], dil[3];
  bool c_inner;
};

// Also stores the forward's one phase (when `phase` is not null) from the first thread.
__global__ void forward_table_kernel(KTab* tab, ForwardSpec s, Phase* phase, Phase p) {
  if (phase && blockIdx.x == 0 && threadIdx.x == 0) *phase = p;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < s.n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = s.c_inner ? i % s.Cg : i / s.taps, tap = s.c_inner ? i / s.Cg : i % s.taps;
    const int t = static_cast<int>(tap / (s.ker[1] * s.ker[2])), r = static_cast<int>(tap / s.ker[2] % s.ker[1]),
              x = static_cast<int>(tap % s.ker[2]);
    tab[i] = KTab{static_cast<int>(c), t * s.dil[0], r * s.dil[1], x * s.dil[2], static_cast<int>(c * s.taps + tap)};
  }
}

// Input-gradient phases over an input of sizes `in` with pads `pad` (0 for a padded workspace):
// phase phi per dimension (phi < min(stride, size)); a tap r serves phase phi when
// phi + pad - r * dilation is a multiple of the stride, and reads grad_output at offset
// (phi + pad - r * dilation) / stride. Phases are numbered (z, y, x) row-major, each owning
// Kg * nz * ny * nx consecutive table entries (k outer, or innermost for channels-last).
struct DgradSpec {
  int64_t N, Kg, Cg, taps;
  int ker[3], dil[3], st[3], pad[3], in[3], nph[3], total[3];  // total[i]: taps of all phases of dim i
  bool k_inner;
};

// Taps of dimension i serving phase phi: their number, or (j >= 0) the j-th one and its offset.
__device__ int phase_taps(const DgradSpec& s, int i, int phi, int j = -1, int* tap = nullptr, int* delta = nullptr) {
  int n = 0;
  for (int r = 0; r < s.ker[i]; ++r) {
    const int num = phi + s.pad[i] - r * s.dil[i];
    if (((num % s.st[i]) + s.st[i]) % s.st[i] != 0) continue;
    if (n == j) {
      *tap = r;
      *delta = num / s.st[i];  // exact
    }
    ++n;
  }
  return n;
}

__global__ void __launch_bounds__(256) dgrad_tables_kernel(KTab* tab, Phase* phases, DgradSpec s, int64_t nphases) {
  __shared__ int cnt[3];
  __shared__ int64_t base;
  for (int64_t ph = blockIdx.x; ph < nphases; ph += gridDim.x) {
    const int phi[3] = {static_cast<int>(ph / (s.nph[1] * s.nph[2])), static_cast<int>(ph / s.nph[2] % s.nph[1]),
                        static_cast<int>(ph % s.nph[2])};
    if (threadIdx.x == 0) {
      int64_t before[3];  // taps of the earlier phases of each dimension
      for (int i = 0; i < 3; ++i) {
        cnt[i] = phase_taps(s, i, phi[i]);
        before[i] = 0;
        for (int a = 0; a < phi[i]; ++a) before[i] += phase_taps(s, i, a);
      }
      base = s.Kg *
             (before[0] * s.total[1] * s.total[2] + cnt[0] * (before[1] * s.total[2] + int64_t(cnt[1]) * before[2]));
      Phase P{};
      P.M = s.N;
      for (int i = 0; i < 3; ++i) {
        P.rdim[i] = (s.in[i] - phi[i] + s.st[i] - 1) / s.st[i];
        P.M *= P.rdim[i];
        P.ra_mul[i] = 1;
        P.ra_add[i] = 0;
        P.ro_mul[i] = s.st[i];
        P.ro_add[i] = phi[i];
      }
      P.tab = static_cast<int>(base);
      P.ntab = static_cast<int>(s.Kg * cnt[0] * cnt[1] * cnt[2]);
      phases[ph] = P;
    }
    __syncthreads();
    const int64_t nt = int64_t(cnt[0]) * cnt[1] * cnt[2];
    for (int64_t i = threadIdx.x; i < nt * s.Kg; i += blockDim.x) {
      const int64_t k = s.k_inner ? i % s.Kg : i / nt, t = s.k_inner ? i / s.Kg : i % nt;
      int tz, ty, tx, dz, dy, dx;
      phase_taps(s, 0, phi[0], static_cast<int>(t / (cnt[1] * cnt[2])), &tz, &dz);
      phase_taps(s, 1, phi[1], static_cast<int>(t / cnt[2] % cnt[1]), &ty, &dy);
      phase_taps(s, 2, phi[2], static_cast<int>(t % cnt[2]), &tx, &dx);
      const int64_t tap = (int64_t(tz) * s.ker[1] + ty) * s.ker[2] + tx;
      tab[base + i] = KTab{static_cast<int>(k), dz, dy, dx, static_cast<int>(k * s.Cg * s.taps + tap)};
    }
    __syncthreads();  // cnt and base are rewritten for the next phase
  }
}

void set_strides(int64_t dst[5], const View& v) {
  for (int i = 0; i < 5; ++i) dst[i] = v.s[i];
}

// ---------------------------------------------------------------- small kernels

// The sum of every thread's v in a block of 256 threads, by a fixed-shape tree (the same order
// on every run); every thread gets it.
template <typename A>
__device__ __forceinline__ A block_sum(A v) {
  __shared__ A part[256];
  part[threadIdx.x] = v;
  __syncthreads();
  for (int w = 128; w > 0; w >>= 1) {
    if (static_cast<int>(threadIdx.x) < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  return part[0];
}

// grad_bias[ch] = sum over batch and positions of dy: one block per channel, fixed tree.
template <typename T>
__global__ void __launch_bounds__(256) bias_grad_kernel(const T* dy, View v, int64_t N, T* db) {
  using A = typename Acc<T>::type;
  const int64_t ch = blockIdx.x;
  const int64_t P = N * v.dim[0] * v.dim[1] * v.dim[2];
  A acc = 0;
  for (int64_t q = threadIdx.x; q < P; q += 256) {
    const int64_t x = q % v.dim[2], y = q / v.dim[2] % v.dim[1], z = q / (v.dim[2] * int64_t(v.dim[1])) % v.dim[0];
    const int64_t n = q / (v.dim[2] * int64_t(v.dim[1]) * v.dim[0]);
    acc += to_acc(dy[n * v.s[0] + ch * v.s[1] + z * v.s[2] + y * v.s[3] + x * v.s[4]]);
  }
  const A sum = block_sum(acc);
  if (threadIdx.x == 0) db[ch] = from_acc<T>(sum);
}

// dw[i] = sum over splits of the partials, in split order.
template <typename T>
__global__ void splitk_reduce_kernel(const typename Acc<T>::type* part, int splits, int64_t n, T* dw) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    typename Acc<T>::type s = 0;
    for (int k = 0; k < splits; ++k) s += part[k * n + i];
    dw[i] = from_acc<T>(s);
  }
}

// Padded-input gradient (contiguous N, C, padded sizes) folded onto dx: each input value sums its
// images under the padding mode, candidates in a fixed order (the pad before, itself, the pad after).
__device__ __forceinline__ int fold_candidate(int k, int coord, int lo, int n) {
  return k < lo ? k : k == lo ? coord + lo : lo + n + (k - lo - 1);
}

template <typename T>
__global__ void fold_kernel(const T* src, T* dx, View dv, Geo g, int64_t total) {
  using A = typename Acc<T>::type;
  int inp[3], cnt[3];
  for (int i = 0; i < 3; ++i) {
    inp[i] = g.in[i] + g.pad[i] + g.padhi[i];
    cnt[i] = g.pad[i] + 1 + g.padhi[i];
  }
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int x = static_cast<int>(e % g.in[2]), y = static_cast<int>(e / g.in[2] % g.in[1]),
              z = static_cast<int>(e / (int64_t(g.in[2]) * g.in[1]) % g.in[0]);
    const int64_t nc = e / (int64_t(g.in[2]) * g.in[1] * g.in[0]);
    const T* plane = src + nc * inp[0] * int64_t(inp[1]) * inp[2];
    A acc = 0;
    for (int a = 0; a < cnt[0]; ++a) {
      const int jz = fold_candidate(a, z, g.pad[0], g.in[0]);
      if (pad_coord(jz - g.pad[0], g.in[0], g.mode) != z) continue;
      for (int b = 0; b < cnt[1]; ++b) {
        const int jy = fold_candidate(b, y, g.pad[1], g.in[1]);
        if (pad_coord(jy - g.pad[1], g.in[1], g.mode) != y) continue;
        for (int c = 0; c < cnt[2]; ++c) {
          const int jx = fold_candidate(c, x, g.pad[2], g.in[2]);
          if (pad_coord(jx - g.pad[2], g.in[2], g.mode) != x) continue;
          acc += to_acc(plane[(int64_t(jz) * inp[1] + jy) * inp[2] + jx]);
        }
      }
    }
    const int64_t n = nc / g.C, ch = nc % g.C;
    dx[n * dv.s[0] + ch * dv.s[1] + z * dv.s[2] + y * dv.s[3] + x * dv.s[4]] = from_acc<T>(acc);
  }
}

// f(tap, v) for every tap (t, r, s) of output position (oz, oy, ox), tap = (t * R + r) * S + s,
// v the input value of plane xc it reads (padded per mode; a zero-padding position gives 0 and is
// still multiplied, as an im2col GEMM would).
template <typename T, typename F>
__device__ __forceinline__ void for_each_tap(const T* xc, const View& xv, const Geo& g, int oz, int oy, int ox, F&& f) {
  using A = typename Acc<T>::type;
  for (int t = 0; t < g.ker[0]; ++t) {
    const int iz = pad_coord(oz * g.st[0] - g.pad[0] + t * g.dil[0], xv.dim[0], g.mode);
    for (int r = 0; r < g.ker[1]; ++r) {
      const int iy = pad_coord(oy * g.st[1] - g.pad[1] + r * g.dil[1], xv.dim[1], g.mode);
      const int row = (t * g.ker[1] + r) * g.ker[2];
      for (int s = 0; s < g.ker[2]; ++s) {
        const int ix = pad_coord(ox * g.st[2] - g.pad[2] + s * g.dil[2], xv.dim[2], g.mode);
        f(row + s, (iz | iy | ix) < 0 ? A(0) : to_acc(xc[iz * xv.s[2] + iy * xv.s[3] + ix * xv.s[4]]));
      }
    }
  }
}

// Direct forward: one thread per output value; zero padding is multiplied like any input value
// (a non-finite weight reaches every output it touches, as in an im2col GEMM).
template <typename T>
__global__ void direct_forward_kernel(const T* x, View xv, const T* w, const T* bias, T* y, View yv, Geo g,
                                      int64_t total) {
  using A = typename Acc<T>::type;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int ox = static_cast<int>(e % yv.dim[2]), oy = static_cast<int>(e / yv.dim[2] % yv.dim[1]),
              oz = static_cast<int>(e / (int64_t(yv.dim[2]) * yv.dim[1]) % yv.dim[0]);
    const int64_t nk = e / (int64_t(yv.dim[2]) * yv.dim[1] * yv.dim[0]), n = nk / g.K, k = nk % g.K;
    const int64_t grp = k / g.Kg;
    A acc = 0;  // the bias is added last, as the GEMM epilogues and the CPU kernels do
    const T* wk = w + k * g.Cg * g.taps;
    for (int64_t c = 0; c < g.Cg; ++c) {
      const T* wc = wk + c * g.taps;
      for_each_tap(x + n * xv.s[0] + (grp * g.Cg + c) * xv.s[1], xv, g, oz, oy, ox,
                   [&](int tap, A v) { acc += v * to_acc(wc[tap]); });
    }
    if (bias) acc += to_acc(bias[k]);
    y[n * yv.s[0] + k * yv.s[1] + oz * yv.s[2] + oy * yv.s[3] + ox * yv.s[4]] = from_acc<T>(acc);
  }
}

// Direct input gradient over a target of sizes g.in with pads g.pad (zero padding: the padded
// workspace has pads 0): one thread per target value, only the grad_output values it reached.
template <typename T>
__global__ void direct_dgrad_kernel(const T* dy, View dv, const T* w, const T* bias, T* dx, View xv, Geo g,
                                    int64_t total) {
  using A = typename Acc<T>::type;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int ix = static_cast<int>(e % g.in[2]), iy = static_cast<int>(e / g.in[2] % g.in[1]),
              iz = static_cast<int>(e / (int64_t(g.in[2]) * g.in[1]) % g.in[0]);
    const int64_t nc = e / (int64_t(g.in[2]) * g.in[1] * g.in[0]), n = nc / g.C, c = nc % g.C;
    const int64_t grp = c / g.Cg, cl = c % g.Cg;
    A acc = 0;
    for (int64_t kl = 0; kl < g.Kg; ++kl) {
      const int64_t k = grp * g.Kg + kl;
      const T* dk = dy + n * dv.s[0] + k * dv.s[1];
      const T* wk = w + (k * g.Cg + cl) * g.taps;
      for (int t = 0; t < g.ker[0]; ++t) {
        const int nz = iz + g.pad[0] - t * g.dil[0];
        if (nz < 0 || nz % g.st[0] || nz / g.st[0] >= dv.dim[0]) continue;
        for (int r = 0; r < g.ker[1]; ++r) {
          const int ny = iy + g.pad[1] - r * g.dil[1];
          if (ny < 0 || ny % g.st[1] || ny / g.st[1] >= dv.dim[1]) continue;
          for (int s = 0; s < g.ker[2]; ++s) {
            const int nx = ix + g.pad[2] - s * g.dil[2];
            if (nx < 0 || nx % g.st[2] || nx / g.st[2] >= dv.dim[2]) continue;
            acc += to_acc(dk[(nz / g.st[0]) * dv.s[2] + (ny / g.st[1]) * dv.s[3] + (nx / g.st[2]) * dv.s[4]]) *
                   to_acc(wk[(t * g.ker[1] + r) * g.ker[2] + s]);
          }
        }
      }
    }
    if (bias) acc += to_acc(bias[c]);
    dx[n * xv.s[0] + c * xv.s[1] + iz * xv.s[2] + iy * xv.s[3] + ix * xv.s[4]] = from_acc<T>(acc);
  }
}

// Direct weight gradient: one block per weight, a strided sum over the positions per thread and a
// fixed tree (the same order on every run).
template <typename T>
__global__ void __launch_bounds__(256) direct_wgrad_kernel(const T* dy, View dv, const T* x, View xv, T* dw, Geo g) {
  using A = typename Acc<T>::type;
  const int64_t widx = blockIdx.x;
  const int64_t tap = widx % g.taps, kc = widx / g.taps, c = kc % g.Cg, k = kc / g.Cg;
  const int t = static_cast<int>(tap / (g.ker[1] * g.ker[2])), r = static_cast<int>(tap / g.ker[2] % g.ker[1]),
            s = static_cast<int>(tap % g.ker[2]);
  const int64_t xc = (k / g.Kg * g.Cg + c) * xv.s[1];
  const int64_t P = g.N * dv.dim[0] * int64_t(dv.dim[1]) * dv.dim[2];
  A acc = 0;
  for (int64_t q = threadIdx.x; q < P; q += 256) {
    const int ox = static_cast<int>(q % dv.dim[2]), oy = static_cast<int>(q / dv.dim[2] % dv.dim[1]),
              oz = static_cast<int>(q / (int64_t(dv.dim[2]) * dv.dim[1]) % dv.dim[0]);
    const int64_t n = q / (int64_t(dv.dim[2]) * dv.dim[1] * dv.dim[0]);
    const int iz = pad_coord(oz * g.st[0] - g.pad[0] + t * g.dil[0], xv.dim[0], g.mode);
    const int iy = pad_coord(oy * g.st[1] - g.pad[1] + r * g.dil[1], xv.dim[1], g.mode);
    const int ix = pad_coord(ox * g.st[2] - g.pad[2] + s * g.dil[2], xv.dim[2], g.mode);
    const A v = (iz | iy | ix) < 0 ? A(0) : to_acc(x[n * xv.s[0] + xc + iz * xv.s[2] + iy * xv.s[3] + ix * xv.s[4]]);
    acc += to_acc(dy[n * dv.s[0] + k * dv.s[1] + oz * dv.s[2] + oy * dv.s[3] + ox * dv.s[4]]) * v;
  }
  const A sum = block_sum(acc);
  if (threadIdx.x == 0) dw[widx] = from_acc<T>(sum);
}

// Depthwise forward (one input channel per group): block (plane n*K + k, chunk of positions),
// the channel's taps in shared memory.
template <typename T>
__global__ void __maxnreg__(64)
    depthwise_forward_kernel(const T* x, View xv, const T* w, const T* bias, T* y, View yv, Geo g) {
  using A = typename Acc<T>::type;
  CNNOPS_DYNAMIC_SHARED(A, taps);
  // 32-bit plane arithmetic (N * K < 2^31, checked by the driver): no 64-bit division calls
  const int plane = static_cast<int>(blockIdx.x), K = static_cast<int>(g.K), n = plane / K, k = plane % K;
  const int taps_n = static_cast<int>(g.taps);
  for (int i = static_cast<int>(threadIdx.x); i < taps_n; i += 256) taps[i] = to_acc(w[int64_t(k) * taps_n + i]);
  __syncthreads();
  const T* xc = x + n * xv.s[0] + (k / static_cast<int>(g.Kg)) * xv.s[1];
  const A b = bias ? to_acc(bias[k]) : A(0);
  const int P = yv.dim[0] * yv.dim[1] * yv.dim[2];  // < 2^31 (the driver checks)
  for (int q = static_cast<int>(blockIdx.y * 256 + threadIdx.x); q < P; q += static_cast<int>(gridDim.y) * 256) {
    const int ox = q % yv.dim[2], oy = q / yv.dim[2] % yv.dim[1], oz = q / (yv.dim[2] * yv.dim[1]);
    A acc = 0;
    for_each_tap(xc, xv, g, oz, oy, ox, [&](int tap, A v) { acc += v * taps[tap]; });
    y[n * yv.s[0] + k * yv.s[1] + oz * yv.s[2] + oy * yv.s[3] + ox * yv.s[4]] = from_acc<T>(acc + b);
  }
}

// Small-channel forward: thread = one output position x kSmallK output channels of a group,
// those channels' weights in shared memory; each input value is loaded once for all of them.
constexpr int kSmallK = 8;
constexpr size_t kSmallSmem = 32 * 1024;

template <typename T>
__global__ void __launch_bounds__(256)
    smallc_forward_kernel(const T* x, View xv, const T* w, const T* bias, T* y, View yv, Geo g, int z_base) {
  using A = typename Acc<T>::type;
  CNNOPS_DYNAMIC_SHARED(A, ws);
  const int64_t grp = blockIdx.z + z_base, k0 = grp * g.Kg + int64_t(blockIdx.y) * kSmallK;
  const int64_t k_end = grp * g.Kg + g.Kg < k0 + kSmallK ? grp * g.Kg + g.Kg : k0 + kSmallK;
  const int nk = static_cast<int>(k_end - k0);
  const int64_t per = g.Cg * g.taps;
  for (int64_t i = threadIdx.x; i < nk * per; i += 256) ws[i] = to_acc(w[k0 * per + i]);
  __syncthreads();
  const int64_t P = int64_t(yv.dim[0]) * yv.dim[1] * yv.dim[2];
  const int64_t q = blockIdx.x * int64_t(256) + threadIdx.x;
  if (q >= g.N * P) return;
  const int64_t n = q / P, pos = q % P;
  const int ox = static_cast<int>(pos % yv.dim[2]), oy = static_cast<int>(pos / yv.dim[2] % yv.dim[1]),
            oz = static_cast<int>(pos / (int64_t(yv.dim[2]) * yv.dim[1]));
  A acc[kSmallK];
#pragma unroll
  for (int j = 0; j < kSmallK; ++j) acc[j] = 0;
  for (int64_t c = 0; c < g.Cg; ++c) {
    const A* wc = ws + c * g.taps;
    for_each_tap(x + n * xv.s[0] + (grp * g.Cg + c) * xv.s[1], xv, g, oz, oy, ox, [&](int tap, A v) {
#pragma unroll
      for (int j = 0; j < kSmallK; ++j) acc[j] += v * wc[j * per + tap];  // rows past nk are never stored
    });
  }
  T* yq = y + n * yv.s[0] + oz * yv.s[2] + oy * yv.s[3] + ox * yv.s[4];
  for (int j = 0; j < nk; ++j) yq[(k0 + j) * yv.s[1]] = from_acc<T>(bias ? acc[j] + to_acc(bias[k0 + j]) : acc[j]);
}

bool smallc_fits(const Geo& g, size_t acc_bytes) {
  return static_cast<size_t>(kSmallK * g.Cg * g.taps) * acc_bytes <= kSmallSmem;
}
bool depthwise_fits(const Geo& g, size_t acc_bytes) {
  return static_cast<size_t>(g.taps) * acc_bytes <= 32 * 1024 && g.N * g.K < (int64_t(1) << 31);
}

unsigned blocks_for(int64_t n, int per = 256) {
  int64_t b = (n + per - 1) / per;
  const int64_t cap = max_grid_blocks();
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(b, cap)));
}

// ---------------------------------------------------------------- the passes

struct Ctx {
  int device;
  Stream s;
  const char* op;
};

// The forward table (Cg * taps entries) on the device, and the forward's phase where `phase` is given.
DeviceBuffer forward_table(const Geo& g, bool c_inner, const Ctx& c, Phase* phase = nullptr, const Phase& p = {}) {
  const int64_t n = g.Cg * g.taps;
  DeviceBuffer tb(static_cast<size_t>(n) * sizeof(KTab), c.device, c.s);
  ForwardSpec fs{n,      g.taps, static_cast<int>(g.Cg), {g.ker[0], g.ker[1], g.ker[2]}, {g.dil[0], g.dil[1], g.dil[2]},
                 c_inner};
  launch(c.op, forward_table_kernel, dim3(blocks_for(n)), dim3(256), 0, c.s, tb.as<KTab>(), fs, phase, p);
  return tb;
}

template <typename T>
void run_gather(const GatherArgs& b, int nph, bool tensor_core, const Ctx& c) {
  if constexpr (std::is_same<T, double>::value) {
    (void)tensor_core;  // no float64 tensor-core path: conv_choose_algo refuses it
    igemm::gather_gemm_simt<T>(b, nph, c.s, c.op);
  } else {
    if (tensor_core) igemm::gather_gemm_mma<T>(b, nph, c.s, c.op);
    else igemm::gather_gemm_simt<T>(b, nph, c.s, c.op);
  }
}

// y = conv(a) (+ bias): a has the convolution's input channels, y its output channels; y's
// spatial sizes may be smaller than the plan's (the transposed backward reads only those).
template <typename T>
void forward_pass(const Geo& g, const Tensor& a, const Tensor& w, const Tensor* b, Tensor& y, ConvAlgo algo,
                  const Ctx& c) {
  if (y.numel() == 0) return;
  const View av = view_of(a), yv = view_of(y);
  const T* bias = b ? b->ptr<T>() : nullptr;
  const size_t accb = sizeof(typename Acc<T>::type);
  const int64_t plane = int64_t(yv.dim[0]) * yv.dim[1] * yv.dim[2];
  if (algo == ConvAlgo::Depthwise && g.Cg == 1 && depthwise_fits(g, accb) && plane < (int64_t(1) << 30)) {
    const int64_t P = plane;
    const unsigned chunks = static_cast<unsigned>(std::min<int64_t>((P + 255) / 256, 65535));
    launch(c.op, depthwise_forward_kernel<T>, dim3(static_cast<unsigned>(g.N * g.K), chunks), dim3(256), g.taps * accb,
           c.s, a.ptr<T>(), av, w.ptr<T>(), bias, y.ptr<T>(), yv, g);
    return;
  }
  if (algo == ConvAlgo::SmallC && smallc_fits(g, accb) && (g.Kg + kSmallK - 1) / kSmallK <= 65535) {
    const int64_t P = g.N * yv.dim[0] * int64_t(yv.dim[1]) * yv.dim[2];
    for (int64_t z0 = 0; z0 < g.G; z0 += 65535) {
      const unsigned gz = static_cast<unsigned>(std::min<int64_t>(g.G - z0, 65535));
      launch(c.op, smallc_forward_kernel<T>,
             dim3(static_cast<unsigned>((P + 255) / 256), static_cast<unsigned>((g.Kg + kSmallK - 1) / kSmallK), gz),
             dim3(256), kSmallK * g.Cg * g.taps * accb, c.s, a.ptr<T>(), av, w.ptr<T>(), bias, y.ptr<T>(), yv, g,
             static_cast<int>(z0));
    }
    return;
  }
  if (algo == ConvAlgo::Direct || algo == ConvAlgo::Depthwise) {
    const int64_t total = y.numel();
    launch(c.op, direct_forward_kernel<T>, dim3(blocks_for(total)), dim3(256), 0, c.s, a.ptr<T>(), av, w.ptr<T>(), bias,
           y.ptr<T>(), yv, g, total);
    return;
  }
  GatherArgs ga{};
  ga.a = a.data;
  set_strides(ga.as, av);
  for (int i = 0; i < 3; ++i) ga.adim[i] = av.dim[i];
  ga.a_group = g.Cg;
  ga.w = w.data;
  ga.w_group = g.Kg * g.Cg * g.taps;
  ga.w_col = g.Cg * g.taps;
  ga.o = y.data;
  set_strides(ga.os, yv);
  ga.o_group = g.Kg;
  ga.bias = bias;
  ga.ncols = static_cast<int>(g.Kg);
  ga.G = static_cast<int>(g.G);
  ga.mode = g.mode;
  Phase P{};
  P.M = g.N;
  for (int i = 0; i < 3; ++i) {
    P.rdim[i] = yv.dim[i];
    P.M *= yv.dim[i];
    P.ra_mul[i] = g.st[i];
    P.ra_add[i] = -g.pad[i];
    P.ro_mul[i] = 1;
    P.ro_add[i] = 0;
  }
  P.tab = 0;
  P.ntab = static_cast<int>(g.Cg * g.taps);
  ga.max_rows = P.M;
  DeviceBuffer pb(sizeof(Phase), c.device, c.s);
  DeviceBuffer tb = forward_table(g, channels_last(a), c, pb.as<Phase>(), P);
  ga.tab = tb.as<KTab>();
  ga.phases = pb.as<Phase>();
  run_gather<T>(ga, 1, algo == ConvAlgo::TensorCore, c);
}

// dx = the input gradient of the convolution for grad_output a (+ bias per input channel).
template <typename T>
void dgrad_pass(const Geo& g, const Tensor& a, const Tensor& w, const Tensor* b, Tensor& dx, ConvAlgo algo,
                const Ctx& c) {
  if (dx.numel() == 0) return;
  const View av = view_of(a);
  const T* bias = b ? b->ptr<T>() : nullptr;
  // Non-zero padding modes: the gradient of the padded input into a contiguous workspace
  // (geometry with pads 0), folded onto dx afterwards.
  const bool fold = g.mode != 0;
  Geo tg = g;
  DeviceBuffer ws;
  View tv = view_of(dx);
  T* target = dx.ptr<T>();
  if (fold) {
    int64_t plane = 1;
    for (int i = 0; i < 3; ++i) {
      tg.in[i] = g.in[i] + g.pad[i] + g.padhi[i];
      tg.pad[i] = tg.padhi[i] = 0;
      tv.dim[i] = tg.in[i];
      plane *= tg.in[i];
    }
    tv.s[4] = 1, tv.s[3] = tg.in[2], tv.s[2] = int64_t(tg.in[2]) * tg.in[1], tv.s[1] = plane, tv.s[0] = plane * g.C;
    ws = DeviceBuffer(checked_mul(plane * g.C, g.N * sizeof(T), c.op, "the padded gradient workspace"), c.device, c.s);
    target = ws.as<T>();
    tg.mode = 0;
  }
  if (algo == ConvAlgo::Direct || algo == ConvAlgo::Depthwise) {
    const int64_t total = g.N * g.C * tg.in[0] * int64_t(tg.in[1]) * tg.in[2];
    launch(c.op, direct_dgrad_kernel<T>, dim3(blocks_for(total)), dim3(256), 0, c.s, a.ptr<T>(), av, w.ptr<T>(),
           fold ? nullptr : bias, target, tv, tg, total);
  } else {
    DgradSpec ds{};
    ds.N = g.N, ds.Kg = g.Kg, ds.Cg = g.Cg, ds.taps = g.taps, ds.k_inner = channels_last(a);
    int64_t nphases = 1, entries = g.Kg, max_rows = g.N;
    for (int i = 0; i < 3; ++i) {
      ds.ker[i] = g.ker[i], ds.dil[i] = g.dil[i], ds.st[i] = g.st[i], ds.pad[i] = tg.pad[i], ds.in[i] = tg.in[i];
      ds.nph[i] = std::min(g.st[i], tg.in[i]);
      ds.total[i] = 0;  // taps whose phase is one of the nph[i] (the others reach no input position)
      for (int r = 0; r < g.ker[i]; ++r) {
        const int64_t m = ((int64_t(tg.pad[i]) - int64_t(r) * g.dil[i]) % g.st[i] + g.st[i]) % g.st[i];
        const int64_t phase = (g.st[i] - m) % g.st[i];  // phi with phi + pad - r * dil divisible by st
        if (phase < ds.nph[i]) ++ds.total[i];
      }
      nphases *= ds.nph[i];
      entries *= ds.total[i];
      max_rows *= (tg.in[i] + g.st[i] - 1) / g.st[i];
    }
    DeviceBuffer tb(static_cast<size_t>(std::max<int64_t>(entries, 1)) * sizeof(KTab), c.device, c.s);
    DeviceBuffer pb(static_cast<size_t>(nphases) * sizeof(Phase), c.device, c.s);
    launch(c.op, dgrad_tables_kernel, dim3(static_cast<unsigned>(std::min<int64_t>(nphases, 4096))), dim3(256), 0, c.s,
           tb.as<KTab>(), pb.as<Phase>(), ds, nphases);
    GatherArgs ga{};
    ga.a = a.data;
    set_strides(ga.as, av);
    for (int i = 0; i < 3; ++i) ga.adim[i] = av.dim[i];
    ga.a_group = g.Kg;
    ga.w = w.data;
    ga.w_group = g.Kg * g.Cg * g.taps;
    ga.w_col = g.taps;
    ga.o = target;
    set_strides(ga.os, tv);
    ga.o_group = g.Cg;
    ga.bias = fold ? nullptr : bias;
    ga.ncols = static_cast<int>(g.Cg);
    ga.G = static_cast<int>(g.G);
    ga.mode = 0;
    ga.max_rows = max_rows;
    ga.tab = tb.as<KTab>();
    ga.phases = pb.as<Phase>();
    run_gather<T>(ga, static_cast<int>(nphases), algo == ConvAlgo::TensorCore, c);
  }
  if (fold) {
    const int64_t total = dx.numel();
    launch(c.op, fold_kernel<T>, dim3(blocks_for(total)), dim3(256), 0, c.s, static_cast<const T*>(target), dx.ptr<T>(),
           view_of(dx), g, total);
  }
}

// dw = the weight gradient for grad_output dy and input x.
template <typename T>
void wgrad_pass(const Geo& g, const Tensor& dy, const Tensor& x, Tensor& dw, ConvAlgo algo, const Ctx& c) {
  using A = typename Acc<T>::type;
  const View dv = view_of(dy), xv = view_of(x);
  const int64_t positions = g.N * dv.dim[0] * int64_t(dv.dim[1]) * dv.dim[2];
  // the GEMM kernels count positions in 32 bits (conv_gemm.cuh)
  if (algo == ConvAlgo::Direct || algo == ConvAlgo::Depthwise || positions >= (int64_t(1) << 31)) {
    launch(c.op, direct_wgrad_kernel<T>, dim3(static_cast<unsigned>(dw.numel())), dim3(256), 0, c.s, dy.ptr<T>(), dv,
           x.ptr<T>(), xv, dw.ptr<T>(), g);
    return;
  }
  WgradArgs wa{};
  wa.dy = dy.data;
  set_strides(wa.ds, dv);
  for (int i = 0; i < 3; ++i) {
    wa.odim[i] = dv.dim[i];
    wa.xdim[i] = xv.dim[i];
    wa.stride[i] = g.st[i];
    wa.pad[i] = g.pad[i];
  }
  wa.N = g.N;
  wa.Q = g.N * dv.dim[0] * int64_t(dv.dim[1]) * dv.dim[2];
  wa.x = x.data;
  set_strides(wa.xs, xv);
  wa.Kg = g.Kg;
  wa.Cg = g.Cg;
  wa.ncols = static_cast<int>(g.Cg * g.taps);
  wa.G = static_cast<int>(g.G);
  wa.mode = g.mode;
  // Split the positions so that about 256 blocks run, each split at least 256 positions long;
  // the split count depends on the shapes only (the same bits on every GPU and every run).
  const int64_t tiles = ((g.Kg + 63) / 64) * ((wa.ncols + 63) / 64) * g.G;
  int64_t splits = std::max<int64_t>(1, std::min<int64_t>((256 + tiles - 1) / tiles, wa.Q / 256));
  splits = std::min<int64_t>(splits, 64);
  wa.qchunk = std::max<int64_t>(16, ((wa.Q + splits - 1) / splits + 15) / 16 * 16);
  splits = std::max<int64_t>(1, (wa.Q + wa.qchunk - 1) / wa.qchunk);
  wa.splits = static_cast<int>(splits);
  DeviceBuffer tb = forward_table(g, channels_last(x), c);
  wa.tab = tb.as<KTab>();
  DeviceBuffer part;
  const int64_t n = dw.numel();
  wa.partial = splits > 1 || !std::is_same<T, A>::value;
  if (wa.partial) {
    part = DeviceBuffer(checked_mul(n * sizeof(A), splits, c.op, "the weight-gradient workspace"), c.device, c.s);
    wa.out = part.as<A>();
  } else {
    wa.out = dw.data;
  }
  if constexpr (std::is_same<T, double>::value) {
    igemm::wgrad_gemm_simt<T>(wa, c.s, c.op);
  } else {
    if (algo == ConvAlgo::TensorCore) igemm::wgrad_gemm_mma<T>(wa, c.s, c.op);
    else igemm::wgrad_gemm_simt<T>(wa, c.s, c.op);
  }
  if (wa.partial)
    launch(c.op, splitk_reduce_kernel<T>, dim3(blocks_for(n)), dim3(256), 0, c.s, part.as<A>(), wa.splits, n,
           dw.ptr<T>());
}

template <typename T>
void bias_pass(const Tensor& dy, Tensor& db, int64_t N, const Ctx& c) {
  launch(c.op, bias_grad_kernel<T>, dim3(static_cast<unsigned>(db.numel())), dim3(256), 0, c.s, dy.ptr<T>(),
         view_of(dy), N, db.ptr<T>());
}

Ctx ctx_of(const Tensor& t) { return Ctx{t.device.index, current_stream(), current_op()}; }

}  // namespace

// The rule for "auto" on CUDA:
//   one input channel per group (groups == C > 1)              -> depthwise
//   float16 / bfloat16                                           -> tensorcore
//   float32 with precision "tf32", or "auto" and >= 2^27 MACs    -> tensorcore
//   C/groups <= 4 and 8 output channels' weights fit in 32 KB    -> smallc
//   otherwise                                                    -> gemm
ConvAlgo conv_choose_algo(const ConvPlan& pl, ConvAlgo requested, const char* op) {
  const Geo g = geo_of(pl, op);
  if (requested == ConvAlgo::Depthwise)
    CNNOPS_CHECK_VALUE(g.Cg == 1, op, ": algo='depthwise' needs groups == input channels, got C=", g.C,
                       " and groups=", g.G);
  if (requested == ConvAlgo::Winograd)
    throw NotImplemented(str(op, ": algo='winograd' has no CUDA kernel (CUDA arrays take 'auto', 'gemm', ",
                             "'tensorcore', 'smallc', 'depthwise' or 'direct')"));
  if (requested == ConvAlgo::TensorCore) {
    CNNOPS_CHECK_VALUE(pl.dtype != DType::Float64, op,
                       ": algo='tensorcore' takes float32 (as tf32), float16 or bfloat16, got float64 (use 'gemm')");
    CNNOPS_CHECK_VALUE(pl.dtype != DType::Float32 || pl.precision != Precision::FP32, op,
                       ": algo='tensorcore' computes float32 in tf32: pass precision='tf32' (or 'auto'), or use "
                       "algo='gemm' for fp32 arithmetic");
  }
  if (requested != ConvAlgo::Auto) return requested;
  if (g.Cg == 1 && g.G > 1) return ConvAlgo::Depthwise;
  if (pl.dtype == DType::Float16 || pl.dtype == DType::BFloat16) return ConvAlgo::TensorCore;
  if (pl.dtype == DType::Float32) {
    double macs = static_cast<double>(g.N) * g.K * g.Cg * g.taps;
    for (int i = 0; i < 3; ++i) macs *= g.out[i];
    if (pl.precision == Precision::TF32 || (pl.precision == Precision::Auto && macs >= double(1 << 27)))
      return ConvAlgo::TensorCore;
  }
  const size_t accb = pl.dtype == DType::Float64 ? 8 : 4;
  if (g.Cg <= 4 && smallc_fits(g, accb)) return ConvAlgo::SmallC;
  return ConvAlgo::Gemm;
}

Tensor conv_empty_like(const std::vector<int64_t>& shape, const Tensor& like) {
  Tensor t = empty(shape, like.dtype, like.device);
  if (!channels_last(like) || like.is_contiguous() || shape.size() < 3) return t;
  // channels last: C innermost, then the spatial dimensions, batch outermost
  const size_t nd = shape.size();
  int64_t s = 1;
  t.strides[1] = 1;
  s *= shape[1];
  for (size_t i = nd - 1; i >= 2; --i) {
    t.strides[i] = s;
    s *= shape[i];
  }
  t.strides[0] = s;
  return t;
}

// Every entry point: on x's device, with the 3-D geometry and the call's stream, f(T{}, g, c)
// for x's storage type T.
template <typename F>
void run_on_device(const ConvPlan& pl, const Tensor& x, F&& f) {
  const char* op = current_op();
  DeviceGuard guard(x.device.index, op);
  const Geo g = geo_of(pl, op);
  const Ctx c = ctx_of(x);
  dispatch_floating(x.dtype, op, [&](auto tag) { f(tag, g, c); });
}

void conv_forward(const ConvPlan& pl, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y, ConvAlgo algo) {
  run_on_device(pl, x,
                [&](auto tag, const Geo& g, const Ctx& c) { forward_pass<decltype(tag)>(g, x, w, b, y, algo, c); });
}

void conv_backward(const ConvPlan& pl, const Tensor& dy, const Tensor& x, const Tensor& w, ConvGrads& out,
                   ConvAlgo algo) {
  run_on_device(pl, x, [&](auto tag, const Geo& g, const Ctx& c) {
    using T = decltype(tag);
    if (out.has_input) dgrad_pass<T>(g, dy, w, nullptr, out.grad_input, algo, c);
    if (out.has_weight) wgrad_pass<T>(g, dy, x, out.grad_weight, algo, c);
    if (out.has_bias) bias_pass<T>(dy, out.grad_bias, g.N, c);
  });
}

void conv_transpose_forward(const ConvPlan& pl, const Tensor& x, const Tensor& w, const Tensor* b, Tensor& y,
                            ConvAlgo algo) {
  run_on_device(pl, x,
                [&](auto tag, const Geo& g, const Ctx& c) { dgrad_pass<decltype(tag)>(g, x, w, b, y, algo, c); });
}

void conv_transpose_backward(const ConvPlan& pl, const Tensor& dy, const Tensor& x, const Tensor& w, ConvGrads& out,
                             ConvAlgo algo) {
  // the transposed op's input is the convolution's grad_output, its grad_output the convolution's input
  run_on_device(pl, x, [&](auto tag, const Geo& g, const Ctx& c) {
    using T = decltype(tag);
    if (out.has_input) forward_pass<T>(g, dy, w, nullptr, out.grad_input, algo, c);
    if (out.has_weight) wgrad_pass<T>(g, x, dy, out.grad_weight, algo, c);
    if (out.has_bias) bias_pass<T>(dy, out.grad_bias, g.N, c);
  });
}

}  // namespace cuda
}  // namespace cnnops

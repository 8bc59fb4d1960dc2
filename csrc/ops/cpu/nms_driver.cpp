// CPU drivers of the non-max suppression family: the dtype switch around the kernels of nms.cpp
// and nms_matrix.cpp, the padded batched loop (one image per task), and the int64 outputs.
#include <cstring>
#include <vector>

#include "core/dispatch.h"
#include "core/parallel.h"
#include "ops/cpu/nms.h"

namespace cnnops {
namespace cpu {

static Tensor int64_tensor(const std::vector<int64_t>& v, Device dev) {
  Tensor t = empty({static_cast<int64_t>(v.size())}, DType::Int64, dev);
  if (!v.empty()) std::memcpy(t.data, v.data(), v.size() * 8);
  return t;
}

template <typename T>
static Tensor values_tensor(const std::vector<T>& v, DType dt, Device dev) {
  Tensor t = empty({static_cast<int64_t>(v.size())}, dt, dev);
  if (!v.empty()) std::memcpy(t.data, v.data(), v.size() * sizeof(T));
  return t;
}

Tensor nms(const Tensor& b, const Tensor& s, const int64_t* cls, const NmsOptions& o) {
  const std::vector<int64_t> keep = dispatch_float(b.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    return greedy_nms(b.ptr<T>(), s.ptr<T>(), cls, s.numel(), o, true);
  });
  return int64_tensor(keep, b.device);
}

void nms_padded(const Tensor& b, const Tensor& s, const int64_t* cls, const NmsOptions& o, Tensor& out, Tensor& count) {
  const int64_t B = s.shape[0], N = s.shape[1], M = o.max_output;
  int64_t* po = out.ptr<int64_t>();
  int64_t* pc = count.ptr<int64_t>();
  auto run = [&](int64_t i) {
    const int64_t* c = cls ? cls + i * N : nullptr;
    // one image per task; inside it the classes run serially
    const bool par = B == 1;
    const std::vector<int64_t> keep = dispatch_float(b.dtype, current_op(), [&](auto t) {
      using T = decltype(t);
      return greedy_nms(b.ptr<T>() + i * N * 4, s.ptr<T>() + i * N, c, N, o, par);
    });
    const int64_t k = static_cast<int64_t>(keep.size());
    for (int64_t j = 0; j < M; ++j) po[i * M + j] = j < k ? keep[j] : -1;
    pc[i] = k;
  };
  if (B * N >= kNmsParallelMin) {
    parallel_for(B, run);
  } else {
    for (int64_t i = 0; i < B; ++i) run(i);
  }
}

std::pair<Tensor, Tensor> soft_nms(const Tensor& b, const Tensor& s, double iou_threshold, double sigma,
                                   double score_threshold, int method, int64_t max_output) {
  return dispatch_float(b.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    std::vector<int64_t> keep;
    std::vector<T> ks;
    soft_nms(b.ptr<T>(), s.ptr<T>(), s.numel(), iou_threshold, sigma, score_threshold, method, max_output, keep, ks);
    return std::make_pair(int64_tensor(keep, b.device), values_tensor(ks, b.dtype, b.device));
  });
}

std::pair<Tensor, Tensor> matrix_nms(const Tensor& b, const Tensor& s, const int64_t* cls, int method, double sigma,
                                     bool has_score_threshold, double score_threshold, int64_t top_k,
                                     int64_t max_output) {
  return dispatch_float(b.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    std::vector<int64_t> keep;
    std::vector<T> d;
    matrix_nms(b.ptr<T>(), s.ptr<T>(), cls, s.numel(), method, sigma, has_score_threshold, score_threshold, top_k,
               max_output, keep, d);
    return std::make_pair(int64_tensor(keep, b.device), values_tensor(d, b.dtype, b.device));
  });
}

Tensor fast_cluster_nms(const Tensor& b, const Tensor& s, const int64_t* cls, double iou_threshold,
                        bool has_score_threshold, double score_threshold, int64_t top_k, int64_t max_output,
                        bool cluster) {
  const std::vector<int64_t> keep = dispatch_float(b.dtype, current_op(), [&](auto t) {
    using T = decltype(t);
    return fast_cluster_nms(b.ptr<T>(), s.ptr<T>(), cls, s.numel(), iou_threshold, has_score_threshold, score_threshold,
                            top_k, max_output, cluster);
  });
  return int64_tensor(keep, b.device);
}

}  // namespace cpu
}  // namespace cnnops

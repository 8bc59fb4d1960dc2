// CUDA drivers of the box utilities and the IoU family (declarations); csrc/ops/cuda/boxes.cu says
// how the work is split. Same names, signatures and contracts as the CPU drivers in
// ops/cpu/boxes.h: contiguous tensors on one CUDA device, checked by ops/boxes.cpp, whose value
// checks run on the device through RowChecks below (also used by the NMS family).
#pragma once
#include <cstdint>
#include <vector>

#include "core/cuda.h"
#include "ops/boxes.h"

namespace cnnops {
namespace cuda {

// Value checks of box rows on the device, without reading the arrays on the host. A RowChecks
// holds `slots` BadRow results and `counters` int64 values in one small device buffer; each
// check launches a kernel on the current stream that finds the first offending row of one array
// (atomicMin over the rows) and a one-thread kernel that records that row's values. A driver
// whose output size depends on the data (remove_small_boxes, the NMS family) writes its counts
// into counters() on the device, so that read() brings back the checks and the counts with one
// copy: the call's only synchronisation.
class RowChecks {
 public:
  RowChecks(int device, int slots, int counters);
  RowChecks(const RowChecks&) = delete;
  RowChecks& operator=(const RowChecks&) = delete;
  ~RowChecks();

  // Slot k: the first row of b (n, 4) with a non-finite coordinate or, when `ordered`, unordered
  // corners (x1 > x2 or y1 > y2 for xyxy; w < 0 or h < 0 for xywh / cxcywh).
  void boxes(int k, const Tensor& b, BoxFormat fmt, bool ordered);
  // Slot k: the first box i of b (n, 4) with a non-finite coordinate, x1 > x2 or y1 > y2, or a
  // non-finite score s[i] (s has n elements, any shape).
  void boxes_scores(int k, const Tensor& b, const Tensor& s);
  // The device int64 counters (zero at construction).
  int64_t* counters() const;
  // Copies the slots and counters to the host, waiting for the stream; later calls return at once.
  void read();
  const BadRow& row(int k);  // reads first when needed
  int64_t counter(int k);

 private:
  int device_, slots_, counters_;
  Stream stream_;
  void* buf_ = nullptr;
  bool read_ = false;
  std::vector<unsigned char> host_;
};

// Stable compaction on the device (remove_small_boxes and the NMS outputs). Positions
// p in [0, nseg * len) form nseg segments of len positions. For each segment g, the elements
// e(p) = order ? order[p] : p of the positions whose flag is set (flags[p], or flags[e(p)] when
// by_element), in position order, the first `cap` of them, go to out[g * cap ...] as
// e(p) - g * len, and counts[g] (when not null) = min(cap, how many were set). Entries of out
// beyond a segment's count are left as they were.
struct Compaction {
  const uint8_t* flags = nullptr;
  const uint32_t* order = nullptr;
  bool by_element = false;
  int64_t len = 0, nseg = 0, cap = 0;
  int64_t* out = nullptr;
  int64_t* counts = nullptr;
};
// Queues the compaction on stream s (device memory only; nothing is read back).
void compact(const Compaction& c, int device, Stream s);
// v[0, n) -> exclusive prefix sums in place and v[n] = the total (one block; queued on stream s).
void exclusive_scan(int64_t* v, int64_t n, Stream s);

void box_convert(const Tensor& b, Tensor& out, BoxFormat in_fmt, BoxFormat out_fmt);
void box_area(const Tensor& b, Tensor& out, double offset);
void clip_boxes(const Tensor& b, Tensor& out, double height, double width);
// The indices of the boxes to keep written to the front of `keep` (N,); returns how many. The
// count comes back through checks.counters()[0] together with the value checks.
int64_t small_box_keep(const Tensor& b, Tensor& keep, double min_size, double offset, RowChecks& checks);
void box_pairwise(geom::IouKind kind, const Tensor& b1, const Tensor& b2, Tensor& out, double offset, double eps);
// `out`: (N,) per pair, or the reduced scalar (summed in the CPU kernels' order: chunks of
// kLossChunk pairs in pair order, then the chunks in order, in double).
void box_loss(geom::IouKind kind, const Tensor& b1, const Tensor& b2, Reduction red, double offset, double eps,
              Tensor& out);
void box_loss_backward(geom::IouKind kind, const Tensor& grad_output, const Tensor& b1, const Tensor& b2, Reduction red,
                       double offset, double eps, Tensor& g1, Tensor& g2);

}  // namespace cuda
}  // namespace cnnops

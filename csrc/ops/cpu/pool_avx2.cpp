// AVX2 rows of 2-D channels-first float max pooling with stride 2 along the width and a kernel
// width of 2 or 3 (the ResNet/VGG stems: 3x3/2 and 2x2/2), with or without the argmax.
//
// Per output row (one thread owns the whole plane, see pool.cpp): the vertical pass reduces the
// window's input rows into a row buffer, 8 columns per instruction (value and, with indices,
// the 32-bit flat position of the winner; NaN-aware selects as PyTorch's rule). The horizontal
// pass then makes 8 outputs at a time from 16 (+2) buffer entries: even and odd columns are
// split with shuffles, and the candidates 2ow, 2ow+1 (and 2ow+2) are combined in order. The
// buffer carries the left padding (and the right overhang of ceil_mode) as -inf with position
// INT32_MAX, which never wins: ties go to the smaller position, i.e. the first in a row-major
// scan over the window. Register use: a handful of ymm; the loops are load/store bound, which is
// the point: the kernel should run at memory speed (see benchmarks/results/pool_cpu.md).
#include <immintrin.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ops/cpu/pool.h"

namespace cnnops {
namespace cpu {
namespace avx2 {

namespace {

// Even (lo) and odd (hi) elements of the 16 floats at p, each in order.
inline void split(const float* p, __m256& even, __m256& odd) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
  odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
}

inline void split_i(const int32_t* p, __m256i& even, __m256i& odd) {
  __m256 e, o;
  split(reinterpret_cast<const float*>(p), e, o);
  even = _mm256_castps_si256(e);
  odd = _mm256_castps_si256(o);
}

// PyTorch's max: v replaces best when larger or NaN.
inline __m256 takes(__m256 v, __m256 best) {
  return _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

// Combining two candidates with positions: NaN -> the later NaN; else larger, or equal and earlier.
inline __m256 takes_pos(__m256 v, __m256i q, __m256 best, __m256i bp) {
  const __m256 vn = _mm256_cmp_ps(v, v, _CMP_UNORD_Q), bn = _mm256_cmp_ps(best, best, _CMP_UNORD_Q);
  const __m256 later = _mm256_castsi256_ps(_mm256_cmpgt_epi32(q, bp));
  const __m256 earlier = _mm256_castsi256_ps(_mm256_cmpgt_epi32(bp, q));
  const __m256 nan_take =
      _mm256_and_ps(vn, _mm256_or_ps(_mm256_xor_ps(bn, _mm256_castsi256_ps(_mm256_set1_epi32(-1))), later));
  const __m256 num_take = _mm256_andnot_ps(
      vn, _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_and_ps(_mm256_cmp_ps(v, best, _CMP_EQ_OQ), earlier)));
  return _mm256_or_ps(nan_take, num_take);
}

inline bool takes_pos1(float v, int32_t q, float best, int32_t bp) {
  const bool vn = v != v, bn = best != best;
  return (vn & (!bn | (q > bp))) | (!vn & ((v > best) | ((v == best) & (q < bp))));
}

}  // namespace

// buf/pbuf: at least (OW - 1) * 2 + kw + 24 entries; pbuf may be null when idx is null.
void max_rows_s2_plane(const float* x, float* y, int64_t* idx, const PoolGeom& g, float* buf, int32_t* pbuf) {
  const int64_t W = g.in[2], OH = g.out[1], OW = g.out[2], kw = g.kw, pw = g.pw;
  const int64_t BW = (OW - 1) * 2 + kw + 24;
  const float ninf = -std::numeric_limits<float>::infinity();
  const bool want = idx != nullptr;
  const int64_t wend = std::min(W, BW - 24 - pw);  // input columns any window reads
  for (int64_t i = 0; i < BW; ++i) buf[i] = ninf;
  if (want)
    for (int64_t i = 0; i < BW; ++i) pbuf[i] = INT32_MAX;
  float* b = buf + pw;
  int32_t* pb = want ? pbuf + pw : nullptr;
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t oh = 0; oh < OH; ++oh) {
    const int64_t bh = g.begin[1][oh], ch = g.count[1][oh];
    // vertical pass
    {
      const float* r0 = x + bh * W;
      const int32_t p0 = static_cast<int32_t>(bh * W);
      int64_t w = 0;
      for (; w + 8 <= wend; w += 8) {
        __m256 best = _mm256_loadu_ps(r0 + w);
        __m256i bp = _mm256_add_epi32(_mm256_set1_epi32(p0 + static_cast<int32_t>(w)), lane);
        for (int64_t j = 1; j < ch; ++j) {
          const __m256 v = _mm256_loadu_ps(r0 + j * W + w);
          const __m256 t = takes(v, best);
          best = _mm256_blendv_ps(best, v, t);
          if (want) {
            const __m256i q = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>((bh + j) * W + w)), lane);
            bp = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(bp), _mm256_castsi256_ps(q), t));
          }
        }
        _mm256_storeu_ps(b + w, best);
        if (want) _mm256_storeu_si256(reinterpret_cast<__m256i*>(pb + w), bp);
      }
      for (; w < wend; ++w) {
        float best = r0[w];
        int32_t bp = p0 + static_cast<int32_t>(w);
        for (int64_t j = 1; j < ch; ++j) {
          const float v = r0[j * W + w];
          if (v > best || v != v) {
            best = v;
            bp = static_cast<int32_t>((bh + j) * W + w);
          }
        }
        b[w] = best;
        if (want) pb[w] = bp;
      }
    }
    // horizontal pass: output ow reads buf[2ow .. 2ow + kw)
    float* yr = y + oh * OW;
    int64_t* ir = want ? idx + oh * OW : nullptr;
    int64_t ow = 0;
    for (; ow + 8 <= OW; ow += 8) {
      __m256 e0, o0, e1, o1;
      split(buf + 2 * ow, e0, o0);
      if (!want) {
        __m256 m = _mm256_blendv_ps(e0, o0, takes(o0, e0));
        if (kw == 3) {
          split(buf + 2 * ow + 2, e1, o1);
          m = _mm256_blendv_ps(m, e1, takes(e1, m));
        }
        _mm256_storeu_ps(yr + ow, m);
        continue;
      }
      __m256i pe0, po0, pe1, po1;
      split_i(pbuf + 2 * ow, pe0, po0);
      __m256 t = takes_pos(o0, po0, e0, pe0);
      __m256 m = _mm256_blendv_ps(e0, o0, t);
      __m256i mp = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(pe0), _mm256_castsi256_ps(po0), t));
      if (kw == 3) {
        split(buf + 2 * ow + 2, e1, o1);
        split_i(pbuf + 2 * ow + 2, pe1, po1);
        t = takes_pos(e1, pe1, m, mp);
        m = _mm256_blendv_ps(m, e1, t);
        mp = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(mp), _mm256_castsi256_ps(pe1), t));
      }
      _mm256_storeu_ps(yr + ow, m);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ir + ow), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(mp)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(ir + ow + 4),
                          _mm256_cvtepi32_epi64(_mm256_extracti128_si256(mp, 1)));
    }
    for (; ow < OW; ++ow) {
      const float* q = buf + 2 * ow;
      float m = q[0];
      int32_t mp = want ? pbuf[2 * ow] : 0;
      for (int64_t j = 1; j < kw; ++j) {
        if (want) {
          if (takes_pos1(q[j], pbuf[2 * ow + j], m, mp)) {
            m = q[j];
            mp = pbuf[2 * ow + j];
          }
        } else if (q[j] > m || q[j] != q[j]) {
          m = q[j];
        }
      }
      yr[ow] = m;
      if (want) ir[ow] = mp;
    }
  }
}

}  // namespace avx2
}  // namespace cpu
}  // namespace cnnops

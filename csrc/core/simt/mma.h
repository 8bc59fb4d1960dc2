// Tensor-core matrix multiply-accumulate (PTX mma.sync) and the matching shared-memory fragment
// load (ldmatrix) under one spelling for nvcc (inline PTX, sm_80 and later) and for the SIMT
// emulator (warp-collective operations on the lanes' fragments):
//
//   cnnops_mma_m16n8k8_tf32(float d[4], const unsigned a[4], const unsigned b[2], const float c[4])
//       mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32
//   cnnops_mma_m16n8k16_f16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4])
//       mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
//   cnnops_mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4])
//       mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
//   cnnops_ldmatrix_x1/_x2/_x4(unsigned r[n], const void* smem_row)        ldmatrix...m8n8.xN.shared.b16
//   cnnops_ldmatrix_x1_trans/_x2_trans/_x4_trans(unsigned r[n], const void* smem_row)     the same, .trans
//   cnnops_to_tf32(float x)                    x rounded to tf32 (cvt.rna.tf32.f32: to nearest, ties
//                                              away from zero), as a float with the low 13 bits zero
//   cnnops_pack_f16x2(float lo, float hi)      two floats to a .f16x2 register (round to nearest even;
//                                              lo in bits 0-15, as the fragments below number them)
//   cnnops_pack_bf16x2(float lo, float hi)     the same for bf16
//
// Every lane of the warp must call the mma and ldmatrix functions together (.sync.aligned), and d
// may be c. D (16x8) = A (16xK) * B (Kx8) + C, K = 8 for tf32 and 16 for f16/bf16. With
// g = lane / 4 and t = lane % 4, the PTX ISA's fragment layouts ("Matrix Fragments for
// mma.m16n8k8 / mma.m16n8k16") are:
//   tf32 A: a[0] = A[g][t], a[1] = A[g+8][t], a[2] = A[g][t+4], a[3] = A[g+8][t+4]
//   tf32 B: b[0] = B[t][g], b[1] = B[t+4][g]
//   f16/bf16 A (two elements per register, the lower-numbered in the low 16 bits):
//            a[0] = A[g][2t, 2t+1], a[1] = A[g+8][2t, 2t+1], a[2] = A[g][2t+8, 2t+9], a[3] = A[g+8][2t+8, 2t+9]
//   f16/bf16 B: b[0] = B[2t, 2t+1][g], b[1] = B[2t+8, 2t+9][g]
//   C and D: c[0] = C[g][2t], c[1] = C[g][2t+1], c[2] = C[g+8][2t], c[3] = C[g+8][2t+1]
// ldmatrix: lanes 8m..8m+7 give the addresses of rows 0..7 of matrix m (16-byte aligned rows of
// eight 16-bit elements; x1 uses lanes 0-7, x2 0-15); lane l receives in r[m] the elements
// (l / 4, 2 (l % 4)) and (l / 4, 2 (l % 4) + 1) of matrix m, with .trans those of its transpose.
// So ldmatrix_x4 of a row-major 16x16 A tile (lane l pointing at row l % 16, column 8 (l / 16))
// gives the f16 A fragment, and ldmatrix_x2 of an 8x16 tile of B stored n-major (B^T row-major),
// or ldmatrix_x2_trans of a 16x8 tile of B stored k-major, gives the B fragment.
//
// Emulated arithmetic: each lane computes its four D elements as c plus the K products in k order,
// in fp32 (every product of two tf32, f16 or bf16 values is exact in fp32). The PTX ISA leaves the
// accumulation order and rounding unspecified beyond "at least single precision", so GPU results
// may differ from the emulator's in the last bits. tf32 operands: the emulator ignores the low 13
// mantissa bits of each A and B register (truncation), so feed it cnnops_to_tf32 values, as on the
// GPU where the tf32 encoding of a register is implementation-defined.
#pragma once

#ifdef __CUDACC__

__device__ __forceinline__ float cnnops_to_tf32(float x) {
  unsigned u;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(u) : "f"(x));
  return __uint_as_float(u);
}
__device__ __forceinline__ unsigned cnnops_pack_f16x2(float lo, float hi) {
  unsigned u;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(u) : "f"(hi), "f"(lo));  // first source to the upper half
  return u;
}
__device__ __forceinline__ unsigned cnnops_pack_bf16x2(float lo, float hi) {
  unsigned u;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(u) : "f"(hi), "f"(lo));
  return u;
}

__device__ __forceinline__ void cnnops_mma_m16n8k8_tf32(float d[4], const unsigned a[4], const unsigned b[2],
                                                        const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
__device__ __forceinline__ void cnnops_mma_m16n8k16_f16(float d[4], const unsigned a[4], const unsigned b[2],
                                                        const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
__device__ __forceinline__ void cnnops_mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2],
                                                         const float c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}

__device__ __forceinline__ void cnnops_ldmatrix_x1(unsigned r[1], const void* smem_row) {
  const unsigned p = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(p));
}
__device__ __forceinline__ void cnnops_ldmatrix_x2(unsigned r[2], const void* smem_row) {
  const unsigned p = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(p));
}
__device__ __forceinline__ void cnnops_ldmatrix_x4(unsigned r[4], const void* smem_row) {
  const unsigned p = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(p));
}
__device__ __forceinline__ void cnnops_ldmatrix_x1_trans(unsigned r[1], const void* smem_row) {
  const unsigned p = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(p));
}
__device__ __forceinline__ void cnnops_ldmatrix_x2_trans(unsigned r[2], const void* smem_row) {
  const unsigned p = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(p));
}
__device__ __forceinline__ void cnnops_ldmatrix_x4_trans(unsigned r[4], const void* smem_row) {
  const unsigned p = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(p));
}

#else  // the SIMT emulator

#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "core/simt/simt.h"

namespace cnnops {
namespace simt {

inline unsigned float_bits(float f) {
  unsigned u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float bits_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// cvt.rna.tf32.f32: keeps 10 mantissa bits, rounding to nearest with ties away from zero (adding
// half a unit of the kept last bit to the magnitude carries into it exactly when the dropped
// bits are at least half); a carry out of the largest finite exponent gives infinity, as
// rounding should. NaN gives the canonical NaN.
inline float tf32_round(float x) {
  const unsigned u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bits_float(0x7fffffffu);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;  // infinities
  return bits_float((u + 0x1000u) & 0xffffe000u);
}
// A tf32 operand as the emulated tensor core reads it: the low 13 mantissa bits ignored.
inline float tf32_operand(unsigned u) {
  if ((u & 0x7f800000u) == 0x7f800000u) return bits_float(u);  // infinities and NaN as they are
  return bits_float(u & 0xffffe000u);
}

// IEEE binary16 from float, round to nearest even (overflow to infinity, subnormal halves).
inline unsigned short f16_from_float(float x) {
  const unsigned u = float_bits(x), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<unsigned short>(sign | 0x7e00u | ((a >> 13) & 0x1ffu));  // quiet NaN
  if (a >= 0x477ff000u) return static_cast<unsigned short>(sign | 0x7c00u);  // 65520 and up round to infinity
  if (a >= 0x38800000u) {                                                     // normal half (>= 2^-14)
    unsigned h = (((a >> 23) - 127u + 15u) << 10) | ((a >> 13) & 0x3ffu);
    const unsigned rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry moves into the exponent
    return static_cast<unsigned short>(sign | h);
  }
  // Subnormal half: the value in units of 2^-24, i.e. the float's significand shifted right.
  const unsigned exp = a >> 23;
  if (exp < 102u) return static_cast<unsigned short>(sign);  // below 2^-25: rounds to zero
  const unsigned mant = (a & 0x7fffffu) | 0x800000u, shift = 126u - exp;  // 14 to 24
  unsigned h = mant >> shift;
  const unsigned rest = mant & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (rest > half || (rest == half && (h & 1u))) ++h;
  return static_cast<unsigned short>(sign | h);
}
inline float f16_to_float(unsigned short h) {
  const unsigned sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // mant * 2^-24, exact
    return sign ? -v : v;
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));
  return bits_float(sign | ((exp - 15u + 127u) << 23) | (mant << 13));
}
// bfloat16 from float, round to nearest even; NaN stays a (quiet) NaN.
inline unsigned short bf16_from_float(float x) {
  const unsigned u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<unsigned short>((u >> 16) | 0x40u);
  return static_cast<unsigned short>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16_to_float(unsigned short h) { return bits_float(static_cast<unsigned>(h) << 16); }

enum class MmaInput { TF32, F16, BF16 };

// Element `half` (0: bits 0-15, 1: bits 16-31) of fragment register `reg` of the lane whose
// exchange slot is `slot` (A registers at bytes 0-15, B registers at 16-23).
inline float mma_operand(const unsigned char* slot, int reg, int half, MmaInput t) {
  unsigned u;
  std::memcpy(&u, slot + 4 * reg, sizeof u);
  if (t == MmaInput::TF32) return tf32_operand(u);
  const auto h = static_cast<unsigned short>(half ? u >> 16 : u & 0xffffu);
  return t == MmaInput::F16 ? f16_to_float(h) : bf16_to_float(h);
}

// mma.sync m16n8k8 (tf32) or m16n8k16 (f16, bf16), .row.col, f32 accumulators; see the layouts
// at the top of this file. Each lane publishes its A and B registers, then reads the ones its
// D elements need from the other lanes.
inline void mma_m16n8(float d[4], const unsigned a[4], const unsigned b[2], const float c[4], MmaInput t) {
  require_full_warp("mma.sync");
  ThreadState& me = this_thread();
  std::memcpy(me.xchg, a, 4 * sizeof(unsigned));
  std::memcpy(me.xchg + 16, b, 2 * sizeof(unsigned));
  sync_warp(0xffffffffu);
  const int g = me.lane / 4, tg = me.lane % 4;
  const int K = t == MmaInput::TF32 ? 8 : 16;
  float out[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + (i >= 2 ? 8 : 0), col = 2 * tg + (i & 1);
    float acc = c[i];
    for (int k = 0; k < K; ++k) {
      float av, bv;
      if (t == MmaInput::TF32) {  // A[row][k]: lane (row % 8, k % 4), register (row >= 8) + 2 (k >= 4)
        av = mma_operand(this_lane_xchg(row % 8 * 4 + k % 4), (row >= 8) + 2 * (k >= 4), 0, t);
        bv = mma_operand(this_lane_xchg(col * 4 + k % 4) + 16, k >= 4, 0, t);
      } else {  // A[row][k]: lane (row % 8, k % 8 / 2), register (row >= 8) + 2 (k >= 8), half k % 2
        av = mma_operand(this_lane_xchg(row % 8 * 4 + k % 8 / 2), (row >= 8) + 2 * (k >= 8), k % 2, t);
        bv = mma_operand(this_lane_xchg(col * 4 + k % 8 / 2) + 16, k >= 8, k % 2, t);
      }
      acc += av * bv;
    }
    out[i] = acc;
  }
  sync_warp(0xffffffffu);  // every lane has read the slots before any lane reuses its own
  std::memcpy(d, out, sizeof out);
}

// ldmatrix.sync.aligned.m8n8.x{num}{.trans}.shared.b16 (see the top of this file).
inline void ldmatrix(unsigned* r, int num, bool trans, const void* row) {
  require_full_warp("ldmatrix");
  ThreadState& me = this_thread();
  if (me.lane < 8 * num && reinterpret_cast<uintptr_t>(row) % 16 != 0)
    throw std::runtime_error("SIMT emulator: ldmatrix needs 16-byte aligned row addresses");
  std::memcpy(me.xchg, &row, sizeof row);
  sync_warp(0xffffffffu);
  const auto row_of = [](int lane) {
    const unsigned char* p;
    std::memcpy(&p, this_lane_xchg(lane), sizeof p);
    return p;
  };
  const int l = me.lane;
  unsigned out[4];
  for (int m = 0; m < num; ++m) {
    if (!trans) {
      std::memcpy(&out[m], row_of(8 * m + l / 4) + 4 * (l % 4), sizeof(unsigned));
    } else {  // element (l / 4, 2 (l % 4) + j) of the transpose is element l / 4 of row 2 (l % 4) + j
      unsigned short lo, hi;
      std::memcpy(&lo, row_of(8 * m + 2 * (l % 4)) + 2 * (l / 4), sizeof lo);
      std::memcpy(&hi, row_of(8 * m + 2 * (l % 4) + 1) + 2 * (l / 4), sizeof hi);
      out[m] = static_cast<unsigned>(lo) | static_cast<unsigned>(hi) << 16;
    }
  }
  sync_warp(0xffffffffu);
  std::memcpy(r, out, static_cast<size_t>(num) * sizeof(unsigned));
}

}  // namespace simt
}  // namespace cnnops

inline float cnnops_to_tf32(float x) { return ::cnnops::simt::tf32_round(x); }
inline unsigned cnnops_pack_f16x2(float lo, float hi) {
  return static_cast<unsigned>(::cnnops::simt::f16_from_float(lo)) |
         static_cast<unsigned>(::cnnops::simt::f16_from_float(hi)) << 16;
}
inline unsigned cnnops_pack_bf16x2(float lo, float hi) {
  return static_cast<unsigned>(::cnnops::simt::bf16_from_float(lo)) |
         static_cast<unsigned>(::cnnops::simt::bf16_from_float(hi)) << 16;
}
inline void cnnops_mma_m16n8k8_tf32(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
  ::cnnops::simt::mma_m16n8(d, a, b, c, ::cnnops::simt::MmaInput::TF32);
}
inline void cnnops_mma_m16n8k16_f16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
  ::cnnops::simt::mma_m16n8(d, a, b, c, ::cnnops::simt::MmaInput::F16);
}
inline void cnnops_mma_m16n8k16_bf16(float d[4], const unsigned a[4], const unsigned b[2], const float c[4]) {
  ::cnnops::simt::mma_m16n8(d, a, b, c, ::cnnops::simt::MmaInput::BF16);
}
inline void cnnops_ldmatrix_x1(unsigned r[1], const void* smem_row) { ::cnnops::simt::ldmatrix(r, 1, false, smem_row); }
inline void cnnops_ldmatrix_x2(unsigned r[2], const void* smem_row) { ::cnnops::simt::ldmatrix(r, 2, false, smem_row); }
inline void cnnops_ldmatrix_x4(unsigned r[4], const void* smem_row) { ::cnnops::simt::ldmatrix(r, 4, false, smem_row); }
inline void cnnops_ldmatrix_x1_trans(unsigned r[1], const void* smem_row) {
  ::cnnops::simt::ldmatrix(r, 1, true, smem_row);
}
inline void cnnops_ldmatrix_x2_trans(unsigned r[2], const void* smem_row) {
  ::cnnops::simt::ldmatrix(r, 2, true, smem_row);
}
inline void cnnops_ldmatrix_x4_trans(unsigned r[4], const void* smem_row) {
  ::cnnops::simt::ldmatrix(r, 4, true, smem_row);
}

#endif

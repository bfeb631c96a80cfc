// Vector helpers shared by squeezebert's CPU kernels (AVX-512 only; the kernels' scalar paths do not use them).

#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>

namespace squeezebert_simd {

// 1 / d for d >= 1: the 14-bit estimate and one Newton step (relative error about 2^-24, a division's rounding
// otherwise; the division itself would cost as much as the rest of a GELU).
inline __m512 reciprocal(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(1.0f)), r);
}

// e^v for v <= 0 (to 0 below -87): 2^n * p(r), v = n ln 2 + r with |r| <= ln 2 / 2, p of degree 7 (Taylor's
// coefficients: the truncation error r^8 / 8! < 6e-9 relative), ln 2 split in two for an exact r.
inline __m512 exp_nonpositive(__m512 v) {
  v = _mm512_max_ps(v, _mm512_set1_ps(-87.0f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(v, _mm512_set1_ps(1.44269504088896341f)), 0);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), v);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// The lanes of a 16-column register that hold real columns when `left` columns are left (all for 16 or more).
inline __mmask16 lanes_of(int64_t left) {
  return static_cast<__mmask16>((1u << std::clamp<int64_t>(left, 0, 16)) - 1u);
}

#if defined(__AVX512VNNI__)
// acc + the four u8 x s8 products of x and w in each int32 lane (vpdpbusd), written as an asm statement: around the
// intrinsic in a loop that carries many accumulators, GCC 12 copies each accumulator to another register and back
// at every step.
inline __m512i dpbusd(__m512i acc, __m512i x, __m512i w) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w));
  return acc;
}
#endif

}  // namespace squeezebert_simd

#endif

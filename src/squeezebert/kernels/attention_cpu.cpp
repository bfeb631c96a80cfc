// Multi-head self-attention for squeezebert's int8 inference path (see SqueezeBertSelfAttention).
//
// softmax(q k^T / sqrt(d) + mask) v for every head of every sequence, read straight from the fused QKV
// projection's output and written straight into the context: one parallel region over the heads, no copies of q,
// k, v or the context (scaled_dot_product_attention needs a copy of the context and, at these sizes, about 1.5x
// to 2x the time). Per head: k^T / sqrt(d) is gathered into a buffer of whole 32-key panels; the scores of 6
// query rows x 32 keys at a time are summed in registers over d; each row of scores gets its mask, loses its
// maximum and is exponentiated in place, its sum kept; then 6 rows x d of the context at a time are summed in
// registers over the keys and divided by the rows' sums at the store.
// AVX-512 only (built with -march=native): elsewhere attention_available() is false and the model keeps
// scaled_dot_product_attention.

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels.h"
#include "simd.h"

namespace {

constexpr int64_t kMaxHead = 64;  // head sizes: multiples of 16 up to this (four 16-lane registers of context)
constexpr int64_t kKeys = 32;     // keys per panel of k^T: two 16-lane registers per row of scores
constexpr int kRows = 6;          // query rows per tile

#if defined(__AVX512F__)
using squeezebert_simd::exp_nonpositive;
using squeezebert_simd::lanes_of;

// One head's keys: kt (d, keys) = k^T * scale, keys padded with zeros to whole panels; k (T, d) with row stride ld.
void gather_keys(const float* k, int64_t ld, int64_t seq, int64_t d, float scale, float* kt, int64_t keys) {
  const __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(static_cast<int32_t>(ld)));
  const __m512 scales = _mm512_set1_ps(scale);
  for (int64_t j = 0; j < keys; j += 16) {
    const __mmask16 lanes = lanes_of(seq - j);
    for (int64_t e = 0; e < d; ++e) {
      const __m512 column = lanes != 0 ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, rows, k + j * ld + e, 4)
                                       : _mm512_setzero_ps();  // a panel's padding keys past the last
      _mm512_storeu_ps(kt + e * keys + j, _mm512_mul_ps(column, scales));
    }
  }
}

// Rows query rows of q (row stride ldq) times one panel of kt (d, 32, row stride keys): s (Rows, 32, row stride
// lds) = the scores.
template <int Rows>
void score_tile(const float* q, int64_t ldq, const float* kt, int64_t keys, int64_t d, float* s, int64_t lds) {
  __m512 acc[Rows][2];
  for (int r = 0; r < Rows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t e = 0; e < d; ++e) {
    const __m512 k0 = _mm512_loadu_ps(kt + e * keys), k1 = _mm512_loadu_ps(kt + e * keys + 16);
    for (int r = 0; r < Rows; ++r) {
      const __m512 x = _mm512_set1_ps(q[r * ldq + e]);
      acc[r][0] = _mm512_fmadd_ps(x, k0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, k1, acc[r][1]);
    }
  }
  for (int r = 0; r < Rows; ++r) {
    _mm512_storeu_ps(s + r * lds, acc[r][0]);
    _mm512_storeu_ps(s + r * lds + 16, acc[r][1]);
  }
}

// One row of scores (seq of them) in place: e^(s + mask - max), returning 1 / their sum; mask may be null. Masks
// only on the last 16 keys when seq is not a multiple of 16 (masked stores are slow on AMD Zen 4).
float exponentiate_row(float* s, const float* mask, int64_t seq) {
  auto masked = [&](int64_t j, __mmask16 lanes) {  // s + mask at keys j .. j + 15
    const __m512 v = _mm512_maskz_loadu_ps(lanes, s + j);
    return mask != nullptr ? _mm512_add_ps(v, _mm512_maskz_loadu_ps(lanes, mask + j)) : v;
  };
  const int64_t whole = seq / 16 * 16;
  const __mmask16 tail = lanes_of(seq - whole);
  __m512 highs = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < whole; j += 16) highs = _mm512_max_ps(highs, masked(j, 0xffff));
  if (tail != 0) highs = _mm512_mask_max_ps(highs, tail, highs, masked(whole, tail));
  const __m512 high = _mm512_set1_ps(_mm512_reduce_max_ps(highs));
  __m512 sums = _mm512_setzero_ps();
  for (int64_t j = 0; j < whole; j += 16) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(masked(j, 0xffff), high));
    _mm512_storeu_ps(s + j, e);
    sums = _mm512_add_ps(sums, e);
  }
  if (tail != 0) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(masked(whole, tail), high));
    _mm512_mask_storeu_ps(s + whole, tail, e);
    sums = _mm512_mask_add_ps(sums, tail, sums, e);
  }
  return 1.0f / _mm512_reduce_add_ps(sums);
}

// Rows rows of the context: out (Rows, d = 16 * Vectors, row stride ldo) = (p (Rows, seq, row stride ldp) @ v
// (seq, d, row stride ldv)) * inverse (per row). The columns are written out, unmasked, not looped over: with a loop
// over them and masked loads, GCC 12 kept a copy of the accumulators in memory, stored at every step.
template <int Rows, int Vectors>
void context_tile(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t seq, const float* inverse,
                  float* out, int64_t ldo) {
  __m512 acc[Rows][4];
  for (int r = 0; r < Rows; ++r) acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm512_setzero_ps();
  for (int64_t j = 0; j < seq; ++j) {
    const float* row = v + j * ldv;
    const __m512 v0 = _mm512_loadu_ps(row);
    const __m512 v1 = Vectors > 1 ? _mm512_loadu_ps(row + 16) : v0;
    const __m512 v2 = Vectors > 2 ? _mm512_loadu_ps(row + 32) : v0;
    const __m512 v3 = Vectors > 3 ? _mm512_loadu_ps(row + 48) : v0;
    for (int r = 0; r < Rows; ++r) {
      const __m512 x = _mm512_set1_ps(p[r * ldp + j]);
      acc[r][0] = _mm512_fmadd_ps(x, v0, acc[r][0]);
      if constexpr (Vectors > 1) acc[r][1] = _mm512_fmadd_ps(x, v1, acc[r][1]);
      if constexpr (Vectors > 2) acc[r][2] = _mm512_fmadd_ps(x, v2, acc[r][2]);
      if constexpr (Vectors > 3) acc[r][3] = _mm512_fmadd_ps(x, v3, acc[r][3]);
    }
  }
  for (int r = 0; r < Rows; ++r) {
    const __m512 w = _mm512_set1_ps(inverse[r]);
    float* row = out + r * ldo;
    _mm512_storeu_ps(row, _mm512_mul_ps(acc[r][0], w));
    if constexpr (Vectors > 1) _mm512_storeu_ps(row + 16, _mm512_mul_ps(acc[r][1], w));
    if constexpr (Vectors > 2) _mm512_storeu_ps(row + 32, _mm512_mul_ps(acc[r][2], w));
    if constexpr (Vectors > 3) _mm512_storeu_ps(row + 48, _mm512_mul_ps(acc[r][3], w));
  }
}

// Calls tile(r, rows) over `count` rows in tiles: rows = kRows at a time from r = 0, then rows = 1 for the rest.
// rows is a std::integral_constant, so that tile can pass it on as a template argument.
template <typename Tile>
void by_row_tiles(int64_t count, const Tile& tile) {
  int64_t r = 0;
  for (; r + kRows <= count; r += kRows) tile(r, std::integral_constant<int, kRows>{});
  for (; r < count; ++r) tile(r, std::integral_constant<int, 1>{});
}

// All rows of the context, with d = 16 * Vectors.
template <int Vectors>
void context_rows(const float* p, int64_t ldp, const float* v, int64_t ldv, int64_t seq, const float* inverse,
                  float* out, int64_t ldo) {
  by_row_tiles(seq, [&](int64_t r, auto rows) {
    context_tile<decltype(rows)::value, Vectors>(p + r * ldp, ldp, v, ldv, seq, inverse + r, out + r * ldo, ldo);
  });
}

// One head: out (seq, d, row stride ldo) = softmax(q k^T * scale + mask) v; q, k, v (seq, d) with row stride ld;
// kt (d, keys) and s (seq, keys) are the caller's buffers.
void attend(const float* q, const float* k, const float* v, int64_t ld, int64_t seq, int64_t d, float scale,
            const float* mask, float* kt, float* s, int64_t keys, float* inverse, float* out, int64_t ldo) {
  gather_keys(k, ld, seq, d, scale, kt, keys);
  by_row_tiles(seq, [&](int64_t r, auto rows) {
    for (int64_t j = 0; j < keys; j += kKeys) {
      score_tile<decltype(rows)::value>(q + r * ld, ld, kt + j, keys, d, s + r * keys + j, keys);
    }
  });
  for (int64_t i = 0; i < seq; ++i) inverse[i] = exponentiate_row(s + i * keys, mask, seq);
  switch (d / 16) {
    case 1: context_rows<1>(s, keys, v, ld, seq, inverse, out, ldo); break;
    case 2: context_rows<2>(s, keys, v, ld, seq, inverse, out, ldo); break;
    case 3: context_rows<3>(s, keys, v, ld, seq, inverse, out, ldo); break;
    default: context_rows<4>(s, keys, v, ld, seq, inverse, out, ldo); break;
  }
}
#endif

}  // namespace

bool attention_available() {
#if defined(__AVX512F__)
  return true;
#else
  return false;
#endif
}

// qkv (G, batch * seq, 3 * heads / G * d) float32 with contiguous rows: per group g and token, the q, k and v of
// the group's heads side by side ((3, heads / G, d)); mask: empty, or (batch, seq) float32 added to every score of
// the sequence's keys; out (batch * seq, heads * d) float32 with contiguous rows gets the context, head g * heads /
// G + h at columns (g * heads / G + h) * d. d: 16, 32, 48 or 64.
void attention(const torch::Tensor& qkv, int64_t batch, int64_t heads, const torch::Tensor& mask, torch::Tensor& out) {
  TORCH_CHECK(attention_available(), "attention needs AVX-512, which this CPU build does not have");
  TORCH_CHECK(qkv.device().is_cpu() && qkv.scalar_type() == torch::kFloat && qkv.dim() == 3 && qkv.stride(2) == 1,
              "qkv must be float32 (groups, tokens, 3 * heads / groups * d) with contiguous rows");
  const int64_t groups = qkv.size(0), tokens = qkv.size(1);
  TORCH_CHECK(batch >= 1 && tokens % batch == 0, "qkv's tokens must be batch whole sequences");
  TORCH_CHECK(heads >= groups && heads % groups == 0 && qkv.size(2) % (3 * (heads / groups)) == 0,
              "qkv's last dimension must hold q, k and v of heads / groups heads");
  const int64_t per_group = heads / groups, d = qkv.size(2) / (3 * per_group);
  TORCH_CHECK(d % 16 == 0 && d <= kMaxHead, "attention takes heads of 16, 32, 48 or 64 channels, got ", d);
  TORCH_CHECK(out.device().is_cpu() && out.scalar_type() == torch::kFloat && out.dim() == 2 && out.stride(1) == 1 &&
                  out.size(0) == tokens && out.size(1) == heads * d,
              "out must be float32 (tokens, heads * d) with contiguous rows");
  const bool masked = mask.numel() > 0;
  TORCH_CHECK(!masked || (mask.scalar_type() == torch::kFloat && mask.is_contiguous() && mask.numel() == tokens),
              "mask must be empty or contiguous float32 (batch, seq)");
#if defined(__AVX512F__)
  const int64_t seq = tokens / batch, keys = (seq + kKeys - 1) / kKeys * kKeys, ld = qkv.stride(1), ldo = out.stride(0);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const float* qkv_data = qkv.data_ptr<float>();
  const float* mask_data = masked ? mask.data_ptr<float>() : nullptr;
  float* out_data = out.data_ptr<float>();
  at::parallel_for(0, groups * batch * per_group, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> kt(d * keys), s(seq * keys), inverse(seq);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / (batch * per_group), b = task / per_group % batch, h = task % per_group;
      const float* q = qkv_data + g * qkv.stride(0) + b * seq * ld + h * d;
      attend(q, q + per_group * d, q + 2 * per_group * d, ld, seq, d, scale,
             mask_data != nullptr ? mask_data + b * seq : nullptr, kt.data(), s.data(), keys, inverse.data(),
             out_data + b * seq * ldo + (g * per_group + h) * d, ldo);
    }
  });
#endif
}

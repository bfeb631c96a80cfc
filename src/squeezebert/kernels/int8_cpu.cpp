// Fused CPU kernels for squeezebert's int8 projections (see squeezebert/quantization.py for the math).
//
// PyTorch needs about nine element-wise passes around each int8 matmul (per-row min and max, scale, round, cast;
// int32 -> float, two scalings, the offset term, the bias) and a parallel region for each, plus one per group's
// matmul, and more for what follows it (the activation; the residual add and the LayerNorm). project does a whole
// projection in one parallel region: each thread takes blocks of rows and, per group, quantizes them in one pass
// per row and multiplies them in int8 (single-threaded inside the region); once a block's groups are done, its
// whole rows get their LayerNorm.
// Where the CPU has AVX-512 VNNI the int8 matmul is our own (vnni_matmul: unsigned 8-bit inputs times the signed
// weights packed by pack_weight, vpdpbusd into int32 registers), and each tile of 6 rows x 32 columns is finished
// in registers before it is stored: the spans' scales and offsets, the fp32 outlier channels, the bias and the
// residual; the activation follows on the stored tile, in L1. Elsewhere the matmul is torch._int_mm on signed
// inputs, and the rest follows row by row while the rows are in cache.
// Built on first use by squeezebert.kernels with -O3 -march=native; the AVX-512 branches are compiled only where
// the CPU has AVX-512, the scalar loops elsewhere (and torch._int_mm picks its own path from the CPU).

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels.h"
#include "simd.h"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#define SQUEEZEBERT_VNNI 1
#endif

namespace {

#if defined(__AVX512F__)
using squeezebert_simd::exp_nonpositive;
using squeezebert_simd::lanes_of;
using squeezebert_simd::reciprocal;
#endif
#if defined(SQUEEZEBERT_VNNI)
using squeezebert_simd::dpbusd;
#endif

constexpr int64_t kBlockRows = 128;        // at most this many rows per block (its buffers stay in L2)
constexpr int64_t kMinBlockOps = 1 << 21;  // below about this many multiply-adds per thread, fewer blocks
constexpr int64_t kPanel = 32;             // output channels per panel of packed weights: two 16-lane registers

void check_rows(const torch::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got ", t.dim());
  TORCH_CHECK(t.stride(dim - 1) == 1, name, " must have contiguous rows");
}

// One row (or one block of a row) of x times mask (mask may be null), quantized to the 256 levels from its min to
// its max: level r = round((v - min) / scale) in [0, 255] with scale = (max - min) / 255, stored as r (unsigned:
// zero = 0) or as r - 128 (signed: zero = 128), so that v ~ scale * q + offset with offset = min + zero * scale.
void quantize_row(const float* in, const float* mask, int64_t width, int zero, uint8_t* out, float* scale,
                  float* offset) {
  auto value = [&](int64_t k) { return mask != nullptr ? in[k] * mask[k] : in[k]; };
  float low = std::numeric_limits<float>::infinity(), high = -low;
  int64_t k = 0;
#if defined(__AVX512F__)
  __m512 lows = _mm512_set1_ps(low), highs = _mm512_set1_ps(high);
  for (; k + 16 <= width; k += 16) {
    __m512 v = _mm512_loadu_ps(in + k);
    if (mask != nullptr) v = _mm512_mul_ps(v, _mm512_loadu_ps(mask + k));
    lows = _mm512_min_ps(lows, v);
    highs = _mm512_max_ps(highs, v);
  }
  low = _mm512_reduce_min_ps(lows);
  high = _mm512_reduce_max_ps(highs);
#endif
  for (; k < width; ++k) {
    low = std::min(low, value(k));
    high = std::max(high, value(k));
  }
  const float step = std::max(high - low, 1e-12f) / 255.0f;
  const float inv = 1.0f / step;
  const float shift = -(low * inv);  // v * inv + shift lies in [0, 255]
  k = 0;
#if defined(__AVX512F__)
  const __m512 invs = _mm512_set1_ps(inv), shifts = _mm512_set1_ps(shift);
  const __m512i zeros = _mm512_set1_epi32(zero), top = _mm512_set1_epi32(255);
  for (; k + 16 <= width; k += 16) {
    __m512 v = _mm512_loadu_ps(in + k);
    if (mask != nullptr) v = _mm512_mul_ps(v, _mm512_loadu_ps(mask + k));
    __m512i level = _mm512_cvtps_epi32(_mm512_fmadd_ps(v, invs, shifts));  // to nearest, ties to even
    level = _mm512_sub_epi32(_mm512_min_epi32(_mm512_max_epi32(level, _mm512_setzero_si512()), top), zeros);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k), _mm512_cvtepi32_epi8(level));  // the low byte
  }
#endif
  for (; k < width; ++k) {
    const int level = static_cast<int>(std::clamp(std::nearbyint(value(k) * inv + shift), 0.0f, 255.0f)) - zero;
    out[k] = static_cast<uint8_t>(level & 0xff);  // the byte of r (zero 0) or of the int8 r - 128 (zero 128)
  }
  *scale = step;
  *offset = low + static_cast<float>(zero) * step;
}

// ----------------------------------------------------------------------------------------------------------------
// Activations, applied to the output while it is in registers (the VNNI tile) or in cache (a row).

enum class Activation { kNone, kGelu, kGeluTanh, kRelu };

Activation parse_activation(const std::string& name) {
  if (name.empty()) return Activation::kNone;
  if (name == "gelu") return Activation::kGelu;
  if (name == "gelu_tanh") return Activation::kGeluTanh;
  if (name == "relu") return Activation::kRelu;
  TORCH_CHECK(false, "activation must be '', 'gelu', 'gelu_tanh' or 'relu', got '", name, "'");
}

#if defined(__AVX512F__)
// x * Phi(x) = x / 2 * (1 + erf(x / sqrt 2)) through erfc(z), z = |x| / sqrt 2: erfc(z) = t q(t) e^(-z^2) with
// t = 1 / (1 + p z) and q of degree 4 (Abramowitz and Stegun 7.1.26, absolute error below 1.5e-7; torch's own
// vectorized erf is of the same kind). For x < 0 the factor 1 + erf(x / sqrt 2) is erfc(z) itself (no
// cancellation), for x >= 0 it is 2 - erfc(z).
__m512 gelu16(__m512 x) {
  const __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
  const __m512 t = reciprocal(_mm512_fmadd_ps(z, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
  __m512 q = _mm512_set1_ps(1.061405429f);
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-1.453152027f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(1.421413741f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(-0.284496736f));
  q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(0.254829592f));
  const __m512 erfc = _mm512_mul_ps(_mm512_mul_ps(q, t), exp_nonpositive(_mm512_fnmadd_ps(z, z, _mm512_setzero_ps())));
  const __mmask16 negative = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 factor = _mm512_mask_blend_ps(negative, _mm512_sub_ps(_mm512_set1_ps(2.0f), erfc), erfc);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), factor);
}

// x / 2 * (1 + tanh(u)), u = sqrt(2 / pi) (x + 0.044715 x^3); 1 + tanh(u) = 2 / (1 + e^(-2u)), written with
// e = e^(-2|u|) <= 1 as 2 / (1 + e) for u >= 0 and 2 e / (1 + e) for u < 0.
__m512 gelu_tanh16(__m512 x) {
  const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  const __m512 u = _mm512_mul_ps(_mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x),
                                 _mm512_set1_ps(0.79788456080286536f));
  const __m512 e = exp_nonpositive(_mm512_mul_ps(_mm512_abs_ps(u), _mm512_set1_ps(-2.0f)));
  const __m512 inverse = reciprocal(_mm512_add_ps(_mm512_set1_ps(1.0f), e));  // 1 / (1 + e)
  const __m512 two = _mm512_add_ps(inverse, inverse);
  const __mmask16 negative = _mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 factor = _mm512_mask_mul_ps(two, negative, two, e);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), factor);
}

__m512 relu16(__m512 x) { return _mm512_max_ps(x, _mm512_setzero_ps()); }
#endif

float gelu1(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }
float gelu_tanh1(float x) {
  return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
}
float relu1(float x) { return std::max(x, 0.0f); }
#if !defined(__AVX512F__)
constexpr std::nullptr_t gelu16 = nullptr, gelu_tanh16 = nullptr, relu16 = nullptr;  // no 16-lane forms here
#endif

// y[n] = f(y[n]) along each of rows rows (row stride ld): 16 lanes at a time with f16 where there is AVX-512, then
// one by one with f1.
template <typename F16, typename F1>
void map_rows(float* y, int64_t ld, int64_t rows, int64_t width, [[maybe_unused]] F16 f16, F1 f1) {
  for (int64_t r = 0; r < rows; ++r, y += ld) {
    int64_t n = 0;
#if defined(__AVX512F__)
    for (; n + 16 <= width; n += 16) _mm512_storeu_ps(y + n, f16(_mm512_loadu_ps(y + n)));
#endif
    for (; n < width; ++n) y[n] = f1(y[n]);
  }
}

// The activation in place on rows rows of width values (row stride ld): one switch, the loops inlined for each.
void activate_rows(float* y, int64_t ld, int64_t rows, int64_t width, Activation activation) {
  switch (activation) {
    case Activation::kGelu: return map_rows(y, ld, rows, width, gelu16, gelu1);
    case Activation::kGeluTanh: return map_rows(y, ld, rows, width, gelu_tanh16, gelu_tanh1);
    case Activation::kRelu: return map_rows(y, ld, rows, width, relu16, relu1);
    case Activation::kNone: return;
  }
}

#if defined(SQUEEZEBERT_VNNI)
constexpr int kTileRows = 6;    // rows per tile: 6 x 2 int32 and 6 x 2 float accumulators, 2 weights, 1 broadcast

// What a tile of rows of one panel needs besides its 8-bit rows and packed weights, and where its output goes.
// Per row r and span t: the activations' scale s[r * spans + t] and offset o[r * spans + t]; per row r and outlier
// j: the outlier input picked[r * count + j]; per row: its base row base + r * base_row (null: none) and output row
// y + r * y_row. Per span t and column n < width (beyond: padding, read as 0): the weights' scales
// steps[t * ld + n] and offset weights offsets[t * ld + n] (the sums of the span's levels times the scales); per
// outlier j: outlier_weight[j * ld + n]; bias[n] (null: none).
struct Tile {
  const float* s;
  const float* o;
  int64_t spans;
  const float* picked;
  int64_t count;
  const float* steps;
  const float* offsets;
  const float* outlier_weight;
  const float* bias;
  int64_t ld;
  int64_t width;
  const float* base;
  int64_t base_row;
  float* y;
  int64_t y_row;
  Activation activation;

  Tile rows_from(int64_t first) const {  // the same columns, from row `first` on
    Tile t = *this;
    t.s += first * spans;
    t.o += first * spans;
    t.picked += first * count;
    if (base != nullptr) t.base += first * base_row;
    t.y += first * y_row;
    return t;
  }

  Tile columns_from(int64_t first) const {  // the same rows, from column `first` on
    Tile t = *this;
    t.steps += first;
    t.offsets += first;
    t.outlier_weight += first;
    if (bias != nullptr) t.bias += first;
    if (base != nullptr) t.base += first;
    t.y += first;
    t.width -= first;
    return t;
  }
};

// Rows rows times one packed panel b (k4, 32, 4), finished: y = act(base + sum over spans t of (s_t * steps_t *
// (a_t @ b_t) + o_t * offsets_t) + picked @ outlier_weight + bias). Each span's product a_t @ b_t (span4 steps of
// four input channels) is summed in int32 registers and folded into the rows' float sums, which are kept from the
// first span to the store, in registers. The activation follows on the stored rows (in L1): called inside the
// tile, it made GCC 12 keep every float sum in memory as well. Full: all 32 columns are real, so that the loads and
// stores need no masks (masked stores are slow on AMD Zen 4: with them the int8 forward pass took 1.07x longer at
// 1 x 128 and 1.23x at 8 x 128).
template <int Rows, bool Full>
void vnni_tile(const uint8_t* a, int64_t lda, const int8_t* b, int64_t k4, int64_t span4, const Tile& tile) {
  const __mmask16 lanes[2] = {lanes_of(tile.width), lanes_of(tile.width - 16)};
  auto columns = [&](const float* row, int j) {
    return Full ? _mm512_loadu_ps(row + 16 * j) : _mm512_maskz_loadu_ps(lanes[j], row + 16 * j);
  };
  __m512 y[Rows][2];
  for (int r = 0; r < Rows; ++r) y[r][0] = y[r][1] = _mm512_setzero_ps();
  for (int64_t t = 0, k0 = 0; k0 < k4; ++t, k0 += span4) {
    __m512i acc[Rows][2];
    for (int r = 0; r < Rows; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
    const int8_t* w = b + k0 * 4 * kPanel;
    for (int64_t k = k0, k1 = std::min(k0 + span4, k4); k < k1; ++k, w += 4 * kPanel) {
      const __m512i w0 = _mm512_loadu_si512(w), w1 = _mm512_loadu_si512(w + 64);
      for (int r = 0; r < Rows; ++r) {
        int32_t four;  // the row's four input bytes 4k .. 4k+3, broadcast to every lane
        std::memcpy(&four, a + r * lda + 4 * k, sizeof(four));
        const __m512i x = _mm512_set1_epi32(four);
        acc[r][0] = dpbusd(acc[r][0], x, w0);
        acc[r][1] = dpbusd(acc[r][1], x, w1);
      }
    }
    const float* steps = tile.steps + t * tile.ld;
    const float* offsets = tile.offsets + t * tile.ld;
    const __m512 step[2] = {columns(steps, 0), columns(steps, 1)};
    const __m512 offset_weight[2] = {columns(offsets, 0), columns(offsets, 1)};
    for (int r = 0; r < Rows; ++r) {
      const __m512 scale = _mm512_set1_ps(tile.s[r * tile.spans + t]);
      const __m512 offset = _mm512_set1_ps(tile.o[r * tile.spans + t]);
      for (int j = 0; j < 2; ++j) {
        y[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][j]), _mm512_mul_ps(scale, step[j]), y[r][j]);
        y[r][j] = _mm512_fmadd_ps(offset, offset_weight[j], y[r][j]);
      }
    }
  }
  for (int64_t j = 0; j < tile.count; ++j) {  // the outlier channels, in fp32
    const __m512 w0 = columns(tile.outlier_weight + j * tile.ld, 0), w1 = columns(tile.outlier_weight + j * tile.ld, 1);
    for (int r = 0; r < Rows; ++r) {
      const __m512 p = _mm512_set1_ps(tile.picked[r * tile.count + j]);
      y[r][0] = _mm512_fmadd_ps(p, w0, y[r][0]);
      y[r][1] = _mm512_fmadd_ps(p, w1, y[r][1]);
    }
  }
  for (int r = 0; r < Rows; ++r) {
    for (int j = 0; j < 2; ++j) {
      __m512 v = y[r][j];
      if (tile.bias != nullptr) v = _mm512_add_ps(v, columns(tile.bias, j));
      if (tile.base != nullptr) v = _mm512_add_ps(columns(tile.base + r * tile.base_row, j), v);
      if constexpr (Full) {
        _mm512_storeu_ps(tile.y + r * tile.y_row + 16 * j, v);
      } else {
        _mm512_mask_storeu_ps(tile.y + r * tile.y_row + 16 * j, lanes[j], v);
      }
    }
  }
  activate_rows(tile.y, tile.y_row, Rows, std::min<int64_t>(tile.width, kPanel), tile.activation);
}

// The rows of a (rows, 4 * k4 u8) times one packed panel b (k4, 32, 4), tile by tile of kTileRows rows.
template <bool Full>
void vnni_panel(const uint8_t* a, int64_t lda, int64_t rows, const int8_t* b, int64_t k4, int64_t span4,
                const Tile& panel) {
  int64_t r = 0;
  for (; r + kTileRows <= rows; r += kTileRows) {
    vnni_tile<kTileRows, Full>(a + r * lda, lda, b, k4, span4, panel.rows_from(r));
  }
  const uint8_t* a_left = a + r * lda;
  switch (rows - r) {
    case 5: vnni_tile<5, Full>(a_left, lda, b, k4, span4, panel.rows_from(r)); break;
    case 4: vnni_tile<4, Full>(a_left, lda, b, k4, span4, panel.rows_from(r)); break;
    case 3: vnni_tile<3, Full>(a_left, lda, b, k4, span4, panel.rows_from(r)); break;
    case 2: vnni_tile<2, Full>(a_left, lda, b, k4, span4, panel.rows_from(r)); break;
    case 1: vnni_tile<1, Full>(a_left, lda, b, k4, span4, panel.rows_from(r)); break;
    default: break;
  }
}

// The rows of a (rows, 4 * k4 u8, spans of 4 * span4 channels) times the packed weight (panels, k4, 32, 4) s8,
// finished by vnni_tile: panel by panel, so that each panel's K x 32 bytes stay in L1 while every row tile passes
// over it.
void vnni_matmul(const uint8_t* a, int64_t lda, int64_t rows, const int8_t* packed, int64_t panels, int64_t k4,
                 int64_t span4, const Tile& tile) {
  for (int64_t p = 0; p < panels; ++p) {
    const int8_t* b = packed + p * k4 * 4 * kPanel;
    const Tile panel = tile.columns_from(p * kPanel);
    if (panel.width >= kPanel) {
      vnni_panel<true>(a, lda, rows, b, k4, span4, panel);
    } else {
      vnni_panel<false>(a, lda, rows, b, k4, span4, panel);
    }
  }
}
#endif

// One span of input channels of one row: v (+)= s * steps * acc + o * offsets, the span's int32 product acc, its
// activation scale s and offset o, and its weights' scales and offset weights (N each); v = when first, else v +=.
void fold_span(const int32_t* acc, float s, float o, const float* steps, const float* offsets, int64_t width,
               bool first, float* v) {
  if (first) {
    for (int64_t n = 0; n < width; ++n) v[n] = static_cast<float>(acc[n]) * (s * steps[n]) + o * offsets[n];
  } else {
    for (int64_t n = 0; n < width; ++n) v[n] += static_cast<float>(acc[n]) * (s * steps[n]) + o * offsets[n];
  }
}

// One row: y = residual + v + picked @ outlier_weight + bias, without the residual when it is null and without
// the bias when it is null; v holds the folded int8 product. Each loop vectorizes.
void finish_row(float* v, const float* picked, int64_t count, const float* outlier_weight, const float* bias,
                int64_t width, const float* residual, float* y) {
  for (int64_t j = 0; j < count; ++j) {
    const float p = picked[j];
    const float* row = outlier_weight + j * width;
    for (int64_t n = 0; n < width; ++n) v[n] += p * row[n];
  }
  if (bias != nullptr) {
    for (int64_t n = 0; n < width; ++n) v[n] += bias[n];
  }
  if (residual != nullptr) {
    for (int64_t n = 0; n < width; ++n) y[n] = residual[n] + v[n];
  } else {
    std::memcpy(y, v, width * sizeof(float));
  }
}

// LayerNorm of one row in place: (y - mean) / sqrt(var + eps) * weight + bias, the (biased) variance from a
// second pass over the centred values; the sums in 16 lanes where there is AVX-512.
void layer_norm_row(float* y, int64_t width, const float* weight, const float* bias, float eps) {
  float sum = 0.0f, squares = 0.0f;
  int64_t n = 0;
#if defined(__AVX512F__)
  __m512 sums = _mm512_setzero_ps();
  for (; n + 16 <= width; n += 16) sums = _mm512_add_ps(sums, _mm512_loadu_ps(y + n));
  sum = _mm512_reduce_add_ps(sums);
#endif
  for (; n < width; ++n) sum += y[n];
  const float mean = sum / static_cast<float>(width);
  n = 0;
#if defined(__AVX512F__)
  const __m512 means = _mm512_set1_ps(mean);
  __m512 squared = _mm512_setzero_ps();
  for (; n + 16 <= width; n += 16) {
    const __m512 d = _mm512_sub_ps(_mm512_loadu_ps(y + n), means);
    squared = _mm512_fmadd_ps(d, d, squared);
  }
  squares = _mm512_reduce_add_ps(squared);
#endif
  for (; n < width; ++n) squares += (y[n] - mean) * (y[n] - mean);
  const float rstd = 1.0f / std::sqrt(squares / static_cast<float>(width) + eps);
  for (n = 0; n < width; ++n) y[n] = (y[n] - mean) * rstd * weight[n] + bias[n];
}

void check_outliers(const torch::Tensor& outliers, int64_t groups, int64_t width) {
  TORCH_CHECK(outliers.dim() == 2 && outliers.size(0) == groups && outliers.scalar_type() == torch::kLong &&
                  outliers.is_contiguous(),
              "outliers must be contiguous int64 (groups, k)");
  const int64_t* index = outliers.data_ptr<int64_t>();
  for (int64_t i = 0; i < outliers.numel(); ++i) {
    TORCH_CHECK(index[i] >= 0 && index[i] < width, "outlier channel out of range");
  }
}

const float* check_keep(const torch::Tensor& keep, int64_t groups, int64_t width) {
  if (keep.numel() == 0) return nullptr;
  TORCH_CHECK(keep.is_contiguous() && keep.scalar_type() == torch::kFloat, "keep must be contiguous float32");
  TORCH_CHECK(keep.numel() == groups * width, "keep must hold groups * width values");
  return keep.data_ptr<float>();
}

void check_weights(const std::vector<const torch::Tensor*>& tensors) {
  for (const auto* t : tensors) {
    TORCH_CHECK(t->is_contiguous() && t->scalar_type() == torch::kFloat, "scales and bias must be contiguous float32");
  }
}

}  // namespace

// Whether vnni_matmul was compiled (AVX-512 VNNI): then project multiplies with weights packed by pack_weight.
bool vnni() {
#if defined(SQUEEZEBERT_VNNI)
  return true;
#else
  return false;
#endif
}

// The layout vnni_matmul reads: weight (G, K, N) int8 -> (G, ceil(N / 32), ceil(K / 4), 32, 4), zero-padded, so
// that one 64-byte load holds four consecutive input channels of 16 output channels.
torch::Tensor pack_weight(const torch::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 3 && weight.scalar_type() == torch::kChar, "weight must be int8 (groups, in, out)");
  const int64_t groups = weight.size(0), width = weight.size(1), cout = weight.size(2);
  const int64_t k4 = (width + 3) / 4, panels = (cout + kPanel - 1) / kPanel;
  auto padded = torch::zeros({groups, 4 * k4, kPanel * panels}, weight.options());
  padded.narrow(1, 0, width).narrow(2, 0, cout).copy_(weight);
  return padded.view({groups, k4, 4, panels, kPanel}).permute({0, 3, 1, 4, 2}).contiguous();
}

// A whole int8 projection in one parallel region. x (G, T, K) float32 with contiguous rows; keep: empty, or (G, K)
// float32 multipliers of x (0 at the outlier channels); outliers (G, k) int64: the input channels computed in fp32
// (k may be 0); weight (G, K, N) int8; packed: empty, or pack_weight(weight) where vnni(); the input channels
// come in spans of `span` (the last may be shorter; span >= K: one), each with its own scales: weight_offset and
// weight_scale (G, spans, N), the sums of the weights' levels over the span's rows times their scales, and the
// scales; bias: empty (none) or (G * N); outlier_weight (G, k, N). Each span of each row of x * keep is quantized
// by quantize_row (scale s, offset o), and y = sum over spans (s * weight_scale * (x_q @ W_q) + o * weight_offset)
// + x[outliers] @ outlier_weight + bias; out (G, T, N) float32 with contiguous rows (it may be a strided view) gets
// act(y) when residual is empty, else residual + y (residual (G, T, N) like out; it may be out itself). activation
// (only without a residual): "" none, "gelu", "gelu_tanh" or "relu". norm_weight, norm_bias: empty, or (G * N)
// with a residual: then each whole row of the (T, G * N) tensor out views (out's groups side by side) is replaced
// by its LayerNorm, once the row's groups are done. The rows are split into blocks (one per thread while each
// holds enough work, at most kBlockRows rows); each block is quantized, multiplied and dequantized group by group,
// so that its 8-bit input and products stay in cache, and the int8 matmul runs single-threaded in the region:
// vnni_matmul on unsigned levels with the packed weights, or torch._int_mm on signed ones. eps: the LayerNorm's;
// span: input channels per span.
void project(const torch::Tensor& x, const torch::Tensor& keep, const torch::Tensor& outliers,
             const torch::Tensor& weight, const torch::Tensor& packed, const torch::Tensor& weight_offset,
             const torch::Tensor& weight_scale, const torch::Tensor& bias, const torch::Tensor& outlier_weight,
             torch::Tensor& out, const torch::Tensor& residual, const torch::Tensor& norm_weight,
             const torch::Tensor& norm_bias, double eps, const std::string& activation, int64_t span) {
  check_rows(x, "x", 3);
  check_rows(out, "out", 3);
  TORCH_CHECK(x.scalar_type() == torch::kFloat && out.scalar_type() == torch::kFloat, "x and out must be float32");
  TORCH_CHECK(weight.dim() == 3 && weight.is_contiguous() && weight.scalar_type() == torch::kChar,
              "weight must be contiguous int8 (groups, in, out)");
  const int64_t groups = x.size(0), rows = x.size(1), width = x.size(2), cout = weight.size(2);
  TORCH_CHECK(weight.size(0) == groups && weight.size(1) == width, "weight must be (groups, in / groups, out)");
  TORCH_CHECK(out.size(0) == groups && out.size(1) == rows && out.size(2) == cout, "out must be (groups, rows, out)");
  const int64_t k4 = (width + 3) / 4, panels = (cout + kPanel - 1) / kPanel;
  const bool use_vnni = packed.numel() > 0;
  if (use_vnni) {
    TORCH_CHECK(vnni(), "packed weights need the AVX-512 VNNI kernel, which this CPU build does not have");
    TORCH_CHECK(packed.is_contiguous() && packed.scalar_type() == torch::kChar &&
                    packed.sizes() == torch::IntArrayRef({groups, panels, k4, kPanel, 4}),
                "packed must be pack_weight(weight)");
  }
  const float* keep_data = check_keep(keep, groups, width);
  check_outliers(outliers, groups, width);
  check_weights({&weight_offset, &weight_scale, &bias, &outlier_weight, &norm_weight, &norm_bias});
  const int64_t count = outliers.size(1);
  TORCH_CHECK(span >= 1, "span must be >= 1");
  const int64_t spans = (width + span - 1) / span;
  TORCH_CHECK(!use_vnni || spans == 1 || span % 4 == 0, "the VNNI matmul needs spans of a multiple of 4 channels");
  TORCH_CHECK(weight_offset.numel() == groups * spans * cout && weight_scale.numel() == groups * spans * cout,
              "weight_offset and weight_scale must be (groups, spans, out)");
  TORCH_CHECK(bias.numel() == 0 || bias.numel() == groups * cout, "bias must be empty or hold groups * out values");
  TORCH_CHECK(outlier_weight.numel() == groups * count * cout, "outlier_weight must be (groups, k, out)");
  const Activation act = parse_activation(activation);
  const bool has_residual = residual.numel() > 0, has_norm = norm_weight.numel() > 0;
  TORCH_CHECK(act == Activation::kNone || !has_residual, "no activation with a residual");
  if (has_residual) {
    check_rows(residual, "residual", 3);
    TORCH_CHECK(residual.scalar_type() == torch::kFloat && residual.sizes() == out.sizes(),
                "residual must be float32 shaped like out");
  }
  if (has_norm) {
    TORCH_CHECK(has_residual, "the LayerNorm needs a residual");
    TORCH_CHECK(norm_weight.numel() == groups * cout && norm_bias.numel() == groups * cout,
                "norm_weight and norm_bias must hold groups * out values");
    TORCH_CHECK(out.stride(0) == cout && out.stride(1) == groups * cout,
                "the LayerNorm needs out to be a group view of contiguous (rows, groups * out)");
  }

  // Blocks: one per thread if each still holds kMinBlockOps multiply-adds, at most kBlockRows rows each.
  const int64_t ops_per_row = groups * width * cout;
  const int64_t by_work = std::max<int64_t>(1, rows * ops_per_row / kMinBlockOps);
  const int64_t threads = std::min<int64_t>(at::get_num_threads(), by_work);
  const int64_t wanted = std::max<int64_t>({threads, (rows + kBlockRows - 1) / kBlockRows, 1});
  const int64_t block = std::max<int64_t>((rows + wanted - 1) / wanted, 1);
  const int64_t blocks = (rows + block - 1) / block;

  // The 8-bit rows: unsigned levels (zero point 0) for vnni_matmul, padded to whole groups of four input
  // channels; signed ones (zero point 128) for torch._int_mm.
  const int zero = use_vnni ? 0 : 128;
  const int64_t q_width = use_vnni ? 4 * k4 : width;
  const float* x_data = x.data_ptr<float>();
  const int64_t* index = outliers.data_ptr<int64_t>();
  float* out_data = out.data_ptr<float>();
  const float* residual_data = has_residual ? residual.data_ptr<float>() : nullptr;
  const float* bias_data = bias.numel() > 0 ? bias.data_ptr<float>() : nullptr;
  const int64_t x_group = x.stride(0), x_row = x.stride(1), out_group = out.stride(0), out_row = out.stride(1);
  const int64_t res_group = has_residual ? residual.stride(0) : 0, res_row = has_residual ? residual.stride(1) : 0;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    auto q = torch::zeros({block, q_width}, x.options().dtype(torch::kChar));
    // torch._int_mm's int32 products and their folded sums (vnni_matmul keeps them in registers)
    const int64_t int_mm_rows = use_vnni ? 0 : block;
    auto acc = torch::empty({int_mm_rows, cout}, x.options().dtype(torch::kInt));
    std::vector<float> folded(int_mm_rows * cout);
    uint8_t* q_data = reinterpret_cast<uint8_t*>(q.data_ptr<int8_t>());
    int32_t* acc_data = acc.data_ptr<int32_t>();
    // per row and span: the activations' scale and offset; per row: the outlier inputs
    std::vector<float> scales(block * spans), offsets(block * spans), picked(block * count);
    for (int64_t b = begin; b < end; ++b) {
      const int64_t first = b * block, n = std::min(block, rows - first);
      for (int64_t g = 0; g < groups; ++g) {
        const float* mask = keep_data != nullptr ? keep_data + g * width : nullptr;
        for (int64_t r = 0; r < n; ++r) {
          const float* in = x_data + g * x_group + (first + r) * x_row;
          for (int64_t j = 0; j < count; ++j) picked[r * count + j] = in[index[g * count + j]];
          for (int64_t s = 0; s < spans; ++s) {
            const int64_t start = s * span, length = std::min(span, width - start);
            quantize_row(in + start, mask != nullptr ? mask + start : nullptr, length, zero,
                         q_data + r * q_width + start, &scales[r * spans + s], &offsets[r * spans + s]);
          }
        }
        const float* steps = weight_scale.data_ptr<float>() + g * spans * cout;
        const float* offset_rows = weight_offset.data_ptr<float>() + g * spans * cout;
        const float* outlier_rows = outlier_weight.data_ptr<float>() + g * count * cout;
        const float* group_bias = bias_data != nullptr ? bias_data + g * cout : nullptr;
        float* y = out_data + g * out_group + first * out_row;
        const float* base = has_residual ? residual_data + g * res_group + first * res_row : nullptr;
        if (use_vnni) {  // the whole output, tile by tile
#if defined(SQUEEZEBERT_VNNI)
          const Tile tile{scales.data(), offsets.data(), spans, picked.data(), count, steps, offset_rows,
                          outlier_rows, group_bias, cout, cout, base, res_row, y, out_row, act};
          const int64_t span4 = spans == 1 ? k4 : span / 4;  // one span: all of the padded row
          vnni_matmul(q_data, q_width, n, packed.data_ptr<int8_t>() + g * panels * k4 * 4 * kPanel, panels, k4, span4,
                      tile);
#endif
        } else {  // each span's int8 product, folded into the rows' float sums, then the rest row by row
          for (int64_t s = 0; s < spans; ++s) {
            const int64_t start = s * span, length = std::min(span, width - start);
            auto acc_rows = acc.narrow(0, 0, n);
            at::_int_mm_out(acc_rows, q.narrow(0, 0, n).narrow(1, start, length).contiguous(),
                            weight[g].narrow(0, start, length).contiguous());
            for (int64_t r = 0; r < n; ++r) {
              fold_span(acc_data + r * cout, scales[r * spans + s], offsets[r * spans + s], steps + s * cout,
                        offset_rows + s * cout, cout, s == 0, folded.data() + r * cout);
            }
          }
          for (int64_t r = 0; r < n; ++r) {
            finish_row(folded.data() + r * cout, picked.data() + r * count, count, outlier_rows, group_bias, cout,
                       base != nullptr ? base + r * res_row : nullptr, y + r * out_row);
            activate_rows(y + r * out_row, out_row, 1, cout, act);
          }
        }
      }
      if (has_norm) {  // the block's rows are whole now
        for (int64_t r = 0; r < n; ++r) {
          layer_norm_row(out_data + (first + r) * out_row, groups * cout, norm_weight.data_ptr<float>(),
                         norm_bias.data_ptr<float>(), static_cast<float>(eps));
        }
      }
    }
  });
}

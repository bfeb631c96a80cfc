// Fused CPU kernels for squeezebert's int8 projections (see squeezebert/quantization.py for the math).
//
// PyTorch needs about nine element-wise passes around each int8 matmul (per-row min and max, scale, round, cast;
// int32 -> float, two scalings, the offset term, the bias). These two kernels do the same work in one pass over
// each row: quantize_rows before the matmul, dequantize after it. Built on first use by squeezebert.kernels with
// -O3 -march=native; the AVX-512 branches are compiled only where the CPU has AVX-512, the scalar loops elsewhere.

#include <torch/extension.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

constexpr int64_t kGrain = 16;  // rows per parallel task

void check_rows(const torch::Tensor& t, const char* name, int64_t dim) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.dim() == dim, name, " must have ", dim, " dimensions, got ", t.dim());
  TORCH_CHECK(t.stride(dim - 1) == 1, name, " must have contiguous rows");
}

}  // namespace

// x (G, T, K) float32 with contiguous rows; keep: empty, or (G, K) float32 of 1 (inlier) / 0 (outlier channel);
// outliers: (G, k) int64, the outlier channels (k may be 0). Per row of x * keep: scale = (max - min) / 255,
// q = round(x / scale - min / scale - 128) in int8, offset = min + 128 * scale, so that x ~ scale * q + offset.
// Returns q (G, T, K), scale and offset (G, T, 1), and x at the outlier channels (G, T, k).
std::vector<torch::Tensor> quantize_rows(const torch::Tensor& x, const torch::Tensor& keep,
                                         const torch::Tensor& outliers) {
  check_rows(x, "x", 3);
  TORCH_CHECK(x.scalar_type() == torch::kFloat, "x must be float32");
  const int64_t groups = x.size(0), rows = x.size(1), width = x.size(2);
  const bool masked = keep.numel() > 0;
  if (masked) {
    TORCH_CHECK(keep.is_contiguous() && keep.scalar_type() == torch::kFloat, "keep must be contiguous float32");
    TORCH_CHECK(keep.numel() == groups * width, "keep must hold groups * width values");
  }
  TORCH_CHECK(outliers.dim() == 2 && outliers.size(0) == groups && outliers.scalar_type() == torch::kLong &&
                  outliers.is_contiguous(),
              "outliers must be contiguous int64 (groups, k)");
  const int64_t count = outliers.size(1);
  auto picked = torch::empty({groups, rows, count}, x.options());
  const int64_t* index_data = outliers.data_ptr<int64_t>();
  float* picked_data = picked.data_ptr<float>();
  for (int64_t i = 0; i < outliers.numel(); ++i) {
    TORCH_CHECK(index_data[i] >= 0 && index_data[i] < width, "outlier channel out of range");
  }
  auto q = torch::empty({groups, rows, width}, x.options().dtype(torch::kChar));
  auto scale = torch::empty({groups, rows, 1}, x.options());
  auto offset = torch::empty({groups, rows, 1}, x.options());
  const float* x_data = x.data_ptr<float>();
  const float* keep_data = masked ? keep.data_ptr<float>() : nullptr;
  int8_t* q_data = q.data_ptr<int8_t>();
  float* scale_data = scale.data_ptr<float>();
  float* offset_data = offset.data_ptr<float>();
  const int64_t group_stride = x.stride(0), row_stride = x.stride(1);

  at::parallel_for(0, groups * rows, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t g = r / rows;
      const float* in = x_data + g * group_stride + (r % rows) * row_stride;
      const float* mask = masked ? keep_data + g * width : nullptr;
      auto value = [&](int64_t k) { return masked ? in[k] * mask[k] : in[k]; };
      for (int64_t j = 0; j < count; ++j) picked_data[r * count + j] = in[index_data[g * count + j]];
      float low = std::numeric_limits<float>::infinity(), high = -low;
      int64_t k = 0;
#if defined(__AVX512F__)
      __m512 lows = _mm512_set1_ps(low), highs = _mm512_set1_ps(high);
      for (; k + 16 <= width; k += 16) {
        __m512 v = _mm512_loadu_ps(in + k);
        if (masked) v = _mm512_mul_ps(v, _mm512_loadu_ps(mask + k));
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
      const float shift = -(low * inv + 128.0f);  // x * inv + shift lies in [-128, 127]
      int8_t* out = q_data + r * width;
      k = 0;
#if defined(__AVX512F__)
      const __m512 invs = _mm512_set1_ps(inv), shifts = _mm512_set1_ps(shift);
      for (; k + 16 <= width; k += 16) {
        __m512 v = _mm512_loadu_ps(in + k);
        if (masked) v = _mm512_mul_ps(v, _mm512_loadu_ps(mask + k));
        const __m512i rounded = _mm512_cvtps_epi32(_mm512_fmadd_ps(v, invs, shifts));  // to nearest, ties to even
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k), _mm512_cvtsepi32_epi8(rounded));
      }
#endif
      for (; k < width; ++k) {
        out[k] = static_cast<int8_t>(std::clamp(std::nearbyint(value(k) * inv + shift), -128.0f, 127.0f));
      }
      scale_data[r] = step;
      offset_data[r] = low + 128.0f * step;
    }
  });
  return {q, scale, offset, picked};
}

// acc (G, T, N) int32 = x_q @ W_q; x_scale, offset (G, T, 1); weight_sum, weight_scale (G, 1, N); bias (G * N);
// x_outliers (G, T, k) and outlier_weight (G, k, N) float32: the fp32 outlier channels (in units of weight_scale).
// Writes y = (x_scale * acc + offset * weight_sum + x_outliers @ outlier_weight) * weight_scale, plus bias into
// out, or adds it to out when accumulate (then without the bias). out (G, T, N) float32 may be a strided view
// with contiguous rows.
void dequantize(const torch::Tensor& acc, const torch::Tensor& x_scale, const torch::Tensor& offset,
                const torch::Tensor& weight_sum, const torch::Tensor& weight_scale, const torch::Tensor& bias,
                const torch::Tensor& x_outliers, const torch::Tensor& outlier_weight, torch::Tensor& out,
                bool accumulate) {
  check_rows(out, "out", 3);
  TORCH_CHECK(acc.is_contiguous() && acc.scalar_type() == torch::kInt, "acc must be contiguous int32");
  TORCH_CHECK(out.scalar_type() == torch::kFloat, "out must be float32");
  const int64_t groups = acc.size(0), rows = acc.size(1), width = acc.size(2);
  TORCH_CHECK(out.size(0) == groups && out.size(1) == rows && out.size(2) == width, "out must match acc");
  for (const auto* t : {&x_scale, &offset, &weight_sum, &weight_scale, &bias, &x_outliers, &outlier_weight}) {
    TORCH_CHECK(t->is_contiguous() && t->scalar_type() == torch::kFloat, "scales and bias must be contiguous float32");
  }
  TORCH_CHECK(x_scale.numel() == groups * rows && offset.numel() == groups * rows, "one scale per row");
  TORCH_CHECK(weight_sum.numel() == groups * width && weight_scale.numel() == groups * width, "one per channel");
  TORCH_CHECK(bias.numel() == groups * width, "bias must hold groups * width values");
  const int64_t count = x_outliers.dim() == 3 ? x_outliers.size(2) : 0;
  TORCH_CHECK(x_outliers.numel() == groups * rows * count && outlier_weight.numel() == groups * count * width,
              "x_outliers must be (groups, rows, k) and outlier_weight (groups, k, width)");
  const int32_t* acc_data = acc.data_ptr<int32_t>();
  const float* picked_data = x_outliers.data_ptr<float>();
  const float* outlier_weight_data = outlier_weight.data_ptr<float>();
  const float* x_scale_data = x_scale.data_ptr<float>();
  const float* offset_data = offset.data_ptr<float>();
  const float* sum_data = weight_sum.data_ptr<float>();
  const float* w_scale_data = weight_scale.data_ptr<float>();
  const float* bias_data = bias.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  const int64_t group_stride = out.stride(0), row_stride = out.stride(1);

  at::parallel_for(0, groups * rows, kGrain, [&](int64_t begin, int64_t end) {
    std::vector<float> row(width);  // the row before its weight scale; each loop below vectorizes
    float* v = row.data();
    for (int64_t r = begin; r < end; ++r) {
      const int64_t g = r / rows;
      const float s = x_scale_data[r], o = offset_data[r];
      const int32_t* a = acc_data + r * width;
      const float* sums = sum_data + g * width;
      for (int64_t n = 0; n < width; ++n) v[n] = static_cast<float>(a[n]) * s + o * sums[n];
      for (int64_t j = 0; j < count; ++j) {
        const float p = picked_data[r * count + j];
        const float* w = outlier_weight_data + (g * count + j) * width;
        for (int64_t n = 0; n < width; ++n) v[n] += p * w[n];
      }
      const float* w_scales = w_scale_data + g * width;
      const float* b = bias_data + g * width;
      float* y = out_data + g * group_stride + (r % rows) * row_stride;
      if (accumulate) {
        for (int64_t n = 0; n < width; ++n) y[n] += v[n] * w_scales[n];
      } else {
        for (int64_t n = 0; n < width; ++n) y[n] = v[n] * w_scales[n] + b[n];
      }
    }
  });
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("quantize_rows", &quantize_rows, "Per-row asymmetric int8 quantization (one pass per row)");
  m.def("dequantize", &dequantize, "int32 accumulators to float, scaled, offset and biased (one pass per row)");
}

// The functions of squeezebert's compiled CPU kernels (bound to Python in bindings.cpp).

#pragma once

#include <torch/extension.h>

#include <string>

// int8_cpu.cpp: whole int8 projections.
bool vnni();
torch::Tensor pack_weight(const torch::Tensor& weight);
void project(const torch::Tensor& x, const torch::Tensor& keep, const torch::Tensor& outliers,
             const torch::Tensor& weight, const torch::Tensor& packed, const torch::Tensor& weight_offset,
             const torch::Tensor& weight_scale, const torch::Tensor& bias, const torch::Tensor& outlier_weight,
             torch::Tensor& out, const torch::Tensor& residual, const torch::Tensor& norm_weight,
             const torch::Tensor& norm_bias, double eps, const std::string& activation, int64_t span);

// attention_cpu.cpp: multi-head self-attention from the fused QKV projection's output.
bool attention_available();
void attention(const torch::Tensor& qkv, int64_t batch, int64_t heads, const torch::Tensor& mask, torch::Tensor& out);

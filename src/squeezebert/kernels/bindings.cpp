// The Python module of squeezebert's compiled CPU kernels (built by squeezebert/kernels/__init__.py).

#include "kernels.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("project", &project, "A whole int8 projection (quantize, int8 matmul, dequantize) in one parallel region",
        py::call_guard<py::gil_scoped_release>());
  m.def("pack_weight", &pack_weight, "int8 weights (groups, in, out) in the layout of the VNNI matmul");
  m.def("vnni", &vnni, "Whether the AVX-512 VNNI matmul was compiled (then project takes packed weights)");
  m.def("attention", &attention, "Multi-head self-attention from the fused QKV projection, into the context",
        py::call_guard<py::gil_scoped_release>());
  m.def("attention_available", &attention_available, "Whether attention was compiled (it needs AVX-512)");
}

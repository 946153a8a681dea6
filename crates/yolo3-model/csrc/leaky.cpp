// Leaky ReLU with darknet's slope through ATen's own kernel (forward and backward).
//
// tch 0.26 exposes `leaky_relu` only with PyTorch's default slope 0.01; this shim calls
// at::leaky_relu with any slope. Tensors cross as tch's handles (`at::Tensor*`), errors as a
// malloc'ed message the Rust side frees.
#include <ATen/ATen.h>
#include <cstdlib>
#include <cstring>

extern "C" at::Tensor *yolo3_leaky_relu(const at::Tensor *input, double slope, char **error) {
  try {
    *error = nullptr;
    return new at::Tensor(at::leaky_relu(*input, slope));
  } catch (const std::exception &e) {
    *error = strdup(e.what());
    return nullptr;
  }
}

// Stands in for c10d_nccl.cpp when libtorch has no CUDA: asking for NCCL is an error that says
// why.
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <stdexcept>

c10::intrusive_ptr<c10d::Backend> yolo3_make_nccl(const c10::intrusive_ptr<c10d::Store> &,
                                                  int, int, std::chrono::milliseconds) {
  throw std::runtime_error("this libtorch was built without CUDA, so it has no NCCL backend");
}

// c10d's NCCL process group, compiled only against a libtorch with CUDA (build.rs decides):
// its header pulls in ATen's CUDA headers, which need CUDA's own (the wheel's nvidia-* packages
// plus nvidia-cuda-cccl and nvidia-cuda-crt, which scripts/setup.sh installs).
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>

c10::intrusive_ptr<c10d::Backend> yolo3_make_nccl(const c10::intrusive_ptr<c10d::Store> &store,
                                                  int rank, int world,
                                                  std::chrono::milliseconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
}

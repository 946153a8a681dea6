// PyTorch's distributed engine (c10d) for yolo3: a TCPStore for rendezvous and small messages,
// a Gloo or NCCL process group, and the few collectives data-parallel training needs.
//
// libtorch exports c10d's classes from libtorch_cpu (Gloo) and libtorch_cuda (NCCL) but tch
// binds none of them. Objects cross to Rust as opaque handles (a heap-allocated intrusive_ptr);
// tensors as tch's handles (`at::Tensor*`); errors as a malloc'ed message the Rust side frees.
// Every function catches what c10d throws: a lost peer, a timeout or a refused connection is a
// message, never an exception through the C ABI.
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <c10/util/Logging.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using Store = c10::intrusive_ptr<c10d::Store>;
using Group = c10::intrusive_ptr<c10d::Backend>;
using Work = c10::intrusive_ptr<c10d::Work>;

// Defined in c10d_nccl.cpp when this libtorch has CUDA, else a function that says it has not.
Group yolo3_make_nccl(const Store &store, int rank, int world, std::chrono::milliseconds timeout);

namespace {

void set_error(char **error, const std::exception &e) { *error = strdup(e.what()); }

// Sums `tensor` over every rank of the group in place.
void all_reduce_sum(c10d::Backend &group, at::Tensor &tensor) {
  std::vector<at::Tensor> tensors{tensor};
  group.allreduce(tensors)->wait();
}

// The differentiable sum over ranks: forward sums the input of every rank; backward sums the
// gradients of every rank, which is the adjoint of that sum (each rank's output depends on
// every rank's input with weight one).
struct ReplicaSum : public torch::autograd::Function<ReplicaSum> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &input,
                            int64_t group) {
    ctx->saved_data["group"] = group;
    at::Tensor out = input.contiguous().clone();
    all_reduce_sum(*reinterpret_cast<c10d::Backend *>(group), out);
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext *ctx,
                                               torch::autograd::tensor_list grads) {
    auto *group = reinterpret_cast<c10d::Backend *>(ctx->saved_data["group"].toInt());
    at::Tensor grad = grads.at(0).contiguous().clone();
    all_reduce_sum(*group, grad);
    return {grad, at::Tensor()};
  }
};

}  // namespace

extern "C" {

// A client of the TCPStore at host:port; rank 0 (`is_server`) also runs the server and waits
// until `world` clients have connected.
Store *yolo3_store_new(const char *host, uint16_t port, int is_server, int world,
                       int64_t timeout_ms, char **error) {
  try {
    *error = nullptr;
    // libtorch's C++ log level follows TORCH_CPP_LOG_LEVEL only once initLogging() read it
    // (Python's torch calls it on import; a C++ program must): without it c10d prints every
    // failed connection attempt with its C++ stack on stderr.
    static const bool logging = (c10::initLogging(), true);
    (void)logging;
    c10d::TCPStoreOptions options;
    options.port = port;
    options.isServer = is_server != 0;
    options.numWorkers = static_cast<size_t>(world);
    options.waitWorkers = true;
    options.timeout = std::chrono::milliseconds(timeout_ms);
    return new Store(c10::make_intrusive<c10d::TCPStore>(std::string(host), options));
  } catch (const std::exception &e) {
    set_error(error, e);
    return nullptr;
  }
}

// Another connection to the same store, for a second thread.
Store *yolo3_store_clone(const Store *store, char **error) {
  try {
    *error = nullptr;
    return new Store((*store)->clone());
  } catch (const std::exception &e) {
    set_error(error, e);
    return nullptr;
  }
}

void yolo3_store_free(Store *store) { delete store; }

int yolo3_store_set(const Store *store, const char *key, const uint8_t *data, size_t len,
                    char **error) {
  try {
    *error = nullptr;
    (*store)->set(std::string(key), std::vector<uint8_t>(data, data + len));
    return 0;
  } catch (const std::exception &e) {
    set_error(error, e);
    return -1;
  }
}

// The value of `key`, waiting for it up to the store's timeout; malloc'ed, `*len` bytes.
uint8_t *yolo3_store_get(const Store *store, const char *key, size_t *len, char **error) {
  try {
    *error = nullptr;
    std::vector<uint8_t> value = (*store)->get(std::string(key));
    *len = value.size();
    auto *out = static_cast<uint8_t *>(malloc(value.empty() ? 1 : value.size()));
    if (!value.empty()) {
      memcpy(out, value.data(), value.size());
    }
    return out;
  } catch (const std::exception &e) {
    set_error(error, e);
    return nullptr;
  }
}

// 1 when `key` is set, 0 when not, -1 on an error.
int yolo3_store_check(const Store *store, const char *key, char **error) {
  try {
    *error = nullptr;
    return (*store)->check({std::string(key)}) ? 1 : 0;
  } catch (const std::exception &e) {
    set_error(error, e);
    return -1;
  }
}

// Adds `delta` to the counter `key` and returns its new value (-1 and a message on an error).
int64_t yolo3_store_add(const Store *store, const char *key, int64_t delta, char **error) {
  try {
    *error = nullptr;
    return (*store)->add(std::string(key), delta);
  } catch (const std::exception &e) {
    set_error(error, e);
    return -1;
  }
}

// A process group over the store: backend "gloo" (CPU tensors, over TCP on the interface of
// `hostname`) or "nccl" (CUDA tensors). `timeout_ms` bounds every collective.
Group *yolo3_group_new(const Store *store, int rank, int world, const char *backend,
                       const char *hostname, int64_t timeout_ms, char **error) {
  try {
    *error = nullptr;
    const auto timeout = std::chrono::milliseconds(timeout_ms);
    const std::string name(backend);
    if (name == "nccl") {
      return new Group(yolo3_make_nccl(*store, rank, world, timeout));
    }
    if (name != "gloo") {
      throw std::invalid_argument("unknown backend `" + name + "` (expected gloo or nccl)");
    }
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
    return new Group(c10::make_intrusive<c10d::ProcessGroupGloo>(*store, rank, world, options));
  } catch (const std::exception &e) {
    set_error(error, e);
    return nullptr;
  }
}

void yolo3_group_free(Group *group) { delete group; }

// Starts summing `tensor` (contiguous) over the ranks in place; the result is there once
// yolo3_work_wait returned 0.
Work *yolo3_all_reduce_start(const Group *group, const at::Tensor *tensor, char **error) {
  try {
    *error = nullptr;
    std::vector<at::Tensor> tensors{*tensor};
    return new Work((*group)->allreduce(tensors));
  } catch (const std::exception &e) {
    set_error(error, e);
    return nullptr;
  }
}

int yolo3_work_wait(Work *work, char **error) {
  try {
    *error = nullptr;
    (*work)->wait();
    return 0;
  } catch (const std::exception &e) {
    set_error(error, e);
    return -1;
  }
}

void yolo3_work_free(Work *work) { delete work; }

// Copies rank `root`'s `tensor` into every rank's `tensor`.
int yolo3_broadcast(const Group *group, const at::Tensor *tensor, int root, char **error) {
  try {
    *error = nullptr;
    std::vector<at::Tensor> tensors{*tensor};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    (*group)->broadcast(tensors, options)->wait();
    return 0;
  } catch (const std::exception &e) {
    set_error(error, e);
    return -1;
  }
}

// The differentiable sum of `input` over the ranks (see ReplicaSum).
at::Tensor *yolo3_replica_sum(const Group *group, const at::Tensor *input, char **error) {
  try {
    *error = nullptr;
    auto *backend = group->get();
    return new at::Tensor(ReplicaSum::apply(*input, reinterpret_cast<int64_t>(backend)));
  } catch (const std::exception &e) {
    set_error(error, e);
    return nullptr;
  }
}

}  // extern "C"

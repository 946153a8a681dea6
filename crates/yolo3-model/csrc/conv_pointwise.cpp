// Convolution + bias + activation in one oneDNN primitive, for inference on the CPU.
//
// libtorch registers oneDNN's fused convolution as the operator
// `mkldnn::_convolution_pointwise` (what torch.compile's CPU backend emits), but exports no
// C++ function for it and tch binds none. This shim looks the operator up in the dispatcher
// once and calls it boxed, so a change in its C++ signature cannot break the build silently:
// a schema that no longer matches is an error message at run time. Tensors cross as tch's
// handles (`at::Tensor*`); errors as a malloc'ed message the Rust side frees.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

extern "C" int yolo3_has_mkldnn() { return at::hasMKLDNN() ? 1 : 0; }

// `attr` is oneDNN's post-op name ("none", "relu", "sigmoid", "leaky_relu"); `slope` is used
// by "leaky_relu" only. `bias` may be null. `groups` splits the channels as in conv2d.
extern "C" at::Tensor *yolo3_conv_pointwise(const at::Tensor *input, const at::Tensor *weight,
                                            const at::Tensor *bias, int64_t stride,
                                            int64_t padding, int64_t groups, const char *attr,
                                            double slope,
                                            char **error) {
  try {
    *error = nullptr;
    static const c10::OperatorHandle op =
        c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_convolution_pointwise", "");
    std::string post_op(attr);
    c10::List<std::optional<at::Scalar>> scalars;
    if (post_op == "leaky_relu") {
      scalars.push_back(at::Scalar(slope));
    }
    std::vector<c10::IValue> stack;
    stack.reserve(10);
    stack.emplace_back(*input);
    stack.emplace_back(*weight);
    stack.emplace_back(bias ? c10::IValue(*bias) : c10::IValue());
    stack.emplace_back(std::vector<int64_t>{padding, padding});
    stack.emplace_back(std::vector<int64_t>{stride, stride});
    stack.emplace_back(std::vector<int64_t>{1, 1});
    stack.emplace_back(groups);
    stack.emplace_back(post_op);
    stack.emplace_back(scalars);
    stack.emplace_back(c10::IValue());
    op.callBoxed(&stack);
    return new at::Tensor(stack.at(0).toTensor());
  } catch (const std::exception &e) {
    *error = strdup(e.what());
    return nullptr;
  }
}

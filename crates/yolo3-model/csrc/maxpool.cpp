// Darknet's max pooling for inference on channels-last activations, in one pass.
//
// libtorch's `max_pool2d` also computes the argmax indices autograd would need, and the pair
// maxima over strided views that replace it for size 2 stride 2 (`ops.rs`) read and write the
// activations twice. This reads each window once: output pixel (y, x) is the maximum over input
// rows `y * stride - before + [0, size)` and columns likewise, samples outside the input never
// winning (darknet's -inf padding), NaN winning over anything (as `max_pool2d` and
// `at::maximum` give). Tensors cross as tch's handles (`at::Tensor*`), errors as a malloc'ed
// message the Rust side frees.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace {

struct Window {
  int64_t n, c, h, w, size, stride, before, out_h, out_w;
};

// Output rows [begin, end) (over all images). Compiled for AVX-512, AVX2 and the baseline,
// picked at load time: the baseline's 4-wide compares made this pass compute-bound.
__attribute__((target_clones("avx512f", "avx2", "default"))) void
pool_rows(const float *src, float *dst, const Window &g, int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / g.out_h, oy = row % g.out_h;
    const int64_t y0 = std::max<int64_t>(oy * g.stride - g.before, 0);
    const int64_t y1 = std::min<int64_t>(oy * g.stride - g.before + g.size, g.h);
    const float *image = src + b * g.h * g.w * g.c;
    for (int64_t ox = 0; ox < g.out_w; ++ox) {
      const int64_t x0 = std::max<int64_t>(ox * g.stride - g.before, 0);
      const int64_t x1 = std::min<int64_t>(ox * g.stride - g.before + g.size, g.w);
      float *o = dst + ((b * g.out_h + oy) * g.out_w + ox) * g.c;
      for (int64_t l = 0; l < g.c; ++l) {
        o[l] = -std::numeric_limits<float>::infinity();
      }
      for (int64_t iy = y0; iy < y1; ++iy) {
        for (int64_t ix = x0; ix < x1; ++ix) {
          const float *v = image + (iy * g.w + ix) * g.c;
          for (int64_t l = 0; l < g.c; ++l) {
            o[l] = (v[l] > o[l] || v[l] != v[l]) ? v[l] : o[l];
          }
        }
      }
    }
  }
}

} // namespace

extern "C" at::Tensor *yolo3_maxpool(const at::Tensor *input, int64_t size, int64_t stride,
                                     int64_t before, int64_t out_h, int64_t out_w, char **error) {
  try {
    *error = nullptr;
    TORCH_CHECK(input->dim() == 4 && input->scalar_type() == at::kFloat,
                "maxpool: a float32 N x C x H x W tensor");
    TORCH_CHECK(size > 0 && stride > 0 && before >= 0 && out_h > 0 && out_w > 0,
                "maxpool: bad window");
    const at::Tensor x = input->contiguous(at::MemoryFormat::ChannelsLast);
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    at::Tensor y = at::empty({n, c, out_h, out_w}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
    const float *src = x.const_data_ptr<float>();
    float *dst = y.data_ptr<float>();
    const Window g{n, c, h, w, size, stride, before, out_h, out_w};
    // One task per output row of an image; each output pixel is a contiguous run of c floats.
    at::parallel_for(0, n * out_h, 1, [&](int64_t begin, int64_t end) {
      pool_rows(src, dst, g, begin, end);
    });
    return new at::Tensor(y);
  } catch (const std::exception &e) {
    *error = strdup(e.what());
    return nullptr;
  }
}

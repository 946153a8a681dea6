// A 3x3 convolution (stride 1, padding 1) of a few input channels, its bias and activation,
// then darknet's 2x2 max pooling of stride 2, in one pass, for the first layers of the tiny
// networks (tiny-YOLOv3: 3 -> 16 channels at 416x416, then the pool).
//
// There the convolution's output is the largest activation of the network (16 channels at the
// input's size) and the pool reads it back at once; computing the four pixels of each pooling
// window together and keeping only their maximum never writes it. The maximum is taken before
// the bias and the activation, which are the same for the four pixels and monotonic (leaky,
// linear): max(f(a), f(b)) = f(max(a, b)), NaN winning as in the pooling kernel. The output
// channels are the vector lanes (blocks of 16); the compiler vectorises the fixed-size loops,
// cloned for AVX-512, AVX2 and the baseline. Tensors cross as tch's handles (`at::Tensor*`),
// errors as a malloc'ed message.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

// Output channels computed together.
constexpr int64_t kLanes = 16;

struct Shape {
  int64_t cin, cout, h, w, out_h, out_w;
};

// The largest input channel count handled (the loops over it are unrolled for each count).
constexpr int64_t kMaxCin = 4;

// Pooled output rows [begin, end) (over all images) for `Cin` input channels. `x`:
// channels-last input; `k`: the kernel as 3 x 3 x Cin x Cout; `y`: channels-last output.
template <int64_t Cin>
__attribute__((always_inline)) inline void
conv_pool_block(const float *x, const float *k, const float *bias, bool leaky, float slope,
                float *y, const Shape &s, int64_t begin, int64_t end) {
  // The 4x4 input pixels under one pooling window's four 3x3 windows, zero outside the image.
  float patch[16 * Cin];
  for (int64_t row = begin; row < end; ++row) {
    const int64_t n = row / s.out_h, py = row % s.out_h;
    const float *image = x + n * s.h * s.w * Cin;
    for (int64_t px = 0; px < s.out_w; ++px) {
      const bool interior = py > 0 && 2 * py + 2 < s.h && px > 0 && 2 * px + 2 < s.w;
      for (int64_t i = 0; interior && i < 4; ++i) {
        std::memcpy(patch + 4 * i * Cin, image + ((2 * py - 1 + i) * s.w + 2 * px - 1) * Cin,
                    4 * Cin * sizeof(float));
      }
      for (int64_t i = 0; !interior && i < 4; ++i) {
        for (int64_t j = 0; j < 4; ++j) {
          const int64_t iy = 2 * py - 1 + i, ix = 2 * px - 1 + j;
          const bool inside = iy >= 0 && iy < s.h && ix >= 0 && ix < s.w;
          for (int64_t c = 0; c < Cin; ++c) {
            patch[(4 * i + j) * Cin + c] = inside ? image[(iy * s.w + ix) * Cin + c] : 0.0f;
          }
        }
      }
      float *out = y + ((n * s.out_h + py) * s.out_w + px) * s.cout;
      for (int64_t co = 0; co < s.cout; co += kLanes) {
        // One accumulator per pixel of the pooling window (a 2D array was spilled to the
        // stack), the loops over the 27 taps unrolled.
        float a0[kLanes] = {}, a1[kLanes] = {}, a2[kLanes] = {}, a3[kLanes] = {};
#pragma GCC unroll 3
        for (int64_t ky = 0; ky < 3; ++ky) {
#pragma GCC unroll 3
          for (int64_t kx = 0; kx < 3; ++kx) {
#pragma GCC unroll 4
            for (int64_t c = 0; c < Cin; ++c) {
              const float *wk = k + ((ky * 3 + kx) * Cin + c) * s.cout + co;
              const float v0 = patch[(4 * ky + kx) * Cin + c];
              const float v1 = patch[(4 * ky + kx + 1) * Cin + c];
              const float v2 = patch[(4 * (ky + 1) + kx) * Cin + c];
              const float v3 = patch[(4 * (ky + 1) + kx + 1) * Cin + c];
              for (int64_t l = 0; l < kLanes; ++l) {
                a0[l] += wk[l] * v0;
                a1[l] += wk[l] * v1;
                a2[l] += wk[l] * v2;
                a3[l] += wk[l] * v3;
              }
            }
          }
        }
        const float *acc[4] = {a0, a1, a2, a3};
        for (int64_t l = 0; l < kLanes; ++l) {
          float m = acc[0][l];
          for (int q = 1; q < 4; ++q) {
            m = (acc[q][l] > m || acc[q][l] != acc[q][l]) ? acc[q][l] : m;
          }
          const float v = m + bias[co + l];
          out[co + l] = leaky && !(v > 0.0f) ? v * slope : v;
        }
      }
    }
  }
}

// Dispatches on the input channel count; cloned for AVX-512, AVX2 and the baseline.
__attribute__((target_clones("avx512f", "avx2", "default"))) void
conv_pool_rows(const float *x, const float *k, const float *bias, bool leaky, float slope,
               float *y, const Shape &s, int64_t begin, int64_t end) {
  switch (s.cin) {
  case 1: return conv_pool_block<1>(x, k, bias, leaky, slope, y, s, begin, end);
  case 2: return conv_pool_block<2>(x, k, bias, leaky, slope, y, s, begin, end);
  case 3: return conv_pool_block<3>(x, k, bias, leaky, slope, y, s, begin, end);
  default: return conv_pool_block<4>(x, k, bias, leaky, slope, y, s, begin, end);
  }
}

} // namespace

// `input`: float32 N x Cin x H x W (read channels-last), H and W even; `kernel`: float32
// 3 x 3 x Cin x Cout, Cout a multiple of 16; `bias`: Cout floats; `leaky`: apply
// x > 0 ? x : slope * x after the bias. Returns the pooled N x Cout x H/2 x W/2 output in
// channels-last memory.
extern "C" at::Tensor *yolo3_conv_pool(const at::Tensor *input, const at::Tensor *kernel,
                                       const at::Tensor *bias, int leaky, double slope,
                                       char **error) {
  try {
    *error = nullptr;
    TORCH_CHECK(input->dim() == 4 && input->scalar_type() == at::kFloat,
                "conv + pool: a float32 N x C x H x W input");
    const at::Tensor x = input->contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor k = kernel->contiguous(), b = bias->contiguous();
    const int64_t n = x.size(0), cin = x.size(1), h = x.size(2), w = x.size(3);
    TORCH_CHECK(cin >= 1 && cin <= kMaxCin, "conv + pool: 1 to ", kMaxCin, " input channels");
    TORCH_CHECK(k.dim() == 4 && k.size(0) == 3 && k.size(1) == 3 && k.size(2) == cin &&
                    k.scalar_type() == at::kFloat && k.size(3) % kLanes == 0,
                "conv + pool: a float32 3 x 3 x ", cin, " x 16k kernel");
    const int64_t cout = k.size(3);
    TORCH_CHECK(b.scalar_type() == at::kFloat && b.numel() == cout,
                "conv + pool: a float32 bias of ", cout);
    TORCH_CHECK(h % 2 == 0 && w % 2 == 0, "conv + pool: an even height and width");
    const Shape s{cin, cout, h, w, h / 2, w / 2};
    at::Tensor y = at::empty({n, cout, s.out_h, s.out_w},
                             x.options().memory_format(at::MemoryFormat::ChannelsLast));
    const float *xp = x.const_data_ptr<float>(), *kp = k.const_data_ptr<float>(),
                *bp = b.const_data_ptr<float>();
    float *yp = y.data_ptr<float>();
    const float sl = static_cast<float>(slope);
    at::parallel_for(0, n * s.out_h, 1, [&](int64_t begin, int64_t end) {
      conv_pool_rows(xp, kp, bp, leaky != 0, sl, yp, s, begin, end);
    });
    return new at::Tensor(y);
  } catch (const std::exception &e) {
    *error = strdup(e.what());
    return nullptr;
  }
}

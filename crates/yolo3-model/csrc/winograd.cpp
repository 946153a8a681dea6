// The two transforms of a Winograd F(2x2, 3x3) convolution (Lavin and Gray, "Fast Algorithms
// for Convolutional Neural Networks", 2015), for the inference engine on the CPU.
//
// A 3x3 convolution (stride 1, padding 1) over 2x2 output tiles is 16 independent matrix
// products, one per position of the tile's 4x4 transformed input: 2.25x fewer multiplications
// than the direct convolution. The products run as oneDNN 1x1 convolutions (Rust side: 16 of
// them, or one of 16 groups); this file has what runs around them:
// * `yolo3_winograd_input`: `V = B^T d B` for every 4x4 input patch `d` (zero outside the
//   image), as 16 planes of `tiles x C` or, for one grouped convolution, `tiles x 16 x C`;
// * `yolo3_winograd_output`: `Y = A^T M A` of the 16 product planes, plus the bias and the
//   activation, written to the 2x2 output pixels of each tile (channels-last).
// B^T, G and A^T are the F(2, 3) matrices with entries 0, +-1 (and 1/2 in G, applied to the
// kernel on the Rust side in float64), so the transforms add and subtract only.
// Tensors cross as tch's handles (`at::Tensor*`), errors as a malloc'ed message.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

// Channels handled together: the inner loops run over a block of this many lanes, which the
// compiler turns into vector instructions.
constexpr int64_t kLanes = 16;
// Tiles per parallel task.
constexpr int64_t kGrain = 8;
// Floats of one plane's share of a block of tiles: the transforms work on blocks of tiles in a
// local buffer of 16 such shares (256 KB, in the core's L2) and move each plane's share to or
// from memory in one sequential copy, instead of streaming from 16 places at once, which ran
// at a sixth of the memory's speed.
constexpr int64_t kBlockFloats = 4096;

template <class F> at::Tensor *guarded(char **error, F f) {
  try {
    *error = nullptr;
    return new at::Tensor(f());
  } catch (const std::exception &e) {
    *error = strdup(e.what());
    return nullptr;
  }
}

// Tile `t` of a batch with `th x tw` tiles per image: (image, tile row, tile column).
struct Tile {
  int64_t image, row, col;
  Tile(int64_t t, int64_t th, int64_t tw) : image(t / (th * tw)), row(t / tw % th), col(t % tw) {}
};

// V = B^T d B over `len` channels from k0: the 16 rows of the patch in, the 16 planes out at
// `out + p * plane` (the transform of one lane depends on that lane only). `Len` is kLanes for
// the full blocks (fixed-size loops the compiler vectorises and unrolls) and 0 for the tail,
// whose length is `len`.
template <int64_t Len>
inline void input_block(const float *const (&rows)[16], int64_t k0, int64_t len, float *out,
                        int64_t plane) {
  if constexpr (Len != 0) {
    len = Len;
  }
  float d[16][kLanes], v[16][kLanes];
  for (int p = 0; p < 16; ++p) {
    for (int64_t l = 0; l < len; ++l) {
      d[p][l] = rows[p][k0 + l];
    }
  }
  for (int j = 0; j < 4; ++j) {
    for (int64_t l = 0; l < len; ++l) {
      const float d0 = d[j][l], d1 = d[4 + j][l], d2 = d[8 + j][l], d3 = d[12 + j][l];
      v[j][l] = d0 - d2;
      v[4 + j][l] = d1 + d2;
      v[8 + j][l] = d2 - d1;
      v[12 + j][l] = d1 - d3;
    }
  }
  for (int i = 0; i < 4; ++i) {
    float *r0 = v[4 * i], *r1 = v[4 * i + 1], *r2 = v[4 * i + 2], *r3 = v[4 * i + 3];
    for (int64_t l = 0; l < len; ++l) {
      const float t0 = r0[l], t1 = r1[l], t2 = r2[l], t3 = r3[l];
      r0[l] = t0 - t2;
      r1[l] = t1 + t2;
      r2[l] = t2 - t1;
      r3[l] = t1 - t3;
    }
  }
  for (int p = 0; p < 16; ++p) {
    for (int64_t l = 0; l < len; ++l) {
      out[p * plane + k0 + l] = v[p][l];
    }
  }
}

// Y = A^T M A + bias (then leaky) over `len` channels from k0 of the tile whose product values
// start at `at` in every plane; the 2x2 outputs go to `pixels` (null: outside the image).
// `Len` as in input_block.
template <int64_t Len>
inline void output_block(const float *const (&planes)[16], int64_t at, const float *bias,
                         int64_t k0, int64_t len, bool leaky, float slope,
                         float *const (&pixels)[4]) {
  if constexpr (Len != 0) {
    len = Len;
  }
  float r0[4][kLanes], r1[4][kLanes], out[4][kLanes];
  // A^T M: rows 0 + 1 + 2 and 1 - 2 - 3 of the 4x4 tile.
  for (int j = 0; j < 4; ++j) {
    const float *m0 = planes[j] + at + k0, *m1 = planes[4 + j] + at + k0,
                *m2 = planes[8 + j] + at + k0, *m3 = planes[12 + j] + at + k0;
    for (int64_t l = 0; l < len; ++l) {
      r0[j][l] = m0[l] + m1[l] + m2[l];
      r1[j][l] = m1[l] - m2[l] - m3[l];
    }
  }
  // (A^T M) A, then the bias.
  for (int64_t l = 0; l < len; ++l) {
    const float b = bias[k0 + l];
    out[0][l] = r0[0][l] + r0[1][l] + r0[2][l] + b;
    out[1][l] = r0[1][l] - r0[2][l] - r0[3][l] + b;
    out[2][l] = r1[0][l] + r1[1][l] + r1[2][l] + b;
    out[3][l] = r1[1][l] - r1[2][l] - r1[3][l] + b;
  }
  for (int q = 0; q < 4; ++q) {
    if (pixels[q] == nullptr) {
      continue;
    }
    float *o = pixels[q] + k0;
    for (int64_t l = 0; l < len; ++l) {
      const float y = out[q][l];
      o[l] = leaky && !(y > 0.0f) ? y * slope : y;
    }
  }
}

// The spatial shape of a transform: `c` channels at `h x w`, `th x tw` tiles per image.
struct Grid {
  int64_t h, w, c, th, tw;
  Grid(int64_t h, int64_t w, int64_t c) : h(h), w(w), c(c), th((h + 1) / 2), tw((w + 1) / 2) {}
};

// The input transform of tile `t` of the channels-last `src`: its 16 planes to `out + p *
// plane` (`zeros`: c zeros, the padding). (Cloning the transforms for AVX-512 and AVX2 as
// the pooling is gained nothing measurable: they wait on memory, not on arithmetic.)
inline void input_tile(const float *src, const Grid &g, int64_t t, const float *zeros,
                       float *out, int64_t plane) {
  const Tile tile(t, g.th, g.tw);
  const float *rows[16];
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const int64_t y = 2 * tile.row - 1 + i, x = 2 * tile.col - 1 + j;
      const bool inside = y >= 0 && y < g.h && x >= 0 && x < g.w;
      rows[4 * i + j] = inside ? src + ((tile.image * g.h + y) * g.w + x) * g.c : zeros;
    }
  }
  int64_t k0 = 0;
  for (; k0 + kLanes <= g.c; k0 += kLanes) {
    input_block<kLanes>(rows, k0, kLanes, out, plane);
  }
  if (k0 < g.c) {
    input_block<0>(rows, k0, g.c - k0, out, plane);
  }
}

// The output transform of tile `t` (`g.c` the output channels), whose products start at `at`
// in every plane, with the bias and the activation, to its pixels of the channels-last `dst`.
inline void output_tile(const float *const (&planes)[16], int64_t at, const float *bias,
                        const Grid &g, int64_t t, bool leaky, float slope, float *dst) {
  const Tile tile(t, g.th, g.tw);
  float *pixels[4];
  for (int q = 0; q < 4; ++q) {
    const int64_t oy = 2 * tile.row + q / 2, ox = 2 * tile.col + q % 2;
    pixels[q] = oy < g.h && ox < g.w ? dst + ((tile.image * g.h + oy) * g.w + ox) * g.c : nullptr;
  }
  int64_t k0 = 0;
  for (; k0 + kLanes <= g.c; k0 += kLanes) {
    output_block<kLanes>(planes, at, bias, k0, kLanes, leaky, slope, pixels);
  }
  if (k0 < g.c) {
    output_block<0>(planes, at, bias, k0, g.c - k0, leaky, slope, pixels);
  }
}

} // namespace

// `input`: float32 N x C x H x W (read in channels-last order). Returns the transformed
// patches of the T = N * ceil(H/2) * ceil(W/2) tiles, in (image, tile row, tile column) order:
// `grouped` = 0: 16 x T x C (plane-major: each plane the input of one 1x1 convolution);
// `grouped` = 1: T x 16 x C (tile-major: the input of one 1x1 convolution of 16 groups).
extern "C" at::Tensor *yolo3_winograd_input(const at::Tensor *input, int grouped, char **error) {
  return guarded(error, [&] {
    TORCH_CHECK(input->dim() == 4 && input->scalar_type() == at::kFloat,
                "winograd input: a float32 N x C x H x W tensor");
    const at::Tensor x = input->contiguous(at::MemoryFormat::ChannelsLast);
    const int64_t n = x.size(0), c = x.size(1);
    const Grid grid(x.size(2), x.size(3), c);
    const int64_t tiles = n * grid.th * grid.tw;
    at::Tensor v = grouped ? at::empty({tiles, 16, c}, x.options()) : at::empty({16, tiles, c}, x.options());
    // Where plane p of tile t starts: p * plane_stride + t * tile_stride.
    const int64_t plane_stride = grouped ? c : tiles * c, tile_stride = grouped ? 16 * c : c;
    const float *src = x.const_data_ptr<float>();
    float *dst = v.data_ptr<float>();
    const std::vector<float> zeros(c, 0.0f);
    const int64_t block = std::max<int64_t>(1, kBlockFloats / c);
    at::parallel_for(0, tiles, kGrain, [&](int64_t begin, int64_t end) {
      std::vector<float> local(16 * block * c);
      for (int64_t t0 = begin; t0 < end; t0 += block) {
        const int64_t t1 = std::min(t0 + block, end);
        for (int64_t t = t0; t < t1; ++t) {
          input_tile(src, grid, t, zeros.data(), local.data() + (t - t0) * c, block * c);
        }
        for (int p = 0; p < 16; ++p) {
          const float *share = local.data() + p * block * c;
          float *to = dst + p * plane_stride + t0 * tile_stride;
          if (tile_stride == c) {
            std::memcpy(to, share, (t1 - t0) * c * sizeof(float));
          } else {
            for (int64_t t = 0; t < t1 - t0; ++t) {
              std::memcpy(to + t * tile_stride, share + t * c, c * sizeof(float));
            }
          }
        }
      }
    });
    return v;
  });
}

// `parts`: the products, what 1x1 convolutions of `yolo3_winograd_input`'s output give in
// channels-last memory: `count` = 16 planes of T x Cout floats, or `count` = 1 tensor of
// T x 16 x Cout (one convolution of 16 groups). `bias`: Cout floats. `leaky`: apply
// x > 0 ? x : slope * x after the bias (else none). Returns the N x Cout x H x W output in
// channels-last memory.
extern "C" at::Tensor *yolo3_winograd_output(const at::Tensor *const *parts, int count,
                                             const at::Tensor *bias, int64_t n, int64_t h,
                                             int64_t w, int leaky, double slope, char **error) {
  return guarded(error, [&] {
    TORCH_CHECK(count == 1 || count == 16, "winograd output: 1 or 16 product tensors");
    std::vector<at::Tensor> m;
    for (int p = 0; p < count; ++p) {
      m.push_back(parts[p]->contiguous(at::MemoryFormat::ChannelsLast));
    }
    const int64_t cout = count == 16 ? m[0].size(1) : m[0].size(1) / 16;
    const Grid grid(h, w, cout);
    const int64_t tiles = n * grid.th * grid.tw;
    for (const at::Tensor &part : m) {
      TORCH_CHECK(part.scalar_type() == at::kFloat && part.numel() == tiles * cout * 16 / count,
                  "winograd output: products of ", tiles, " tiles x ", cout, " channels");
    }
    const at::Tensor b = bias->contiguous();
    TORCH_CHECK(b.scalar_type() == at::kFloat && b.numel() == cout,
                "winograd output: a float32 bias of ", cout);
    at::Tensor y = at::empty({n, cout, h, w}, m[0].options().memory_format(at::MemoryFormat::ChannelsLast));
    // Where plane p of tile t starts: planes[p] + t * tile_stride.
    const float *planes[16];
    for (int p = 0; p < 16; ++p) {
      planes[p] = count == 16 ? m[p].const_data_ptr<float>() : m[0].const_data_ptr<float>() + p * cout;
    }
    const int64_t tile_stride = count == 16 ? cout : 16 * cout;
    const float *bias_data = b.const_data_ptr<float>();
    float *dst = y.data_ptr<float>();
    const float s = static_cast<float>(slope);
    const int64_t block = std::max<int64_t>(1, kBlockFloats / cout);
    at::parallel_for(0, tiles, kGrain, [&](int64_t begin, int64_t end) {
      std::vector<float> local(16 * block * cout);
      const float *shares[16];
      for (int p = 0; p < 16; ++p) {
        shares[p] = local.data() + p * block * cout;
      }
      for (int64_t t0 = begin; t0 < end; t0 += block) {
        const int64_t t1 = std::min(t0 + block, end);
        for (int p = 0; p < 16; ++p) {
          float *share = local.data() + p * block * cout;
          const float *from = planes[p] + t0 * tile_stride;
          if (tile_stride == cout) {
            std::memcpy(share, from, (t1 - t0) * cout * sizeof(float));
          } else {
            for (int64_t t = 0; t < t1 - t0; ++t) {
              std::memcpy(share + t * cout, from + t * tile_stride, cout * sizeof(float));
            }
          }
        }
        for (int64_t t = t0; t < t1; ++t) {
          output_tile(shares, (t - t0) * cout, bias_data, grid, t, leaky != 0, s, dst);
        }
      }
    });
    return y;
  });
}

// MKL's packed GEMM, which the PyPI x86 libtorch carries and exports; weak, so that a libtorch
// without MKL still loads (yolo3_has_packed_gemm then says 0). Integer arguments are MKL_INT
// of the LP64 interface (int); the enums are CBLAS's values.
extern "C" {
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float *src, int ld, float *dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float *a,
                         int lda, const float *b, int ldb, float beta, float *c, int ldc)
    __attribute__((weak));
}

namespace {
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;
// Where each plane's packed kernel starts in the packed buffer (bytes, a multiple of 64).
int64_t packed_plane_bytes(int64_t rows, int64_t cin, int64_t cout) {
  const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, rows, cout, cin);
  return (static_cast<int64_t>(bytes) + 63) / 64 * 64;
}
} // namespace

extern "C" int yolo3_has_packed_gemm() {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr &&
         cblas_sgemm_compute != nullptr;
}

// `planes`: the 16 Winograd planes of a kernel as float32 16 Cout x Cin (x 1 x 1). Returns them
// packed for MKL as the right-hand side of `rows x Cin` times `Cin x Cout` products: a byte
// tensor of 16 packed planes.
extern "C" at::Tensor *yolo3_winograd_pack(const at::Tensor *planes, int64_t rows, char **error) {
  return guarded(error, [&] {
    TORCH_CHECK(yolo3_has_packed_gemm(), "winograd pack: this libtorch has no MKL packed GEMM");
    TORCH_CHECK(planes->scalar_type() == at::kFloat && planes->size(0) % 16 == 0,
                "winograd pack: float32 planes of 16 Cout rows");
    const at::Tensor u = planes->contiguous();
    const int64_t cout = u.size(0) / 16, cin = u.numel() / u.size(0);
    const int64_t bytes = packed_plane_bytes(rows, cin, cout);
    at::Tensor packed = at::empty({16 * bytes + 64}, u.options().dtype(at::kByte));
    uint8_t *base = packed.data_ptr<uint8_t>();
    base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
    for (int p = 0; p < 16; ++p) {
      cblas_sgemm_pack(kRowMajor, kBMatrix, kTrans, rows, cout, cin, 1.0f,
                       u.const_data_ptr<float>() + p * cout * cin, cin,
                       reinterpret_cast<float *>(base + p * bytes));
    }
    return packed;
  });
}

// The whole Winograd convolution of `input` (float32 N x Cin x H x W, read channels-last) with
// kernels `packed` by yolo3_winograd_pack for `rows` (Cin -> Cout channels): block by block of
// `rows` tiles, the input transform into a local buffer, the 16 products with MKL, the output
// transform with the bias and activation, so that the transformed tiles never leave the core's
// cache. Returns N x Cout x H x W in channels-last memory.
extern "C" at::Tensor *yolo3_winograd_fused(const at::Tensor *input, const at::Tensor *packed,
                                            int64_t rows, const at::Tensor *bias, int leaky,
                                            double slope, char **error) {
  return guarded(error, [&] {
    TORCH_CHECK(yolo3_has_packed_gemm(), "winograd: this libtorch has no MKL packed GEMM");
    TORCH_CHECK(input->dim() == 4 && input->scalar_type() == at::kFloat,
                "winograd input: a float32 N x C x H x W tensor");
    const at::Tensor x = input->contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor b = bias->contiguous();
    const int64_t n = x.size(0), cin = x.size(1), h = x.size(2), w = x.size(3), cout = b.numel();
    TORCH_CHECK(b.scalar_type() == at::kFloat, "winograd: a float32 bias");
    const int64_t bytes = packed_plane_bytes(rows, cin, cout);
    TORCH_CHECK(packed->scalar_type() == at::kByte && packed->numel() == 16 * bytes + 64,
                "winograd: kernels packed for ", rows, " rows of ", cin, " -> ", cout, " channels");
    const uint8_t *base = packed->const_data_ptr<uint8_t>();
    base += (64 - reinterpret_cast<uintptr_t>(base) % 64) % 64;
    const Grid in_grid(h, w, cin), out_grid(h, w, cout);
    const int64_t tiles = n * in_grid.th * in_grid.tw;
    const int64_t blocks = (tiles + rows - 1) / rows;
    at::Tensor y = at::empty({n, cout, h, w}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
    const float *src = x.const_data_ptr<float>(), *bias_data = b.const_data_ptr<float>();
    float *dst = y.data_ptr<float>();
    const std::vector<float> zeros(cin, 0.0f);
    const float s = static_cast<float>(slope);
    at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> v(16 * rows * cin, 0.0f), m(16 * rows * cout);
      const float *products[16];
      for (int p = 0; p < 16; ++p) {
        products[p] = m.data() + p * rows * cout;
      }
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t t0 = blk * rows, t1 = std::min(t0 + rows, tiles);
        for (int64_t t = t0; t < t1; ++t) {
          input_tile(src, in_grid, t, zeros.data(), v.data() + (t - t0) * cin, rows * cin);
        }
        for (int p = 0; p < 16; ++p) {
          cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, rows, cout, cin,
                              v.data() + p * rows * cin, cin,
                              reinterpret_cast<const float *>(base + p * bytes), cout, 0.0f,
                              m.data() + p * rows * cout, cout);
        }
        for (int64_t t = t0; t < t1; ++t) {
          output_tile(products, (t - t0) * cout, bias_data, out_grid, t, leaky != 0, s, dst);
        }
      }
    });
    return y;
  });
}

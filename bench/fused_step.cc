// The bare CD-1 step (bench/bare_cd1.py) as one kernel of our own: a prototype, to measure
// how much of the GEMM peak a step can reach at the trainer's shapes when the three counted
// products, their sigmoids and biases and the update take two passes over the weights (the
// first makes the reconstruction and its hidden sums, the second the update), none of it
// through TensorFlow's ops. Not used by the trainer: its sums are in another order than
// TensorFlow's, and the op keeps its own copy of the parameters (the first call's inputs),
// updated in place, so that a timed step does nothing but the step.
//
// Written with GCC's vector extensions, 16 floats a vector: one AVX-512 register, or two
// AVX2 ones where the machine has no AVX-512. Its blocks are sized for AVX-512's 32
// registers: built for AVX2 (-march=haswell) on our machine it gave the same answers, and an
// epoch took 3.6 s instead of 0.48.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/mutex.h"
#include "tensorflow/core/util/work_sharder.h"

using namespace tensorflow;
using shape_inference::InferenceContext;

namespace {

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));
typedef int32_t i16 __attribute__((vector_size(64)));

inline v16 load(const float* p) { return *reinterpret_cast<const v16u*>(p); }
inline void store(float* p, v16 v) { *reinterpret_cast<v16u*>(p) = v; }
// written out: v16{} + x adds a zero first (-0.0 + 0.0 is +0.0), one add a broadcast
inline v16 splat(float x) { return v16{x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }

// e^x as 2^n · p(r), r = x - n ln 2, with Cephes' expf polynomial
__attribute__((always_inline)) inline v16 exp16(v16 x) {
  x = x < -87.0f ? splat(-87.0f) : x;
  x = x > 88.0f ? splat(88.0f) : x;
  const v16 shifter = splat(12582912.0f);  // 1.5 · 2^23: adding it rounds to an integer
  const v16 n = (x * 1.44269504088896341f + shifter) - shifter;
  x = x - n * 0.693359375f;
  x = x - n * -2.12194440e-4f;
  v16 y = splat(1.9875691500e-4f);
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * (x * x) + (x + 1.0f);
  const i16 scale = (__builtin_convertvector(n, i16) + 127) << 23;
  return y * reinterpret_cast<const v16&>(scale);
}

__attribute__((always_inline)) inline v16 sigmoid16(v16 x) { return 1.0f / (1.0f + exp16(-x)); }

typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

// halves added in turn, a few shuffles where lane by lane took sixteen extracts
inline float total(v16 v) {
  const v8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
               __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const v4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}

// Books i..i+R of the reconstruction, book-major, each padded to 16·NB readers (the
// padding 0): sigmoid(W h + b) from the hidden samples hᵀ (H, 16·NB); each book's sum over
// the batch into sums.
template <int R, int NB>
void visible_rows(const float* w, const float* ht, const float* vb, int64_t H, int64_t i, v16 kept, float* v1,
                  float* sums) {
  const int64_t Bp = 16 * NB;
  v16 acc[R][NB];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) acc[r][j] = v16{};
  for (int64_t k = 0; k < H; ++k) {
    v16 hk[NB];
    for (int j = 0; j < NB; ++j) hk[j] = load(ht + k * Bp + 16 * j);
    for (int r = 0; r < R; ++r) {
      const v16 wv = splat(w[(i + r) * H + k]);
      for (int j = 0; j < NB; ++j) acc[r][j] = wv * hk[j] + acc[r][j];
    }
  }
  for (int r = 0; r < R; ++r) {
    v16 sum = v16{};
    for (int j = 0; j < NB; ++j) {
      v16 v = sigmoid16(acc[r][j] + vb[i + r]);
      if (j == NB - 1) v = v * kept;
      store(v1 + (i + r) * Bp + 16 * j, v);
      sum += v;
    }
    sums[r] = total(sum);
  }
}

// partial (B, H) += Σ over books i..i+R of v1[book]ᵀ W[book], 32 hidden units at a time
template <int R>
void hidden_sums(const float* w, const float* v1, int64_t H, int64_t Bp, int64_t B, int64_t i, float* partial) {
  for (int64_t kc = 0; kc < H; kc += 32) {
    v16 wr[R][2];
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < 2; ++q) wr[r][q] = load(w + (i + r) * H + kc + 16 * q);
    for (int64_t b = 0; b < B; ++b) {
      float* p = partial + b * H + kc;
      v16 a0 = load(p), a1 = load(p + 16);
      for (int r = 0; r < R; ++r) {
        const v16 s = splat(v1[(i + r) * Bp + b]);
        a0 = s * wr[r][0] + a0;
        a1 = s * wr[r][1] + a1;
      }
      store(p, a0);
      store(p + 16, a1);
    }
  }
}

// W[book] -= rate · Σ_b v1[book][b] h1[b] for books i..i+R, 64 hidden units at a time
template <int R>
void weight_update(float* w, const float* v1, const float* h1, int64_t H, int64_t Bp, int64_t B, int64_t i,
                   float rate) {
  for (int64_t kc = 0; kc < H; kc += 64) {
    v16 acc[R][4];
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < 4; ++q) acc[r][q] = v16{};
    for (int64_t b = 0; b < B; ++b) {
      v16 hr[4];
      for (int q = 0; q < 4; ++q) hr[q] = load(h1 + b * H + kc + 16 * q);
      for (int r = 0; r < R; ++r) {
        const v16 s = splat(v1[(i + r) * Bp + b]);
        for (int q = 0; q < 4; ++q) acc[r][q] = s * hr[q] + acc[r][q];
      }
    }
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < 4; ++q) {
        float* p = w + (i + r) * H + kc + 16 * q;
        store(p, load(p) - rate * acc[r][q]);
      }
  }
}

// a call of f<r>() for a count r known only at run time, 1 ≤ r ≤ N
template <int N, typename F>
void with_count(int r, F&& f) {
  if constexpr (N > 1) {
    if (r < N) return with_count<N - 1>(r, f);
  }
  f(std::integral_constant<int, N>{});
}

float* aligned(std::vector<float>& v) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

}  // namespace

REGISTER_OP("RbmFusedBareStep")
    .Input("weights: float").Input("visible_bias: float").Input("hidden_bias: float")
    .Input("hidden_sample: float").Input("rate: float").Input("fetch: bool")
    .Output("weights_now: float").Output("visible_bias_now: float").Output("hidden_bias_now: float")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      for (int j = 0; j < 3; ++j) c->set_output(j, c->UnknownShape());
      return OkStatus();
    });

// One step a call: v1 = σ(h Wᵀ + b), h1 = σ(v1 W + c), W -= rate · v1ᵀ h1, b -= rate · Σ v1,
// c -= rate · Σ h1, from the hidden samples h (batch, H). The books are split in two halves,
// one a worker thread, whatever the thread count, so the sums' order (and the bits) are the
// same on any machine of the same kind. Returns the parameters when fetch is true, else
// empty tensors.
class FusedBareStep : public OpKernel {
 public:
  explicit FusedBareStep(OpKernelConstruction* c) : OpKernel(c) {}

  void Compute(OpKernelContext* c) override {
    mutex_lock lock(mu_);
    const Tensor& weights = c->input(0);
    const Tensor& sample = c->input(3);
    OP_REQUIRES(c, weights.dims() == 2 && sample.dims() == 2 && c->input(1).NumElements() == weights.dim_size(0) &&
                       c->input(2).NumElements() == weights.dim_size(1) && sample.dim_size(1) == weights.dim_size(1),
                errors::InvalidArgument("weights (books, hidden), biases and hidden samples (batch, hidden) that agree"));
    const int64_t n = weights.dim_size(0), H = weights.dim_size(1), B = sample.dim_size(0);
    OP_REQUIRES(c, H % 64 == 0 && H > 0 && B >= 1 && B <= 112 && n >= 1,
                errors::InvalidArgument("hidden units a multiple of 64 and a batch of 1 to 112 readers"));
    if (w_.empty()) {
      const float* w = weights.flat<float>().data();
      w_.assign(w, w + n * H);
      vb_.assign(c->input(1).flat<float>().data(), c->input(1).flat<float>().data() + n);
      hb_.assign(c->input(2).flat<float>().data(), c->input(2).flat<float>().data() + H);
    }
    OP_REQUIRES(c, int64_t(vb_.size()) == n && int64_t(hb_.size()) == H,
                errors::InvalidArgument("weights of another shape than the first call's"));
    const float rate = c->input(4).scalar<float>()();
    const int NB = int((B + 15) / 16);
    const int64_t Bp = 16 * NB;
    v16 kept;  // the last vector's lanes within the batch
    for (int j = 0; j < 16; ++j) kept[j] = 16 * (NB - 1) + j < B ? 1.0f : 0.0f;
    ht_.assign(H * Bp + 16, 0.0f);
    v1_.resize(n * Bp + 16);
    partials_.assign(2 * B * H + 16, 0.0f);
    h1_.resize(B * H + 16);
    float *ht = aligned(ht_), *v1 = aligned(v1_), *partials = aligned(partials_), *h1 = aligned(h1_);
    const float* s = sample.flat<float>().data();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < H; ++k) ht[k * Bp + b] = s[b * H + k];
    float* w = w_.data();
    float* vb = vb_.data();
    const int64_t middle = n / 2 / 8 * 8;
    auto* threads = c->device()->tensorflow_cpu_worker_threads();
    auto halves = [&](const std::function<void(int64_t, int64_t, int64_t)>& work) {
      Shard(threads->num_threads, threads->workers, 2, int64_t(1) << 40, [&](int64_t lo, int64_t hi) {
        for (int64_t p = lo; p < hi; ++p) work(p, p == 0 ? 0 : middle, p == 0 ? middle : n);
      });
    };
    halves([&](int64_t p, int64_t lo, int64_t hi) {
      float* partial = partials + p * B * H;
      float sums[8];
      for (int64_t i = lo; i < hi; i += 8) {
        const int eight = int(std::min<int64_t>(8, hi - i));
        for (int64_t at = i; at < i + eight; at += 3) {
          with_count<3>(int(std::min<int64_t>(3, i + eight - at)), [&](auto r) {
            with_count<7>(NB, [&](auto nb) {
              visible_rows<decltype(r)::value, decltype(nb)::value>(w, ht, vb, H, at, kept, v1, sums + (at - i));
            });
          });
        }
        with_count<8>(eight, [&](auto r) { hidden_sums<decltype(r)::value>(w, v1, H, Bp, B, i, partial); });
        for (int r = 0; r < eight; ++r) vb[i + r] -= rate * sums[r];
      }
    });
    for (int64_t k = 0; k < H; ++k) {
      float sum = 0.0f;
      for (int64_t b = 0; b < B; ++b) {
        const float h = 1.0f / (1.0f + std::exp(-(partials[b * H + k] + partials[(B + b) * H + k] + hb_[k])));
        h1[b * H + k] = h;
        sum += h;
      }
      hb_[k] -= rate * sum;
    }
    halves([&](int64_t p, int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i += 6)
        with_count<6>(int(std::min<int64_t>(6, hi - i)),
                      [&](auto r) { weight_update<decltype(r)::value>(w, v1, h1, H, Bp, B, i, rate); });
    });
    const bool fetch = c->input(5).scalar<bool>()();
    const std::vector<float>* kept_params[3] = {&w_, &vb_, &hb_};
    const TensorShape shapes[3] = {TensorShape({n, H}), TensorShape({n}), TensorShape({H})};
    for (int j = 0; j < 3; ++j) {
      Tensor* out = nullptr;
      OP_REQUIRES_OK(c, c->allocate_output(j, fetch ? shapes[j] : TensorShape({0}), &out));
      if (fetch) std::memcpy(out->flat<float>().data(), kept_params[j]->data(), sizeof(float) * kept_params[j]->size());
    }
  }

 private:
  mutex mu_;
  std::vector<float> w_, vb_, hb_;        // the parameters, from the first call on
  std::vector<float> ht_, v1_, partials_, h1_;  // a step's scratch
};
REGISTER_KERNEL_BUILDER(Name("RbmFusedBareStep").Device(DEVICE_CPU), FusedBareStep);

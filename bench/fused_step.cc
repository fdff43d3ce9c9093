// The CD-1 step as one kernel of our own: a prototype, built, checked and timed by
// bench/fused_step.py, to measure how much of the GEMM peak, and how many times the
// write-up's speed, a step reaches at the trainer's shapes when the three counted products,
// their sigmoids and biases, the data side and the update take two passes over the weights
// (the first makes the reconstruction and its hidden sums, the second the update), none of
// it through TensorFlow's ops. Two ops: RbmFusedBareStep, the bare step of
// bench/bare_cd1.py, and RbmFusedStep, our trainer's step (bookrbm/graph.py). Not used by
// the trainer: its sums are in another order than TensorFlow's, its series units' draws are
// its own, and each op keeps its own copy of the parameters (the first call's inputs),
// updated in place, so that a timed step does nothing but the step.
//
// Written with GCC's vector extensions, 16 floats a vector: one AVX-512 register, or two
// AVX2 ones where the machine has no AVX-512. Its blocks are sized for AVX-512's 32
// registers: built for AVX2 (-march=haswell) on our machine it gave the same answers, and an
// epoch took 3.6 s instead of 0.48.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/mutex.h"
#include "tensorflow/core/util/work_sharder.h"

#include "index_checks.h"

using namespace tensorflow;
using index_checks::all_below;
using index_checks::ascending;
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

// One row x (width numbers) made σ(x + bias) · kept, in place: bias, a row of them or one
// for all (row_bias); kept, a row or none. 16 at a time; the last few one by one.
void sigmoid_row(float* x, int64_t width, const float* bias, float row_bias, const float* kept) {
  int64_t k = 0;
  for (; k + 16 <= width; k += 16) {
    v16 v = sigmoid16(load(x + k) + (bias ? load(bias + k) : splat(row_bias)));
    if (kept) v = v * load(kept + k);
    store(x + k, v);
  }
  for (; k < width; ++k) {
    const float v = 1.0f / (1.0f + std::exp(-(x[k] + (bias ? bias[k] : row_bias))));
    x[k] = kept ? v * kept[k] : v;
  }
}

typedef uint64_t u64x8 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

// Draws first.. first+count of key's stream, uniform in [0, 1), into out: the top 24 bits
// of splitmix64's mix of key + (index + 1) · its golden gamma, eight at a time (so a stream
// drawn in parts is the same as drawn whole)
void uniforms(float* out, int64_t count, uint64_t key, int64_t first) {
  const u64x8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int64_t j = 0; j < count; j += 8) {
    u64x8 z = key + (lane + uint64_t(first + j + 1)) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z = z ^ (z >> 31);
    const v8 u = __builtin_convertvector(z >> 40, v8) * (1.0f / 16777216.0f);
    if (j + 8 <= count) {
      std::memcpy(out + j, &u, sizeof u);
    } else {
      for (int64_t l = 0; j + l < count; ++l) out[j + l] = u[l];
    }
  }
}

// halves added in turn, a few shuffles where lane by lane took sixteen extracts
inline float total(v16 v) {
  const v8 a = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7) +
               __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
  const v4 b = __builtin_shufflevector(a, a, 0, 1, 2, 3) + __builtin_shufflevector(a, a, 4, 5, 6, 7);
  return (b[0] + b[2]) + (b[1] + b[3]);
}

// The series units' push on the reconstruction: each book in a series gets its weight times
// its series unit's samples, a row of units (a vector of the batch's readers each).
struct Push {
  const int32_t* series = nullptr;  // each book's series, -1 for none; none at all if null
  const float* weights = nullptr;
  const float* samples = nullptr;   // (n_series, padded batch)
  int64_t padded = 0;
  const float* of(int64_t book) const {
    return series && series[book] >= 0 ? samples + int64_t(series[book]) * padded : nullptr;
  }
};

// Books i..i+R of the reconstruction, book-major, each padded to 16·NB readers (the
// padding 0): sigmoid(W h + b + push) from the hidden samples hᵀ (H, 16·NB); each book's
// sum over the batch into sums, and the sum of their squares added to squares.
template <int R, int NB>
void visible_rows(const float* w, const float* ht, const float* vb, const Push& push, int64_t H, int64_t i, v16 kept,
                  float* v1, float* sums, v16& squares) {
  const int64_t Bp = 16 * NB;
  v16 acc[R][NB];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) acc[r][j] = v16{};
  for (int64_t k = 0; k < H; ++k) {
    // each vector of samples loaded once and used for every book (else a load an FMA)
    v16 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = splat(w[(i + r) * H + k]);
    for (int j = 0; j < NB; ++j) {
      v16 h = load(ht + k * Bp + 16 * j);
#ifdef __AVX512F__
      asm("" : "+v"(h));  // held in a register: GCC would fold the load into every FMA
#endif
      for (int r = 0; r < R; ++r) acc[r][j] = wv[r] * h + acc[r][j];
    }
  }
  for (int r = 0; r < R; ++r) {
    const float* pushed = push.of(i + r);
    const v16 by = splat(pushed ? push.weights[i + r] : 0.0f);
    v16 sum = v16{};
    for (int j = 0; j < NB; ++j) {
      v16 a = acc[r][j] + vb[i + r];
      if (pushed) a = by * load(pushed + 16 * j) + a;
      v16 v = sigmoid16(a);
      if (j == NB - 1) v = v * kept;
      store(v1 + (i + r) * Bp + 16 * j, v);
      sum += v;
      squares = v * v + squares;
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

// For books i..i+R, 64 hidden units at a time: the model statistics Σ_b v1[book][b] h1[b],
// and W[book] made new(book, offset, its 16 weights there, their 16 statistics).
template <int R, typename New>
void weight_update(float* w, const float* v1, const float* h1, int64_t H, int64_t Bp, int64_t B, int64_t i,
                   const New& updated) {
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
        store(p, updated(i + r, kc + 16 * q, load(p), acc[r][q]));
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

// The step's two passes over the weights, and their scratch, for a batch of B readers given
// as its hidden samples. The books are split in two halves, one a worker thread, whatever
// the thread count, so the sums' order (and the bits) are the same on any machine of the
// same kind.
class Passes {
 public:
  static constexpr int64_t kMaxBatch = 112;  // seven vectors of 16 readers

  // The hidden samples' transpose, zeroed, to be filled: ht()[k · padded() + b].
  void start(int64_t n, int64_t H, int64_t B) {
    n_ = n, H_ = H, B_ = B, NB_ = int((B + 15) / 16), Bp_ = 16 * NB_;
    for (int j = 0; j < 16; ++j) kept_[j] = 16 * (NB_ - 1) + j < B ? 1.0f : 0.0f;
    ht_.assign(H * Bp_ + 16, 0.0f);
    v1_.resize(n * Bp_ + 16);
    partials_.assign(2 * B * H + 16, 0.0f);
    h1_.resize(B * H + 16);
    middle_ = n / 2 / 8 * 8;
  }
  float* ht() { return aligned(ht_); }
  int64_t padded() const { return Bp_; }
  // the reconstruction, book-major, padded: v1()[book · padded() + reader]
  const float* v1() { return aligned(v1_); }

  // v1 = σ(W h + b + push) and the hidden sums v1ᵀ W (``hidden_sums``); visit(book, Σ_b
  // v1[book]) once a book's row is made (its visible bias is not read again). Returns the sum
  // of v1's squares.
  template <typename Visit>
  float reconstruct(OpKernelContext* c, const float* w, const float* vb, const Push& push, const Visit& visit) {
    float* ht = aligned(ht_);
    float* v1 = aligned(v1_);
    float* partials = aligned(partials_);
    float squares[2] = {0.0f, 0.0f};
    halves(c, [&](int64_t p, int64_t lo, int64_t hi) {
      float* partial = partials + p * B_ * H_;
      float sums[8];
      v16 square = v16{};
      for (int64_t i = lo; i < hi; i += 8) {
        const int eight = int(std::min<int64_t>(8, hi - i));
        // three books a block: 21 sums, 7 hidden vectors and a weight in AVX-512's 32 registers
        for (int64_t at = i; at < i + eight; at += 3) {
          with_count<3>(int(std::min<int64_t>(3, i + eight - at)), [&](auto r) {
            with_count<7>(NB_, [&](auto nb) {
              visible_rows<decltype(r)::value, decltype(nb)::value>(w, ht, vb, push, H_, at, kept_, v1,
                                                                    sums + (at - i), square);
            });
          });
        }
        with_count<8>(eight, [&](auto r) { hidden_sums<decltype(r)::value>(w, v1, H_, Bp_, B_, i, partial); });
        for (int r = 0; r < eight; ++r) visit(i + r, sums[r]);
      }
      squares[p] = total(square);
    });
    return squares[0] + squares[1];
  }

  // h1 = σ(v1ᵀ W + c), (B, H), from the two halves' sums; times kept (B, H), if given
  const float* hidden(const float* hb, const float* kept = nullptr) {
    const float* partials = aligned(partials_);
    float* h1 = aligned(h1_);
    for (int64_t b = 0; b < B_; ++b) {
      for (int64_t k = 0; k < H_; ++k) h1[b * H_ + k] = partials[b * H_ + k] + partials[(B_ + b) * H_ + k];
      sigmoid_row(h1 + b * H_, H_, hb, 0.0f, kept ? kept + b * H_ : nullptr);
    }
    return h1;
  }

  // work(part, lo, hi) over [0, middle) and [middle, count), one a worker thread
  template <typename Work>
  static void two(OpKernelContext* c, int64_t middle, int64_t count, const Work& work) {
    auto* threads = c->device()->tensorflow_cpu_worker_threads();
    Shard(threads->num_threads, threads->workers, 2, int64_t(1) << 40, [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p) work(p, p == 0 ? 0 : middle, p == 0 ? middle : count);
    });
  }

  // each weight made new from the model statistics (``weight_update``)
  template <typename New>
  void update(OpKernelContext* c, float* w, const New& updated) {
    const float* v1 = aligned(v1_);
    const float* h1 = aligned(h1_);
    halves(c, [&](int64_t, int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i += 6)
        with_count<6>(int(std::min<int64_t>(6, hi - i)),
                      [&](auto r) { weight_update<decltype(r)::value>(w, v1, h1, H_, Bp_, B_, i, updated); });
    });
  }

 private:
  template <typename Work>
  void halves(OpKernelContext* c, const Work& work) {
    two(c, middle_, n_, work);
  }

  int64_t n_ = 0, H_ = 0, B_ = 0, Bp_ = 0, middle_ = 0;
  int NB_ = 1;
  v16 kept_;  // the last vector's lanes within the batch
  std::vector<float> ht_, v1_, partials_, h1_;
};

// The parameters an op keeps from its first call on (its inputs first.., in turn), and their
// copies as its outputs.
struct Parameters {
  std::vector<std::vector<float>> kept;
  std::vector<TensorShape> shapes;

  void keep(OpKernelContext* c, int first, int count) {
    if (!kept.empty()) return;
    for (int j = first; j < first + count; ++j) {
      const Tensor& given = c->input(j);
      kept.emplace_back(given.flat<float>().data(), given.flat<float>().data() + given.NumElements());
      shapes.push_back(given.shape());
    }
  }
  float* operator[](int j) { return kept[j].data(); }
  bool same_shapes(OpKernelContext* c, int first) const {
    for (size_t j = 0; j < kept.size(); ++j)
      if (c->input(first + j).shape() != shapes[j]) return false;
    return true;
  }

  // outputs first..: the parameters when fetch, else empty tensors
  void output(OpKernelContext* c, int first, bool fetch) {
    for (size_t j = 0; j < kept.size(); ++j) {
      Tensor* out = nullptr;
      OP_REQUIRES_OK(c, c->allocate_output(first + j, fetch ? shapes[j] : TensorShape({0}), &out));
      if (fetch) std::memcpy(out->flat<float>().data(), kept[j].data(), sizeof(float) * kept[j].size());
    }
  }
};

bool parameters_agree(const Tensor& weights, const Tensor& visible_bias, const Tensor& hidden_bias) {
  return weights.dims() == 2 && visible_bias.NumElements() == weights.dim_size(0) &&
         hidden_bias.NumElements() == weights.dim_size(1) && weights.dim_size(1) % 64 == 0 && weights.dim_size(1) > 0 &&
         weights.dim_size(0) > 0;
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
// c -= rate · Σ h1, from the hidden samples h (batch, H). Returns the parameters when fetch
// is true, else empty tensors.
class FusedBareStep : public OpKernel {
 public:
  explicit FusedBareStep(OpKernelConstruction* c) : OpKernel(c) {}

  void Compute(OpKernelContext* c) override {
    mutex_lock lock(mu_);
    const Tensor& sample = c->input(3);
    OP_REQUIRES(c, parameters_agree(c->input(0), c->input(1), c->input(2)) && sample.dims() == 2 &&
                       sample.dim_size(1) == c->input(0).dim_size(1) && sample.dim_size(0) >= 1 &&
                       sample.dim_size(0) <= Passes::kMaxBatch,
                errors::InvalidArgument("hidden units a multiple of 64 and a batch of 1 to 112 readers"));
    params_.keep(c, 0, 3);
    OP_REQUIRES(c, params_.same_shapes(c, 0), errors::InvalidArgument("parameters of other shapes than the first call's"));
    const int64_t n = params_.shapes[0].dim_size(0), H = params_.shapes[0].dim_size(1), B = sample.dim_size(0);
    const float rate = c->input(4).scalar<float>()();
    passes_.start(n, H, B);
    float* ht = passes_.ht();
    const int64_t Bp = passes_.padded();
    const float* s = sample.flat<float>().data();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t k = 0; k < H; ++k) ht[k * Bp + b] = s[b * H + k];
    float *w = params_[0], *vb = params_[1], *hb = params_[2];
    passes_.reconstruct(c, w, vb, Push{}, [&](int64_t i, float sum) { vb[i] -= rate * sum; });
    const float* h1 = passes_.hidden(hb);
    for (int64_t k = 0; k < H; ++k) {
      float sum = 0.0f;
      for (int64_t b = 0; b < B; ++b) sum += h1[b * H + k];
      hb[k] -= rate * sum;
    }
    const v16 minus_rate = splat(-rate);
    passes_.update(c, w, [&](int64_t, int64_t, v16 weights, v16 model) { return minus_rate * model + weights; });
    params_.output(c, 0, c->input(5).scalar<bool>()());
  }

 private:
  mutex mu_;
  Parameters params_;
  Passes passes_;
};
REGISTER_KERNEL_BUILDER(Name("RbmFusedBareStep").Device(DEVICE_CPU), FusedBareStep);

REGISTER_OP("RbmFusedStep")
    .Attr("momentum: float").Attr("weight_decay: float").Attr("series_step: float").Attr("series_keep: float")
    .Attr("seed: int")
    .Input("weights: float").Input("visible_bias: float").Input("hidden_bias: float")
    .Input("series_weights: float").Input("series_bias: float").Input("series: int32")
    .Input("rows: int32").Input("columns: int32").Input("values: float")
    .Input("readers: int32").Input("books: int32").Input("values_by_column: float")
    .Input("batch_size: int32").Input("hidden_noise: float").Input("hidden_kept: float")
    .Input("series_noise: float").Input("series_kept: float").Input("learning_rate: float")
    .Input("train: bool").Input("fetch: bool")
    .Output("error: float")
    .Output("weights_now: float").Output("visible_bias_now: float").Output("hidden_bias_now: float")
    .Output("series_weights_now: float").Output("series_bias_now: float")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Scalar());
      for (int j = 1; j < 6; ++j) c->set_output(j, c->UnknownShape());
      return OkStatus();
    });

// Our trainer's CD-1 step (bookrbm/graph.py's RBMGraph with one Gibbs step and the
// reconstruction's probabilities) in one call, from a batch's stored entries in row order
// and in column order (books ascending), as the trainer's graph takes them, and its draws:
// the uniform draws that sample the hidden and the series units and the dropout masks
// (1 kept, 0 dropped; all 1 without dropout). The series units' draw and dropout (with
// series_keep) are the kernel's own when given with no rows: TensorFlow's random op took
// 0.4 ms a step to draw them, a third of the defaults' step here.
//   h0 = σ(v0 W + c) · kept, g0 = σ(v0 S + d) · series_kept, h ~ h0, g ~ g0,
//   v1 = σ(h Wᵀ + b + g Sᵀ), h1 = σ(v1 W + c) · kept, g1 = σ(v1 S + d) · series_kept,
// where S holds each book's series weight at its series' unit (none for a book in no
// series, and no units at all when there are no series); then each parameter moves by
// learning_rate times its gradient, (data - model) / B (the weights' less weight_decay · W;
// the series units' times series_step), through a velocity when momentum is not 0
// (velocity = momentum · velocity + learning_rate · gradient; parameter += velocity).
// Returns the batch's reconstruction error (its mean squared error over readers × books),
// and the parameters when fetch is true, else empty tensors. With train false it does no
// step (the error is NaN): a way to fetch the parameters.
class FusedStep : public OpKernel {
 public:
  explicit FusedStep(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("momentum", &momentum_));
    OP_REQUIRES_OK(c, c->GetAttr("weight_decay", &decay_));
    OP_REQUIRES_OK(c, c->GetAttr("series_step", &series_step_));
    OP_REQUIRES_OK(c, c->GetAttr("series_keep", &series_keep_));
    int64_t seed = 0;
    OP_REQUIRES_OK(c, c->GetAttr("seed", &seed));
    key_ = uint64_t(seed) * 0xd1b54a32d192ed03ULL;
  }

  void Compute(OpKernelContext* c) override {
    mutex_lock lock(mu_);
    const Tensor &weights = c->input(0), &series = c->input(5);
    OP_REQUIRES(c, parameters_agree(weights, c->input(1), c->input(2)) &&
                       c->input(3).NumElements() == weights.dim_size(0) && series.NumElements() == weights.dim_size(0),
                errors::InvalidArgument("weights (books, hidden) with hidden units a multiple of 64, their biases, and"
                                        " each book's series weight and series"));
    OP_REQUIRES(c, all_below_or_none(series.flat<int32>(), c->input(4).NumElements()),
                errors::InvalidArgument("a book's series outside the series biases"));
    params_.keep(c, 0, 5);
    OP_REQUIRES(c, params_.same_shapes(c, 0), errors::InvalidArgument("parameters of other shapes than the first call's"));
    if (velocities_.empty() && momentum_ != 0.0f)
      for (const auto& kept : params_.kept) velocities_.emplace_back(kept.size() + 16, 0.0f);
    float error = std::numeric_limits<float>::quiet_NaN();
    if (c->input(18).scalar<bool>()()) {
      step(c, &error);
      if (!c->status().ok()) return;
    }
    Tensor* out = nullptr;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({}), &out));
    out->scalar<float>()() = error;
    params_.output(c, 1, c->input(19).scalar<bool>()());
  }

 private:
  static bool all_below_or_none(const TTypes<int32>::ConstFlat& series, int64_t count) {
    for (int64_t j = 0; j < series.size(); ++j)
      if (series(j) < -1 || series(j) >= count) return false;
    return true;
  }

  // parameter j's element at moves by learning_rate · gradient (through its velocity)
  void move(int j, int64_t at, float gradient) {
    if (momentum_ == 0.0f) {
      params_[j][at] += rate_ * gradient;
    } else {
      float& velocity = velocities_[j][at];
      velocity = momentum_ * velocity + rate_ * gradient;
      params_[j][at] += velocity;
    }
  }

  void step(OpKernelContext* c, float* error) {
    auto rows = c->input(6).flat<int32>();
    auto columns = c->input(7).flat<int32>();
    auto values = c->input(8).flat<float>();
    auto readers = c->input(9).flat<int32>();
    auto books = c->input(10).flat<int32>();
    auto by_column = c->input(11).flat<float>();
    const int64_t n = params_.shapes[0].dim_size(0), H = params_.shapes[0].dim_size(1);
    const int64_t S = params_.shapes[4].num_elements(), B = c->input(12).scalar<int32>()();
    const Tensor &noise = c->input(13), &kept = c->input(14), &series_noise = c->input(15), &series_kept = c->input(16);
    rate_ = c->input(17).scalar<float>()();
    auto is = [](const Tensor& t, int64_t rows, int64_t columns) {
      return t.dims() == 2 && t.dim_size(0) == rows && t.dim_size(1) == columns;
    };
    OP_REQUIRES(c, B >= 1 && B <= Passes::kMaxBatch && is(noise, B, H) && is(kept, B, H) &&
                       (is(series_noise, B, S) || is(series_noise, 0, S)) &&
                       (is(series_kept, B, S) || is(series_kept, 0, S)),
                errors::InvalidArgument("a batch of 1 to 112 readers, and a draw and a mask for each of their hidden"
                                        " and series units"));
    OP_REQUIRES(c, columns.size() == rows.size() && values.size() == rows.size() && readers.size() == rows.size() &&
                       books.size() == rows.size() && by_column.size() == rows.size(),
                errors::InvalidArgument("the entries' indices and values in both orders, as many of each"));
    OP_REQUIRES(c, all_below(rows, B) && all_below(readers, B) && all_below(columns, n) && all_below(books, n),
                errors::InvalidArgument("an entry outside the batch or the books"));
    OP_REQUIRES(c, ascending(books), errors::InvalidArgument("entries in column order not in book order"));
    OP_REQUIRES(c, ascending(rows), errors::InvalidArgument("entries in row order not in reader order"));
    float *w = params_[0], *vb = params_[1], *hb = params_[2], *sw = params_[3], *sb = params_[4];
    const int32_t* series = c->input(5).flat<int32>().data();
    const float *u = noise.flat<float>().data(), *on = kept.flat<float>().data();
    const float *series_u = series_noise.flat<float>().data(), *series_on = series_kept.flat<float>().data();
    const bool draw_noise = S && series_noise.dim_size(0) == 0, draw_kept = S && series_kept.dim_size(0) == 0;
    if (draw_noise) drawn_noise_.resize(B * S), series_u = drawn_noise_.data();
    if (draw_kept) drawn_kept_.resize(B * S), series_on = drawn_kept_.data();
    const uint64_t noise_key = key_ + 2 * draws_, kept_key = key_ + 2 * draws_ + 1;
    ++draws_;
    // each book's first entry in column order, and each reader's in row order
    first_.assign(n + 1, 0);
    for (int64_t j = 0; j < books.size(); ++j) ++first_[books(j) + 1];
    for (int64_t i = 0; i < n; ++i) first_[i + 1] += first_[i];
    row_first_.assign(B + 1, 0);
    for (int64_t j = 0; j < rows.size(); ++j) ++row_first_[rows(j) + 1];
    for (int64_t b = 0; b < B; ++b) row_first_[b + 1] += row_first_[b];
    if (S && series_first_.empty()) {  // each series' books, ascending: the same every step
      series_first_.assign(S + 1, 0);
      for (int64_t i = 0; i < n; ++i)
        if (series[i] >= 0) ++series_first_[series[i] + 1];
      for (int64_t t = 0; t < S; ++t) series_first_[t + 1] += series_first_[t];
      series_books_.resize(series_first_[S]);
      std::vector<int64_t> next(series_first_.begin(), series_first_.end() - 1);
      for (int64_t i = 0; i < n; ++i)
        if (series[i] >= 0) series_books_[next[series[i]]++] = i;
    }
    // h0 and g0 from the entries, and their samples (h's transpose, g's series-major), half
    // the readers a thread
    h0_.assign(B * H, 0.0f);
    g0_.assign(B * S, 0.0f);
    passes_.start(n, H, B);
    float* ht = passes_.ht();
    const int64_t Bp = passes_.padded();
    gs_.assign(S * Bp + 16, 0.0f);
    float* gs = aligned(gs_);
    Passes::two(c, B / 2, B, [&](int64_t, int64_t lo, int64_t hi) {
      if (draw_noise) uniforms(drawn_noise_.data() + lo * S, (hi - lo) * S, noise_key, lo * S);
      if (draw_kept) {
        uniforms(drawn_kept_.data() + lo * S, (hi - lo) * S, kept_key, lo * S);
        for (int64_t j = lo * S; j < hi * S; ++j) drawn_kept_[j] = drawn_kept_[j] < series_keep_ ? 1.0f : 0.0f;
      }
      for (int64_t b = lo; b < hi; ++b) {
        float* h = h0_.data() + b * H;
        float* g = g0_.data() + b * S;
        for (int64_t j = row_first_[b]; j < row_first_[b + 1]; ++j) {
          const float* row = w + int64_t(columns(j)) * H;
          const float value = values(j);
          for (int64_t k = 0; k < H; ++k) h[k] += value * row[k];
          const int32_t unit = series[columns(j)];
          if (unit >= 0) g[unit] += value * sw[columns(j)];
        }
        sigmoid_row(h, H, hb, 0.0f, on + b * H);
        for (int64_t k = 0; k < H; ++k) ht[k * Bp + b] = u[b * H + k] < h[k] ? 1.0f : 0.0f;
        if (!S) continue;
        sigmoid_row(g, S, sb, 0.0f, series_on + b * S);
        for (int64_t t = 0; t < S; ++t) gs[t * Bp + b] = series_u[b * S + t] < g[t] ? 1.0f : 0.0f;
      }
    });
    const Push push{S ? series : nullptr, sw, gs, Bp};
    const float size = float(B);
    const float squares = passes_.reconstruct(c, w, vb, push, [&](int64_t i, float sum) {
      float data = 0.0f;
      for (int64_t j = first_[i]; j < first_[i + 1]; ++j) data += by_column(j);
      move(1, i, (data - sum) / size);
    });
    // the error: Σ v1² over the dense batch, and where v0 is stored (v0 - v1)² in place of v1²
    const float* v1 = passes_.v1();
    float at_entries = 0.0f;
    for (int64_t j = 0; j < rows.size(); ++j) {
      const float model = v1[int64_t(columns(j)) * Bp + rows(j)];
      at_entries += (values(j) - model) * (values(j) - model) - model * model;
    }
    *error = (squares + at_entries) / float(B * n);
    const float* h1 = passes_.hidden(hb, on);
    for (int64_t k = 0; k < H; ++k) {
      float sum = 0.0f;
      for (int64_t b = 0; b < B; ++b) sum += h0_[b * H + k] - h1[b * H + k];
      move(2, k, sum / size);
    }
    // g1 = σ(v1 S + d) · series_kept, series-major (S, padded batch), and each series' bias
    // and books' series weights (v0 g0 at the book's own unit, less v1 g1 there): half the
    // series a thread
    g1_.assign(S * Bp + 16, 0.0f);
    float* g1 = aligned(g1_);
    Passes::two(c, S / 2, S, [&](int64_t, int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        float* g = g1 + t * Bp;
        for (int64_t at = series_first_[t]; at < series_first_[t + 1]; ++at) {
          const int64_t i = series_books_[at];
          for (int64_t b = 0; b < Bp; b += 16) store(g + b, splat(sw[i]) * load(v1 + i * Bp + b) + load(g + b));
        }
        sigmoid_row(g, Bp, nullptr, sb[t], nullptr);
        float sum = 0.0f;
        for (int64_t b = 0; b < B; ++b) {
          g[b] *= series_on[b * S + t];
          sum += g0_[b * S + t] - g[b];
        }
        move(4, t, series_step_ * (sum / size));
        for (int64_t at = series_first_[t]; at < series_first_[t + 1]; ++at) {
          const int64_t i = series_books_[at];
          float data = 0.0f;
          for (int64_t j = first_[i]; j < first_[i + 1]; ++j) data += by_column(j) * g0_[readers(j) * S + t];
          v16 model = v16{};  // the padding's v1 is 0
          for (int64_t b = 0; b < Bp; b += 16) model = load(v1 + i * Bp + b) * load(g + b) + model;
          move(3, i, series_step_ * ((data - total(model)) / size));
        }
      }
    });
    if (momentum_ != 0.0f)  // a book in no series: no gradient, but its velocity goes on
      for (int64_t i = 0; i < n; ++i)
        if (series[i] < 0) move(3, i, 0.0f);
    // the weights: (v0ᵀ h0 - v1ᵀ h1) / B - decay · W, each book's data statistics from its
    // entries in column order
    const float* h0 = h0_.data();
    const v16 inverse = splat(1.0f / size), decay = splat(decay_), rate = splat(rate_), momentum = splat(momentum_);
    float* velocity = momentum_ != 0.0f ? velocities_[0].data() : nullptr;
    passes_.update(c, w, [&](int64_t i, int64_t offset, v16 weights, v16 model) {
      v16 data = v16{};
      for (int64_t j = first_[i]; j < first_[i + 1]; ++j)
        data = splat(by_column(j)) * load(h0 + int64_t(readers(j)) * H + offset) + data;
      const v16 gradient = (data - model) * inverse - decay * weights;
      if (!velocity) return rate * gradient + weights;
      float* at = velocity + i * H + offset;
      const v16 moved = momentum * load(at) + rate * gradient;
      store(at, moved);
      return weights + moved;
    });
  }

  float momentum_ = 0.0f, decay_ = 0.0f, series_step_ = 1.0f, series_keep_ = 1.0f, rate_ = 0.0f;
  uint64_t key_ = 0, draws_ = 0;  // the series units' draws: key_ + 2 · the step's count (+ 1)
  std::vector<float> drawn_noise_, drawn_kept_;
  mutex mu_;
  Parameters params_;
  Passes passes_;
  std::vector<std::vector<float>> velocities_;
  std::vector<int64_t> first_, row_first_, series_first_, series_books_;
  std::vector<float> h0_, g0_, gs_, g1_;
};
REGISTER_KERNEL_BUILDER(Name("RbmFusedStep").Device(DEVICE_CPU), FusedStep);

// The CD-1 step's machinery, shared by the trainer's kernel (cd1_step.cc, bookrbm/kernel.py)
// and the bench's bare step (bench/fused_step.cc): vectors of 16 floats, their sigmoid, the
// series units' own uniform draws, and the step's two passes over the weights (``Passes``):
// the first makes the reconstruction and its hidden sums, the second the update.
//
// Written with GCC's vector extensions, 16 floats a vector: one AVX-512 register, or two
// AVX2 ones where the machine has no AVX-512. Its blocks are sized for AVX-512's 32
// registers: built for AVX2 (-march=haswell) on our machine it gave the same answers, to the
// bit, and an epoch with the defaults took 6.1 s instead of 0.59.
#ifndef BOOKRBM_NATIVE_CD1_H_
#define BOOKRBM_NATIVE_CD1_H_

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"

namespace cd1 {

using tensorflow::OpKernelContext;
using tensorflow::Shard;
using tensorflow::Tensor;

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
inline void sigmoid_row(float* x, int64_t width, const float* bias, float row_bias, const float* kept) {
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

// Places index of key's stream, uniform in [0, 1): the top 24 bits of splitmix64's mix of
// key + (index + 1) · its golden gamma, eight at a time
inline v8 uniforms_at(uint64_t key, u64x8 index) {
  u64x8 z = key + (index + 1) * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z = z ^ (z >> 31);
  return __builtin_convertvector(z >> 40, v8) * (1.0f / 16777216.0f);
}

// Draws first.. first+count of key's stream (``uniforms_at``) into out, eight at a time (so a
// stream drawn in parts is the same as drawn whole)
inline void uniforms(float* out, int64_t count, uint64_t key, int64_t first) {
  const u64x8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int64_t j = 0; j < count; j += 8) {
    const v8 u = uniforms_at(key, lane + uint64_t(first + j));
    if (j + 8 <= count) {
      std::memcpy(out + j, &u, sizeof u);
    } else {
      for (int64_t l = 0; j + l < count; ++l) out[j + l] = u[l];
    }
  }
}

// draws first, first + stride, .. first + 15 · stride of key's stream (``uniforms``), in a
// register: the same numbers as those places of the stream drawn whole
inline v16 uniforms_every(uint64_t key, int64_t first, int64_t stride) {
  const u64x8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
  const v8 low = uniforms_at(key, lane * uint64_t(stride) + uint64_t(first));
  const v8 high = uniforms_at(key, (lane + 8) * uint64_t(stride) + uint64_t(first));
  return __builtin_shufflevector(low, high, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
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

// partial (B, H) = Σ over books lo..hi of v1[book]ᵀ W[book], for readers b0..b0+NR and hidden
// units kc..kc+64: 24 sums held in registers over the books, each book's products added in
// turn. Where the sums were read and written for every eight books (the same sums, to the
// bit), they took half a step at H=1,024 (400 KB a chunk): 40 → 21 ms a step at the full
// size; at H=64, 0.537 → 0.521 s an epoch (alternated).
template <int NR>
void hidden_tile(const float* w, const float* v1, int64_t H, int64_t Bp, int64_t b0, int64_t kc, int64_t lo, int64_t hi,
                 float* partial) {
  v16 acc[NR][4];
  for (int r = 0; r < NR; ++r)
    for (int q = 0; q < 4; ++q) acc[r][q] = v16{};
  for (int64_t i = lo; i < hi; ++i) {
    v16 wv[4];
    for (int q = 0; q < 4; ++q) wv[q] = load(w + i * H + kc + 16 * q);
    const float* v = v1 + i * Bp + b0;
    for (int r = 0; r < NR; ++r) {
      const v16 s = splat(v[r]);
      for (int q = 0; q < 4; ++q) acc[r][q] = s * wv[q] + acc[r][q];
    }
  }
  for (int r = 0; r < NR; ++r)
    for (int q = 0; q < 4; ++q) store(partial + (b0 + r) * H + kc + 16 * q, acc[r][q]);
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

inline float* aligned(std::vector<float>& v) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

// Two threads for a step's phases, the caller and one of TensorFlow's: ``run(c, body)`` runs
// body(0) on the caller and body(1) on the other at once, and ``sync()`` in body is a barrier
// both wait at, spinning, between phases. A hand-off to the thread pool for each phase
// (``Passes::both``) took 17 µs, most of it waking the pool's thread; this is one a step.
class Pair {
 public:
  template <typename Body>
  void run(OpKernelContext* c, const Body& body) {
    auto* workers = c->device()->tensorflow_cpu_worker_threads()->workers;
    arrived_.store(0, std::memory_order_relaxed);
    if (workers->CurrentThreadId() >= 0) {  // the caller is one of the pool's threads: a thread of its own
      std::thread other([&] { body(1); });
      body(0);
      other.join();
      return;
    }
    std::atomic<bool> done{false};
    workers->Schedule([&] {
      body(1);
      done.store(true, std::memory_order_release);
    });
    body(0);
    wait_until([&] { return done.load(std::memory_order_acquire); });
  }

  void sync() {
    const int generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    } else {
      wait_until([&] { return generation_.load(std::memory_order_acquire) != generation; });
    }
  }

 private:
  // spinning a while (a phase's end is microseconds away), then giving the core up in turns:
  // with more threads than cores (the trainer's feed thread) the other may be waiting for it
  template <typename Ready>
  static void wait_until(const Ready& ready) {
    for (int spins = 0; !ready(); ++spins) {
      if (spins < 1024) {
        __builtin_ia32_pause();
      } else {
        std::this_thread::yield();
      }
    }
  }

  std::atomic<int> arrived_{0}, generation_{0};
};

// The step's two passes over the weights, and their scratch, for a batch of B readers given
// as its hidden samples. The books are cut in chunks of kChunk, each with its own partial
// hidden sums, added in the chunks' order: whichever thread makes a chunk, and however many
// there are, the sums (and the bits) are the same on any machine of the same kind. A step
// hands its threads the next chunk as they come free (``take``), as the trainer's step does:
// on these shared machines one core is often slower than the other for a while.
class Passes {
 public:
  static constexpr int64_t kMaxBatch = 112;  // seven vectors of 16 readers
  static constexpr int64_t kChunk = 640;     // books: 16 chunks of the 10,000

  // The hidden samples' transpose, to be filled for the batch's readers: ht()[k · padded() +
  // b]. Its padding's columns are zeroed when its shape changes, and only ever multiplied
  // by the kept lanes' 0 after that: written with no zeroing.
  void start(int64_t n, int64_t H, int64_t B) {
    n_ = n, H_ = H, B_ = B, NB_ = int((B + 15) / 16), Bp_ = 16 * NB_;
    chunks_ = (n + kChunk - 1) / kChunk;
    for (int j = 0; j < 16; ++j) kept_[j] = 16 * (NB_ - 1) + j < B ? 1.0f : 0.0f;
    if (ht_.size() != size_t(H * Bp_ + 16)) ht_.assign(H * Bp_ + 16, 0.0f);
    v1_.resize(n * Bp_ + 16);
    partials_.resize(chunks_ * B * H + 16);
    h1_.resize(B * H + 16);
  }
  float* ht() { return aligned(ht_); }
  int64_t padded() const { return Bp_; }
  int64_t chunks() const { return chunks_; }
  // the reconstruction, book-major, padded: v1()[book · padded() + reader]
  const float* v1() { return aligned(v1_); }

  // v1 = σ(W h + b + push) and the hidden sums v1ᵀ W (``hidden_tile``); visit(book, Σ_b
  // v1[book]) once a book's row is made (its visible bias is not read again). Returns the sum
  // of v1's squares.
  template <typename Visit>
  float reconstruct(OpKernelContext* c, const float* w, const float* vb, const Push& push, const Visit& visit) {
    std::vector<float> squares(chunks_);
    std::atomic<int64_t> next{0};
    both(c, [&] {
      for (int64_t chunk; (chunk = take(next)) < chunks_;) squares[chunk] = reconstruct_chunk(chunk, w, vb, push, visit);
    });
    float sum = 0.0f;
    for (float square : squares) sum += square;
    return sum;
  }

  // ``reconstruct``'s work on one chunk of the books: returns its sum of squares
  template <typename Visit>
  float reconstruct_chunk(int64_t chunk, const float* w, const float* vb, const Push& push, const Visit& visit) {
    const float* ht = aligned(ht_);
    float* v1 = aligned(v1_);
    float* partial = aligned(partials_) + chunk * B_ * H_;
    const int64_t lo = chunk * kChunk, hi = std::min(n_, lo + kChunk);
    float sums[3];
    v16 square = v16{};
    // three books a block: 21 sums, 7 hidden vectors and a weight in AVX-512's 32 registers
    for (int64_t i = lo; i < hi; i += 3) {
      const int three = int(std::min<int64_t>(3, hi - i));
      with_count<3>(three, [&](auto r) {
        with_count<7>(NB_, [&](auto nb) {
          visible_rows<decltype(r)::value, decltype(nb)::value>(w, ht, vb, push, H_, i, kept_, v1, sums, square);
        });
      });
      for (int r = 0; r < three; ++r) visit(i + r, sums[r]);
    }
    // then the chunk's hidden sums, six readers by 64 units at a time
    for (int64_t kc = 0; kc < H_; kc += 64)
      for (int64_t b0 = 0; b0 < B_; b0 += 6)
        with_count<6>(int(std::min<int64_t>(6, B_ - b0)),
                      [&](auto nr) { hidden_tile<decltype(nr)::value>(w, v1, H_, Bp_, b0, kc, lo, hi, partial); });
    return total(square);
  }

  // h1 = σ(v1ᵀ W + c), (B, H), from the chunks' sums; times kept (B, H), if given
  const float* hidden(const float* hb, const float* kept = nullptr) {
    hidden_rows(0, B_, hb, kept);
    return aligned(h1_);
  }

  // ``hidden``'s rows of readers lo..hi
  void hidden_rows(int64_t lo, int64_t hi, const float* hb, const float* kept = nullptr) {
    const float* partials = aligned(partials_);
    float* h1 = aligned(h1_);
    for (int64_t b = lo; b < hi; ++b) {
      float* row = h1 + b * H_;
      std::copy(partials + b * H_, partials + (b + 1) * H_, row);
      for (int64_t chunk = 1; chunk < chunks_; ++chunk)
        for (int64_t k = 0; k < H_; k += 16) store(row + k, load(row + k) + load(partials + (chunk * B_ + b) * H_ + k));
      sigmoid_row(row, H_, hb, 0.0f, kept ? kept + b * H_ : nullptr);
    }
  }
  const float* h1() { return aligned(h1_); }

  // work() on two threads at once, the caller and a worker (the bare step's hand-off, each
  // pass; the trainer's step hands its threads the whole step once: ``Pair``)
  template <typename Work>
  static void both(OpKernelContext* c, const Work& work) {
    auto* threads = c->device()->tensorflow_cpu_worker_threads();
    Shard(threads->num_threads, threads->workers, 2, int64_t(1) << 40, [&](int64_t lo, int64_t hi) {
      for (int64_t p = lo; p < hi; ++p) work();
    });
  }

  // the next piece of work to do: count's value, which it moves on by one
  static int64_t take(std::atomic<int64_t>& count) { return count.fetch_add(1, std::memory_order_relaxed); }

  // each weight made new from the model statistics (``weight_update``)
  template <typename New>
  void update(OpKernelContext* c, float* w, const New& updated) {
    std::atomic<int64_t> next{0};
    both(c, [&] {
      for (int64_t chunk; (chunk = take(next)) < chunks_;) update_chunk(chunk, w, updated);
    });
  }

  // ``update``'s work on one chunk of the books (each book's new weights are its own)
  template <typename New>
  void update_chunk(int64_t chunk, float* w, const New& updated) {
    const float* v1 = aligned(v1_);
    const float* h1 = aligned(h1_);
    const int64_t lo = chunk * kChunk, hi = std::min(n_, lo + kChunk);
    for (int64_t i = lo; i < hi; i += 6)
      with_count<6>(int(std::min<int64_t>(6, hi - i)),
                    [&](auto r) { weight_update<decltype(r)::value>(w, v1, h1, H_, Bp_, B_, i, updated); });
  }

 private:
  int64_t n_ = 0, H_ = 0, B_ = 0, Bp_ = 0, chunks_ = 1;
  int NB_ = 1;
  v16 kept_;  // the last vector's lanes within the batch
  std::vector<float> ht_, v1_, partials_, h1_;
};

// whether weights (books, hidden units a multiple of 64) and their biases have shapes that agree
inline bool parameters_agree(const Tensor& weights, const Tensor& visible_bias, const Tensor& hidden_bias) {
  return weights.dims() == 2 && visible_bias.NumElements() == weights.dim_size(0) &&
         hidden_bias.NumElements() == weights.dim_size(1) && weights.dim_size(1) % 64 == 0 && weights.dim_size(1) > 0 &&
         weights.dim_size(0) > 0;
}

}  // namespace cd1

#endif  // BOOKRBM_NATIVE_CD1_H_

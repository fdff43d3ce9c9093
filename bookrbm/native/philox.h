// TensorFlow's RandomUniform op's stream (float32 in [0, 1)), drawn at a place given, so that
// the kernel step (cd1_step.cc) makes the draws the graph's seeded ops make, in its own
// passes: the two ops that drew them (the hidden units' samples and dropout) took a step tens
// of microseconds, more than their work, and their dispatch stood between the step's ops.
//
// The op's stream: a Philox4x32-10 generator from its two seeds (TensorFlow's PhiloxRandom),
// moved on by 256 of its 128-bit samples for each number a call draws (the op's
// ReserveRandomOutputs(count, 256)); a call's number j is word j % 4 of the generator's
// sample j / 4 from there, its low 23 bits made a float in [1, 2), less 1 (Uint32ToFloat).
#ifndef BOOKRBM_NATIVE_PHILOX_H_
#define BOOKRBM_NATIVE_PHILOX_H_

#include <cstdint>
#include <cstring>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "tensorflow/core/lib/random/philox_random.h"

namespace philox {

using Generator = tensorflow::random::PhiloxRandom;

// the samples a call of count numbers moves the op's stream on by
inline uint64_t reserved(int64_t count) { return uint64_t(count) * 256; }

// the op's generator from its seeds, moved on by place samples (its earlier calls' ``reserved``)
inline Generator at_place(int64_t seed, int64_t seed2, uint64_t place) {
  Generator generator{uint64_t(seed), uint64_t(seed2)};
  generator.Skip(place);
  return generator;
}

inline float to_float(uint32_t x) {
  const uint32_t bits = (x & 0x7fffffu) | 0x3f800000u;
  float result;
  std::memcpy(&result, &bits, sizeof result);
  return result - 1.0f;
}

#ifdef __AVX512F__
// 16 samples at once, of the counters c0 + lane (c0 under 2^32 - 15: no carry), c1, c2, c3,
// with the key k0, k1: Philox's ten rounds, a 32 × 32 product's halves from two of
// AVX-512's 64-bit products, one of the even lanes and one of the odd
inline void sixteen(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1, __m512i out[4]) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512i x0 = _mm512_add_epi32(_mm512_set1_epi32(int(c0)), lane), x1 = _mm512_set1_epi32(int(c1)),
          x2 = _mm512_set1_epi32(int(c2)), x3 = _mm512_set1_epi32(int(c3));
  __m512i key0 = _mm512_set1_epi32(int(k0)), key1 = _mm512_set1_epi32(int(k1));
  const __m512i a = _mm512_set1_epi32(int(0xD2511F53u)), b = _mm512_set1_epi32(int(0xCD9E8D57u));
  const __m512i raise0 = _mm512_set1_epi32(int(0x9E3779B9u)), raise1 = _mm512_set1_epi32(int(0xBB67AE85u));
  auto high_low = [](__m512i m, __m512i x, __m512i& high, __m512i& low) {
    const __m512i even = _mm512_mul_epu32(m, x), odd = _mm512_mul_epu32(m, _mm512_srli_epi64(x, 32));
    low = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  };
  for (int round = 0; round < 10; ++round) {
    __m512i high0, low0, high1, low1;
    high_low(a, x0, high0, low0);
    high_low(b, x2, high1, low1);
    x0 = _mm512_xor_si512(_mm512_xor_si512(high1, x1), key0);
    x1 = low1;
    x2 = _mm512_xor_si512(_mm512_xor_si512(high0, x3), key1);
    x3 = low0;
    key0 = _mm512_add_epi32(key0, raise0);
    key1 = _mm512_add_epi32(key1, raise1);
  }
  out[0] = x0, out[1] = x1, out[2] = x2, out[3] = x3;
}
#endif

// numbers first .. first + count of a call whose generator (as reserved for it) is
// generator, into out; first a multiple of 4
inline void uniforms(const Generator& generator, int64_t first, int64_t count, float* out) {
  Generator at = generator;
  at.Skip(uint64_t(first / 4));
  int64_t j = 0;
#ifdef __AVX512F__
  const __m512i bits = _mm512_set1_epi32(0x7fffff), one = _mm512_set1_epi32(0x3f800000);
  for (; j + 64 <= count; j += 64) {
    const auto& c = at.counter();
    if (c[0] > 0xffffffffu - 15) break;  // a carry within the 16: the rest one by one
    __m512i words[4];
    sixteen(c[0], c[1], c[2], c[3], at.key()[0], at.key()[1], words);
    // number 4g + w is word w of sample g: the four words' vectors interleaved
    alignas(64) float by_word[4][16];
    for (int w = 0; w < 4; ++w)
      _mm512_store_ps(by_word[w], _mm512_sub_ps(_mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(words[w], bits), one)),
                                                _mm512_set1_ps(1.0f)));
    for (int g = 0; g < 16; ++g)
      for (int w = 0; w < 4; ++w) out[j + 4 * g + w] = by_word[w][g];
    at.Skip(16);
  }
#endif
  for (; j < count; j += 4) {
    const auto sample = at();
    for (int w = 0; w < 4 && j + w < count; ++w) out[j + w] = to_float(sample[w]);
  }
}

}  // namespace philox

#endif  // BOOKRBM_NATIVE_PHILOX_H_

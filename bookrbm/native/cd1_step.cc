// The trainer's CD-1 step as one kernel of our own (`train_rbm.py --step kernel`; built and
// loaded by bookrbm/kernel.py): RBMGraph's step (bookrbm/graph.py) with one Gibbs step and
// the reconstruction's probabilities, in one call that updates the graph's variables in
// place. The three products, their sigmoids and biases, the data side and the update take
// two passes over the weights (cd1.h's ``Passes``), on two threads (cd1.h's ``Pair``), none
// of it through TensorFlow's ops: at H=64 on our 2-core AVX-512 machines an epoch takes a
// third of the time of the graph's step (README, "Full-scale performance").
//
// Its sums are in another order than TensorFlow's, so a model trained by it differs from the
// graph's in its bits (not in what it learns: README). Its work is cut in pieces whose sums
// are their own, added in a fixed order, whichever thread makes them, so the same seed gives
// the same bits on any machine of the same kind.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"

#include "cd1.h"
#include "index_checks.h"
#include "philox.h"

using namespace tensorflow;
using namespace cd1;
using index_checks::all_below;
using index_checks::ascending;
using shape_inference::InferenceContext;

REGISTER_OP("RbmCd1Step")
    .Attr("N: int >= 3").Attr("M: int >= 0")
    .Attr("momentum: float").Attr("weight_decay: float").Attr("series_step: float").Attr("series_keep: float")
    .Attr("seed: int").Attr("short_lists: float = 0").Attr("short_list_books: int = 20")
    .Attr("hidden_keep: float = 1").Attr("noise_seeds: list(int)").Attr("kept_seeds: list(int)")
    .Input("params: N * resource").Input("velocities: M * resource")
    .Input("noise_place: resource").Input("kept_place: resource").Input("series: int32")
    .Input("indptr: int32").Input("columns: int32").Input("values: float")
    .Input("batch_sizes: int32").Input("hidden_noise: float")
    .Input("series_noise: float").Input("series_kept: float").Input("learning_rate: float")
    .Output("error: float").Output("kept: bool")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Vector(c->UnknownDim()));
      c->set_output(1, c->Vector(c->UnknownDim()));
      return OkStatus();
    });

namespace {

// The variables a step reads and writes, locked (in address order, as TensorFlow's own
// update ops lock theirs) until it is done; each one's buffer made its own first, as those
// ops make it: a fetched value may still share it.
class LockedVariables {
 public:
  LockedVariables(OpKernelContext* c, int first, int count) {
    for (int j = first; j < first + count; ++j) {
      core::RefCountPtr<Var> var;
      OP_REQUIRES_OK(c, LookupResource(c, HandleFromInput(c, j), &var));
      vars_.push_back(std::move(var));
    }
    std::vector<Var*> order;
    for (auto& var : vars_) order.push_back(var.get());
    std::sort(order.begin(), order.end());
    for (Var* var : order) locks_.emplace_back(*var->mu());
    for (auto& var : vars_) {
      Tensor* tensor = var->tensor();
      OP_REQUIRES(c, var->is_initialized && tensor->dtype() == DT_FLOAT,
                  errors::FailedPrecondition("a parameter that is not an initialized float32 variable"));
      if (var->copy_on_read_mode.load() || !tensor->RefCountIsOne()) {
        Tensor own;
        OP_REQUIRES_OK(c, c->allocate_temp(DT_FLOAT, tensor->shape(), &own));
        std::memcpy(own.flat<float>().data(), tensor->flat<float>().data(), sizeof(float) * tensor->NumElements());
        *tensor = own;
      }
    }
  }
  Tensor& operator[](int j) { return *vars_[j]->tensor(); }
  float* data(int j) { return vars_[j]->tensor()->flat<float>().data(); }

 private:
  std::vector<core::RefCountPtr<Var>> vars_;
  std::vector<mutex_lock> locks_;
};

// The generator of a seeded RandomUniform op's stream whose place (the samples its calls have
// taken, an int64 variable: input j) is read, and moved on by a call of count numbers
// (``philox.h``): the graph's op keeps its place itself, the kernel's draws in a variable, so
// that the kernel step and the error's ops (``RbmUniform``) take turns on one stream.
void take_place(OpKernelContext* c, int j, const std::vector<int64_t>& seeds, int64_t count,
                philox::Generator* generator) {
  core::RefCountPtr<Var> var;
  OP_REQUIRES_OK(c, LookupResource(c, HandleFromInput(c, j), &var));
  mutex_lock lock(*var->mu());
  Tensor* place = var->tensor();
  OP_REQUIRES(c, var->is_initialized && place->dtype() == DT_INT64 && place->NumElements() == 1,
              errors::FailedPrecondition("a stream's place that is not an initialized int64 scalar variable"));
  OP_REQUIRES(c, seeds.size() == 2, errors::InvalidArgument("a stream of two seeds"));
  if (var->copy_on_read_mode.load() || !place->RefCountIsOne()) {  // its buffer its own (``LockedVariables``)
    Tensor own;
    OP_REQUIRES_OK(c, c->allocate_temp(DT_INT64, place->shape(), &own));
    own.flat<int64_t>()(0) = place->flat<int64_t>()(0);
    *place = own;
  }
  int64_t& at = place->flat<int64_t>()(0);
  *generator = philox::at_place(seeds[0], seeds[1], uint64_t(at));
  at = int64_t(uint64_t(at) + philox::reserved(count));
}

}  // namespace

// (rows, columns) uniform draws in [0, 1): the numbers the graph's seeded RandomUniform op
// of these seeds draws at the stream's place (a variable, moved on by the call), as the
// kernel step draws them. The trainer's error, in kernel mode, samples its hidden units so.
REGISTER_OP("RbmUniform")
    .Attr("seeds: list(int)").Attr("columns: int >= 0")
    .Input("place: resource").Input("rows: int32")
    .Output("draws: float")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      int64_t columns = 0;
      TF_RETURN_IF_ERROR(c->GetAttr("columns", &columns));
      c->set_output(0, c->Matrix(c->UnknownDim(), columns));
      return OkStatus();
    });

class RbmUniform : public OpKernel {
 public:
  explicit RbmUniform(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("seeds", &seeds_));
    OP_REQUIRES_OK(c, c->GetAttr("columns", &columns_));
  }

  void Compute(OpKernelContext* c) override {
    const int64_t rows = c->input(1).scalar<int32>()();
    OP_REQUIRES(c, rows >= 0, errors::InvalidArgument("a negative count of rows"));
    Tensor* draws = nullptr;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({rows, columns_}), &draws));
    philox::Generator generator;
    take_place(c, 0, seeds_, rows * columns_, &generator);
    if (!c->status().ok()) return;
    philox::uniforms(generator, 0, rows * columns_, draws->flat<float>().data());
  }

 private:
  std::vector<int64_t> seeds_;
  int64_t columns_ = 0;
};
REGISTER_KERNEL_BUILDER(Name("RbmUniform").Device(DEVICE_CPU), RbmUniform);

// One CD-1 step for each batch of a call, one batch after the other, each as a call of its
// own would take it: the batches' stored entries in row order, as a CSR matrix's (indptr:
// each reader's first entry, and one past the last; columns and values), their sizes
// (batch_sizes, in readers: each batch the next rows), and their draws: the uniform draws
// that sample the hidden and the series units, and the dropout masks (1 kept, 0 dropped).
// The hidden units' draws given with no rows, and their mask (with hidden_keep under 1), are
// those the graph's seeded RandomUniform ops of noise_seeds and kept_seeds make
// (``philox.h``), at their streams' places (noise_place, kept_place: int64 variables the
// step moves on, as ``RbmUniform`` does). The series units' draw and dropout (with
// series_keep) are the kernel's own when given with no rows: TensorFlow's random op took
// 0.4 ms a step to draw them.
//   h0 = σ(v0 W + c) · kept, g0 = σ(v0 S + d) · series_kept, h ~ h0, g ~ g0,
//   v1 = σ(h Wᵀ + b + g Sᵀ), h1 = σ(v1 W + c) · kept, g1 = σ(v1 S + d) · series_kept,
// where S holds each book's series weight at its series' unit (params: weights, visible
// bias, hidden bias, and with series units their weights and biases); then each parameter
// moves by learning_rate times its gradient, (data - model) / B (the weights' less
// weight_decay · W; the series units' times series_step), through its velocity when there
// are velocities (velocity = momentum · velocity + learning_rate · gradient; parameter +=
// velocity). With short_lists above 0 the step first cuts that share of the batch's lists
// to 1..short_list_books books (``cut``). Returns each batch's reconstruction error (its mean
// squared error over readers × books, of the lists as cut) and which of the entries the cut
// kept (every one without it).
class Cd1Step : public OpKernel {
 public:
  explicit Cd1Step(OpKernelConstruction* c) : OpKernel(c) {
    OP_REQUIRES_OK(c, c->GetAttr("N", &n_params_));
    OP_REQUIRES_OK(c, c->GetAttr("M", &n_velocities_));
    OP_REQUIRES_OK(c, c->GetAttr("momentum", &momentum_));
    OP_REQUIRES_OK(c, c->GetAttr("weight_decay", &decay_));
    OP_REQUIRES_OK(c, c->GetAttr("series_step", &series_step_));
    OP_REQUIRES_OK(c, c->GetAttr("series_keep", &series_keep_));
    OP_REQUIRES_OK(c, c->GetAttr("short_lists", &short_lists_));
    OP_REQUIRES_OK(c, c->GetAttr("short_list_books", &short_list_books_));
    OP_REQUIRES_OK(c, c->GetAttr("hidden_keep", &hidden_keep_));
    OP_REQUIRES_OK(c, c->GetAttr("noise_seeds", &noise_seeds_));
    OP_REQUIRES_OK(c, c->GetAttr("kept_seeds", &kept_seeds_));
    OP_REQUIRES(c, short_lists_ >= 0.0f && short_lists_ <= 1.0f && short_list_books_ >= 1,
                errors::InvalidArgument("short lists: a share from 0 to 1, and at least one book"));
    int64_t seed = 0;
    OP_REQUIRES_OK(c, c->GetAttr("seed", &seed));
    OP_REQUIRES(c, (n_params_ == 3 || n_params_ == 5) && (n_velocities_ == 0 || n_velocities_ == n_params_),
                errors::InvalidArgument("3 parameters, or 5 with series units, and a velocity for each or none"));
    key_ = uint64_t(seed) * 0xd1b54a32d192ed03ULL;
    cut_key_ = key_ ^ 0x6a09e667f3bcc909ULL;  // another family of streams than the series units'
  }

  void Compute(OpKernelContext* c) override {
    mutex_lock lock(mu_);  // the scratch below is the op's own
    LockedVariables vars(c, 0, n_params_ + n_velocities_);
    if (!c->status().ok()) return;
    const int places = n_params_ + n_velocities_;  // the draws' two places, after the parameters
    const int at = places + 2;                       // the first input after the variables
    const Tensor& series = c->input(at);
    bool agree = parameters_agree(vars[0], vars[1], vars[2]) && series.NumElements() == vars[0].dim_size(0);
    if (n_params_ == 5) agree = agree && vars[3].NumElements() == vars[0].dim_size(0);
    for (int j = 0; j < n_velocities_; ++j) agree = agree && vars[n_params_ + j].shape() == vars[j].shape();
    OP_REQUIRES(c, agree,
                errors::InvalidArgument("weights (books, hidden) with hidden units a multiple of 64, their biases, each"
                                        " book's series (and series weight), and velocities of the same shapes"));
    const int64_t S = n_params_ == 5 ? vars[4].NumElements() : 0;
    // each series' books, checked and grouped when the series are new: the same every step
    const int32_t* of_books = series.flat<int32>().data();
    if (grouped_series_.size() != size_t(series.NumElements()) || grouped_count_ != S ||
        !std::equal(grouped_series_.begin(), grouped_series_.end(), of_books)) {
      OP_REQUIRES(c, all_series_below(series.flat<int32>(), S), errors::InvalidArgument("a book's series outside the series units"));
      group_series(of_books, series.NumElements(), S);
    }
    for (int j = 0; j < 5; ++j) {
      param_[j] = j < n_params_ ? vars.data(j) : nullptr;
      velocity_[j] = j < n_velocities_ ? vars.data(n_params_ + j) : nullptr;
    }
    const int64_t n = vars[0].dim_size(0), H = vars[0].dim_size(1);
    auto indptr = c->input(at + 1).flat<int32>();
    auto columns = c->input(at + 2).flat<int32>();
    auto values = c->input(at + 3).flat<float>();
    auto sizes = c->input(at + 4).flat<int32>();
    const Tensor &noise = c->input(at + 5), &series_noise = c->input(at + 6), &series_kept = c->input(at + 7);
    rate_ = c->input(at + 8).scalar<float>()();
    const int64_t R = indptr.size() - 1;  // the readers of all the call's batches
    int64_t readers = 0;
    bool sized = sizes.size() >= 1;
    for (int64_t i = 0; i < sizes.size(); ++i) {
      sized = sized && sizes(i) >= 1 && sizes(i) <= Passes::kMaxBatch;
      readers += sizes(i);
    }
    auto is = [](const Tensor& t, int64_t rows, int64_t columns) {
      return t.dims() == 2 && t.dim_size(0) == rows && t.dim_size(1) == columns;
    };
    OP_REQUIRES(c, sized && readers == R && (is(noise, R, H) || is(noise, 0, H)) &&
                       (is(series_noise, R, S) || is(series_noise, 0, S)) &&
                       (is(series_kept, R, S) || is(series_kept, 0, S)),
                errors::InvalidArgument("batches of 1 to 112 readers, as many as indptr has, and a draw and a mask for"
                                        " each of their hidden and series units"));
    OP_REQUIRES(c, R >= 0 && indptr(0) == 0 && ascending(indptr) && indptr(R) == columns.size() &&
                       values.size() == columns.size(),
                errors::InvalidArgument("a CSR batch: indptr from 0, never falling, to the count of its columns and"
                                        " values"));
    OP_REQUIRES(c, all_below(columns, n), errors::InvalidArgument("an entry outside the books"));
    Tensor *batch_errors = nullptr, *kept = nullptr;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({sizes.size()}), &batch_errors));
    OP_REQUIRES_OK(c, c->allocate_output(1, TensorShape({columns.size()}), &kept));
    // the batches one after the other, each as a call of its own would take it: the same
    // steps, and one session run for a few of them, where each took tens of microseconds
    for (int64_t i = 0, first = 0; i < sizes.size(); first += sizes(i), ++i) {
      const int64_t B = sizes(i), entry = indptr(first);
      batch_indptr_.resize(B + 1);
      for (int64_t b = 0; b <= B; ++b) batch_indptr_[b] = indptr(first + b) - int32_t(entry);
      const Batch batch{batch_indptr_.data(), columns.data() + entry, values.data() + entry, B,
                        noise.dim_size(0) ? noise.flat<float>().data() + first * H : nullptr,
                        series_noise.dim_size(0) ? series_noise.flat<float>().data() + first * S : nullptr,
                        series_kept.dim_size(0) ? series_kept.flat<float>().data() + first * S : nullptr,
                        kept->flat<bool>().data() + entry};
      float& error = batch_errors->flat<float>()(i);
      error = std::numeric_limits<float>::quiet_NaN();
      step(c, places, of_books, n, H, S, batch, &error);
      if (!c->status().ok()) return;
    }
  }

 private:
  // One batch of a call's: its readers' entries in row order (a CSR matrix's indptr from 0,
  // columns and values), its draws if fed (else null), and where the cut marks the entries kept
  struct Batch {
    const int32_t* indptr;
    const int32_t* columns;
    const float* values;
    int64_t B;
    const float *noise, *series_noise, *series_kept;
    bool* kept;
  };

  // each of S series' books, ascending (series_books_, from series_first_[t]), for the n books'
  // series; kept with the series they were made from
  void group_series(const int32_t* series, int64_t n, int64_t S) {
    grouped_series_.assign(series, series + n);
    grouped_count_ = S;
    series_first_.assign(S + 1, 0);
    group_starts(series_first_, S, n, [&](int64_t i) { return series[i]; });
    series_books_.resize(series_first_[S]);
    std::vector<int64_t> next(series_first_.begin(), series_first_.end() - 1);
    for (int64_t i = 0; i < n; ++i)
      if (series[i] >= 0) series_books_[next[series[i]]++] = i;
  }

  static bool all_series_below(const TTypes<int32>::ConstFlat& series, int64_t count) {
    for (int64_t j = 0; j < series.size(); ++j)
      if (series(j) < -1 || series(j) >= count) return false;
    return true;
  }

  // parameter j's element i moves by learning_rate · gradient (through its velocity)
  void move(int j, int64_t i, float gradient) {
    if (!velocity_[j]) {
      param_[j][i] += rate_ * gradient;
    } else {
      float& velocity = velocity_[j][i];
      velocity = momentum_ * velocity + rate_ * gradient;
      param_[j][i] += velocity;
    }
  }

  // the step on one batch, for the n books, H hidden units and S series units of the
  // parameters (param_), each book's series in series
  void step(OpKernelContext* c, int places, const int32_t* series, int64_t n, int64_t H, int64_t S, const Batch& batch,
            float* error) {
    const int64_t B = batch.B;
    const uint64_t noise_key = key_ + 2 * draws_, kept_key = key_ + 2 * draws_ + 1, cut_key = cut_key_ + draws_;
    ++draws_;
    // the batch as the step takes it: each list whole, or cut (``cut``)
    const int32_t* indptr = batch.indptr;
    const int32_t* columns = batch.columns;
    const float* values = batch.values;
    int64_t entries = indptr[B];
    if (short_lists_ > 0.0f) {
      cut(indptr, columns, values, B, cut_key, batch.kept);
      indptr = cut_indptr_.data(), columns = cut_columns_.data(), values = cut_values_.data();
      entries = int64_t(cut_columns_.size());
    } else {
      std::fill(batch.kept, batch.kept + entries, true);
    }
    // the hidden units' draws, fed or the graph's seeded op's (``philox.h``), and their
    // dropout mask, the graph's op's, if they drop out
    const bool own_noise = !batch.noise, dropout = hidden_keep_ < 1.0f;
    philox::Generator noise_draws, kept_draws;
    if (own_noise) take_place(c, places, noise_seeds_, B * H, &noise_draws);
    if (dropout) take_place(c, places + 1, kept_seeds_, B * H, &kept_draws);
    if (!c->status().ok()) return;
    own_noise_.resize(own_noise ? B * H : 0);
    kept_.resize(dropout ? B * H : 0);
    float *w = param_[0], *vb = param_[1], *hb = param_[2], *sw = param_[3], *sb = param_[4];
    const float* u = own_noise ? own_noise_.data() : batch.noise;
    const float* on = dropout ? kept_.data() : nullptr;  // none: every unit kept
    // the series units' draws and mask, fed (reader-major) or the kernel's own (null)
    const float* series_u = batch.series_noise;
    const float* series_kept_fed = batch.series_kept;
    first_.resize(n + 1);
    next_.resize(n);
    readers_.resize(entries);
    by_column_.resize(entries);
    const int32_t* readers = readers_.data();
    const float* by_column = by_column_.data();
    passes_.start(n, H, B);
    // h0 and g0 from the entries, and their samples: h's transposed; g0, its mask and samples
    // series-major (S, padded batch), 16 readers a vector, as the series units' push and their
    // own pass take them (made reader-major, their sigmoids, draws and samples took 60 µs a
    // step more, and the samples' stores a cache line each).
    h0_.resize(B * H);
    float* ht = passes_.ht();
    const int64_t Bp = passes_.padded();
    for (auto* rows : {&g0_, &series_on_, &gs_, &g1_}) rows->resize(S * Bp + 16);
    float *g0 = aligned(g0_), *series_on = aligned(series_on_), *gs = aligned(gs_);
    const Push push{S ? series : nullptr, sw, gs, Bp};
    const float size = float(B);
    const float* v1 = passes_.v1();
    const float* h0 = h0_.data();
    const v16 inverse = splat(1.0f / size), decay = splat(decay_), rate = splat(rate_), momentum = splat(momentum_);
    float* velocity = velocity_[0];
    const int64_t chunks = passes_.chunks();
    squares_.resize(chunks);
    at_entries_.resize(chunks);
    float *squares = squares_.data(), *at_entries = at_entries_.data();
    const int64_t series_parts = (S + kSeriesPart - 1) / kSeriesPart;
    for (auto* next : {&next_readers_, &next_chunk_, &next_series_, &next_update_}) next->store(0, std::memory_order_relaxed);
    // the step's phases on two threads (``Pair``), each taking the next piece of a phase's
    // work as it comes free, a barrier between the phases
    pair_.run(c, [&](int p) {
      if (p == 0) in_column_order(indptr, columns, values, n, B, entries);  // while the other thread wakes
      // the readers 16 at a time (a vector of the series' rows, a cache line of the hidden
      // samples' rows), whichever thread is free taking the next: the other thread is woken at
      // each step, and starts tens of microseconds after this one. Each vector's sums are its
      // own, so the bits do not depend on which thread made them.
      for (int64_t v; (v = Passes::take(next_readers_)) < Bp / 16;) {
        const int64_t lo = 16 * v, hi = std::min(16 * v + 16, B);
        for (int64_t t = 0; t < S; ++t) store(g0 + t * Bp + 16 * v, v16{});
        std::fill(h0_.data() + lo * H, h0_.data() + hi * H, 0.0f);
        for (int64_t b = lo; b < hi; ++b) {
          float* h = h0_.data() + b * H;
          for (int64_t j = indptr[b]; j < indptr[b + 1]; ++j) {
            const float* row = w + int64_t(columns[j]) * H;
            const float value = values[j];
            for (int64_t k = 0; k < H; ++k) h[k] += value * row[k];
            const int32_t unit = S ? series[columns[j]] : -1;
            if (unit >= 0) g0[unit * Bp + b] += value * sw[columns[j]];
          }
          if (own_noise) philox::uniforms(noise_draws, b * H, H, own_noise_.data() + b * H);
          if (dropout) {
            float* row = kept_.data() + b * H;
            philox::uniforms(kept_draws, b * H, H, row);
            for (int64_t k = 0; k < H; ++k) row[k] = row[k] < hidden_keep_ ? 1.0f : 0.0f;
          }
          sigmoid_row(h, H, hb, 0.0f, on ? on + b * H : nullptr);
          for (int64_t k = 0; k < H; ++k) ht[k * Bp + b] = u[b * H + k] < h[k] ? 1.0f : 0.0f;
        }
        for (int64_t t = 0; t < S; ++t)
          series_samples(t, v, B, Bp, S, sb[t], noise_key, kept_key, series_u, series_kept_fed, g0, series_on, gs);
      }
      pair_.sync();
      // the error: Σ v1² over the dense batch, and where v0 is stored (v0 - v1)² in place of
      // v1², each book's entries' terms taken as its row is made (in cache then, where a pass
      // over the entries afterwards read the reconstruction at random, on one thread)
      for (int64_t chunk; (chunk = Passes::take(next_chunk_)) < chunks;) {
        float terms_here = 0.0f;
        squares[chunk] = passes_.reconstruct_chunk(chunk, w, vb, push, [&](int64_t i, float sum) {
          const float* row = v1 + i * Bp;
          float data = 0.0f, terms = 0.0f;
          for (int64_t j = first_[i]; j < first_[i + 1]; ++j) {
            data += by_column[j];
            const float model = row[readers[j]];
            terms += (by_column[j] - model) * (by_column[j] - model) - model * model;
          }
          move(1, i, (data - sum) / size);
          terms_here += terms;
        });
        at_entries[chunk] = terms_here;
      }
      pair_.sync();
      passes_.hidden_rows(p == 0 ? 0 : B / 2, p == 0 ? B / 2 : B, hb, on);
      pair_.sync();
      if (p == 0) {  // the hidden biases, read by h1 above and by nothing below
        float squared = 0.0f;
        for (int64_t chunk = 0; chunk < chunks; ++chunk) squared += squares[chunk] + at_entries[chunk];
        *error = squared / float(B * n);
        const float* h1 = passes_.h1();
        for (int64_t k = 0; k < H; ++k) {
          float sum = 0.0f;
          for (int64_t b = 0; b < B; ++b) sum += h0_[b * H + k] - h1[b * H + k];
          move(2, k, sum / size);
        }
      }
      if (S)
        for (int64_t part; (part = Passes::take(next_series_)) < series_parts;) series_step(part, n, B, Bp, series);
      // the weights: (v0ᵀ h0 - v1ᵀ h1) / B - decay · W, each book's data statistics from its
      // entries in column order
      for (int64_t chunk; (chunk = Passes::take(next_update_)) < chunks;)
        passes_.update_chunk(chunk, w, [&](int64_t i, int64_t offset, v16 weights, v16 model) {
          v16 data = v16{};
          for (int64_t j = first_[i]; j < first_[i + 1]; ++j)
            data = splat(by_column[j]) * load(h0 + int64_t(readers[j]) * H + offset) + data;
          const v16 gradient = (data - model) * inverse - decay * weights;
          if (!velocity) return rate * gradient + weights;
          float* at = velocity + i * H + offset;
          const v16 moved = momentum * load(at) + rate * gradient;
          store(at, moved);
          return weights + moved;
        });
    });
  }

  // A counting sort's first half: first (groups + 1 long) made each group's first place, and
  // one past the last, for count members in groups group(member), one below 0 in none
  template <typename Group>
  static void group_starts(std::vector<int64_t>& first, int64_t groups, int64_t count, const Group& group) {
    std::fill(first.begin(), first.end(), 0);
    for (int64_t j = 0; j < count; ++j)
      if (group(j) >= 0) ++first[group(j) + 1];
    for (int64_t k = 0; k < groups; ++k) first[k + 1] += first[k];
  }

  // The entries in column order (each book's readers ascending, as the entries come in
  // reader order), made here where the feed made them in NumPy on a core the passes need:
  // each book's first entry there (first_), its readers and their values
  void in_column_order(const int32_t* indptr, const int32_t* columns, const float* values, int64_t n, int64_t B,
                       int64_t entries) {
    group_starts(first_, n, entries, [&](int64_t j) { return columns[j]; });
    std::copy(first_.begin(), first_.end() - 1, next_.begin());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t j = indptr[b]; j < indptr[b + 1]; ++j) {
        const int64_t place = next_[columns[j]]++;
        readers_[place] = int32_t(b);
        by_column_[place] = values[j];
      }
  }

  // A short_lists_ share of the batch's readers (drawn) cut to 1..short_list_books_ of their
  // books (how many drawn uniformly, which ones at random: a partial Fisher-Yates shuffle of
  // the row's places), as train.shorten_lists cuts them with NumPy's draws, here with the
  // kernel's own (row b's from its own part of key's stream, whatever the other rows drew);
  // a list no longer than its count stays whole. Cut in NumPy on the feed's thread, they
  // took that thread a tenth of a second an epoch at the full size, while the passes want
  // both cores. Leaves the kept entries in cut_indptr_, cut_columns_ and cut_values_, in
  // row order and each row's in its order, and marks them in kept.
  void cut(const int32_t* indptr, const int32_t* columns, const float* values, int64_t B, uint64_t key, bool* kept) {
    const int64_t most = short_list_books_, stride = 2 + most;
    cut_draws_.resize(B * stride);
    uniforms(cut_draws_.data(), B * stride, key, 0);
    cut_indptr_.assign(1, 0);
    cut_columns_.clear();
    cut_values_.clear();
    for (int64_t b = 0; b < B; ++b) {
      const float* u = cut_draws_.data() + b * stride;
      const int64_t first = indptr[b], length = indptr[b + 1] - first;
      const int64_t count = 1 + std::min<int64_t>(int64_t(double(u[1]) * most), most - 1);
      const bool shorten = u[0] < short_lists_ && length > count;
      std::fill(kept + first, kept + first + length, !shorten);
      if (shorten) {
        places_.resize(length);
        for (int64_t j = 0; j < length; ++j) places_[j] = int32_t(j);
        for (int64_t j = 0; j < count; ++j) {
          const int64_t other = j + std::min<int64_t>(int64_t(double(u[2 + j]) * (length - j)), length - j - 1);
          std::swap(places_[j], places_[other]);
          kept[first + places_[j]] = true;
        }
      }
      for (int64_t j = first; j < first + length; ++j)
        if (kept[j]) cut_columns_.push_back(columns[j]), cut_values_.push_back(values[j]);
      cut_indptr_.push_back(int32_t(cut_columns_.size()));
    }
  }

  // Vector v (readers 16v..16v+15) of series t's row of g0 (series-major, (S, Bp)), which
  // holds their pushes from the entries: made σ(push + bias) · kept, and the mask and the
  // samples put in series_on and gs (the padding's lanes 0 in all three). The draws (noise)
  // and the mask are fed, reader-major, or the kernel's own: places b · S + t of the step's
  // two streams (the mask kept at a draw under series_keep), made here in registers.
  void series_samples(int64_t t, int64_t v, int64_t B, int64_t Bp, int64_t S, float bias, uint64_t noise_key,
                      uint64_t kept_key, const float* noise, const float* kept, float* g0, float* series_on,
                      float* gs) const {
    const int64_t at = t * Bp + 16 * v;
    const i16 lane = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    const i16 within = lane + int32_t(16 * v) < int32_t(B);
    v16 u, on;
    if (noise) {
      for (int l = 0; l < 16; ++l) u[l] = 16 * v + l < B ? noise[(16 * v + l) * S + t] : 1.0f;
    } else {
      u = uniforms_every(noise_key, 16 * v * S + t, S);
    }
    if (kept) {
      for (int l = 0; l < 16; ++l) on[l] = 16 * v + l < B ? kept[(16 * v + l) * S + t] : 0.0f;
    } else {
      on = uniforms_every(kept_key, 16 * v * S + t, S) < series_keep_ ? splat(1.0f) : v16{};
    }
    on = within ? on : v16{};
    const v16 mean = sigmoid16(load(g0 + at) + bias) * on;
    store(g0 + at, mean);
    store(series_on + at, on);
    store(gs + at, (u < mean) ? splat(1.0f) : v16{});
  }

  // g1 = σ(v1 S + d) · series_on, series-major (S, padded batch), each series' bias, and its
  // books' series weights (v0 g0 at the book's own unit, less v1 g1 there), for one part of
  // kSeriesPart series; then the velocities of the books in no series, in as large a part of
  // the books. Only the series units' parameters move, so it needs no barrier before the
  // weights' update.
  void series_step(int64_t part, int64_t n, int64_t B, int64_t Bp, const int32_t* series) {
    const int64_t S = int64_t(series_first_.size()) - 1;
    const float *v1 = passes_.v1(), *sw = param_[3], *sb = param_[4];
    const float *g0 = aligned(g0_), *series_on = aligned(series_on_);
    const float size = float(B);
    float* g1 = aligned(g1_);
    const int64_t parts = (S + kSeriesPart - 1) / kSeriesPart;
    const int64_t lo = part * kSeriesPart, hi = std::min(S, lo + kSeriesPart);
    for (int64_t t = lo; t < hi; ++t) {
      float* g = g1 + t * Bp;
      const int64_t* books = series_books_.data() + series_first_[t];
      const int64_t count = series_first_[t + 1] - series_first_[t];
      for (int64_t b = 0; b < Bp; b += 16) {  // the first book's push put, the others' added
        v16 sum = count ? splat(sw[books[0]]) * load(v1 + books[0] * Bp + b) : v16{};
        for (int64_t at = 1; at < count; ++at) sum = splat(sw[books[at]]) * load(v1 + books[at] * Bp + b) + sum;
        store(g + b, sum);
      }
      v16 difference = v16{};  // the padding's g0 and g1 are 0
      for (int64_t b = 0; b < Bp; b += 16) {
        const v16 mean = sigmoid16(load(g + b) + sb[t]) * load(series_on + t * Bp + b);
        store(g + b, mean);
        difference += load(g0 + t * Bp + b) - mean;
      }
      move(4, t, series_step_ * (total(difference) / size));
      for (int64_t at = 0; at < count; ++at) {
        const int64_t i = books[at];
        float data = 0.0f;
        for (int64_t j = first_[i]; j < first_[i + 1]; ++j) data += by_column_[j] * g0[t * Bp + readers_[j]];
        v16 model = v16{};  // the padding's v1 is 0
        for (int64_t b = 0; b < Bp; b += 16) model = load(v1 + i * Bp + b) * load(g + b) + model;
        move(3, i, series_step_ * ((data - total(model)) / size));
      }
    }
    if (velocity_[3])  // a book in no series: no gradient, but its velocity goes on
      for (int64_t i = part * n / parts; i < (part + 1) * n / parts; ++i)
        if (series[i] < 0) move(3, i, 0.0f);
  }

  int n_params_ = 3, n_velocities_ = 0;
  float momentum_ = 0.0f, decay_ = 0.0f, series_step_ = 1.0f, series_keep_ = 1.0f, rate_ = 0.0f, short_lists_ = 0.0f,
        hidden_keep_ = 1.0f;
  std::vector<int64_t> noise_seeds_, kept_seeds_;  // the graph's ops' (their seed and seed2)
  int64_t short_list_books_ = 20;
  // the series units' draws: key_ + 2 · the step's count (+ 1); the cut's, cut_key_ + the count
  uint64_t key_ = 0, cut_key_ = 0, draws_ = 0;
  float* param_[5] = {};     // this step's parameters, and their velocities (null: none)
  float* velocity_[5] = {};
  mutex mu_;
  Passes passes_;
  Pair pair_;
  // the next piece of each phase's work to start on: a vector of 16 readers, a chunk of the
  // books for each pass, a part of the series
  std::atomic<int64_t> next_readers_{0}, next_chunk_{0}, next_series_{0}, next_update_{0};
  static constexpr int64_t kSeriesPart = 64;
  std::vector<float> squares_, at_entries_;  // each chunk's
  std::vector<int64_t> first_, next_, series_first_, series_books_;
  std::vector<int32_t> grouped_series_;  // the series series_first_ and series_books_ were made from
  int64_t grouped_count_ = -1;
  std::vector<int32_t> readers_, cut_indptr_, cut_columns_, places_, batch_indptr_;
  std::vector<float> cut_draws_, cut_values_;
  std::vector<float> by_column_;
  std::vector<float> h0_, g0_, series_on_, gs_, g1_;  // g's series-major, (S, padded batch)
  std::vector<float> own_noise_, kept_;                // (B, H): the hidden units' draws and mask
};
REGISTER_KERNEL_BUILDER(Name("RbmCd1Step").Device(DEVICE_CPU), Cd1Step);

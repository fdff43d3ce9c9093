// Kernels of our own for the CD step: a prototype, measured and not used by the trainer
// (bench/README.md, "Kernels of our own, built and measured"). Built and checked by
// bench/own_kernels.py. Each replaces several TensorFlow ops with one pass, adding in the
// same order as those ops do, so that the trained weights keep their bits; compile with
// -ffp-contract=off, or the compiler fuses products and sums and rounds them once.
#include <cstring>
#include <vector>

#include "Eigen/Core"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

#include "index_checks.h"

using namespace tensorflow;
using index_checks::all_below;
using index_checks::ascending;
using shape_inference::InferenceContext;

namespace {

// Runs work(first, last) over [0, n) on the session's worker threads.
template <typename Work>
void sharded(OpKernelContext* context, int64_t n, int64_t cost_per_unit, Work work) {
  auto* threads = context->device()->tensorflow_cpu_worker_threads();
  Shard(threads->num_threads, threads->workers, n, cost_per_unit, work);
}

// the shape of sums a row: (unknown, the first input's columns)
Status rows_as_wide_as_the_first_input(InferenceContext* c) {
  c->set_output(0, c->Matrix(c->UnknownDim(), c->Dim(c->input(0), 1)));
  return OkStatus();
}

void add_row(float* __restrict sum, const float* __restrict row, int64_t width) {
  for (int64_t k = 0; k < width; ++k) sum[k] += row[k];
}

}  // namespace

// v W of a batch from its entries in row order (rows ascending): out[r] = Σ values[j] ·
// weights[columns[j]] over r's entries, in the order of TensorFlow's sorted segment sum of
// the gathered, scaled rows (Eigen's reduction): a segment of fewer than 16 rows in turn;
// a longer one round robin into 4 sums over its first multiple of 4 rows, those added in
// order, then the rest in turn. Replaces a gather, a product, a segment sum and a pad.
REGISTER_OP("RbmHiddenSums")
    .Input("weights: float").Input("rows: int32").Input("columns: int32").Input("values: float")
    .Input("batch_size: int32").Output("sums: float")
    .SetShapeFn(rows_as_wide_as_the_first_input);

class HiddenSums : public OpKernel {
 public:
  explicit HiddenSums(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    const Tensor& weights = c->input(0);
    auto rows = c->input(1).flat<int32>();
    auto columns = c->input(2).flat<int32>();
    auto values = c->input(3).flat<float>();
    const int64_t batch = c->input(4).scalar<int32>()(), width = weights.dim_size(1), n = rows.size();
    OP_REQUIRES(c, all_below(rows, batch) && all_below(columns, weights.dim_size(0)),
                errors::InvalidArgument("an entry outside the batch or the weights"));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({batch, width}), &out));
    float* sums = out->flat<float>().data();
    const float* w = weights.flat<float>().data();
    std::memset(sums, 0, sizeof(float) * batch * width);
    std::vector<float> partial(3 * width);
    auto scaled_add = [&](float* __restrict sum, int64_t j) {
      const float* __restrict row = w + int64_t(columns(j)) * width;
      const float value = values(j);
      for (int64_t k = 0; k < width; ++k) sum[k] += row[k] * value;
    };
    for (int64_t start = 0; start < n;) {
      int64_t end = start;
      while (end < n && rows(end) == rows(start)) ++end;
      float* __restrict sum = sums + int64_t(rows(start)) * width;
      if (end - start < 16) {
        for (int64_t j = start; j < end; ++j) scaled_add(sum, j);
      } else {
        const int64_t whole = start + (end - start) / 4 * 4;
        float* a = partial.data();
        float* b = a + width;
        float* d = b + width;
        std::memset(a, 0, sizeof(float) * 3 * width);
        for (int64_t j = start; j < whole; j += 4) {
          scaled_add(sum, j);
          scaled_add(a, j + 1);
          scaled_add(b, j + 2);
          scaled_add(d, j + 3);
        }
        add_row(sum, a, width);
        add_row(sum, b, width);
        add_row(sum, d, width);
        for (int64_t j = whole; j < end; ++j) scaled_add(sum, j);
      }
      start = end;
    }
  }
};
REGISTER_KERNEL_BUILDER(Name("RbmHiddenSums").Device(DEVICE_CPU), HiddenSums);

// vᵀ hidden of a batch from its entries in column order (books ascending): out[b] = Σ
// values[j] · hidden[readers[j]] over b's entries, in turn, as TensorFlow's CSR product
// adds them; 0 for the other books. Replaces the CSR matrix's conversion and product.
REGISTER_OP("RbmTransposedSums")
    .Input("hidden: float").Input("readers: int32").Input("books: int32").Input("values: float")
    .Input("n_visible: int32").Output("sums: float")
    .SetShapeFn(rows_as_wide_as_the_first_input);

class TransposedSums : public OpKernel {
 public:
  explicit TransposedSums(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    const Tensor& hidden = c->input(0);
    auto readers = c->input(1).flat<int32>();
    auto books = c->input(2).flat<int32>();
    auto values = c->input(3).flat<float>();
    const int64_t n_visible = c->input(4).scalar<int32>()(), width = hidden.dim_size(1);
    OP_REQUIRES(c, all_below(readers, hidden.dim_size(0)) && all_below(books, n_visible),
                errors::InvalidArgument("an entry outside the batch or the books"));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({n_visible, width}), &out));
    float* sums = out->flat<float>().data();
    const float* h = hidden.flat<float>().data();
    std::memset(sums, 0, sizeof(float) * n_visible * width);
    for (int64_t j = 0; j < readers.size(); ++j) {
      float* __restrict sum = sums + int64_t(books(j)) * width;
      const float* __restrict row = h + int64_t(readers(j)) * width;
      const float value = values(j);
      for (int64_t k = 0; k < width; ++k) sum[k] += value * row[k];
    }
  }
};
REGISTER_KERNEL_BUILDER(Name("RbmTransposedSums").Device(DEVICE_CPU), TransposedSums);

// The book-major reconstruction (n_visible, batch) at each entry (columns[j], rows[j]): the
// error's data terms. Replaces the index pairs' stack and a gather_nd.
REGISTER_OP("RbmEntryValues")
    .Input("by_book: float").Input("columns: int32").Input("rows: int32").Output("values: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return OkStatus();
    });

class EntryValues : public OpKernel {
 public:
  explicit EntryValues(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    const Tensor& by_book = c->input(0);
    auto columns = c->input(1).flat<int32>();
    auto rows = c->input(2).flat<int32>();
    const int64_t batch = by_book.dim_size(1);
    OP_REQUIRES(c, all_below(columns, by_book.dim_size(0)) && all_below(rows, batch),
                errors::InvalidArgument("an entry outside the reconstruction"));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(c, c->allocate_output(0, TensorShape({columns.size()}), &out));
    auto values = out->flat<float>();
    const float* v = by_book.flat<float>().data();
    for (int64_t j = 0; j < columns.size(); ++j) values(j) = v[int64_t(columns(j)) * batch + rows(j)];
  }
};
REGISTER_KERNEL_BUILDER(Name("RbmEntryValues").Device(DEVICE_CPU), EntryValues);

// The weights' gradient of a read/unread batch, ((v0ᵀh0 - model) / size) - decay · weights,
// in one pass over the weights' size, where TensorFlow made four: a sparse segment sum
// (writing a mostly-zero result), a difference, a quotient and the decay. v0ᵀh0's rows are
// the sums of each book's readers' hidden rows (entries in column order, books ascending),
// in the order of TensorFlow's sparse segment sum: a first group of n mod 8 rows (8 when
// that is 0, 9 when it is 1, the one row when n is 1) in turn, then groups of 8, each
// added in turn and then to the sum.
REGISTER_OP("RbmWeightGradient")
    .Input("model: float").Input("hidden: float").Input("readers: int32").Input("books: int32")
    .Input("size: float").Input("decay: float").Input("weights: float").Output("gradient: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      return OkStatus();
    });

class WeightGradient : public OpKernel {
 public:
  explicit WeightGradient(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    const Tensor& model = c->input(0);
    const float* hidden = c->input(1).flat<float>().data();
    auto readers = c->input(2).flat<int32>();
    auto books = c->input(3).flat<int32>();
    const float size = c->input(4).scalar<float>()(), decay = c->input(5).scalar<float>()();
    const float* w = c->input(6).flat<float>().data();
    const int64_t n_visible = model.dim_size(0), width = model.dim_size(1);
    OP_REQUIRES(c, all_below(readers, c->input(1).dim_size(0)) && all_below(books, n_visible),
                errors::InvalidArgument("an entry outside the batch or the books"));
    OP_REQUIRES(c, ascending(books), errors::InvalidArgument("entries not in book order"));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(c, c->allocate_output(0, model.shape(), &out));
    const float* m = model.flat<float>().data();
    float* gradient = out->flat<float>().data();
    std::vector<int64_t> first(n_visible + 1, 0);  // each book's first entry
    for (int64_t j = 0; j < books.size(); ++j) ++first[books(j) + 1];
    for (int64_t i = 0; i < n_visible; ++i) first[i + 1] += first[i];
    sharded(c, n_visible, width * 6, [&](int64_t lo, int64_t hi) {
      std::vector<float> data(width), group(width);
      for (int64_t i = lo; i < hi; ++i) {
        const int64_t start = first[i], n = first[i + 1] - start;
        auto row = [&](int64_t j) { return hidden + int64_t(readers(start + j)) * width; };
        float* __restrict d = data.data();
        if (n == 0) {
          std::memset(d, 0, sizeof(float) * width);
        } else {
          int64_t head = n & 7;
          if (n == 1) head = 1;
          else if (head == 0) head = 8;
          else if (head == 1) head = 9;
          std::memcpy(d, row(0), sizeof(float) * width);
          for (int64_t j = 1; j < head; ++j) add_row(d, row(j), width);
          for (int64_t q = head; q < n; q += 8) {
            float* __restrict g = group.data();
            std::memcpy(g, row(q), sizeof(float) * width);
            for (int64_t j = q + 1; j < q + 8; ++j) add_row(g, row(j), width);
            add_row(d, g, width);
          }
        }
        const float* __restrict mi = m + i * width;
        const float* __restrict wi = w + i * width;
        float* __restrict gi = gradient + i * width;
        for (int64_t k = 0; k < width; ++k) {
          float t = (d[k] - mi[k]) / size;
          if (decay != 0.0f) t = t - wi[k] * decay;
          gi[k] = t;
        }
      }
    });
  }
};
REGISTER_KERNEL_BUILDER(Name("RbmWeightGradient").Device(DEVICE_CPU), WeightGradient);

// p(v|h) book-major from the product W h (n_visible, batch) and the visible biases, in one
// pass: the means, their row sums and each row's sum of squares (the visible statistics
// and the error's Σ v1²). Not the same bits as TensorFlow's ops (another sigmoid, other sums).
REGISTER_OP("RbmVisibleMeans")
    .Input("product: float").Input("bias: float")
    .Output("means: float").Output("row_sums: float").Output("row_squares: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(0));
      c->set_output(1, c->Vector(c->Dim(c->input(0), 0)));
      c->set_output(2, c->Vector(c->Dim(c->input(0), 0)));
      return OkStatus();
    });

class VisibleMeans : public OpKernel {
 public:
  explicit VisibleMeans(OpKernelConstruction* c) : OpKernel(c) {}
  void Compute(OpKernelContext* c) override {
    const Tensor& product = c->input(0);
    auto bias = c->input(1).flat<float>();
    const int64_t n_visible = product.dim_size(0), batch = product.dim_size(1);
    OP_REQUIRES(c, bias.size() == n_visible, errors::InvalidArgument("one bias per book"));
    Tensor *means = nullptr, *sums = nullptr, *squares = nullptr;
    OP_REQUIRES_OK(c, c->allocate_output(0, product.shape(), &means));
    OP_REQUIRES_OK(c, c->allocate_output(1, TensorShape({n_visible}), &sums));
    OP_REQUIRES_OK(c, c->allocate_output(2, TensorShape({n_visible}), &squares));
    const float* in = product.flat<float>().data();
    float* out = means->flat<float>().data();
    float* s = sums->flat<float>().data();
    float* q = squares->flat<float>().data();
    sharded(c, n_visible, batch * 20, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        Eigen::Map<const Eigen::ArrayXf> x(in + i * batch, batch);
        Eigen::Map<Eigen::ArrayXf> y(out + i * batch, batch);
        y = (x + bias(i)).logistic();
        s[i] = y.sum();
        q[i] = y.square().sum();
      }
    });
  }
};
REGISTER_KERNEL_BUILDER(Name("RbmVisibleMeans").Device(DEVICE_CPU), VisibleMeans);

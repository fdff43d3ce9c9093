// The bare CD-1 step as one kernel of our own: a prototype, built, checked and timed by
// bench/fused_step.py, to measure how much of the GEMM peak the bare step of
// bench/bare_cd1.py reaches when its three products, their sigmoids and biases and the
// update take two passes over the weights (the trainer's kernel's ``Passes``,
// bookrbm/native/cd1.h), none of it through TensorFlow's ops. The op keeps its own copy of
// the parameters (the first call's inputs), updated in place, so that a timed step does
// nothing but the step. The trainer's whole step is bookrbm/native/cd1_step.cc.
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/platform/mutex.h"

#include "cd1.h"

using namespace tensorflow;
using namespace cd1;
using shape_inference::InferenceContext;

namespace {

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

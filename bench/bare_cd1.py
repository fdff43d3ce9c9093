"""The least a CD-1 step does at the trainer's shapes, kept only as the benchmark's ceiling.

The issue counts three dense products of batch × n_visible × n_hidden a batch. This step
does those three, with the two sigmoids and biases around them, the hidden samples and a
plain update of the weights and biases, and nothing else: no positive phase (in the trainer
it comes from the sparse batch, outside the count; here its hidden probabilities are fed),
momentum, dropout, weight decay, error, short lists or series units. So its share of the
GEMM peak is what TensorFlow reaches on this machine at these shapes: about the most the
trainer's step could reach. Batch-major, where TensorFlow fuses each product with its bias and
sigmoid (faster here than the trainer's book-major form). Never use it to train.
"""
# before TensorFlow itself: the same set-up as our trainer (oneDNN, quiet start, graph mode)
import bookrbm.graph  # noqa: F401, I001

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1


def starting_point(n_visible, n_hidden, batch_size, seed):
    """(weights, hidden probabilities) a bare step starts from: the weights (n_visible,
    n_hidden) and the fed h0 (batch_size, n_hidden), drawn from ``seed`` (bench/fused_step.py's
    kernel starts from the same)."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 0.01, (n_visible, n_hidden)).astype(np.float32)
    return weights, rng.random((batch_size, n_hidden), dtype=np.float32)


class BareCD1:
    """Weights (n_visible, n_hidden) trained by ``step()``, one batch of ``batch_size``."""

    def __init__(self, n_visible, n_hidden, batch_size, learning_rate=0.1, seed=0):
        start, h0 = starting_point(n_visible, n_hidden, batch_size, seed)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)
            weights = tf1.Variable(start)
            visible_bias = tf1.Variable(np.zeros(n_visible, np.float32))
            hidden_bias = tf1.Variable(np.zeros(n_hidden, np.float32))
            self.params = [weights, visible_bias, hidden_bias]
            self.h0_mean = h0_mean = tf1.placeholder(tf.float32, [batch_size, n_hidden])
            h0_sample = tf.cast(tf.random.uniform([batch_size, n_hidden]) < h0_mean, tf.float32)
            v1_mean = tf.sigmoid(tf.nn.bias_add(tf.matmul(h0_sample, weights, transpose_b=True), visible_bias))
            h1_mean = tf.sigmoid(tf.nn.bias_add(tf.matmul(v1_mean, weights), hidden_bias))
            rate = learning_rate / batch_size
            # the model's statistics only: the data's come from the sparse batch, outside the count
            self.update = tf.group(
                weights.assign_sub(rate * tf.matmul(v1_mean, h1_mean, transpose_a=True)),
                visible_bias.assign_sub(rate * tf.reduce_sum(v1_mean, axis=0)),
                hidden_bias.assign_sub(rate * tf.reduce_sum(h1_mean, axis=0)),
            )
            init = tf1.global_variables_initializer()
        self.session = tf1.Session(graph=self.graph)
        self.session.run(init)
        self.feed = {h0_mean: h0}

    def step(self):
        self.session.run(self.update, self.feed)

    def close(self):
        self.session.close()

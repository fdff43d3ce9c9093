"""The RBM as a TensorFlow 1.x-style graph, run in a session through ``tf.compat.v1``.

The weights and biases live in the graph as Variables; a batch of visible vectors is the
only thing fed per step, and one ``sess.run`` performs a whole CD-1 update.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the CLI

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()


class RBMGraph:
    """CD-1 training graph with binary, sampled hidden units.

    The Gibbs step is v0 → h0 ~ p(h|v0) (binary samples) → v1 = p(v|h0) → p(h|v1).
    The reconstruction v1 uses probabilities, not samples: the visible values are ratings
    scaled to [0, 1], not binary states, so a binary sample of them would only add noise to
    the negative statistics (Hinton, "A Practical Guide to Training RBMs", 3.2). The
    positive and negative statistics use hidden probabilities, and only the hidden states
    that drive the reconstruction are sampled, which is the same guide's advice (3.1-3.3)
    and what keeps the hidden units an information bottleneck.

    Shapes: visible (batch, n_visible); weights (n_visible, n_hidden).
    """

    def __init__(self, weights, visible_bias, hidden_bias, learning_rate, seed=0):
        n_visible, n_hidden = weights.shape
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)
            self.visible = tf1.placeholder(tf.float32, [None, n_visible], name="visible")
            self.weights = tf1.Variable(np.asarray(weights, np.float32), name="weights")
            self.visible_bias = tf1.Variable(np.asarray(visible_bias, np.float32), name="visible_bias")
            self.hidden_bias = tf1.Variable(np.asarray(hidden_bias, np.float32), name="hidden_bias")
            batch = tf.shape(self.visible)[0]
            # Fed only by tests, to compare one step with a NumPy reference on fixed draws.
            self.hidden_noise = tf1.placeholder_with_default(
                tf.random.uniform([batch, n_hidden], seed=seed), [None, n_hidden], name="hidden_noise"
            )
            v0 = self.visible
            h0_mean = self._mean_hiddens(v0)
            h0_sample = tf.cast(self.hidden_noise < h0_mean, tf.float32)
            v1 = self._mean_visibles(h0_sample)
            h1_mean = self._mean_hiddens(v1)

            size = tf.cast(batch, tf.float32)
            positive = tf.matmul(v0, h0_mean, transpose_a=True)
            negative = tf.matmul(v1, h1_mean, transpose_a=True)
            weights_step = (positive - negative) / size
            visible_step = tf.reduce_mean(v0 - v1, axis=0)
            hidden_step = tf.reduce_mean(h0_mean - h1_mean, axis=0)
            self.error = tf.reduce_mean(tf.square(v0 - v1), name="reconstruction_error")
            # Every read of the variables above must happen before any of them is updated.
            with tf.control_dependencies([weights_step, visible_step, hidden_step, self.error]):
                self.train_step = tf.group(
                    self.weights.assign_add(learning_rate * weights_step),
                    self.visible_bias.assign_add(learning_rate * visible_step),
                    self.hidden_bias.assign_add(learning_rate * hidden_step),
                    name="cd1_update",
                )
            self.scores = self._mean_visibles(h0_mean)
            self.init = tf1.global_variables_initializer()
        self.session = tf1.Session(graph=self.graph)
        self.session.run(self.init)

    def _mean_hiddens(self, v):
        return tf.sigmoid(tf.matmul(v, self.weights) + self.hidden_bias)

    def _mean_visibles(self, h):
        return tf.sigmoid(tf.matmul(h, self.weights, transpose_b=True) + self.visible_bias)

    def train_batch(self, batch, hidden_noise=None):
        """One CD-1 update on a dense (batch, n_visible) array; returns its reconstruction error."""
        feed = {self.visible: batch}
        if hidden_noise is not None:
            feed[self.hidden_noise] = hidden_noise
        _, error = self.session.run([self.train_step, self.error], feed)
        return float(error)

    def batch_error(self, batch):
        """Reconstruction error of a batch, with no update."""
        return float(self.session.run(self.error, {self.visible: batch}))

    def reconstruct(self, batch):
        """Mean-field reconstruction p(v | p(h|v)), (batch, n_visible)."""
        return self.session.run(self.scores, {self.visible: batch})

    def params(self):
        """Current (weights, visible_bias, hidden_bias) as NumPy arrays."""
        return self.session.run([self.weights, self.visible_bias, self.hidden_bias])

    def close(self):
        self.session.close()

"""The RBM as a TensorFlow 1.x-style graph, run in a session through ``tf.compat.v1``.

The weights and biases live in the graph as Variables; a batch of visible vectors is the
only thing fed per step, and one ``sess.run`` performs a whole CD-k update.
"""
import contextlib
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the CLI
# oneDNN's kernels: on our 2-core machines a CD step runs 1.25× (H=64) to 1.6× (H=1024)
# faster than with the default Eigen ones
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


@contextlib.contextmanager
def _quiet_native_stderr():
    """TensorFlow's native start-up notes ("oneDNN custom operations are on") go straight to
    file descriptor 2 before any log level applies; hide them, and only them."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


import numpy as np  # noqa: E402

with _quiet_native_stderr():
    import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1
tf1.disable_eager_execution()


class RBMGraph:
    """Contrastive-divergence training graph with binary, sampled hidden units.

    One Gibbs step is h ~ p(h|v) (binary samples) → v' = p(v|h) → p(h|v'); CD-k chains k
    of them from the data. By default the reconstruction v' uses probabilities, not
    samples: the visible values are ratings scaled to [0, 1] (or read/unread), and a binary
    sample of them only adds noise to the negative statistics (Hinton, "A Practical Guide
    to Training RBMs", 3.2). ``sample_visible=True`` samples them instead, as the original
    write-up did. The positive and negative statistics use hidden probabilities; only the
    hidden states that drive a reconstruction are sampled, the same guide's advice (3.1-3.3),
    which keeps the hidden layer an information bottleneck.

    Updates: velocity = momentum · velocity + learning_rate · (gradient - weight_decay · W),
    then parameters += velocity (weight decay applies to the weights only).

    Shapes: visible (batch, n_visible); weights (n_visible, n_hidden).
    """

    def __init__(
        self,
        weights,
        visible_bias,
        hidden_bias,
        learning_rate,
        seed=0,
        momentum=0.0,
        weight_decay=0.0,
        cd_steps=1,
        sample_visible=False,
        hidden_keep=1.0,
    ):
        n_visible, n_hidden = weights.shape
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)
            self.visible = tf1.placeholder(tf.float32, [None, n_visible], name="visible")
            self.weights = tf1.Variable(np.asarray(weights, np.float32), name="weights")
            self.visible_bias = tf1.Variable(np.asarray(visible_bias, np.float32), name="visible_bias")
            self.hidden_bias = tf1.Variable(np.asarray(hidden_bias, np.float32), name="hidden_bias")
            params = [self.weights, self.visible_bias, self.hidden_bias]
            batch = tf.shape(self.visible)[0]
            # Fed only by tests, to compare one step with a NumPy reference on fixed draws.
            self.hidden_noise = tf1.placeholder_with_default(
                tf.random.uniform([batch, n_hidden], seed=seed), [None, n_hidden], name="hidden_noise"
            )
            v0 = self.visible
            h0_mean = self._mean_hiddens(v0)
            if hidden_keep < 1.0:
                # dropout RBM (Srivastava et al. 2014): each example trains a random sub-RBM
                keep = tf.cast(tf.random.uniform([batch, n_hidden], seed=seed + 7) < hidden_keep, tf.float32)
                h0_mean = h0_mean * keep
            h_mean, noise = h0_mean, self.hidden_noise
            for step in range(cd_steps):
                h_sample = tf.cast(noise < h_mean, tf.float32)
                v_model = self._mean_visibles(h_sample)
                if step == 0:
                    v1 = v_model  # the error is that of the first reconstruction, whatever k is
                if sample_visible:
                    v_model = tf.cast(tf.random.uniform(tf.shape(v_model), seed=seed + 1 + step) < v_model, tf.float32)
                h_mean = self._mean_hiddens(v_model)
                if hidden_keep < 1.0:
                    h_mean = h_mean * keep
                noise = tf.random.uniform([batch, n_hidden], seed=seed + 1000 + step)

            size = tf.cast(batch, tf.float32)
            gradients = [
                (tf.matmul(v0, h0_mean, transpose_a=True) - tf.matmul(v_model, h_mean, transpose_a=True)) / size
                - weight_decay * self.weights,
                tf.reduce_mean(v0 - v_model, axis=0),
                tf.reduce_mean(h0_mean - h_mean, axis=0),
            ]
            self.error = tf.reduce_mean(tf.square(v0 - v1), name="reconstruction_error")
            velocities = [
                tf1.Variable(tf.zeros(param.shape), name=param.op.name + "_velocity") if momentum else None
                for param in params
            ]
            updates = []
            # Every read of the variables above must happen before any of them is updated.
            with tf.control_dependencies(gradients + [self.error]):
                for param, gradient, velocity in zip(params, gradients, velocities):
                    if velocity is None:
                        updates.append(param.assign_add(learning_rate * gradient))
                    else:
                        step = velocity.assign(momentum * velocity + learning_rate * gradient)
                        updates.append(param.assign_add(step))
            self.train_step = tf.group(*updates, name="cd_update")
            self.scores = self._mean_visibles(hidden_keep * self._mean_hiddens(v0))
            self.init = tf1.global_variables_initializer()
            # loading other weights (the averaged ones, to measure them) without a new graph
            self.loaded = [tf1.placeholder(tf.float32, param.shape) for param in params]
            self.load = tf.group(*[param.assign(value) for param, value in zip(params, self.loaded)])
        self.session = tf1.Session(graph=self.graph)
        self.session.run(self.init)

    def _mean_hiddens(self, v):
        return tf.sigmoid(tf.matmul(v, self.weights) + self.hidden_bias)

    def _mean_visibles(self, h):
        return tf.sigmoid(tf.matmul(h, self.weights, transpose_b=True) + self.visible_bias)

    def train_batch(self, batch, hidden_noise=None):
        """One CD-k update on a dense (batch, n_visible) array; returns its reconstruction error."""
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

    def set_params(self, weights, visible_bias, hidden_bias):
        """Make these the graph's parameters (the velocities stay as they are)."""
        self.session.run(self.load, dict(zip(self.loaded, (weights, visible_bias, hidden_bias))))

    def params(self):
        """Current (weights, visible_bias, hidden_bias) as NumPy arrays."""
        return self.session.run([self.weights, self.visible_bias, self.hidden_bias])

    def close(self):
        self.session.close()

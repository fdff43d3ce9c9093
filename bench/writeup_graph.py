"""The 2018 write-up's training step, kept only as the benchmark's reference.

Weights and biases are placeholders, fed from NumPy at every ``sess.run``; each batch runs
the graph three times (once per updated parameter), each run drawing its own samples; the
reconstruction is sampled. This is what our trainer (bookrbm/graph.py) replaced: never use
it to train.
"""
# before TensorFlow itself: the same set-up as our trainer (oneDNN, quiet start, graph mode)
import bookrbm.graph  # noqa: F401, I001

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf1 = tf.compat.v1


class WriteupRBM:
    def __init__(self, n_visible, n_hidden, learning_rate=1.0, seed=0):
        rng = np.random.default_rng(seed)
        self.current = [
            rng.normal(0, 0.01, (n_visible, n_hidden)).astype(np.float32),
            np.zeros(n_visible, np.float32),
            np.zeros(n_hidden, np.float32),
        ]
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)
            self.v0 = tf1.placeholder(tf.float32, [None, n_visible])
            self.W = tf1.placeholder(tf.float32, [n_visible, n_hidden])
            self.vb = tf1.placeholder(tf.float32, [n_visible])
            self.hb = tf1.placeholder(tf.float32, [n_hidden])
            _h0 = tf.nn.sigmoid(tf.matmul(self.v0, self.W) + self.hb)
            h0 = tf.nn.relu(tf.sign(_h0 - tf.random.uniform(tf.shape(_h0))))
            _v1 = tf.nn.sigmoid(tf.matmul(h0, tf.transpose(self.W)) + self.vb)
            v1 = tf.nn.relu(tf.sign(_v1 - tf.random.uniform(tf.shape(_v1))))
            h1 = tf.nn.sigmoid(tf.matmul(v1, self.W) + self.hb)
            w_pos_grad = tf.matmul(tf.transpose(self.v0), h0)
            w_neg_grad = tf.matmul(tf.transpose(v1), h1)
            cd = (w_pos_grad - w_neg_grad) / tf.cast(tf.shape(self.v0)[0], tf.float32)
            self.update_w = self.W + learning_rate * cd
            self.update_vb = self.vb + learning_rate * tf.reduce_mean(self.v0 - v1, 0)
            self.update_hb = self.hb + learning_rate * tf.reduce_mean(h0 - h1, 0)
        self.session = tf1.Session(graph=self.graph)

    def train_batch(self, batch):
        feed = {self.v0: batch, self.W: self.current[0], self.vb: self.current[1], self.hb: self.current[2]}
        new_w = self.session.run(self.update_w, feed)
        new_vb = self.session.run(self.update_vb, feed)
        new_hb = self.session.run(self.update_hb, feed)
        self.current = [new_w, new_vb, new_hb]

    def close(self):
        self.session.close()

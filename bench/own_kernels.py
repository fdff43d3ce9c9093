#!/usr/bin/env python3
"""Kernels of our own for the CD step (bench/own_kernels.cc): build them, check each against
the TensorFlow ops it replaces, bit for bit, and time both, on batches of the bundled sample.

A prototype, measured and not used by the trainer (bench/README.md, "Kernels of our own,
built and measured"). Needs a C++ compiler (g++, or $CXX) and TensorFlow's headers, which
its wheel holds. Each kernel runs alone in a session run, with the run's own overhead and
its feed (about 0.2 ms), so the times compare the two sides, not what a step saves.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bookrbm import interactions, paths  # noqa: E402
from bookrbm.errors import InputError, check_range, cli, option, seed_option  # noqa: E402

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "own_kernels.cc")
# the kernels that keep TensorFlow's bits; the visible means do not (another sigmoid, other sums)
SAME_BITS = ("hidden_sums", "transposed_sums", "entry_values", "weight_gradient")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units (default: %(default)s)")
    parser.add_argument("--batches", type=int, default=20, help="batches of readers to check and time (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=100, help="readers a batch (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the batches (default: %(default)s)")
    parser.add_argument("--seed", type=seed_option, default=0, help="the random weights' seed (default: %(default)s)")
    return parser.parse_args(argv)


def build(folder, compiler=None, source=SOURCE, contract=False):
    """Compile ``source`` (own_kernels.cc) into ``folder`` (``bookrbm.kernel.compile_library``;
    ``contract``: whether multiply-adds may be fused, which kernels that keep TensorFlow's
    bits must not); the library's path."""
    from bookrbm import kernel

    library = os.path.join(folder, os.path.splitext(os.path.basename(source))[0] + ".so")
    return kernel.compile_library(source, library, compiler, contract=contract)


def load(library):
    from bookrbm.graph import tf

    return tf.load_op_library(library)


def arrays(batch):
    """What the kernels and their references are fed for ``batch`` (CSR, readers × books):
    its entries in row and in column order (as the trainer's graph takes them), and its size."""
    from bookrbm.graph import checked_batch, entries

    batch = checked_batch(batch, batch.shape[1])
    return {**entries(batch), "batch_size": np.int32(batch.shape[0])}


class Pairs:
    """A graph of each kernel beside the TensorFlow ops it replaces (as the trainer's graph
    has them): ``ours[name]`` and ``theirs[name]``, each a list of outputs. As in the
    trainer, only a batch's entries are fed (``arrays``); the weights, hidden values, model
    statistics, product and biases of the step's shapes are random, drawn once from
    ``rng``, and held in the graph."""

    def __init__(self, kernels, n_books, n_hidden, batch_size, rng, decay=0.0004):
        from bookrbm.graph import tf, tf1

        self.graph = tf.Graph()
        with self.graph.as_default():
            f = {name: tf1.placeholder(tf.int32, [None], name=name) for name in ("rows", "columns", "readers", "books")}
            f.update({name: tf1.placeholder(tf.float32, [None], name=name) for name in ("values", "values_by_column")})
            f["batch_size"] = size_fed = tf1.placeholder(tf.int32, [], name="batch_size")
            self.feeds = f
            weights = tf.constant(rng.normal(0, 0.1, (n_books, n_hidden)).astype(np.float32))
            hidden = tf.constant(rng.random((batch_size, n_hidden), dtype=np.float32))[:size_fed]
            model = tf.constant(rng.normal(0, 1, (n_books, n_hidden)).astype(np.float32))
            product = tf.constant(rng.normal(0, 2, (n_books, batch_size)).astype(np.float32))[:, :size_fed]
            bias = tf.constant(rng.normal(0, 1, n_books).astype(np.float32))
            size = tf.cast(size_fed, tf.float32)
            summed = tf.math.segment_sum(tf.gather(weights, f["columns"]) * f["values"][:, None], f["rows"])
            csr = tf.raw_ops.SparseTensorToCSRSparseMatrix(
                indices=tf.stack([tf.cast(f["books"], tf.int64), tf.cast(f["readers"], tf.int64)], axis=1),
                values=f["values_by_column"],
                dense_shape=tf.stack([tf.constant(n_books, tf.int64), tf.cast(size_fed, tf.int64)]),
            )
            data = tf.sparse.segment_sum(hidden, f["readers"], f["books"], num_segments=n_books)
            means = tf.sigmoid(product + bias[:, None])
            self.theirs = {
                "hidden_sums": [tf.pad(summed, [[0, size_fed - tf.shape(summed)[0]], [0, 0]])],
                "transposed_sums": [tf.raw_ops.SparseMatrixMatMul(a=csr, b=hidden)],
                "entry_values": [tf.gather_nd(product, tf.stack([f["columns"], f["rows"]], axis=1))],
                "weight_gradient": [(data - model) / size - weights * decay],
                "visible_means": [means, tf.reduce_sum(means, axis=1), 2.0 * tf.nn.l2_loss(means)],
            }
            visible_means, row_sums, row_squares = kernels.rbm_visible_means(product, bias)
            self.ours = {
                "hidden_sums": [kernels.rbm_hidden_sums(weights, f["rows"], f["columns"], f["values"], size_fed)],
                "transposed_sums": [
                    kernels.rbm_transposed_sums(hidden, f["readers"], f["books"], f["values_by_column"], n_books)
                ],
                "entry_values": [kernels.rbm_entry_values(product, f["columns"], f["rows"])],
                "weight_gradient": [kernels.rbm_weight_gradient(
                    model, hidden, f["readers"], f["books"], size, tf.constant(decay, tf.float32), weights
                )],
                "visible_means": [visible_means, row_sums, tf.reduce_sum(row_squares)],
            }
            # what a timed run computes: each side's outputs as targets, none fetched (a group
            # of them would not do: TensorFlow's optimizer drops ops that only it depends on)
            self.targets = {
                (side, name): [output.op for output in outputs]
                for side, by_name in (("ours", self.ours), ("theirs", self.theirs)) for name, outputs in by_name.items()
            }
        self.session = tf1.Session(graph=self.graph)

    def feed(self, given):
        return {self.feeds[name]: value for name, value in given.items()}

    def run(self, outputs, given):
        return self.session.run(outputs, self.feed(given))

    def close(self):
        self.session.close()


def differences(pairs, batches):
    """Each kernel's largest difference from its TensorFlow ops over ``batches`` (``arrays``),
    relative to the largest of their values: 0.0 where the two agree bit for bit
    (``np.array_equal``)."""
    worst = {name: 0.0 for name in pairs.ours}
    for given in batches:
        ours, theirs = pairs.run([pairs.ours, pairs.theirs], given)
        for name in worst:
            for mine, reference in zip(ours[name], theirs[name]):
                if not np.array_equal(mine, reference):
                    gap = float(np.max(np.abs(mine - reference)) / max(np.max(np.abs(reference)), 1e-30))
                    worst[name] = max(worst[name], gap, float(np.finfo(np.float32).tiny))
    return worst


def timings(pairs, batches, repeats):
    """Median ms a session run of each kernel and of its TensorFlow ops, over ``repeats`` passes."""
    feeds = [pairs.feed(given) for given in batches]
    times = {(side, name): [] for side in ("ours", "theirs") for name in pairs.ours}
    for _ in range(repeats):
        for (side, name), samples in times.items():
            target = pairs.targets[side, name]
            start = time.perf_counter()
            for feed in feeds:
                pairs.session.run(target, feed)
            samples.append((time.perf_counter() - start) / len(feeds) * 1e3)
    return {key: statistics.median(samples) for key, samples in times.items()}


def sample_batches(data, n_batches, batch_size):
    """The first readers' rating vectors (rating / 5), ``n_batches`` batches of them, as
    ``arrays``; and the same readers read/unread, the trainer's default input."""
    from bookrbm.model import to_visible

    readers = data.ratings[: n_batches * batch_size]
    if readers.shape[0] == 0:
        raise InputError("no readers in the processed data")
    batches = []
    for kind in ("rating", "binary"):
        visible = to_visible(readers, kind)
        batches += [arrays(visible[start : start + batch_size]) for start in range(0, visible.shape[0], batch_size)]
    return batches


def run(args, library=None, log=print):
    for name in ("hidden", "batches", "batch_size", "repeats"):
        check_range(option(name), getattr(args, name), at_least=1)
    data = interactions.load(args.data)
    if library is None:
        with tempfile.TemporaryDirectory() as folder:  # loaded, the library needs no file
            kernels = load(build(folder))
    else:
        kernels = load(library)
    batches = sample_batches(data, args.batches, args.batch_size)
    pairs = Pairs(kernels, data.n_books, args.hidden, args.batch_size, np.random.default_rng(args.seed))
    try:
        worst, times = differences(pairs, batches), timings(pairs, batches, args.repeats)
    finally:
        pairs.close()
    log(f"{len(batches)} batches of the sample ({args.batch_size} readers, rating / 5 and read/unread), H={args.hidden}")
    log(f"{'kernel':<16} {'against TensorFlow':<26} {'ours ms':>8} {'theirs ms':>10}")
    for name, difference in worst.items():
        agreement = "the same bits" if difference == 0 else f"{difference:.1e} apart, relatively"
        log(f"{name:<16} {agreement:<26} {times['ours', name]:8.3f} {times['theirs', name]:10.3f}")
    return worst, times


@cli
def main(argv=None):
    run(parse_args(argv))


if __name__ == "__main__":
    main()

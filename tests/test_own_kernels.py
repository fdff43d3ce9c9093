"""The prototype kernels of our own (bench/own_kernels.cc, not used by the trainer): they
build, and the ones that claim it give the bits of the TensorFlow ops they replace."""
import os
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

from bookrbm import kernel, paths
from bookrbm.errors import InputError

sys.path.insert(0, os.path.join(paths.ROOT, "bench"))
import own_kernels  # noqa: E402

pytestmark = pytest.mark.skipif(not kernel.has_compiler(), reason="no C++ compiler")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return own_kernels.build(str(tmp_path_factory.mktemp("kernels")))


@pytest.fixture(scope="module")
def kernels(library):
    return own_kernels.load(library)


def every_length(n_books, rng):
    """100 readers with 1 to 100 ratings each, among 200 books (so each book has a few to
    dozens of readers): segments of every length to 100, over and under 16, every remainder
    mod 8, in both orders."""
    rows = np.repeat(np.arange(100), np.arange(1, 101))
    columns = np.concatenate([rng.choice(200, size=count, replace=False) for count in range(1, 101)])
    values = rng.integers(1, 6, size=len(rows)) / 5
    return sp.csr_matrix((values.astype(np.float32), (rows, columns)), shape=(100, n_books))


def test_kernels_give_tensorflows_bits(kernels, sample):
    rng = np.random.default_rng(0)
    made_up = every_length(sample.n_books, rng)
    batches = own_kernels.sample_batches(sample, 3, 100) + [
        own_kernels.arrays(made_up), own_kernels.arrays((made_up > 0).astype(np.float32))
    ]
    pairs = own_kernels.Pairs(kernels, sample.n_books, 24, 100, rng)
    try:
        worst = own_kernels.differences(pairs, batches)
    finally:
        pairs.close()
    assert {name: worst[name] for name in own_kernels.SAME_BITS} == dict.fromkeys(own_kernels.SAME_BITS, 0.0)
    # the dense side's kernel has its own sigmoid and sums: close (relatively), not the same
    assert worst["visible_means"] < 1e-5


def test_the_same_order_matters(kernels, sample):
    """The check can fail: summed in plain turn, the weights' rows of long segments are
    not TensorFlow's sorted segment sum (which the hidden sums' kernel reproduces)."""
    made_up = every_length(sample.n_books, np.random.default_rng(1))
    weights = np.random.default_rng(2).normal(0, 0.1, (sample.n_books, 24)).astype(np.float32)
    in_turn = np.zeros((100, 24), np.float32)
    order = made_up.tocoo()  # the CSR matrix's own order, as the kernel and TensorFlow take it
    for row, column, value in zip(order.row, order.col, order.data):
        in_turn[row] += weights[column] * value
    from bookrbm.graph import tf, tf1

    given = own_kernels.arrays(made_up)
    with tf.Graph().as_default(), tf1.Session() as session:
        ours = session.run(kernels.rbm_hidden_sums(weights, given["rows"], given["columns"], given["values"], 100))
        theirs = session.run(tf.math.segment_sum(tf.gather(weights, given["columns"]) * given["values"][:, None],
                                                 given["rows"]))
    assert np.array_equal(ours, theirs)
    assert not np.array_equal(in_turn, theirs)
    assert np.allclose(in_turn, theirs, atol=1e-5)


def test_an_entry_out_of_range_is_an_error_not_a_crash(kernels):
    from bookrbm.graph import tf, tf1

    weights = np.zeros((10, 4), np.float32)
    with tf.Graph().as_default(), tf1.Session() as session:
        sums = kernels.rbm_hidden_sums(weights, np.array([0], np.int32), np.array([10], np.int32), np.ones(1, np.float32), 1)
        with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
            session.run(sums)


def test_entries_out_of_book_order_are_an_error_not_wrong_sums(kernels):
    """The weights' gradient reads each book's entries as one run; given them out of order
    it would add one book's readers into another's row."""
    from bookrbm.graph import tf, tf1

    hidden = np.arange(12, dtype=np.float32).reshape(3, 4)
    model = np.zeros((5, 4), np.float32)
    readers = np.array([0, 1, 2], np.int32)

    def gradient(books):
        return kernels.rbm_weight_gradient(model, hidden, readers, np.array(books, np.int32), 1.0,
                                           tf.constant(0.0, tf.float32), model)

    with tf.Graph().as_default(), tf1.Session() as session:
        in_order = session.run(gradient([1, 1, 3]))
        assert np.array_equal(in_order[1], hidden[0] + hidden[1]) and np.array_equal(in_order[3], hidden[2])
        with pytest.raises(tf.errors.InvalidArgumentError, match="not in book order"):
            session.run(gradient([1, 3, 1]))


def test_a_missing_compiler_is_one_line(tmp_path):
    with pytest.raises(InputError, match="no-such-compiler: no such C\\+\\+ compiler"):
        own_kernels.build(str(tmp_path), compiler="no-such-compiler")


def test_the_bench_prints_its_table(library, sample_file):
    lines = []
    args = SimpleNamespace(data=str(sample_file), hidden=8, batches=1, batch_size=50, repeats=1, seed=0)
    worst, times = own_kernels.run(args, library=library, log=lines.append)
    assert lines[0].startswith("2 batches of the sample (50 readers")
    assert [line.split()[0] for line in lines[2:]] == list(worst) == [
        "hidden_sums", "transposed_sums", "entry_values", "weight_gradient", "visible_means"
    ]
    assert all(time > 0 for time in times.values())
    assert lines[2].split()[1:4] == ["the", "same", "bits"]

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from bookrbm import rbm, train
from bookrbm.graph import RBMGraph


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_cd1(v0, weights, visible_bias, hidden_bias, noise, learning_rate):
    """CD-1 written out in NumPy, as the graph's docstring describes it."""
    h0 = sigmoid(v0 @ weights + hidden_bias)
    h0_sample = (noise < h0).astype(float)
    v1 = sigmoid(h0_sample @ weights.T + visible_bias)
    h1 = sigmoid(v1 @ weights + hidden_bias)
    n = len(v0)
    return (
        weights + learning_rate * (v0.T @ h0 - v1.T @ h1) / n,
        visible_bias + learning_rate * (v0 - v1).mean(axis=0),
        hidden_bias + learning_rate * (h0 - h1).mean(axis=0),
        np.mean((v0 - v1) ** 2),
    )


def graph_of(model, **options):
    """A training graph holding a trained model's parameters, its series units included."""
    return RBMGraph(
        *model.params, series=model.series, series_weights=model.series_weights, series_bias=model.series_bias,
        hidden_keep=model.settings["hidden_keep"], series_keep=model.settings["series_keep"], **options,
    )


@pytest.fixture
def tiny():
    rng = np.random.default_rng(0)
    params = (rng.normal(0, 0.5, (6, 4)), rng.normal(0, 0.1, 6), rng.normal(0, 0.1, 4))
    v0 = np.where(rng.random((3, 6)) < 0.5, rng.integers(1, 6, (3, 6)) / 5, 0.0)
    noise = rng.random((3, 4))
    return params, v0, noise


def test_one_cd1_step_equals_numpy_reference(tiny):
    params, v0, noise = tiny
    net = RBMGraph(*params, learning_rate=0.3, seed=0)
    try:
        error = net.train_batch(v0.astype(np.float32), hidden_noise=noise.astype(np.float32))
        *expected, expected_error = reference_cd1(v0, *params, noise, 0.3)
        for got, want in zip(net.params(), expected):
            assert np.allclose(got, want, atol=1e-5)
        assert error == pytest.approx(expected_error, rel=1e-5)
        # the step really moved the weights, so the comparison above is not vacuous
        assert not np.allclose(net.params()[0], params[0], atol=1e-3)
    finally:
        net.close()


def test_one_cd1_step_on_binary_input_equals_numpy_reference(tiny):
    params, v0, noise = tiny
    read = (v0 > 0).astype(float)
    net = RBMGraph(*params, learning_rate=0.3, seed=0, binary_input=True)
    try:
        error = net.train_batch(sp.csr_matrix(read), hidden_noise=noise.astype(np.float32))
        *expected, expected_error = reference_cd1(read, *params, noise, 0.3)
        for got, want in zip(net.params(), expected):
            assert np.allclose(got, want, atol=1e-5)
        assert error == pytest.approx(expected_error, rel=1e-5)
        with pytest.raises(ValueError, match="values other than 1"):
            net.train_batch(v0)
    finally:
        net.close()


def test_empty_rows_and_columns_in_a_batch(tiny):
    """A reader with no stored entry at the end of a batch, and unread books, still fit the shapes."""
    params, v0, noise = tiny
    v0 = v0.copy()
    v0[-1] = 0.0
    for binary in (False, True):
        batch = (v0 > 0).astype(float) if binary else v0
        net = RBMGraph(*params, learning_rate=0.3, seed=0, binary_input=binary)
        try:
            net.train_batch(batch, hidden_noise=noise.astype(np.float32))
            *expected, _ = reference_cd1(batch, *params, noise, 0.3)
            for got, want in zip(net.params(), expected):
                assert np.allclose(got, want, atol=1e-5)
            assert np.allclose(net.reconstruct(batch), rbm.reconstruct(batch, *expected), atol=1e-5)
        finally:
            net.close()


def test_a_csr_batch_with_unsorted_and_repeated_entries_trains_as_its_dense_form(tiny):
    """Sparse input is taken as the matrix it stands for: a book stored twice for a reader
    is its sum, in any order, and the caller's matrix is left as it was."""
    params, _, noise = tiny
    # reader 0: book 5, then book 2 stored twice (0.2 + 0.4); reader 1 reads nothing
    batch = sp.csr_matrix(
        (np.array([0.6, 0.2, 0.4, 0.8], np.float32), np.array([5, 2, 2, 1]), np.array([0, 3, 3, 4])), shape=(3, 6)
    )
    assert not batch.has_canonical_format
    as_given = batch.indices.copy(), batch.data.copy()
    results = []
    for form in (batch, batch.toarray()):
        net = RBMGraph(*params, learning_rate=0.3, seed=0)
        try:
            error = net.train_batch(form, hidden_noise=noise.astype(np.float32))
            results.append((error, net.params()))
        finally:
            net.close()
    (sparse_error, sparse_params), (dense_error, dense_params) = results
    assert sparse_error == pytest.approx(dense_error, rel=1e-6)
    for got, want in zip(sparse_params, dense_params):
        assert np.allclose(got, want, atol=1e-6)
    *expected, expected_error = reference_cd1(batch.toarray(), *params, noise, 0.3)
    assert dense_error == pytest.approx(expected_error, rel=1e-5)
    assert np.array_equal(batch.indices, as_given[0]) and np.array_equal(batch.data, as_given[1])


def test_graph_reconstruction_equals_numpy_scores(tiny, quick_model, sample):
    params, v0, _ = tiny
    net = RBMGraph(*params, learning_rate=0.3)
    try:
        assert np.allclose(net.reconstruct(v0), rbm.reconstruct(v0, *params), atol=1e-6)
    finally:
        net.close()
    # and for the trained model on real users
    assert quick_model.series is not None  # the default has series units, so they are compared too
    net = graph_of(quick_model, learning_rate=0.3)
    try:
        users = sample.ratings[:20]
        graph_scores = net.reconstruct(quick_model.visible(users).toarray())
        # what recommend.py ranks by, less the share of the books a reader does not list
        # (Model.hidden_probabilities), which the training graph has no use for
        as_listed = dataclasses.replace(quick_model, visible_mean=None)
        assert np.allclose(graph_scores, as_listed.scores(users), atol=1e-5)
    finally:
        net.close()


def test_short_training_lowers_reconstruction_error(sample):
    batch = sample.ratings[sample.train_rows[:200]].toarray()
    rng = np.random.default_rng(0)
    net = RBMGraph(*train.initial_params(sample.n_books, 16, rng), learning_rate=0.6, seed=0)
    try:
        before = net.batch_error(batch)
        for step in range(10):
            net.train_batch(batch[(step % 2) * 100 : (step % 2 + 1) * 100])
        after = net.batch_error(batch)
    finally:
        net.close()
    assert after < before / 5


def test_same_seed_same_model(sample):
    def fit(seed):
        return train.train(sample, hidden=8, epochs=2, max_batches=3, seed=seed, progress=False, log=lambda m: None)

    first, second, other = fit(4), fit(4), fit(5)
    assert np.array_equal(first.weights, second.weights)
    assert np.array_equal(first.hidden_bias, second.hidden_bias)
    assert first.history == second.history
    assert not np.allclose(first.weights, other.weights)


def test_history_has_every_epoch(quick_model):
    (row,) = quick_model.history
    assert set(row) == set(train.HISTORY_COLUMNS)
    assert row["epoch"] == 1 and np.isfinite(row["valid_free_energy"])
    assert quick_model.settings["n_valid_users"] == 534


def test_momentum_and_weight_decay_match_numpy_over_two_steps(tiny):
    params, v0, noise = tiny
    momentum, decay, rate = 0.7, 0.01, 0.3
    net = RBMGraph(*params, learning_rate=rate, momentum=momentum, weight_decay=decay)
    try:
        current = [p.copy() for p in params]
        velocity = [np.zeros_like(p) for p in params]
        for _ in range(2):
            net.train_batch(v0.astype(np.float32), hidden_noise=noise.astype(np.float32))
            *stepped, _ = reference_cd1(v0, *current, noise, 1.0)  # learning rate 1: the raw gradient
            gradients = [new - old for new, old in zip(stepped, current)]
            gradients[0] = gradients[0] - decay * current[0]
            velocity = [momentum * vel + rate * grad for vel, grad in zip(velocity, gradients)]
            current = [p + vel for p, vel in zip(current, velocity)]
        for got, want in zip(net.params(), current):
            assert np.allclose(got, want, atol=1e-5)
    finally:
        net.close()


def test_cd_k_and_visible_sampling_train(sample):
    batch = sample.ratings[sample.train_rows[:100]].toarray()
    for options in ({"cd_steps": 3}, {"sample_visible": True}):
        net = RBMGraph(*train.initial_params(sample.n_books, 8, np.random.default_rng(0)), learning_rate=0.6, **options)
        try:
            before = net.batch_error(batch)
            for _ in range(10):
                net.train_batch(batch)
            assert net.batch_error(batch) < before / 2, options
        finally:
            net.close()


def test_dropout_rbm_reconstruction_matches_numpy(tiny):
    params, v0, _ = tiny
    net = RBMGraph(*params, learning_rate=0.3, hidden_keep=0.5)
    try:
        expected = rbm.reconstruct(v0, *params, hidden_keep=0.5)
        assert np.allclose(net.reconstruct(v0), expected, atol=1e-6)
        assert not np.allclose(expected, rbm.reconstruct(v0, *params), atol=1e-3)
        before = net.params()[0].copy()
        net.train_batch(v0.astype(np.float32))
        moved = np.abs(net.params()[0] - before).sum(axis=0)
        assert (moved > 0).any()
    finally:
        net.close()


def test_valid_error_is_measured_on_the_averaged_weights(sample):
    """With averaging, every per-epoch figure describes the weights that are kept."""
    def fit(average):
        return train.train(sample, hidden=8, epochs=2, max_batches=3, seed=2, average=average, eval_every=0,
                           patience=0, progress=False, log=lambda m: None)

    averaged, plain = fit(0.7), fit(0.0)
    # averaging changes only what is measured and kept, never the training path: epoch 1 is alike
    assert averaged.history[0] == plain.history[0]
    assert averaged.series is not None
    net = graph_of(averaged, learning_rate=0.1, seed=2)
    try:
        from bookrbm.model import to_visible

        valid = to_visible(sample.ratings[sample.valid_rows], averaged.settings["input"])
        errors = train.valid_errors(net, valid, averaged.settings["batch_size"])
    finally:
        net.close()
    assert averaged.history[-1]["valid_error"] == pytest.approx(np.mean(errors), rel=0.02)
    assert averaged.history[-1]["valid_error"] != plain.history[-1]["valid_error"]


def test_parameters_are_loaded_into_the_session_not_held_in_the_graph():
    # as constants in the graph, a model's weights were copied with it into the session
    rng = np.random.default_rng(2)
    weights = rng.normal(0, 0.1, (2000, 256)).astype(np.float32)  # 2 MB
    series = np.where(np.arange(2000) % 4 == 0, np.arange(2000) // 4 % 50, -1)
    series_weights, series_bias = rng.normal(0, 0.1, 2000), rng.normal(0, 0.1, 50)
    net = RBMGraph(weights, rng.normal(0, 0.1, 2000), rng.normal(0, 0.1, 256), learning_rate=0.1, momentum=0.5,
                   series=series, series_weights=series_weights, series_bias=series_bias)
    try:
        assert net.graph.as_graph_def().ByteSize() < weights.nbytes / 10
        loaded = net.params()
        assert np.array_equal(loaded[0], weights)
        assert np.array_equal(loaded[3], series_weights.astype(np.float32))
        assert np.array_equal(loaded[4], series_bias.astype(np.float32))
    finally:
        net.close()

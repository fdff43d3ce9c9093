"""The series units: found from titles, trained by the same CD step, scored and explained."""
import dataclasses
import functools
import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from bookrbm import explain, model, rbm, series, train
from bookrbm.errors import InputError
from bookrbm.graph import RBMGraph
from bookrbm.settings import PRESETS

from test_graph import sigmoid


def test_series_found_in_goodbooks_titles():
    titles = [
        "The Hunger Games (The Hunger Games, #1)",
        "Catching Fire (The Hunger Games, #2)",
        "Twilight (Twilight, #1)",  # alone in its series: no unit
        "To Kill a Mockingbird",
        "Mockingjay (the hunger games #3)",  # case and a missing comma
        "The Complete Collection (Twilight #1-4)",
        "A Feast for Crows (A Song of Ice and Fire, #4)",
        "A Dance with Dragons (A Song of Ice and Fire, #5)",
        "Notes (2015)",
    ]
    found = series.series_of(titles)
    assert found.tolist() == [0, 0, 1, -1, 0, 1, 2, 2, -1]
    assert series.count(found) == 3
    assert series.count(series.series_of(["Alone (One, #1)", "Plain"])) == 0


def test_the_sample_has_its_series(sample):
    found = series.series_of(sample.catalogue.edition_titles)
    potter = [i for i, title in enumerate(sample.catalogue.edition_titles) if "(Harry Potter, #" in title]
    assert len(potter) >= 7 and len(set(found[potter])) == 1 and found[potter[0]] >= 0
    # hundreds of series of two or more books, and most books in none
    assert 500 < series.count(found) < 2000 and (found < 0).mean() > 0.5


def small_model_params(seed=0):
    """6 books, 3 hidden units, books 0, 1, 4 in series 0 and books 2, 3 in series 1."""
    rng = np.random.default_rng(seed)
    book_series = np.array([0, 0, 1, 1, 0, -1])
    series_weights = np.where(book_series >= 0, rng.normal(1.0, 0.5, 6), 0.0)
    series_bias = rng.normal(-1.0, 0.3, 2)
    params = (rng.normal(0, 0.5, (6, 3)), rng.normal(0, 0.1, 6), rng.normal(0, 0.1, 3))
    return params, book_series, series_weights, series_bias


def reference_cd1_with_series(v0, params, book_series, series_weights, series_bias, noise, series_noise, rate, step, kept=1.0):
    """CD-1 with series units, in NumPy with a dense mask: each book reaches only its series' unit;
    ``kept`` (n_readers, n_series) is 0 where a reader trains without a unit (dropout)."""
    weights, visible_bias, hidden_bias = params
    mask = (book_series[:, None] == np.arange(len(series_bias))[None, :]).astype(float)
    s = mask * series_weights[:, None]
    h0, g0 = sigmoid(v0 @ weights + hidden_bias), kept * sigmoid(v0 @ s + series_bias)
    v1 = sigmoid((noise < h0) @ weights.T + visible_bias + (series_noise < g0) @ s.T)
    h1, g1 = sigmoid(v1 @ weights + hidden_bias), kept * sigmoid(v1 @ s + series_bias)
    n = len(v0)
    return (
        weights + rate * (v0.T @ h0 - v1.T @ h1) / n,
        visible_bias + rate * (v0 - v1).mean(axis=0),
        hidden_bias + rate * (h0 - h1).mean(axis=0),
        series_weights + rate * step * ((v0.T @ g0 - v1.T @ g1) * mask).sum(axis=1) / n,
        series_bias + rate * step * (g0 - g1).mean(axis=0),
    )


@pytest.mark.parametrize("binary", [False, True])
def test_one_cd1_step_with_series_units_equals_numpy_reference(binary):
    params, book_series, series_weights, series_bias = small_model_params()
    rng = np.random.default_rng(1)
    v0 = np.where(rng.random((4, 6)) < 0.5, rng.integers(1, 6, (4, 6)) / 5, 0.0)
    v0[-1] = 0.0  # a reader with no book at the end of the batch
    if binary:
        v0 = (v0 > 0).astype(float)
    noise, series_noise = rng.random((4, 3)), rng.random((4, 2))
    net = RBMGraph(
        *params, learning_rate=0.3, binary_input=binary, series=book_series, series_weights=series_weights,
        series_bias=series_bias, series_step=10.0,
    )
    try:
        net.train_batch(sp.csr_matrix(v0), hidden_noise=noise.astype(np.float32), series_noise=series_noise.astype(np.float32))
        expected = reference_cd1_with_series(v0, params, book_series, series_weights, series_bias, noise, series_noise, 0.3, 10.0)
        got = net.params()
        assert len(got) == 5
        for have, want in zip(got, expected):
            assert np.allclose(have, want, atol=1e-5)
        assert got[3][5] == 0.0  # a book in no series has no series weight, and gets none
        assert not np.allclose(got[3], series_weights, atol=1e-3)  # the series weights did move
        # the graph's reconstruction is the NumPy model's
        units = book_series, got[3], got[4]
        assert np.allclose(net.reconstruct(v0), rbm.reconstruct(v0, *got[:3], series_units=units), atol=1e-5)
    finally:
        net.close()


def test_series_dropout_step_equals_numpy_reference():
    """With series_keep < 1 a dropped unit neither drives the reconstruction nor learns from
    that reader: a unit dropped for every reader keeps its weights and bias."""
    params, book_series, series_weights, series_bias = small_model_params()
    rng = np.random.default_rng(2)
    v0 = (rng.random((4, 6)) < 0.5).astype(float)
    noise, series_noise = rng.random((4, 3)), rng.random((4, 2))
    kept = np.array([[1, 0], [0, 0], [1, 0], [1, 0]], dtype=float)  # unit 1 dropped for everyone
    net = RBMGraph(
        *params, learning_rate=0.3, binary_input=True, series=book_series, series_weights=series_weights,
        series_bias=series_bias, series_step=10.0, series_keep=0.5,
    )
    try:
        net.train_batch(
            sp.csr_matrix(v0), hidden_noise=noise.astype(np.float32), series_noise=series_noise.astype(np.float32),
            series_kept=kept.astype(np.float32),
        )
        got = net.params()
    finally:
        net.close()
    expected = reference_cd1_with_series(v0, params, book_series, series_weights, series_bias, noise, series_noise, 0.3, 10.0, kept)
    for have, want in zip(got, expected):
        assert np.allclose(have, want, atol=1e-5)
    unit_1 = book_series == 1
    assert np.allclose(got[3][unit_1], series_weights[unit_1]) and np.isclose(got[4][1], series_bias[1])
    assert not np.allclose(got[3][book_series == 0], series_weights[book_series == 0], atol=1e-3)
    # and the drawn mask keeps about series_keep of the units
    net = RBMGraph(*params, learning_rate=0.3, series=book_series, series_weights=series_weights, series_bias=series_bias,
                   series_keep=0.5)
    try:
        drawn = net.session.run(net.series_kept, {net.batch_size: 4000})
    finally:
        net.close()
    assert set(np.unique(drawn)) == {0.0, 1.0} and abs(drawn.mean() - 0.5) < 0.02


def test_free_energy_with_series_units_sums_over_every_hidden_state():
    params, book_series, series_weights, series_bias = small_model_params(2)
    weights, visible_bias, hidden_bias = params
    units = book_series, series_weights, series_bias
    s = (book_series[:, None] == np.arange(2)[None, :]) * series_weights[:, None]  # (books, series)
    v = np.array([[1.0, 1.0, 0.0, 0.0, 0.4, 1.0], [0.0, 0.0, 1.0, 0.2, 0.0, 0.0]])
    states = np.array(list(itertools.product([0, 1], repeat=5)), dtype=float)  # 3 hidden, 2 series units
    h, g = states[:, :3], states[:, 3:]
    for row, vector in enumerate(v):
        energies = -(vector @ visible_bias) - h @ hidden_bias - h @ (vector @ weights) - g @ series_bias - g @ (vector @ s)
        direct = -np.log(np.exp(-energies).sum())
        assert np.isclose(rbm.free_energy(v[row : row + 1], *params, series_units=units)[0], direct)
    assert not np.allclose(rbm.free_energy(v, *params, series_units=units), rbm.free_energy(v, *params))


def test_series_softplus_is_the_sum_over_every_unit_even_where_a_total_is_zero():
    """Only the units a reader reaches are worked out; one reached through books whose
    weights sum to 0 counts as unreached, and the sum is that over every unit."""
    _, book_series, series_weights, series_bias = small_model_params(3)
    series_weights[2] = 0.0  # series 1 reached through book 2 only: a total of exactly 0
    series_weights[0], series_weights[1] = 0.5, -0.5  # series 0 through books 0 and 1: 0 as well
    units = book_series, series_weights, series_bias
    s = (book_series[:, None] == np.arange(2)[None, :]) * series_weights[:, None]
    v = np.array([
        [1.0, 1.0, 1.0, 0.0, 0.0, 1.0],  # both units reached, both totals 0
        [0.0, 0.0, 0.0, 1.0, 1.0, 0.0],  # both reached, both totals nonzero
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],  # neither reached
        [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # unit 0 only
    ])
    direct = np.logaddexp(0.0, v @ s + series_bias).sum(axis=1)
    assert np.allclose(rbm.series_softplus(sp.csr_matrix(v), units), direct, rtol=1e-12)
    assert np.allclose(rbm.series_sums(v, units), v @ s, rtol=1e-12)


def test_model_scores_include_the_series_units(quick_model, sample):
    assert quick_model.series is not None and quick_model.settings["series_units"] is True
    users = sample.ratings[sample.valid_rows[:5]]
    visible = quick_model.visible(users)
    listed = dataclasses.replace(quick_model, visible_mean=None)
    keep = quick_model.settings["hidden_keep"]
    expected = rbm.reconstruct(visible, *quick_model.params, hidden_keep=keep, series_units=quick_model.series_units)
    assert np.allclose(listed.scores(users), expected, atol=1e-6)
    without = rbm.reconstruct(visible, *quick_model.params, hidden_keep=keep)
    assert not np.allclose(expected, without, atol=1e-3)
    # one reader at a time (recommend.py's path) gives the same scores
    assert np.allclose(listed.scores(users[:1]), expected[:1], atol=1e-6)


def test_volumes_read_lift_the_rest_of_their_series(quick_model, sample):
    """Reading Harry Potter 1 and 2 switches their series' unit on, which lifts the other
    volumes (with the series units as training starts them: a few batches have not yet
    settled them), and the volumes read are named as why."""
    fresh = dataclasses.replace(quick_model, **dict(zip(("series_weights", "series_bias"), series.initial_params(quick_model.series))))
    titles = sample.catalogue.edition_titles
    read = [titles.index(next(t for t in titles if f"(Harry Potter, #{n})" in t)) for n in (1, 2)]
    unit = fresh.series[read[0]]
    others = np.flatnonzero(fresh.series == unit)
    others = others[~np.isin(others, read)]
    assert len(others) >= 5
    reader = sp.csr_matrix(([1.0, 1.0], ([0, 0], read)), shape=(1, sample.n_books))
    on = fresh.series_probabilities(reader)[0, unit]
    off = fresh.series_probabilities(sp.csr_matrix((1, sample.n_books)))[0, unit]
    assert on > 0.5 > off
    with_units = fresh.scores(reader)[0]
    without = dataclasses.replace(fresh, series=None).scores(reader)[0]
    assert (with_units[others] > without[others] + 0.05).all()
    explained = explain.because(fresh, reader, others, np.array(read))
    assert all(set(columns) == set(read) for columns in explained)


@functools.cache  # deterministic, and asked for twice with series_keep=1
def train_on_built_series(series_keep):
    """Scores of a reader of one book of series A and of one of series B, with and without
    the series units, after CD on 300 readers: series A's two books are always read
    together, series B's never."""
    rng = np.random.default_rng(0)
    rows = []
    for reader in range(300):
        books = [0, 1] if reader % 2 else [2 + reader % 4 // 2]  # A together; B one book or the other
        books += [4] if rng.random() < 0.5 else [5]
        rows.append(books)
    fit = sp.csr_matrix(
        (np.ones(sum(map(len, rows)), np.float32), (np.repeat(np.arange(300), [len(r) for r in rows]), np.concatenate(rows))),
        shape=(300, 6),
    )
    book_series = np.array([0, 0, 1, 1, -1, -1])
    settings = dict(PRESETS["default"], hidden=2, batch_size=20, short_lists=0.0, series_keep=series_keep)
    net, rng = train.build_graph(fit, settings, 0, book_series)
    try:
        for _ in range(10):
            train.run_epoch(net, fit, rng, settings["batch_size"], progress=False)
        params = net.params()
    finally:
        net.close()
    trained = model.Model(
        *params[:3], np.arange(6), dict(settings), series=book_series, series_weights=params[3], series_bias=params[4]
    )
    readers = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 1], [0, 0, 1, 0, 0, 1]], dtype=np.float32))
    return trained.scores(readers), dataclasses.replace(trained, series=None).scores(readers)


def test_training_links_the_volumes_read_together():
    """A reader of one A book gets the other, through A's unit, and a reader of one B book
    does not get the other."""
    scores, without_units = train_on_built_series(series_keep=1.0)
    assert scores[0, 1] > 0.9 and scores[1, 3] < 0.1
    assert scores[0, 1] > without_units[0, 1] + 0.5  # it is the series unit that links them


def test_series_dropout_makes_the_ordinary_units_learn_series_too():
    """Trained with each series unit left out of half the updates, the shared hidden units
    link A's books themselves (without it they leave that to the unit and do not)."""
    scores, without_units = train_on_built_series(series_keep=0.5)
    _, without_units_no_dropout = train_on_built_series(series_keep=1.0)
    assert without_units[0, 1] > 0.3 > 0.05 > without_units_no_dropout[0, 1]
    assert scores[0, 1] > 0.3 and scores[0, 1] > 2 * scores[1, 3]  # the pair read together still stands out


def test_series_units_saved_and_loaded(quick_model, tmp_path):
    path = tmp_path / "m.npz"
    model.save(path, quick_model)
    loaded = model.load(path)
    for name in ("series", "series_weights", "series_bias"):
        assert np.array_equal(getattr(loaded, name), getattr(quick_model, name))
    broken = dataclasses.replace(quick_model, series_bias=quick_model.series_bias[:-1])  # a unit too few
    model.save(path, broken)
    with pytest.raises(InputError, match="series units do not fit"):
        model.load(path)
    plain = dataclasses.replace(quick_model, series=None, series_weights=None, series_bias=None)
    model.save(path, plain)
    assert model.load(path).series is None and model.load(path).series_units is None


def test_series_units_are_a_setting(sample):
    assert PRESETS["default"]["series_units"] is True and PRESETS["writeup"]["series_units"] is False
    plain = train.train(sample, hidden=8, epochs=1, max_batches=2, seed=1, series_units=False, progress=False, log=lambda m: None)
    assert plain.series is None
    with pytest.raises(InputError, match="series_units"):
        train.train(sample, series_units="yes", progress=False, log=lambda m: None)

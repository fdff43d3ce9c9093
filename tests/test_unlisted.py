"""Books a reader did not list: worth a share of the fit readers' mean to the hidden units;
and the few a reader did list made louder (``listed_gain``)."""
import dataclasses
import os

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from bookrbm import model, paths, preprocessing, reader, train
from bookrbm.model import Model, listed_gain, unlisted_weight
from bookrbm.rbm import sigmoid
from bookrbm.recommend import recommend


def test_unlisted_weight_falls_with_the_books_listed_and_ends_at_the_mean():
    weights = unlisted_weight(np.arange(0, 120), mean_books=100.0)
    assert weights[0] == weights[1] == pytest.approx(0.5 * 0.99)  # no book listed counts as one
    assert weights[4] == pytest.approx(0.25 * 0.96)  # 2 to 6 books: at most a quarter
    assert weights[9] == pytest.approx(0.22 * 0.91)  # then 0.66 / √n
    assert np.all(np.diff(weights[1:100]) < 0) and np.all(weights[100:] == 0)


def test_listed_gain_falls_from_six_to_one_at_the_mean():
    gains = listed_gain(np.arange(0, 120), mean_books=100.0)
    assert gains[0] == 6.0 and gains[3] == pytest.approx(1 + 5 * 0.97**3)
    assert gains[20] == pytest.approx(1 + 5 * 0.8**3) and gains[50] == pytest.approx(1.625)
    assert np.all(np.diff(gains[:101]) < 0) and np.all(gains[100:] == 1.0)


def toy_model(rng):
    weights = rng.normal(0, 1, (7, 3)).astype(np.float32)
    return Model(weights, rng.normal(0, 1, 7).astype(np.float32), rng.normal(0, 1, 3).astype(np.float32),
                 np.arange(1, 8), {"mean_books": 4.0, "hidden_keep": 0.5},
                 visible_mean=rng.uniform(0, 1, 7).astype(np.float32))


def test_unlisted_books_enter_the_hidden_units_at_their_weighted_mean():
    rng = np.random.default_rng(0)
    toy = toy_model(rng)
    rows = sp.csr_matrix(np.array([[1, 0, 0, 0, 0, 0, 0], [0, 0.6, 0, 1, 0, 0.8, 0]], dtype=np.float32))
    expected = []
    for row in rows.toarray():  # by hand: every book not listed adds weight × mean × its row of W
        weight = unlisted_weight(np.count_nonzero(row), 4.0)
        gain = listed_gain(np.count_nonzero(row), 4.0)
        unlisted = [i for i in range(7) if row[i] == 0]
        activation = (toy.hidden_bias + gain * row @ toy.weights
                      + weight * sum(toy.visible_mean[i] * toy.weights[i] for i in unlisted))
        expected.append(sigmoid(activation))
    assert np.allclose(toy.hidden_probabilities(rows), expected, atol=1e-6)
    for i in range(2):  # one reader at a time takes another path
        assert np.allclose(toy.hidden_probabilities(rows[i]), expected[i], atol=1e-6)
    assert np.allclose(toy.scores(rows), sigmoid(0.5 * np.array(expected) @ toy.weights.T + toy.visible_bias), atol=1e-6)


def test_a_model_without_visible_mean_scores_as_before(tmp_path):
    toy = dataclasses.replace(toy_model(np.random.default_rng(1)), visible_mean=None)
    rows = sp.csr_matrix(np.eye(7, dtype=np.float32)[:2])
    assert np.allclose(toy.hidden_probabilities(rows), sigmoid(rows.toarray() @ toy.weights + toy.hidden_bias))
    model.save(tmp_path / "old.npz", toy)
    assert model.load(tmp_path / "old.npz").visible_mean is None


def test_visible_mean_is_saved_with_the_model(tmp_path):
    toy = toy_model(np.random.default_rng(2))
    model.save(tmp_path / "m.npz", toy)
    loaded = model.load(tmp_path / "m.npz")
    assert np.array_equal(loaded.visible_mean, toy.visible_mean) and loaded.settings["mean_books"] == 4.0


def test_training_keeps_the_fit_readers_mean(quick_model, sample):
    from bookrbm import evaluation

    fit = sample.ratings[evaluation.user_sets(sample)[0]]
    assert np.allclose(quick_model.visible_mean, np.asarray((fit > 0).mean(axis=0)).ravel())  # binary input
    assert quick_model.settings["mean_books"] == pytest.approx(fit.nnz / fit.shape[0])


def built_readers(folder, n_books, rows):
    """Goodbooks files written by the test: the first ``n_books`` books of the sample, the
    ratings ``rows`` (user_id, book_id, rating), a one-row to-read list; preprocessed."""
    pd.read_csv(os.path.join(paths.BUNDLED_DATA, "books.csv"), nrows=n_books).to_csv(folder / "books.csv", index=False)
    pd.DataFrame(rows, columns=["user_id", "book_id", "rating"]).to_csv(folder / "ratings.csv", index=False)
    pd.DataFrame({"user_id": [1], "book_id": [41]}).to_csv(folder / "to_read.csv", index=False)
    return preprocessing.build(str(folder), log=lambda m: None)


def small_rbm(data):
    return train.train(data, hidden=16, epochs=60, eval_every=0, patience=0, seed=0, progress=False, log=lambda m: None)


def reader_of(data, book_ids):
    """A reader who rated ``book_ids`` 5 stars each."""
    return reader.Reader(name=f"{len(book_ids)} books", rated=np.sort(data.find_columns(book_ids)[0]),
                         ratings=np.full(len(book_ids), 5))


@pytest.fixture(scope="module")
def two_kinds_of_readers(tmp_path_factory):
    """300 readers of 20 of books 1-40 each, and 300 who read only 3 of books 41-60 each."""
    rng = np.random.default_rng(0)
    rows = [(u, b, 4) for u in range(1, 301) for b in rng.choice(np.arange(1, 41), 20, replace=False)]
    rows += [(u, b, 4) for u in range(301, 601) for b in rng.choice(np.arange(41, 61), 3, replace=False)]
    return built_readers(tmp_path_factory.mktemp("two_kinds"), 60, rows)


def test_a_reader_of_three_books_is_not_taken_for_a_reader_of_almost_nothing(two_kinds_of_readers):
    data = two_kinds_of_readers
    trained = small_rbm(data)
    three = reader_of(data, [1, 2, 3])
    found = recommend(trained, data, three, n=5, source="all")
    assert np.all(data.book_ids[found.columns] <= 40)  # more of what they read
    # the same weights reading "these three and nothing else": the other readers' books
    as_complete = recommend(dataclasses.replace(trained, visible_mean=None), data, three, n=5, source="all")
    assert np.all(data.book_ids[as_complete.columns] > 40)


def test_a_reader_of_three_books_hears_them_over_what_every_reader_reads(tmp_path, monkeypatch):
    # 600 readers: each of books 1-10 read by 60% of them; then half read 15 of books 11-40,
    # half 15 of books 41-70
    rng = np.random.default_rng(0)
    rows = []
    for user in range(1, 601):
        rows += [(user, book, 4) for book in range(1, 11) if rng.random() < 0.6]
        first = 11 if user <= 300 else 41
        rows += [(user, book, 4) for book in rng.choice(np.arange(first, first + 30), 15, replace=False)]
    data = built_readers(tmp_path, 70, rows)
    trained = small_rbm(data)
    three = reader_of(data, [11, 12, 13])
    assert listed_gain(3, trained.settings["mean_books"]) > 4  # about 21 books a fit reader

    def liked(found):  # how many of the five are books like theirs
        return int(np.sum((data.book_ids[found.columns] >= 11) & (data.book_ids[found.columns] <= 40)))

    assert liked(recommend(trained, data, three, n=5, source="all")) >= 2
    # at face value, the three books leave only what every reader reads
    monkeypatch.setattr(model, "listed_gain", lambda n_listed, mean_books: np.ones(np.shape(n_listed)))
    assert liked(recommend(trained, data, three, n=5, source="all")) == 0

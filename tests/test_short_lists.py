"""Training on short lists: a share of each batch's readers cut to a few of their books."""
import numpy as np
import pytest
import scipy.sparse as sp

from bookrbm import train
from bookrbm.errors import InputError


def _batch(rng, readers=400, books=60):
    lengths = rng.integers(0, 40, size=readers)
    rows = [np.sort(rng.choice(books, size=n, replace=False)) for n in lengths]
    indices = np.concatenate(rows)
    data = rng.integers(1, 6, size=len(indices)).astype(np.float32) / 5
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return sp.csr_matrix((data, indices, indptr), shape=(readers, books))


def test_cut_rows_keep_1_to_most_of_their_own_books_and_the_rest_stay_whole():
    batch = _batch(np.random.default_rng(0))
    cut = train.shorten_lists(batch, 0.3, 5, np.random.default_rng(1))
    before, after = np.diff(batch.indptr), np.diff(cut.indptr)
    shortened = after < before
    # a drawn row of more than 5 books always gets shorter: about 30% of them
    long_rows = before > 5
    assert 0.2 < shortened[long_rows].mean() < 0.4
    assert after[shortened].min() >= 1 and after[shortened].max() <= 5
    assert not shortened[before == 0].any()
    # every kept entry is one of the reader's own, with its value; untouched rows are identical
    assert cut.multiply(batch != 0).nnz == cut.nnz
    assert abs(cut - batch.multiply(cut != 0)).sum() == 0
    whole = np.flatnonzero(~shortened)
    assert (cut[whole] != batch[whole]).nnz == 0
    assert cut.has_sorted_indices


def test_which_books_stay_is_random_not_the_first_ones():
    batch = _batch(np.random.default_rng(0))
    cut = train.shorten_lists(batch, 1.0, 1, np.random.default_rng(2))
    long_rows = np.flatnonzero(np.diff(batch.indptr) >= 10)
    kept_first = [cut.indices[cut.indptr[r]] == batch.indices[batch.indptr[r]] for r in long_rows]
    # with 10+ books, the kept one is the row's first at most 1 time in 10 on average
    assert np.mean(kept_first) < 0.25
    assert (np.diff(cut.indptr)[long_rows] == 1).all()


def test_no_share_is_the_batch_itself_and_draws_nothing():
    batch = _batch(np.random.default_rng(0))
    rng = np.random.default_rng(3)
    assert train.shorten_lists(batch, 0.0, 20, rng) is batch
    assert rng.random() == np.random.default_rng(3).random()


def test_same_seed_same_cut():
    batch = _batch(np.random.default_rng(0))
    first = train.shorten_lists(batch, 0.5, 20, np.random.default_rng(4))
    second = train.shorten_lists(batch, 0.5, 20, np.random.default_rng(4))
    assert (first != second).nnz == 0 and np.array_equal(first.indptr, second.indptr)


@pytest.mark.parametrize("setting, value", [("short_lists", -0.1), ("short_lists", 1.5), ("short_list_books", 0)])
def test_bad_short_list_settings_are_refused(sample, setting, value):
    with pytest.raises(InputError, match=setting.replace("_", "-")):
        train.train(sample, hidden=8, epochs=1, max_batches=1, progress=False, log=lambda m: None, **{setting: value})


def test_training_on_short_lists_changes_the_model_and_keeps_its_settings(sample):
    quick = dict(hidden=8, epochs=1, max_batches=2, seed=5, progress=False, log=lambda m: None, eval_every=0, patience=0)
    whole = train.train(sample, short_lists=0.0, **quick)
    short = train.train(sample, short_lists=0.5, short_list_books=3, **quick)
    assert not np.allclose(whole.weights, short.weights)
    assert short.settings["short_lists"] == 0.5 and short.settings["short_list_books"] == 3

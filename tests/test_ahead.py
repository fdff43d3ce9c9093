"""Items made on a thread ahead of their use, and the trainer's epoch that uses it."""
import itertools
import threading

import numpy as np
import pytest

from bookrbm.ahead import ahead
from bookrbm.settings import DEFAULT


def test_items_come_in_order_each_once():
    assert list(ahead(iter(range(50)), depth=3)) == list(range(50))
    assert list(ahead([])) == []


def test_an_error_in_making_an_item_is_raised_in_its_place():
    def items():
        yield 1
        yield 2
        raise ValueError("the third item")

    got = []
    with pytest.raises(ValueError, match="the third item"):
        for item in ahead(items()):
            got.append(item)
    assert got == [1, 2]


def test_closing_early_stops_the_thread_within_its_depth():
    made = []

    def counted():
        for n in itertools.count():
            made.append(n)
            yield n

    items = ahead(counted(), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    # three taken, two waiting in the queue, one in the making at the most
    assert len(made) <= 3 + 2 + 1
    assert not any(thread.name == "ahead" and thread.is_alive() for thread in threading.enumerate())


def test_an_epoch_trains_as_its_batches_one_by_one(sample):
    """The feeds made on the second thread draw the same short lists from the same
    generator: the weights are those of the batches made and trained one after another."""
    from bookrbm import train

    settings = {**DEFAULT, "hidden": 16, "batch_size": 100}
    fit, _, _ = train.trainer_users(sample, settings["input"])
    series_of_books = train.book_series(sample, settings)
    assert series_of_books is not None and settings["short_lists"] > 0  # the defaults' work on the thread

    first, first_rng = train.build_graph(fit, settings, 3, series_of_books)
    second, second_rng = train.build_graph(fit, settings, 3, series_of_books)
    try:
        errors = train.run_epoch(first, fit, first_rng, 100, max_batches=6, progress=False)
        shuffled = fit[second_rng.permutation(fit.shape[0])]
        by_hand = [
            second.train_batch(train.shorten_lists(shuffled[start : start + 100], settings["short_lists"],
                                                   settings["short_list_books"], second_rng))
            for start in range(0, 600, 100)
        ]
        assert errors == by_hand
        for ours, theirs in zip(first.params(), second.params()):
            assert np.array_equal(ours, theirs)
        assert first_rng.random() == second_rng.random()  # and the generator is left in the same state
    finally:
        first.close()
        second.close()


def test_the_epoch_figures_are_those_worked_out_one_after_another(sample):
    """The free energies are worked out on a second thread while the session measures the
    valid error: the same three figures as one after another."""
    from bookrbm import rbm, train

    settings = {**DEFAULT, "hidden": 16}
    fit, valid, _ = train.trainer_users(sample, settings["input"])
    series_of_books = train.book_series(sample, settings)
    first, _ = train.build_graph(fit, settings, 5, series_of_books)
    second, _ = train.build_graph(fit, settings, 5, series_of_books)
    try:
        params = first.params()
        figures = train.epoch_figures(first, fit, valid, params, 100, series_of_books)
        units = train.series_units(params, series_of_books)
        assert figures == (
            float(rbm.mean_free_energy(fit, *params[:3], units)),
            float(rbm.mean_free_energy(valid, *params[:3], units)),
            float(np.mean(train.valid_errors(second, valid, 100))),
        )
    finally:
        first.close()
        second.close()

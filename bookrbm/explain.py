"""Why a book was recommended: which of the reader's rated books pushed its score up most.

A book's score is sigmoid(b_i + keep · Σ_j W_ij h_j) with h = sigmoid(v W + c + the books
the reader did not list, see ``Model.hidden_probabilities``). How much read book k raises
book i's activation is, to first order, v_k times the derivative keep · Σ_j W_ij h_j
(1 - h_j) W_kj (and times the reader's ``listed_gain``, left out: it is the same for each
of their books, so it changes no order): two books push each other up when their rows of
the weight matrix agree on the hidden units this reader switches on. Two books of one series
also push each other through their series unit g: u_i g (1 - g) u_k (``bookrbm.series``).
"""
import numpy as np


def contributions(model, visible, recommended, read, hidden=None, series=None):
    """(len(recommended), len(read)) contribution of each read book to each recommendation.

    visible : CSR (1, n_books), the reader's visible vector as the model sees it.
    hidden, series : its p(h|v) (n_hidden,) and its series units' p(g|v) (n_series,), when
        the caller has them already (``Model.fold_in_all``).
    """
    weights = model.weights
    if hidden is None:
        hidden = model.hidden_probabilities(visible)[0]
    slope = model.settings.get("hidden_keep", 1.0) * hidden * (1.0 - hidden)  # (n_hidden,)
    v = visible.toarray()[0, read]
    # the read books' rows first: OpenBLAS takes this product in 22 µs for a reader of 100
    # books, and 40 the other way round, whose last bits differ (over the 2,672 sample
    # readers, one explanation swapped two books 2e-8 apart)
    push = (weights[read] @ (weights[recommended] * slope).T).T
    if model.series is not None:
        series_slope = model.series_probabilities(visible)[0] if series is None else series
        series_slope = series_slope * (1.0 - series_slope)
        recommended_series, read_series = model.series[recommended], model.series[read]
        same = (recommended_series[:, None] == read_series[None, :]) & (read_series[None, :] >= 0)
        by_series = model.series_weights[recommended][:, None] * model.series_weights[read][None, :]
        push = push + np.where(same, by_series * series_slope[np.maximum(read_series, 0)][None, :], 0.0)
    return push * v


def because(model, visible, recommended, read, top=3, hidden=None, series=None):
    """For each recommended column, up to ``top`` read columns with the largest positive
    contribution, largest first (``hidden`` and ``series`` as for ``contributions``)."""
    if len(read) == 0:
        return [np.zeros(0, np.int64) for _ in recommended]
    read = np.sort(read)  # so that ties go to the lower column
    push = contributions(model, visible, recommended, read, hidden, series)
    order, largest = _largest(push, top)
    chosen = read[order]
    return [columns[keep] for columns, keep in zip(chosen, largest > 0)]


def _largest(values, top):
    """(positions, values) of each row's ``top`` largest values, largest first, ties to the
    lower position: what a stable sort of -values would put first.

    By ``top`` rounds of argmax (which returns the first of equal values), each setting its
    pick to -inf: a few microseconds, where sorting a 10 × 100 matrix took 30."""
    values = np.array(values, dtype=np.float64)
    rows = np.arange(values.shape[0])
    positions, found = [], []
    for _ in range(min(top, values.shape[1])):
        best = values.argmax(axis=1)
        positions.append(best)
        found.append(values[rows, best])
        values[rows, best] = -np.inf
    return np.stack(positions, axis=1), np.stack(found, axis=1)

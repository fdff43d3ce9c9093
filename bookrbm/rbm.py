"""The RBM's maths in NumPy, one function per step; visible input may be dense or scipy sparse.

Shapes: ``weights`` (n_books, n_hidden), ``visible_bias`` (n_books,), ``hidden_bias``
(n_hidden,); a batch of visible vectors ``v`` is (n_users, n_books). The series units
(``bookrbm.series``) are hidden units too, each with weights to its own series' books
only: ``series_units`` is (each book's series or -1 (n_books,), each book's weight to it
(n_books,), the units' biases (n_series,)), or None.
These are the same formulas as the TensorFlow graph in ``bookrbm.graph``; recommend.py
uses them so that it needs no TensorFlow.
"""
import numpy as np
import scipy.sparse as sp

from .interactions import as_csr


def sigmoid(x):
    # exp of a large negative number overflows to inf, which is harmless here: 1/(1+inf) = 0
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


def softplus(x, out=None):
    """log(1 + e^x) without overflow, elementwise: max(x, 0) + log1p(e^-|x|); into ``out``
    if given, which may be ``x`` itself.

    ``np.logaddexp(0, x)`` is the same function, as accurate (checked against float64 on 5
    million float32 values), but runs a scalar loop: on 8 million float32 values it took
    115 ms to this form's 23 (NumPy's vectorised exp and log1p), most of a 1,024-unit free
    energy's time. Worked in place: given ``out=x`` it needs one array beside ``x``, as
    ``np.logaddexp`` did (the free energy's 8,192-reader chunk at H=1024 is 34 MB)."""
    x = np.asarray(x)
    positive = np.maximum(x, 0)
    if out is None:
        out = np.empty_like(x)
    np.abs(x, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    np.log1p(out, out=out)
    out += positive
    return out


def _dense(x):
    return x.toarray() if sp.issparse(x) else np.asarray(x)


def hidden_activations(v, weights, hidden_bias):
    """v @ W + b_h, (n_users, n_hidden); the sparse product never densifies ``v``."""
    if sp.issparse(v) and v.format == "csr" and v.shape[0] == 1:
        # one reader (recommend.py): their rows of W, without scipy's per-call overhead
        return (v.data @ weights[v.indices] + hidden_bias)[None, :]
    return _dense(v @ weights) + hidden_bias


def mean_hiddens(v, weights, hidden_bias):
    """p(h = 1 | v), (n_users, n_hidden)."""
    return sigmoid(hidden_activations(v, weights, hidden_bias))


def series_activations(v, series_units):
    """Σ over each series' books of v u, plus b_s: the series units' input, (n_users, n_series)."""
    return series_sums(v, series_units) + series_units[2]


def series_sums(v, series_units):
    """Σ over each series' books of v u, (n_users, n_series).

    Summed entry by entry in the rows' order (``np.add.at``), as a sparse product would,
    without its per-call cost: one reader's takes microseconds."""
    return _series_totals(v, series_units)[0]


def _series_totals(v, series_units):
    """(``series_sums``, the flat indices into it of the (reader, unit) pairs that some
    stored entry reaches, with repeats)."""
    series, weights, bias = series_units
    v = as_csr(v)
    in_series = series[v.indices] >= 0
    rows = np.repeat(np.arange(v.shape[0]), np.diff(v.indptr))[in_series]
    books = v.indices[in_series]
    values = v.data[in_series] * weights[books]
    totals = np.zeros((v.shape[0], len(bias)), np.result_type(values, bias))
    reached = rows * len(bias) + series[books]
    np.add.at(totals.ravel(), reached, values)
    return totals, reached


def series_push(g, series_units):
    """What the series units' states ``g`` (n_users, n_series) add to each book's input:
    u times its own series' unit, (n_users, n_books); 0 without series units."""
    if series_units is None:
        return 0.0
    series, weights, _ = series_units
    g = np.asarray(g)
    # a book in no series (-1) picks the last column, the zeros; take is twice as fast as
    # indexing with an array here
    padded = np.concatenate([g, np.zeros((g.shape[0], 1), g.dtype)], axis=1)
    return np.take(padded, series, axis=1) * weights


def mean_visibles(h, weights, visible_bias, push=0.0):
    """p(v = 1 | h), (n_users, n_books); ``push`` is the series units' ``series_push``."""
    return sigmoid(h @ weights.T + visible_bias + push)


def reconstruct(v, weights, visible_bias, hidden_bias, hidden_keep=1.0, series_units=None):
    """Mean-field reconstruction v → p(h|v) → p(v|h): the recommendation score of every book.

    hidden_keep : for a model trained with hidden dropout, each hidden unit was present
        with this probability, so its expected top-down input is scaled by it (the series
        units push at full strength even when trained with dropout, ``series_keep``:
        measured better, README "Series-unit dropout").
    """
    push = 0.0 if series_units is None else series_push(sigmoid(series_activations(v, series_units)), series_units)
    return mean_visibles(hidden_keep * mean_hiddens(v, weights, hidden_bias), weights, visible_bias, push)


def free_energy(v, weights, visible_bias, hidden_bias, series_units=None):
    """F(v) = -v·b_v - Σ_j softplus((v W + b_h)_j) - Σ_s softplus((v S + b_s)_s), (n_users,).

    Lower free energy means the model finds ``v`` more probable.
    """
    visible_term = _dense(v @ visible_bias).ravel()
    activations = hidden_activations(v, weights, hidden_bias)
    hidden_term = softplus(activations, out=activations).sum(axis=1)
    if series_units is not None:
        hidden_term = hidden_term + series_softplus(v, series_units)
    return -visible_term - hidden_term


def series_softplus(v, series_units):
    """Σ_s softplus((v S + b_s)_s), (n_users,): the series units' part of the free energy.

    A unit that none of a reader's books reaches gives softplus(b_s) whatever the reader,
    so only the units each reader reaches are worked out (a few of 836, where the whole
    (n_users, n_series) softplus made the full-size epoch's metrics 2.5× slower)."""
    totals, reached = _series_totals(v, series_units)
    bias = series_units[2]
    base = softplus(bias)
    # the reached pairs once each, in order, from a mark: a pass over a boolean array instead
    # of over every total (with the flat sums, half the time at the full size). A reached
    # total of 0 lifts by exactly 0, as an unreached one would
    mark = np.zeros(totals.size, bool)
    mark[reached] = True
    flat = np.flatnonzero(mark)
    reached_totals = totals.ravel()[flat]
    rows, units = np.divmod(flat, len(bias))
    lift = softplus(bias[units] + reached_totals) - base[units]
    return base.sum() + np.bincount(rows, weights=lift, minlength=totals.shape[0])


def mean_free_energy(v, weights, visible_bias, hidden_bias, series_units=None, batch_size=8192):
    """Mean of ``free_energy`` over the rows of ``v``, a batch of rows at a time."""
    n = v.shape[0]
    if n == 0:
        return float("nan")
    total = 0.0
    for start in range(0, n, batch_size):
        total += free_energy(v[start : start + batch_size], weights, visible_bias, hidden_bias, series_units).sum()
    return total / n

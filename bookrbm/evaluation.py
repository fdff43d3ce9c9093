"""Leak-free ranking evaluation: hide part of each held-out reader's ratings, rank, score.

Three disjoint sets of users:
- fit users train the models;
- tuning users (the "validation users"), carved out of the training split, choose
  hyperparameters and the epoch to stop at;
- test users (the ``valid`` split of preprocess.py) are used only to report.

For an evaluated user a seeded 20% of their ratings is hidden; the other 80% is the only
thing a model sees, and every book outside that 80% is ranked.
"""
import dataclasses

import numpy as np
import scipy.sparse as sp

from .errors import InputError
from .interactions import split_size
from .recommend import top_n

METRICS = ("precision", "recall", "ndcg", "ndcg_liked", "map", "hit_rate", "coverage")
LIKED = 4  # a hidden rating of at least this counts as relevant for ndcg_liked
TUNING_FRACTION = 0.1
TUNING_SEED = 20180101  # fixed, so every model is tuned on the same readers


def user_sets(data, tuning_fraction=TUNING_FRACTION, require=None):
    """(fit_rows, tuning_rows, test_rows): disjoint row indices of ``data``'s users.

    require : the data's file name, for an evaluation that needs all three sets: an empty
        one is then an InputError naming it."""
    train_rows = data.train_rows
    rng = np.random.default_rng(TUNING_SEED)
    n_tuning = split_size(len(train_rows), tuning_fraction)
    tuning = np.sort(rng.choice(train_rows, size=n_tuning, replace=False))
    fit = np.setdiff1d(train_rows, tuning)
    sets = fit, tuning, data.valid_rows
    for name, rows in zip(("fit", "tuning", "test"), sets):
        if require is not None and len(rows) == 0:
            raise InputError(
                f"{require}: no {name} users among its {data.n_users}; evaluation needs all three sets "
                "(run preprocess.py on more users, with --valid-fraction above 0)"
            )
    return sets


def tuning_holdout(data, tuning_rows, shown=None):
    """The tuning users' hold-out: the same hidden 20% for every model and every epoch (or,
    with ``shown``, the same ``shown`` books of each, as ``hold_out``)."""
    return hold_out(data.ratings[tuning_rows], seed=TUNING_SEED, shown=shown)


@dataclasses.dataclass
class Holdout:
    """What a model sees of each evaluated user, and what it must find.

    shown : CSR (n_users, n_books), rating / 5 of the visible 80%.
    hidden : CSR (n_users, n_books), rating / 5 of the hidden 20%; never given to a model.
    """

    shown: sp.csr_matrix
    hidden: sp.csr_matrix

    @property
    def n_users(self):
        return self.shown.shape[0]


def hold_out(ratings, fraction=0.2, seed=0, shown=None):
    """Split every row of ``ratings`` (CSR) into shown and hidden parts, seeded.

    Each user with at least two ratings hides round(fraction × n) of them, at least one,
    and keeps at least one. With ``shown``, each shows that many instead (a reader who
    lists only a few books) and hides the rest, still hiding at least one.
    """
    ratings = sp.csr_matrix(ratings)
    ratings.sort_indices()
    counts = np.diff(ratings.indptr)
    wanted = np.rint(fraction * counts).astype(int) if shown is None else counts - shown
    n_hidden = np.clip(wanted, 1, np.maximum(counts - 1, 0))
    n_hidden[counts < 2] = 0
    rows = np.repeat(np.arange(ratings.shape[0]), counts)
    keys = np.random.default_rng(seed).random(ratings.nnz)
    order = np.lexsort((keys, rows))  # by row, then at random within the row
    rank = np.empty(ratings.nnz, dtype=np.int64)
    rank[order] = np.arange(ratings.nnz) - np.repeat(ratings.indptr[:-1], counts)
    is_hidden = rank < n_hidden[rows]

    def part(mask):
        return sp.csr_matrix(
            (ratings.data[mask], (rows[mask], ratings.indices[mask])), shape=ratings.shape
        )

    return Holdout(shown=part(~is_hidden), hidden=part(is_hidden))


def top_k(scores, shown, k):
    """(n_users, k) columns of the best-scored books not in ``shown``, best first.

    The same ranking as recommend.py's (``top_n``): ties go to the lower column, so a model
    that cannot tell books apart gets no luck from the order. A user with fewer than ``k``
    books left gets their shown books after them, lowest column first.
    """
    scores = np.asarray(scores)
    shown = sp.csr_matrix(shown)
    n_books = scores.shape[1]
    ranked = np.empty((scores.shape[0], k), dtype=np.int64)
    for row in range(scores.shape[0]):
        seen = shown.indices[shown.indptr[row] : shown.indptr[row + 1]]
        candidates = np.ones(n_books, dtype=bool)
        candidates[seen] = False
        best = top_n(scores[row], candidates, k)
        if len(best) < k:
            best = np.concatenate([best, np.sort(seen)[: k - len(best)]])
        ranked[row] = best
    return ranked


def _discounts(k):
    return 1.0 / np.log2(np.arange(2, k + 2))


def _ndcg(gains, n_true, k):
    """NDCG of each user with at least one relevant book, in user order."""
    discounts = _discounts(k)
    ideal = np.array([discounts[: min(n, k)].sum() for n in n_true])
    return (gains * discounts).sum(axis=1)[n_true > 0] / ideal[n_true > 0]


def paired_gap(first, second, seed=0, resamples=2000, level=0.95):
    """Mean of ``first - second`` (per-user values of two models on the same users) and a
    percentile bootstrap interval for it, resampling users: (gap, low, high).

    Paired, because the users are shared: how far apart two models are is far surer than
    either model's own mean."""
    differences = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    if differences.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n = differences.size
    # one resample at a time: memory stays O(users) for the full data's 10,000 test users too
    means = np.array([differences[rng.integers(0, n, n)].mean() for _ in range(resamples)])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(differences.mean()), float(low), float(high)


def ranking_metrics(ranked, hidden, n_books, by_user=False):
    """Metrics of ``ranked`` (n_users, k) top-k lists against ``hidden`` (CSR, rating / 5).

    Every hidden book is relevant, except for ``ndcg_liked``, where only hidden ratings of
    at least 4 are (users with none are left out of that mean). Means are over users. With
    ``by_user``, also ``ndcg_by_user``: each user's NDCG (of those with a hidden book, in
    user order), the list that ``ndcg`` is the mean of.
    """
    k = ranked.shape[1]
    hidden = sp.csr_matrix(hidden)
    ratings = np.rint(np.asarray(hidden[np.arange(ranked.shape[0])[:, None], ranked].todense()) * 5)
    n_relevant = np.diff(hidden.indptr)
    hits = ratings > 0
    liked = hidden.copy()
    liked.data = (np.rint(liked.data * 5) >= LIKED).astype(np.float64)
    liked.eliminate_zeros()
    n_liked = np.diff(liked.indptr)
    users = n_relevant > 0
    n_hits = hits.sum(axis=1)
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    average_precision = (precision_at * hits).sum(axis=1)[users] / np.minimum(n_relevant[users], k)
    per_user = _ndcg(hits, n_relevant, k)
    metrics = {
        "precision": float((n_hits[users] / k).mean()),
        "recall": float((n_hits[users] / n_relevant[users]).mean()),
        "ndcg": float(per_user.mean()),
        "ndcg_liked": float(_ndcg(ratings >= LIKED, n_liked, k).mean()) if (n_liked > 0).any() else float("nan"),
        "map": float(average_precision.mean()),
        "hit_rate": float((n_hits[users] > 0).mean()),
        "coverage": len(np.unique(ranked[users])) / n_books,
    }
    if by_user:
        metrics["ndcg_by_user"] = per_user.tolist()
    return metrics


def evaluate(recommender, holdout, k=10, batch_size=512, by_user=False):
    """Metrics at ``k`` of ``recommender.scores(shown)`` on ``holdout``.

    The recommender is handed ``holdout.shown`` and nothing else. With ``by_user``, the
    result also holds ``ndcg_by_user``, a list of each user's NDCG (``ranking_metrics``).
    """
    ranked = []
    for start in range(0, holdout.n_users, batch_size):
        shown = holdout.shown[start : start + batch_size]
        ranked.append(top_k(recommender.scores(shown), shown, k))
    ranked = np.vstack(ranked)
    return ranking_metrics(ranked, holdout.hidden, holdout.shown.shape[1], by_user)

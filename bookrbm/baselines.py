"""Baseline recommenders, each ``fit(user_items)`` then ``scores(user_items)``.

``user_items`` is a CSR users × books matrix of rating / 5. ``scores`` returns a dense
(n_users, n_books) array; higher is better. The users given to ``scores`` need not be
the ones given to ``fit``: every model folds a new reader in from their row alone.
"""
import numpy as np
import scipy.linalg
from threadpoolctl import threadpool_limits

from .interactions import binary


class Popularity:
    """Most rated among the fit users first, the same list for everyone."""

    def fit(self, user_items):
        self.counts = np.asarray((user_items > 0).sum(axis=0), dtype=np.float64).ravel()
        return self

    def scores(self, user_items):
        return np.broadcast_to(self.counts, (user_items.shape[0], len(self.counts)))


class ItemKNN:
    """Item-based k nearest neighbours with cosine similarity on who-read-what.

    A book's score is the sum of its similarities to the reader's books, counting only
    the ``neighbours`` most similar books of each candidate.
    """

    def __init__(self, neighbours=100):
        self.neighbours = neighbours

    def fit(self, user_items):
        x = binary(user_items)
        co = (x.T @ x).toarray().astype(np.float32)
        norms = np.sqrt(np.diag(co)).copy()
        norms[norms == 0] = 1.0
        similarity = co / norms[:, None] / norms[None, :]
        np.fill_diagonal(similarity, 0.0)
        n_books = similarity.shape[0]
        if self.neighbours < n_books:
            # for each candidate book (column), zero all but its most similar books
            weakest = np.argpartition(similarity, n_books - self.neighbours, axis=0)[: n_books - self.neighbours]
            np.put_along_axis(similarity, weakest, 0.0, axis=0)
        self.similarity = similarity
        return self

    def scores(self, user_items):
        return np.asarray(binary(user_items) @ self.similarity)


class EASE:
    """Embarrassingly Shallow Autoencoder (Steck, 2019): B = I - P / diag(P), P = (XᵀX + λI)⁻¹."""

    def __init__(self, l2=500.0):
        self.l2 = l2

    def fit(self, user_items):
        x = binary(user_items)
        gram = (x.T @ x).toarray().astype(np.float32)
        gram[np.diag_indices_from(gram)] += self.l2
        inverse = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        weights = -inverse / np.diag(inverse)[None, :]
        np.fill_diagonal(weights, 0.0)
        self.weights = weights
        return self

    def scores(self, user_items):
        return np.asarray(binary(user_items) @ self.weights)


class ALS:
    """Implicit-feedback matrix factorisation from the ``implicit`` library.

    A new reader's factors are solved from their row alone (``recalculate_user``), with
    the item factors fixed.
    """

    def __init__(self, factors=64, regularization=0.05, alpha=1.0, iterations=15, seed=0):
        self.settings = dict(factors=factors, regularization=regularization, alpha=alpha, iterations=iterations)
        self.seed = seed

    def fit(self, user_items):
        from implicit.cpu.als import AlternatingLeastSquares

        # implicit parallelises itself; a BLAS thread pool underneath only fights it
        with threadpool_limits(1, "blas"):
            self.model = AlternatingLeastSquares(random_state=self.seed, **self.settings)
            self.model.fit(binary(user_items), show_progress=False)
        return self

    def scores(self, user_items):
        rows = binary(user_items)
        with threadpool_limits(1, "blas"):
            factors = self.model.recalculate_user(np.arange(rows.shape[0]), rows)
        return factors @ self.model.item_factors.T

"""A trained RBM as a portable ``.npz`` file: weights, biases, ids, settings and history.

Loading needs only NumPy, so recommend.py never imports TensorFlow.
"""
import dataclasses
import functools
import os

import numpy as np

from . import npzfile, rbm
from .errors import InputError
from .interactions import as_csr, binary, with_values
from .paths import shown

FORMAT = "bookrbm-model-2"
ARRAYS = ("weights", "visible_bias", "hidden_bias", "book_ids")
# models from before these were kept have none; a model without series units has no series_*
OPTIONAL_ARRAYS = ("visible_mean", "series", "series_weights", "series_bias")
# each block of ``Model.visible_means``'s products: 4 MB of weights, 1,024 books at 1,024
# hidden units (a model of 64 takes all 10,000 books in one: each product call costs ~2 µs)
BLOCK_BYTES = 4 << 20


def unlisted_weight(n_listed, mean_books):
    """How much of its mean input each book a reader did not list gives the hidden units:
    0.5 for a reader who listed one book, min(0.25, 0.66 / √n) for one who listed n ≥ 2, times
    (1 - n / mean_books), so nothing from ``mean_books`` (the fit readers' mean) on.

    The RBM learned mostly from complete reading lists, where a book not listed is a book
    not read; a reader who rates three books has read many more, and read as "these three
    and nothing else" they look like the fit readers who read almost nothing of the
    catalogue (readers of Arabic books, mostly), whose books it then recommends. Chosen on
    the tuning readers, each shown n of their books, with the default RBM trained on short
    lists (README, "Readers who list only a few books").
    """
    n_listed = np.maximum(np.asarray(n_listed, dtype=np.float64), 1.0)
    share = np.where(n_listed < 2, 0.5, np.minimum(0.25, 0.66 / np.sqrt(n_listed)))
    return share * _short_of(n_listed, mean_books)


def listed_gain(n_listed, mean_books):
    """How loud each book a reader listed is to the hidden units: 1 + 5 (1 - n / mean_books)³
    for a reader who listed n, so about 6 for one who listed a few books, 3.6 at a fifth of
    ``mean_books`` (the fit readers' mean), 1.6 at a half and 1 from ``mean_books`` on.

    A few books a reader picks out stand for the many more they have read, mostly books
    like them; at their face value they barely move hidden units that learned from lists of
    about ``mean_books`` books, and what the RBM recommends stays close to what every
    reader reads. Chosen on the tuning readers, each shown n of their books (README,
    "Readers who list only a few books"): NDCG@10 0.417 → 0.502 at 3 books, 0.568 → 0.615
    at 10, unchanged at 80%; with ``unlisted_weight`` as it was (half or twice it: no better).
    """
    return 1.0 + 5.0 * _short_of(np.asarray(n_listed, dtype=np.float64), mean_books) ** 3


def _short_of(n_listed, mean_books):
    """How far short of ``mean_books`` a list of ``n_listed`` books falls: 1 - n / mean_books,
    0 from the mean on; what both ``unlisted_weight`` and ``listed_gain`` scale with."""
    return np.clip(1.0 - n_listed / mean_books, 0.0, 1.0)


@dataclasses.dataclass
class Model:
    """weights (n_books, n_hidden), visible_bias (n_books,), hidden_bias (n_hidden,), float32.

    book_ids : goodbooks ``book_id`` of each visible unit.
    settings : the hyperparameters it was trained with (``mean_books``: how many books a fit
        reader has, on average).
    history : one dict per epoch (free energies, reconstruction errors).
    visible_mean : the fit readers' mean visible vector (n_books,), or None: what a book a
        reader did not list is worth to the hidden units, scaled by ``unlisted_weight``.
    series, series_weights, series_bias : the series units (``bookrbm.series``): each book's
        series or -1 (n_books,), its weight to its series' unit (n_books,), and the units'
        biases (n_series,); None for a model without them.
    """

    weights: np.ndarray
    visible_bias: np.ndarray
    hidden_bias: np.ndarray
    book_ids: np.ndarray
    settings: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)
    visible_mean: np.ndarray = None
    series: np.ndarray = None
    series_weights: np.ndarray = None
    series_bias: np.ndarray = None

    @property
    def params(self):
        """(weights, visible_bias, hidden_bias): the ordinary hidden units' parameters."""
        return self.weights, self.visible_bias, self.hidden_bias

    @property
    def series_units(self):
        """(series, series_weights, series_bias) as ``bookrbm.rbm`` takes them, or None."""
        if self.series is None:
            return None
        return self.series, self.series_weights, self.series_bias

    def visible(self, user_items):
        """The visible vectors for rows of rating / 5: as they are, or 1 for every rated book."""
        return to_visible(user_items, self.settings.get("input", "rating"))

    def scores(self, user_items):
        """Reconstruction of each row (n_users, n_books): the score of every book."""
        return self.reconstruct(self.visible(user_items))

    def reconstruct(self, visible):
        """``scores`` of rows that are already visible vectors (``visible``'s output)."""
        return self.fold_in(visible)[1]

    def fold_in(self, visible):
        """(p(h|v), scores) of rows of visible vectors: the hidden units each reader switches
        on (``hidden_probabilities``) and the reconstruction they give, through hidden units
        scaled by ``hidden_keep`` for a model trained with dropout and the series units;
        (n_users, n_hidden) and (n_users, n_books)."""
        hidden, _, scores = self.fold_in_all(visible)
        return hidden, scores

    def fold_in_all(self, visible):
        """(p(h|v), p(g|v) of the series units or None, scores): ``fold_in`` with the series
        units too, each reader's list read as partial once for both kinds of unit."""
        if visible.shape[0] == 1:
            return self.fold_in_each([visible])[0]  # a lone reader, as a server folds one in
        hidden, series, top_down, push = self._top_down(visible)
        return hidden, series, rbm.mean_visibles(top_down, self.weights, self.visible_bias, push)

    def fold_in_each(self, readers):
        """``fold_in_all`` of each of ``readers`` (visible vectors, 1-row CSRs), each the same
        bit for bit as alone, their products with the weights made in one pass over them
        (``visible_means``): how a server folds in the readers who ask at the same moment."""
        parts = [self._top_down(visible) for visible in readers]
        top_down = np.concatenate([part[2] for part in parts])
        push = 0.0 if self.series is None else np.concatenate([part[3] for part in parts])
        scores = self.visible_means(top_down, push)
        return [(hidden, series, scores[i : i + 1]) for i, (hidden, series, _, _) in enumerate(parts)]

    def _top_down(self, visible):
        """(p(h|v), p(g|v) or None, what the hidden units send down, the series units' push)."""
        partial = self._partial_lists(visible)
        hidden = self._hidden(visible, partial)
        series = self._series(visible, partial)
        top_down = self.settings.get("hidden_keep", 1.0) * hidden
        # the series units at full strength even when trained with dropout (series_keep):
        # scaled by it, the RBM lost 0.025 on the tuning readers at 80% (README)
        return hidden, series, top_down, rbm.series_push(series, self.series_units)

    def _partial_lists(self, visible):
        """Rows read as partial lists: (visible vectors with each listed book at
        ``listed_gain`` × its value less weight × its mean, the ``unlisted_weight`` per row),
        or None for a model without the fit readers' mean.

        weight × Σ over the unlisted books of mean × W is the mean input of all books less
        weight × that of the listed ones, so the listed books enter once, at their value
        (made louder) less weight × their mean, in the same product as always."""
        if self.visible_mean is None or "mean_books" not in self.settings:
            return None
        visible = as_csr(visible)
        counts = np.diff(visible.indptr)
        weight = unlisted_weight(counts, self.settings["mean_books"]).astype(np.float32)
        gain = listed_gain(counts, self.settings["mean_books"]).astype(np.float32)
        listed = np.repeat(gain, counts) * visible.data - np.repeat(weight, counts) * self.visible_mean[visible.indices]
        return with_values(visible, listed), weight

    def hidden_probabilities(self, visible):
        """p(h|v) of rows of visible vectors, the books each reader listed counted at
        ``listed_gain`` times their value and those they did not at ``unlisted_weight`` of
        their mean (see there); (n_users, n_hidden)."""
        return self._hidden(visible, self._partial_lists(visible))

    def series_probabilities(self, visible):
        """p(g|v) of the series units, the unlisted books counted as for
        ``hidden_probabilities``; (n_users, n_series), or None without series units."""
        return self._series(visible, self._partial_lists(visible))

    def _hidden(self, visible, partial):
        activations = functools.partial(rbm.hidden_activations, weights=self.weights, hidden_bias=self.hidden_bias)
        return _of_partial_lists(activations, visible, partial, lambda: self.mean_input)

    def _series(self, visible, partial):
        if self.series is None:
            return None
        activations = functools.partial(rbm.series_activations, series_units=self.series_units)
        return _of_partial_lists(activations, visible, partial, lambda: self.mean_series_input)

    def prepare_readers(self):
        """Fold one reader in now, the way a server folds its readers in (``fold_in_each``),
        so that what folding in works out once and keeps (``weights_t`` and, where the model
        uses them, ``mean_input`` and ``mean_series_input``) is there for its first reader:
        left to it, that took 0.13 s of the first request. Folding in itself decides what it
        needs."""
        self.fold_in_each([as_csr(np.eye(1, len(self.book_ids), dtype=np.float32))])

    @functools.cached_property
    def weights_t(self):
        """Wᵀ as a row-major copy, (n_hidden, n_books): h Wᵀ for few rows is a third faster
        against it than through the transposed view."""
        return np.ascontiguousarray(self.weights.T)

    @functools.cached_property
    def mean_input(self):
        """visible_mean W: what the fit readers' mean visible vector gives the hidden units."""
        return self.visible_mean @ self.weights

    @functools.cached_property
    def mean_series_input(self):
        """What visible_mean gives the series units, (n_series,)."""
        return rbm.series_sums(self.visible_mean[None, :], self.series_units)[0]

    def visible_means(self, hidden, push=0.0):
        """p(v|h) of a few rows of top-down hidden values (as ``fold_in`` makes them) and the
        series units' push: the scores, (n_users, n_books), each row the same bit for bit as
        alone.

        Each row's product with Wᵀ is its own, so that a reader's scores do not depend on who
        else is folded in with them (a matrix product of several rows sums in another
        order), but made a block of books at a time, each block's weights (``BLOCK_BYTES``)
        read from memory once for all the rows and from cache for the rest.
        Alone, 0.9–1.2 ms a row (all 40 MB read, as one product reads them); 0.58–0.68 ms a
        row for 8 rows. In the web app under load, where the two workers' reads of their
        weights compete for memory, it halved the CPU time of a request (README)."""
        logits = np.empty((hidden.shape[0], self.weights_t.shape[1]), np.result_type(hidden, self.weights_t))
        books = max(1, BLOCK_BYTES // (self.weights_t.shape[0] * self.weights_t.itemsize))
        for first in range(0, logits.shape[1], books):
            block = self.weights_t[:, first : first + books]
            for row in range(hidden.shape[0]):
                np.matmul(hidden[row : row + 1], block, out=logits[row : row + 1, first : first + books])
        return rbm.sigmoid(logits + self.visible_bias + push)


def _of_partial_lists(activations, visible, partial, mean_input):
    """sigmoid of a kind of hidden unit's ``activations`` (a function of the visible rows):
    of the rows as ``Model._partial_lists`` reads them when it does (``partial``), the books
    each reader did not list adding its weight of ``mean_input()`` (what the fit readers'
    mean gives those units); of the rows as they are when it does not (None)."""
    if partial is None:
        return rbm.sigmoid(activations(visible))
    adjusted, weight = partial
    return rbm.sigmoid(activations(adjusted) + weight[:, None] * mean_input())


def to_visible(user_items, kind):
    """Rows of rating / 5 as the visible layer of a model trained on ``kind`` input."""
    return binary(user_items) if kind == "binary" else user_items


def save(path, model):
    """Write ``model`` to ``path`` atomically: a failed write leaves the old file intact."""
    arrays = {name: getattr(model, name) for name in ARRAYS + OPTIONAL_ARRAYS if getattr(model, name) is not None}
    npzfile.write(path, FORMAT, arrays, meta={"settings": model.settings, "history": model.history})


def load(path):
    fields = npzfile.read(path, FORMAT, meta=("settings", "history"), hint="; run train_rbm.py first")
    if "series" in fields:
        n_books, n_series = len(fields["book_ids"]), len(fields.get("series_bias", ()))
        found = fields["series"]
        if len(found) != n_books or len(fields.get("series_weights", ())) != n_books or found.max(initial=-1) >= n_series:
            raise InputError(f"{shown(os.fspath(path))}: damaged {FORMAT} file (its series units do not fit its {n_books} books)")
    return Model(**fields)

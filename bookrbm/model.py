"""A trained RBM as a portable ``.npz`` file: weights, biases, ids, settings and history.

Loading needs only NumPy, so recommend.py never imports TensorFlow.
"""
import dataclasses

import numpy as np

from . import npzfile, rbm
from .interactions import binary

FORMAT = "bookrbm-model-2"
ARRAYS = ("weights", "visible_bias", "hidden_bias", "book_ids")


@dataclasses.dataclass
class Model:
    """weights (n_books, n_hidden), visible_bias (n_books,), hidden_bias (n_hidden,), float32.

    book_ids : goodbooks ``book_id`` of each visible unit.
    settings : the hyperparameters it was trained with.
    history : one dict per epoch (free energies, reconstruction errors).
    """

    weights: np.ndarray
    visible_bias: np.ndarray
    hidden_bias: np.ndarray
    book_ids: np.ndarray
    settings: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)

    @property
    def params(self):
        return self.weights, self.visible_bias, self.hidden_bias

    def visible(self, user_items):
        """The visible vectors for rows of rating / 5: as they are, or 1 for every rated book."""
        return to_visible(user_items, self.settings.get("input", "rating"))

    def scores(self, user_items):
        """Reconstruction of each row (n_users, n_books): the score of every book."""
        return self.reconstruct(self.visible(user_items))

    def reconstruct(self, visible):
        """``scores`` of rows that are already visible vectors (``visible``'s output)."""
        if visible.shape[0] == 1:
            return self.visible_means(self.hiddens(visible))
        return rbm.reconstruct(visible, *self.params, self.settings.get("hidden_keep", 1.0))

    def hiddens(self, visible):
        """The hidden layer that drives a reconstruction: p(h|v), scaled by ``hidden_keep``
        for a model trained with dropout; (n_users, n_hidden)."""
        return self.settings.get("hidden_keep", 1.0) * rbm.mean_hiddens(visible, self.weights, self.hidden_bias)

    def visible_means(self, hidden):
        """p(v|h) of rows of ``hiddens``: the scores, (n_users, n_books).

        h Wᵀ against a row-major copy of Wᵀ (made once) is a third faster for few rows than
        through the transposed view."""
        if getattr(self, "_weights_t", None) is None:
            self._weights_t = np.ascontiguousarray(self.weights.T)
        return rbm.sigmoid(hidden @ self._weights_t + self.visible_bias)


def to_visible(user_items, kind):
    """Rows of rating / 5 as the visible layer of a model trained on ``kind`` input."""
    return binary(user_items) if kind == "binary" else user_items


def save(path, model):
    """Write ``model`` to ``path`` atomically: a failed write leaves the old file intact."""
    arrays = {name: getattr(model, name) for name in ARRAYS}
    npzfile.write(path, FORMAT, arrays, meta={"settings": model.settings, "history": model.history})


def load(path):
    fields = npzfile.read(path, FORMAT, meta=("settings", "history"), hint="; run train_rbm.py first")
    return Model(**fields)

"""A trained RBM as a portable ``.npz`` file: weights, biases, ids, settings and history.

Loading needs only NumPy, so recommend.py never imports TensorFlow.
"""
import dataclasses

import numpy as np

from . import npzfile

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


def save(path, model):
    """Write ``model`` to ``path`` atomically: a failed write leaves the old file intact."""
    arrays = {name: getattr(model, name) for name in ARRAYS}
    npzfile.write(path, FORMAT, arrays, meta={"settings": model.settings, "history": model.history})


def load(path):
    fields = npzfile.read(path, FORMAT, meta=("settings", "history"), hint="; run train_rbm.py first")
    return Model(**fields)

"""The processed data: who rated what, who wants to read what, and the book catalogue.

Saved as one ``.npz`` file (NumPy arrays only, no pickles), so it loads without pandas
or TensorFlow.
"""
import copy
import dataclasses

import numpy as np
import scipy.sparse as sp

from . import catalogue as catalogues
from . import npzfile

FORMAT = "bookrbm-processed-3"
ARRAYS = ("user_ids", "book_ids", "valid")


@dataclasses.dataclass
class Interactions:
    """Users × books data, one row per goodbooks ``user_id``, one column per book.

    ratings : CSR float32 (n_users, n_books), rating / 5, 0 where unread.
    to_read : CSR int8 (n_users, n_books), 1 where the book is on the user's to-read list.
    user_ids : int64 (n_users,), goodbooks ``user_id`` of each row, ascending.
    book_ids : int64 (n_books,), goodbooks ``book_id`` of each column, ascending.
    titles, authors : str (n_books,), for display.
    valid : bool (n_users,), True for users of the validation split.
    info : dict, how the file was made (seed, source, counts).
    catalogue : ``Catalogue``, Goodreads ids, ISBNs, covers and genres of the books.
    """

    ratings: sp.csr_matrix
    to_read: sp.csr_matrix
    user_ids: np.ndarray
    book_ids: np.ndarray
    titles: np.ndarray
    authors: np.ndarray
    valid: np.ndarray
    info: dict = dataclasses.field(default_factory=dict)
    catalogue: catalogues.Catalogue = None

    @property
    def n_users(self):
        return self.ratings.shape[0]

    @property
    def n_books(self):
        return self.ratings.shape[1]

    @property
    def train_rows(self):
        return np.flatnonzero(~self.valid)

    @property
    def valid_rows(self):
        return np.flatnonzero(self.valid)

    def row_of(self, user_id):
        """Row index of a goodbooks ``user_id``, or None if the user is not in the data."""
        return _position(self.user_ids, user_id)

    def column_of(self, book_id):
        """Column of a goodbooks ``book_id``, or None if the data has no such book."""
        return _position(self.book_ids, book_id)

    def find_columns(self, book_ids):
        """(columns, known) for goodbooks ``book_id``s: each one's column, and whether the
        data has that book at all (where not, its column means nothing)."""
        return _positions(self.book_ids, book_ids)

    def columns_of(self, book_ids):
        """Column indices of goodbooks ``book_id``s (all must be present)."""
        return np.searchsorted(self.book_ids, book_ids)


def _position(ids, value):
    """Where ``value`` is in the sorted ``ids``, or None if it is not there."""
    position = int(np.searchsorted(ids, value))
    return position if position < len(ids) and ids[position] == value else None


def _positions(ids, values):
    """``_position`` for many values at once: (positions, found). A value too large for
    int64 (a client can send one) is not found."""
    try:
        values, fits = np.asarray(values, dtype=np.int64), True
    except OverflowError:
        low, high = np.iinfo(np.int64).min, np.iinfo(np.int64).max
        fits = np.array([low <= value <= high for value in values], dtype=bool)
        values = np.array([value if ok else 0 for value, ok in zip(values, fits)], dtype=np.int64)
    positions = np.searchsorted(ids, values)
    found = (positions < len(ids)) & fits
    found[found] = ids[positions[found]] == values[found]
    return positions, found


def as_csr(rows):
    """``rows`` as CSR: as they are when they already are, since a new ``csr_matrix`` of a
    CSR checks its index arrays again (20-40 µs, much of a one-reader step)."""
    return rows if sp.issparse(rows) and rows.format == "csr" else sp.csr_matrix(rows)


def binary(user_items):
    """A CSR copy with 1 where a book was rated, whatever the rating."""
    rows = as_csr(user_items)
    out = with_values(rows, np.ones(rows.nnz, np.float32))
    if rows is user_items:  # the caller's own index arrays; a converted input's are new already
        out.indices, out.indptr = out.indices.copy(), out.indptr.copy()
    return out


def with_values(rows, values):
    """CSR ``rows`` with ``values`` for its stored entries: the same books, the index arrays
    shared (so never to be sorted or pruned in place).

    A shallow copy, where a new ``csr_matrix`` checks and converts its index arrays: 20-40
    µs, which is most of a one-reader step (a recommendation makes three)."""
    out = copy.copy(rows)
    out.data = values
    return out


def split_size(n, fraction):
    """How many of ``n`` users a ``fraction`` holds out: rounded, and at least one on each side
    whenever ``fraction`` > 0 and there are two users to split."""
    size = int(round(fraction * n))
    if fraction > 0 and n >= 2:
        size = min(max(size, 1), n - 1)
    return size


def _csr_arrays(prefix, matrix):
    return {
        f"{prefix}_data": matrix.data,
        f"{prefix}_indices": matrix.indices,
        f"{prefix}_indptr": matrix.indptr,
        f"{prefix}_shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def _csr_from(arrays, prefix):
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
        shape=tuple(arrays[f"{prefix}_shape"]),
    )


def save(path, data):
    """Write ``data`` to ``path`` atomically."""
    arrays = {name: getattr(data, name) for name in ARRAYS}
    arrays.update(_csr_arrays("ratings", data.ratings))
    arrays.update(_csr_arrays("to_read", data.to_read))
    arrays.update({f"book_{name}": a for name, a in data.catalogue.arrays().items()})
    books = {"titles": data.titles.tolist(), "authors": data.authors.tolist(), **data.catalogue.meta()}
    npzfile.write(path, FORMAT, arrays, meta={"info": data.info, "books": books})


def load(path):
    """Read a file written by ``save``; a missing or foreign file is an ``InputError``."""
    arrays = npzfile.read(path, FORMAT, meta=("info", "books"), hint="; run preprocess.py first")
    return Interactions(
        ratings=_csr_from(arrays, "ratings"),
        to_read=_csr_from(arrays, "to_read"),
        titles=np.array(arrays["books"]["titles"], dtype=str),
        authors=np.array(arrays["books"]["authors"], dtype=str),
        info=arrays["info"],
        catalogue=catalogues.load(
            {name: arrays[f"book_{name}"] for name in catalogues.ID_ARRAYS}, arrays["books"]
        ),
        **{name: arrays[name] for name in ARRAYS},
    )

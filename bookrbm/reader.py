"""A reader: what they rated, what else they read, and what they want to read, as columns of
the processed data. Made from a goodbooks user, a Goodreads export or a simple ratings file.

A book on the read shelf without a rating still says something about taste: it enters the
visible layer with the reader's own mean rating (a binary-input model sees 1 for it, as for
any read book). Currently-reading and custom shelves enter nothing, but, like every read
book and every other edition of one, are never recommended.
"""
import dataclasses
import functools
import os

import numpy as np
import scipy.sparse as sp

from . import matching
from .errors import InputError

EXPORT_COLUMNS = ("row", "title", "author", "goodreads_id", "isbn13", "isbn", "rating", "shelf")
RATINGS_COLUMNS = ("row", "book_id", "title", "author", "rating")


@dataclasses.dataclass(frozen=True)
class Reader:
    """name : who it is, for messages. Columns index the books of the processed data.
    Frozen, so that what is worked out from it once (``read``) stays true.

    rated, ratings : the rated books and their ratings (1..5).
    unrated : read but not rated.
    to_read : wanted (never one that is read).
    shelved : on some other shelf (currently reading, custom): not input, not recommended.
    matched, unmatched : for a file, the key each row matched by (None if none), and the
        rows that matched no book, as dicts of the file's ``unmatched_columns``.
    repeats : rows that named a book an earlier row had named (two editions of one book).
    """

    name: str
    rated: np.ndarray
    ratings: np.ndarray
    unrated: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    to_read: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    shelved: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    matched: list = dataclasses.field(default_factory=list)
    unmatched: list = dataclasses.field(default_factory=list)
    unmatched_columns: tuple = EXPORT_COLUMNS
    repeats: int = 0
    user_id: int = None

    @property
    def n_matched(self):
        """How many rows of the reader's file matched a goodbooks book."""
        return sum(key is not None for key in self.matched)

    @functools.cached_property
    def read(self):
        """Every book the reader has read, rated or not (worked out once: a reader is frozen)."""
        both = np.concatenate([self.rated, self.unrated])
        if (both[1:] > both[:-1]).all():  # already sorted and distinct, as a user's row is
            return both
        return np.unique(both)

    def visible(self, n_books, mean_rating=4.0):
        """CSR (1, n_books) of rating / 5; unrated reads take the reader's mean rating
        (``mean_rating`` if they rated nothing)."""
        columns, values = np.asarray(self.rated), np.asarray(self.ratings)
        if len(self.unrated):
            fill = values.mean() if len(values) else mean_rating
            columns = np.concatenate([columns, self.unrated])
            values = np.concatenate([values, np.full(len(self.unrated), fill)])
        values = values / 5.0
        order = np.argsort(columns)
        # int32, as SciPy keeps them: given int64 it checks and converts them (half the cost)
        return sp.csr_matrix(
            (values[order].astype(np.float32), columns[order].astype(np.int32), np.array([0, len(columns)], np.int32)),
            shape=(1, n_books),
        )


def check_has_reads(found, name):
    """A reader from a file must have read at least one book goodbooks-10k knows: only read
    books enter the model, so without one there is nothing to recommend from."""
    if len(found.read):
        return
    what = (f"none of its {found.n_matched} matched rows is a read book" if found.n_matched
            else f"none of its {len(found.matched)} rows is a goodbooks-10k book")
    raise InputError(f"{name}: {what}, so there is nothing to recommend from")


def _columns(values):
    return np.asarray(sorted(values), dtype=np.int64)


def from_user(data, user_id):
    """The goodbooks user ``user_id`` as the processed data holds them."""
    row = data.row_of(user_id)
    if row is None:
        examples = ", ".join(str(u) for u in data.user_ids[:5])
        raise InputError(
            f"user_id {user_id} is not in the processed data ({data.n_users} users; for example {examples})"
        )
    # straight from the CSR arrays: slicing a row with scipy costs more than the rest of a recommendation
    start, stop = data.ratings.indptr[row : row + 2]
    rated = data.ratings.indices[start:stop].astype(np.int64)
    wish_start, wish_stop = data.to_read.indptr[row : row + 2]
    wanted = data.to_read.indices[wish_start:wish_stop]
    # a mask of the books, where isin sorted both arrays (half of this function) or, with
    # kind="table", still took a third of it
    is_rated = np.zeros(data.n_books, dtype=bool)
    is_rated[rated] = True
    return Reader(
        name=f"user {user_id}",
        rated=rated,
        ratings=np.rint(data.ratings.data[start:stop] * 5).astype(np.int64),
        to_read=wanted[~is_rated[wanted]].astype(np.int64),
        user_id=int(user_id),
    )


def _collect(name, rows, match, columns):
    """Match rows (dicts with at least rating and shelf) with ``match(row) → (column, key)``
    and sort the books onto shelves; a book met twice keeps its highest rating and its
    most-read shelf."""
    rating_of, shelf_of, matched, unmatched, repeats = {}, {}, [], [], 0
    rank = {"read": 0, "currently-reading": 2, "to-read": 3}
    for row in rows:
        col, key = match(row)
        matched.append(key)
        if col is None:
            unmatched.append({name: row[name] for name in columns})
            continue
        repeats += col in rating_of
        shelf = "read" if row["rating"] > 0 else row["shelf"]
        rating_of[col] = max(rating_of.get(col, 0), row["rating"])
        if rank.get(shelf, 1) < rank.get(shelf_of.get(col), 4):
            shelf_of[col] = shelf
    rated = [c for c, r in rating_of.items() if r > 0]
    return Reader(
        name=name,
        rated=_columns(rated),
        ratings=np.array([rating_of[c] for c in sorted(rated)], dtype=np.int64),
        unrated=_columns(c for c, s in shelf_of.items() if s == "read" and rating_of[c] == 0),
        to_read=_columns(c for c, s in shelf_of.items() if s == "to-read" and rating_of[c] == 0),
        shelved=_columns(c for c, s in shelf_of.items() if s not in ("read", "to-read") and rating_of[c] == 0),
        matched=matched,
        unmatched=unmatched,
        unmatched_columns=columns,
        repeats=repeats,
    )


def from_goodreads(data, path, index=None):
    """A reader from a Goodreads library export; ``index`` is ``matching.Index(data)`` when the
    caller keeps one (a server: building it takes a good part of a second)."""
    from . import goodreads  # pandas: only for files, so that --user starts quickly

    export = goodreads.read_export(path)
    index = index or matching.Index(data)

    def match(row):
        return index.match(row["goodreads_id"], row["isbn13"], row["isbn"], row["title"], row["author"])

    return _collect(os.path.basename(os.fspath(path)), export.to_dict("records"), match, EXPORT_COLUMNS)


def from_ratings(data, path):
    """A reader from a CSV of ``book_id,rating`` or ``title,rating`` (optional ``author``);
    ``book_id`` is goodbooks' own id. Every listed book counts as read and rated."""
    from . import goodbooks

    path = os.fspath(path)
    table = goodbooks.read_table(path, ("rating",), optional=("book_id", "title", "author"), text=("title", "author"))
    if "book_id" not in table and "title" not in table:
        raise InputError(f"{path}: needs a book_id or a title column next to rating (header is: {','.join(table)})")
    ratings = goodbooks.integer_column(table, "rating", path)
    bad = (ratings < 1) | (ratings > 5)
    if bad.any():
        line = int(np.flatnonzero(bad)[0]) + 2
        raise InputError(f"{path}: line {line}: rating {ratings[bad][0]} is not from 1 to 5")
    n = len(table)
    book_ids = goodbooks.integer_column(table, "book_id", path) if "book_id" in table else np.full(n, -1)
    titles = table["title"].fillna("").astype(str) if "title" in table else [""] * n
    authors = table["author"].fillna("").astype(str) if "author" in table else [""] * n
    index = None  # built only if some row needs its title: a file of book_ids never does

    def match(row):  # a goodbooks book_id first, then whatever the title says
        nonlocal index
        column = data.column_of(row["book_id"])
        if column is not None:
            return column, "book_id"
        if row["title"]:
            index = index or matching.Index(data)
            return index.match(title=row["title"], author=row["author"])
        return None, None

    rows = [
        {"row": i + 1, "book_id": int(b), "title": t, "author": a, "rating": int(r), "shelf": "read"}
        for i, (b, t, a, r) in enumerate(zip(book_ids, titles, authors, ratings))
    ]
    return _collect(os.path.basename(path), rows, match, RATINGS_COLUMNS)

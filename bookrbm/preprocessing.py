"""goodbooks-10k CSVs → ``Interactions``: a sparse users × books matrix of rating / 5."""
import os

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import catalogue, goodbooks
from .errors import InputError, check_range
from .interactions import Interactions, split_size
from .paths import BUNDLED_DATA


def _keep_last(users, books):
    """Mask that keeps the last of each repeated (user, book) pair."""
    key = pd.Series(users * np.int64(books.max() + 1) + books)
    return ~key.duplicated(keep="last").to_numpy()


def _users_matrix(users, books, values, user_ids, book_ids, dtype):
    rows = np.searchsorted(user_ids, users)
    cols = np.searchsorted(book_ids, books)
    matrix = sp.csr_matrix((values.astype(dtype), (rows, cols)), shape=(len(user_ids), len(book_ids)))
    matrix.sort_indices()
    return matrix


def split_users(n_users, valid_fraction, rng):
    """Boolean mask of validation users: a seeded ``valid_fraction`` of all users."""
    check_range("--valid-fraction", valid_fraction, at_least=0, below=1)
    n_valid = split_size(n_users, valid_fraction)
    valid = np.zeros(n_users, dtype=bool)
    valid[rng.permutation(n_users)[:n_valid]] = True
    return valid


def build(data_dir=BUNDLED_DATA, *, max_users=None, rows=None, valid_fraction=0.2, seed=0, log=print):
    """Read ``books.csv``, ``ratings.csv`` and (if present) ``to_read.csv``, ``book_tags.csv`` and
    ``tags.csv`` from ``data_dir``.

    rows : keep only the first ``rows`` ratings after a stable sort by user_id (the write-up's
        option); applied before ``max_users``.
    max_users : keep a seeded random subset of this many users.
    """
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise InputError(f"{data_dir}: {'a file, not a folder' if os.path.exists(data_dir) else 'no such folder'}")
    books = goodbooks.read_books(os.path.join(data_dir, "books.csv"))
    book_ids = books["book_id"].to_numpy(np.int64)
    ratings_path = os.path.join(data_dir, "ratings.csv")
    users, rated, ratings = goodbooks.read_ratings(ratings_path, book_ids)
    n_rows = len(users)

    keep = _keep_last(users, rated)
    duplicates = int(n_rows - keep.sum())
    if duplicates:
        log(f"{ratings_path}: {duplicates} repeated (user_id, book_id) pairs; kept the last rating of each")
        users, rated, ratings = users[keep], rated[keep], ratings[keep]

    if rows is not None:
        check_range("--rows", rows, at_least=1)
        first = np.argsort(users, kind="stable")[:rows]
        users, rated, ratings = users[first], rated[first], ratings[first]

    rng = np.random.default_rng(seed)
    user_ids = np.unique(users)
    if max_users is not None:
        check_range("--max-users", max_users, at_least=1)
        if max_users < len(user_ids):
            user_ids = np.sort(rng.choice(user_ids, size=max_users, replace=False))
            chosen = np.isin(users, user_ids)
            users, rated, ratings = users[chosen], rated[chosen], ratings[chosen]

    matrix = _users_matrix(users, rated, ratings / 5.0, user_ids, book_ids, np.float32)

    to_read_path = os.path.join(data_dir, "to_read.csv")
    if os.path.exists(to_read_path):
        wish_users, wish_books = goodbooks.read_to_read(to_read_path, book_ids)
        ours = np.isin(wish_users, user_ids)
        wish_users, wish_books = wish_users[ours], wish_books[ours]
        if len(wish_users):
            keep = _keep_last(wish_users, wish_books)
            wish_users, wish_books = wish_users[keep], wish_books[keep]
        to_read = _users_matrix(
            wish_users, wish_books, np.ones(len(wish_users)), user_ids, book_ids, np.int8
        )
    else:
        log(f"{to_read_path}: not found; to-read lists are empty (recommend.py --from all still works)")
        to_read = sp.csr_matrix((len(user_ids), len(book_ids)), dtype=np.int8)

    shelves = None
    tag_paths = [os.path.join(data_dir, name) for name in ("book_tags.csv", "tags.csv")]
    if all(map(os.path.exists, tag_paths)):
        shelves = goodbooks.read_shelves(*tag_paths)
    else:
        log(f"{data_dir}: no book_tags.csv and tags.csv; books have no genres")

    book_catalogue = catalogue.from_books(books, shelves)
    valid = split_users(len(user_ids), valid_fraction, rng)
    info = {
        "source": os.path.abspath(data_dir),
        "seed": seed,
        "valid_fraction": valid_fraction,
        "max_users": max_users,
        "rows": rows,
        "rating_rows_read": n_rows,
        "duplicates_dropped": duplicates,
        "n_users": int(len(user_ids)),
        "n_books": int(len(book_ids)),
        "n_ratings": int(matrix.nnz),
        "n_to_read": int(to_read.nnz),
        "n_books_with_genres": int(sum(map(bool, book_catalogue.genres))),
    }
    return Interactions(
        ratings=matrix,
        to_read=to_read,
        user_ids=user_ids,
        book_ids=book_ids,
        titles=books["title"].to_numpy(dtype=str),
        authors=books["authors"].to_numpy(dtype=str),
        valid=valid,
        info=info,
        catalogue=book_catalogue,
    )

"""What identifies each book outside goodbooks (Goodreads ids, work, ISBNs, cover) and its genres."""
import dataclasses
import functools

import numpy as np

from .genres import genres_by_book

ID_ARRAYS = ("goodreads_ids", "best_ids", "work_ids")
TEXT_LISTS = ("isbns", "isbn13s", "edition_titles", "image_urls", "genres")


@dataclasses.dataclass
class Catalogue:
    """One entry per book, aligned with ``Interactions.book_ids``.

    goodreads_ids, best_ids, work_ids : int64 (n_books,), -1 where books.csv had none; editions
        of one work share a ``work_id``.
    isbns : str, ISBN-10 with the leading zeros that books.csv lost put back, or "".
    isbn13s : str, as books.csv stores it: a float such as "9.78043902348e+12" that has lost
        its last digit, or "".
    edition_titles : str, books.csv's ``title`` (with the series), for matching.
    image_urls : str, cover image address, or "".
    genres : list of lists, each book's genres, most shelved first (``bookrbm.genres``).
    """

    goodreads_ids: np.ndarray
    best_ids: np.ndarray
    work_ids: np.ndarray
    isbns: list
    isbn13s: list
    edition_titles: list
    image_urls: list
    genres: list

    def take(self, columns):
        """The entries of ``columns`` only, in that order."""
        fields = {name: getattr(self, name)[columns] for name in ID_ARRAYS}
        fields.update({name: [getattr(self, name)[c] for c in columns] for name in TEXT_LISTS})
        return Catalogue(**fields)

    @functools.cached_property
    def shared_works(self):
        """{work_id: columns} for the works that more than one column belongs to; goodbooks
        has one edition per work, so this is usually empty and ``editions`` free."""
        return _shared_works(self.work_ids)

    def editions(self, columns):
        """Every column that shares a work with one of ``columns`` (those included)."""
        if not self.shared_works:
            return np.asarray(columns, dtype=np.int64)
        out = set(int(c) for c in columns)
        for c in columns:
            out.update(self.shared_works.get(int(self.work_ids[c]), ()))
        return np.fromiter(sorted(out), dtype=np.int64, count=len(out))

    def arrays(self):
        return {name: getattr(self, name) for name in ID_ARRAYS}

    def meta(self):
        return {name: getattr(self, name) for name in TEXT_LISTS}


def _shared_works(work_ids):
    """{work_id: columns} for the works that more than one column belongs to (-1 is no work)."""
    known = work_ids >= 0
    values, counts = np.unique(work_ids[known], return_counts=True)
    shared = values[counts > 1]
    columns = np.flatnonzero(np.isin(work_ids, shared) & known)
    out = {}
    for c in columns:
        out.setdefault(int(work_ids[c]), []).append(int(c))
    return out


def _isbn10(raw):
    raw = raw.strip()
    return raw.zfill(10) if raw and len(raw) <= 10 and raw[:-1].isdigit() else raw


def from_books(books, shelves=None):
    """books : the table of ``goodbooks.read_books``; shelves : that of ``goodbooks.read_shelves``."""
    genres = genres_by_book(shelves) if shelves is not None else {}
    goodreads_ids = books["goodreads_book_id"].to_numpy(np.int64)
    return Catalogue(
        goodreads_ids=goodreads_ids,
        best_ids=books["best_book_id"].to_numpy(np.int64),
        work_ids=books["work_id"].to_numpy(np.int64),
        isbns=[_isbn10(x) for x in books["isbn"]],
        isbn13s=[str(x) for x in books["isbn13"]],
        edition_titles=[str(x) for x in books["edition_title"]],
        image_urls=[str(x) for x in books["image_url"]],
        genres=[genres.get(int(g), []) for g in goodreads_ids],
    )


def load(arrays, meta):
    return Catalogue(**{name: arrays[name] for name in ID_ARRAYS}, **{name: meta[name] for name in TEXT_LISTS})

"""Rank books for one reader by the RBM's reconstruction of their ratings, and say why (NumPy only)."""
import dataclasses
import unicodedata

import numpy as np

from . import genres
from .errors import InputError, check_range
from .explain import because as explain_because
from .reader import Reader, from_user

SOURCES = ("to_read", "all")
READ_BOOK_COLUMNS = ("book_id", "title", "authors", "rating", "genres", "score")  # of read_books_rows
RECOMMENDATION_COLUMNS = ("rank", "book_id", "title", "authors", "score", "genres", "because_you_read")


@dataclasses.dataclass
class Recommendations:
    """What ``recommend`` found for one reader; columns index the books of the data.

    columns : recommended, best first. scores : the score of every book, (n_books,).
    because : for each recommended column, the rated books that pushed it up most.
    """

    reader: Reader
    source: str
    columns: np.ndarray
    scores: np.ndarray
    because: list


def check_compatible(model, data):
    if not np.array_equal(model.book_ids, data.book_ids):
        raise InputError(
            "the model was trained on other books than the processed data holds; "
            "run train_rbm.py on this data"
        )


def top_n(scores, candidates, n):
    """Columns of the ``n`` best-scored candidates, best first; ties go to the lower column."""
    columns = np.flatnonzero(candidates)
    chosen = scores[columns]
    if n < len(columns):
        # partition keeps this O(n_books); every score equal to the cut-off stays in.
        cutoff = np.partition(chosen, len(columns) - n)[len(columns) - n]
        keep = chosen >= cutoff
        columns, chosen = columns[keep], chosen[keep]
    return columns[np.lexsort((columns, -chosen))][:n]


def excluded(data, reader):
    """Books never to recommend: every read or shelved book and every edition of its work."""
    seen = np.concatenate([reader.read, reader.shelved]).astype(np.int64)
    out = np.zeros(data.n_books, dtype=bool)
    out[data.catalogue.editions(seen)] = True
    return out


def candidates(data, reader, source):
    """Boolean mask of the books to rank for ``reader``."""
    allowed = ~excluded(data, reader)
    if source == "all":
        return allowed
    wanted = np.zeros(data.n_books, dtype=bool)
    wanted[reader.to_read] = True
    wanted &= allowed
    if not wanted.any():
        hint = ""
        if reader.user_id is not None and data.to_read.nnz:
            readers = np.flatnonzero(np.diff(data.to_read.indptr) > 0)
            hint = f" (users with to-read lists: {', '.join(str(u) for u in data.user_ids[readers[:5]])})"
        raise EmptyToRead(reader.name, hint)
    return wanted


class EmptyToRead(InputError):
    """The to-read list was asked for and holds no unread book. The message names the way to
    ask for every book instead, ``--from all`` unless a caller words it for its own users
    (``worded``)."""

    def __init__(self, name, hint=""):
        self.name, self.hint = name, hint
        super().__init__(self.worded("--from all"))

    def worded(self, rank_all):
        return f"{self.name} has no unread books on their to-read list; use {rank_all} to rank every book they have not read{self.hint}"


def default_source(reader):
    """What to rank when the reader does not say: their to-read list, as the write-up did,
    or every book they have not read when they have no list."""
    return "to_read" if len(reader.to_read) else "all"


def recommend(model, data, reader, n=10, source=None, explain=3):
    """The ``n`` best books for ``reader`` (a ``Reader``, or a goodbooks user_id).

    source : "to_read" ranks the reader's to-read list (the write-up's choice); "all" ranks
        every book they have not read; None is ``default_source``. Their ratings are folded
        in through the trained weights, so no reader needs retraining.
    explain : how many read books to name for each recommendation.
    """
    return ranked(model, data, fold_in(model, data, [reader])[0], n, source, explain)


@dataclasses.dataclass
class Folded:
    """One reader folded in: ``inputs``, their visible vector as the model sees it (CSR, 1
    row); ``hidden`` and ``series``, the p(h|v) (n_hidden,) and series units' p(g|v)
    (n_series,) or None it gives; ``scores``, the reconstruction (n_books,)."""

    reader: Reader
    inputs: object
    hidden: np.ndarray
    series: np.ndarray
    scores: np.ndarray


def fold_in(model, data, readers):
    """A ``Folded`` for each of ``readers`` (``Reader``s or goodbooks user_ids), each the
    same as alone; their products with the weights share one pass over them
    (``Model.fold_in_each``), as a server's readers who ask at the same moment do."""
    readers = [reader if isinstance(reader, Reader) else from_user(data, reader) for reader in readers]
    inputs = [model.visible(reader.visible(data.n_books)) for reader in readers]
    return [
        Folded(reader, visible, hidden[0], None if series is None else series[0], scores[0])
        for reader, visible, (hidden, series, scores) in zip(readers, inputs, model.fold_in_each(inputs))
    ]


def ranked(model, data, folded, n=10, source=None, explain=3):
    """``recommend``'s answer for a reader ``fold_in`` has folded in."""
    source = source or default_source(folded.reader)
    return rank(model, data, folded.reader, folded.inputs, folded.scores, n, source, explain,
                hidden=folded.hidden, series=folded.series)


def rank(model, data, reader, inputs, scores, n=10, source="to_read", explain=3, hidden=None, series=None):
    """``recommend`` once the scores are known: ``inputs`` is the reader's visible vector as
    the model sees it (CSR, 1 row), ``scores`` its reconstruction (n_books,), ``hidden`` its
    p(h|v) (n_hidden,) and ``series`` its series units' (n_series,), computed again if not given."""
    if source not in SOURCES:
        raise InputError(f"--from must be one of {', '.join(SOURCES)}, not {source!r}")
    check_range("--top", n, at_least=1)
    columns = top_n(scores, candidates(data, reader, source), n)
    if explain:
        because = explain_because(model, inputs, columns, reader.read, top=explain, hidden=hidden, series=series)
    else:
        because = [np.zeros(0, np.int64) for _ in columns]
    return Recommendations(reader=reader, source=source, columns=columns, scores=scores, because=because)


def _genres(data, column, top=3):
    """The genres shown with a book: its first ``top``."""
    return data.catalogue.genres[column][:top]


def read_books_rows(found, data):
    """The reader's read books, best rated first (then by score); unrated reads have rating ""."""
    reader = found.reader
    columns = np.concatenate([reader.rated, reader.unrated])
    ratings = np.concatenate([reader.ratings, np.zeros(len(reader.unrated), np.int64)])
    order = np.lexsort((-found.scores[columns], -ratings))
    return [
        {
            "book_id": int(data.book_ids[c]),
            "title": data.titles[c],
            "authors": data.authors[c],
            "rating": int(r) if r else "",
            "genres": ", ".join(_genres(data, c)),
            "score": round(float(found.scores[c]), 6),
        }
        for c, r in zip(columns[order], ratings[order])
    ]


def book_record(data, column):
    """One book as the web API shows it: ids, title, authors, up to 3 genres and the cover."""
    return {
        "book_id": int(data.book_ids[column]),
        "title": str(data.titles[column]),
        "authors": str(data.authors[column]),
        "genres": _genres(data, column),
        "image_url": data.catalogue.image_urls[column],
    }


def recommendation_records(found, data, records=None):
    """The recommendations, best first: rank, the book, its score, and the read books that
    led to it (``because_you_read``: book_id and title of each).

    records : every column's ``book_record``, where the caller keeps them (the web app:
        making an answer's records again was two thirds of this function's cost)."""
    if records is None:  # just the books this answer names
        named = set(found.columns.tolist()).union(*(because.tolist() for because in found.because))
        records = {column: book_record(data, column) for column in named}
    return [
        {
            "rank": rank,
            **records[column],
            "score": round(float(found.scores[column]), 6),
            "because_you_read": [{"book_id": records[k]["book_id"], "title": records[k]["title"]} for k in because.tolist()],
        }
        for rank, (column, because) in enumerate(zip(found.columns.tolist(), found.because), start=1)
    ]


def recommendation_rows(found, data):
    """``recommendation_records`` as flat rows for recommendations.csv and the printed table."""
    return [
        {
            "rank": record["rank"],
            "book_id": record["book_id"],
            "title": record["title"],
            "authors": record["authors"],
            "score": record["score"],
            "genres": ", ".join(record["genres"]),
            "because_you_read": " | ".join(book["title"] for book in record["because_you_read"]),
        }
        for record in recommendation_records(found, data)
    ]


def genre_profile(found, data, top=8):
    """(genre names, {"read": shares, "recommended": shares}) by each book's main genre."""
    books = data.catalogue.genres
    return genres.profile(
        {
            "read": [books[c] for c in found.reader.read],
            "recommended": [books[c] for c in found.columns],
        },
        top=top,
    )


def format_profile(names, shares):
    lines = [f"{'genre':<20}{'read':>8}{'recommended':>14}"]
    for i, name in enumerate(names):
        lines.append(f"{name:<20}{shares['read'][i]:>8.0%}{shares['recommended'][i]:>14.0%}")
    return "\n".join(lines)


def _width(char):
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


def _fit(text, width):
    """``text`` cut to ``width`` terminal columns (CJK characters take two) and padded to it."""
    if sum(map(_width, text)) > width:
        used, kept = 0, []
        for char in text:
            if used + _width(char) > width - 1:
                break
            kept.append(char)
            used += _width(char)
        text = "".join(kept) + "…"
    return text + " " * (width - sum(map(_width, text)))


def format_table(rows, value="score", details=()):
    """A plain-text table of rank, title, authors and ``value``; each of ``details`` that a
    row has (genres, because_you_read) goes on a line of its own under it."""
    lines = [f"{'#':>3}  {_fit('title', 52)}  {_fit('authors', 30)}  {value:>7}"]
    for rank, row in enumerate(rows, start=1):
        shown = f"{row[value]:.4f}" if isinstance(row[value], float) else str(row[value])
        lines.append(
            f"{rank:>3}  {_fit(row['title'], 52)}  {_fit(row['authors'], 30)}  {shown:>7}"
        )
        for name in details:
            if row.get(name):
                label = name.replace("_", " ")
                lines.append(f"     {_fit(f'{label}: {row[name]}', 92).rstrip()}")
    return "\n".join(lines)

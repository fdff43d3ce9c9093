"""Rank books for one reader by the RBM's reconstruction of their ratings (NumPy only)."""
import dataclasses
import unicodedata

import numpy as np

from .errors import InputError

SOURCES = ("to_read", "all")


@dataclasses.dataclass
class Recommendations:
    """What ``recommend`` found for one reader; ``*_columns`` index the books of the data."""

    user_id: int
    read_columns: np.ndarray
    read_ratings: np.ndarray  # 1..5
    columns: np.ndarray  # recommended, best first
    scores: np.ndarray  # score of every book, (n_books,)


def check_compatible(model, data):
    if not np.array_equal(model.book_ids, data.book_ids):
        raise InputError(
            "the model was trained on other books than the processed data holds; "
            "run train_rbm.py on this data"
        )


def top_n(scores, candidates, n):
    """Columns of the ``n`` best-scored candidates, best first; ties go to the lower column."""
    columns = np.flatnonzero(candidates)
    if n < len(columns):
        # argpartition keeps this O(n_books); every score equal to the cut-off stays in.
        cutoff = np.partition(scores[columns], len(columns) - n)[len(columns) - n]
        columns = columns[scores[columns] >= cutoff]
    order = np.lexsort((columns, -scores[columns]))
    return columns[order][:n]


def _example_ids(data, count=5):
    return ", ".join(str(u) for u in data.user_ids[:count])


def recommend(model, data, user_id, n=10, source="to_read"):
    """The ``n`` best books for goodbooks user ``user_id`` that they have not rated.

    source : "to_read" ranks the user's to-read list (the write-up's choice); "all" ranks
        every book they have not rated. The user's own ratings are folded in through the
        trained weights, so validation users need no retraining.
    """
    if source not in SOURCES:
        raise InputError(f"--from must be one of {', '.join(SOURCES)}, not {source!r}")
    if n < 1:
        raise InputError(f"--top must be at least 1, not {n}")
    row = data.row_of(user_id)
    if row is None:
        raise InputError(
            f"user_id {user_id} is not in the processed data ({data.n_users} users; "
            f"for example {_example_ids(data)})"
        )
    visible = data.ratings[row]
    scores = model.scores(visible)[0]
    unrated = np.ones(data.n_books, dtype=bool)
    unrated[visible.indices] = False
    if source == "to_read":
        candidates = np.zeros(data.n_books, dtype=bool)
        candidates[data.to_read[row].indices] = True
        candidates &= unrated
        if not candidates.any():
            readers = np.flatnonzero(np.diff(data.to_read.indptr) > 0)
            examples = ", ".join(str(u) for u in data.user_ids[readers[:5]])
            raise InputError(
                f"user_id {user_id} has no unrated books on their to-read list; use --from all "
                f"to rank every book they have not rated (users with to-read lists: {examples})"
            )
    else:
        candidates = unrated
    return Recommendations(
        user_id=int(user_id),
        read_columns=visible.indices.copy(),
        read_ratings=np.rint(visible.data * 5).astype(int),
        columns=top_n(scores, candidates, n),
        scores=scores,
    )


def read_books_rows(found, data):
    """The reader's rated books, best rated first (then by score)."""
    order = np.lexsort((-found.scores[found.read_columns], -found.read_ratings))
    return [
        {
            "book_id": int(data.book_ids[c]),
            "title": data.titles[c],
            "authors": data.authors[c],
            "rating": int(r),
            "score": round(float(found.scores[c]), 6),
        }
        for c, r in zip(found.read_columns[order], found.read_ratings[order])
    ]


def recommendation_rows(found, data):
    return [
        {
            "rank": rank,
            "book_id": int(data.book_ids[c]),
            "title": data.titles[c],
            "authors": data.authors[c],
            "score": round(float(found.scores[c]), 6),
        }
        for rank, c in enumerate(found.columns, start=1)
    ]


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


def format_table(rows, value="score"):
    """A plain-text table of rank, title, authors and ``value``."""
    lines = [f"{'#':>3}  {_fit('title', 52)}  {_fit('authors', 30)}  {value:>7}"]
    for rank, row in enumerate(rows, start=1):
        shown = f"{row[value]:.4f}" if isinstance(row[value], float) else str(row[value])
        lines.append(
            f"{rank:>3}  {_fit(row['title'], 52)}  {_fit(row['authors'], 30)}  {shown:>7}"
        )
    return "\n".join(lines)

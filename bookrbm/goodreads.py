"""Read a Goodreads library export (Settings → Import and export → Export library).

Current exports have 24 columns, older ones 31; only the columns below are used, found by
name. ISBNs come as ``="0441013597"`` (or ``=""``), My Rating 0 means "not rated", and
reviews may hold HTML and line breaks inside quotes, so rows are counted as records, not
as lines of the file.
"""
import numpy as np
import pandas as pd

from .errors import InputError
from .goodbooks import read_table, text_column

REQUIRED = ("Book Id", "Title")
OPTIONAL = ("Author", "ISBN", "ISBN13", "My Rating", "Exclusive Shelf")
SHELVES = ("read", "currently-reading", "to-read")


def clean_isbn(raw):
    """``="0441013597"`` → ``0441013597``; hyphens and spaces go, a final x becomes X."""
    text = str(raw).strip().lstrip("=").strip('"').replace("-", "").replace(" ", "")
    return text.upper()


def _ratings(table, path):
    if "My Rating" not in table:
        return np.zeros(len(table), dtype=np.int64)
    raw = table["My Rating"].fillna("0").astype(str).str.strip().replace("", "0")
    numbers = pd.to_numeric(raw, errors="coerce")
    bad = numbers.isna().to_numpy() | ~numbers.isin(range(6)).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{path}: row {row + 1} ({table['Title'].iloc[row]!r}): My Rating is "
            f"{raw.iloc[row]!r}, not a whole number from 0 (not rated) to 5"
        )
    return numbers.to_numpy(np.int64)


def _book_ids(table, path):
    raw = text_column(table, "Book Id")
    numbers = pd.to_numeric(raw.replace("", "-1"), errors="coerce")
    bad = numbers.isna().to_numpy() | (numbers.to_numpy(np.float64) % 1 != 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: row {row + 1}: Book Id is {raw.iloc[row]!r}, not a whole number")
    return numbers.to_numpy(np.int64)


def _text(table, column):
    return text_column(table, column).to_numpy(dtype=object)


def read_export(path):
    """The export as a DataFrame: row (1-based record number), goodreads_id (-1 if empty),
    title, author, isbn, isbn13, rating (0 = not rated) and shelf."""
    table = read_table(path, REQUIRED, optional=OPTIONAL, text=REQUIRED + OPTIONAL)
    shelf = _text(table, "Exclusive Shelf")
    ratings = _ratings(table, path)
    # an export without Exclusive Shelf still tells what was read: what was rated
    shelf = np.where(shelf == "", np.where(ratings > 0, "read", "to-read"), shelf)
    return pd.DataFrame(
        {
            "row": np.arange(1, len(table) + 1),
            "goodreads_id": _book_ids(table, path),
            "title": _text(table, "Title"),
            "author": _text(table, "Author"),
            "isbn": [clean_isbn(x) for x in _text(table, "ISBN")],
            "isbn13": [clean_isbn(x) for x in _text(table, "ISBN13")],
            "rating": ratings,
            "shelf": [str(s).lower() for s in shelf],
        }
    )

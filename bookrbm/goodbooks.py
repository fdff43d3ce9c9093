"""Read goodbooks-10k CSV files, finding columns by header name and checking every value.

Every problem becomes an ``InputError`` that names the file, the line and the value.
Line numbers count the header as line 1, as an editor does.
"""
import os

import numpy as np
import pandas as pd

from .errors import InputError

BOOK_COLUMNS = ("book_id", "title", "authors")
RATING_COLUMNS = ("user_id", "book_id", "rating")
TO_READ_COLUMNS = ("user_id", "book_id")


def _line(position):
    return position + 2  # one for the header, one because editors count from 1


def _read_header(path):
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a CSV file") from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror})") from None
    if not head.strip():
        raise InputError(f"{path}: file is empty")
    if b"\0" in head:
        raise InputError(f"{path}: is not a text CSV file (it contains binary data)")
    try:
        header = pd.read_csv(path, nrows=0)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{path}: cannot be read as CSV ({str(error).splitlines()[0]})") from None
    return [str(name).strip() for name in header.columns]


def read_table(path, required, optional=()):
    """Read the ``required`` (and any present ``optional``) columns of a CSV file by name."""
    path = os.fspath(path)
    header = _read_header(path)
    missing = [name for name in required if name not in header]
    if missing:
        raise InputError(
            f"{path}: missing column {', '.join(repr(m) for m in missing)} "
            f"(header is: {','.join(header)})"
        )
    wanted = list(required) + [name for name in optional if name in header]
    try:
        table = pd.read_csv(
            path,
            usecols=lambda name: str(name).strip() in wanted,
            keep_default_na=False,
            na_values=[""],
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{path}: cannot be read as CSV ({str(error).splitlines()[0]})") from None
    table.columns = [str(name).strip() for name in table.columns]
    if table.empty:
        raise InputError(f"{path}: has a header but no data rows")
    return table


def integer_column(table, column, path):
    """The column as int64; the first value that is empty or not a whole number is an error."""
    values = table[column]
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(np.int64)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna().to_numpy() | (numbers.to_numpy(np.float64) % 1 != 0)
    if bad.any():
        position = int(np.flatnonzero(bad)[0])
        raw = values.iloc[position]
        shown = "an empty value" if pd.isna(raw) else repr(str(raw))
        raise InputError(f"{path}: line {_line(position)}: {column} is {shown}, not a whole number")
    return numbers.to_numpy(np.int64)


def _first_bad(bad, values, path, column, why):
    position = int(np.flatnonzero(bad)[0])
    raise InputError(
        f"{path}: line {_line(position)}: {column} {values[position]} {why} "
        f"({int(bad.sum())} such row{'s' if bad.sum() != 1 else ''})"
    )


def read_books(path):
    """books.csv as a DataFrame sorted by book_id, with ``title`` never empty.

    ``display_title`` is ``original_title`` where present, else ``title``.
    """
    table = read_table(path, BOOK_COLUMNS, optional=("original_title",))
    book_ids = integer_column(table, "book_id", path)
    seen = pd.Index(book_ids).duplicated()
    if seen.any():
        _first_bad(seen, book_ids, path, "book_id", "appears more than once")
    titles = table["title"].fillna("").astype(str)
    if "original_title" in table:
        original = table["original_title"].fillna("").astype(str).str.strip()
        display = original.where(original != "", titles)
    else:
        display = titles
    books = pd.DataFrame(
        {
            "book_id": book_ids,
            "title": display.to_numpy(dtype=str),
            "authors": table["authors"].fillna("").astype(str).to_numpy(dtype=str),
        }
    )
    return books.sort_values("book_id", kind="stable").reset_index(drop=True)


def _check_known_books(book_ids, known, path):
    unknown = ~np.isin(book_ids, known)
    if unknown.any():
        _first_bad(unknown, book_ids, path, "book_id", "is not in books.csv")


def read_ratings(path, known_book_ids):
    """ratings.csv as three int64 arrays (user_id, book_id, rating), in file order."""
    table = read_table(path, RATING_COLUMNS)
    users = integer_column(table, "user_id", path)
    books = integer_column(table, "book_id", path)
    ratings = integer_column(table, "rating", path)
    out_of_range = (ratings < 1) | (ratings > 5)
    if out_of_range.any():
        _first_bad(out_of_range, ratings, path, "rating", "is not from 1 to 5")
    _check_known_books(books, known_book_ids, path)
    return users, books, ratings


def read_to_read(path, known_book_ids):
    """to_read.csv as two int64 arrays (user_id, book_id)."""
    table = read_table(path, TO_READ_COLUMNS)
    users = integer_column(table, "user_id", path)
    books = integer_column(table, "book_id", path)
    _check_known_books(books, known_book_ids, path)
    return users, books

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
BOOK_ID_COLUMNS = ("goodreads_book_id", "best_book_id", "work_id")  # optional; -1 where absent
BOOK_TEXT_COLUMNS = ("isbn", "isbn13", "image_url")  # optional; "" where absent
BOOK_TAG_COLUMNS = ("goodreads_book_id", "tag_id", "count")
TAG_COLUMNS = ("tag_id", "tag_name")


def _line(position):
    return position + 2  # one for the header, one because editors count from 1


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")  # what Excel's "Unicode text" and some editors write
FALLBACK_ENCODING = "cp1252"  # a CSV saved again by Excel on Windows; goodbooks and Goodreads write UTF-8


def _encodings(head):
    """The encodings to try, in order, for a file that starts with the bytes ``head``."""
    return ("utf-16",) if head[:2] in UTF16_BOMS else ("utf-8", FALLBACK_ENCODING)


def _read_csv(path, encodings, **options):
    """pandas.read_csv in the first of ``encodings`` that decodes the whole file; a file none
    of them decodes is the InputError of the first."""
    first = None
    for encoding in encodings:
        try:
            return pd.read_csv(path, encoding=encoding, **options)
        except UnicodeDecodeError as error:
            first = first or error
        except (pd.errors.ParserError, ValueError) as error:
            first = error
            break
    raise InputError(f"{path}: cannot be read as CSV ({str(first).splitlines()[0]})") from None


def _read_header(path):
    """(column names, encodings to read the file in)."""
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
    encodings = _encodings(head)
    if b"\0" in head and encodings[0] != "utf-16":
        raise InputError(f"{path}: is not a text CSV file (it contains binary data)")
    header = _read_csv(path, encodings, nrows=0)
    return [str(name).strip() for name in header.columns], encodings


def read_table(path, required, optional=(), text=()):
    """Read the ``required`` (and any present ``optional``) columns of a CSV file by name:
    UTF-8 (with or without a byte-order mark), UTF-16 with one, or else Windows-1252.

    text : columns kept as the strings they are (an ISBN is not a number).
    """
    path = os.fspath(path)
    header, encodings = _read_header(path)
    missing = [name for name in required if name not in header]
    if missing:
        raise InputError(
            f"{path}: missing column {', '.join(repr(m) for m in missing)} "
            f"(header is: {','.join(header)})"
        )
    wanted = list(required) + [name for name in optional if name in header]
    table = _read_csv(
        path,
        encodings,
        usecols=lambda name: str(name).strip() in wanted,
        dtype={name: str for name in header if name in text},
        keep_default_na=False,
        na_values=[""],
    )
    table.columns = [str(name).strip() for name in table.columns]
    if table.empty:
        raise InputError(f"{path}: has a header but no data rows")
    return table


def text_column(table, column):
    """The column as a pandas Series of stripped text, "" where a value is missing, all ""
    if the table has no such column."""
    if column not in table:
        return pd.Series("", index=table.index, dtype=object)
    return table[column].fillna("").astype(str).str.strip()


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

    ``title`` is ``original_title`` where present, else ``title``; ``edition_title`` is the
    file's own ``title`` (it names the series, "(The Hunger Games, #1)").
    The matching keys of ``BOOK_ID_COLUMNS`` and ``BOOK_TEXT_COLUMNS`` are kept as they are
    when the file has them.
    """
    optional = ("original_title",) + BOOK_ID_COLUMNS + BOOK_TEXT_COLUMNS
    table = read_table(path, BOOK_COLUMNS, optional=optional, text=BOOK_TEXT_COLUMNS)
    book_ids = integer_column(table, "book_id", path)
    seen = pd.Index(book_ids).duplicated()
    if seen.any():
        _first_bad(seen, book_ids, path, "book_id", "appears more than once")
    titles = table["title"].fillna("").astype(str)
    if "original_title" in table:
        original = text_column(table, "original_title")
        display = original.where(original != "", titles)
    else:
        display = titles
    books = pd.DataFrame(
        {
            "book_id": book_ids,
            "title": display.to_numpy(dtype=str),
            "authors": table["authors"].fillna("").astype(str).to_numpy(dtype=str),
            "edition_title": titles.to_numpy(dtype=str),
        }
    )
    for column in BOOK_ID_COLUMNS:
        books[column] = integer_column(table, column, path) if column in table else -1
    for column in BOOK_TEXT_COLUMNS:
        books[column] = text_column(table, column).to_numpy(dtype=str)
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


def read_shelves(book_tags_path, tags_path):
    """book_tags.csv joined to tags.csv: a DataFrame of goodreads_book_id, tag_name, count."""
    tags = read_table(tags_path, TAG_COLUMNS)
    tag_ids = integer_column(tags, "tag_id", tags_path)
    table = read_table(book_tags_path, BOOK_TAG_COLUMNS)
    shelf_tags = integer_column(table, "tag_id", book_tags_path)
    unknown = ~np.isin(shelf_tags, tag_ids)
    if unknown.any():
        _first_bad(unknown, shelf_tags, book_tags_path, "tag_id", f"is not in {tags_path}")
    names = pd.Series(tags["tag_name"].fillna("").astype(str).to_numpy(), index=tag_ids)
    names = names[~names.index.duplicated(keep="last")]
    return pd.DataFrame(
        {
            "goodreads_book_id": integer_column(table, "goodreads_book_id", book_tags_path),
            "tag_name": names.reindex(shelf_tags).to_numpy(),
            "count": integer_column(table, "count", book_tags_path),
        }
    )

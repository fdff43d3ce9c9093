"""Find the goodbooks book that a row of someone's own list names.

Keys, tried in order (``KEYS``): the Goodreads book id against ``goodreads_book_id``, then
against ``best_book_id``; the ISBN-13; the ISBN-10; the normalised title with the first
author; for lists that give no author, the title alone. books.csv keeps ISBN-13 as a float
that lost its last digit, so an exact ISBN-13 is made from the ISBN-10 where there is one,
and otherwise the float matches any ISBN-13 it could have been rounded from, if only one book
is that close.
"""
import collections
import re
import unicodedata

KEYS = ("book_id", "best_book_id", "isbn13", "isbn", "title+author", "title")


def _plain(text):
    text = unicodedata.normalize("NFKD", str(text))
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def normal_title(title):
    """"The Hunger Games (The Hunger Games, #1)" → "hunger games"; accents, case, punctuation
    and a leading article do not count."""
    text = _plain(title)
    text = re.sub(r"\s*\([^()]*#[^()]*\)\s*$", "", text)  # the series in brackets
    text = text.replace("&", " and ")
    words = re.sub(r"[^\w]+", " ", text).split()
    if len(words) > 1 and words[0] in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)


def normal_author(name):
    """"J. K. Rowling" and "J.K. Rowling" → "jkrowling"; the first of several authors."""
    first = str(name).split(",")[0]
    return re.sub(r"[^\w]+", "", _plain(first))


def isbn13_from_isbn10(isbn10):
    """The ISBN-13 of an ISBN-10 ("0439023483" → "9780439023481"), or "" if it is not one."""
    if len(isbn10) != 10 or not isbn10[:9].isdigit():
        return ""
    core = "978" + isbn10[:9]
    check = (10 - sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(core)) % 10) % 10
    return core + str(check)


def _float_isbn13(text):
    """(value, how far the true ISBN-13 may lie from it) for books.csv's "9.78043902348e+12".

    The file prints 12 significant digits (and drops trailing zeros), so a 13-digit ISBN in
    exponent form is off by at most 5.
    """
    try:
        value = float(text)
    except ValueError:
        return None
    if not (1e12 <= value < 1e13):
        return None
    return value, (5.0 if "e" in text.lower() else 0.5)


class Index:
    """Lookups from every key to a column of ``data``; where several books share a key, the
    lowest book_id (goodbooks numbers books by popularity) wins."""

    def __init__(self, data):
        books = data.catalogue
        self.by = {key: {} for key in KEYS}
        self._rounded = []  # (value, half unit, column) of ISBN-13s known only as floats
        for col in range(data.n_books):
            self._add("book_id", int(books.goodreads_ids[col]), col)
            self._add("best_book_id", int(books.best_ids[col]), col)
            isbn10 = books.isbns[col]
            self._add("isbn", isbn10, col)
            exact = isbn13_from_isbn10(isbn10)
            if exact:
                self._add("isbn13", exact, col)
            else:
                rounded = _float_isbn13(books.isbn13s[col])
                if rounded:
                    self._rounded.append((*rounded, col))
            author = normal_author(data.authors[col])
            for title in {normal_title(data.titles[col]), normal_title(books.edition_titles[col])}:
                self._add("title+author", (title, author), col)
                self._add("title", title, col)

    def _add(self, key, value, col):
        if value not in ("", -1, ("", "")):
            self.by[key].setdefault(value, col)

    def _isbn13(self, isbn13):
        if not isbn13:
            return None
        if isbn13 in self.by["isbn13"]:
            return self.by["isbn13"][isbn13]
        if not isbn13.isdigit():
            return None
        number = int(isbn13)
        close = {col for value, half, col in self._rounded if abs(number - value) <= half}
        return close.pop() if len(close) == 1 else None

    def match(self, goodreads_id=-1, isbn13="", isbn="", title="", author=""):
        """(column, key) of the first key that finds a book, or (None, None)."""
        tries = (
            ("book_id", lambda: self.by["book_id"].get(goodreads_id)),
            ("best_book_id", lambda: self.by["best_book_id"].get(goodreads_id)),
            ("isbn13", lambda: self._isbn13(isbn13)),
            ("isbn", lambda: self.by["isbn"].get(isbn.zfill(10) if isbn else "")),
            ("title+author", lambda: self.by["title+author"].get((normal_title(title), normal_author(author)))),
            ("title", lambda: None if author else self.by["title"].get(normal_title(title))),
        )
        for key, find in tries:
            col = find()
            if col is not None:
                return col, key
        return None, None


def counts_by_key(keys):
    """{key: rows matched by it} from the key of each row (None where it matched nothing),
    in the order of ``KEYS``, keys that matched nothing left out."""
    counts = collections.Counter(k for k in keys if k)
    return {k: counts[k] for k in KEYS if counts[k]}


def summary(keys):
    """"12 by book_id, 3 by isbn13" from the key of each matched row."""
    return ", ".join(f"{n} by {k}" for k, n in counts_by_key(keys).items()) or "none"

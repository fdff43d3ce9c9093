"""The book search behind the page's search box, on the bundled sample's catalogue."""
import pytest

from bookrbm.search import BookSearch, words_of


@pytest.fixture(scope="module")
def books(sample):
    return BookSearch(sample)


@pytest.mark.parametrize("query", ["harry", "The King", "potter harry", "war", "h", "tolkien hobbit", "Les Misérables"])
def test_finds_every_book_holding_every_word_in_rank_order(books, query):
    words = words_of(query)
    phrase = " ".join(words)
    found = books.find(words)
    holding = [c for c, text in enumerate(books.texts) if all(word in text for word in words)]
    assert len(found) == len(set(found)) and sorted(found) == holding and holding

    def rank(column):
        title = books.titles[column]
        return 0 if title.startswith(phrase) else 1 if f" {phrase}" in f" {title}" else 2 if phrase in title else 3

    # title starts first, then a title word, then anywhere in the title, then the authors
    # only; more popular books (lower columns) first within each
    keys = [(rank(c), c) for c in found]
    assert keys == sorted(keys)
    if query in ("war", "h"):
        assert {k[0] for k in keys} == {0, 1, 2, 3}  # so every rule is put to the test


def test_query_words_are_read_as_titles_are_kept(books, sample):
    assert words_of("  The HOBBIT, or There & Back!") == ["hobbit", "or", "there", "and", "back"]
    hobbit = int(sample.columns_of([7])[0])  # goodbooks book 7: The Hobbit
    assert books.find(words_of("the hobbit"))[0] == hobbit and books.find(words_of("TOLKIEN"))
    assert books.find(["zzzzqx"]) == []

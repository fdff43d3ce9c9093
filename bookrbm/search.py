"""Find books by words of their title or authors, as a reader types them: the web page's search."""
from . import matching


def words_of(query):
    """The words of ``query`` as the titles are kept: accents, case, punctuation and a
    leading article do not count."""
    return matching.normal_title(query).split()


class BookSearch:
    """Each book's title (both of goodbooks' titles) and its title with the authors,
    normalised once.

    titles, texts : one string per column of the data, in the data's order (the most
        read books first, as goodbooks numbers them)."""

    def __init__(self, data):
        self.titles = [matching.normal_title(f"{t} {e}") for t, e in zip(data.titles, data.catalogue.edition_titles)]
        self.texts = [f"{t} {matching.normal_title(a)}" for t, a in zip(self.titles, data.authors)]

    def find(self, words):
        """Columns of the books whose title or authors hold every one of ``words`` (as
        ``words_of`` gives them): titles that start with the words first, then those with a
        title word that does, then those that hold them anywhere in the title, then the
        books that match by their authors; more popular first within each."""
        phrase = " ".join(words)
        # each word tests only the books the one before left, the longest (rarest) first: a
        # query took 9-15 ms of a worker when every word was tried on every book, now 1-3
        columns = range(len(self.texts))
        for word in sorted(set(words), key=len, reverse=True):
            columns = [column for column in columns if word in self.texts[column]]
        # by rank, then by column: the columns are in order already
        ranks = ([], [], [], [])
        after_space = f" {phrase}"
        for column in columns:
            title = self.titles[column]
            if title.startswith(phrase):
                ranks[0].append(column)
            elif after_space in title:
                ranks[1].append(column)
            elif phrase in title:
                ranks[2].append(column)
            else:
                ranks[3].append(column)
        return [column for rank in ranks for column in rank]

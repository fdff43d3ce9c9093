"""Genres from Goodreads shelves: book_tags.csv counts how often readers put a book on each
shelf (tag), and most shelves are not genres (to-read, favorites, owned, kindle, 2015-reads).

Only shelves in ``GENRES`` count; synonyms ("sci-fi", "scifi", "sf") merge into one genre.
"fiction" and "non-fiction" say too little to lead a book's genres, so they come last.
"""
import collections

import numpy as np

GENRES = {
    "fantasy": "fantasy high-fantasy epic-fantasy dark-fantasy magic dragons fae faeries fairies "
    "ya-fantasy sword-and-sorcery",
    "urban fantasy": "urban-fantasy",
    "paranormal": "paranormal supernatural vampires vampire werewolves shifters shapeshifters demons "
    "angels ghosts witches zombies zombie paranormal-romance pnr",
    "science fiction": "science-fiction sci-fi scifi sf space-opera space aliens time-travel cyberpunk "
    "steampunk alternate-history",
    "dystopia": "dystopian dystopia post-apocalyptic apocalyptic",
    "romance": "romance contemporary-romance historical-romance romantic-suspense romance-contemporary "
    "romance-historical regency regency-romance love sports-romance",
    "chick lit": "chick-lit chicklit chic-lit women-s-fiction beach-reads",
    "erotica": "erotica erotic-romance erotic bdsm",
    "new adult": "new-adult na college-romance",
    "young adult": "young-adult ya teen ya-fiction ya-contemporary",
    "children's": "childrens children children-s children-s-books childrens-books kids kids-books "
    "picture-books picture-book juvenile children-s-lit children-s-literature children-books "
    "juvenile-fiction storytime",
    "middle grade": "middle-grade",
    "classics": "classics classic classic-literature clàssics",
    "mystery": "mystery mysteries detective mystery-suspense cozy-mystery",
    "crime": "crime crime-fiction noir",
    "thriller": "thriller thrillers suspense mystery-thriller spy espionage spy-thriller spies "
    "legal-thriller horror-thriller",
    "horror": "horror",
    "historical fiction": "historical-fiction historical",
    "contemporary": "contemporary contemporary-fiction realistic-fiction realistic",
    "literary fiction": "literary-fiction literature",
    "humor": "humor humour funny comedy satire",
    "adventure": "adventure action action-adventure",
    "graphic novels": "graphic-novels graphic-novel comics comic comics-graphic-novels "
    "graphic-novels-comics comic-books comics-and-graphic-novels graphic manga mangas manga-comics "
    "superheroes superhero cómics mangá",
    "short stories": "short-stories short-story short-story-collections",
    "poetry": "poetry poems",
    "plays": "plays play theatre theater",
    "magical realism": "magical-realism",
    "mythology": "mythology greek-mythology",
    "fairy tales": "fairy-tales fairy-tale retellings",
    "lgbt": "lgbt lgbtq glbt queer",
    "biography": "biography biographies autobiography biography-memoir memoir-biography bio",
    "memoir": "memoir memoirs",
    "history": "history american-history wwii world-war-ii ww2 military-history holocaust",
    "war": "war military",
    "science": "science popular-science physics technology medicine",
    "philosophy": "philosophy",
    "psychology": "psychology psych",
    "self-help": "self-help self-improvement personal-development self-development personal-growth "
    "productivity",
    "business": "business business-books management leadership entrepreneurship finance economics",
    "religion": "religion christianity religious faith theology spirituality spiritual christian",
    "christian fiction": "christian-fiction",
    "politics": "politics political",
    "travel": "travel",
    "cooking": "cooking cookbooks cookbook food cook-books cookery foodie",
    "art": "art art-history art-books",
    "music": "music",
    "sports": "sports",
    "essays": "essays",
    "true crime": "true-crime",
    "fiction": "fiction general-fiction adult-fiction novels novel",
    "non-fiction": "non-fiction nonfiction",
}
UMBRELLA = ("fiction", "non-fiction")
GENRE_OF_SHELF = {shelf: genre for genre, shelves in GENRES.items() for shelf in shelves.split()}
PER_BOOK = 5  # genres kept per book, most shelved first
OTHER = "other"


def genres_by_book(shelves, per_book=PER_BOOK):
    """{goodreads_book_id: [genre, ...]} from a table of goodreads_book_id, tag_name, count.

    Synonymous shelves add up; each book keeps its ``per_book`` most shelved genres, with
    "fiction" and "non-fiction" after every specific genre; ties go alphabetically.
    """
    genre = shelves["tag_name"].astype(str).str.strip().str.lower().map(GENRE_OF_SHELF)
    kept = shelves.assign(genre=genre).dropna(subset=["genre"])
    totals = kept.groupby(["goodreads_book_id", "genre"], as_index=False)["count"].sum()
    totals["umbrella"] = totals["genre"].isin(UMBRELLA)
    totals = totals.sort_values(
        ["goodreads_book_id", "umbrella", "count", "genre"], ascending=[True, True, False, True]
    )
    top = totals.groupby("goodreads_book_id").head(per_book)
    return top.groupby("goodreads_book_id")["genre"].agg(list).to_dict()


def primary(genres):
    """The genre a book counts under in a profile: its first, or "other" if it has none."""
    return genres[0] if genres else OTHER


def profile(groups, top=8):
    """Share of each primary genre in each group of books; every group's shares sum to 1.

    groups : {name: [genres of book, ...]}. The ``top`` genres most common over all groups
    keep their names; the rest are pooled as "other".
    Returns (genre names, {name: shares}) with shares aligned to the names.
    """
    counts = {name: collections.Counter(primary(genres) for genres in books) for name, books in groups.items()}
    overall = sum(counts.values(), collections.Counter())
    overall.pop(OTHER, None)
    names = sorted(overall, key=lambda g: (-overall[g], g))[:top]
    has_other = any(set(c) - set(names) for c in counts.values())
    shares = {}
    for name, book_counts in counts.items():
        total = sum(book_counts.values())
        kept = [book_counts[g] for g in names]
        if has_other:
            kept.append(total - sum(kept))
        shares[name] = np.array(kept, dtype=float) / (total or 1)
    return names + [OTHER] * has_other, shares

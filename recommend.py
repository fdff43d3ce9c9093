#!/usr/bin/env python3
"""Recommend books for one reader: a goodbooks user, a Goodreads library export or a simple
ratings file. Their ratings → hidden units → a score for every book, with the genres of each
recommendation and the reader's books that led to it."""
import argparse
import os

from bookrbm import chart, interactions, matching, model, paths, reader
from bookrbm import recommend as recommender
from bookrbm.atomic import check_writable, write_csv
from bookrbm.errors import cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", type=int, help="goodbooks user_id of the reader")
    who.add_argument("--goodreads", metavar="FILE", help="a Goodreads library export (CSV)")
    who.add_argument(
        "--ratings", metavar="FILE", help="a CSV of book_id,rating or title,rating (optional author column)"
    )
    parser.add_argument(
        "--from",
        dest="source",
        choices=recommender.SOURCES,
        help="to_read: rank the reader's to-read list (the write-up's choice); all: rank every book they have "
        "not read (default: to_read when the reader has a to-read list, else all)",
    )
    parser.add_argument("--top", type=int, default=10, help="how many books to show and export (default: %(default)s)")
    parser.add_argument("--model", default=paths.MODEL, help="model file from train_rbm.py (default: %(default)s)")
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file from preprocess.py (default: %(default)s)")
    parser.add_argument(
        "--results",
        default=paths.RESULTS,
        help="folder for read_books.csv, recommendations.csv and unmatched.csv (default: %(default)s)",
    )
    parser.add_argument("--plots", default=paths.PLOTS, help="folder for genres.svg (default: %(default)s)")
    return parser.parse_args(argv)


def load_reader(args, data, unmatched_path):
    if args.user is not None:
        return reader.from_user(data, args.user)
    found = reader.from_goodreads(data, args.goodreads) if args.goodreads else reader.from_ratings(data, args.ratings)
    write_csv(unmatched_path, found.unmatched, list(found.unmatched_columns))
    n_rows, n_matched = len(found.matched), found.n_matched
    print(
        f"{found.name}: matched {n_matched} of {n_rows} rows to goodbooks-10k books "
        f"({matching.summary(found.matched)}); {n_rows - n_matched} not among its 10,000 books "
        f"→ {paths.shown(unmatched_path)}"
    )
    reader.check_has_reads(found, args.goodreads or args.ratings)
    print(
        f"{len(found.rated)} rated, {len(found.unrated)} read but not rated, "
        f"{len(found.to_read)} to read, {len(found.shelved)} on other shelves"
        + (f"; {found.repeats} rows named a book already listed (kept its highest rating)" if found.repeats else "")
    )
    return found


@cli
def main(argv=None):
    args = parse_args(argv)
    read_path, recs_path, unmatched_path = (
        os.path.join(args.results, name) for name in ("read_books.csv", "recommendations.csv", "unmatched.csv")
    )
    plot_path = os.path.join(args.plots, "genres.svg")
    # all or nothing: a bad --plots found at the end would leave this reader's CSVs beside
    # another reader's chart, after the table was printed as if all went well
    check_writable(read_path, recs_path, *([] if args.user is not None else [unmatched_path]), plot_path)
    trained = model.load(args.model)
    data = interactions.load(args.data)
    recommender.check_compatible(trained, data)
    who = load_reader(args, data, unmatched_path)
    found = recommender.recommend(trained, data, who, n=args.top, source=args.source)

    read = recommender.read_books_rows(found, data)
    recommended = recommender.recommendation_rows(found, data)
    write_csv(read_path, read, recommender.READ_BOOK_COLUMNS)
    write_csv(recs_path, recommended, recommender.RECOMMENDATION_COLUMNS)

    if args.user is not None:
        split = "validation" if data.valid[data.row_of(args.user)] else "training"
        print(f"user {args.user} ({split} user) has rated {len(read)} books; their favourites:")
    else:
        print(f"{who.name}: {len(read)} books read; the favourites:")
    print(recommender.format_table(read[:5], value="rating"))
    where = "the to-read list" if found.source == "to_read" else "all books not yet read"
    if args.source is None and found.source == "all":
        where += f" ({who.name} has no unread books on a to-read list)"
    print(f"\ntop {len(recommended)} from {where}:")
    print(recommender.format_table(recommended, details=("genres", "because_you_read")))

    names, shares = recommender.genre_profile(found, data)
    print("\ngenres (each book counted under its main genre):")
    print(recommender.format_profile(names, shares))
    chart.write_genre_bars(names, shares, plot_path, f"Genres: what {who.name} read, what we recommend")
    print(f"\nwrote {paths.shown(read_path)}, {paths.shown(recs_path)}, {paths.shown(plot_path)}")


if __name__ == "__main__":
    main()

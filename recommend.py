#!/usr/bin/env python3
"""Recommend books for one goodbooks reader: their ratings → hidden units → a score for every book."""
import argparse
import os

from bookrbm import interactions, model, paths
from bookrbm import recommend as recommender
from bookrbm.atomic import write_csv
from bookrbm.errors import cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--user", type=int, required=True, help="goodbooks user_id of the reader")
    parser.add_argument(
        "--from",
        dest="source",
        choices=recommender.SOURCES,
        default="to_read",
        help="to_read: rank the reader's to-read list (the write-up's choice); "
        "all: rank every book they have not rated (default: %(default)s)",
    )
    parser.add_argument("--top", type=int, default=10, help="how many books to show and export (default: %(default)s)")
    parser.add_argument("--model", default=paths.MODEL, help="model file from train_rbm.py (default: %(default)s)")
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file from preprocess.py (default: %(default)s)")
    parser.add_argument(
        "--results",
        default=paths.RESULTS,
        help="folder for read_books.csv and recommendations.csv (default: %(default)s)",
    )
    return parser.parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    trained = model.load(args.model)
    data = interactions.load(args.data)
    recommender.check_compatible(trained, data)
    found = recommender.recommend(trained, data, args.user, n=args.top, source=args.source)

    read = recommender.read_books_rows(found, data)
    recommended = recommender.recommendation_rows(found, data)
    read_path = os.path.join(args.results, "read_books.csv")
    recs_path = os.path.join(args.results, "recommendations.csv")
    write_csv(read_path, read, ["book_id", "title", "authors", "rating", "score"])
    write_csv(recs_path, recommended, ["book_id", "title", "authors", "score"])

    split = "validation" if data.valid[data.row_of(args.user)] else "training"
    where = "their to-read list" if args.source == "to_read" else "all books they have not rated"
    print(f"user {args.user} ({split} user) has rated {len(read)} books; their favourites:")
    print(recommender.format_table(read[:5], value="rating"))
    print(f"\ntop {len(recommended)} from {where}:")
    print(recommender.format_table(recommended))
    print(f"\nwrote {paths.shown(read_path)}, {paths.shown(recs_path)}")


if __name__ == "__main__":
    main()

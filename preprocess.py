#!/usr/bin/env python3
"""Turn goodbooks-10k CSVs into a sparse users × books matrix of rating / 5, split into train and valid."""
import argparse
import os

from bookrbm import interactions, paths, preprocessing
from bookrbm.atomic import check_writable
from bookrbm.errors import cli, seed_option


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data-dir",
        help="folder with books.csv, ratings.csv, to_read.csv, book_tags.csv and tags.csv (goodbooks format); "
        "default: the bundled sample in data/, or data/full/ with --download",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="first fetch the full upstream ratings.csv, to_read.csv, books.csv, book_tags.csv and tags.csv into "
        "--data-dir (default data/full/), verifying each against its git blob id",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="where --download fetches from (default: the upstream goodbooks-10k repository)",
    )
    parser.add_argument("--out", default=paths.PROCESSED, help="processed file to write (default: %(default)s)")
    parser.add_argument("--max-users", type=int, help="keep a seeded random subset of this many users")
    parser.add_argument(
        "--rows", type=int, help="keep only the first N ratings after sorting by user_id (the write-up's option)"
    )
    parser.add_argument(
        "--valid-fraction",
        type=float,
        default=0.2,
        help="share of users held out for validation (default: %(default)s)",
    )
    parser.add_argument("--seed", type=seed_option, default=0, help="seed for --max-users and the split (default: %(default)s)")
    return parser.parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    check_writable(args.out)  # not after downloading about 100 MB and reading 6M ratings
    data_dir = args.data_dir or (paths.FULL_DATA if args.download else paths.BUNDLED_DATA)
    if args.download:
        from bookrbm import download

        download.download(data_dir, base_url=args.base_url or download.UPSTREAM)
    data = preprocessing.build(
        data_dir,
        max_users=args.max_users,
        rows=args.rows,
        valid_fraction=args.valid_fraction,
        seed=args.seed,
    )
    interactions.save(args.out, data)
    info = data.info
    print(
        f"{info['n_users']} users × {info['n_books']} books, {info['n_ratings']} ratings, "
        f"{info['n_to_read']} to-read pairs; {int(data.valid.sum())} users held out for validation"
    )
    print(f"wrote {paths.shown(os.path.abspath(args.out))}")


if __name__ == "__main__":
    main()

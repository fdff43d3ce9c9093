#!/usr/bin/env python3
"""Measure recommendation quality on readers no model was trained on: hide 20% of each test
reader's ratings, rank every other book from the remaining 80%, and score the top k.
Baselines (popularity, item-kNN, ALS, EASE) are tuned on the tuning users and scored the same way."""
import argparse
import json
import os

from bookrbm import evaluation, interactions, model, paths
from bookrbm.atomic import check_writable, write_csv
from bookrbm.errors import InputError, check_range, cli, seed_option
from bookrbm.evaluation import METRICS
from bookrbm.recommend import check_compatible


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file from preprocess.py (default: %(default)s)")
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME=FILE",
        help="an RBM to evaluate, as name=file; repeat for several (default: rbm=models/rbm.npz)",
    )
    parser.add_argument("--k", type=int, default=10, help="length of each top-k list (default: %(default)s)")
    parser.add_argument("--seed", type=seed_option, default=0, help="which 20%% of each test reader is hidden (default: %(default)s)")
    parser.add_argument(
        "--shown", type=int,
        help="each test reader shows only this many of their books and the rest are hidden, as for a "
        "reader who rates a few (default: 80%% shown); the outputs' names end in _shownN",
    )
    parser.add_argument(
        "--baselines",
        default="popularity,item-knn,als,ease",
        help="comma-separated baselines to tune and compare, or 'none' (default: %(default)s)",
    )
    parser.add_argument(
        "--reference",
        help="the model the others are measured against, with a paired bootstrap interval (default: rbm if "
        "evaluated, else the last --model)",
    )
    parser.add_argument("--out", help="table as CSV (default: results/evaluation.csv)")
    parser.add_argument("--gaps", help="the reference's NDCG lead over each model, as CSV (default: results/evaluation_gaps.csv)")
    parser.add_argument("--plot", help="bar chart (default: plots/evaluation.png)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    suffix = "" if args.shown is None else f"_shown{args.shown}"
    args.out = args.out or os.path.join(paths.RESULTS, f"evaluation{suffix}.csv")
    args.gaps = args.gaps or os.path.join(paths.RESULTS, f"evaluation_gaps{suffix}.csv")
    args.plot = args.plot or os.path.join(paths.PLOTS, f"evaluation{suffix}.png")
    return args


def rbm_models(specs):
    found = {}
    for spec in specs or [f"rbm={paths.MODEL}"]:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise InputError(f"--model takes name=file, not {spec!r}")
        found[name] = model.load(path)
    return found


def format_table(rows, k):
    width = max([12] + [len(row["model"]) for row in rows])  # model names given by --model can be long
    header = f"{'model':<{width}} {'tuning':>7} " + " ".join(f"{m:>10}" for m in METRICS)
    lines = [f"metrics @{k} on test readers (tuning = NDCG@{k} on the tuning readers)", header]
    for row in rows:
        lines.append(f"{row['model']:<{width}} {row['tuning_ndcg']:7.4f} " + " ".join(f"{row[m]:10.4f}" for m in METRICS))
    return "\n".join(lines)


def format_gaps(gaps, k):
    if not gaps:
        return ""
    first = gaps[0]
    lines = [f"NDCG@{k} of {first['reference']} minus each model's, on the same {first['readers']} test readers "
             "(95% paired bootstrap interval):"]
    width = max([12] + [len(gap["model"]) for gap in gaps])
    for gap in gaps:
        lines.append(f"  {gap['model']:<{width}} {gap['difference']:+.4f}  [{gap['low']:+.4f}, {gap['high']:+.4f}]")
    return "\n".join(lines)


def write_rows(path, rows):
    rows = [{**row, "settings": json.dumps(row["settings"], sort_keys=True)} for row in rows]
    write_csv(path, rows, ["model", "tuning_ndcg", *METRICS, "settings"])


@cli
def main(argv=None):
    args = parse_args(argv)
    check_range("--k", args.k, at_least=1)
    if args.shown is not None:
        check_range("--shown", args.shown, at_least=1)
    from bookrbm import comparison
    from bookrbm.plots import plot_comparison

    names = comparison.baseline_names(args.baselines)
    data = interactions.load(args.data)
    if args.k > data.n_books:
        raise InputError(f"--k must be at most the number of books ({data.n_books}), not {args.k}")
    evaluation.user_sets(data, require=args.data)
    check_writable(args.out, args.gaps, args.plot)  # not after minutes of evaluation
    models = rbm_models(args.model)
    for trained in models.values():
        check_compatible(trained, data)
    reference = args.reference or ("rbm" if "rbm" in models else list(models)[-1])
    if reference not in list(models) + names:
        raise InputError(f"--reference {reference} is not among the evaluated models ({', '.join(names + list(models))})")
    rows = comparison.compare(data, models, k=args.k, seed=args.seed, names=names, progress=not args.quiet, shown=args.shown)
    gaps = comparison.gaps(rows, reference, seed=args.seed)
    if args.shown is not None:
        print(f"each test reader shows {args.shown} of their books; the rest are hidden")
    print(format_table(rows, args.k))
    print(format_gaps(gaps, args.k))
    write_rows(args.out, rows)
    write_csv(args.gaps, gaps, ["model", "reference", "difference", "low", "high", "readers"])
    what = "hidden 20% of their ratings" if args.shown is None else f"{args.shown} of their books shown, the rest hidden"
    plot_comparison(rows, list(METRICS), args.plot, f"Test readers, top {args.k}: {what}")
    written = ", ".join(paths.shown(os.path.abspath(p)) for p in (args.out, args.gaps, args.plot))
    print(f"wrote {written}")


if __name__ == "__main__":
    main()

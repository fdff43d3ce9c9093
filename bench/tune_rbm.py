#!/usr/bin/env python3
"""Re-run the RBM settings search behind train_rbm.py's defaults, on the tuning users.

Every setting trains on the fit users and is scored by NDCG@10 of the tuning users (never
the test users). Prints one line per setting: its best tuning NDCG@10, at which epoch, the
kept model's tuning NDCG@10 when each tuning reader shows only 3, 5 or 10 of their books,
and how long it took. The whole search takes about 90 minutes on 2 cores; pass --only N to
run the N-th setting alone.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bookrbm import evaluation, interactions, paths  # noqa: E402
from bookrbm.errors import check_range, cli  # noqa: E402
from bookrbm.settings import WRITEUP  # noqa: E402

BINARY = {"input": "binary", "visible_bias": "logit"}
DEFAULT_CHANGES = {
    **BINARY, "hidden": 1024, "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.0003, "hidden_keep": 0.5,
    "average": 0.7, "patience": 2,
}
SEARCH = [
    {},  # the write-up's settings
    {"input": "binary"},
    BINARY,
    {**BINARY, "learning_rate": 0.1, "momentum": 0.5},
    {**BINARY, "hidden": 256},
    {**BINARY, "hidden": 256, "learning_rate": 0.1, "momentum": 0.9},
    {**BINARY, "hidden": 512, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.0001},
    {**BINARY, "hidden": 512, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.001, "epochs": 40},
    {**BINARY, "hidden": 512, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.0001, "sample_visible": True, "epochs": 40},
    {**BINARY, "hidden": 512, "learning_rate": 0.025, "momentum": 0.9, "weight_decay": 0.0003, "batch_size": 50, "epochs": 40},
    {"visible_bias": "logit", "hidden": 512, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.0003, "epochs": 40},
    {**BINARY, "hidden": 1024, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.001, "epochs": 40},
    {**BINARY, "hidden": 1024, "learning_rate": 0.02, "momentum": 0.9, "weight_decay": 0.0003, "epochs": 80},
    {**BINARY, "hidden": 2048, "learning_rate": 0.01, "momentum": 0.9, "weight_decay": 0.0003, "patience": 2},
    {**BINARY, "hidden": 1024, "learning_rate": 0.02, "momentum": 0.9, "weight_decay": 0.0003, "hidden_keep": 0.5, "epochs": 80, "patience": 2},
    {**BINARY, "hidden": 1024, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.0003, "hidden_keep": 0.5, "patience": 2},
    {**BINARY, "hidden": 1024, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.0003, "hidden_keep": 0.3, "patience": 2},
    {**BINARY, "hidden": 1024, "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.0003, "hidden_keep": 0.5, "patience": 2},
    {**BINARY, "hidden": 2048, "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.0003, "hidden_keep": 0.5, "epochs": 45, "patience": 2},
    {**BINARY, "hidden": 1024, "learning_rate": 0.2, "momentum": 0.9, "weight_decay": 0.0003, "hidden_keep": 0.5, "patience": 2},
    {**BINARY, "hidden": 1024, "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.00003, "hidden_keep": 0.5, "patience": 2},
    {**BINARY, "hidden": 1024, "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.0003, "hidden_keep": 0.5, "batch_size": 50, "patience": 2},
    # the default: the best of the above, with the weights averaged across epochs
    DEFAULT_CHANGES,
    # one change to the default each (none beat it)
    {**DEFAULT_CHANGES, "cd_steps": 3},
    {**DEFAULT_CHANGES, "average": 0.85},
    {**DEFAULT_CHANGES, "hidden_keep": 0.4},
    {**DEFAULT_CHANGES, "weight_decay": 0.001},
    {**DEFAULT_CHANGES, "hidden": 1536},
    {**DEFAULT_CHANGES, "learning_rate": 0.05, "average": 0.8},
    # training on short lists as well (a share of each batch's readers cut to 1-20 books):
    # chosen by the tuning readers who show a few books, at a small cost at 80%; 0.2 is the default
    {**DEFAULT_CHANGES, "short_lists": 0.1},
    {**DEFAULT_CHANGES, "short_lists": 0.2},
    # one more hidden unit per book series (bookrbm/series.py); cutting more short lists
    # with them did not win back what they cost readers who show a few books
    {**DEFAULT_CHANGES, "short_lists": 0.2, "series_units": True},
    {**DEFAULT_CHANGES, "short_lists": 0.4, "series_units": True},
    # ... what did: each series unit left out of a share of the readers' updates (dropout);
    # 0.5 is the default
    {**DEFAULT_CHANGES, "short_lists": 0.2, "series_units": True, "series_keep": 0.35},
    {**DEFAULT_CHANGES, "short_lists": 0.2, "series_units": True, "series_keep": 0.5},
    {**DEFAULT_CHANGES, "short_lists": 0.2, "series_units": True, "series_keep": 0.65},
]
SHOWN = (3, 5, 10)


@cli
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file (default: %(default)s)")
    parser.add_argument("--only", type=int, help="run only this setting (0-based index into the search)")
    args = parser.parse_args(argv)
    if args.only is not None:
        check_range("--only", args.only, at_least=0, at_most=len(SEARCH) - 1)
    from bookrbm import train

    data = interactions.load(args.data)
    _, tuning_rows, _ = evaluation.user_sets(data)
    few = {n: evaluation.tuning_holdout(data, tuning_rows, shown=n) for n in SHOWN}
    chosen = SEARCH if args.only is None else [SEARCH[args.only]]
    for changes in chosen:
        settings = {**WRITEUP, "eval_every": 5, **changes}
        start = time.time()
        trained = train.train(data, progress=False, log=lambda line: None, **settings)
        measured = [row for row in trained.history if row["tuning_ndcg"] is not None]
        best = max(measured, key=lambda row: row["tuning_ndcg"])
        shown = " / ".join(f"{evaluation.evaluate(trained, few[n])['ndcg']:.4f}" for n in SHOWN)
        print(f"{json.dumps(changes)}  tuning NDCG@10 {best['tuning_ndcg']:.4f} at epoch {best['epoch']}, "
              f"kept model with {' / '.join(map(str, SHOWN))} books shown {shown}  ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

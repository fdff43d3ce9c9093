#!/usr/bin/env python3
"""Does more data close the RBM's gap? A learning curve on the bundled sample.

For each share of the fit readers (a seeded random subset), trains the RBM with the
defaults (early stopping on the tuning readers, as always), tunes the chosen baselines on
the same tuning readers, and scores every model on the same hidden 20% of the same test
readers. Prints, per share, each model's test NDCG@10 and the RBM's gap to it with a 95%
paired bootstrap interval, and writes results/data_size.csv. With the defaults it takes
about 10 minutes on 2 cores.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from bookrbm import evaluation, interactions, paths  # noqa: E402
from bookrbm.atomic import check_writable, write_csv  # noqa: E402
from bookrbm.errors import InputError, cli, seed_option  # noqa: E402

COLUMNS = ["share", "fit_users", "model", "settings", "ndcg", "gap", "low", "high"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file (default: %(default)s)")
    parser.add_argument("--shares", default="0.25,0.5,1", help="shares of the fit readers (default: %(default)s)")
    parser.add_argument(
        "--baselines", default="item-knn,ease", help="baselines to tune at each share, or none (default: %(default)s)"
    )
    parser.add_argument("--hidden", type=int, help="the RBM's hidden units (default: train_rbm.py's)")
    parser.add_argument("--epochs", type=int, help="the RBM's most epochs (default: train_rbm.py's)")
    parser.add_argument("--seed", type=seed_option, default=0, help="which readers each share keeps (default: %(default)s)")
    parser.add_argument("--out", default=os.path.join(paths.RESULTS, "data_size.csv"), help="results (default: %(default)s)")
    return parser.parse_args(argv)


def shares_of(text):
    try:
        shares = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(f"--shares takes numbers like 0.25,0.5,1, not {text!r}") from None
    if not shares or not all(0 < share <= 1 for share in shares):
        raise InputError(f"--shares must be above 0 and at most 1, not {text!r}")
    return shares


def run(args, log=print):
    # the options first, so that a typo is told at once, not after TensorFlow's import (4 s)
    shares = shares_of(args.shares)
    check_writable(args.out)  # not after an hour of training
    from bookrbm import comparison

    names = comparison.baseline_names(args.baselines)
    from bookrbm import train

    data = interactions.load(args.data)
    fit_rows, tuning_rows, test_rows = evaluation.user_sets(data, require=args.data)
    tuning = evaluation.tuning_holdout(data, tuning_rows)
    test = evaluation.hold_out(data.ratings[test_rows], seed=0)
    overrides = {name: getattr(args, name) for name in ("hidden", "epochs") if getattr(args, name)}
    rows = []
    for share in shares:
        start = time.time()
        size = max(1, int(round(share * len(fit_rows))))
        fit = np.sort(np.random.default_rng(args.seed).choice(fit_rows, size=size, replace=False))
        trained = train.train(data, fit_rows=fit, progress=False, log=lambda line: None, **overrides)
        rbm = evaluation.evaluate(trained, test, by_user=True)
        found = [("rbm", {"best_epoch": trained.settings.get("best_epoch")}, rbm)]
        for name in names:
            model, settings, _ = comparison.tune(name, data.ratings[fit], tuning, progress=False, log=lambda line: None)
            found.append((name, settings, evaluation.evaluate(model, test, by_user=True)))
        for name, settings, result in found:
            gap = evaluation.paired_gap(rbm["ndcg_by_user"], result["ndcg_by_user"], seed=args.seed)
            rows.append({"share": share, "fit_users": size, "model": name, "settings": settings,
                         "ndcg": result["ndcg"], "gap": gap[0], "low": gap[1], "high": gap[2]})
            log(f"{share:5.2f} {size:5d} readers  {name:<10} NDCG@10 {result['ndcg']:.4f}  "
                + ("" if name == "rbm" else f"RBM minus it {gap[0]:+.4f} [{gap[1]:+.4f}, {gap[2]:+.4f}]  ")
                + f"{settings}")
        log(f"      ({time.time() - start:.0f} s)")
    write_csv(args.out, rows, COLUMNS)
    log(f"wrote {paths.shown(os.path.abspath(args.out))}")
    return rows


@cli
def main(argv=None):
    run(parse_args(argv))


if __name__ == "__main__":
    main()

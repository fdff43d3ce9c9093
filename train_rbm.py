#!/usr/bin/env python3
"""Train the book RBM with CD-1 in a TensorFlow graph and session; save the model, history and plots."""
import argparse
import os

from bookrbm import interactions, model, paths
from bookrbm.errors import cli
from bookrbm.settings import DEFAULTS


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file from preprocess.py (default: %(default)s)")
    parser.add_argument("--out", default=paths.MODEL, help="model file to write (default: %(default)s)")
    parser.add_argument("--plots", default=paths.PLOTS, help="folder for free_energy.png and error.png (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=DEFAULTS["hidden"], help="hidden units (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="passes over the training users (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help="users per CD-1 update (default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=DEFAULTS["learning_rate"], help="CD-1 step size (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the initial weights, batch order and samples (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    data = interactions.load(args.data)
    from bookrbm import train  # imports TensorFlow, so only once the input is known to be good

    trained = train.train(
        data,
        hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        progress=not args.quiet,
    )
    model.save(args.out, trained)
    history = os.path.splitext(args.out)[0] + "-history.csv"
    train.write_history(history, trained.history)
    written = [args.out, history, *train.write_plots(trained.history, args.plots)]
    print("wrote " + ", ".join(paths.shown(os.path.abspath(p)) for p in written))


if __name__ == "__main__":
    main()

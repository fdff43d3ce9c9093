#!/usr/bin/env python3
"""Train the book RBM with contrastive divergence in a TensorFlow graph and session; save the
model, its per-epoch history and plots."""
import argparse
import os

from bookrbm import interactions, model, paths
from bookrbm.atomic import check_writable
from bookrbm.errors import cli, seed_option
from bookrbm.settings import DEFAULTS, INPUTS, PRESETS, STEPS, VISIBLE_BIASES, check_settings

OPTIONS = [
    # (flag, type, help)
    ("--hidden", int, "hidden units"),
    ("--epochs", int, "passes over the fit users (the most, with --patience)"),
    ("--batch-size", int, "users per update"),
    ("--learning-rate", float, "step size"),
    ("--momentum", float, "momentum of the updates, 0 for none"),
    ("--weight-decay", float, "L2 penalty on the weights"),
    ("--cd-steps", int, "Gibbs steps per update: the k of CD-k"),
    ("--hidden-keep", float, "chance that a hidden unit takes part in an update: below 1 is a dropout RBM"),
    ("--average", float, "keep this share of the running average of the weights each epoch (0: no averaging)"),
    ("--eval-every", int, "measure NDCG@10 of the tuning users every N epochs (0: never)"),
    ("--series-keep", float, "chance that a series unit takes part in a reader's update: below 1 is dropout (with --series-units)"),
    ("--short-lists", float, "share of each batch's readers cut to a short list of their books (0: none)"),
    ("--short-list-books", int, "a cut list keeps 1 to this many books"),
    ("--patience", int, "stop after N evaluations without a better tuning NDCG and keep the best weights (0: never)"),
]


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Settings not given come from --preset. " + "; ".join(
            f"{name}: " + ", ".join(f"{k}={v}" for k, v in preset.items()) for name, preset in PRESETS.items()
        ),
    )
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file from preprocess.py (default: %(default)s)")
    parser.add_argument("--out", default=paths.MODEL, help="model file to write (default: %(default)s)")
    parser.add_argument("--plots", default=paths.PLOTS, help="folder for the plots (default: %(default)s)")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="a set of settings: 'default' (tuned on the tuning users, see README) or 'writeup' "
        "(the original write-up's) (default: %(default)s)",
    )
    for flag, kind, text in OPTIONS:
        key = flag[2:].replace("-", "_")
        parser.add_argument(flag, type=kind, help=f"{text} (default: {DEFAULTS[key]})")
    parser.add_argument("--input", choices=INPUTS, help=f"visible values: rating / 5, or 1 for every rated book (default: {DEFAULTS['input']})")
    parser.add_argument(
        "--visible-bias",
        choices=VISIBLE_BIASES,
        help=f"initial visible biases: zero, or log(p/(1-p)) of how often each book is read (default: {DEFAULTS['visible_bias']})",
    )
    parser.add_argument(
        "--sample-visible",
        action=argparse.BooleanOptionalAction,
        help=f"sample binary reconstructions instead of using probabilities (default: {DEFAULTS['sample_visible']})",
    )
    parser.add_argument(
        "--series-units",
        action=argparse.BooleanOptionalAction,
        help=f"one more hidden unit per book series, linked to that series' books only (default: {DEFAULTS['series_units']})",
    )
    parser.add_argument(
        "--step",
        choices=STEPS,
        help="how a CD step runs: TensorFlow's ops, or one C++ kernel of our own, built once with g++ (CD-1 on the CPU;"
        " on AVX-512 machines an epoch in under a third of the time at 64 hidden units, two thirds at 1,024; README,"
        f" \"Full-scale performance\") (default: {DEFAULTS['step']})",
    )
    parser.add_argument("--seed", type=seed_option, default=0, help="seed for the initial weights, batch order and samples (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def chosen_settings(args):
    settings = dict(PRESETS[args.preset])
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            settings[key] = value
    return settings


@cli
def main(argv=None):
    args = parse_args(argv)
    settings = chosen_settings(args)
    check_settings({**DEFAULTS, **settings})  # at once: not after loading the data and TensorFlow
    data = interactions.load(args.data)
    history = os.path.splitext(args.out)[0] + "-history.csv"
    check_writable(args.out, history, os.path.join(args.plots, "free_energy.png"))  # not after minutes of training
    from bookrbm import train  # imports TensorFlow, so only once the input is known to be good

    trained = train.train(data, seed=args.seed, progress=not args.quiet, **settings)
    model.save(args.out, trained)
    train.write_history(history, trained.history)
    written = [args.out, history, *train.write_plots(trained.history, args.plots)]
    print("wrote " + ", ".join(paths.shown(os.path.abspath(p)) for p in written))


if __name__ == "__main__":
    main()

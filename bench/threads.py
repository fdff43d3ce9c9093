#!/usr/bin/env python3
"""What the second core gives: TensorFlow's intra-op threads at 1 and at 2.

TensorFlow makes a process's intra-op thread pool once, with the first session's count, and
every later session in the process shares it: two sessions of different counts in one
process both run on the first one's. So each count is measured in a process of its own,
the two alternated --rounds times. Each such process measures:
- the float32 GEMM peak (an n×n×n product in a session, best of 5);
- each of the three products that the issue counts, alone in a session, as the trainer
  does them (book-major: W h0ᵀ, v1ᵀ W and v1 h1, batch × books × hidden), median of --calls;
- one epoch each of our trainer with the defaults, our trainer at the write-up's settings
  and the bare CD-1 step, on bench/full_scale.py's stand-in, alternated in the process.
Prints each figure's median over the rounds for each count and the ratio of the two, and
writes results/threads.csv (name, threads, value: the median, low and high: the range over
the rounds, unit; the ratio's threads "2/1", of the medians).

Smoke mode for CI: --users 300 --rounds 1 --calls 5 --gemm 256.
"""
import argparse
import json
import os
import statistics
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(BENCH), BENCH]

import numpy as np  # noqa: E402

import full_scale  # noqa: E402
from bookrbm import paths  # noqa: E402
from bookrbm.atomic import check_writable, write_csv  # noqa: E402
from bookrbm.errors import InputError, check_range, cli, option  # noqa: E402

COUNTS = (1, 2)
PRODUCTS = ("W_h0T", "v1T_W", "v1_h1")  # the CD-1 step's three, in the trainer's order
STEPS = ("ours", "ours_writeup_settings", "bare_cd1")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    full_scale.add_stand_in_options(parser)
    parser.add_argument("--rounds", type=int, default=3, help="processes of each thread count, alternated (default: %(default)s)")
    parser.add_argument("--calls", type=int, default=300, help="calls of each product alone (default: %(default)s)")
    parser.add_argument("--out", default=os.path.join(paths.RESULTS, "threads.csv"), help="results table (default: %(default)s)")
    parser.add_argument("--measure", type=int, choices=COUNTS, help=argparse.SUPPRESS)  # child: this many threads
    return parser.parse_args(argv)


def _seconds(run):
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _median_seconds(run, calls):
    """The median of ``calls`` timed calls of ``run``, after one untimed."""
    run()
    return statistics.median(_seconds(run) for _ in range(calls))


def measure(args):
    """Child: every figure with ``args.measure`` intra-op threads."""
    import bookrbm.graph  # noqa: F401  (the trainer's TensorFlow set-up: oneDNN, graph mode)
    import tensorflow as tf

    from bookrbm.settings import DEFAULTS, WRITEUP

    tf.config.threading.set_intra_op_parallelism_threads(args.measure)  # before the first session
    tf1 = tf.compat.v1
    rng = np.random.default_rng(args.seed)
    data = full_scale._stand_in(args)
    books, hidden, batch = data.n_books, args.hidden, args.batch_size

    graph = tf.Graph()
    with graph.as_default():
        def variable(shape):
            return tf1.Variable(rng.random(shape, dtype=np.float32))

        weights, h0, v1, h1 = (variable(s) for s in ((books, hidden), (hidden, batch), (books, batch), (batch, hidden)))
        # each product's result assigned to a variable: fetched, it would be copied out;
        # left unused, the graph's optimiser would drop it
        results = {"W_h0T": tf.matmul(weights, h0), "v1T_W": tf.matmul(v1, weights, transpose_a=True),
                   "v1_h1": tf.matmul(v1, h1)}
        runs = {name: tf1.Variable(tf.zeros(r.shape)).assign(r).op for name, r in results.items()}
        init = tf1.global_variables_initializer()
    gemm = full_scale.tensorflow_peak(args.gemm)
    with tf1.Session(graph=graph) as session:
        session.run(init)
        products = {name: 1e3 * _median_seconds(lambda: session.run(op), args.calls) for name, op in runs.items()}

    ours = full_scale._trainer(args, DEFAULTS, data)
    steps = {"ours": ours, "ours_writeup_settings": full_scale._trainer(args, WRITEUP, data),
             "bare_cd1": full_scale._bare_trainer(args, ours.fit)}
    epochs = {name: full_scale._timed(step.epoch) for name, step in steps.items()}
    for step in steps.values():
        step.net.close()
    return {"threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "gemm": gemm, "products": products, "epochs": epochs,
            "product_gflop": 2.0 * batch * books * hidden / 1e9}


def _child(args, threads):
    command = full_scale.child_command(__file__, threads, args, ("seed", "hidden", "batch_size", "calls", "gemm"))
    _, _, out = full_scale.run_measured(command)
    figures = json.loads(out.strip().splitlines()[-1])
    if figures["threads"] != threads:
        raise InputError(f"a process asked for {threads} intra-op threads ran with {figures['threads']}")
    return figures


def rows_of(runs):
    """The table's rows from each count's figures (a list a round): each figure's median over
    the rounds for each count, then its ratio, 2 threads' speed over 1's."""
    rows = []
    first = runs[COUNTS[0]][0]

    def rounded(value):  # six significant digits: a smoke run's epochs take hundredths of a second
        return float(f"{value:.6g}") if value != "" else ""

    def add(name, threads, value, unit, spread=("", "")):
        low, high = map(rounded, spread)
        rows.append({"name": name, "threads": threads, "value": rounded(value), "low": low, "high": high, "unit": unit})

    figures = [("gemm", "GFLOP/s", lambda f: f["gemm"], True)]
    figures += [(f"product_{name}", "ms", lambda f, name=name: f["products"][name], False) for name in PRODUCTS]
    figures += [(f"epoch_{name}", "s", lambda f, name=name: f["epochs"][name], False) for name in STEPS]
    for name, unit, value, higher_is_faster in figures:
        values = {count: [value(f) for f in runs[count]] for count in COUNTS}
        medians = {count: statistics.median(values[count]) for count in COUNTS}
        for count in COUNTS:
            add(name, str(count), medians[count], unit, (min(values[count]), max(values[count])))
        if name.startswith("product_"):
            def gflops(ms):
                return first["product_gflop"] / (ms / 1e3)

            for count in COUNTS:
                add(f"{name}_gflops", str(count), gflops(medians[count]), "GFLOP/s",
                    (gflops(max(values[count])), gflops(min(values[count]))))
        one, two = medians[1], medians[2]
        add(f"{name}_speedup", "2/1", two / one if higher_is_faster else one / two, "x")
    return rows


def run(args, log=print):
    args.folder = os.path.join(args.cache, f"users{args.users}-seed{args.seed}")
    full_scale.make_stand_in(args.folder, args.users, args.seed, log=log)
    full_scale.processed(args, log)
    runs = {count: [] for count in COUNTS}
    for round_ in range(args.rounds):
        # each round in the other order, so that neither count always runs first
        for count in COUNTS if round_ % 2 == 0 else COUNTS[::-1]:
            log(f"round {round_ + 1} of {args.rounds}: {count} intra-op thread(s) …")
            runs[count].append(_child(args, count))
    rows = rows_of(runs)
    write_csv(args.out, rows, ["name", "threads", "value", "low", "high", "unit"])
    log("")
    full_scale.log_ranges(rows, log, columns=("threads",))
    log(f"wrote {paths.shown(args.out)}")
    return rows


@cli
def main(argv=None):
    args = parse_args(argv)
    for name in ("users", "rounds", "hidden", "batch_size", "calls", "gemm"):
        check_range(option(name), getattr(args, name), at_least=1)
    if args.measure:
        print(json.dumps(measure(args)))
        return
    check_writable(args.out)  # not after minutes of measuring
    run(args)


if __name__ == "__main__":
    main()

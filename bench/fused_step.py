#!/usr/bin/env python3
"""The bare CD-1 step as one kernel of our own (bench/fused_step.cc) against the same step in
TensorFlow's ops (bench/bare_cd1.py): how much of the GEMM peak a step at the trainer's shapes
reaches when the three counted products, their sigmoids and biases and the update are done in
two passes over the weights, none of it through TensorFlow's ops.

A prototype, measured and not used by the trainer (bench/README.md, "The bare step as one
kernel"). Needs a C++ compiler (g++, or $CXX) and TensorFlow's headers, which its wheel holds.
First checks the kernel against a NumPy reference (three steps, in float64). Then, in one
process: this machine's GEMM peak (an n×n×n product in a session, best of 5), and --rounds
epochs of each step, alternated (an epoch: --steps steps; 385 is the batches of an epoch of
bench/full_scale.py's stand-in, 38,465 readers in batches of 100). Prints a table and writes
results/fused_step.csv (name, value: the median over the rounds, low and high: their range,
unit).

Smoke mode for CI: --books 500 --steps 3 --rounds 1 --gemm 256.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(BENCH), BENCH]

import numpy as np  # noqa: E402

import full_scale  # noqa: E402
import own_kernels  # noqa: E402
from bookrbm import paths  # noqa: E402
from bookrbm.atomic import check_writable, write_csv  # noqa: E402
from bookrbm.errors import InputError, check_range, cli, option, seed_option  # noqa: E402

SOURCE = os.path.join(BENCH, "fused_step.cc")
MAX_BATCH = 112  # the kernel's: seven vectors of 16 readers a book
STEPS = ("tensorflow", "fused")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--books", type=int, default=10000, help="visible units (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units, a multiple of 64 (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=100, help=f"readers a batch, at most {MAX_BATCH} (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=385, help="steps an epoch (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="epochs of each step, alternated (default: %(default)s)")
    parser.add_argument("--gemm", type=int, default=4096, help="size of the peak's square product (default: %(default)s)")
    parser.add_argument("--seed", type=seed_option, default=0, help="seed of the weights and draws (default: %(default)s)")
    parser.add_argument("--out", default=os.path.join(paths.RESULTS, "fused_step.csv"), help="results table (default: %(default)s)")
    return parser.parse_args(argv)


def check_args(args):
    for name in ("books", "hidden", "batch_size", "steps", "rounds", "gemm"):
        check_range(option(name), getattr(args, name), at_least=1)
    check_range("--batch-size", args.batch_size, at_most=MAX_BATCH)
    if args.hidden % 64:
        raise InputError(f"--hidden must be a multiple of 64, not {args.hidden}")


def build(folder, compiler=None):
    """Compile fused_step.cc into ``folder`` and load it: its ops."""
    return own_kernels.load(own_kernels.build(folder, compiler, source=SOURCE, contract=True))


class FusedBareStep:
    """The bare CD-1 step of ``BareCD1`` (the same shapes, start and draws) as the kernel's one
    op: ``step()`` as BareCD1's; ``step(samples, fetch=True)`` takes the hidden samples
    (batch, hidden) and returns the parameters after the step."""

    def __init__(self, kernels, n_visible, n_hidden, batch_size, learning_rate=0.1, seed=0):
        from bookrbm.graph import tf, tf1

        rng = np.random.default_rng(seed)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)
            weights = rng.normal(0, 0.01, (n_visible, n_hidden)).astype(np.float32)
            self.h0_mean = tf1.placeholder(tf.float32, [batch_size, n_hidden])
            drawn = tf.cast(tf.random.uniform([batch_size, n_hidden]) < self.h0_mean, tf.float32)
            self.samples = tf1.placeholder_with_default(drawn, [None, n_hidden])
            self.fetch = tf1.placeholder_with_default(False, [])
            self.params = kernels.rbm_fused_bare_step(
                weights, np.zeros(n_visible, np.float32), np.zeros(n_hidden, np.float32), self.samples,
                np.float32(learning_rate / batch_size), self.fetch,
            )
            self.update = [param.op for param in self.params]  # none fetched: the kernel's outputs are empty
        self.session = tf1.Session(graph=self.graph)
        self.feed = {self.h0_mean: rng.random((batch_size, n_hidden), dtype=np.float32)}
        self.start = weights

    def step(self, samples=None, fetch=False):
        if samples is None:
            return self.session.run(self.update, self.feed)
        return self.session.run(self.params, {**self.feed, self.samples: samples, self.fetch: fetch})

    def close(self):
        self.session.close()


def reference_step(weights, visible_bias, hidden_bias, samples, rate):
    """The bare step in NumPy: v1 = σ(h Wᵀ + b), h1 = σ(v1 W + c), then each parameter less
    ``rate`` times its model statistics."""
    v1 = 1 / (1 + np.exp(-(samples @ weights.T + visible_bias)))
    h1 = 1 / (1 + np.exp(-(v1 @ weights + hidden_bias)))
    return weights - rate * v1.T @ h1, visible_bias - rate * v1.sum(axis=0), hidden_bias - rate * h1.sum(axis=0)


def largest_difference(kernels, books, hidden, batch_size, seed, steps=3):
    """The kernel's largest difference from the NumPy reference (float64) after ``steps``
    steps on random samples, relative to the largest parameter."""
    rng = np.random.default_rng(seed)
    fused = FusedBareStep(kernels, books, hidden, batch_size, seed=seed)
    expected = (fused.start.astype(np.float64), np.zeros(books), np.zeros(hidden))
    try:
        for _ in range(steps):
            samples = (rng.random((batch_size, hidden)) < 0.5).astype(np.float32)
            got = fused.step(samples, fetch=True)
            expected = reference_step(*expected, samples.astype(np.float64), 0.1 / batch_size)
    finally:
        fused.close()
    scale = max(float(np.max(np.abs(e))) for e in expected)
    return max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected)) / scale


def measure(args, kernels, log=print):
    """The GEMM peak and each step's epoch seconds, a list over the rounds."""
    from bare_cd1 import BareCD1

    peak = full_scale.measure_gemm(args)["tensorflow"]
    nets = {"tensorflow": BareCD1(args.books, args.hidden, args.batch_size, seed=args.seed),
            "fused": FusedBareStep(kernels, args.books, args.hidden, args.batch_size, seed=args.seed)}
    seconds = {name: [] for name in STEPS}
    try:
        for net in nets.values():
            net.step()
        for round_ in range(args.rounds):
            log(f"round {round_ + 1} of {args.rounds} …")
            for name, net in nets.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    net.step()
                seconds[name].append(time.perf_counter() - start)
    finally:
        for net in nets.values():
            net.close()
    return peak, seconds


def rows_of(args, peak, seconds, difference):
    """The table: the peak, the kernel's difference, each step's epoch (median and range over
    the rounds), its GFLOP/s by the issue's count (6 · batch · books · hidden a step) and share
    of the peak, and how much faster the kernel's epoch is."""
    flop = 6.0 * args.batch_size * args.books * args.hidden * args.steps

    def row(name, value, unit, spread=("", "")):
        low, high = (float(f"{x:.6g}") if x != "" else "" for x in spread)
        return {"name": name, "value": float(f"{value:.6g}"), "low": low, "high": high, "unit": unit}

    rows = [row("gemm_peak", peak, "GFLOP/s"), row("fused_largest_difference", difference, "relative")]
    for name in STEPS:
        times = seconds[name]
        median = statistics.median(times)
        rows += [
            row(f"{name}_epoch", median, "s", (min(times), max(times))),
            row(f"{name}_gflops", flop / median / 1e9, "GFLOP/s", (flop / max(times) / 1e9, flop / min(times) / 1e9)),
            row(f"{name}_share_of_peak", 100 * flop / median / 1e9 / peak, "%"),
        ]
    rows.append(row("fused_speedup", statistics.median(seconds["tensorflow"]) / statistics.median(seconds["fused"]), "x"))
    return rows


def run(args, log=print, kernels=None):
    """The bench; ``kernels``, the built library's ops, if it is loaded already (TensorFlow
    takes an op's first library only: a second one of the same ops would have none)."""
    if kernels is None:
        with tempfile.TemporaryDirectory() as folder:  # loaded, the library needs no file
            kernels = build(folder)
    difference = largest_difference(kernels, min(args.books, 1003), args.hidden, args.batch_size, args.seed)
    log(f"the kernel against NumPy after 3 steps: {difference:.1e} apart, relatively")
    peak, seconds = measure(args, kernels, log)
    rows = rows_of(args, peak, seconds, difference)
    write_csv(args.out, rows, ["name", "value", "low", "high", "unit"])
    log("")
    log(f"{args.books} books × {args.hidden} hidden units, batches of {args.batch_size}, {args.steps} steps an epoch,"
        f" {args.rounds} rounds")
    width = max(len(r["name"]) for r in rows) + 2
    log(f"{'figure':<{width}}{'median':>12}{'range over the rounds':>24}  unit")
    for r in rows:
        spread = f"{r['low']:g}–{r['high']:g}" if r["low"] != "" else ""
        log(f"{r['name']:<{width}}{r['value']:>12g}{spread:>24}  {r['unit']}")
    log(f"wrote {paths.shown(args.out)}")
    return rows


@cli
def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    check_writable(args.out)  # not after minutes of measuring
    run(args)


if __name__ == "__main__":
    main()

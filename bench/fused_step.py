#!/usr/bin/env python3
"""The CD-1 step as one kernel of our own, against the same step in TensorFlow's ops and
against the write-up's: how much of the GEMM peak, and how many times the write-up's speed,
a step at the trainer's shapes reaches when the three counted products, their sigmoids and
biases, the data side and the update take two passes over the weights and nothing goes
through TensorFlow's ops.

Two kernels: our trainer's whole step, `train_rbm.py --step kernel` (bookrbm/kernel.py,
bookrbm/native/cd1_step.cc), with the defaults or at the write-up's settings (`--preset
writeup`: the rating input, no momentum, weight decay, dropout, short lists or series
units); and the bare step of bench/bare_cd1.py (bench/fused_step.cc, a prototype). Both need
a C++ compiler (g++, or $CXX) and TensorFlow's headers, which its wheel holds. On
bench/full_scale.py's stand-in (made and preprocessed if need be), it first checks each
kernel: the bare one against NumPy, and the trainer's at both settings against the
trainer's graph, the same batches and draws, three steps each. Then, alternated epoch by
epoch in one process, --rounds epochs of each of: the write-up's step; our trainer's, by
TensorFlow's ops and by the kernel, with the defaults and at the write-up's settings, the
kernel's also with each epoch's feeds made beforehand (the steps alone); the bare step in
TensorFlow's ops and in the kernel; and this machine's GEMM peak. Prints a table and writes
results/fused_step.csv (name, value: the median over the rounds, low and high: their range,
unit).

Smoke mode for CI: --users 300 --rounds 1 --gemm 128.
"""
import argparse
import os
import statistics
import sys
import tempfile
from types import SimpleNamespace

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(BENCH), BENCH]

import numpy as np  # noqa: E402

import full_scale  # noqa: E402
import own_kernels  # noqa: E402
from bookrbm import kernel, paths  # noqa: E402
from bookrbm.atomic import check_writable, write_csv  # noqa: E402
from bookrbm.errors import InputError, check_range, cli, option  # noqa: E402

SOURCE = os.path.join(BENCH, "fused_step.cc")  # the bare step's
MAX_BATCH = kernel.MAX_BATCH  # the kernels': seven vectors of 16 readers a book (bookrbm/native/cd1.h)
STEPS = ("writeup", "ours", "kernel", "kernel_fed_beforehand", "ours_writeup_settings", "kernel_writeup_settings",
         "kernel_writeup_settings_fed_beforehand", "bare_cd1", "fused_bare_cd1")
# the kernels' largest differences from their references (``run``)
DIFFERENCES = ("bare_cd1_from_numpy", "defaults_from_graph", "defaults_errors_from_graph", "writeup_settings_from_graph",
               "writeup_settings_errors_from_graph")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    full_scale.add_stand_in_options(parser)
    parser.add_argument("--rounds", type=int, default=5, help="epochs of each step, alternated (default: %(default)s)")
    parser.add_argument("--out", default=os.path.join(paths.RESULTS, "fused_step.csv"), help="results table (default: %(default)s)")
    return parser.parse_args(argv)


def check_args(args):
    for name in ("users", "hidden", "batch_size", "rounds", "gemm"):
        check_range(option(name), getattr(args, name), at_least=1)
    check_range("--batch-size", args.batch_size, at_most=MAX_BATCH)
    if args.hidden % kernel.HIDDEN_MULTIPLE:
        raise InputError(f"--hidden must be a multiple of {kernel.HIDDEN_MULTIPLE}, not {args.hidden}")


def build(folder, compiler=None):
    """Compile fused_step.cc (the bare step) into ``folder`` and load it: its op."""
    return own_kernels.load(own_kernels.build(folder, compiler, source=SOURCE, contract=True))


class FusedBareStep:
    """The bare CD-1 step of ``BareCD1`` (the same shapes and start) as the kernel's one op:
    ``step()`` as BareCD1's; ``step(samples, fetch=True)`` takes the hidden samples (batch,
    hidden) and returns the parameters after the step."""

    def __init__(self, kernels, n_visible, n_hidden, batch_size, learning_rate=0.1, seed=0):
        from bare_cd1 import starting_point

        from bookrbm.graph import tf, tf1

        weights, h0 = starting_point(n_visible, n_hidden, batch_size, seed)
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf1.set_random_seed(seed)
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
        self.feed = {self.h0_mean: h0}
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


def graph_difference(data, preset, hidden, batch_size, seed, steps=3, kernel_seed=None):
    """Our trainer's kernel step (``--step kernel``) against its graph's ops with ``preset``'s
    settings (the trainer's start, input and series units), on the first ``steps`` batches of
    the fit readers with the same draws (the hidden and series units' fed; the dropout's the
    same seeded ops, the kernel's from ``kernel_seed`` if given): the largest difference of
    the parameters after them, relative to the largest of each, and of the batches' errors,
    relative to each."""
    from bookrbm import series, train

    args = SimpleNamespace(hidden=hidden, batch_size=batch_size, seed=seed)
    preset = {**preset, "short_lists": 0.0}  # whole lists: the kernel would cut them with its own draws
    ours = full_scale._trainer(args, preset, data)
    args.seed = seed if kernel_seed is None else kernel_seed
    by_kernel = full_scale._trainer(args, {**preset, "step": "kernel"}, data)
    by_kernel.net.set_params(*ours.net.params())  # the same start whatever its seed: only its draws differ then
    rng = np.random.default_rng(seed)
    n_series = 0 if ours.series is None else series.count(ours.series)
    error_gap = 0.0
    try:
        for batch in train.batch_slices(ours.fit.shape[0], batch_size)[:steps]:
            batch = ours.fit[batch]
            draws = {"hidden_noise": rng.random((batch.shape[0], hidden), dtype=np.float32)}
            if n_series:
                draws["series_noise"] = rng.random((batch.shape[0], n_series), dtype=np.float32)
                draws["series_kept"] = (rng.random((batch.shape[0], n_series)) < preset["series_keep"]).astype(np.float32)
            theirs, mine = ours.net.train_batch(batch, **draws), by_kernel.net.train_batch(batch, **draws)
            error_gap = max(error_gap, abs(mine - theirs) / theirs)
        expected, got = ours.net.params(), by_kernel.net.params()
    finally:
        ours.net.close()
        by_kernel.net.close()
    gap = max(float(np.max(np.abs(g - e)) / max(np.max(np.abs(e)), 1e-30)) for g, e in zip(got, expected))
    return gap, error_gap


def _fed_beforehand(args, preset, data):
    """Our trainer with ``preset``'s settings and ``--step kernel`` (``full_scale._trainer``),
    but with each epoch's feeds made beforehand by ``prepare()`` (shuffled and cut to short
    lists as ``train.run_epoch`` does it: ``train.epoch_feeds``), so that ``epoch()`` times
    the steps alone."""
    from bookrbm import train

    trained = full_scale._trainer(args, {**preset, "step": "kernel"}, data)
    rng = np.random.default_rng(args.seed)
    net = trained.net
    feeds = []

    def prepare():
        feeds[:] = train.epoch_feeds(net, trained.fit, rng, args.batch_size)[1]

    def epoch():
        for feed in feeds:
            net.train_feed(feed)

    return SimpleNamespace(net=net, epoch=epoch, prepare=prepare)


def _fused_bare_trainer(kernels, args, fit):
    """The bare step's kernel at our shapes, and ``epoch()``: as many steps as an epoch of
    ``fit`` has batches (``full_scale._bare_trainer``'s)."""
    from bookrbm import train

    net = FusedBareStep(kernels, fit.shape[1], args.hidden, args.batch_size, seed=args.seed)
    batches = len(train.batch_slices(fit.shape[0], args.batch_size))

    def epoch():
        for _ in range(batches):
            net.step()

    return SimpleNamespace(net=net, epoch=epoch)


def measure(args, kernels, data, log=print):
    """The GEMM peak, each step's epoch seconds (a list over the rounds, alternated), and the
    readers and batches of an epoch."""
    from bookrbm import train
    from bookrbm.settings import DEFAULTS, WRITEUP

    peak = full_scale.tensorflow_peak(args.gemm)
    ours, at_writeup_settings = full_scale._trainer(args, DEFAULTS, data), full_scale._trainer(args, WRITEUP, data)
    steps = {"writeup": full_scale._writeup_trainer(args, at_writeup_settings.fit),
             "ours": ours, "kernel": full_scale._trainer(args, {**DEFAULTS, "step": "kernel"}, data),
             "kernel_fed_beforehand": _fed_beforehand(args, DEFAULTS, data),
             "ours_writeup_settings": at_writeup_settings,
             "kernel_writeup_settings": full_scale._trainer(args, {**WRITEUP, "step": "kernel"}, data),
             "kernel_writeup_settings_fed_beforehand": _fed_beforehand(args, WRITEUP, data),
             "bare_cd1": full_scale._bare_trainer(args, ours.fit), "fused_bare_cd1": _fused_bare_trainer(kernels, args, ours.fit)}
    seconds = {name: [] for name in STEPS}
    try:
        for round_ in range(args.rounds):
            log(f"round {round_ + 1} of {args.rounds} …")
            for name in STEPS:
                if getattr(steps[name], "prepare", None):
                    steps[name].prepare()  # not timed
                seconds[name].append(full_scale._timed(steps[name].epoch))
    finally:
        for step in steps.values():
            step.net.close()
    return peak, seconds, ours.fit.shape[0], len(train.batch_slices(ours.fit.shape[0], args.batch_size))


def rows_of(args, figures):
    """The table from ``figures``: gemm_peak, the kernels' differences from their references,
    and each step's epoch (median and range over the rounds), its share of the peak by the
    issue's count (6 · readers · books · hidden an epoch; the bare steps' readers: their
    batches, each a full one), and, but for the write-up's, how many times faster it is than
    the write-up's."""

    def row(name, value, unit, spread=("", "")):
        low, high = (float(f"{x:.6g}") if x != "" else "" for x in spread)
        return {"name": name, "value": float(f"{value:.6g}"), "low": low, "high": high, "unit": unit}

    peak, seconds = figures["peak"], figures["seconds"]
    rows = [row("gemm_peak", peak, "GFLOP/s")]
    rows += [row(name, figures[name], "relative") for name in DIFFERENCES]
    writeup = statistics.median(seconds["writeup"])
    for name in STEPS:
        readers = figures["batches"] * args.batch_size if name.endswith("bare_cd1") else figures["readers"]
        flop = 6.0 * readers * figures["books"] * args.hidden
        times = seconds[name]
        median = statistics.median(times)
        rows += [row(f"{name}_epoch", median, "s", (min(times), max(times))),
                 row(f"{name}_share_of_peak", 100 * flop / median / 1e9 / peak, "%",
                     (100 * flop / max(times) / 1e9 / peak, 100 * flop / min(times) / 1e9 / peak))]
        if name != "writeup":
            rows.append(row(f"{name}_speedup_vs_writeup", writeup / median, "x"))
    return rows


def run(args, log=print, kernels=None):
    """The bench; ``kernels``, the built library's ops, if it is loaded already (TensorFlow
    takes an op's first library only: a second one of the same ops would have none)."""
    from bookrbm.settings import DEFAULTS, WRITEUP

    args.folder = os.path.join(args.cache, f"users{args.users}-seed{args.seed}")
    full_scale.make_stand_in(args.folder, args.users, args.seed, log=log)
    full_scale.processed(args, log)
    if kernels is None:
        with tempfile.TemporaryDirectory() as folder:  # loaded, the library needs no file
            kernels = build(folder)
    data = full_scale._stand_in(args)
    figures = {"books": data.n_books}
    figures["bare_cd1_from_numpy"] = largest_difference(kernels, min(data.n_books, 1003), args.hidden, args.batch_size,
                                                        args.seed)
    for preset, name in ((DEFAULTS, "defaults"), (WRITEUP, "writeup_settings")):
        figures[f"{name}_from_graph"], figures[f"{name}_errors_from_graph"] = graph_difference(
            data, preset, args.hidden, args.batch_size, args.seed)
    log(f"the kernels after 3 steps, relatively: the bare step {figures['bare_cd1_from_numpy']:.1e} from NumPy; the whole"
        f" step from our graph, with the defaults {figures['defaults_from_graph']:.1e} (errors"
        f" {figures['defaults_errors_from_graph']:.1e}), at the write-up's settings"
        f" {figures['writeup_settings_from_graph']:.1e} ({figures['writeup_settings_errors_from_graph']:.1e})")
    figures["peak"], figures["seconds"], figures["readers"], figures["batches"] = measure(args, kernels, data, log)
    rows = rows_of(args, figures)
    write_csv(args.out, rows, ["name", "value", "low", "high", "unit"])
    log("")
    log(f"{figures['readers']} readers × {figures['books']} books, {args.hidden} hidden units, batches of"
        f" {args.batch_size}, {args.rounds} rounds")
    full_scale.log_ranges(rows, log)
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

#!/usr/bin/env python3
"""Full-scale benchmark: goodbooks-10k's whole size, measured against this machine's own limit.

The full ratings cannot be downloaded here, so a stand-in of the same size is made from the
bundled real sample: 53,424 users, each a copy of a real sample user picked at random (with
replacement), so the per-user distribution of ratings and of to-read lists is the real one.
It is written as the CSVs preprocess.py reads, seeded, and cached between runs.

Then, in one run on that data: preprocess.py (wall time, peak RSS); training epochs of our
trainer (median) and its peak RSS; then, alternated epoch by epoch in one process, the
write-up's training step (bench/writeup_graph.py), our trainer with the defaults and our
trainer at the write-up's own settings (`--preset writeup`), so that the two are also
compared on the same settings (medians), our trainer with `--step kernel` (the CD-1 step as
one C++ kernel of our own, bookrbm/kernel.py) at both settings, unless --no-kernel, and a
bare CD-1 step (bench/bare_cd1.py: the counted products and the least around them, the
ceiling of the share of the peak); the
float32 GEMM peak of this machine (NumPy and TensorFlow); one-user recommendation
in-process (median of --calls) and `python recommend.py` as a process. Prints a table and
writes results/bench.csv (name, value, unit).

Smoke mode for CI: --users 500 --epochs 1 --calls 20 --gemm 512.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

BENCH = os.path.dirname(os.path.abspath(__file__))  # the reference steps beside this script
ROOT = os.path.dirname(BENCH)
sys.path[:0] = [ROOT, BENCH]

import numpy as np  # noqa: E402

from bookrbm import paths  # noqa: E402
from bookrbm.atomic import atomic_write, check_writable, write_csv  # noqa: E402
from bookrbm.errors import InputError, check_range, cli, option, seed_option  # noqa: E402

FULL_USERS = 53424
COPIED = ("books.csv", "book_tags.csv", "tags.csv")
TARGETS = {  # name: (target, "min" or "max"), from the issue
    "train_share_of_peak": (50.0, "min"),
    "train_share_of_peak_writeup_settings": (50.0, "min"),
    "speedup_vs_writeup": (5.0, "min"),
    "speedup_vs_writeup_same_settings": (5.0, "min"),
    "kernel_share_of_peak": (50.0, "min"),
    "kernel_share_of_peak_writeup_settings": (50.0, "min"),
    "speedup_vs_writeup_kernel": (5.0, "min"),
    "speedup_vs_writeup_same_settings_kernel": (5.0, "min"),
    "train_peak_rss": (1536.0, "max"),
    "preprocess_wall": (10.0, "max"),
    "recommend_in_process": (1.0, "max"),
    "recommend_process": (1.5, "max"),
}


def add_stand_in_options(parser):
    """The options of the stand-in, the step and the GEMM peak, which bench/threads.py shares."""
    parser.add_argument("--users", type=int, default=FULL_USERS, help="users of the stand-in (default: %(default)s)")
    parser.add_argument("--seed", type=seed_option, default=0, help="seed of the stand-in and the training (default: %(default)s)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=100, help="batch size (default: %(default)s)")
    parser.add_argument("--gemm", type=int, default=4096, help="size n of the n×n×n GEMM peak (default: %(default)s)")
    parser.add_argument("--cache", default=os.path.join(paths.ROOT, "data", "bench"), help="where stand-ins are kept (default: %(default)s)")
    parser.add_argument("--folder", help=argparse.SUPPRESS)  # a child's: the stand-in's own folder


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_stand_in_options(parser)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each step to time (ours, ours at the write-up's settings, the write-up's, the bare CD-1 step); the medians are reported (default: %(default)s)")
    parser.add_argument("--calls", type=int, default=1000, help="one-user recommendations to time in-process (default: %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="runs of recommend.py as a process (default: %(default)s)")
    parser.add_argument("--out", default=os.path.join(paths.RESULTS, "bench.csv"), help="results table (default: %(default)s)")
    parser.add_argument("--kernel", action=argparse.BooleanOptionalAction, default=True,
                        help="also time our trainer with --step kernel (built once with g++ or $CXX) (default: %(default)s)")
    parser.add_argument("--measure", choices=("train", "compare", "gemm"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---- the stand-in data set ------------------------------------------------------------

def _copies(user_ids, picks):
    """Row indices that copy every row of each picked user, and the new user_id of each row.

    user_ids : the user_id of each row of the real table; picks : the real user behind each
    new user 1..len(picks).
    """
    order = np.argsort(user_ids, kind="stable")
    real, starts, counts = np.unique(user_ids[order], return_index=True, return_counts=True)
    where = np.searchsorted(real, picks)
    present = (where < len(real)) & (real[np.minimum(where, len(real) - 1)] == picks)
    n = np.where(present, counts[np.minimum(where, len(real) - 1)], 0)
    first = np.where(present, starts[np.minimum(where, len(real) - 1)], 0)
    new_ids = np.repeat(np.arange(1, len(picks) + 1), n)
    offsets = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    return order[np.repeat(first, n) + offsets], new_ids


def _write_table(path, columns):
    import pandas as pd

    with atomic_write(path, mode="w", newline="") as handle:
        pd.DataFrame(columns).to_csv(handle, index=False)


def make_stand_in(folder, users, seed, source=paths.BUNDLED_DATA, log=print):
    """Write the stand-in CSVs into ``folder`` unless a finished one with these settings is there."""
    import pandas as pd

    folder = os.fspath(folder)
    stamp_path = os.path.join(folder, "stand_in.json")
    wanted = {"users": users, "seed": seed, "source": os.path.abspath(source)}
    if os.path.exists(stamp_path):
        with open(stamp_path, encoding="utf-8") as handle:
            if json.load(handle) == wanted:
                log(f"stand-in: cached in {paths.shown(folder)}")
                return
    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    ratings = pd.read_csv(os.path.join(source, "ratings.csv"))
    to_read = pd.read_csv(os.path.join(source, "to_read.csv"))
    real_users = np.unique(ratings["user_id"].to_numpy())
    picks = np.random.default_rng(seed).choice(real_users, size=users, replace=True)
    for name, table, value_columns in (("ratings.csv", ratings, ("book_id", "rating")), ("to_read.csv", to_read, ("book_id",))):
        rows, new_ids = _copies(table["user_id"].to_numpy(), picks)
        columns = {"user_id": new_ids, **{c: table[c].to_numpy()[rows] for c in value_columns}}
        _write_table(os.path.join(folder, name), columns)
    for name in COPIED:
        shutil.copyfile(os.path.join(source, name), os.path.join(folder, name))
    with atomic_write(stamp_path, mode="w") as handle:
        json.dump(wanted, handle)
    log(f"stand-in: {users} users written to {paths.shown(folder)} in {time.perf_counter() - start:.1f} s")


# ---- measuring children ---------------------------------------------------------------

def run_measured(command):
    """Run ``command``; (wall seconds, peak RSS in MB, stdout). A failure is an InputError."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=paths.ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            tail = err.read().decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
            raise InputError(f"{' '.join(command[:3])} failed with exit code {child.returncode}: {tail[0]}")
        return wall, usage.ru_maxrss / 1024, out.read().decode("utf-8")


def child_command(script, mode, args, names):
    """The command that runs ``script`` as a measuring child: ``--measure mode`` on the
    stand-in in ``args.folder``, with ``args``'s options ``names``."""
    command = [sys.executable, os.path.abspath(script), "--measure", str(mode), "--folder", args.folder]
    for name in names:
        command += [option(name), str(getattr(args, name))]
    return command


def _child(args, mode):
    command = child_command(__file__, mode, args, ("seed", "epochs", "hidden", "batch_size", "gemm"))
    _, rss, out = run_measured(command + ([] if args.kernel else ["--no-kernel"]))
    return rss, json.loads(out.strip().splitlines()[-1])


def _timed(epoch):
    start = time.perf_counter()
    epoch()
    return time.perf_counter() - start


def _stand_in(args):
    """The stand-in's processed data, as preprocess.py wrote it."""
    from bookrbm import interactions

    return interactions.load(os.path.join(args.folder, "processed.npz"))


def processed(args, log=print):
    """Preprocess the stand-in in ``args.folder`` into its processed.npz unless that is newer
    than the stand-in (bench/threads.py and bench/fused_step.py; this script times it)."""
    processed = os.path.join(args.folder, "processed.npz")
    stamp = os.path.join(args.folder, "stand_in.json")
    if not os.path.exists(processed) or os.path.getmtime(processed) < os.path.getmtime(stamp):
        log("preprocess.py …")
        run_measured([sys.executable, "preprocess.py", "--data-dir", args.folder, "--out", processed])


def log_ranges(rows, log=print, columns=()):
    """Log ``rows`` (dicts of name, ``columns``, value, low, high and unit) as a table: each
    figure's median and its range over the rounds (bench/threads.py and bench/fused_step.py)."""
    width = max(len(row["name"]) for row in rows) + 2
    log(f"{'figure':<{width}}{''.join(f'{name:>8}' for name in columns)}{'median':>12}{'range over the rounds':>24}  unit")
    for row in rows:
        spread = f"{row['low']:g}–{row['high']:g}" if row["low"] != "" else ""
        cells = "".join(f"{row[name]:>8}" for name in columns)
        log(f"{row['name']:<{width}}{cells}{row['value']:>12g}{spread:>24}  {row['unit']}")


def _trainer(args, preset, data):
    """Our trainer on ``data`` with ``preset``'s settings (hidden units and batch size from
    ``args``): its settings, fit and valid users, series units and graph, and
    ``epoch()``, which trains one epoch as the trainer does (with the settings' short lists)."""
    from bookrbm import train

    settings = {**preset, "hidden": args.hidden, "batch_size": args.batch_size}
    fit, valid, _ = train.trainer_users(data, settings["input"])
    series_of_books = train.book_series(data, settings)  # the series units, as the trainer has them
    net, rng = train.build_graph(fit, settings, args.seed, series_of_books)

    def epoch():
        train.run_epoch(net, fit, rng, args.batch_size, progress=False)

    return SimpleNamespace(settings=settings, fit=fit, valid=valid, series=series_of_books, net=net, epoch=epoch)


def _writeup_trainer(args, fit):
    """The write-up's step (bench/writeup_graph.py) on ``fit``, the users ours trains on with
    the rating input (users × books CSR), and ``epoch()``: one epoch of it, in a new order
    each time, the batches made dense as it fed them."""
    from writeup_graph import WriteupRBM

    net = WriteupRBM(fit.shape[1], args.hidden, seed=args.seed)
    rng = np.random.default_rng(args.seed)

    def epoch():
        shuffled = fit[rng.permutation(fit.shape[0])]
        for first in range(0, shuffled.shape[0], args.batch_size):
            net.train_batch(shuffled[first : first + args.batch_size].toarray())

    return SimpleNamespace(net=net, epoch=epoch)


def _bare_trainer(args, fit):
    """The bare CD-1 step (bench/bare_cd1.py) at our shapes, and ``epoch()``: as many steps
    as an epoch of ``fit`` (users × books CSR) has batches."""
    from bare_cd1 import BareCD1

    from bookrbm import train

    net = BareCD1(fit.shape[1], args.hidden, args.batch_size, seed=args.seed)
    batches = len(train.batch_slices(fit.shape[0], args.batch_size))

    def epoch():
        for _ in range(batches):
            net.step()

    return SimpleNamespace(net=net, epoch=epoch)


def measure_train(args):
    """Child: our trainer's epochs on the stand-in; saves the model for the recommend timings."""
    from bookrbm import model, train
    from bookrbm.settings import DEFAULTS

    data = _stand_in(args)
    trained = _trainer(args, DEFAULTS, data)
    seconds = [_timed(trained.epoch) for _ in range(args.epochs)]
    start = time.perf_counter()
    params = trained.net.params()
    train.epoch_figures(trained.net, trained.fit, trained.valid, params, args.batch_size, trained.series)
    metrics = time.perf_counter() - start
    trained.net.close()
    # the model as train_rbm.py saves it, so that the recommend timings take the product's path
    model.save(os.path.join(args.folder, "model.npz"), train.as_model(
        params, data, trained.settings, args.seed, train.fit_statistics(trained.fit), trained.series
    ))
    return {"epoch_seconds": seconds, "metrics_seconds": metrics, "fit_users": int(trained.fit.shape[0]),
            "batches": len(train.batch_slices(trained.fit.shape[0], args.batch_size)), "books": int(data.n_books)}


def measure_compare(args):
    """Child: the write-up's step against ours, with the defaults and with the write-up's own
    settings (``--preset writeup``: rating / 5 input, no momentum, dropout, weight decay,
    short lists or series units), and the bare CD-1 step (the ceiling); ``args.epochs``
    rounds of one epoch of each, alternated in this one process, so that a slow spell of the
    machine falls on all four alike (one epoch of the write-up's, timed in a process of its
    own, moved by 4.3-6.8 s from run to run, and the median of three by 4.8-6.7 s). The
    seconds of each epoch, by step."""
    from bookrbm.settings import DEFAULTS, WRITEUP

    data = _stand_in(args)  # once for all the steps (peak RSS at the full size 1.05 → 0.93 GB)
    ours, at_writeup_settings = _trainer(args, DEFAULTS, data), _trainer(args, WRITEUP, data)
    # the write-up's step trains on the same users as ours at its settings (the rating input)
    steps = {"ours": ours, "ours_writeup_settings": at_writeup_settings,
             "writeup": _writeup_trainer(args, at_writeup_settings.fit), "bare_cd1": _bare_trainer(args, ours.fit)}
    if args.kernel:  # the same trainer with --step kernel, at both settings
        steps["ours_kernel"] = _trainer(args, {**DEFAULTS, "step": "kernel"}, data)
        steps["ours_kernel_writeup_settings"] = _trainer(args, {**WRITEUP, "step": "kernel"}, data)
    seconds = {name: [] for name in steps}
    for _ in range(args.epochs):
        for name, step in steps.items():
            seconds[name].append(_timed(step.epoch))
    for step in steps.values():
        step.net.close()
    return seconds


def _best_rate(run, flop):
    """GFLOP/s of the fastest of 5 calls of ``run`` (``flop`` each), after one untimed."""
    run()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return flop / min(times) / 1e9


def tensorflow_peak(n):
    """Best of 5 float32 n×n×n products in a TensorFlow session, GFLOP/s (also for
    bench/threads.py and bench/fused_step.py)."""
    import bookrbm.graph  # noqa: F401  (the trainer's TensorFlow set-up: graph mode, quiet logs)
    import tensorflow as tf

    tf1 = tf.compat.v1
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x, y = tf1.Variable(rng.random((n, n), dtype=np.float32)), tf1.Variable(rng.random((n, n), dtype=np.float32))
        product = tf.reduce_sum(tf.matmul(x, y))  # fetch a scalar, not 64 MB
        init = tf1.global_variables_initializer()
    with tf1.Session(graph=graph) as session:
        session.run(init)
        return _best_rate(lambda: session.run(product), 2.0 * n**3)


def measure_gemm(args):
    """Child: best of 5 float32 n×n×n products, in NumPy (its BLAS) and in a TensorFlow session."""
    n = args.gemm
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    return {"numpy": _best_rate(lambda: a @ b, 2.0 * n**3), "tensorflow": tensorflow_peak(n)}


# ---- the run ----------------------------------------------------------------------------

def time_recommend(folder, calls, runs, tmp):
    from bookrbm import interactions, model
    from bookrbm.recommend import recommend

    data = interactions.load(os.path.join(folder, "processed.npz"))
    trained = model.load(os.path.join(folder, "model.npz"))
    has_list = np.flatnonzero(np.diff(data.to_read.indptr) > 0)
    user_id = int(data.user_ids[has_list[0]])
    recommend(trained, data, user_id)  # warm the caches
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        recommend(trained, data, user_id)
        times.append(time.perf_counter() - start)
    process = []
    command = [sys.executable, "recommend.py", "--user", str(user_id), "--data", os.path.join(folder, "processed.npz"),
               "--model", os.path.join(folder, "model.npz"), "--results", tmp, "--plots", tmp]
    for _ in range(runs):
        process.append(run_measured(command)[0])
    return user_id, statistics.median(times) * 1e3, statistics.median(process)


def verdict(name, value):
    if name not in TARGETS:
        return ""
    target, kind = TARGETS[name]
    met = value >= target if kind == "min" else value <= target
    return f"{'≥' if kind == 'min' else '≤'} {target:g}: {'met' if met else 'MISSED'}"


def kernel_can_be_built(log=print):
    """Whether there is a C++ compiler for the kernel step; a note if not (the rest of the
    bench needs none)."""
    from bookrbm import kernel

    try:
        kernel.compiler_of()
    except InputError as error:
        log(f"note: {error}: the kernel step is not timed")
        return False
    return True


def run(args, log=print):
    args.folder = os.path.join(args.cache, f"users{args.users}-seed{args.seed}")
    args.kernel = args.kernel and kernel_can_be_built(log)
    make_stand_in(args.folder, args.users, args.seed, log=log)
    rows = []

    def add(name, value, unit):
        rows.append({"name": name, "value": round(float(value), 4), "unit": unit})
        log(f"  {name} = {rows[-1]['value']:g} {unit}")

    log("preprocess.py …")
    processed = os.path.join(args.folder, "processed.npz")
    wall, rss, _ = run_measured([sys.executable, "preprocess.py", "--data-dir", args.folder, "--out", processed])
    from bookrbm import interactions

    info = interactions.load(processed).info
    add("users", info["n_users"], "users")
    add("ratings", info["n_ratings"], "ratings")
    add("preprocess_wall", wall, "s")
    add("preprocess_peak_rss", rss, "MB")

    log(f"training {args.epochs} epoch(s), H={args.hidden}, batch {args.batch_size} …")
    rss, trained = _child(args, "train")
    log(f"the write-up's step against ours, with the defaults and with its settings, and the bare CD-1 step: "
        f"{args.epochs} epoch(s) of each, alternated …")
    _, compared = _child(args, "compare")
    log(f"GEMM peak, {args.gemm}³ …")
    _, gemm = _child(args, "gemm")
    epoch = statistics.median(trained["epoch_seconds"])
    flop = 6.0 * trained["fit_users"] * trained["books"] * args.hidden
    peak = max(gemm["numpy"], gemm["tensorflow"])

    def share_of_peak(flop, seconds):
        return 100 * flop / seconds / 1e9 / peak

    add("gemm_numpy", gemm["numpy"], "GFLOP/s")
    add("gemm_tensorflow", gemm["tensorflow"], "GFLOP/s")
    add("gemm_peak", peak, "GFLOP/s")
    add("fit_users", trained["fit_users"], "users")
    add("train_epoch", epoch, "s")
    add("train_gflops", flop / epoch / 1e9, "GFLOP/s")
    add("train_share_of_peak", share_of_peak(flop, epoch), "%")
    add("train_epoch_metrics", trained["metrics_seconds"], "s")
    add("train_peak_rss", rss, "MB")
    # the ratios come from the one process that alternated the steps (measure_compare)
    writeup_epoch, alongside, same_settings = (
        statistics.median(compared[name]) for name in ("writeup", "ours", "ours_writeup_settings")
    )
    add("writeup_epoch", writeup_epoch, "s")
    add("train_epoch_alongside_writeup", alongside, "s")
    add("speedup_vs_writeup", writeup_epoch / alongside, "x")
    add("train_epoch_writeup_settings", same_settings, "s")
    # by the same count: the same users, books and hidden units
    add("train_share_of_peak_writeup_settings", share_of_peak(flop, same_settings), "%")
    add("speedup_vs_writeup_same_settings", writeup_epoch / same_settings, "x")
    # the ceiling: the counted products and the least around them, as many batches as ours
    bare_epoch = statistics.median(compared["bare_cd1"])
    bare_users = trained["batches"] * args.batch_size  # every batch a full one
    bare_flop = 6.0 * bare_users * trained["books"] * args.hidden
    add("bare_cd1_epoch", bare_epoch, "s")
    add("bare_cd1_share_of_peak", share_of_peak(bare_flop, bare_epoch), "%")
    if args.kernel:
        # our trainer with --step kernel, from the same alternated epochs as the ratios
        for suffix, name in (("", "ours_kernel"), ("_writeup_settings", "ours_kernel_writeup_settings")):
            kernel_epoch = statistics.median(compared[name])
            add(f"kernel_epoch{suffix}", kernel_epoch, "s")
            add(f"kernel_share_of_peak{suffix}", share_of_peak(flop, kernel_epoch), "%")
            add(f"speedup_vs_writeup{'_same_settings' if suffix else ''}_kernel", writeup_epoch / kernel_epoch, "x")

    log(f"recommend: {args.calls} calls in-process, {args.runs} runs as a process …")
    with tempfile.TemporaryDirectory() as tmp:
        user_id, in_process, process = time_recommend(args.folder, args.calls, args.runs, tmp)
    add("recommend_in_process", in_process, "ms")
    add("recommend_process", process, "s")

    write_csv(args.out, rows, ["name", "value", "unit"])
    log("")
    width = max(len(row["name"]) for row in rows) + 2
    log(f"{'figure':<{width}}{'value':>12}  {'unit':<8}  target")
    for row in rows:
        log(f"{row['name']:<{width}}{row['value']:>12g}  {row['unit']:<8}  {verdict(row['name'], row['value'])}")
    log(f"\ntraining: {flop / 1e9:.1f} GFLOP per epoch by the count 6·U·N·H (U={trained['fit_users']} users "
        f"trained on, N={trained['books']} books, H={args.hidden}); recommend for user {user_id}")
    log(f"wrote {paths.shown(args.out)}")
    return rows


@cli
def main(argv=None):
    args = parse_args(argv)
    for name in ("users", "epochs", "hidden", "batch_size", "calls", "runs", "gemm"):
        check_range(option(name), getattr(args, name), at_least=1)
    if args.measure:
        measure = {"train": measure_train, "compare": measure_compare, "gemm": measure_gemm}[args.measure]
        print(json.dumps(measure(args)))
        return
    check_writable(args.out)  # not after a minute of measuring
    run(args)


if __name__ == "__main__":
    main()

"""Train the RBM by contrastive divergence on the fit users, tracking free energy,
reconstruction error and (optionally) NDCG@10 of the tuning users."""
import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from . import evaluation, kernel, rbm, series
from .ahead import ahead
from .atomic import write_csv
from .errors import InputError
from .graph import RBMGraph
from .model import Model, to_visible
from .plots import plot_curves, plot_learning_curve
from .settings import DEFAULTS, check_settings

HISTORY_COLUMNS = (
    "epoch", "train_free_energy", "valid_free_energy", "train_error", "valid_error", "tuning_ndcg",
)


def initial_params(n_visible, n_hidden, rng, visible_bias=None):
    """Small random weights break the symmetry between hidden units; hidden biases start at zero."""
    weights = rng.normal(0.0, 0.01, size=(n_visible, n_hidden)).astype(np.float32)
    if visible_bias is None:
        visible_bias = np.zeros(n_visible, np.float32)
    return weights, visible_bias, np.zeros(n_hidden, np.float32)


def logit_visible_bias(visible):
    """log(p / (1 - p)) of each unit's mean activity: the model starts at the data's marginals
    (Hinton's practical guide, 8.1). p is clipped so unseen books get a finite bias."""
    p = np.asarray(visible.mean(axis=0)).ravel()
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p)).astype(np.float32)


def batch_slices(n_rows, batch_size):
    """The slices of an epoch's batches of ``n_rows`` rows (the last one may be short)."""
    return [slice(start, start + batch_size) for start in range(0, n_rows, batch_size)]


def trainer_users(data, kind, fit_rows=None):
    """(fit, valid, tuning_rows): the fit and valid users' visible vectors for ``kind`` input
    (CSR), and the rows of the tuning users.

    fit_rows : train on these of the fit users only (rows of ``data``), for learning curves.
    """
    all_fit, tuning_rows, _ = evaluation.user_sets(data)
    if fit_rows is None:
        fit_rows = all_fit
    elif not np.isin(fit_rows, all_fit).all():
        raise InputError("fit_rows must be rows of fit users (not tuning or test users)")
    return to_visible(data.ratings[fit_rows], kind), to_visible(data.ratings[data.valid_rows], kind), tuning_rows


def book_series(data, settings):
    """Each book's series for the series units (``bookrbm.series``), or None when they are
    off, or the data has no titles to find them in, or no two of its books share a series."""
    if not settings["series_units"] or data.catalogue is None:
        return None
    found = series.series_of(data.catalogue.edition_titles)
    return found if series.count(found) else None


def build_graph(fit, settings, seed, series_of_books=None):
    """The training graph for ``settings`` and the fit users' visible vectors ``fit``, with
    weights drawn from ``seed``, and series units for ``series_of_books`` (``book_series``)
    if given; returns it and the generator that goes on to shuffle the epochs."""
    rng = np.random.default_rng(seed)
    visible_bias = logit_visible_bias(fit) if settings["visible_bias"] == "logit" else None
    series_options = {}
    if series_of_books is not None:
        series_weights, series_bias = series.initial_params(series_of_books)
        series_options = dict(
            series=series_of_books, series_weights=series_weights, series_bias=series_bias, series_step=series.STEP_FACTOR,
            series_keep=settings["series_keep"],
        )
    net = RBMGraph(
        *initial_params(fit.shape[1], settings["hidden"], rng, visible_bias),
        learning_rate=settings["learning_rate"],
        seed=seed,
        momentum=settings["momentum"],
        weight_decay=settings["weight_decay"],
        cd_steps=settings["cd_steps"],
        sample_visible=settings["sample_visible"],
        hidden_keep=settings["hidden_keep"],
        binary_input=settings["input"] == "binary",
        step=settings["step"],
        short_lists=settings["short_lists"],
        short_list_books=settings["short_list_books"],
        **series_options,
    )
    return net, rng


def shorten_lists(batch, share, most, rng):
    """``batch`` (CSR) with a random ``share`` of its rows cut to 1..``most`` of their books
    (how many drawn uniformly, which ones at random); the other rows as they are.

    The fit readers' lists are complete, but a reader of the web page lists a few books out
    of many; cut rows teach the RBM what a short list says about the rest (README, "Readers
    who list only a few books")."""
    if not share:
        return batch
    lengths = np.diff(batch.indptr)
    keep_count = rng.integers(1, most + 1, size=batch.shape[0])
    shorten = (rng.random(batch.shape[0]) < share) & (lengths > keep_count)
    if not shorten.any():
        return batch
    rows = np.repeat(np.arange(batch.shape[0]), lengths)
    # the entries of the rows to shorten, grouped by row in a random order within each
    # (sorting row + a uniform draw); the first keep_count of each group stay
    entries = np.flatnonzero(shorten[rows])
    order = entries[np.argsort(rows[entries] + rng.random(len(entries)), kind="stable")]
    cut_lengths = lengths[shorten]
    place = np.arange(len(order)) - np.repeat(np.cumsum(cut_lengths) - cut_lengths, cut_lengths)
    kept = np.ones(batch.nnz, bool)
    kept[order[place >= keep_count[rows[order]]]] = False
    new_lengths = np.where(shorten, keep_count, lengths)
    return sp.csr_matrix(
        (batch.data[kept], batch.indices[kept], np.concatenate([[0], np.cumsum(new_lengths)])), shape=batch.shape
    )


def epoch_feeds(net, fit, rng, batch_size, max_batches=None):
    """(the number of batches, their feeds, made as they are asked for): an epoch of the
    rows of ``fit`` (CSR) in a random order, in batches of ``batch_size``, each with the
    net's share of its rows cut to short lists (``net.short_lists``, ``shorten_lists``; whole,
    for a net that cuts them itself: ``net.cuts_lists``), as ``net.feed`` takes them; for a
    net that takes several batches a run (``net.batches_per_run``), a feed holds that many
    (``net.feed_batches``)."""
    # one permuted copy per epoch, so that each batch is a cheap contiguous slice
    shuffled = fit[rng.permutation(fit.shape[0])]
    batches = batch_slices(shuffled.shape[0], batch_size)[:max_batches]
    if net.batches_per_run > 1:  # the kernel's step, which cuts the lists itself: its runs' rows as they are
        runs = [batches[at : at + net.batches_per_run] for at in range(0, len(batches), net.batches_per_run)]
        return len(batches), (net.feed_batches(shuffled[run[0].start : run[-1].stop], batch_size) for run in runs)
    # the kernel's step cuts them itself, with its own draws
    short_lists = 0.0 if net.cuts_lists else net.short_lists
    return len(batches), (net.feed(shorten_lists(shuffled[batch], short_lists, net.short_list_books, rng)) for batch in batches)


def run_epoch(net, fit, rng, batch_size, max_batches=None, progress=True, desc="epoch"):
    """One pass of CD updates over the rows of ``fit`` (CSR) in a random order, each batch
    with the net's short lists (``epoch_feeds``); returns the reconstruction error of each
    batch."""
    n_batches, feeds = epoch_feeds(net, fit, rng, batch_size, max_batches)
    errors = []
    # made on a second thread while the session runs the batch before: the same draws from
    # ``rng`` in the same order, as nothing else draws from it during the epoch
    # closed on the way out, even by an error, so the thread stops then and not when collected
    feeds = ahead(feeds)
    with closing(feeds), tqdm(total=n_batches, desc=desc, leave=False, disable=None if progress else True) as bar:
        for feed in feeds:
            batch_errors = net.train_feed(feed)  # one a batch, of one or several (``epoch_feeds``)
            errors.extend(batch_errors)
            bar.update(len(batch_errors))
            bar.set_postfix(error=f"{errors[-1]:.5f}", refresh=False)
    return errors


def valid_errors(net, valid, batch_size):
    return [net.batch_error(valid[b]) for b in batch_slices(valid.shape[0], batch_size)]


def series_units(params, series_of_books):
    """``rbm``'s series units of the graph's ``params``, or None without them."""
    if series_of_books is None:
        return None
    return series_of_books, params[3], params[4]


def epoch_figures(net, fit, valid, params, batch_size, series_of_books=None):
    """(train free energy, valid free energy, valid reconstruction error) of ``params``; the
    error comes from the graph, so ``params`` must be the ones loaded in ``net``."""
    units = series_units(params, series_of_books)
    # the free energies (NumPy, from ``params``) on a second thread while the session works
    # out the valid error: a quarter less time at the full size, the same figures
    with ThreadPoolExecutor(1) as pool:
        energies = [pool.submit(rbm.mean_free_energy, users, *params[:3], units) for users in (fit, valid)]
        errors = valid_errors(net, valid, batch_size)
        train_energy, valid_energy = (float(energy.result()) for energy in energies)
    return train_energy, valid_energy, float(np.mean(errors)) if errors else float("nan")


def fit_statistics(fit):
    """(visible_mean, mean_books) of the fit readers' visible vectors: what a book a reader
    does not list is worth on average, and how many books a fit reader lists
    (``Model.hidden_probabilities``)."""
    return np.asarray(fit.mean(axis=0), dtype=np.float32).ravel(), fit.nnz / fit.shape[0]


def as_model(params, data, settings, seed, statistics, series_of_books=None):
    """The ``Model`` of trained ``params`` (the graph's), as the product uses it: with
    ``fit_statistics``, and the series units if it has them."""
    visible_mean, mean_books = statistics
    units = series_units(params, series_of_books) or (None, None, None)
    return Model(
        *params[:3], data.book_ids, dict(settings, seed=seed, mean_books=mean_books), visible_mean=visible_mean,
        **dict(zip(("series", "series_weights", "series_bias"), units)),
    )


@dataclasses.dataclass
class BestSoFar:
    """Early stopping's memory: the best tuning NDCG yet, its weights and epoch, and how
    many evaluations have passed without beating it."""

    ndcg: float = -np.inf
    params: list = None
    epoch: int = None
    since: int = 0

    def record(self, ndcg, params, epoch):
        if ndcg > self.ndcg:
            # safe to keep without a copy: every epoch makes new arrays
            self.ndcg, self.params, self.epoch, self.since = ndcg, params, epoch, 0
        else:
            self.since += 1


def running_average(averaged, params, rate):
    """Polyak-style averaging across epochs: ``rate`` of the old average, the rest new."""
    if averaged is None:
        return params
    return [rate * old + (1 - rate) * new for old, new in zip(averaged, params)]


def _epoch_line(row):
    line = (
        f"epoch {row['epoch']:3d}  free energy train {row['train_free_energy']:9.3f} "
        f"valid {row['valid_free_energy']:9.3f}  error train {row['train_error']:.6f} "
        f"valid {row['valid_error']:.6f}"
    )
    if row["tuning_ndcg"] is not None:
        line += f"  tuning NDCG@10 {row['tuning_ndcg']:.4f}"
    return line


def train(data, seed=0, progress=True, log=print, max_batches=None, fit_rows=None, **overrides):
    """Fit an RBM to the fit users of ``data`` (the training split less the tuning users).

    overrides : any of ``settings.DEFAULTS``. With ``eval_every`` > 0, NDCG@10 of the tuning
        users is measured every that many epochs; with ``patience`` > 0 too, training stops
        after that many evaluations without a better NDCG, and the best weights are kept.
        With ``average`` > 0, the weights averaged across epochs are the ones measured and
        kept, while training goes on from its own.
    max_batches : stop each epoch after this many batches (for quick checks).
    fit_rows : train on only these of the fit users (``trainer_users``).
    """
    settings = {**DEFAULTS, **overrides}
    check_settings(settings)
    fit, valid, tuning_rows = trainer_users(data, settings["input"], fit_rows)
    if fit.shape[0] == 0:
        raise InputError("no training users in the processed data")
    tuning = evaluation.tuning_holdout(data, tuning_rows)

    if settings["step"] == "kernel":
        kernel.ops(log=log)  # built here if need be, so that its note goes to ``log``
        if not kernel.has_avx512():
            log("note: the kernel step is blocked for AVX-512, which this machine does not have: the same answers, but"
                " slower than --step graph")
    series_of_books = book_series(data, settings)
    net, rng = build_graph(fit, settings, seed, series_of_books)
    statistics = fit_statistics(fit)

    def snapshot(params):
        return as_model(params, data, settings, seed, statistics, series_of_books)

    history, best, averaged = [], BestSoFar(), None
    epochs = settings["epochs"]
    try:
        for epoch in range(1, epochs + 1):
            errors = run_epoch(net, fit, rng, settings["batch_size"], max_batches, progress, f"epoch {epoch}/{epochs}")
            params = net.params()
            if settings["average"]:
                averaged = running_average(averaged, params, settings["average"])
                net.set_params(*averaged)  # so that the valid error, too, is that of the averaged weights
                train_energy, valid_energy, valid_error = epoch_figures(
                    net, fit, valid, averaged, settings["batch_size"], series_of_books
                )
                net.set_params(*params)  # training goes on from its own weights
                params = averaged
            else:
                train_energy, valid_energy, valid_error = epoch_figures(
                    net, fit, valid, params, settings["batch_size"], series_of_books
                )
            row = {
                "epoch": epoch,
                "train_free_energy": train_energy,
                "valid_free_energy": valid_energy,
                "train_error": float(np.mean(errors)),
                "valid_error": valid_error,
                "tuning_ndcg": None,
            }
            if settings["eval_every"] and (epoch % settings["eval_every"] == 0 or epoch == epochs) and tuning.n_users:
                row["tuning_ndcg"] = evaluation.evaluate(snapshot(params), tuning)["ndcg"]
                best.record(row["tuning_ndcg"], params, epoch)
            history.append(row)
            log(_epoch_line(row))
            if settings["patience"] and best.since >= settings["patience"]:
                log(f"stopping: no better tuning NDCG@10 for {best.since} evaluations")
                break
    finally:
        net.close()
    kept, best_epoch = (best.params, best.epoch) if settings["patience"] and best.params else (params, epoch)
    model = snapshot(kept)
    model.settings.update(
        best_epoch=best_epoch,
        n_fit_users=int(fit.shape[0]),
        n_tuning_users=int(len(tuning_rows)),
        n_valid_users=int(valid.shape[0]),
    )
    model.history = history
    return model


def write_history(path, history):
    write_csv(path, history, HISTORY_COLUMNS)


def write_plots(history, plots_dir):
    """``free_energy.png``, ``error.png`` and, when NDCG was measured, ``learning_curve.png``."""
    free_energy = os.path.join(plots_dir, "free_energy.png")
    error = os.path.join(plots_dir, "error.png")
    plot_curves(
        history,
        [("train_free_energy", "train users"), ("valid_free_energy", "valid users")],
        "mean free energy",
        "Free energy by epoch (a growing gap between the lines means overfitting)",
        free_energy,
    )
    plot_curves(
        history,
        [("train_error", "train users (mean over the epoch's batches)"), ("valid_error", "valid users (after the epoch)")],
        "mean squared reconstruction error (log scale)",
        "Reconstruction error by epoch",
        error,
        log_scale=True,
    )
    written = [free_energy, error]
    if any(row["tuning_ndcg"] is not None for row in history):
        curve = os.path.join(plots_dir, "learning_curve.png")
        plot_learning_curve(history, curve)
        written.append(curve)
    return written

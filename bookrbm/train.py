"""Train the RBM by CD-1 on the training users, tracking free energy and reconstruction error."""
import csv
import os

import numpy as np
from tqdm import tqdm

from . import rbm
from .atomic import atomic_write
from .errors import InputError
from .graph import RBMGraph
from .model import Model
from .plots import plot_curves
from .settings import DEFAULTS

HISTORY_COLUMNS = ("epoch", "train_free_energy", "valid_free_energy", "train_error", "valid_error")


def initial_params(n_visible, n_hidden, rng):
    """Small random weights break the symmetry between hidden units; biases start at zero."""
    weights = rng.normal(0.0, 0.01, size=(n_visible, n_hidden)).astype(np.float32)
    return weights, np.zeros(n_visible, np.float32), np.zeros(n_hidden, np.float32)


def _batches(n_rows, batch_size):
    return [slice(start, start + batch_size) for start in range(0, n_rows, batch_size)]


def _check(hidden, epochs, batch_size, learning_rate):
    for name, value in (("--hidden", hidden), ("--epochs", epochs), ("--batch-size", batch_size)):
        if value < 1:
            raise InputError(f"{name} must be at least 1, not {value}")
    if not learning_rate > 0:
        raise InputError(f"--learning-rate must be above 0, not {learning_rate}")


def train(
    data,
    hidden=DEFAULTS["hidden"],
    epochs=DEFAULTS["epochs"],
    batch_size=DEFAULTS["batch_size"],
    learning_rate=DEFAULTS["learning_rate"],
    seed=0,
    progress=True,
    log=print,
    max_batches=None,
):
    """Fit an RBM to ``data.ratings`` of the training users; return a ``Model`` with its history.

    max_batches : stop each epoch after this many batches (for quick checks).
    """
    _check(hidden, epochs, batch_size, learning_rate)
    train_matrix = data.ratings[data.train_rows]
    valid_matrix = data.ratings[data.valid_rows]
    if train_matrix.shape[0] == 0:
        raise InputError("no training users in the processed data")
    rng = np.random.default_rng(seed)
    net = RBMGraph(*initial_params(data.n_books, hidden, rng), learning_rate=learning_rate, seed=seed)
    history = []
    try:
        for epoch in range(1, epochs + 1):
            order = rng.permutation(train_matrix.shape[0])
            batches = _batches(len(order), batch_size)[:max_batches]
            errors = []
            with tqdm(batches, desc=f"epoch {epoch}/{epochs}", leave=False, disable=None if progress else True) as bar:
                for batch in bar:
                    errors.append(net.train_batch(train_matrix[order[batch]].toarray()))
                    bar.set_postfix(error=f"{errors[-1]:.5f}")
            params = net.params()
            valid_errors = [
                net.batch_error(valid_matrix[batch].toarray())
                for batch in _batches(valid_matrix.shape[0], batch_size)
            ]
            row = {
                "epoch": epoch,
                "train_free_energy": float(rbm.mean_free_energy(train_matrix, *params)),
                "valid_free_energy": float(rbm.mean_free_energy(valid_matrix, *params)),
                "train_error": float(np.mean(errors)),
                "valid_error": float(np.mean(valid_errors)) if valid_errors else float("nan"),
            }
            history.append(row)
            log(
                f"epoch {epoch:3d}  free energy train {row['train_free_energy']:9.3f} "
                f"valid {row['valid_free_energy']:9.3f}  error train {row['train_error']:.6f} "
                f"valid {row['valid_error']:.6f}"
            )
        weights, visible_bias, hidden_bias = net.params()
    finally:
        net.close()
    settings = {
        "hidden": hidden,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "n_train_users": int(train_matrix.shape[0]),
        "n_valid_users": int(valid_matrix.shape[0]),
    }
    return Model(weights, visible_bias, hidden_bias, data.book_ids, settings, history)


def write_history(path, history):
    with atomic_write(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_COLUMNS)
        writer.writeheader()
        writer.writerows(history)


def write_plots(history, plots_dir):
    """``free_energy.png`` and ``error.png`` in ``plots_dir``; returns their paths."""
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
    return free_energy, error

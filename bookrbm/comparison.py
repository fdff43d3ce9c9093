"""Tune baselines on the tuning users, then score every model on the test users."""
import itertools

import numpy as np
from tqdm import tqdm

from . import baselines, evaluation
from .errors import InputError

# Each baseline's knobs, searched on the tuning users as the RBM's were.
GRIDS = {
    "popularity": (baselines.Popularity, {}),
    "item-knn": (baselines.ItemKNN, {"neighbours": [2, 3, 5, 10, 25, 50]}),
    "als": (baselines.ALS, {"factors": [512, 1024], "regularization": [1.0, 10.0, 30.0], "alpha": [1.0, 5.0, 10.0]}),
    "ease": (baselines.EASE, {"l2": [10.0, 25.0, 50.0, 100.0, 200.0]}),
}


def baseline_names(text):
    """The baselines named in ``text`` (comma-separated, or "none"); an unknown one is an error."""
    names = [] if text.strip() == "none" else [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in GRIDS]
    if unknown:
        raise InputError(f"unknown baseline {', '.join(unknown)} (choose from {', '.join(GRIDS)})")
    return names


def grid(knobs):
    names = list(knobs)
    return [dict(zip(names, values)) for values in itertools.product(*(knobs[n] for n in names))]


def tune(name, fit_matrix, tuning, k=10, grids=GRIDS, progress=True, log=print):
    """Fit every setting of baseline ``name``; return (best model, its settings, its tuning NDCG@k)."""
    make, knobs = grids[name]
    best = (None, None, -np.inf)
    for settings in tqdm(grid(knobs), desc=f"tuning {name}", leave=False, disable=None if progress else True):
        model = make(**settings).fit(fit_matrix)
        ndcg = evaluation.evaluate(model, tuning, k=k)["ndcg"]
        if ndcg > best[2]:
            best = (model, settings, ndcg)
    log(f"{name}: best {best[1]} with tuning NDCG@{k} {best[2]:.4f}")
    return best


def compare(data, rbm_models, k=10, seed=0, names=tuple(GRIDS), grids=GRIDS, progress=True, log=print, shown=None):
    """One row per model: its name, settings, tuning NDCG and test metrics at ``k``.

    rbm_models : {name: Model}, trained by train_rbm.py on the fit users.
    seed : which 20% of each test user's ratings is hidden.
    shown : show only this many of each test user's books and hide the rest, instead
        (the tuning users stay as they are: the models are the same ones).
    """
    fit_rows, tuning_rows, test_rows = evaluation.user_sets(data)
    fit_matrix = data.ratings[fit_rows]
    tuning = evaluation.tuning_holdout(data, tuning_rows)
    test = evaluation.hold_out(data.ratings[test_rows], seed=seed, shown=shown)
    rows = []
    for name in names:
        model, settings, tuned = tune(name, fit_matrix, tuning, k, grids, progress, log)
        tested = evaluation.evaluate(model, test, k, by_user=True)
        rows.append({"model": name, "settings": settings, "tuning_ndcg": tuned, **tested})
    for name, model in rbm_models.items():
        tuned = evaluation.evaluate(model, tuning, k)["ndcg"]
        described = {key: model.settings[key] for key in ("hidden", "input", "learning_rate", "best_epoch") if key in model.settings}
        tested = evaluation.evaluate(model, test, k, by_user=True)
        rows.append({"model": name, "settings": described, "tuning_ndcg": tuned, **tested})
    return rows


def gaps(rows, reference, seed=0):
    """How far ``reference`` is ahead of each other model of ``compare``'s rows in test NDCG:
    one dict per model with the mean difference (reference minus model) over the same test
    users and its 95% paired bootstrap interval (``evaluation.paired_gap``)."""
    ahead = next(row for row in rows if row["model"] == reference)
    out = []
    for row in rows:
        if row is ahead:
            continue
        difference, low, high = evaluation.paired_gap(ahead["ndcg_by_user"], row["ndcg_by_user"], seed=seed)
        out.append({"model": row["model"], "reference": reference, "difference": difference, "low": low, "high": high,
                    "readers": len(row["ndcg_by_user"])})
    return out

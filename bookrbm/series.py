"""Book series from goodbooks titles, for the RBM's series units.

goodbooks is full of series, and a reader of volume 1 has usually read volume 2: on the
tuning readers, 28% of the hidden books share a series with a book the reader showed.
Item-kNN finds those companions through its few nearest neighbours; the RBM's 1,024
hidden units, each shared by thousands of books, found a third fewer of them. So the RBM
also has one binary hidden unit per series, connected only to that series' books (a
mask on the weights: still a bipartite RBM, trained by the same CD step). Reading some
volumes switches the unit on, and the unit pushes up the others.

Shapes: ``series`` (n_books,) int, each book's series 0..n_series-1 or -1 for none;
series weights (n_books,), 0 for a book in no series; series biases (n_series,).
"""
import re

import numpy as np
import pandas as pd

# books.csv's ``title`` ends in "(Series Name, #2)", "(Series #1-3)" or "(Series, #0.5)"
PATTERN = re.compile(r"\(([^()#]+?),?\s*#\s*[\d.\-]+[^()]*\)\s*$")
# Chosen on the tuning readers (README, "Series units"): a new unit starts off until two
# volumes of its series are read (bias -6, each volume +4), and these few weights (one per
# book) learn ten times faster than the shared ones and without weight decay, so they are
# not left at a fraction of their use after the 15-30 epochs that early stopping allows.
INITIAL_WEIGHT = 4.0
INITIAL_BIAS = -6.0
STEP_FACTOR = 10.0


def series_of(titles):
    """Each title's series, numbered from 0 in order of first appearance, or -1 for a book
    in no series or alone in its series (a series unit needs two books to link)."""
    names = pd.Series([PATTERN.search(str(title)) for title in titles], dtype=object)
    names = names.map(lambda found: found.group(1).strip().casefold() if found else None)
    codes, _ = pd.factorize(names)  # None is -1
    sizes = np.bincount(codes[codes >= 0], minlength=1)
    linked = (codes >= 0) & (sizes[np.maximum(codes, 0)] >= 2)
    series = np.full(len(codes), -1, np.int64)
    series[linked] = np.unique(codes[linked], return_inverse=True)[1]
    return series


def count(series):
    return int(series.max()) + 1 if len(series) and series.max() >= 0 else 0


def initial_params(series):
    """(series weights, series biases) to start training from."""
    weights = np.where(series >= 0, INITIAL_WEIGHT, 0.0).astype(np.float32)
    return weights, np.full(count(series), INITIAL_BIAS, np.float32)

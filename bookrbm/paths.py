"""Default locations, relative to the project folder so the scripts work from any directory."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_DATA = os.path.join(ROOT, "data")
FULL_DATA = os.path.join(ROOT, "data", "full")
PROCESSED = os.path.join(ROOT, "data", "processed", "goodbooks.npz")
MODEL = os.path.join(ROOT, "models", "rbm.npz")
PLOTS = os.path.join(ROOT, "plots")
RESULTS = os.path.join(ROOT, "results")


def shown(path):
    """``path`` relative to the working directory when that is shorter, for messages."""
    relative = os.path.relpath(path)
    return relative if len(relative) < len(path) else path

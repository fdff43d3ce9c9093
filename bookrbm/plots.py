"""Learning curves as PNG files, written atomically."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .atomic import atomic_write  # noqa: E402


def plot_curves(history, series, ylabel, title, path, log_scale=False):
    """One line per ``(history key, label)`` in ``series``, against the epoch."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    epochs = [row["epoch"] for row in history]
    for key, label in series:
        axes.plot(epochs, [row[key] for row in history], marker="o", markersize=3, label=label)
    if log_scale:
        axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)

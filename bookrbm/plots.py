"""The plots as PNG files, written atomically: learning curves, comparisons, latency by load."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .atomic import atomic_write  # noqa: E402


def _save(figure, path):
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)


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
    _save(figure, path)


def plot_learning_curve(history, path):
    """Free energy (train, valid) above tuning NDCG@10, on one epoch axis."""
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    epochs = [row["epoch"] for row in history]
    top.plot(epochs, [row["train_free_energy"] for row in history], label="train users")
    top.plot(epochs, [row["valid_free_energy"] for row in history], label="valid users")
    top.set_ylabel("mean free energy")
    top.legend()
    top.grid(alpha=0.3)
    measured = [row for row in history if row["tuning_ndcg"] is not None]
    bottom.plot([row["epoch"] for row in measured], [row["tuning_ndcg"] for row in measured], marker="o", color="C2")
    best = max(measured, key=lambda row: row["tuning_ndcg"])
    bottom.axvline(best["epoch"], color="grey", linestyle="--", label=f"best: epoch {best['epoch']}, {best['tuning_ndcg']:.4f}")
    bottom.set_ylabel("NDCG@10 of tuning users")
    bottom.set_xlabel("epoch")
    bottom.legend()
    bottom.grid(alpha=0.3)
    figure.suptitle("Learning curve: free energy and the metric that matters")
    figure.tight_layout()
    _save(figure, path)


def plot_comparison(rows, metrics, path, title):
    """Bars side by side: one group per metric, one bar per model."""
    figure, axes = plt.subplots(figsize=(max(8, 1.6 * len(metrics)), 4.8))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        positions = [m + (i - (len(rows) - 1) / 2) * width for m in range(len(metrics))]
        axes.bar(positions, [row[name] for name in metrics], width, label=row["model"])
    axes.set_xticks(range(len(metrics)))
    axes.set_xticklabels(metrics)
    axes.set_ylabel("score (higher is better)")
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize="small", ncol=min(len(rows), 3))
    figure.tight_layout()
    _save(figure, path)


def plot_latency_by_load(rows, target, path):
    """p50 and p99 against the number of concurrent clients, one colour per app (rows of
    app, clients, p50_ms, p99_ms), with the ``target`` p99 as a line."""
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for i, app in enumerate(dict.fromkeys(row["app"] for row in rows)):
        mine = [row for row in rows if row["app"] == app]
        clients = [row["clients"] for row in mine]
        axes.plot(clients, [row["p99_ms"] for row in mine], marker="o", color=f"C{i}", label=f"{app}: p99")
        axes.plot(clients, [row["p50_ms"] for row in mine], marker="o", linestyle="--", color=f"C{i}", label=f"{app}: p50")
    axes.axhline(target, color="grey", linestyle=":", label=f"target p99 ≤ {target} ms")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log")  # from about a millisecond to hundreds
    counts = sorted({row["clients"] for row in rows})
    axes.set_xticks(counts)
    axes.set_xticklabels([str(c) for c in counts])
    axes.set_xlabel("concurrent clients, each sending its next request as soon as it has an answer")
    axes.set_ylabel("latency (ms)")
    axes.set_title("POST /api/recommendations: latency under load")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    _save(figure, path)

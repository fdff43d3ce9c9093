"""The CD-1 step as one kernel of our own (bench/fused_step.cc, a prototype the trainer does
not use): the bare step and our trainer's whole step (with the defaults and at the
write-up's settings) do the maths of their references, refuse what they cannot take, and
the bench runs."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bookrbm import paths

sys.path.insert(0, os.path.join(paths.ROOT, "bench"))
import fused_step  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None, reason="no C++ compiler")


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    return fused_step.build(str(tmp_path_factory.mktemp("fused")))


@pytest.mark.parametrize("books, hidden, batch_size", [
    (1003, 64, 100),  # the trainer's batch and hidden units; a last block of 3 books in each half
    (37, 128, 17),  # two blocks of 64 hidden units; a batch of one vector and a bit
    (501, 64, 112),  # the largest batch: seven whole vectors
    (9, 64, 1),  # one reader; fewer books than a block
])
def test_the_kernel_does_the_bare_step(kernels, books, hidden, batch_size):
    assert fused_step.largest_difference(kernels, books, hidden, batch_size, seed=4) < 1e-6


def test_the_check_can_fail(kernels, monkeypatch):
    """Against a reference one step of which differs a little (the hidden biases left as they
    were), the same kernel is found far off."""
    right = fused_step.reference_step

    def hidden_biases_kept(weights, visible_bias, hidden_bias, samples, rate):
        stepped = right(weights, visible_bias, hidden_bias, samples, rate)
        return stepped[0], stepped[1], hidden_bias

    monkeypatch.setattr(fused_step, "reference_step", hidden_biases_kept)
    assert fused_step.largest_difference(kernels, 200, 64, 100, seed=4) > 1e-3


@pytest.mark.parametrize("hidden, batch_size", [(48, 10), (64, 113)])
def test_the_kernel_refuses_shapes_it_cannot_take(kernels, hidden, batch_size):
    from bookrbm.graph import tf

    with pytest.raises(tf.errors.InvalidArgumentError, match="multiple of 64 and a batch of 1 to 112"):
        fused = fused_step.FusedBareStep(kernels, 20, hidden, batch_size)
        try:
            fused.step()
        finally:
            fused.close()


@pytest.mark.parametrize("preset", ["writeup", "default"])
def test_the_whole_step_is_our_graphs(kernels, sample, preset):
    """Three batches of real readers, the same start and draws: the parameters and each
    batch's error as our trainer's graph makes them, to float32's rounding. With the
    defaults that takes the read/unread input, momentum, weight decay, both dropouts (the
    hidden units' drawn by the same seeded op as the graph's) and the series units."""
    from bookrbm.settings import PRESETS

    parameters, errors = fused_step.graph_difference(kernels, sample, PRESETS[preset], 64, 100, seed=2)
    assert parameters < 2e-5 and errors < 2e-5


def test_the_check_of_the_whole_step_can_fail(kernels, sample, monkeypatch):
    """Drawn with another seed, the hidden units' dropout is another, and the check sees it."""
    from bookrbm.settings import DEFAULTS

    like = fused_step.FusedStep.like
    monkeypatch.setattr(fused_step.FusedStep, "like", staticmethod(lambda k, trained, seed: like(k, trained, seed + 1)))
    parameters, _ = fused_step.graph_difference(kernels, sample, DEFAULTS, 64, 100, seed=2)
    assert parameters > 1e-3


def test_the_whole_step_takes_the_last_short_batch_and_a_reader_with_no_books(kernels, sample):
    from bookrbm import train
    from bookrbm.graph import RBMGraph

    fit, _, _ = train.trainer_users(sample, "rating")
    batch = fit[:37].tolil()
    batch[5] = 0  # a reader who listed nothing: no entries in the batch's row
    batch = batch.tocsr()
    batch.eliminate_zeros()
    rng = np.random.default_rng(0)
    start = (rng.normal(0, 0.1, (fit.shape[1], 64)).astype(np.float32), rng.normal(0, 1, fit.shape[1]).astype(np.float32),
             np.zeros(64, np.float32))
    noise = rng.random((37, 64), dtype=np.float32)
    ours, fused = RBMGraph(*start, 0.6), fused_step.FusedStep(kernels, start, 0.6)
    try:
        assert fused.train_batch(batch, noise) == pytest.approx(ours.train_batch(batch, hidden_noise=noise), rel=1e-5)
        for got, expected in zip(fused.params(), ours.params()):
            assert np.allclose(got, expected, rtol=0, atol=1e-6)
    finally:
        ours.close()
        fused.close()


def _series_steps(kernels, sample, seed, series_keep, batches=2):
    """The parameters after ``batches`` steps of the kernel's whole step with the defaults,
    its series units' draws and dropout its own, and the start."""
    from bookrbm import series, train
    from bookrbm.settings import DEFAULTS

    fit, _, _ = train.trainer_users(sample, "binary")
    of_books = train.book_series(sample, DEFAULTS)
    rng = np.random.default_rng(0)
    start = [rng.normal(0, 0.1, (fit.shape[1], 64)).astype(np.float32), np.zeros(fit.shape[1], np.float32),
             np.zeros(64, np.float32), *series.initial_params(of_books)]
    fused = fused_step.FusedStep(kernels, start, 0.1, seed=seed, momentum=0.9, weight_decay=0.0003, hidden_keep=0.5,
                                 series=of_books, series_step=series.STEP_FACTOR, series_keep=series_keep)
    try:
        for first in range(0, 100 * batches, 100):
            fused.train_batch(fit[first : first + 100])
        return fused.params(), start
    finally:
        fused.close()


def test_the_kernels_own_series_draws_follow_its_seed(kernels, sample):
    once, _ = _series_steps(kernels, sample, seed=5, series_keep=0.5)
    again, _ = _series_steps(kernels, sample, seed=5, series_keep=0.5)
    other, _ = _series_steps(kernels, sample, seed=6, series_keep=0.5)
    assert all(np.array_equal(a, b) for a, b in zip(once, again))
    assert not np.array_equal(once[3], other[3]) and not np.array_equal(once[4], other[4])


def test_the_kernels_own_series_dropout_keeps_what_series_keep_says(kernels, sample):
    """Kept at a chance of 0, no series unit is ever on, so the series weights and biases
    keep their start (no data, no model statistics); kept always, they move."""
    dropped, start = _series_steps(kernels, sample, seed=5, series_keep=0.0)
    kept, _ = _series_steps(kernels, sample, seed=5, series_keep=1.0)
    assert np.array_equal(dropped[3], start[3]) and np.array_equal(dropped[4], start[4])
    assert not np.array_equal(kept[3], start[3]) and not np.array_equal(kept[4], start[4])


@pytest.mark.parametrize("change, message", [
    (lambda feed, f: feed.update({f.placeholders["books"]: feed[f.placeholders["books"]][::-1].copy()}),
     "not in book order"),
    (lambda feed, f: feed.update({f.placeholders["columns"]: feed[f.placeholders["columns"]] + 10**6}),
     "outside the batch or the books"),
    (lambda feed, f: feed.update({f.batch_size: 113}), "a batch of 1 to 112 readers"),
])
def test_the_whole_step_refuses_entries_it_cannot_take(kernels, change, message):
    from bookrbm.graph import tf

    rng = np.random.default_rng(0)
    fused = fused_step.FusedStep(kernels, [rng.normal(0, 0.1, (30, 64)).astype(np.float32), np.zeros(30, np.float32),
                                           np.zeros(64, np.float32)], 0.6)
    try:
        feed = fused.feed((rng.random((4, 30)) < 0.3).astype(np.float32))
        change(feed, fused)
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            fused.train_feed(feed)
    finally:
        fused.close()


@pytest.mark.parametrize("options, message", [
    (["--hidden", "48"], "error: --hidden must be a multiple of 64, not 48"),
    (["--batch-size", "113"], "error: --batch-size must be at most 112, not 113"),
    (["--rounds", "0"], "error: --rounds must be at least 1, not 0"),
])
def test_bad_options_are_one_line(options, message, tmp_path):
    done = subprocess.run([sys.executable, "bench/fused_step.py", *options, "--out", str(tmp_path / "f.csv")],
                          cwd=paths.ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == message
    assert not (tmp_path / "f.csv").exists()


def test_smoke_run_prints_and_writes_its_table(kernels, tmp_path):
    lines = []
    out = tmp_path / "fused_step.csv"
    args = fused_step.parse_args(["--users", "300", "--rounds", "2", "--gemm", "128", "--cache", str(tmp_path / "cache"),
                                  "--out", str(out)])
    rows = fused_step.run(args, log=lines.append, kernels=kernels)
    table = pd.read_csv(out)
    assert list(table.name) == [row["name"] for row in rows]
    by_name = table.set_index("name")
    assert list(by_name.index[:6]) == ["gemm_peak", *fused_step.DIFFERENCES]
    assert by_name.value.iloc[1:6].max() < 2e-5
    readers = int(lines[-len(rows) - 3].split()[0])  # "216 readers × 10000 books, ..."
    for step in fused_step.STEPS:
        epoch = by_name.loc[f"{step}_epoch"]
        assert 0 < epoch.low <= epoch.value <= epoch.high
        # the bare steps' readers: their batches, each a full one
        counted = -(-readers // 100) * 100 if step.endswith("bare_cd1") else readers
        share = 100 * 6 * counted * 10000 * 64 / epoch.value / 1e9 / by_name.value.gemm_peak
        assert by_name.value[f"{step}_share_of_peak"] == pytest.approx(share, rel=1e-4)
        if step != "writeup":
            assert by_name.value[f"{step}_speedup_vs_writeup"] == pytest.approx(
                by_name.value.writeup_epoch / epoch.value, rel=1e-4)
    assert lines[-1].startswith("wrote ")

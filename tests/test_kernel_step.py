"""The trainer's CD-1 step as one kernel of our own (`train_rbm.py --step kernel`,
bookrbm/kernel.py): it does the maths of the graph's ops on the same variables, with the
defaults and at the write-up's settings, trains a model through the trainer, leaves fetched
parameters alone, and refuses what it cannot take in one line."""
import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from bookrbm import kernel, paths

sys.path.insert(0, os.path.join(paths.ROOT, "bench"))
import fused_step  # noqa: E402

needs_compiler = pytest.mark.skipif(not kernel.has_compiler(), reason="no C++ compiler")


def _assert_the_same_step(error_by_kernel, error_by_graph, by_kernel, ours):
    """The kernel's step and the graph's gave the same error and moved the parameters alike."""
    assert error_by_kernel == pytest.approx(error_by_graph, rel=1e-5)
    for got, expected in zip(by_kernel.params(), ours.params()):
        assert np.allclose(got, expected, rtol=0, atol=1e-6)


def _start(n_books, hidden, rng):
    return [rng.normal(0, 0.1, (n_books, hidden)).astype(np.float32), rng.normal(0, 1, n_books).astype(np.float32),
            np.zeros(hidden, np.float32)]


@needs_compiler
@pytest.mark.parametrize("preset", ["writeup", "default"])
def test_the_kernel_step_is_the_graphs(sample, preset):
    """Three batches of real readers, the same start and draws: the parameters and each
    batch's error as the graph's ops make them, to float32's rounding. With the defaults
    that takes the read/unread input, momentum, weight decay, both dropouts (the hidden
    units' drawn by the same seeded op) and the series units."""
    from bookrbm.settings import PRESETS

    parameters, errors = fused_step.graph_difference(sample, PRESETS[preset], 64, 100, seed=2)
    assert parameters < 2e-5 and errors < 2e-5


@needs_compiler
def test_the_check_of_the_kernel_step_can_fail(sample):
    """From the same start, with the hidden units' dropout drawn from another seed, the check
    sees it (at the write-up's settings, with no dropout, the seed changes nothing fed)."""
    from bookrbm.settings import DEFAULTS, WRITEUP

    parameters, _ = fused_step.graph_difference(sample, DEFAULTS, 64, 100, seed=2, kernel_seed=3)
    assert parameters > 1e-3
    parameters, _ = fused_step.graph_difference(sample, WRITEUP, 64, 100, seed=2, kernel_seed=3)
    assert parameters < 2e-5


@needs_compiler
def test_the_kernel_step_takes_the_last_short_batch_and_a_reader_with_no_books(sample):
    from bookrbm import train
    from bookrbm.graph import RBMGraph

    fit, _, _ = train.trainer_users(sample, "rating")
    batch = fit[:37].tolil()
    batch[5] = 0  # a reader who listed nothing: no entries in the batch's row
    batch = batch.tocsr()
    batch.eliminate_zeros()
    rng = np.random.default_rng(0)
    start = _start(fit.shape[1], 64, rng)
    noise = rng.random((37, 64), dtype=np.float32)
    ours, by_kernel = RBMGraph(*start, 0.6), RBMGraph(*start, 0.6, step="kernel")
    try:
        _assert_the_same_step(by_kernel.train_batch(batch, noise), ours.train_batch(batch, hidden_noise=noise), by_kernel, ours)
    finally:
        ours.close()
        by_kernel.close()


@needs_compiler
def test_the_kernels_draws_are_tensorflows_seeded_ops_draws():
    """RbmUniform, call after call, of several sizes (a last sample used in part among
    them), draws what TensorFlow's RandomUniform op of the same seeds draws; two streams in
    one graph keep their places apart (their variables start from one constant's buffer)."""
    from bookrbm.graph import tf, tf1

    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(5)
        rows = tf1.placeholder(tf.int32, [])
        pairs = []
        for op_seed, columns in ((12, 64), (13, 3)):
            place = tf1.Variable(tf.zeros([], tf.int64))
            pairs.append((tf.random.uniform([rows, columns], seed=op_seed),
                          kernel.ops().rbm_uniform(place.handle, rows, seeds=list(tf1.get_seed(op_seed)), columns=columns)))
        with tf1.Session(graph=graph) as session:
            session.run(tf1.global_variables_initializer())
            for count in (100, 37, 1, 0, 112, 5):
                for theirs, ours in pairs:
                    expected, got = session.run([theirs, ours], {rows: count})
                    assert got.shape == expected.shape and np.array_equal(got, expected)


@needs_compiler
def test_the_kernels_own_hidden_draws_are_the_graphs_between_its_errors_too(sample):
    """Nothing fed: the kernel step samples its hidden units and drops them out with the
    draws the graph's seeded ops make, step after step, and a batch's error between steps
    (which draws from the same streams) leaves them in step."""
    from bookrbm import train
    from bookrbm.graph import RBMGraph

    fit, _, _ = train.trainer_users(sample, "binary")
    start = _start(fit.shape[1], 64, np.random.default_rng(4))
    options = dict(seed=9, momentum=0.9, weight_decay=0.0003, hidden_keep=0.5, binary_input=True)
    ours, by_kernel = RBMGraph(*start, 0.1, **options), RBMGraph(*start, 0.1, step="kernel", **options)
    try:
        for first, between in ((0, False), (100, True), (200, False)):
            batch = fit[first : first + 100]
            if between:
                assert by_kernel.batch_error(fit[-60:]) == pytest.approx(ours.batch_error(fit[-60:]), rel=1e-5)
            _assert_the_same_step(by_kernel.train_batch(batch), ours.train_batch(batch), by_kernel, ours)
    finally:
        ours.close()
        by_kernel.close()


@needs_compiler
def test_several_batches_in_one_run_are_the_same_steps_as_one_a_run(sample):
    """With the defaults (every draw the kernel's or its streams', dropout, series units and
    the cut of short lists): three batches fed at once, the last one short, make the same
    parameters to the bit, the same errors and the same cut as the three fed one by one."""
    from bookrbm import train
    from bookrbm.settings import DEFAULTS

    settings = {**DEFAULTS, "step": "kernel", "hidden": 64}
    fit, _, _ = train.trainer_users(sample, settings["input"])
    rows = fit[:237]
    nets = [train.build_graph(fit, settings, seed=2)[0] for _ in range(2)]
    try:
        at_once = nets[0].session.run([nets[0].train_error, nets[0].kept_entries], nets[0].feed_batches(rows, 100))
        one_by_one = [nets[1].session.run([nets[1].train_error, nets[1].kept_entries], nets[1].feed(rows[first : first + 100]))
                      for first in (0, 100, 200)]
        assert len(at_once[0]) == 3 and list(at_once[0]) == [errors[0] for errors, _ in one_by_one]
        assert np.array_equal(at_once[1], np.concatenate([kept for _, kept in one_by_one])) and not at_once[1].all()
        assert all(np.array_equal(a, b) for a, b in zip(nets[0].params(), nets[1].params()))
    finally:
        for net in nets:
            net.close()


def test_only_the_kernel_step_takes_several_batches_a_run():
    from bookrbm.graph import RBMGraph

    net = RBMGraph(*_start(30, 64, np.random.default_rng(0)), 0.1)
    try:
        assert net.batches_per_run == 1
        with pytest.raises(ValueError, match="only the kernel's step takes several batches a run"):
            net.feed_batches(np.ones((4, 30), np.float32), 2)
    finally:
        net.close()


@needs_compiler
def test_parameters_fetched_before_a_step_stay_as_they_were(sample):
    """The kernel updates the variables in place; a value fetched before (the trainer keeps
    the best epoch's without a copy) must not change under it, and ``set_params`` loads."""
    from bookrbm import train
    from bookrbm.graph import RBMGraph

    fit, _, _ = train.trainer_users(sample, "binary")
    net = RBMGraph(*_start(fit.shape[1], 64, np.random.default_rng(1)), 0.1, momentum=0.9, step="kernel")
    try:
        before = net.params()
        kept = [param.copy() for param in before]
        net.train_batch(fit[:100])
        after = net.params()
        assert all(np.array_equal(a, b) for a, b in zip(before, kept))
        assert not np.array_equal(after[0], kept[0])
        net.set_params(*kept)
        assert all(np.array_equal(a, b) for a, b in zip(net.params(), kept))
    finally:
        net.close()


def _series_steps(sample, seed, series_keep, batches=2):
    """The parameters after ``batches`` kernel steps with the defaults, its series units'
    draws and dropout its own, and the start."""
    from bookrbm import series, train
    from bookrbm.graph import RBMGraph
    from bookrbm.settings import DEFAULTS

    fit, _, _ = train.trainer_users(sample, "binary")
    of_books = train.book_series(sample, DEFAULTS)
    start = [*_start(fit.shape[1], 64, np.random.default_rng(0)), *series.initial_params(of_books)]
    net = RBMGraph(*start[:3], 0.1, seed=seed, momentum=0.9, weight_decay=0.0003, hidden_keep=0.5, binary_input=True,
                   series=of_books, series_weights=start[3], series_bias=start[4], series_step=series.STEP_FACTOR,
                   series_keep=series_keep, step="kernel")
    try:
        for first in range(0, 100 * batches, 100):
            net.train_batch(fit[first : first + 100])
        return net.params(), start
    finally:
        net.close()


@needs_compiler
def test_the_kernels_own_series_draws_follow_its_seed(sample):
    once, _ = _series_steps(sample, seed=5, series_keep=0.5)
    again, _ = _series_steps(sample, seed=5, series_keep=0.5)
    other, _ = _series_steps(sample, seed=6, series_keep=0.5)
    assert all(np.array_equal(a, b) for a, b in zip(once, again))
    assert not np.array_equal(once[3], other[3]) and not np.array_equal(once[4], other[4])


@needs_compiler
def test_the_kernels_own_series_dropout_keeps_what_series_keep_says(sample):
    """Kept at a chance of 0, no series unit is ever on, so the series weights and biases
    keep their start (no data, no model statistics); kept always, they move."""
    dropped, start = _series_steps(sample, seed=5, series_keep=0.0)
    kept, _ = _series_steps(sample, seed=5, series_keep=1.0)
    assert np.array_equal(dropped[3], start[3]) and np.array_equal(dropped[4], start[4])
    assert not np.array_equal(kept[3], start[3]) and not np.array_equal(kept[4], start[4])


@needs_compiler
def test_the_kernel_step_is_the_same_run_by_tensorflows_own_threads(sample):
    """The trainer's session runs the op in the caller's thread; a session with TensorFlow's
    default threads runs it in one of its own, from which its second thread is asked for the
    same way: the same step to the bit, with the defaults' momentum, decay and series units."""
    from bookrbm import series, train
    from bookrbm.graph import RBMGraph, tf1
    from bookrbm.settings import DEFAULTS

    fit, _, _ = train.trainer_users(sample, "binary")
    of_books = train.book_series(sample, DEFAULTS)
    rng = np.random.default_rng(3)
    start = [*_start(fit.shape[1], 64, rng), *series.initial_params(of_books)]
    net = RBMGraph(*start[:3], 0.1, seed=1, momentum=0.9, weight_decay=0.0003, binary_input=True, series=of_books,
                   series_weights=start[3], series_bias=start[4], series_step=series.STEP_FACTOR, series_keep=0.5,
                   step="kernel")
    pooled = tf1.Session(graph=net.graph)
    try:
        pooled.run(net.init)
        pooled.run(net.load, dict(zip(net.loaded, start)))
        for first in (0, 100):
            feed = {**net.feed(fit[first : first + 100]), net.hidden_noise: rng.random((100, 64), dtype=np.float32)}
            assert np.array_equal(pooled.run(net.train_error, feed), net.session.run(net.train_error, feed))
        assert all(np.array_equal(a, b) for a, b in zip(pooled.run(net._params), net.params()))
    finally:
        pooled.close()
        net.close()


def _cut_steps(fit, seed, share, most, batches):
    """The kernel's cut of the first ``batches`` batches of 100 readers of ``fit``: for each,
    the batch and which of its entries the kernel kept, with ``short_lists`` ``share``."""
    from bookrbm.graph import RBMGraph

    net = RBMGraph(*_start(fit.shape[1], 64, np.random.default_rng(0)), 0.1, seed=seed, step="kernel", short_lists=share,
                   short_list_books=most)
    try:
        cuts = []
        for first in range(0, 100 * batches, 100):
            batch = fit[first : first + 100]
            _, kept = net.session.run([net.train_error, net.kept_entries], net.feed(batch))
            cuts.append((batch, kept))
        return cuts
    finally:
        net.close()


@needs_compiler
def test_the_kernel_cuts_short_lists_as_the_settings_say(sample):
    """Every list cut (share 1): each reader keeps 1..5 of their books, each count about as
    often as the others, and which books at random (their mean place in the list about the
    middle); a list of no more books than its count stays whole. At a share of 0.3, about 3
    lists in 10 longer than 5 books are cut."""
    from bookrbm import train

    fit, _, _ = train.trainer_users(sample, "rating")
    counts, places = [], []
    for batch, kept in _cut_steps(fit, seed=1, share=1.0, most=5, batches=12):
        for first, last in zip(batch.indptr[:-1], batch.indptr[1:]):
            length, row = last - first, kept[first:last]
            if row.all():  # whole: only a list no longer than its count
                assert length <= 5
                continue
            assert 1 <= row.sum() <= 5 and row.sum() < length
            counts.append(row.sum())
            places.extend(np.flatnonzero(row) / (length - 1))
    assert len(counts) > 1000
    assert np.allclose(np.bincount(counts, minlength=6)[1:] / len(counts), 0.2, atol=0.04)
    assert abs(np.mean(places) - 0.5) < 0.03
    cut = [not kept[first:last].all()
           for batch, kept in _cut_steps(fit, seed=1, share=0.3, most=5, batches=12)
           for first, last in zip(batch.indptr[:-1], batch.indptr[1:]) if last - first > 5]
    assert abs(np.mean(cut) - 0.3) < 0.05


@needs_compiler
def test_the_kernels_cut_follows_its_seed(sample):
    from bookrbm import train

    fit, _, _ = train.trainer_users(sample, "rating")
    once, again, other = (_cut_steps(fit, seed=seed, share=0.5, most=5, batches=2) for seed in (3, 3, 4))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(once, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(once, other))


@needs_compiler
def test_the_kernel_step_on_lists_it_cut_is_the_graphs_on_them_cut(sample):
    """From the same start, with the same hidden draws: the kernel's step with its own cut,
    and the graph's step given the batch with only the entries the kernel kept, move the
    parameters alike and give the same error (of the lists as cut)."""
    from bookrbm import train
    from bookrbm.graph import RBMGraph

    fit, _, _ = train.trainer_users(sample, "rating")
    rng = np.random.default_rng(2)
    start = _start(fit.shape[1], 64, rng)
    ours, by_kernel = RBMGraph(*start, 0.5), RBMGraph(*start, 0.5, step="kernel", short_lists=0.6, short_list_books=4)
    try:
        batch = fit[:100]
        noise = rng.random((100, 64), dtype=np.float32)
        feed = {**by_kernel.feed(batch), by_kernel.hidden_noise: noise}
        (error,), kept = by_kernel.session.run([by_kernel.train_error, by_kernel.kept_entries], feed)
        assert 0 < kept.sum() < len(kept)
        rows = np.repeat(np.arange(100), np.diff(batch.indptr))
        cut = sp.csr_matrix((batch.data[kept], (rows[kept], batch.indices[kept])), shape=batch.shape)
        _assert_the_same_step(error, ours.train_batch(cut, hidden_noise=noise), by_kernel, ours)
    finally:
        ours.close()
        by_kernel.close()


@needs_compiler
def test_the_trainers_feeds_leave_the_kernel_whole_lists_to_cut(sample):
    from bookrbm import train
    from bookrbm.settings import DEFAULTS

    settings = {**DEFAULTS, "step": "kernel"}
    fit, _, _ = train.trainer_users(sample, settings["input"])
    net, rng = train.build_graph(fit, settings, seed=0)
    try:
        assert net.cuts_lists and settings["short_lists"] > 0 and net.batches_per_run >= 3
        shuffled = fit[copy.deepcopy(rng).permutation(fit.shape[0])]  # the epoch's order, drawn as it will be
        count, feeds = train.epoch_feeds(net, fit, rng, 100, max_batches=3)
        (feed,) = feeds  # the three batches in one run
        assert count == 3 and list(feed[net.batch_sizes]) == [100, 100, 100]
        assert np.array_equal(feed[net.columns], shuffled[:300].indices)
    finally:
        net.close()


def test_the_graphs_step_takes_its_short_lists_cut_by_the_trainers_feeds(sample):
    """The graph's own ops do not cut lists: given short lists, the graph says so, and the
    trainer's feeds cut them (every list, at a share of 1, to at most its 3 books)."""
    from bookrbm import train
    from bookrbm.graph import RBMGraph

    fit, _, _ = train.trainer_users(sample, "rating")
    net = RBMGraph(*_start(fit.shape[1], 64, np.random.default_rng(0)), 0.1, short_lists=1.0, short_list_books=3)
    try:
        assert not net.cuts_lists and net.batches_per_run == 1
        count, feeds = train.epoch_feeds(net, fit, np.random.default_rng(1), 100, max_batches=2)
        for feed in feeds:
            assert np.bincount(feed[net.rows]).max() <= 3
        assert count == 2 and np.diff(fit.indptr).max() > 3
    finally:
        net.close()


@needs_compiler
@pytest.mark.parametrize("change, message", [
    (lambda feed, net: feed.update({net.indptr: feed[net.indptr][::-1].copy()}), "a CSR batch: indptr from 0, never falling"),
    (lambda feed, net: feed.update({net.columns: feed[net.columns] + 10**6}), "an entry outside the books"),
    (lambda feed, net: feed.update({net.batch_sizes: [113]}), "batches of 1 to 112 readers, as many as indptr has"),
    (lambda feed, net: feed.update({net.batch_sizes: [2, 1]}), "batches of 1 to 112 readers, as many as indptr has"),
    (lambda feed, net: feed.update({net.batch_sizes: [2, 0, 2]}), "batches of 1 to 112 readers, as many as indptr has"),
])
def test_the_kernel_step_refuses_entries_it_cannot_take(change, message):
    from bookrbm.graph import RBMGraph, tf

    rng = np.random.default_rng(0)
    net = RBMGraph(*_start(30, 64, rng), 0.6, step="kernel")
    try:
        feed = net.feed((rng.random((4, 30)) < 0.3).astype(np.float32))
        change(feed, net)
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            net.train_feed(feed)
    finally:
        net.close()


@needs_compiler
def test_the_kernel_step_refuses_a_book_of_a_series_it_has_no_unit_for():
    from bookrbm.graph import RBMGraph, tf

    rng = np.random.default_rng(0)
    series = np.array([0, 0, 1, 1, 3] + [-1] * 25)  # 3 series units: 0, 1 and 2
    net = RBMGraph(*_start(30, 64, rng), 0.6, series=series, series_weights=np.zeros(30, np.float32),
                   series_bias=np.zeros(3, np.float32), step="kernel")
    try:
        with pytest.raises(tf.errors.InvalidArgumentError, match="a book's series outside the series units"):
            net.train_batch((rng.random((4, 30)) < 0.3).astype(np.float32))
    finally:
        net.close()


@needs_compiler
def test_the_trainer_with_the_kernel_step_trains_as_with_the_graphs(sample):
    """Through ``train.train`` at the write-up's settings (no series units, so every draw is
    the same seeded op's): the same history, to float32's rounding, and the model says which
    step made it."""
    from bookrbm import train
    from bookrbm.settings import WRITEUP

    models = {
        step: train.train(sample, seed=4, progress=False, log=lambda m: None, max_batches=4,
                          **{**WRITEUP, "epochs": 2, "step": step})
        for step in ("graph", "kernel")
    }
    for ours, by_kernel in zip(models["graph"].history, models["kernel"].history):
        for name in ("train_error", "valid_error", "train_free_energy", "valid_free_energy"):
            assert by_kernel[name] == pytest.approx(ours[name], rel=1e-4)
    assert models["kernel"].history[1]["valid_error"] < models["kernel"].history[0]["valid_error"]
    assert models["kernel"].settings["step"] == "kernel" and models["graph"].settings["step"] == "graph"
    assert np.allclose(models["kernel"].weights, models["graph"].weights, rtol=0, atol=1e-5)


def _train_by_kernel(tmp_path, *options, **environment):
    """``train_rbm.py --step kernel`` with ``options`` in a process of its own, writing into
    ``tmp_path`` (the model ``m.npz``), with these variables added to the environment."""
    return subprocess.run(
        [sys.executable, "train_rbm.py", "--step", "kernel", *options, "--out", str(tmp_path / "m.npz"), "--plots",
         str(tmp_path)],
        cwd=paths.ROOT, capture_output=True, text=True, env={**os.environ, **environment},
    )


@pytest.mark.parametrize("options, message", [
    (["--hidden", "100"], "error: --step kernel needs --hidden a multiple of 64, not 100"),
    (["--cd-steps", "2"], "error: --step kernel does CD-1 only, not --cd-steps 2; use --step graph"),
    (["--sample-visible"], "error: --step kernel reconstructs with probabilities only, not --sample-visible; use --step graph"),
    (["--batch-size", "113"], "error: --step kernel takes batches of at most 112, not --batch-size 113"),
])
def test_what_the_kernel_step_cannot_do_is_one_line(options, message, tmp_path):
    done = _train_by_kernel(tmp_path, *options)
    assert done.returncode == 2 and done.stderr.strip() == message
    assert not (tmp_path / "m.npz").exists()


def test_a_cache_folder_that_cannot_be_written_is_one_line(sample_file, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    done = _train_by_kernel(tmp_path, "--data", str(sample_file), BOOKRBM_CACHE=str(blocked / "cache"))
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: {blocked / 'cache'}: cannot build the kernel there (Not a directory); set BOOKRBM_CACHE to a writable folder"
    )
    assert not (tmp_path / "m.npz").exists()


@needs_compiler
def test_a_build_that_does_not_load_is_one_line_and_removed(sample_file, tmp_path, monkeypatch):
    from bookrbm import kernel

    monkeypatch.setenv("BOOKRBM_CACHE", str(tmp_path / "cache"))
    library = kernel.library_path()
    os.makedirs(os.path.dirname(library))
    with open(library, "w") as file:
        file.write("not a library")
    done = _train_by_kernel(tmp_path, "--data", str(sample_file))
    relative = os.path.relpath(library, paths.ROOT)  # as paths.shown has it in the script's folder
    shown = relative if len(relative) < len(library) else library
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: {shown}: the built kernel does not load (file too short); removed, so that the next run builds it again"
    )
    assert not os.path.exists(library) and not (tmp_path / "m.npz").exists()


def test_no_compiler_is_one_line(sample_file, tmp_path):
    done = _train_by_kernel(tmp_path, "--data", str(sample_file), CXX="no-such-cc")
    assert done.returncode == 2 and done.stderr.strip() == "error: no-such-cc: no such C++ compiler; set CXX to one"
    assert not (tmp_path / "m.npz").exists()


@needs_compiler
def test_the_cached_build_has_one_name_in_every_process():
    """Its name is a digest of what it is built from; a process of another hash seed (sets
    iterate in another order) must find the same file, not build it again."""
    command = [sys.executable, "-c", "from bookrbm import kernel; print(kernel.library_path())"]
    names = {subprocess.run(command, cwd=paths.ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert len(names) == 1 and names.pop().endswith(".so")


def test_a_new_build_removes_the_other_builds_beside_it(tmp_path):
    from bookrbm import kernel

    for name in ("cd1_step-old.so", "cd1_step-new.so", "notes.txt"):
        (tmp_path / name).write_text("")
    kernel.remove_other_builds(str(tmp_path / "cd1_step-new.so"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cd1_step-new.so", "notes.txt"]

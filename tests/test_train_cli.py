import csv

import numpy as np
import pytest

import train_rbm
from bookrbm import interactions, model, preprocessing, train
from bookrbm.errors import InputError


@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "small.npz"
    interactions.save(path, preprocessing.build(max_users=300, log=lambda m: None))
    return path


def test_train_cli_writes_model_history_and_plots(small_file, tmp_path, capsys):
    out = tmp_path / "m" / "rbm.npz"
    train_rbm.main(["--data", str(small_file), "--out", str(out), "--plots", str(tmp_path / "plots"),
                    "--epochs", "2", "--hidden", "8", "--quiet"])
    trained = model.load(out)
    assert trained.weights.shape == (10000, 8) and trained.settings["epochs"] == 2
    assert [row["epoch"] for row in trained.history] == [1, 2]
    with open(tmp_path / "m" / "rbm-history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and float(rows[1]["train_error"]) == pytest.approx(trained.history[1]["train_error"])
    for name in ("free_energy.png", "error.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "epoch   2" in capsys.readouterr().out


def test_training_prints_no_error_lines_from_tensorflow(small_file, tmp_path):
    """A process of its own: TensorFlow's native logs go to the process's stderr once, at the
    first op that writes them (oneDNN's transpose of booleans wrote "E0000 ... supports
    DT_BOOL only on platforms with AVX-512" in every training run)."""
    import os
    import subprocess
    import sys

    from bookrbm import paths

    done = subprocess.run(
        [sys.executable, "train_rbm.py", "--data", str(small_file), "--out", str(tmp_path / "rbm.npz"),
         "--plots", str(tmp_path / "plots"), "--epochs", "1", "--hidden", "8", "--quiet"],
        cwd=paths.ROOT, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_failed_model_write_keeps_the_previous_model(quick_model, tmp_path, monkeypatch):
    path = tmp_path / "rbm.npz"
    model.save(path, quick_model)
    before = path.read_bytes()

    def broken_savez(handle, **arrays):
        handle.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(InputError, match=r"rbm.npz: cannot write it \(disk full\)"):
        model.save(path, quick_model)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rbm.npz"]  # no temporary file left behind
    assert np.array_equal(model.load(path).weights, quick_model.weights)


def test_bad_settings_are_one_line_errors(small_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_rbm.main(["--data", str(small_file), "--out", str(tmp_path / "m.npz"), "--plots", str(tmp_path), "--hidden", "0"])
    assert exit_info.value.code == 2
    assert "--hidden must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_wrong_data_file_is_refused(tmp_path, capsys):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(SystemExit):
        train_rbm.main(["--data", str(tmp_path / "x.npz")])
    assert "x.npz: not a bookrbm-processed-3 file (not an .npz archive" in capsys.readouterr().err


def test_eval_every_adds_tuning_ndcg_and_learning_curve(small_file, tmp_path):
    out = tmp_path / "rbm.npz"
    train_rbm.main(["--data", str(small_file), "--out", str(out), "--plots", str(tmp_path), "--epochs", "3",
                    "--hidden", "8", "--eval-every", "2", "--quiet"])
    history = model.load(out).history
    assert history[0]["tuning_ndcg"] is None  # epoch 1: not measured
    assert 0 < history[1]["tuning_ndcg"] < 1 and 0 < history[2]["tuning_ndcg"] < 1  # epoch 2, and the last
    assert (tmp_path / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_early_stopping_keeps_the_best_epoch(small_file):
    from bookrbm import evaluation, train

    data = interactions.load(small_file)
    trained = train.train(data, hidden=8, epochs=6, eval_every=1, patience=2, learning_rate=5.0,
                          progress=False, log=lambda m: None)
    measured = [row["tuning_ndcg"] for row in trained.history]
    best = int(np.argmax(measured)) + 1
    assert trained.settings["best_epoch"] == best
    # stopped two evaluations after the best, unless the best came too late for that
    assert len(trained.history) == min(best + 2, 6)
    # and the weights kept are the best epoch's: their tuning NDCG is the best one
    _, tuning_rows, _ = evaluation.user_sets(data)
    tuning = evaluation.tuning_holdout(data, tuning_rows)
    assert evaluation.evaluate(trained, tuning)["ndcg"] == pytest.approx(max(measured))


def test_presets_and_flags(small_file, tmp_path):
    out = tmp_path / "rbm.npz"
    train_rbm.main(["--data", str(small_file), "--out", str(out), "--plots", str(tmp_path), "--preset", "writeup",
                    "--epochs", "1", "--hidden", "4", "--input", "binary", "--series-units", "--quiet"])
    trained = model.load(out)
    settings = trained.settings
    assert settings["learning_rate"] == 0.6 and settings["visible_bias"] == "zero"  # from the preset
    assert settings["hidden"] == 4 and settings["input"] == "binary"  # from the flags
    assert settings["series_units"] is True and trained.series is not None  # the preset has none


@pytest.mark.parametrize("flags, message", [
    (["--momentum", "1.0"], "--momentum must be at least 0 and below 1"),
    (["--patience", "3", "--eval-every", "0"], "--patience needs --eval-every"),
    (["--cd-steps", "0"], "--cd-steps must be at least 1"),
    (["--short-lists", "1.5"], "--short-lists must be from 0 to 1, not 1.5"),
    (["--short-list-books", "0"], "--short-list-books must be at least 1"),
    (["--weight-decay", "nan"], "--weight-decay must not be negative, not nan"),  # NaN is never in range
])
def test_bad_training_settings(small_file, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        train_rbm.main(["--data", str(small_file), "--out", str(tmp_path / "m.npz"), "--plots", str(tmp_path), *flags])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_binary_input_model_scores_rated_books_as_read(small_file):
    from bookrbm import train

    data = interactions.load(small_file)
    trained = train.train(data, hidden=4, epochs=1, max_batches=1, input="binary", progress=False, log=lambda m: None)
    rows = data.ratings[:3]
    visible = trained.visible(rows)
    assert set(visible.data) == {1.0} and visible.nnz == rows.nnz
    assert np.allclose(trained.scores(rows), trained.scores(visible))


def test_hidden_keep_is_checked(small_file, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_rbm.main(["--data", str(small_file), "--out", str(tmp_path / "m.npz"), "--hidden-keep", "0"])
    assert "--hidden-keep must be above 0" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "1.5"])
def test_series_keep_is_checked(small_file, tmp_path, capsys, value):
    with pytest.raises(SystemExit):
        train_rbm.main(["--data", str(small_file), "--out", str(tmp_path / "m.npz"), "--series-keep", value])
    assert f"--series-keep must be above 0 and at most 1, not {float(value)}" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_average_keeps_a_running_mean_of_the_epochs_weights(small_file):
    from bookrbm import train

    data = interactions.load(small_file)
    common = dict(hidden=4, max_batches=2, eval_every=0, patience=0, progress=False, log=lambda m: None)
    one = train.train(data, epochs=1, average=0.0, **common)
    two = train.train(data, epochs=2, average=0.0, **common)
    averaged = train.train(data, epochs=2, average=0.75, **common)
    assert np.allclose(averaged.weights, 0.75 * one.weights + 0.25 * two.weights, atol=1e-7)
    assert not np.allclose(averaged.weights, two.weights)


def test_early_stopping_keeps_the_first_of_equal_bests_and_counts_since():
    best = train.BestSoFar()
    for epoch, ndcg in enumerate([0.2, 0.3, 0.3, 0.25], start=1):
        best.record(ndcg, [f"weights of epoch {epoch}"], epoch)
    assert (best.ndcg, best.epoch, best.params, best.since) == (0.3, 2, ["weights of epoch 2"], 2)


def test_running_average_weighs_the_old_average_by_the_rate():
    first = train.running_average(None, [np.array([1.0, 3.0])], 0.7)
    assert first[0].tolist() == [1.0, 3.0]
    second = train.running_average(first, [np.array([2.0, 1.0])], 0.7)
    assert np.allclose(second[0], [0.7 * 1 + 0.3 * 2, 0.7 * 3 + 0.3 * 1])


def test_the_same_seed_trains_the_same_model(sample):
    def fit(seed):
        return train.train(sample, hidden=8, epochs=2, max_batches=3, seed=seed, eval_every=1, patience=0,
                           progress=False, log=lambda m: None)

    first, again, other = fit(3), fit(3), fit(4)
    for a, b in zip(first.params, again.params):
        assert np.array_equal(a, b)
    assert first.history == again.history
    assert not np.array_equal(first.weights, other.weights)


def test_fit_rows_trains_on_those_readers_only(sample):
    from bookrbm import evaluation

    fit_rows, tuning_rows, _ = evaluation.user_sets(sample)
    some = fit_rows[:40]
    fit, valid, tuning = train.trainer_users(sample, "binary", some)
    assert fit.shape[0] == 40 and fit.nnz == (sample.ratings[some] > 0).sum()
    assert valid.shape[0] == len(sample.valid_rows) and np.array_equal(tuning, tuning_rows)
    # the visible biases start at these readers' read rates and a negligible step keeps
    # them there, so the model shows whose they were
    trained = train.train(sample, hidden=4, epochs=1, max_batches=1, fit_rows=some, learning_rate=1e-9, momentum=0.0,
                          eval_every=0, patience=0, average=0.0, progress=False, log=lambda m: None)
    assert np.allclose(trained.visible_bias, train.logit_visible_bias(fit))
    with pytest.raises(InputError, match="fit_rows must be rows of fit users"):
        train.trainer_users(sample, "binary", tuning_rows[:3])

import csv

import numpy as np
import pytest

import train_rbm
from bookrbm import interactions, model, preprocessing


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


def test_failed_model_write_keeps_the_previous_model(quick_model, tmp_path, monkeypatch):
    path = tmp_path / "rbm.npz"
    model.save(path, quick_model)
    before = path.read_bytes()

    def broken_savez(handle, **arrays):
        handle.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        model.save(path, quick_model)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["rbm.npz"]  # no temporary file left behind
    assert np.array_equal(model.load(path).weights, quick_model.weights)


def test_bad_settings_are_one_line_errors(small_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_rbm.main(["--data", str(small_file), "--out", str(tmp_path / "m.npz"), "--hidden", "0"])
    assert exit_info.value.code == 2
    assert "--hidden must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "m.npz").exists()


def test_wrong_data_file_is_refused(tmp_path, capsys):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(SystemExit):
        train_rbm.main(["--data", str(tmp_path / "x.npz")])
    assert "cannot be read as a bookrbm-processed-2 file" in capsys.readouterr().err

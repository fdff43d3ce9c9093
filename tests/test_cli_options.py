"""What every script does with its options: a bad --seed, or an output that cannot be written, is
one line and exit 2, found before the long work."""
import os
import subprocess
import sys

import pytest

import evaluate
import preprocess
import recommend
import train_rbm
from bookrbm import paths
from bookrbm.errors import MAX_SEED, InputError, check_range, seed_option

sys.path.insert(0, os.path.join(paths.ROOT, "bench"))
import data_size  # noqa: E402
import full_scale  # noqa: E402



@pytest.mark.parametrize("bounds, value, message", [
    ({"at_least": 1}, 0, "--n must be at least 1, not 0"),
    ({"above": 0}, 0.0, "--n must be above 0, not 0.0"),
    ({"at_least": 0, "below": 1}, 1.0, "--n must be at least 0 and below 1, not 1.0"),
    ({"above": 0, "at_most": 1}, 1.5, "--n must be above 0 and at most 1, not 1.5"),
    ({"at_least": 1, "at_most": 65535}, 65536, "--n must be from 1 to 65535, not 65536"),
    ({"at_least": 0}, -1, "--n must not be negative, not -1"),
    ({"at_least": 0}, float("nan"), "--n must not be negative, not nan"),
    ({"above": 0, "at_most": 1}, float("nan"), "--n must be above 0 and at most 1, not nan"),
])
def test_a_number_out_of_range_is_told_with_its_range_in_words(bounds, value, message):
    with pytest.raises(InputError) as error:
        check_range("--n", value, **bounds)
    assert str(error.value) == message


def test_a_number_in_range_comes_back_as_it_is():
    assert check_range("--n", 1, at_least=1) == 1 and check_range("--n", 65535, at_least=1, at_most=65535) == 65535
    assert check_range("--n", 0.0, at_least=0, below=1) == 0.0 and check_range("--n", 1.0, above=0, at_most=1) == 1.0


def other_options(script, folder):
    """Options that would make ``script`` read or write something under ``folder`` if the
    seed were accepted."""
    missing, out = str(folder / "missing.npz"), str(folder / "out")
    return {
        preprocess: ["--out", out],
        train_rbm: ["--data", missing, "--out", out, "--plots", str(folder)],
        evaluate: ["--data", missing, "--out", out],
        data_size: ["--data", missing, "--out", out],
        full_scale: ["--cache", str(folder), "--out", out, "--users", "10"],
    }[script]


SCRIPTS = [preprocess, train_rbm, evaluate, data_size, full_scale]


def test_seed_option_takes_every_seed_numpy_and_tensorflow_take():
    assert seed_option("0") == 0 and seed_option(str(MAX_SEED)) == MAX_SEED


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("seed", ["-1", str(MAX_SEED + 1), "1.5", "abc"])
def test_a_bad_seed_is_one_line_and_exit_2(script, seed, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main([*other_options(script, tmp_path), "--seed", seed])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err == f"error: --seed must be a whole number from 0 to {MAX_SEED}, not {seed}\n"
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_cannot_be_made_is_one_line_before_training(sample_file, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    out = tmp_path / "m.npz"
    with pytest.raises(SystemExit) as exit_info:
        # 500 epochs: were the plots' folder found bad only at the end, this test would not end soon
        train_rbm.main(["--data", str(sample_file), "--out", str(out), "--plots", str(tmp_path / "file" / "plots"),
                        "--epochs", "500", "--quiet"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'file' / 'plots' / 'free_energy.png'}: cannot write it ({tmp_path / 'file'} is a file, not a folder)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no model, no temporary file


def test_an_output_file_that_is_a_folder_is_one_line_before_training(sample_file, tmp_path, capsys):
    (tmp_path / "m.npz").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        # 500 epochs: were it found only when the model is written, this test would not end soon
        train_rbm.main(["--data", str(sample_file), "--out", str(tmp_path / "m.npz"), "--plots", str(tmp_path / "plots"),
                        "--epochs", "500", "--quiet"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'm.npz'}: cannot write it (it is a folder)\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["m.npz"]


@pytest.mark.parametrize("script, options, message", [
    ("train_rbm.py", ["--epochs", "0"], "--epochs must be at least 1, not 0"),
    ("train_rbm.py", ["--patience", "3", "--eval-every", "0"], "--patience needs --eval-every"),
    ("bench/data_size.py", ["--shares", "0,2"], "--shares must be above 0 and at most 1"),
])
def test_a_bad_training_setting_is_told_before_the_data_or_tensorflow_load(script, options, message, tmp_path):
    # the data file is missing too: the setting is checked first, without TensorFlow's 4 s
    # import (which -X importtime cannot show: graph.py hides native stderr while it runs)
    run = ("import runpy, sys\nsys.argv = sys.argv[1:]\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
           "finally:\n    print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", run, script, "--data", str(tmp_path / "missing.npz"), *options],
                          cwd=paths.ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {message}") and done.stderr.count("\n") == 1
    assert done.stdout == "False\n"


def test_evaluate_checks_its_outputs_before_evaluating(sample_file, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        evaluate.main(["--data", str(sample_file), "--model", f"rbm={tmp_path / 'missing.npz'}",
                       "--gaps", str(tmp_path / "file" / "gaps.csv")])
    assert exit_info.value.code == 2  # the unwritable gaps file is found before the missing model
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'file' / 'gaps.csv'}: cannot write it ({tmp_path / 'file'} is a file, not a folder)\n"
    )


def test_recommend_checks_its_chart_folder_before_writing_or_printing(sample_file, quick_model_file, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    results = tmp_path / "results"
    results.mkdir()
    (results / "recommendations.csv").write_text("an earlier reader's\n")
    with pytest.raises(SystemExit) as exit_info:
        recommend.main(["--user", "13", "--model", str(quick_model_file), "--data", str(sample_file),
                        "--results", str(results), "--plots", str(tmp_path / "file")])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert err == f"error: {tmp_path / 'file' / 'genres.svg'}: cannot write it ({tmp_path / 'file'} is a file, not a folder)\n"
    assert out == ""  # no table printed as if it had worked
    assert sorted(p.name for p in results.iterdir()) == ["recommendations.csv"]
    assert (results / "recommendations.csv").read_text() == "an earlier reader's\n"


def test_recommend_names_the_file_it_cannot_write(sample_file, quick_model_file, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        recommend.main(["--user", "13", "--model", str(quick_model_file), "--data", str(sample_file),
                        "--results", str(tmp_path / "file" / "results"), "--plots", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'file' / 'results'}") and f"cannot write it ({tmp_path / 'file'} is a file, not a folder)" in err
    assert err.count("\n") == 1

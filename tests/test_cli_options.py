"""Options every script shares: a bad --seed is one line and exit 2 before anything is read or written."""
import os
import sys

import pytest

import evaluate
import preprocess
import train_rbm
from bookrbm import paths
from bookrbm.errors import MAX_SEED, seed_option

sys.path.insert(0, os.path.join(paths.ROOT, "bench"))
import data_size  # noqa: E402
import full_scale  # noqa: E402



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

"""The bare CD-1 step as one kernel of our own (bench/fused_step.cc, a prototype the trainer
does not use): it does the step's maths, refuses shapes it cannot take, and its bench runs."""
import os
import shutil
import subprocess
import sys

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


@pytest.mark.parametrize("options, message", [
    (["--hidden", "48"], "error: --hidden must be a multiple of 64, not 48"),
    (["--batch-size", "113"], "error: --batch-size must be at most 112, not 113"),
    (["--steps", "0"], "error: --steps must be at least 1, not 0"),
])
def test_bad_options_are_one_line(options, message, tmp_path):
    done = subprocess.run([sys.executable, "bench/fused_step.py", *options, "--out", str(tmp_path / "f.csv")],
                          cwd=paths.ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip() == message
    assert not (tmp_path / "f.csv").exists()


def test_smoke_run_prints_and_writes_its_table(kernels, tmp_path):
    lines = []
    out = tmp_path / "fused_step.csv"
    args = fused_step.parse_args(["--books", "300", "--steps", "2", "--rounds", "2", "--gemm", "128", "--out", str(out)])
    rows = fused_step.run(args, log=lines.append, kernels=kernels)
    table = pd.read_csv(out)
    assert list(table.name) == [
        "gemm_peak", "fused_largest_difference",
        "tensorflow_epoch", "tensorflow_gflops", "tensorflow_share_of_peak",
        "fused_epoch", "fused_gflops", "fused_share_of_peak", "fused_speedup",
    ] == [row["name"] for row in rows]
    by_name = table.set_index("name").value
    assert by_name.fused_largest_difference < 1e-6
    for step in fused_step.STEPS:
        assert by_name[f"{step}_epoch"] > 0
        # the count: 6 · batch · books · hidden a step, two steps an epoch
        assert by_name[f"{step}_gflops"] == pytest.approx(6 * 100 * 300 * 64 * 2 / by_name[f"{step}_epoch"] / 1e9, rel=1e-4)
    assert by_name.fused_speedup == pytest.approx(by_name.tensorflow_epoch / by_name.fused_epoch, rel=1e-4)
    assert lines[0].startswith("the kernel against NumPy after 3 steps:") and lines[-1].startswith("wrote ")

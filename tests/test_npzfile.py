"""Versioned .npz files: what a reader is told about a file that is not one."""
import numpy as np
import pytest

from bookrbm import npzfile
from bookrbm.errors import InputError


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "good.npz"
    npzfile.write(path, "kind-1", {"weights": np.arange(5000, dtype=np.float32)}, meta={"settings": {"a": 1}})
    return path


def test_round_trip(written):
    out = npzfile.read(written, "kind-1", meta=("settings",))
    assert out["weights"].tolist() == list(range(5000)) and out["settings"] == {"a": 1}


def test_another_kind_is_refused(written):
    with pytest.raises(InputError, match=r"good\.npz: not a kind-2 file; hint"):
        npzfile.read(written, "kind-2", hint="; hint")


@pytest.mark.parametrize("cut", [100, -100])
def test_a_file_cut_short_is_one_clear_error(written, tmp_path, cut):
    # the first bytes only (no archive directory), or all but the last (directory damaged)
    data = written.read_bytes()
    short = tmp_path / "short.npz"
    short.write_bytes(data[:cut])
    with pytest.raises(InputError, match=r"short\.npz: (not a kind-1 file \(not an \.npz archive|cannot be read as)"):
        npzfile.read(short, "kind-1")


def test_a_damaged_member_is_one_clear_error(written, tmp_path):
    data = bytearray(written.read_bytes())
    start = data.index(b"weights.npy") + 200  # inside the array's bytes: the CRC no longer matches
    data[start : start + 64] = b"\xff" * 64
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"damaged\.npz: cannot be read as a kind-1 file"):
        npzfile.read(damaged, "kind-1")


def test_text_and_missing_files(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("garbage\n")
    with pytest.raises(InputError, match="not an .npz archive") as error:
        npzfile.read(text, "kind-1")
    assert "pickle" not in str(error.value)
    with pytest.raises(InputError, match=r"nothing\.npz: no such file; run it"):
        npzfile.read(tmp_path / "nothing.npz", "kind-1", hint="; run it")
    (tmp_path / "folder.npz").mkdir()
    with pytest.raises(InputError, match=r"folder\.npz: is a directory, not a kind-1 file; run it"):
        npzfile.read(tmp_path / "folder.npz", "kind-1", hint="; run it")

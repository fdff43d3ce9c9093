import functools
import http.server
import threading

import pytest

import preprocess
from bookrbm import download
from conftest import copy_sample


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a folder; yields (folder, base url)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_blob_id_is_gits(tmp_path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello\n")
    assert download.blob_id(path) == "ce013625030ba8dba906f756967f9e9ca394464a"  # git hash-object


def test_good_file_is_kept(server, tmp_path):
    served, url = server
    (served / "ratings.csv").write_text("user_id,book_id,rating\n1,1,5\n")
    expected = download.blob_id(served / "ratings.csv")
    dest = tmp_path / "full"
    download.download(dest, base_url=url, blob_ids={"ratings.csv": expected}, progress=False, log=lambda m: None)
    assert (dest / "ratings.csv").read_bytes() == (served / "ratings.csv").read_bytes()
    assert [p.name for p in dest.iterdir()] == ["ratings.csv"]


def test_corrupted_file_is_refused_and_removed(server, tmp_path):
    served, url = server
    (served / "ratings.csv").write_text("user_id,book_id,rating\n1,1,5\n")
    expected = download.blob_id(served / "ratings.csv")
    (served / "ratings.csv").write_text("user_id,book_id,rating\n1,1,4\n")  # one byte changed
    dest = tmp_path / "full"
    with pytest.raises(download.InputError, match="does not match upstream"):
        download.download(dest, base_url=url, blob_ids={"ratings.csv": expected}, progress=False)
    assert list(dest.iterdir()) == []


def test_missing_file_on_server_is_an_error(server, tmp_path):
    _, url = server
    with pytest.raises(download.InputError, match="download failed"):
        download.download(tmp_path / "full", base_url=url, blob_ids={"books.csv": "0" * 40}, progress=False)
    assert list((tmp_path / "full").iterdir()) == []


def test_cli_download_then_preprocess(server, tmp_path, capsys, monkeypatch):
    served, url = server
    copy_sample(served)
    ids = {name: download.blob_id(served / name) for name in ("books.csv", "ratings.csv", "to_read.csv")}
    monkeypatch.setattr(download, "BLOB_IDS", ids)
    dest, out = tmp_path / "full", tmp_path / "p.npz"
    preprocess.main(["--download", "--base-url", url, "--data-dir", str(dest), "--out", str(out)])
    assert "2672 users × 10000 books, 298176 ratings" in capsys.readouterr().out
    assert sorted(p.name for p in dest.iterdir()) == ["books.csv", "ratings.csv", "to_read.csv"]


def test_cli_refuses_files_that_are_not_upstream(server, tmp_path, capsys):
    served, url = server
    copy_sample(served)  # the sample's ratings.csv is not the full upstream file
    dest = tmp_path / "full"
    with pytest.raises(SystemExit) as exit_info:
        preprocess.main(["--download", "--base-url", url, "--data-dir", str(dest), "--out", str(tmp_path / "p.npz")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "ratings.csv: downloaded file does not match upstream" in err
    assert not (dest / "ratings.csv").exists() and not (dest / "ratings.csv.part").exists()
    assert not (tmp_path / "p.npz").exists()


def test_cli_download_into_a_folder_that_cannot_be_made(server, tmp_path, capsys):
    _, url = server
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        preprocess.main(["--download", "--base-url", url, "--data-dir", str(tmp_path / "file" / "full"),
                         "--out", str(tmp_path / "p.npz")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'file' / 'full'}") and err.count("\n") == 1
    assert f"({tmp_path / 'file'} is a file, not a folder)" in err


def test_cli_checks_its_output_before_downloading(server, tmp_path, capsys):
    served, url = server
    copy_sample(served)
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_info:
        preprocess.main(["--download", "--base-url", url, "--data-dir", str(tmp_path / "full"),
                         "--out", str(tmp_path / "file" / "p.npz")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'file' / 'p.npz'}: cannot write it ({tmp_path / 'file'} is a file, not a folder)\n"
    )
    assert not (tmp_path / "full").exists()  # nothing fetched

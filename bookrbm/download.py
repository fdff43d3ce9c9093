"""Fetch the full goodbooks-10k files and keep only those whose bytes match upstream."""
import hashlib
import os
import urllib.error
import urllib.request

from tqdm import tqdm

from .atomic import check_writable
from .errors import InputError

UPSTREAM = "https://raw.githubusercontent.com/zygmuntz/goodbooks-10k/master/"

# git blob ids (SHA-1 of b"blob <size>\0" + bytes) of the upstream files.
BLOB_IDS = {
    "ratings.csv": "0d245a10acfe3c89b2e4004cdbc805b99771ac5d",
    "to_read.csv": "bd19bb1ed6b9fb20f15c42e0af23e413aeaf1c04",
    "books.csv": "d694afdf5f555b51c1128c6ff562b6e54a7f75e3",
    "book_tags.csv": "f82218f199850f533568eaf22529b5df1c545412",
    "tags.csv": "65b5424eeec23554e9b034933e438cd12017a985",
}

CHUNK = 1 << 20


def blob_id(path):
    """The git blob id of a file, as ``git hash-object`` prints it."""
    digest = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url, path, expected_blob_id, progress=True):
    """Download ``url`` to ``path``; keep it only if its blob id is ``expected_blob_id``.

    The bytes go to ``path + '.part'`` first; a failed or mismatching download is removed
    and ``path`` (if it was there before) is left as it was.
    """
    partial = path + ".part"
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            size = response.headers.get("Content-Length")
            with tqdm(
                total=int(size) if size else None,
                unit="B",
                unit_scale=True,
                desc=os.path.basename(path),
                disable=None if progress else True,
            ) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        got = blob_id(partial)
        if got != expected_blob_id:
            raise InputError(
                f"{url}: downloaded file does not match upstream (git blob id {got}, "
                f"expected {expected_blob_id}); not kept"
            )
        os.replace(partial, path)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        raise InputError(f"{url}: download failed ({reason}); nothing kept") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def download(dest, base_url=UPSTREAM, blob_ids=None, progress=True, log=print):
    """Fetch every file of ``blob_ids`` (default: the upstream ones) into folder ``dest``.

    Files already there with the right blob id are not fetched again.
    """
    blob_ids = BLOB_IDS if blob_ids is None else blob_ids
    check_writable(*(os.path.join(dest, name) for name in blob_ids))  # makes ``dest``; a bad one in one line
    for name, expected in blob_ids.items():
        path = os.path.join(dest, name)
        if os.path.exists(path) and blob_id(path) == expected:
            log(f"{path}: already downloaded and verified")
            continue
        fetch(base_url.rstrip("/") + "/" + name, path, expected, progress=progress)
        log(f"{path}: downloaded and verified")
    return dest

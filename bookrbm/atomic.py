"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
import contextlib
import csv
import os
import tempfile

from .errors import InputError


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    If the body raises, the temporary file is removed and ``path`` is untouched. A folder
    that cannot be made or written, a full disk: an InputError naming ``path``.
    """
    path = os.fspath(path)
    fd, tmp = _temporary_beside(path)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result should not be
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise _cannot_write(path, error) from None
        raise


def check_writable(*paths):
    """Before long work: the InputError that writing any of ``paths`` (files) would raise at
    its end because its folder cannot be made or written. Files already there are untouched."""
    for path in paths:
        if os.path.isdir(path):  # the rename at the end would fail: "Is a directory"
            raise InputError(f"{os.fspath(path)}: cannot write it (it is a folder)")
        fd, tmp = _temporary_beside(os.fspath(path))
        os.close(fd)
        os.unlink(tmp)


def _temporary_beside(path):
    """(fd, name) of a new temporary file in ``path``'s folder, made if need be."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        return tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    except OSError as error:
        raise _cannot_write(path, error) from None


def _cannot_write(path, error):
    reason = error.strerror or str(error)
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):  # "File exists" or "Not a directory" would not say which
        reason = f"{existing} is a file, not a folder"
    return InputError(f"{path}: cannot write it ({reason})")


def write_csv(path, rows, columns):
    """Write ``rows`` (dicts) as a UTF-8 CSV with a header of ``columns``; other keys are left out."""
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

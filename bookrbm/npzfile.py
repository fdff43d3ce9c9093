"""Versioned ``.npz`` files of plain arrays (no pickles), written atomically."""
import json
import os
import zipfile

import numpy as np

from .atomic import atomic_write
from .errors import InputError
from .paths import shown


def write(path, kind, arrays, meta=None):
    """Write ``arrays`` (name → array) and ``meta`` (name → JSON-able) tagged as ``kind``."""
    payload = {"format": np.array(kind), **arrays}
    for name, value in (meta or {}).items():
        # UTF-8 bytes, not a NumPy string array, which would spend 4 bytes a character
        payload[name] = np.frombuffer(json.dumps(value).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as handle:
        np.savez(handle, **payload)


def read(path, kind, meta=(), hint=""):
    """All arrays of a file written by ``write`` as ``kind``; ``meta`` names are JSON-decoded.

    A missing, foreign or damaged file is an ``InputError`` ending in ``hint``.
    """
    path = shown(os.fspath(path))
    if not os.path.exists(path):
        raise InputError(f"{path}: no such file{hint}")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a {kind} file{hint}")
    if not zipfile.is_zipfile(path):
        # np.load would take it for a pickle and say so, which helps nobody
        raise InputError(f"{path}: not a {kind} file (not an .npz archive: cut short, damaged or another kind of file){hint}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "format" not in arrays or str(arrays["format"]) != kind:
                raise InputError(f"{path}: not a {kind} file{hint}")
            out = {name: arrays[name] for name in arrays.files if name != "format"}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file{hint}") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise InputError(f"{path}: cannot be read as a {kind} file ({error}){hint}") from None
    for name in meta:
        try:
            out[name] = json.loads(out[name].tobytes().decode("utf-8"))
        except (KeyError, ValueError) as error:
            raise InputError(f"{path}: damaged {kind} file ({name}: {error}){hint}") from None
    return out

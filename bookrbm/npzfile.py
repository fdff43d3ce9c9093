"""Versioned ``.npz`` files of plain arrays (no pickles), written atomically."""
import json
import os

import numpy as np

from .atomic import atomic_write
from .errors import InputError
from .paths import shown


def write(path, kind, arrays, meta=None, compressed=False):
    """Write ``arrays`` (name → array) and ``meta`` (name → JSON-able) tagged as ``kind``."""
    payload = {"format": np.array(kind), **arrays}
    for name, value in (meta or {}).items():
        payload[name] = np.array(json.dumps(value))
    with atomic_write(path) as handle:
        (np.savez_compressed if compressed else np.savez)(handle, **payload)


def read(path, kind, meta=(), hint=""):
    """All arrays of a file written by ``write`` as ``kind``; ``meta`` names are JSON-decoded.

    A missing, foreign or damaged file is an ``InputError`` ending in ``hint``.
    """
    path = shown(os.fspath(path))
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "format" not in arrays or str(arrays["format"]) != kind:
                raise InputError(f"{path}: not a {kind} file{hint}")
            out = {name: arrays[name] for name in arrays.files if name != "format"}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file{hint}") from None
    except (OSError, ValueError, KeyError, EOFError) as error:
        raise InputError(f"{path}: cannot be read as a {kind} file ({error}){hint}") from None
    for name in meta:
        out[name] = json.loads(str(out[name]))
    return out

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from bookrbm import interactions, paths, preprocessing


@pytest.fixture(scope="session", autouse=True)
def kernel_cache(tmp_path_factory):
    """The kernel step (``--step kernel``) built into a folder of the tests' own, for every
    test and the scripts they run, not into the user's cache."""
    folder = str(tmp_path_factory.mktemp("kernel-cache"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BOOKRBM_CACHE", folder)
        yield folder


@pytest.fixture(scope="session")
def sample():
    """The bundled real sample, preprocessed with the default seed."""
    return preprocessing.build(paths.BUNDLED_DATA, log=lambda message: None)


@pytest.fixture(scope="session")
def sample_csv():
    """The bundled CSVs as pandas tables, read independently of the package."""
    return {
        name: pd.read_csv(os.path.join(paths.BUNDLED_DATA, f"{name}.csv"))
        for name in ("books", "ratings", "to_read")
    }


@pytest.fixture(scope="session")
def popular_slice(sample):
    """The sample cut to its 400 most-read books: real readers, small enough for EASE in a test."""
    counts = np.diff(sample.ratings.tocsc().indptr)
    keep = np.sort(np.argsort(-counts, kind="stable")[:400])
    return interactions.Interactions(
        ratings=sample.ratings[:, keep].tocsr(),
        to_read=sample.to_read[:, keep].tocsr(),
        user_ids=sample.user_ids,
        book_ids=sample.book_ids[keep],
        titles=sample.titles[keep],
        authors=sample.authors[keep],
        valid=sample.valid,
        info=dict(sample.info),
        catalogue=sample.catalogue.take(keep),
    )


@pytest.fixture(scope="session")
def sample_file(sample, tmp_path_factory):
    path = tmp_path_factory.mktemp("processed") / "goodbooks.npz"
    interactions.save(path, sample)
    return path


@pytest.fixture(scope="session")
def quick_model(sample):
    """A small model trained for a few batches on the sample: enough to rank, fast to make."""
    from bookrbm import train

    return train.train(sample, hidden=16, epochs=1, max_batches=5, seed=1, progress=False, log=lambda m: None)


@pytest.fixture(scope="session")
def quick_model_file(quick_model, tmp_path_factory):
    from bookrbm import model

    path = tmp_path_factory.mktemp("model") / "rbm.npz"
    model.save(path, quick_model)
    return path


def write_csv(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def tiny_dir(tmp_path):
    """A goodbooks-format folder of 4 books, 4 users, written by the test."""
    books = pd.read_csv(os.path.join(paths.BUNDLED_DATA, "books.csv"), nrows=4)
    books.to_csv(tmp_path / "books.csv", index=False)
    write_csv(tmp_path / "ratings.csv", "user_id,book_id,rating\n7,1,5\n7,2,3\n3,2,4\n9,4,1\n3,3,2\n12,1,2\n")
    write_csv(tmp_path / "to_read.csv", "user_id,book_id\n7,3\n3,1\n99,2\n")
    return tmp_path


def copy_sample(dest):
    for name in ("books.csv", "ratings.csv", "to_read.csv"):
        shutil.copy(os.path.join(paths.BUNDLED_DATA, name), dest / name)
    return dest


def dense(matrix):
    return np.asarray(matrix.todense())

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import preprocess
from bookrbm import interactions, paths, preprocessing
from conftest import dense


def test_sample_counts_match_the_csvs(sample, sample_csv):
    ratings = sample_csv["ratings"]
    assert sample.n_users == ratings.user_id.nunique() == 2672
    assert sample.n_books == len(sample_csv["books"]) == 10000
    assert sample.ratings.nnz == len(ratings) == 298176
    wishes = sample_csv["to_read"]
    assert sample.to_read.nnz == len(wishes[wishes.user_id.isin(ratings.user_id)])


def test_every_value_is_its_rating_over_five(sample, sample_csv):
    ratings = sample_csv["ratings"]
    rows = np.searchsorted(sample.user_ids, ratings.user_id.to_numpy())
    cols = np.searchsorted(sample.book_ids, ratings.book_id.to_numpy())
    assert np.array_equal(sample.user_ids[rows], ratings.user_id.to_numpy())
    values = np.asarray(sample.ratings[rows, cols]).ravel()
    assert np.allclose(values, ratings.rating.to_numpy() / 5)
    assert sample.ratings.data.min() == pytest.approx(0.2) and sample.ratings.data.max() == 1.0


def test_columns_are_the_books_of_books_csv(sample, sample_csv):
    assert np.array_equal(sample.book_ids, np.sort(sample_csv["books"].book_id.to_numpy()))
    first = sample_csv["books"].iloc[0]
    col = sample.columns_of([first.book_id])[0]
    assert sample.titles[col] == first.original_title
    assert sample.authors[col] == first.authors


def test_title_falls_back_when_original_title_is_empty(sample, sample_csv):
    books = sample_csv["books"]
    missing = books[books.original_title.isna()].iloc[0]
    assert sample.titles[sample.columns_of([missing.book_id])[0]] == missing.title


def test_split_is_disjoint_covering_and_seeded(sample):
    train, valid = set(sample.train_rows), set(sample.valid_rows)
    assert not train & valid
    assert train | valid == set(range(sample.n_users))
    assert len(valid) == round(0.2 * sample.n_users)
    again = preprocessing.build(log=lambda m: None)
    assert np.array_equal(again.valid, sample.valid)
    other = preprocessing.build(seed=1, log=lambda m: None)
    assert not np.array_equal(other.valid, sample.valid)


def test_processed_file_round_trips(sample, sample_file):
    loaded = interactions.load(sample_file)
    assert (loaded.ratings != sample.ratings).nnz == 0
    assert (loaded.to_read != sample.to_read).nnz == 0
    for name in ("user_ids", "book_ids", "titles", "authors", "valid"):
        assert np.array_equal(getattr(loaded, name), getattr(sample, name))
    assert loaded.info["n_ratings"] == 298176
    for field in dataclasses.fields(sample.catalogue):
        saved, read = getattr(sample.catalogue, field.name), getattr(loaded.catalogue, field.name)
        assert np.array_equal(read, saved) if isinstance(saved, np.ndarray) else read == saved


def test_catalogue_keeps_matching_keys_and_genres(sample, sample_csv):
    books = sample_csv["books"]
    first = books.iloc[0]
    assert sample.catalogue.goodreads_ids[0] == first.goodreads_book_id == 2767052
    assert sample.catalogue.work_ids[0] == first.work_id
    assert sample.catalogue.isbns[0] == "0439023483"  # books.csv lost the leading zero: 439023483
    assert sample.catalogue.isbn13s[0] == "9.78043902348e+12"  # kept as written, not parsed
    assert sample.catalogue.image_urls[0] == first.image_url
    # the bundled tag subset gives every book genres; The Hunger Games is young adult first
    assert all(sample.catalogue.genres) and sample.catalogue.genres[0][0] == "young adult"
    assert "to-read" not in {g for book in sample.catalogue.genres for g in book}


def test_shelves_with_unknown_tags_are_refused(tiny_dir, tmp_path, capsys):
    (tiny_dir / "tags.csv").write_text("tag_id,tag_name\n1,fantasy\n2,to-read\n")
    (tiny_dir / "book_tags.csv").write_text("goodreads_book_id,tag_id,count\n2767052,1,10\n2767052,3,5\n")
    code, err = run_cli(["--data-dir", str(tiny_dir), "--out", str(tmp_path / "p.npz")], capsys)
    assert code == 2 and "book_tags.csv: line 3: tag_id 3 is not in" in err
    (tiny_dir / "book_tags.csv").write_text("goodreads_book_id,tag_id,count\n2767052,1,10\n2767052,2,50\n")
    data = preprocessing.build(tiny_dir, log=lambda m: None)
    assert data.catalogue.genres[0] == ["fantasy"] and data.catalogue.genres[1] == []


def test_tiny_folder_maps_ids_and_keeps_last_duplicate(tiny_dir):
    with open(tiny_dir / "ratings.csv", "a") as handle:
        handle.write("7,1,2\n")  # repeats (7, 1): the later rating, 2, must win
    messages = []
    data = preprocessing.build(tiny_dir, valid_fraction=0.25, log=messages.append)
    assert list(data.user_ids) == [3, 7, 9, 12]
    assert list(data.book_ids) == [1, 2, 3, 4]
    assert np.allclose(
        dense(data.ratings),
        [[0, 0.8, 0.4, 0], [0.4, 0.6, 0, 0], [0, 0, 0, 0.2], [0.4, 0, 0, 0]],
    )
    assert data.info["duplicates_dropped"] == 1
    assert any("1 repeated" in m for m in messages)
    # user 99 has no ratings, so their to-read row is not kept
    assert dense(data.to_read).tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert data.valid.sum() == 1


def test_rows_keeps_first_rows_sorted_by_user(tiny_dir):
    data = preprocessing.build(tiny_dir, rows=3, log=lambda m: None)
    # sorted by user_id: (3,2,4), (3,3,2), (7,1,5) ...
    assert list(data.user_ids) == [3, 7]
    assert data.ratings.nnz == 3


def test_max_users_is_a_seeded_subset(sample):
    small = preprocessing.build(max_users=100, seed=5, log=lambda m: None)
    assert small.n_users == 100
    assert set(small.user_ids) <= set(sample.user_ids)
    same = preprocessing.build(max_users=100, seed=5, log=lambda m: None)
    assert np.array_equal(small.user_ids, same.user_ids)
    row = sample.row_of(small.user_ids[0])
    assert (small.ratings[0] != sample.ratings[row]).nnz == 0


def test_missing_to_read_gives_empty_lists(tiny_dir):
    (tiny_dir / "to_read.csv").unlink()
    messages = []
    data = preprocessing.build(tiny_dir, log=messages.append)
    assert data.to_read.nnz == 0
    assert any("--from all" in m for m in messages)
    assert any("books have no genres" in m for m in messages) and data.catalogue.genres == [[]] * 4


def test_cli_writes_the_processed_file(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out" / "p.npz"
    preprocess.main(["--data-dir", str(tiny_dir), "--out", str(out), "--seed", "3"])
    assert "4 users × 4 books, 6 ratings" in capsys.readouterr().out
    assert interactions.load(out).info["seed"] == 3


BAD_RATINGS = [
    ("user_id,book_id\n1,2\n", "missing column 'rating'"),
    ("user_id,book_id,rating\n1,2,4\n1,3,x\n", "line 3: rating is 'x', not a whole number"),
    ("user_id,book_id,rating\n1,2,4\n1,3,4.5\n", "line 3: rating is '4.5', not a whole number"),
    ("user_id,book_id,rating\n1,2,4\n1,3,\n", "line 3: rating is an empty value"),
    ("user_id,book_id,rating\n1,2,4\n2,3,6\n", "line 3: rating 6 is not from 1 to 5"),
    ("user_id,book_id,rating\n1,2,0\n", "line 2: rating 0 is not from 1 to 5"),
    ("user_id,book_id,rating\n1,2,4\n1,77,4\n", "line 3: book_id 77 is not in books.csv"),
    ("user_id,book_id,rating\nabc,2,4\n", "line 2: user_id is 'abc', not a whole number"),
    ("", "file is empty"),
    ("user_id,book_id,rating\n", "no data rows"),
]


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        preprocess.main(argv)
    err = capsys.readouterr().err
    return exit_info.value.code, err


@pytest.mark.parametrize("text, message", BAD_RATINGS)
def test_bad_ratings_get_one_line_error_and_exit_2(tiny_dir, tmp_path, capsys, text, message):
    (tiny_dir / "ratings.csv").write_text(text)
    out = tmp_path / "p.npz"
    out.write_bytes(b"previous run")
    code, err = run_cli(["--data-dir", str(tiny_dir), "--out", str(out)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "ratings.csv" in err and message in err
    assert out.read_bytes() == b"previous run"  # nothing already written is lost


def test_binary_file_is_refused(tiny_dir, tmp_path, capsys):
    (tiny_dir / "books.csv").write_bytes(bytes(range(256)) * 4)
    code, err = run_cli(["--data-dir", str(tiny_dir), "--out", str(tmp_path / "p.npz")], capsys)
    assert code == 2 and "books.csv: is not a text CSV file" in err


def test_unknown_book_in_to_read_is_refused(tiny_dir, tmp_path, capsys):
    (tiny_dir / "to_read.csv").write_text("user_id,book_id\n7,3\n7,5000\n")
    code, err = run_cli(["--data-dir", str(tiny_dir), "--out", str(tmp_path / "p.npz")], capsys)
    assert code == 2 and "to_read.csv: line 3: book_id 5000 is not in books.csv" in err


@pytest.mark.parametrize("missing", ["folder", "ratings.csv", "a file"])
def test_unreadable_paths_are_named(tiny_dir, tmp_path, capsys, missing):
    if missing == "folder":
        target = tmp_path / "nowhere"
    elif missing == "a file":
        target = tiny_dir / "ratings.csv"
    else:
        (tiny_dir / missing).unlink()
        target = tiny_dir
    code, err = run_cli(["--data-dir", str(target), "--out", str(tmp_path / "p.npz")], capsys)
    assert code == 2
    expected = {"folder": "nowhere: no such folder", "ratings.csv": "ratings.csv: no such file",
                "a file": "ratings.csv: a file, not a folder"}
    assert expected[missing] in err


def test_bad_option_values_are_errors(tiny_dir, tmp_path, capsys):
    code, err = run_cli(["--data-dir", str(tiny_dir), "--valid-fraction", "1.5"], capsys)
    assert code == 2 and "--valid-fraction" in err


def test_process_exit_has_no_traceback(tiny_dir, tmp_path):
    (tiny_dir / "ratings.csv").write_text("user_id,book_id,rating\n1,2,9\n")
    done = subprocess.run(
        [sys.executable, "preprocess.py", "--data-dir", str(tiny_dir), "--out", str(tmp_path / "p.npz")],
        cwd=paths.ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == f"error: {tiny_dir / 'ratings.csv'}: line 2: rating 9 is not from 1 to 5 (1 such row)"


def test_binary_is_a_copy_with_ones_and_with_values_shares_the_books(sample):
    from bookrbm.interactions import binary, with_values

    rows = sample.ratings[:30]
    ratings = rows.data.copy()
    ones = binary(rows)
    assert ones.dtype == np.float32 and (ones.data == 1).all()
    assert (ones.indices == rows.indices).all() and (ones.indptr == rows.indptr).all()
    assert not np.shares_memory(ones.indices, rows.indices)  # a copy: sorting one leaves the other
    assert (binary(rows.toarray()) != ones).nnz == 0  # dense input too

    doubled = with_values(rows, rows.data * 2)
    assert doubled.indices is rows.indices and doubled.shape == rows.shape
    assert np.allclose(doubled.toarray(), 2 * rows.toarray())
    assert (rows.data == ratings).all() and not (ratings == 1).all()  # the original keeps its ratings

import csv
import dataclasses
import subprocess
import sys

import numpy as np
import pytest

import recommend as recommend_cli
from bookrbm import paths, rbm
from bookrbm.recommend import book_record, fold_in, recommend, recommendation_records, top_n


def cli_args(sample_file, quick_model_file, tmp_path, *extra):
    return ["--data", str(sample_file), "--model", str(quick_model_file), "--results", str(tmp_path),
            "--plots", str(tmp_path), *extra]


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def a_user_with_to_read(sample, valid):
    has_list = np.diff(sample.to_read.indptr) > 0
    return int(sample.user_ids[np.flatnonzero(has_list & (sample.valid == valid))[0]])


def test_never_returns_a_rated_book_and_is_sorted(sample, quick_model):
    for user_id in sample.user_ids[:25]:
        found = recommend(quick_model, sample, user_id, n=50, source="all")
        rated = set(sample.ratings[sample.row_of(user_id)].indices)
        assert len(found.columns) == 50
        assert not rated & set(found.columns)
        scores = found.scores[found.columns]
        assert np.all(np.diff(scores) <= 0)
        # nothing left out scores higher than the last one taken
        rest = np.setdiff1d(np.arange(sample.n_books), np.concatenate([found.columns, list(rated)]))
        assert found.scores[rest].max() <= scores[-1]


def test_to_read_candidates_are_the_users_list(sample, quick_model, sample_csv):
    user_id = a_user_with_to_read(sample, valid=False)
    found = recommend(quick_model, sample, user_id, n=1000)
    wishes = sample_csv["to_read"]
    rated = sample_csv["ratings"].query("user_id == @user_id").book_id
    expected = set(wishes.query("user_id == @user_id").book_id) - set(rated)
    assert set(sample.book_ids[found.columns]) == expected


def test_user_id_maps_to_that_users_ratings(sample, quick_model, sample_csv):
    user_id = int(sample.user_ids[1234])
    found = recommend(quick_model, sample, user_id, source="all")
    theirs = sample_csv["ratings"].query("user_id == @user_id")
    got = dict(zip(sample.book_ids[found.reader.rated], found.reader.ratings))
    assert got == dict(zip(theirs.book_id, theirs.rating))
    visible = quick_model.visible(sample.ratings[1234])
    keep = quick_model.settings["hidden_keep"]
    expected = rbm.reconstruct(visible, *quick_model.params, hidden_keep=keep, series_units=quick_model.series_units)
    assert np.allclose(found.scores, expected[0])


def test_readers_folded_in_together_score_each_as_alone(sample, quick_model):
    """As a server folds in the readers who ask at the same moment: one pass over the
    weights, and not one bit of a reader's scores moved by who else asked."""
    rows = [0, 3, 50, 700, 2000]  # lists of different lengths, so each reader is read differently
    user_ids = [int(u) for u in sample.user_ids[rows]]
    without_series = dataclasses.replace(quick_model, series=None, series_weights=None, series_bias=None)
    for trained in (quick_model, without_series):
        together = fold_in(trained, sample, user_ids)
        for user_id, folded in zip(user_ids, together):
            (alone,) = fold_in(trained, sample, [user_id])
            assert np.array_equal(folded.scores, alone.scores) and np.array_equal(folded.hidden, alone.hidden)
        # each reader's own scores: those of the matrix product of all of them, to within rounding
        expected = trained.scores(sample.ratings[rows])
        assert np.allclose(np.stack([folded.scores for folded in together]), expected, rtol=1e-5, atol=1e-7)
    assert together[0].series is None and fold_in(quick_model, sample, user_ids[:1])[0].series is not None


def test_validation_users_are_folded_in(sample, quick_model):
    user_id = a_user_with_to_read(sample, valid=True)
    found = recommend(quick_model, sample, user_id)
    assert len(found.columns) > 0 and len(found.reader.rated) > 0


def test_top_n_breaks_ties_by_column():
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.1])
    assert list(top_n(scores, np.ones(5, bool), 3)) == [1, 0, 2]
    assert list(top_n(scores, np.array([1, 0, 0, 1, 1], bool), 10)) == [0, 3, 4]


def test_records_name_each_recommendation_and_why_whether_or_not_the_caller_keeps_them(sample, quick_model):
    records = [book_record(sample, column) for column in range(sample.n_books)]
    for user_id in sample.user_ids[:5]:
        found = recommend(quick_model, sample, int(user_id), n=8, source="all")
        made = recommendation_records(found, sample)
        assert recommendation_records(found, sample, records) == made
        assert [r["book_id"] for r in made] == sample.book_ids[found.columns].tolist()
        assert [r["rank"] for r in made] == list(range(1, 9))
        for record, column, because in zip(made, found.columns, found.because):
            assert record["title"] == sample.titles[column] and record["score"] == round(float(found.scores[column]), 6)
            assert [b["book_id"] for b in record["because_you_read"]] == sample.book_ids[because].tolist()
            assert [b["title"] for b in record["because_you_read"]] == sample.titles[because].tolist()


def test_without_explanations_every_recommendation_is_still_listed(sample, quick_model):
    user_id = int(sample.user_ids[3])
    found = recommend(quick_model, sample, user_id, n=6, source="all", explain=0)
    explained = recommend(quick_model, sample, user_id, n=6, source="all")
    assert found.columns.tolist() == explained.columns.tolist()
    records = recommendation_records(found, sample)
    assert [r["book_id"] for r in records] == sample.book_ids[found.columns].tolist()
    assert all(r["because_you_read"] == [] for r in records)
    assert any(r["because_you_read"] for r in recommendation_records(explained, sample))


def test_cli_prints_and_exports(sample, sample_file, quick_model_file, tmp_path, capsys):
    user_id = a_user_with_to_read(sample, valid=False)
    recommend_cli.main(cli_args(sample_file, quick_model_file, tmp_path, "--user", str(user_id), "--top", "5"))
    out = capsys.readouterr().out
    recs = read_rows(tmp_path / "recommendations.csv")
    read = read_rows(tmp_path / "read_books.csv")
    assert list(recs[0]) == ["rank", "book_id", "title", "authors", "score", "genres", "because_you_read"]
    assert 1 <= len(recs) <= 5
    scores = [float(r["score"]) for r in recs]
    assert scores == sorted(scores, reverse=True)
    assert recs[0]["title"][:20] in out
    assert len(read) == sample.ratings[sample.row_of(user_id)].nnz
    assert {int(r["book_id"]) for r in recs}.isdisjoint(int(r["book_id"]) for r in read)


def expect_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        recommend_cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err


def test_unknown_user_gets_a_helpful_message(sample_file, quick_model_file, tmp_path, capsys):
    err = expect_exit_2(cli_args(sample_file, quick_model_file, tmp_path, "--user", "22"), capsys)
    assert "user_id 22 is not in the processed data" in err and "for example" in err


def test_user_without_to_read_gets_all_books_ranked_and_is_told(
    sample, sample_file, quick_model_file, tmp_path, capsys
):
    no_list = int(sample.user_ids[np.flatnonzero(np.diff(sample.to_read.indptr) == 0)[0]])
    recommend_cli.main(cli_args(sample_file, quick_model_file, tmp_path, "--user", str(no_list)))
    out = capsys.readouterr().out
    assert f"from all books not yet read (user {no_list} has no unread books on a to-read list)" in out
    assert len(read_rows(tmp_path / "recommendations.csv")) == 10
    # asking for the to-read list explicitly is an error that points to --from all
    err = expect_exit_2(cli_args(sample_file, quick_model_file, tmp_path, "--user", str(no_list), "--from", "to_read"),
                        capsys)
    assert "--from all" in err


def test_missing_model_is_a_clear_error(sample_file, tmp_path, capsys):
    err = expect_exit_2(["--data", str(sample_file), "--model", str(tmp_path / "none.npz"), "--user", "1"], capsys)
    assert "none.npz: no such file; run train_rbm.py first" in err


def test_recommend_runs_without_tensorflow(sample, sample_file, quick_model_file, tmp_path):
    user_id = a_user_with_to_read(sample, valid=False)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "recommend.py", "--user", str(user_id),
         *cli_args(sample_file, quick_model_file, tmp_path)],
        cwd=paths.ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-500:]
    imported = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if "import time" in line]
    assert "numpy" in imported
    assert not [name for name in imported if name.startswith("tensorflow")]

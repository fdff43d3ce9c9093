import csv
import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

import evaluate as evaluate_cli
from bookrbm import baselines, comparison, evaluation, interactions


def test_metrics_against_a_hand_computed_example():
    # user 0 hid books 1 (rated 4) and 3 (rated 5); user 1 hid book 0 (rated 1)
    hidden = sp.csr_matrix(np.array([[0, 0.8, 0, 1.0, 0], [0.2, 0, 0, 0, 0]]))
    ranked = np.array([[1, 0, 3], [2, 4, 1]])
    got = evaluation.ranking_metrics(ranked, hidden, n_books=5)
    dcg0 = 1 + 1 / np.log2(4)  # hits at ranks 1 and 3
    idcg0 = 1 + 1 / np.log2(3)  # two relevant books
    assert got["precision"] == pytest.approx((2 / 3 + 0) / 2)
    assert got["recall"] == pytest.approx((2 / 2 + 0) / 2)
    assert got["ndcg"] == pytest.approx((dcg0 / idcg0 + 0) / 2)
    assert got["ndcg_liked"] == pytest.approx(dcg0 / idcg0)  # user 1 liked nothing: left out
    assert got["map"] == pytest.approx(((1 / 1 + 2 / 3) / 2 + 0) / 2)
    assert got["hit_rate"] == pytest.approx(0.5)
    assert got["coverage"] == pytest.approx(5 / 5)


def test_ndcg_by_user_is_each_users_share_of_the_mean():
    hidden = sp.csr_matrix(np.array([[0, 0.8, 0, 1.0, 0], [0.2, 0, 0, 0, 0], [0, 0, 0, 0, 0]]))
    ranked = np.array([[1, 0, 3], [2, 4, 1], [0, 1, 2]])
    per_user = np.array(evaluation.ranking_metrics(ranked, hidden, n_books=5, by_user=True)["ndcg_by_user"])
    # user 2 hid nothing: left out, as from the mean
    assert per_user.tolist() == pytest.approx([(1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)), 0.0])
    assert per_user.mean() == pytest.approx(evaluation.ranking_metrics(ranked, hidden, n_books=5)["ndcg"])


def test_paired_gap_by_hand():
    # one user of four is 1 ahead: the mean lead is 1/4, and a resample of four users can
    # only hold that user 0 to 4 times
    gap, low, high = evaluation.paired_gap([1, 0, 1, 0], [0, 0, 1, 0], seed=3)
    assert gap == pytest.approx(0.25)
    assert 0 <= low <= 0.25 <= high <= 1 and low < high
    assert (gap, low, high) == evaluation.paired_gap([1, 0, 1, 0], [0, 0, 1, 0], seed=3)  # same seed, same interval
    assert evaluation.paired_gap([0.5, 0.2], [0.5, 0.2]) == (0.0, 0.0, 0.0)
    # a steady lead on many users is sure; the same mean on a few noisy ones is not
    steady = evaluation.paired_gap(np.full(400, 0.6), np.full(400, 0.5))
    noisy = evaluation.paired_gap([1.0, 0.0, 0.9, 0.0], [0.0, 0.6, 0.0, 0.9])
    assert steady[1] > 0 and noisy[1] < 0 < noisy[2]


def test_ndcg_liked_counts_only_ratings_of_four_or_more():
    hidden = sp.csr_matrix(np.array([[0.6, 0.8, 0, 0]]))  # book 0 rated 3, book 1 rated 4
    got = evaluation.ranking_metrics(np.array([[0, 1]]), hidden, n_books=4)
    assert got["ndcg"] == pytest.approx(1.0)
    assert got["ndcg_liked"] == pytest.approx((1 / np.log2(3)) / 1.0)


def test_map_and_precision_with_fewer_hidden_than_k():
    hidden = sp.csr_matrix(np.array([[0, 0, 1.0, 0, 0, 0]]))
    got = evaluation.ranking_metrics(np.array([[0, 2, 1]]), hidden, n_books=6)
    assert got["precision"] == pytest.approx(1 / 3)
    assert got["map"] == pytest.approx(1 / 2)  # one relevant book, found at rank 2
    assert got["recall"] == 1.0 and got["coverage"] == pytest.approx(3 / 6)


def test_top_k_excludes_shown_and_breaks_ties_by_column():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.7]])
    shown = sp.csr_matrix(np.array([[0, 0, 0, 0, 1.0]]))
    assert evaluation.top_k(scores, shown, 3).tolist() == [[1, 0, 2]]


def test_hold_out_splits_each_user_seeded(sample):
    ratings = sample.ratings[:300]
    first = evaluation.hold_out(ratings, seed=3)
    again = evaluation.hold_out(ratings, seed=3)
    other = evaluation.hold_out(ratings, seed=4)
    assert (first.shown + first.hidden != ratings).nnz == 0
    assert first.shown.multiply(first.hidden).nnz == 0
    counts, hidden = np.diff(ratings.indptr), np.diff(first.hidden.indptr)
    assert np.array_equal(hidden, np.maximum(np.rint(0.2 * counts), 1))
    assert (first.hidden != again.hidden).nnz == 0
    assert (first.hidden != other.hidden).nnz > 0


def test_hold_out_can_show_only_a_few_books(sample):
    ratings = sample.ratings[:300]
    few = evaluation.hold_out(ratings, seed=3, shown=3)
    assert (few.shown + few.hidden != ratings).nnz == 0 and few.shown.multiply(few.hidden).nnz == 0
    counts, shown = np.diff(ratings.indptr), np.diff(few.shown.indptr)
    assert np.array_equal(shown, np.clip(3, 1, counts - 1))  # 3 each, and at least one hidden
    assert (few.shown != evaluation.hold_out(ratings, seed=3, shown=3).shown).nnz == 0


def test_tuning_holdout_can_show_a_few_books_of_the_tuning_readers_only(sample):
    _, tuning_rows, _ = evaluation.user_sets(sample)
    few = evaluation.tuning_holdout(sample, tuning_rows, shown=5)
    usual = evaluation.tuning_holdout(sample, tuning_rows)
    ratings = sample.ratings[tuning_rows]
    assert (few.shown + few.hidden != ratings).nnz == 0 and (usual.shown + usual.hidden != ratings).nnz == 0
    counts = np.diff(ratings.indptr)
    assert np.array_equal(np.diff(few.shown.indptr), np.clip(5, 1, counts - 1))
    assert (usual.shown != evaluation.tuning_holdout(sample, tuning_rows).shown).nnz == 0


class InputEcho:
    """A 'model' that scores each book by its value in the input it was handed, and keeps that input."""

    def __init__(self):
        self.seen = []

    def scores(self, user_items):
        self.seen.append(user_items.copy())
        return user_items.toarray()


def leak_case():
    # 6 users who rated only the last 10 of 30 books, so an honest ranking of unrated
    # books (all scored 0, ties by column) starts at column 0 and finds nothing.
    rng = np.random.default_rng(0)
    dense = np.zeros((6, 30))
    dense[:, 20:] = rng.integers(1, 6, (6, 10)) / 5
    return sp.csr_matrix(dense)


def test_hidden_ratings_never_reach_the_model():
    holdout = evaluation.hold_out(leak_case(), seed=0)
    echo = InputEcho()
    honest = evaluation.evaluate(echo, holdout, k=5)
    assert sp.vstack(echo.seen).multiply(holdout.hidden).nnz == 0
    assert honest["precision"] == 0.0

    # The leak a well-known RBM recommender had: reconstruct from the full ratings, then
    # score against the hidden ones. The same case must show it, or the test proves nothing.
    def leaky_evaluate(model, holdout, k):
        scores = model.scores(holdout.shown + holdout.hidden)
        return evaluation.ranking_metrics(evaluation.top_k(scores, holdout.shown, k), holdout.hidden, 30)

    assert leaky_evaluate(InputEcho(), holdout, k=5)["precision"] > 0.3


def pairs_matrix():
    """Readers of books {0, 1} and readers of books {2, 3}; book 4 is read by everyone's neighbour."""
    rows = [[1, 1, 0, 0, 0]] * 20 + [[0, 0, 1, 1, 0]] * 20 + [[1, 1, 0, 0, 1]] * 3
    return sp.csr_matrix(np.array(rows, dtype=np.float32) * 0.8)


@pytest.mark.parametrize(
    "recommender",
    [baselines.ItemKNN(neighbours=2), baselines.EASE(l2=1.0), baselines.ALS(factors=4, regularization=0.1, iterations=20)],
    ids=["item-knn", "ease", "als"],
)
def test_baselines_recommend_the_companion_book(recommender):
    recommender.fit(pairs_matrix())
    reader_of_0 = sp.csr_matrix(np.array([[0.8, 0, 0, 0, 0]], dtype=np.float32))
    reader_of_3 = sp.csr_matrix(np.array([[0, 0, 0, 0.6, 0]], dtype=np.float32))
    assert evaluation.top_k(recommender.scores(reader_of_0), reader_of_0, 1)[0, 0] == 1
    assert evaluation.top_k(recommender.scores(reader_of_3), reader_of_3, 1)[0, 0] == 2


def test_popularity_counts_readers():
    model = baselines.Popularity().fit(pairs_matrix())
    assert model.counts.tolist() == [23, 23, 20, 20, 3]
    assert evaluation.top_k(model.scores(sp.csr_matrix((1, 5))), sp.csr_matrix((1, 5)), 3).tolist() == [[0, 1, 2]]


def test_item_knn_cosine_values():
    model = baselines.ItemKNN(neighbours=10).fit(pairs_matrix())
    # books 0 and 4: 3 common readers, 23 and 3 readers
    assert model.similarity[0, 4] == pytest.approx(3 / np.sqrt(23 * 3))
    assert model.similarity[0, 0] == 0 and model.similarity[0, 2] == 0


SMALL_GRIDS = {
    "popularity": comparison.GRIDS["popularity"],
    "ease": (baselines.EASE, {"l2": [10.0, 100.0]}),
}


def test_comparison_is_deterministic_and_tunes_on_tuning_users(popular_slice):
    from bookrbm import train

    rbm = train.train(popular_slice, hidden=8, epochs=1, max_batches=3, progress=False, log=lambda m: None)

    def run():
        return comparison.compare(popular_slice, {"rbm": rbm}, names=("popularity", "ease"), grids=SMALL_GRIDS,
                                  progress=False, log=lambda m: None)

    first = run()
    assert first == run()
    assert [row["model"] for row in first] == ["popularity", "ease", "rbm"]
    popularity, ease, rbm_row = first
    assert len(rbm_row["ndcg_by_user"]) > 0 and np.mean(rbm_row["ndcg_by_user"]) == pytest.approx(rbm_row["ndcg"])
    leads = comparison.gaps(first, "ease")
    assert [gap["model"] for gap in leads] == ["popularity", "rbm"]
    assert leads[0]["difference"] == pytest.approx(ease["ndcg"] - popularity["ndcg"])
    assert leads[0]["low"] <= leads[0]["difference"] <= leads[0]["high"]
    assert ease["settings"]["l2"] in (10.0, 100.0)
    assert ease["ndcg"] > popularity["ndcg"]  # a real model beats the same list for everyone
    assert 0 < popularity["ndcg"] < 1 and popularity["coverage"] >= 10 / 400


def test_user_sets_are_disjoint_and_cover(sample):
    fit, tuning, test = evaluation.user_sets(sample)
    assert not set(fit) & set(tuning) and not set(fit) & set(test) and not set(tuning) & set(test)
    assert len(fit) + len(tuning) + len(test) == sample.n_users
    assert set(test) == set(sample.valid_rows)
    assert len(tuning) == round(0.1 * len(sample.train_rows))


def test_cli_prints_table_and_writes_files(sample_file, quick_model_file, tmp_path, capsys):
    out, plot, gaps = tmp_path / "evaluation.csv", tmp_path / "evaluation.png", tmp_path / "gaps.csv"
    evaluate_cli.main(["--data", str(sample_file), "--model", f"tiny={quick_model_file}", "--baselines", "popularity",
                       "--out", str(out), "--plot", str(plot), "--gaps", str(gaps), "--quiet"])
    printed = capsys.readouterr().out
    assert "popularity" in printed and "tiny" in printed
    assert "NDCG@10 of tiny minus each model's" in printed  # no model named rbm: the last --model
    gap_lines = gaps.read_text().splitlines()
    assert gap_lines[0] == "model,reference,difference,low,high,readers" and gap_lines[1].startswith("popularity,tiny,")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("model,tuning_ndcg,precision,recall,ndcg,ndcg_liked,map,hit_rate,coverage")
    assert len(lines) == 3
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cli_rejects_unknown_baseline(sample_file, quick_model_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli.main(["--data", str(sample_file), "--model", f"x={quick_model_file}", "--baselines", "svd"])
    assert exit_info.value.code == 2 and "unknown baseline svd" in capsys.readouterr().err


def test_cli_rejects_k_beyond_the_catalogue(sample_file, quick_model_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli.main(["--data", str(sample_file), "--model", f"x={quick_model_file}", "--k", "100000"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--k must be at most the number of books" in err and "100000" in err


def test_cli_says_which_user_set_is_empty(tmp_path, quick_model_file, sample, capsys):
    # every user in the training split: no test users to report on
    no_test = dataclasses.replace(sample, valid=np.zeros(sample.n_users, dtype=bool))
    path = tmp_path / "no_test.npz"
    interactions.save(str(path), no_test)
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli.main(["--data", str(path), "--model", f"x={quick_model_file}", "--quiet"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "no test users" in err and str(path) in err


def test_cli_rejects_an_unknown_reference(sample_file, quick_model_file, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli.main(["--data", str(sample_file), "--model", f"x={quick_model_file}", "--baselines", "popularity",
                           "--reference", "svd"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--reference svd is not among the evaluated models (popularity, x)" in err


def test_cli_shown_scores_readers_who_list_a_few_books_and_names_its_outputs(sample_file, quick_model_file, tmp_path,
                                                                           capsys, monkeypatch):
    monkeypatch.setattr(evaluate_cli.paths, "RESULTS", str(tmp_path / "results"))
    monkeypatch.setattr(evaluate_cli.paths, "PLOTS", str(tmp_path / "plots"))
    evaluate_cli.main(["--data", str(sample_file), "--model", f"tiny={quick_model_file}", "--baselines", "popularity",
                       "--shown", "3", "--quiet"])
    assert "each test reader shows 3 of their books" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["evaluation_gaps_shown3.csv", "evaluation_shown3.csv"]
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["evaluation_shown3.png"]
    with open(tmp_path / "results" / "evaluation_shown3.csv") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    # 3 books shown, the rest hidden: many hidden books per reader, so recall is low and precision high
    assert float(rows["popularity"]["precision"]) > 0.2 and float(rows["popularity"]["recall"]) < 0.1
    with pytest.raises(SystemExit) as exit_info:
        evaluate_cli.main(["--data", str(sample_file), "--model", f"tiny={quick_model_file}", "--shown", "0"])
    assert exit_info.value.code == 2 and "--shown must be at least 1, not 0" in capsys.readouterr().err


def test_printed_tables_keep_their_columns_with_long_model_names():
    metrics = {m: 0.5 for m in evaluate_cli.METRICS}
    rows = [{"model": "rbm", "tuning_ndcg": 0.4, **metrics}, {"model": "complete-lists-model", "tuning_ndcg": 0.3, **metrics}]
    lines = evaluate_cli.format_table(rows, 10).splitlines()[1:]
    assert len({line.index("tuning") if "tuning" in line else line.index("0.") for line in lines}) == 1
    gaps = [{"model": m, "reference": "rbm", "readers": 9, "difference": 0.1, "low": 0.0, "high": 0.2}
            for m in ("ease", "complete-lists-model")]
    assert len({line.index("+0.1000") for line in evaluate_cli.format_gaps(gaps, 10).splitlines()[1:]}) == 1

"""Any reader: Goodreads exports, ratings files, matching, exclusions, explanations, genres."""
import csv
import dataclasses
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import recommend as recommend_cli
from bookrbm import genres, matching, reader
from bookrbm.errors import InputError
from bookrbm.model import Model
from bookrbm.recommend import genre_profile, recommend

COLUMNS_24 = (
    "Book Id,Title,Author,Author l-f,Additional Authors,ISBN,ISBN13,My Rating,Average Rating,Publisher,"
    "Binding,Number of Pages,Year Published,Original Publication Year,Date Read,Date Added,Bookshelves,"
    "Bookshelves with positions,Exclusive Shelf,My Review,Spoiler,Private Notes,Read Count,Owned Copies"
).split(",")
COLUMNS_31 = COLUMNS_24[:23] + [
    "Recommended For", "Recommended By", "Owned Copies", "Original Purchase Date",
    "Original Purchase Location", "Condition", "Condition Description", "BCID",
]
REVIEW = '<b>Loved it.</b><br/>Second line,\nafter a real line break, with "quotes".'
NOBODY = 999999991  # a Goodreads id that no goodbooks book has


@pytest.fixture(scope="module")
def picks(sample):
    """Columns of the sample chosen so that each one can only match by the key named."""
    books = sample.catalogue
    gr = set(books.goodreads_ids.tolist())
    has_isbn = [c for c in range(sample.n_books) if len(books.isbns[c]) == 10 and books.isbns[c][:9].isdigit()]
    float_only = [c for c in range(sample.n_books) if not books.isbns[c] and "e+12" in books.isbn13s[c]]
    best = [c for c in range(sample.n_books) if books.best_ids[c] != books.goodreads_ids[c] and books.best_ids[c] not in gr]
    return {
        "book_id": 0,  # The Hunger Games
        "title+author": 1,  # Harry Potter and the Sorcerer's Stone
        "best_book_id": best[0],
        "isbn13": has_isbn[10],
        "isbn13 (float)": float_only[0],
        "isbn": has_isbn[11],
        "unrated": 2,
        "reading": 3,
        "to_read": [4, 5, 6],
    }


def export_rows(sample, picks):
    """(row dict, expected key) pairs for a realistic export."""
    books = sample.catalogue

    def row(col=None, **values):
        base = {name: "" for name in COLUMNS_31}
        base.update({"Book Id": NOBODY, "My Rating": 0, "Average Rating": "4.1", "Exclusive Shelf": "read",
                     "ISBN": '=""', "ISBN13": '=""', "Read Count": 1, "Owned Copies": 0})
        if col is not None:
            base.update({"Title": books.edition_titles[col], "Author": sample.authors[col].split(",")[0]})
        base.update(values)
        return base

    p = picks
    exact13 = matching.isbn13_from_isbn10(books.isbns[p["isbn13"]])
    rounded13 = str(int(float(books.isbn13s[p["isbn13 (float)"]])) + 3)  # its lost last digit
    return [
        (row(p["book_id"], **{"Book Id": books.goodreads_ids[p["book_id"]], "My Rating": 5, "My Review": REVIEW}), "book_id"),
        (row(p["best_book_id"], **{"Book Id": books.best_ids[p["best_book_id"]], "My Rating": 4, "Title": "x"}), "best_book_id"),
        (row(p["isbn13"], **{"ISBN13": f'="{exact13}"', "My Rating": 2, "Title": "y"}), "isbn13"),
        (row(p["isbn13 (float)"], **{"ISBN13": f'="{rounded13}"', "My Rating": 3, "Title": "z"}), "isbn13"),
        (row(p["isbn"], **{"ISBN": f'="{books.isbns[p["isbn"]]}"', "My Rating": 4, "Title": "w"}), "isbn"),
        (row(None, **{"Title": "Harry Potter and the Sorcerer's Stone (Harry Potter, #1)", "Author": "J. K. Rowling",
                      "My Rating": 5}), "title+author"),
        (row(p["unrated"], **{"Book Id": books.goodreads_ids[p["unrated"]]}), "book_id"),
        (row(p["reading"], **{"Book Id": books.goodreads_ids[p["reading"]], "Exclusive Shelf": "currently-reading"}), "book_id"),
        *[(row(c, **{"Book Id": books.goodreads_ids[c], "Exclusive Shelf": "to-read"}), "book_id") for c in p["to_read"]],
        (row(None, **{"Title": "Notes From My Own Garden", "Author": "Nobody Known", "My Rating": 4,
                      "My Review": "<i>not</i> in goodbooks<br/>\nat all"}), None),
    ]


def write_export(path, rows, columns, raw_isbn=False):
    """Write like Goodreads: every field quoted where needed; ``raw_isbn`` writes ="..." bare."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(name, "") for name in columns])
    if raw_isbn:  # the other form seen in the wild: ="0441013597" not quoted for CSV
        text = path.read_text(encoding="utf-8").replace('"=""', '="').replace('"""', '"')
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def export(sample, picks, tmp_path_factory):
    rows = export_rows(sample, picks)
    path = write_export(tmp_path_factory.mktemp("export") / "goodreads_library_export.csv", [r for r, _ in rows], COLUMNS_24)
    return path, [key for _, key in rows]


def test_export_rows_match_by_each_key(sample, picks, export):
    path, keys = export
    found = reader.from_goodreads(sample, path)
    assert found.matched == keys  # one record per book, despite the line breaks in reviews
    assert [row["title"] for row in found.unmatched] == ["Notes From My Own Garden"]
    p = picks
    rated = dict(zip(found.rated.tolist(), found.ratings.tolist()))
    assert rated == {p["book_id"]: 5, p["best_book_id"]: 4, p["isbn13"]: 2, p["isbn13 (float)"]: 3, p["isbn"]: 4,
                     p["title+author"]: 5}
    assert found.unrated.tolist() == [p["unrated"]]
    assert found.shelved.tolist() == [p["reading"]]
    assert found.to_read.tolist() == p["to_read"]
    assert found.repeats == 0


def test_a_book_listed_twice_keeps_its_highest_rating_and_is_counted(sample, tmp_path):
    path = tmp_path / "twice.csv"
    gr = sample.catalogue.goodreads_ids
    path.write_text(f"Book Id,Title,My Rating,Exclusive Shelf\n{gr[0]},a,3,read\n{gr[0]},b,5,read\n{gr[1]},c,0,to-read\n"
                    f"{gr[1]},c,0,read\n")
    found = reader.from_goodreads(sample, path)
    assert found.rated.tolist() == [0] and found.ratings.tolist() == [5]
    assert found.unrated.tolist() == [1] and found.to_read.tolist() == [] and found.repeats == 2


@pytest.mark.parametrize("encoding", ["cp1252", "utf-16", "utf-8-sig"])
def test_an_export_saved_again_by_excel_reads_the_same(sample, picks, export, tmp_path, encoding):
    # Excel on Windows writes CSV in Windows-1252 (or UTF-16 as "Unicode text", or UTF-8 with a
    # byte-order mark); the titles must come back as they were, accents and curly quotes too
    text = export[0].read_text(encoding="utf-8").replace("Notes From My Own Garden", "Brontë’s “Garden” Notes")
    again = tmp_path / "again.csv"
    again.write_bytes(text.encode(encoding))
    a, b = reader.from_goodreads(sample, export[0]), reader.from_goodreads(sample, again)
    assert a.matched == b.matched
    for name in ("rated", "ratings", "unrated", "to_read", "shelved"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist()
    assert [row["title"] for row in b.unmatched] == ["Brontë’s “Garden” Notes"]


def test_a_file_in_no_encoding_we_read_names_the_byte(sample, tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(b"Book Id,Title\n1,\x81\x8d\n")  # bytes that neither UTF-8 nor Windows-1252 has
    with pytest.raises(InputError, match=r"odd.csv: cannot be read as CSV \('utf-8' codec can't decode byte 0x81"):
        reader.from_goodreads(sample, path)


def test_older_31_column_export_with_bare_isbns_reads_the_same(sample, picks, export, tmp_path):
    rows = export_rows(sample, picks)
    old = write_export(tmp_path / "old.csv", [r for r, _ in rows], COLUMNS_31, raw_isbn=True)
    assert '="' in old.read_text() and '"=""' not in old.read_text()
    a, b = reader.from_goodreads(sample, export[0]), reader.from_goodreads(sample, old)
    assert a.matched == b.matched
    for name in ("rated", "ratings", "unrated", "to_read", "shelved"):
        assert getattr(a, name).tolist() == getattr(b, name).tolist()


def test_no_read_or_shelved_book_is_recommended(sample, quick_model, picks, export):
    found = reader.from_goodreads(sample, export[0])
    everything = recommend(quick_model, sample, found, n=sample.n_books, source="all")
    seen = set(found.read) | {picks["reading"]}
    assert not seen & set(everything.columns)
    assert len(everything.columns) == sample.n_books - len(seen)
    wanted = recommend(quick_model, sample, found, n=10)
    assert set(wanted.columns) == set(picks["to_read"])


def test_another_edition_of_a_read_book_is_never_recommended(sample, quick_model, picks, export):
    found = reader.from_goodreads(sample, export[0])
    work_ids = sample.catalogue.work_ids.copy()
    work_ids[picks["to_read"][0]] = work_ids[picks["book_id"]]  # make a to-read book an edition of a read one
    editions = dataclasses.replace(sample, catalogue=dataclasses.replace(sample.catalogue, work_ids=work_ids))
    assert picks["to_read"][0] in recommend(quick_model, sample, found, n=10).columns
    assert picks["to_read"][0] not in recommend(quick_model, editions, found, n=10).columns
    assert picks["to_read"][0] not in recommend(quick_model, editions, found, n=sample.n_books, source="all").columns


def test_read_but_unrated_enters_with_the_readers_mean_rating(sample, picks, export):
    found = reader.from_goodreads(sample, export[0])
    visible = found.visible(sample.n_books).toarray()[0]
    assert visible[picks["unrated"]] == pytest.approx(found.ratings.mean() / 5)
    assert visible[picks["book_id"]] == pytest.approx(1.0) and visible[picks["reading"]] == 0
    assert visible[picks["to_read"]].sum() == 0
    nothing_rated = reader.Reader("x", rated=np.zeros(0, np.int64), ratings=np.zeros(0, np.int64), unrated=np.array([7]))
    assert nothing_rated.visible(sample.n_books).toarray()[0, 7] == pytest.approx(0.8)


def test_cli_goodreads_prints_matches_and_writes_everything(sample_file, quick_model_file, export, tmp_path, capsys):
    recommend_cli.main(["--goodreads", str(export[0]), "--data", str(sample_file), "--model", str(quick_model_file),
                        "--results", str(tmp_path), "--plots", str(tmp_path), "--from", "all"])
    out = capsys.readouterr().out
    assert "matched 11 of 12 rows" in out
    assert "6 by book_id, 1 by best_book_id, 2 by isbn13, 1 by isbn, 1 by title+author" in out
    unmatched = pd.read_csv(tmp_path / "unmatched.csv")
    assert unmatched.title.tolist() == ["Notes From My Own Garden"] and unmatched.row.tolist() == [12]
    recs = pd.read_csv(tmp_path / "recommendations.csv", keep_default_na=False)
    assert len(recs) == 10 and recs.genres.str.len().gt(0).all()
    assert recs.because_you_read.str.len().gt(0).any()
    chart = ET.parse(tmp_path / "genres.svg").getroot()
    assert len(chart.findall("{http://www.w3.org/2000/svg}rect[@class='bar']")) >= 4
    assert "genres (each book counted under its main genre)" in out and "because you read:" in out


def expect_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        recommend_cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "content, message",
    [
        (b"Title,Author,My Rating\nDune,Frank Herbert,5\n", "missing column 'Book Id'"),
        (b"Book Id,Author,My Rating\n234225,Frank Herbert,5\n", "missing column 'Title'"),
        (b"", "file is empty"),
        (bytes(range(256)) * 8, "binary data"),
        (b"Book Id,Title,My Rating\n234225,Dune,7\n", "row 1 ('Dune'): My Rating is '7'"),
        (b"Book Id,Title,My Rating\nabc,Dune,5\n", "row 1: Book Id is 'abc'"),
    ],
)
def test_malformed_export_is_one_line_and_exit_2(sample_file, quick_model_file, tmp_path, capsys, content, message):
    path = tmp_path / "export.csv"
    path.write_bytes(content)
    (tmp_path / "recommendations.csv").write_text("kept\n")
    err = expect_exit_2(["--goodreads", str(path), "--data", str(sample_file), "--model", str(quick_model_file),
                         "--results", str(tmp_path), "--plots", str(tmp_path)], capsys)
    assert message in err and "export.csv" in err
    assert (tmp_path / "recommendations.csv").read_text() == "kept\n"


def test_ratings_file_by_book_id_and_by_title(sample, sample_file, quick_model_file, tmp_path, capsys):
    by_id = tmp_path / "mine.csv"
    by_id.write_text("book_id,rating\n1,5\n2,4\n10001,3\n")
    found = reader.from_ratings(sample, by_id)
    assert sample.book_ids[found.rated].tolist() == [1, 2] and found.ratings.tolist() == [5, 4]
    assert found.unmatched == [{"row": 3, "book_id": 10001, "title": "", "author": "", "rating": 3}]
    by_title = tmp_path / "titles.csv"
    by_title.write_text('title,rating\n"the hunger games",5\nMockingjay (The Hunger Games #3),4\nNo Such Book Here,2\n')
    found = reader.from_ratings(sample, by_title)
    assert sample.titles[found.rated].tolist() == ["The Hunger Games", "Mockingjay"]
    recommend_cli.main(["--ratings", str(by_title), "--data", str(sample_file), "--model", str(quick_model_file),
                        "--results", str(tmp_path), "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    assert "matched 2 of 3 rows" in out and "from all books not yet read" in out
    assert pd.read_csv(tmp_path / "unmatched.csv").title.tolist() == ["No Such Book Here"]
    bad = tmp_path / "bad.csv"
    bad.write_text("book_id,rating\n1,6\n")
    assert "bad.csv: line 2: rating 6 is not from 1 to 5" in expect_exit_2(
        ["--ratings", str(bad), "--data", str(sample_file), "--model", str(quick_model_file)], capsys)


def test_matching_helpers():
    assert matching.isbn13_from_isbn10("0441013597") == "9780441013593"
    assert matching.isbn13_from_isbn10("043965548X") == "9780439655484"
    assert matching.normal_title("The Hunger Games (The Hunger Games, #1)") == "hunger games"
    assert matching.normal_title("Les Misérables") == matching.normal_title("les miserables")
    assert matching.normal_author("J. K. Rowling, Mary GrandPré") == matching.normal_author("J.K. Rowling")


def test_genres_skip_shelves_that_are_not_genres_and_merge_synonyms():
    shelves = pd.DataFrame(
        [(1, "to-read", 900), (1, "favorites", 500), (1, "fiction", 400), (1, "sci-fi", 50), (1, "scifi", 40),
         (1, "science-fiction", 30), (1, "fantasy", 100), (1, "owned", 80), (1, "books-i-own", 70),
         (2, "non-fiction", 10), (2, "kindle", 90)],
        columns=["goodreads_book_id", "tag_name", "count"],
    )
    assert genres.genres_by_book(shelves) == {1: ["science fiction", "fantasy", "fiction"], 2: ["non-fiction"]}


def test_genre_profile_sums_to_one(sample, quick_model):
    found = recommend(quick_model, sample, int(sample.user_ids[0]), n=25, source="all")
    names, shares = genre_profile(found, sample, top=4)
    assert len(names) <= 5
    for group in ("read", "recommended"):
        assert shares[group].sum() == pytest.approx(1.0)
    main = [genres.primary(sample.catalogue.genres[c]) for c in found.reader.read]
    first = names[0]
    assert shares["read"][0] == pytest.approx(main.count(first) / len(main))


def test_because_names_the_book_whose_weights_agree():
    # books 0 and 1 load on hidden unit 0, book 2 against it; book 3 is the one to explain
    weights = np.array([[3.0, 0.0], [1.0, 0.0], [-3.0, 0.0], [2.0, 0.0]], dtype=np.float32)
    toy = Model(weights, np.zeros(4, np.float32), np.zeros(2, np.float32), np.arange(1, 5), settings={"input": "rating"})
    visible = sp.csr_matrix(np.array([[1.0, 1.0, 1.0, 0.0]], dtype=np.float32))
    from bookrbm import explain

    assert explain.because(toy, visible, [3], [0, 1, 2])[0].tolist() == [0, 1]
    push = explain.contributions(toy, visible, [3], [0, 1, 2])[0]
    assert push[0] > push[1] > 0 > push[2]


def test_because_ranks_each_recommendation_by_its_largest_pushes_ties_to_the_lower_column(quick_model, sample):
    from bookrbm import explain

    reader_ = reader.from_user(sample, int(sample.user_ids[5]))
    visible = quick_model.visible(reader_.visible(sample.n_books))
    recommended = np.arange(20, 30)
    shuffled = np.random.default_rng(0).permutation(reader_.read)  # any order in, the same answer out
    got = explain.because(quick_model, visible, recommended, shuffled, top=3)
    push = explain.contributions(quick_model, visible, recommended, reader_.read)
    for row, books in zip(push, got):
        best = sorted(zip(-row, reader_.read))[:3]  # largest first, then the lower column
        assert books.tolist() == [int(c) for minus, c in best if minus < 0]
    # a tie: two read books with identical weights push a recommendation equally
    weights = np.array([[1.0], [1.0], [2.0]], dtype=np.float32)
    toy = Model(weights, np.zeros(3, np.float32), np.zeros(1, np.float32), np.arange(1, 4), settings={"input": "rating"})
    both = sp.csr_matrix(np.array([[1.0, 1.0, 0.0]], dtype=np.float32))
    assert explain.because(toy, both, [2], [1, 0], top=1)[0].tolist() == [0]


def test_largest_picks_what_a_stable_sort_puts_first():
    from bookrbm.explain import _largest

    rng = np.random.default_rng(3)
    values = rng.integers(-3, 4, size=(40, 9)).astype(np.float32)  # many ties, some rows all ≤ 0
    for top in (1, 3, 9, 12):
        positions, found = _largest(values, top)
        expected = np.argsort(-values, axis=1, kind="stable")[:, :top]
        assert positions.tolist() == expected.tolist()
        assert found.tolist() == np.take_along_axis(values, expected, axis=1).tolist()
    assert values.min() == -3  # the input is left as it was


def test_bundled_example_export(sample):
    from bookrbm import paths

    found = reader.from_goodreads(sample, f"{paths.BUNDLED_DATA}/example_goodreads_export.csv")
    assert sum(k == "book_id" for k in found.matched) == 21
    assert [row["title"] for row in found.unmatched] == ["Piranesi"]
    assert (len(found.rated), len(found.unrated), len(found.to_read), len(found.shelved)) == (11, 1, 8, 1)


def test_a_file_with_no_known_book_says_so(sample_file, quick_model_file, tmp_path, capsys):
    path = tmp_path / "strangers.csv"
    path.write_text("Book Id,Title,Author,My Rating\n999999991,Piranesi,Susanna Clarke,5\n999999992,Klara and the Sun,Kazuo Ishiguro,4\n")
    err = expect_exit_2(["--goodreads", str(path), "--data", str(sample_file), "--model", str(quick_model_file),
                         "--results", str(tmp_path), "--plots", str(tmp_path)], capsys)
    assert "strangers.csv: none of its 2 rows is a goodbooks-10k book" in err
    assert pd.read_csv(tmp_path / "unmatched.csv").title.tolist() == ["Piranesi", "Klara and the Sun"]
    # known books, but only on the to-read shelf: nothing read enters the model either
    path.write_text("Book Id,Title,Author,My Rating,Exclusive Shelf\n2657,To Kill a Mockingbird,Harper Lee,0,to-read\n")
    err = expect_exit_2(["--goodreads", str(path), "--data", str(sample_file), "--model", str(quick_model_file),
                         "--results", str(tmp_path), "--plots", str(tmp_path)], capsys)
    assert err.strip().endswith("strangers.csv: none of its 1 matched rows is a read book, so there is nothing to recommend from")


def test_read_is_every_read_book_once_in_order():
    assert reader.Reader("a", rated=np.array([7, 2]), ratings=np.array([4, 5]), unrated=np.array([2, 9])).read.tolist() == [2, 7, 9]
    assert reader.Reader("b", rated=np.array([2, 7]), ratings=np.array([4, 5])).read.tolist() == [2, 7]
    assert reader.Reader("c", rated=np.array([2, 7]), ratings=np.array([4, 5]), unrated=np.array([1])).read.tolist() == [1, 2, 7]


def test_a_reader_made_of_lists_has_the_same_visible_vector():
    as_arrays = reader.Reader("a", rated=np.array([7, 2]), ratings=np.array([4, 5])).visible(10)
    as_lists = reader.Reader("a", rated=[7, 2], ratings=[4, 5]).visible(10)
    assert as_lists.toarray().tolist() == as_arrays.toarray().tolist()
    assert as_arrays.toarray()[0].tolist() == np.float32([0, 0, 1, 0, 0, 0, 0, 0.8, 0, 0]).tolist()


def test_a_reader_of_lists_with_unrated_books_fills_them_with_its_mean_rating():
    as_lists = reader.Reader("a", rated=[7, 2], ratings=[4, 5], unrated=[3]).visible(10)
    assert as_lists.toarray()[0].tolist() == np.float32([0, 0, 1, 0.9, 0, 0, 0, 0.8, 0, 0]).tolist()

"""The JSON API, through FastAPI's test client, on the bundled sample and a quick model."""
import os
import warnings

import numpy as np
import pytest

from bookrbm import reader, web
from bookrbm.recommend import recommend

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx's successor
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def service(quick_model, sample):
    return web.Service(quick_model, sample)


@pytest.fixture(scope="module")
def client(service):
    return TestClient(web.create_app(service), raise_server_exceptions=False)


def rated(book_ids, stars=5):
    return {"ratings": [{"book_id": b, "rating": stars} for b in book_ids]}


def test_health_and_openapi_schema(client):
    assert client.get("/healthz").json() == {"status": "ok", "books": 10000, "hidden": 16, "worker": os.getpid()}
    schema = client.get("/openapi.json").json()
    assert {"/api/books", "/api/recommendations", "/api/users/{user_id}/recommendations", "/api/goodreads",
            "/healthz"} <= set(schema["paths"])


def test_page_is_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="search"' in page.text and "/api/recommendations" in page.text and "viewport" in page.text


def test_search_ranks_title_starts_first_and_pages(client):
    found = client.get("/api/books", params={"q": "hobbit"}).json()
    assert found["books"][0]["title"].startswith("The Hobbit")
    assert all("hobbit" in (b["title"] + b["authors"]).lower() for b in found["books"])
    by_author = client.get("/api/books", params={"q": "rowling", "per_page": 5}).json()
    assert by_author["total"] > 5 and len(by_author["books"]) == 5
    second = client.get("/api/books", params={"q": "rowling", "per_page": 5, "page": 2}).json()
    assert not {b["book_id"] for b in second["books"]} & {b["book_id"] for b in by_author["books"]}
    book = by_author["books"][0]
    assert set(book) == {"book_id", "title", "authors", "genres", "image_url"} and book["genres"]


def test_recommendations_match_the_command_line_ranking(client, service, sample, quick_model):
    body = {**rated([7, 192, 562]), "top": 5}
    answer = client.post("/api/recommendations", json=body).json()
    assert answer["from"] == "all" and len(answer["recommendations"]) == 5
    who = reader.Reader("x", rated=sample.columns_of([7, 192, 562]).astype(np.int64), ratings=np.array([5, 5, 5]))
    expected = recommend(quick_model, sample, who, n=5, source="all")
    assert [r["book_id"] for r in answer["recommendations"]] == sample.book_ids[expected.columns].tolist()
    first = answer["recommendations"][0]
    assert {"rank", "book_id", "title", "authors", "score", "genres", "because_you_read", "image_url"} <= set(first)
    assert not {7, 192, 562} & {r["book_id"] for r in answer["recommendations"]}
    assert sum(answer["genre_profile"]["read"]) == pytest.approx(1.0, abs=1e-3)


def test_to_read_list_is_ranked_when_given(client):
    answer = client.post("/api/recommendations", json={**rated([7]), "to_read": [19, 10, 7]}).json()
    assert answer["from"] == "to_read"
    assert {r["book_id"] for r in answer["recommendations"]} == {19, 10}  # 7 is read


def test_readers_who_ask_at_the_same_moment_are_answered_together_each_as_alone(client, quick_model, sample):
    import asyncio

    import httpx

    service = web.Service(quick_model, sample)
    sizes, each = [], service.recommend_each
    service.recommend_each = lambda asks: sizes.append(len(asks)) or each(asks)
    app = web.create_app(service)
    bodies = [
        rated([7, 192, 562]),
        {**rated([1, 2, 3], stars=2), "top": 3},
        {**rated([7]), "to_read": [7], "from": "to_read"},  # nothing left to rank: a 422, for this reader alone
        {**rated([5000, 17, 7]), "to_read": [19, 10, 12]},
    ]

    async def at_once():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as together:
            return await asyncio.gather(*(together.post("/api/recommendations", json=body) for body in bodies))

    answers = asyncio.run(at_once())
    assert sizes == [4]
    assert [answer.status_code for answer in answers] == [200, 200, 422, 200]
    for body, answer in zip(bodies, answers):
        alone = client.post("/api/recommendations", json=body)
        assert (answer.status_code, answer.json()) == (alone.status_code, alone.json())


def test_a_book_rated_twice_keeps_its_last_rating_and_leaves_the_to_read_list(service, sample):
    request = web.RecommendationRequest.model_validate(
        {"ratings": [{"book_id": 562, "rating": 2}, {"book_id": 7, "rating": 4}, {"book_id": 562, "rating": 5}],
         "to_read": [19, 562, 19, 10]}
    )
    who = service.reader_of(request)
    assert who.rated.tolist() == sample.columns_of([7, 562]).tolist()
    assert who.ratings.tolist() == [4, 5]
    assert who.to_read.tolist() == sorted(sample.columns_of([10, 19]).tolist())


@pytest.mark.parametrize(
    "body, message",
    [
        ({"ratings": []}, "ratings is empty"),
        (rated([99999]), "ratings[0]: unknown book_id 99999"),
        (rated([7, 192, 0, -5]), "ratings[2]: unknown book_id 0"),
        ({**rated([7]), "to_read": [0]}, "to_read[0]: unknown book_id 0"),
        (rated([7], stars=6), "ratings[0].rating: Input should be less than or equal to 5"),
        (rated([7], stars=0), "ratings[0].rating: Input should be greater than or equal to 1"),
        (rated(range(1, 2002)), "too many books: 2001 ratings and 0 to read, at most 2000"),
        ({"ratings": [{"book_id": "seven", "rating": 5}]}, "ratings[0].book_id: Input should be a valid integer"),
        # strict numbers: lax parsing would read true as book 1 and "7" as book 7
        ({"ratings": [{"book_id": 7, "rating": 5}, {"book_id": True, "rating": 5}]}, "ratings[1].book_id: Input should be a valid integer"),
        ({"ratings": [{"book_id": "7", "rating": 5}]}, "ratings[0].book_id: Input should be a valid integer"),
        ({"ratings": [{"book_id": 7, "rating": 4.5}]}, "ratings[0].rating: Input should be a valid integer"),
        ({"ratings": [{"book_id": 7, "rating": 5}], "to_read": [19, False]}, "to_read[1]: Input should be a valid integer"),
        # an id no 64-bit integer holds is unknown, like any other
        (rated([7, 2**70]), f"ratings[1]: unknown book_id {2**70}"),
        ({**rated([7]), "to_read": [2**64]}, f"to_read[0]: unknown book_id {2**64}"),
        ({**rated([7]), "from": "to_read"}, 'this reader has no unread books on their to-read list; use "from": "all"'),
        ({}, "ratings: Field required"),
        ({**rated([7]), "from": "everything"}, "from: Input should be 'to_read' or 'all'"),
    ],
)
def test_bad_recommendation_requests_are_422_with_a_message(client, body, message):
    response = client.post("/api/recommendations", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]


def test_malformed_json_is_a_4xx(client):
    response = client.post("/api/recommendations", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("the body is not valid JSON (at character 1: ")


def test_user_recommendations_and_unknown_user(client, sample):
    user_id = int(sample.user_ids[np.flatnonzero(np.diff(sample.to_read.indptr) > 0)[0]])
    answer = client.get(f"/api/users/{user_id}/recommendations", params={"top": 3}).json()
    assert answer["from"] == "to_read" and 1 <= len(answer["recommendations"]) <= 3
    missing = client.get("/api/users/22/recommendations")
    assert missing.status_code == 404 and "user_id 22 is not in the processed data" in missing.json()["detail"]


def test_goodreads_upload(client):
    from bookrbm import paths

    with open(f"{paths.BUNDLED_DATA}/example_goodreads_export.csv", "rb") as handle:
        answer = client.post("/api/goodreads", files={"file": ("my library.csv", handle, "text/csv")}).json()
    summary = answer["summary"]
    assert (summary["rows"], summary["matched"], summary["by_key"]) == (22, 21, {"book_id": 21})
    assert [row["title"] for row in summary["unmatched"]] == ["Piranesi"]
    assert answer["from"] == "to_read" and len(answer["recommendations"]) == 8


@pytest.mark.parametrize(
    "content, status, message",
    [
        (b"hello,world\n1,2\n", 422, "my.csv: missing column 'Book Id', 'Title'"),
        (b"", 422, "my.csv: file is empty"),
        (bytes(range(256)) * 4, 422, "binary data"),
        (b"Book Id,Title,My Rating\n999999999,Nobody's Book,4\n", 422, "nothing to recommend from"),
        (b"x" * (web.MAX_UPLOAD + 1), 413, "upload too large: a Goodreads export of at most 5 MB"),
    ],
)
def test_bad_uploads_are_4xx_and_the_server_keeps_serving(client, content, status, message):
    response = client.post("/api/goodreads", files={"file": ("my.csv", content, "text/csv")})
    assert response.status_code == status
    assert message in response.json()["detail"] and "/tmp" not in response.json()["detail"]
    assert client.get("/healthz").status_code == 200


def in_chunks(content, size=64 * 1024):
    """A body sent without a Content-Length (chunked), as a client streaming it would."""
    for start in range(0, len(content), size):
        yield content[start : start + size]


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_cap_is_a_413_with_a_message(client, chunked):
    json_body = b" " * web.MAX_BODY + b"{}"
    response = client.post(
        "/api/recommendations", content=in_chunks(json_body) if chunked else json_body,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["detail"] == "request too large: a body of at most 1 MB (1,048,576 bytes) is taken"
    # an upload may be larger: up to the file's cap plus its form's framing
    upload = b"x" * (web.MAX_UPLOAD + web.FORM_ALLOWANCE)
    response = client.post("/api/goodreads", files={"file": ("my.csv", upload, "text/csv")})
    assert response.status_code == 413
    # the same words as for a file over 5 MB in a smaller form (test_bad_uploads_…)
    assert response.json()["detail"] == "upload too large: a Goodreads export of at most 5 MB (5,242,880 bytes) is taken"
    # under the cap, the same body is read and answered as before
    response = client.post("/api/recommendations", content=b" " * 1000 + b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"] == "ratings: Field required"
    assert client.get("/healthz").status_code == 200


def test_a_declared_length_over_the_cap_is_refused_before_any_of_the_body_is_read(service):
    import asyncio

    app = web.create_app(service)
    sent = []

    async def receive():
        raise AssertionError("the body was read")

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/api/recommendations", "raw_path": b"/api/recommendations", "root_path": "", "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"2000000000")],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000),
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert b"request too large" in b"".join(message.get("body", b"") for message in sent)


def test_an_unexpected_error_is_a_500_without_traceback(service, monkeypatch):
    app = web.create_app(service)
    monkeypatch.setattr(service, "search", lambda *a: 1 / 0)
    response = TestClient(app, raise_server_exceptions=False).get("/api/books", params={"q": "x"})
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error; the server logged it"}


def test_serve_refuses_bad_files_and_options_in_one_line(tmp_path, sample_file):
    import subprocess
    import sys

    from bookrbm import paths

    for argv, message in (
        (["--model", str(tmp_path / "none.npz"), "--data", str(sample_file)], "none.npz: no such file; run train_rbm.py first"),
        (["--port", "70000"], "--port must be from 1 to 65535"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--host", "203.0.113.9"], "203.0.113.9:8000: cannot listen there"),
    ):
        done = subprocess.run([sys.executable, "serve.py", *argv], cwd=paths.ROOT, capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 2 and message in done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_worker_processes_build_the_app_from_the_environment(monkeypatch, sample_file, quick_model_file, sample):
    import gc

    monkeypatch.setattr(web, "one_blas_thread", lambda: None)  # keep this process's BLAS as it is
    monkeypatch.setenv("BOOKRBM_MODEL", str(quick_model_file))
    monkeypatch.setenv("BOOKRBM_DATA", str(sample_file))
    try:
        app = web.app_from_env()
        # what it loaded is out of the collector's full passes: at least each book's genre list
        assert gc.get_freeze_count() >= sample.n_books
    finally:
        gc.unfreeze()  # this test process is no server: give its objects back
    answer = TestClient(app).post("/api/recommendations", json=rated([7])).json()
    assert len(answer["recommendations"]) == 10


def test_a_servers_first_reader_and_upload_find_everything_built(monkeypatch, sample_file, quick_model_file):
    import gc

    from bookrbm import interactions, matching, model, paths

    fresh = model.load(quick_model_file)
    service = web.Service(fresh, interactions.load(sample_file))
    try:
        app = web.serving_app(service)
    finally:
        gc.unfreeze()  # this test process is no server: give its objects back
    # left to them, the first recommendation made Wᵀ's copy (0.13 s at full size) and the
    # first upload the matching index (0.3-0.5 s), each with the worker answering nothing else
    built = set(vars(fresh))
    assert {"weights_t", "mean_input", "mean_series_input"} <= built and service._index is not None
    monkeypatch.setattr(matching, "Index", lambda data: 1 / 0)
    client = TestClient(app)
    assert len(client.post("/api/recommendations", json=rated([7, 19])).json()["recommendations"]) == 10
    with open(f"{paths.BUNDLED_DATA}/example_goodreads_export.csv", "rb") as export:
        assert client.post("/api/goodreads", files={"file": ("e.csv", export, "text/csv")}).status_code == 200
    assert set(vars(fresh)) == built


def test_serve_freezes_what_it_loaded_and_deals_connections_to_its_workers(monkeypatch, sample_file, quick_model_file):
    import gc
    import os
    import socket
    import weakref

    import uvicorn

    import serve
    from bookrbm import workers

    seen, loaded, events = [], [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: (events.append("run"), seen.append(
        (app, options, gc.get_freeze_count(), loaded[-1]() is not None))))
    monkeypatch.setattr(workers, "run", lambda app, host, port, count, **options: (events.append("workers"), seen.append(
        (app, dict(options, host=host, port=port, workers=count, model=os.environ.get("BOOKRBM_MODEL")), None,
         loaded[-1]() is not None)))[0])
    monkeypatch.setattr(serve, "print", lambda text, **options: events.append(text), raising=False)
    serving_app = web.serving_app
    monkeypatch.setattr(web, "serving_app", lambda service: (events.append("ready"), serving_app(service))[1])
    load_files = web.load_files

    def watched(*files):
        trained, data = load_files(*files)
        loaded.append(weakref.ref(data))
        return trained, data

    monkeypatch.setattr(web, "load_files", watched)
    monkeypatch.setattr(web, "one_blas_thread", lambda: None)
    with socket.socket() as probe:  # a port that serve.py's own check finds free
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    files = ["--model", str(quick_model_file), "--data", str(sample_file), "--port", str(port)]
    try:
        serve.main(files)
        serve.main(files + ["--workers", "2"])
    finally:
        gc.unfreeze()
        for name in ("BOOKRBM_MODEL", "BOOKRBM_DATA"):
            os.environ.pop(name, None)
    (app, _, frozen, served), (factory, options, _, kept) = seen
    assert not isinstance(app, str) and frozen > 0 and served
    # one worker process per core, each loading its own model from the files, so the parent
    # lets go of the one it checked them with; the connections are dealt to them (test_workers.py)
    assert factory == "bookrbm.web:app_from_env" and not kept
    assert options["workers"] == 2 and options["port"] == port and options["model"] == os.path.abspath(quick_model_file)
    # one process says where it serves once its app is ready, not a second before it can answer
    where = f"serving 10000 books on http://127.0.0.1:{port}/ (API schema at /docs)"
    assert events == ["ready", where, "run", f"{where} once 2 workers have loaded the model (a few seconds)", "workers"]


def test_the_blas_limit_reaches_numpys_blas():
    # threadpoolctl limits only libraries already loaded: called before NumPy's import (as
    # serve.py once did) it limited nothing
    from threadpoolctl import threadpool_info

    limiter = web.one_blas_thread()
    try:
        blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert blas and all(pool["num_threads"] == 1 for pool in blas)
    finally:
        limiter.restore_original_limits()

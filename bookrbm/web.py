"""The web app: a JSON API over the trained model and the catalogue, and the page that uses it.

The model and the catalogue are loaded once; every request folds its reader in through the
trained weights (NumPy only, no TensorFlow). Every error a client can cause is a 4xx with a
one-line JSON ``detail``; anything else is logged and answered with a plain 500, never a
traceback.
"""
import gc
import logging
import os
import re
import tempfile
from typing import Annotated, Literal, Optional

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from . import interactions, matching, model, reader
from . import recommend as recommender
from .body_limit import BodyLimit
from .errors import InputError
from .search import BookSearch, words_of
from .together import Together

MAX_ITEMS = 2000  # ratings plus to-read books in one request
MAX_UPLOAD = 5 * 1024 * 1024  # a Goodreads export of a few thousand books with reviews is ~2 MB
FORM_ALLOWANCE = 64 * 1024  # an upload's multipart framing and fields, on top of the file
# The largest JSON body taken: 2,000 items written out with generous whitespace come to
# about 200 kB; anything past this is refused before it is read (bookrbm.body_limit).
MAX_BODY = 1024 * 1024
UPLOAD_TOO_LARGE = f"upload too large: a Goodreads export of at most {MAX_UPLOAD >> 20} MB ({MAX_UPLOAD:,} bytes) is taken"
BODY_TOO_LARGE = f"request too large: a body of at most {MAX_BODY >> 20} MB ({MAX_BODY:,} bytes) is taken"
PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "index.html")
log = logging.getLogger("bookrbm.web")


class ClientError(Exception):
    """A request the client can fix: answered with ``status`` and ``detail``."""

    def __init__(self, status, detail):
        super().__init__(detail)
        self.status, self.detail = status, detail


# Strict: JSON numbers only. Lax parsing would read true as book 1 or 1 star, and "7" as 7.
BookId = Annotated[int, Field(strict=True)]


class Rating(TypedDict):
    # a TypedDict, not a model: a request's 100 ratings validate in 12 µs instead of 28
    book_id: Annotated[BookId, Field(description="goodbooks book_id (1..10000)")]
    rating: Annotated[int, Field(ge=1, le=5, strict=True, description="1 to 5 stars")]


class RecommendationRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    ratings: list[Rating] = Field(description="the books the reader rated")
    to_read: list[BookId] = Field(default_factory=list, description="book_ids the reader wants to read")
    top: int = Field(10, ge=1, le=100, strict=True, description="how many books to return")
    source: Optional[Literal["to_read", "all"]] = Field(
        None, alias="from", description="rank the to-read list, or all books (default: to_read if given, else all)"
    )


class Service:
    """The loaded model and catalogue, and what the endpoints do with them."""

    def __init__(self, trained, data):
        recommender.check_compatible(trained, data)
        self.model, self.data = trained, data
        self.books = BookSearch(data)
        # every book as the API shows it, made once: an answer's records are copies of
        # these; made here, before a server freezes what it loaded (``freeze_loaded``)
        self.records = [recommender.book_record(data, column) for column in range(data.n_books)]
        self._index = None  # the matching index: built by prepare_uploads, or at the first upload

    @classmethod
    def from_files(cls, model_path, data_path):
        return cls(model.load(model_path), interactions.load(data_path))  # checked together by __init__

    def prepare_uploads(self):
        """Build the matching index and import the export reader (pandas) now, as a server
        does before it serves: left to the first upload, they took it 0.7 s, in which the
        worker answered nothing else, and pandas's 25,000 objects, made after the loaded
        ones were frozen (``freeze_loaded``), would lengthen every full collection after."""
        from . import goodreads  # noqa: F401  (reader.from_goodreads imports it when it is needed)

        if self._index is None:
            self._index = matching.Index(self.data)

    def search(self, query, page, per_page):
        """A page of ``BookSearch.find``'s books for ``query``, and how many there are."""
        words = words_of(query)
        if not words:
            raise ClientError(422, "q is empty: type part of a title or an author")
        found = self.books.find(words)
        first = (page - 1) * per_page
        return {
            "query": query,
            "total": len(found),
            "page": page,
            "per_page": per_page,
            "books": [self.records[column] for column in found[first : first + per_page]],
        }

    def _columns(self, book_ids, where):
        """Columns of ``book_ids`` (a list of ints); a 422 naming the first unknown one."""
        columns, known = self.data.find_columns(book_ids)
        if not known.all():
            i = int(np.argmin(known))
            raise ClientError(
                422, f"{where}[{i}]: unknown book_id {book_ids[i]} (goodbooks ids run from "
                f"{self.data.book_ids[0]} to {self.data.book_ids[-1]}; search with /api/books?q=)"
            )
        return columns

    def reader_of(self, request):
        if not request.ratings:
            raise ClientError(422, "ratings is empty: rate at least one book")
        if len(request.ratings) + len(request.to_read) > MAX_ITEMS:
            raise ClientError(
                422, f"too many books: {len(request.ratings)} ratings and {len(request.to_read)} to read, "
                f"at most {MAX_ITEMS} in all"
            )
        columns = self._columns([item["book_id"] for item in request.ratings], "ratings")
        stars = np.array([item["rating"] for item in request.ratings], dtype=np.int64)
        # a book rated twice keeps its last rating: the last occurrence of each column
        rated, last = np.unique(columns[::-1], return_index=True)
        wanted = np.unique(self._columns(request.to_read, "to_read"))
        return reader.Reader(
            name="this reader",
            rated=rated,
            ratings=stars[::-1][last],
            to_read=np.setdiff1d(wanted, rated),
        )

    def recommend(self, who, top=10, source=None):
        (answer,) = self.recommend_each([(who, top, source)])
        if isinstance(answer, ClientError):
            raise answer
        return answer

    def recommend_each(self, asks):
        """``recommend``'s answer, or the ClientError it raises, for each of ``asks`` ((reader,
        top, source) each), the readers folded in together (``recommender.fold_in``)."""
        folded = recommender.fold_in(self.model, self.data, [who for who, _, _ in asks])
        answers = []
        for (_, top, source), one in zip(asks, folded):
            try:
                answers.append(self._answer(one, top, source))
            except ClientError as error:
                answers.append(error)
        return answers

    def _answer(self, folded, top, source):
        try:
            found = recommender.ranked(self.model, self.data, folded, n=top, source=source)
        except recommender.EmptyToRead as error:
            raise ClientError(422, error.worded('"from": "all"')) from None  # the API's field, not the CLI's flag
        except InputError as error:
            raise ClientError(422, str(error)) from None
        names, shares = recommender.genre_profile(found, self.data)
        return {
            "from": found.source,
            "recommendations": recommender.recommendation_records(found, self.data, self.records),
            "genre_profile": {
                "genres": names,
                "read": [round(float(x), 4) for x in shares["read"]],
                "recommended": [round(float(x), 4) for x in shares["recommended"]],
            },
        }

    def goodreads(self, name, content, top):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "export.csv")
            with open(path, "wb") as handle:
                handle.write(content)
            try:
                self.prepare_uploads()
                who = reader.from_goodreads(self.data, path, self._index)
            except InputError as error:
                # the temporary path means nothing to the client; name their file instead
                raise ClientError(422, str(error).replace(path, name or "the upload")) from None
        summary = {
            "rows": len(who.matched),
            "matched": who.n_matched,
            "by_key": matching.counts_by_key(who.matched),
            "unmatched": [
                {k: (v if isinstance(v, (str, int)) else int(v)) for k, v in row.items()} for row in who.unmatched
            ],
            "rated": len(who.rated),
            "read_unrated": len(who.unrated),
            "to_read": len(who.to_read),
        }
        try:
            reader.check_has_reads(who, name or "the upload")
        except InputError as error:
            raise ClientError(422, str(error)) from None
        return {"summary": summary, **self.recommend(who, top)}


def load_files(model_path, data_path):
    """(model, processed data) from their files, checked to belong together: what a
    ``Service`` is made of, and all that serve.py's parent needs to prove the files good."""
    trained, data = model.load(model_path), interactions.load(data_path)
    recommender.check_compatible(trained, data)
    return trained, data


def one_blas_thread():
    """Keep NumPy's BLAS to one thread in this process and return the limiter (to undo it).

    Requests run side by side (in uvicorn's threads and worker processes); a BLAS that also
    starts a thread per core for each of them oversubscribes the cores (measured: 30
    requests/s instead of hundreds). threadpoolctl limits only the libraries already loaded,
    so this must run after NumPy's import, which this module's own import guarantees."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def freeze_loaded():
    """Leave every object alive now (the loaded catalogue, model and app: about 78,000 that
    the garbage collector tracks) out of its full passes from here on.

    They live as long as the server, but each full pass walked them all: 38 ms, in which the
    worker answered nothing, so every request queued behind it waited too. A server process
    calls this once, when it has loaded what it serves; garbage made before is collected
    first, so that none of it is kept for ever."""
    gc.collect()
    gc.freeze()


def serving_app(service):
    """The app a server process serves, made once it has loaded ``service``: ready for its
    first reader and upload (``Model.prepare_readers``, ``Service.prepare_uploads``), and
    what it loaded kept out of the garbage collector's full passes (``freeze_loaded``)."""
    service.model.prepare_readers()
    service.prepare_uploads()
    app = create_app(service)
    freeze_loaded()
    return app


def app_from_env(prepare=None):
    """The app for the worker processes (``bookrbm.workers``): model and data paths from the
    environment, as serve.py sets them; BLAS kept to one thread, as each worker is one of
    several; then made as every server process makes its app (``serving_app``).

    prepare : called with the loaded ``Service`` before the app is made (the latency bench
        swaps its recommendation there)."""
    one_blas_thread()
    service = Service.from_files(os.environ["BOOKRBM_MODEL"], os.environ["BOOKRBM_DATA"])
    if prepare is not None:
        prepare(service)
    return serving_app(service)


def _first_error(errors):
    error = errors[0]
    if error.get("type") == "json_invalid":  # its "loc" is a character position, not a field
        position = error.get("loc", ("body", "?"))[-1]
        return f"the body is not valid JSON (at character {position}: {error.get('ctx', {}).get('error', 'invalid')})"
    # ratings[0].book_id, as the messages of _columns name items
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.get("loc", ()) if part != "body")
    where = where.lstrip(".")
    return f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", "invalid request")


def create_app(service):
    app = FastAPI(
        title="bookrbm",
        description="What should I read next? Book recommendations from an RBM trained on goodbooks-10k.",
        version="1",
    )
    app.add_middleware(
        BodyLimit, default=(MAX_BODY, BODY_TOO_LARGE),
        limits={"/api/goodreads": (MAX_UPLOAD + FORM_ALLOWANCE, UPLOAD_TOO_LARGE)},
    )

    @app.exception_handler(ClientError)
    async def client_error(request: Request, error: ClientError):
        return JSONResponse({"detail": error.detail}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        return JSONResponse({"detail": _first_error(error.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        log.exception("error answering %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the server logged it"}, status_code=500)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(PAGE, media_type="text/html")

    @app.get("/healthz")
    def healthz():
        # "worker": which process answered, so that a client can tell when every worker is up
        return {"status": "ok", "books": service.data.n_books, "hidden": int(service.model.weights.shape[1]),
                "worker": os.getpid()}

    @app.get("/api/books")
    def books(
        q: str = Query(..., max_length=200, description="words of a title or an author"),
        page: int = Query(1, ge=1),
        per_page: int = Query(10, ge=1, le=50),
    ):
        return service.search(q, page, per_page)

    # readers who ask at the same moment are folded in together: one pass over the weights
    # for all of them, each answer the same as alone
    together = Together(service.recommend_each)

    @app.post("/api/recommendations")
    async def recommendations(request: RecommendationRequest):
        answer = await together.ask((service.reader_of(request), request.top, request.source))
        # plain JSON types already: skip FastAPI's generic encoder, which walks every value
        return JSONResponse(answer)

    @app.get("/api/users/{user_id}/recommendations")
    def user_recommendations(
        user_id: int, top: int = Query(10, ge=1, le=100), source: Optional[Literal["to_read", "all"]] = Query(None, alias="from")
    ):
        try:
            who = reader.from_user(service.data, user_id)
        except InputError as error:
            raise ClientError(404, str(error)) from None
        return service.recommend(who, top, source)

    @app.post("/api/goodreads")
    def goodreads(file: UploadFile = File(..., description="Goodreads library export CSV"),
                  top: int = Query(10, ge=1, le=100)):
        content = file.file.read(MAX_UPLOAD + 1)
        if len(content) > MAX_UPLOAD:
            raise ClientError(413, UPLOAD_TOO_LARGE)
        name = re.sub(r"[^\w .-]", "_", os.path.basename(file.filename or "upload.csv"))[:100]
        return service.goodreads(name, content, top)

    return app

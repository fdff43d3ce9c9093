"""A cap on the size of a request's body, enforced before the body is read.

Without it the app read a body whole before looking at it: a 200 MB upload was taken in
(spooled to disk) before its 413, and a 200 MB JSON body was read into memory before its 422
(the worker's peak memory went from 167 to 558 MB; with the cap, 168 MB, the 413 in 2 ms); a
few such requests at once could end a worker. FastAPI's own
``max_body_size`` stops reading in time too, but answers a body whose declared length is over
the cap in plain text, not with the API's JSON ``detail``.
"""
from fastapi import HTTPException
from fastapi.responses import JSONResponse


class BodyTooLarge(HTTPException):
    """Raised while a body without a declared length is read, once it passes its cap; the
    app's handler for HTTP errors answers it as JSON."""

    def __init__(self, detail):
        super().__init__(status_code=413, detail=detail)


def declared_length(scope):
    """The request's Content-Length as an int, or None when absent or not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimit:
    """ASGI middleware: a request whose body is over its path's cap gets a 413 with that
    cap's JSON ``detail``, at once if its Content-Length says so (nothing of the body is
    read), else as soon as the bytes read pass the cap.

    default : (bytes, detail) for every path not in ``limits``.
    limits : {path: (bytes, detail)} for the paths that take more (or less)."""

    def __init__(self, app, default, limits=None):
        self.app, self.default, self.limits = app, default, limits or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, detail = self.limits.get(scope["path"], self.default)
        declared = declared_length(scope)
        if declared is not None and declared > limit:
            return await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(detail)
            return message

        await self.app(scope, counted, send)

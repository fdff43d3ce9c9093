#!/usr/bin/env python3
"""Serve the web app with every recommendation replaced by one answer worked out at start-up.

What web_latency.py measures beside serve.py: every request is still parsed, validated and
answered as always, so the latency left is FastAPI's, uvicorn's, the request's checks' and
the load generator's, not the model's. Served as serve.py serves the real app, by
``bookrbm.workers``; the model and data paths come from the environment (BOOKRBM_MODEL,
BOOKRBM_DATA), as for serve.py's workers, and the stored answer is for the request that
web_latency.py sends (BOOKRBM_RATINGS ratings of the reader with the most).
"""
import argparse
import os
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
# the workers import the app below by name: they start with this process's path
sys.path[:0] = [os.path.dirname(BENCH), BENCH]

from bookrbm import web, workers  # noqa: E402
from bookrbm.errors import InputError, check_range, cli  # noqa: E402


def app():
    """The app factory each worker calls."""

    def store_answer(service):
        from web_latency import request_body_of

        body, _ = request_body_of(service.data, int(os.environ["BOOKRBM_RATINGS"]))
        request = web.RecommendationRequest.model_validate_json(body)
        answer = service.recommend(service.reader_of(request), request.top, request.source)
        service.recommend_each = lambda asks: [answer] * len(asks)

    return web.app_from_env(prepare=store_answer)


@cli
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default: %(default)s)")
    args = parser.parse_args(argv)
    check_range("--port", args.port, at_least=1, at_most=65535)
    check_range("--workers", args.workers, at_least=1)
    missing = [name for name in ("BOOKRBM_MODEL", "BOOKRBM_DATA", "BOOKRBM_RATINGS") if name not in os.environ]
    if missing:
        raise InputError(f"set {', '.join(missing)} in the environment (web_latency.py does)")
    failed = workers.run("stored_answer:app", "127.0.0.1", args.port, args.workers, log_level="warning")
    if failed:
        raise InputError(failed)


if __name__ == "__main__":
    main()

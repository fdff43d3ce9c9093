#!/usr/bin/env python3
"""Serve the recommender: a page at http://127.0.0.1:8000/ and its JSON API (/docs has the schema)."""
import argparse
import logging
import os
import socket

from bookrbm import paths
from bookrbm.errors import InputError, check_range, cli


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument("--model", default=paths.MODEL, help="model file from train_rbm.py (default: %(default)s)")
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file from preprocess.py (default: %(default)s)")
    parser.add_argument(
        "--workers", type=int, default=1,
        help="server processes, each with its own copy of the model (default: %(default)s; one per core serves most)",
    )
    return parser.parse_args(argv)


def check_free(host, port):
    """Say so in one line if the address cannot be listened on, before loading anything."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise InputError(f"{host}:{port}: cannot listen there ({error.strerror}); choose another --port or --host") from None


@cli
def main(argv=None):
    args = parse_args(argv)
    check_range("--workers", args.workers, at_least=1)
    check_range("--port", args.port, at_least=1, at_most=65535)
    check_free(args.host, args.port)
    import uvicorn

    from bookrbm import web, workers

    web.one_blas_thread()

    trained, data = web.load_files(args.model, args.data)  # a bad file stops here, with one line
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    where = f"{data.n_books} books on http://{args.host}:{args.port}/ (API schema at /docs)"
    if args.workers > 1:
        print(f"serving {where} once {args.workers} workers have loaded the model (a few seconds)", flush=True)
        # each worker loads its own copy; these only proved the files good, so the parent, which
        # only deals the connections to the workers and watches them, neither keeps them (162 →
        # 79 MB on the sample) nor builds a Service's search texts on them (0.3 s)
        del trained, data
        os.environ["BOOKRBM_MODEL"], os.environ["BOOKRBM_DATA"] = os.path.abspath(args.model), os.path.abspath(args.data)
        failed = workers.run("bookrbm.web:app_from_env", args.host, args.port, args.workers, log_level="warning")
        if failed:
            raise InputError(failed)
    else:
        app = web.serving_app(web.Service(trained, data))
        print(f"serving {where}", flush=True)  # once it is ready: a reader who follows the link at once gets the page
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

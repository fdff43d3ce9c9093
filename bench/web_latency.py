#!/usr/bin/env python3
"""Latency of POST /api/recommendations under a bounded load on loopback.

Starts `serve.py` on a free port, then --clients threads, each with its own keep-alive
connection, send --requests requests in all (a real reader's 100 ratings each, from the
processed data) as fast as the server answers, and stop. Prints p50, p99 and the errors,
and writes results/web_latency.csv (name, value, unit).
"""
import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from bookrbm import interactions, paths  # noqa: E402
from bookrbm.atomic import write_csv  # noqa: E402
from bookrbm.errors import InputError, cli  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=2000, help="requests in all (default: %(default)s)")
    parser.add_argument("--ratings", type=int, default=100, help="ratings per request (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="serve.py worker processes (default: %(default)s, one per core)")
    parser.add_argument("--model", default=paths.MODEL, help="model file (default: %(default)s)")
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file (default: %(default)s)")
    parser.add_argument("--out", default=os.path.join(paths.RESULTS, "web_latency.csv"), help="results (default: %(default)s)")
    return parser.parse_args(argv)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request_body(data_path, n_ratings):
    """A real reader's ratings: the first ``n_ratings`` of the reader with the most."""
    data = interactions.load(data_path)
    counts = np.diff(data.ratings.indptr)
    row = int(np.argmax(counts))
    start, stop = data.ratings.indptr[row], data.ratings.indptr[row + 1]
    take = slice(start, min(stop, start + n_ratings))
    ratings = [
        {"book_id": int(data.book_ids[c]), "rating": int(round(v * 5))}
        for c, v in zip(data.ratings.indices[take], data.ratings.data[take])
    ]
    return json.dumps({"ratings": ratings, "top": 10}).encode("utf-8"), len(ratings)


def wait_until_up(port, server, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise InputError(f"serve.py exited with code {server.returncode} before answering")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise InputError(f"serve.py did not answer /healthz within {timeout} s")


def load(port, body, clients, total):
    """Latencies in seconds and the number of errors, from ``clients`` threads sharing ``total``."""
    latencies, errors, lock = [], [0], threading.Lock()
    remaining = [total]

    def client():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if remaining[0] == 0:
                    break
                remaining[0] -= 1
            start = time.perf_counter()
            try:
                connection.request("POST", "/api/recommendations", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                ok = response.status == 200 and b'"recommendations"' in answer
            except OSError:
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = time.perf_counter() - start
            with lock:
                latencies.append(elapsed)
                errors[0] += not ok
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0], time.perf_counter() - start


@cli
def main(argv=None):
    args = parse_args(argv)
    for name in ("clients", "requests", "ratings", "workers"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1, not {getattr(args, name)}")
    body, n_ratings = request_body(args.data, args.ratings)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "serve.py", "--port", str(port), "--model", args.model, "--data", args.data,
         "--workers", str(args.workers)],
        cwd=paths.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_until_up(port, server)
        load(port, body, min(args.clients, 4), min(50, args.requests))  # warm up
        loaded = load(port, body, args.clients, args.requests)
        alone = load(port, body, 1, min(500, args.requests))  # the same requests one at a time
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = [
        {"name": "workers", "value": args.workers, "unit": "processes"},
        {"name": "ratings_per_request", "value": n_ratings, "unit": "ratings"},
    ]
    for label, clients, (latencies, errors, wall) in (("", args.clients, loaded), ("one_client_", 1, alone)):
        ms = np.array(latencies) * 1e3
        rows += [
            {"name": f"{label}clients", "value": clients, "unit": "clients"},
            {"name": f"{label}requests", "value": len(latencies), "unit": "requests"},
            {"name": f"{label}errors", "value": errors, "unit": "requests"},
            {"name": f"{label}p50", "value": round(float(np.percentile(ms, 50)), 3), "unit": "ms"},
            {"name": f"{label}p99", "value": round(float(np.percentile(ms, 99)), 3), "unit": "ms"},
            {"name": f"{label}max", "value": round(float(ms.max()), 3), "unit": "ms"},
            {"name": f"{label}mean", "value": round(statistics.fmean(ms), 3), "unit": "ms"},
            {"name": f"{label}throughput", "value": round(len(latencies) / wall, 1), "unit": "requests/s"},
        ]
    write_csv(args.out, rows, ["name", "value", "unit"])
    for row in rows:
        print(f"{row['name']:<24}{row['value']:>10g}  {row['unit']}")
    p99 = next(row["value"] for row in rows if row["name"] == "p99")
    print(f"p99 with {args.clients} clients, target ≤ 20 ms: {'met' if p99 <= 20 else 'MISSED'}; wrote {paths.shown(args.out)}")


if __name__ == "__main__":
    main()

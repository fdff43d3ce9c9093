#!/usr/bin/env python3
"""Latency of POST /api/recommendations under a bounded load on loopback.

Starts `serve.py` on a free port, then --clients threads, each with its own keep-alive
connection, send --requests requests in all (a real reader's 100 ratings each, from the
processed data) as fast as the server answers, and stop, after --warm-up requests that are
not counted (the load's start, every client connecting and asking at once, is not the
server's steady state; the p99 of the first --requests from the start is printed too);
then --requests (at most 500) more from one client, likewise. Then the same again against
the same app answering every request with one recommendation stored at start-up: the part
of the latency that is FastAPI, uvicorn, the request's checks and the load generator, not
the model. Prints p50, p99, the errors and the server's CPU time per request, and writes
results/web_latency.csv (name, value, unit).

With --sweep 1,2,4,... it measures instead both apps under each of those numbers of
clients (--requests at each) and writes results/web_latency_sweep.csv and a plot of p50
and p99 against the clients beside it.

With --rates 50,100,... it measures instead the app under requests that arrive at random,
that many a second on average, whether or not earlier ones are answered (as readers come
to a web page; --requests at each rate), and writes results/web_latency_rates.csv.
"""
import argparse
import http.client
import json
import os
import queue
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import NamedTuple, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bookrbm import interactions, paths  # noqa: E402
from bookrbm.atomic import check_writable, write_csv  # noqa: E402
from bookrbm.errors import InputError, check_range, cli, option  # noqa: E402


TARGET_MS = 20  # issue 6: p99 of POST /api/recommendations under the load


class Run(NamedTuple):
    """What one load gave."""

    latencies: list  # of each client (or connection), its counted requests' latencies in seconds
    errors: int  # failed answers, warm-up included
    wall: float  # seconds from the first counted request's start to the last answer
    from_start: Optional[list] = None  # the first requests' latencies, warm-up included (``load``)
    sent: Optional[int] = None  # requests sent in all, warm-up included
    cpu: Optional[float] = None  # the server's CPU seconds over the load, warm-up included


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=2000, help="requests in all (default: %(default)s)")
    parser.add_argument("--warm-up", type=int, default=300,
                        help="requests that each load sends first, on the same connections, not counted "
                        "(default: %(default)s)")
    parser.add_argument("--ratings", type=int, default=100, help="ratings per request (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="serve.py worker processes (default: %(default)s, one per core)")
    parser.add_argument("--model", default=paths.MODEL, help="model file (default: %(default)s)")
    parser.add_argument("--data", default=paths.PROCESSED, help="processed file (default: %(default)s)")
    parser.add_argument("--out", default=os.path.join(paths.RESULTS, "web_latency.csv"), help="results (default: %(default)s)")
    instead = parser.add_mutually_exclusive_group()
    instead.add_argument(
        "--sweep", type=client_counts, metavar="N,N,...",
        help="instead: p50 and p99 at each of these numbers of concurrent clients (--requests each), "
        "for both apps, into --sweep-out and a plot beside it (.png)",
    )
    instead.add_argument(
        "--rates", type=request_rates, metavar="R,R,...",
        help="instead: p50 and p99 of the app when requests arrive at random, each of these many a second "
        "on average (--requests each), into --rates-out",
    )
    parser.add_argument("--sweep-out", default=os.path.join(paths.RESULTS, "web_latency_sweep.csv"),
                        help="the sweep's results (default: %(default)s)")
    parser.add_argument("--rates-out", default=os.path.join(paths.RESULTS, "web_latency_rates.csv"),
                        help="the rates' results (default: %(default)s)")
    return parser.parse_args(argv)


def client_counts(text):
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of whole numbers: {text!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"every number of clients must be at least 1: {text!r}")
    return counts


def request_rates(text):
    try:
        rates = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}") from None
    if not all(0 < rate < float("inf") for rate in rates):  # refuses nan too
        raise argparse.ArgumentTypeError(f"every rate must be a number of requests a second above 0: {text!r}")
    return rates


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def request_body(data_path, n_ratings):
    """A real reader's ratings: the first ``n_ratings`` of the reader with the most."""
    return request_body_of(interactions.load(data_path), n_ratings)


def request_body_of(data, n_ratings):
    """``request_body`` from processed data already loaded."""
    counts = np.diff(data.ratings.indptr)
    row = int(np.argmax(counts))
    start, stop = data.ratings.indptr[row], data.ratings.indptr[row + 1]
    take = slice(start, min(stop, start + n_ratings))
    ratings = [
        {"book_id": int(data.book_ids[c]), "rating": int(round(v * 5))}
        for c, v in zip(data.ratings.indices[take], data.ratings.data[take])
    ]
    return json.dumps({"ratings": ratings, "top": 10}).encode("utf-8"), len(ratings)


def worker_answering(port, timeout=2):
    """The pid of the worker process that answers /healthz on a connection of its own, or
    None if none answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        answer = connection.getresponse()
        return json.loads(answer.read())["worker"] if answer.status == 200 else None
    except OSError:
        return None
    finally:
        connection.close()


def wait_until_up(port, server, workers=1, timeout=90):
    """Return once ``workers`` different worker processes have answered /healthz, each on a
    connection of its own. The first worker up would otherwise take every connection of a
    load that starts while the others still load the model: the bench's 16 clients once all
    went to one worker (bench/README.md)."""
    deadline, seen = time.monotonic() + timeout, set()
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise InputError(f"serve.py exited with code {server.returncode} before answering")
        seen.add(worker_answering(port))
        if len(seen - {None}) >= workers:
            return
        time.sleep(0.05)
    raise InputError(f"serve.py did not answer /healthz from {workers} workers within {timeout} s")


class Connection:
    """One keep-alive HTTP/1.1 connection to the server that sends a prepared request and
    reads the answer in a few socket calls: http.client parses every header through the
    email package, about 0.5 ms of CPU a request, taken from the same 2 cores the server
    runs on."""

    def __init__(self, port):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pending = b""

    def _more(self):
        chunk = self.socket.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.pending += chunk

    def exchange(self, request):
        """(status, body) of the answer to ``request``, the whole request's bytes."""
        self.socket.sendall(request)
        while b"\r\n\r\n" not in self.pending:
            self._more()
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        length = CONTENT_LENGTH.search(head)
        if length is None:
            raise ConnectionError("an answer without Content-Length")
        size = int(length.group(1))
        while len(self.pending) < size:
            self._more()
        body, self.pending = self.pending[:size], self.pending[size:]
        return int(head.split(b" ", 2)[1]), body

    def close(self):
        self.socket.close()


CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)")


def http_request(body):
    return (
        b"POST /api/recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body
    )


def send_each(port, request, next_start, mine, errors, lock):
    """One client: send ``request`` on a keep-alive connection (opened again after an error)
    for each start time that ``next_start()`` gives, until it gives None; each latency, from
    its start time, goes into ``mine``, and each failed answer adds 1 to ``errors[0]``."""
    connection = None
    while (start := next_start()) is not None:
        try:
            connection = connection or Connection(port)
            status, answer = connection.exchange(request)
            ok = status == 200 and b'"recommendations"' in answer
        except (OSError, ValueError):
            ok = False
            if connection is not None:
                connection.close()
            connection = None
        mine.append(time.perf_counter() - start)
        with lock:
            errors[0] += not ok
    if connection is not None:
        connection.close()


def load(port, body, clients, total, warm=0):
    """A ``Run`` of ``clients`` threads sharing ``total`` requests, with the latencies of the
    first ``total`` requests from the start (one list), warm-up included.

    Before them the clients send ``warm`` requests that are not counted, on the same
    connections and with no pause between: at a load's start every client opens its
    connection and sends its first request at the same moment, which the server's steady
    state never sees, and in runs of 2,000 that start gave up to 11 of the 30 or so
    requests over 16 ms (README). The wall time runs from the first counted request's start;
    errors count every request, warm-up included."""
    latencies, errors, lock = [[] for _ in range(clients)], [0], threading.Lock()
    indices = [[] for _ in range(clients)]  # each latency's place in the order of starts
    issued, measured_from = [0], [None]
    request = http_request(body)

    def next_start_of(client):
        def next_start():
            with lock:
                if issued[0] == warm + total:
                    return None
                indices[client].append(issued[0])
                issued[0] += 1
                now = time.perf_counter()
                if issued[0] == warm + 1:
                    measured_from[0] = now
            return now
        return next_start

    threads = [
        threading.Thread(target=send_each, args=(port, request, next_start_of(client), latencies[client], errors, lock))
        for client in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - measured_from[0]
    counted = [[x for x, i in zip(mine, places) if i >= warm] for mine, places in zip(latencies, indices)]
    from_start = [x for mine, places in zip(latencies, indices) for x, i in zip(mine, places) if i < total]
    return Run(counted, errors[0], wall, from_start, sent=warm + total)


def open_load(port, body, rate, total, connections=32, seed=0):
    """A ``Run`` of ``total`` requests that arrive at random, ``rate`` a second on average (a Poisson
    process, seeded), whether or not earlier ones have been answered: as readers arrive at
    a web page. Each is sent on the first free one of ``connections`` keep-alive connections
    and its latency counts from its arrival, so a wait for a free connection counts too."""
    arrivals = np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, total))
    arrived = queue.SimpleQueue()  # each request's arrival time, then a None for each connection
    latencies, errors, lock = [[] for _ in range(connections)], [0], threading.Lock()
    request = http_request(body)
    threads = [threading.Thread(target=send_each, args=(port, request, arrived.get, mine, errors, lock)) for mine in latencies]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    for offset in arrivals:
        pause = start + offset - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        arrived.put(start + offset)
    for _ in threads:
        arrived.put(None)
    for thread in threads:
        thread.join()
    return Run(latencies, errors[0], time.perf_counter() - start, sent=total)


def tree_cpu_seconds(pid):
    """CPU seconds used so far by process ``pid`` and its descendants (its worker processes),
    from Linux's /proc, in clock ticks (10 ms: a run of a few requests can read 0); None
    where there is no /proc."""
    parents, used = {}, {}
    try:
        entries = [entry for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return None
    for entry in entries:
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone since the listing
        parents[int(entry)] = int(fields[1])
        used[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree, grew = {pid}, True
    while grew:
        found = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sum(used.get(member, 0.0) for member in tree)


def measure(command, port, body, loads, workers, env=None, run=load, desc="loads"):
    """Start the server ``command``, wait until its ``workers`` have answered, warm it up,
    then for each of ``loads`` in turn, run as ``run(port, body, *each)`` (``load``'s
    (clients, requests, warm-up requests) by default): its ``Run`` each, with the server's CPU
    seconds (None without /proc). A progress bar, ``desc``, counts the loads."""
    # nothing reads its output: a pipe left full would stall a server that logs much
    server = subprocess.Popen(command, cwd=paths.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, **(env or {})})
    try:
        wait_until_up(port, server, workers)
        load(port, body, 4, min(50, loads[0][1]))  # warm up
        results = []
        for each in tqdm(loads, desc=desc, leave=False, disable=None):
            before = tree_cpu_seconds(server.pid)
            measured = run(port, body, *each)
            after = tree_cpu_seconds(server.pid)
            results.append(measured._replace(cpu=None if before is None or after is None else after - before))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def measure_both(args, body, loads):
    """``measure``'s results for ``loads`` from serve.py, then from the app with a stored answer."""
    port = free_port()
    served = measure(serve_command(args, port), port, body, loads, args.workers, desc="serve.py")
    port = free_port()
    stored = measure(
        [sys.executable, "bench/stored_answer.py", "--port", str(port), "--workers", str(args.workers)],
        port, body, loads, args.workers, desc="stored answer",
        env={"BOOKRBM_MODEL": os.path.abspath(args.model), "BOOKRBM_DATA": os.path.abspath(args.data),
             "BOOKRBM_RATINGS": str(args.ratings)},
    )
    return served, stored


def serve_command(args, port):
    return [sys.executable, "serve.py", "--port", str(port), "--model", args.model, "--data", args.data,
            "--workers", str(args.workers)]


def figures(label, run):
    """Rows of the CSV from one load's ``Run``."""
    latencies = run.latencies
    clients = len(latencies)
    ms = np.concatenate([np.array(mine) for mine in latencies]) * 1e3
    rows = [
        {"name": f"{label}clients", "value": clients, "unit": "clients"},
        {"name": f"{label}requests", "value": len(ms), "unit": "requests"},
        {"name": f"{label}errors", "value": run.errors, "unit": "requests"},
        {"name": f"{label}p50", "value": round(float(np.percentile(ms, 50)), 3), "unit": "ms"},
        {"name": f"{label}p99", "value": round(float(np.percentile(ms, 99)), 3), "unit": "ms"},
        {"name": f"{label}max", "value": round(float(ms.max()), 3), "unit": "ms"},
        {"name": f"{label}mean", "value": round(statistics.fmean(ms), 3), "unit": "ms"},
        {"name": f"{label}throughput", "value": round(len(ms) / run.wall, 1), "unit": "requests/s"},
    ]
    if clients > 1:
        # a client keeps its connection, so its worker: clients split unevenly between the
        # workers wait unevenly, and the clients of the busier one make the p99
        means = [statistics.fmean(mine) * 1e3 for mine in latencies if mine]
        rows.append({"name": f"{label}fastest_client_mean", "value": round(min(means), 3), "unit": "ms"})
        rows.append({"name": f"{label}slowest_client_mean", "value": round(max(means), 3), "unit": "ms"})
    if run.from_start is not None:
        # as this bench measured before it sent uncounted requests first (README)
        p99 = float(np.percentile(run.from_start, 99)) * 1e3
        rows.append({"name": f"{label}from_start_p99", "value": round(p99, 3), "unit": "ms"})
    if run.cpu is not None:
        rows.append({"name": f"{label}server_cpu", "value": round(run.cpu / run.sent * 1e3, 3), "unit": "ms/request"})
    return rows


def summary(run):
    """``figures`` of one load's ``Run`` as {name: value}."""
    return {row["name"]: row["value"] for row in figures("", run)}


def print_table(rows, columns):
    """``rows`` (dicts) as a text table; ``columns`` are (heading, key, format spec), and a
    value of None is left blank."""
    widths = [re.match(r"[<>]?\d*", spec).group() for _, _, spec in columns]
    print("".join(format(heading, width) for (heading, _, _), width in zip(columns, widths)))
    for row in rows:
        print("".join(format("", width) if row[key] is None else format(row[key], spec)
                      for (_, key, spec), width in zip(columns, widths)))


@cli
def main(argv=None):
    args = parse_args(argv)
    for name in ("clients", "requests", "ratings", "workers"):
        check_range(option(name), getattr(args, name), at_least=1)
    check_range(option("warm_up"), args.warm_up, at_least=0)
    measurement, outputs = chosen(args)
    check_writable(*outputs)  # not after minutes of load
    body, n_ratings = request_body(args.data, args.ratings)
    measurement(args, body, n_ratings)


def chosen(args):
    """What ``args`` ask to measure: (the function that measures it, called with ``args``,
    the request's body and its number of ratings; the files it writes)."""
    if args.sweep:
        return sweep, [args.sweep_out, sweep_picture(args)]
    if args.rates:
        return by_rate, [args.rates_out]
    return under_load_and_alone, [args.out]


def under_load_and_alone(args, body, n_ratings):
    """p50, p99, errors and server CPU of serve.py and of the app with a stored answer, each
    under the load of ``args.clients`` and with one client; a CSV."""
    # the load, then the same requests one at a time
    loads = [(args.clients, args.requests, args.warm_up), (1, min(500, args.requests), args.warm_up)]
    served, stored = measure_both(args, body, loads)
    rows = [
        {"name": "workers", "value": args.workers, "unit": "processes"},
        {"name": "ratings_per_request", "value": n_ratings, "unit": "ratings"},
    ]
    for prefix, (loaded, alone) in (("", served), ("stored_answer_", stored)):
        rows += figures(prefix, loaded) + figures(f"{prefix}one_client_", alone)
    write_csv(args.out, rows, ["name", "value", "unit"])
    for row in rows:
        print(f"{row['name']:<32}{row['value']:>10g}  {row['unit']}")
    p99 = next(row["value"] for row in rows if row["name"] == "p99")
    from_start = next(row["value"] for row in rows if row["name"] == "from_start_p99")
    floor = next(row["value"] for row in rows if row["name"] == "stored_answer_p99")
    print(f"p99 with {args.clients} clients, target ≤ {TARGET_MS} ms: {'met' if p99 <= TARGET_MS else 'MISSED'} "
          f"(the first {args.requests} from the load's start, warm-up included: {from_start:g} ms; "
          f"the app with a stored answer: {floor:g} ms); wrote {paths.shown(args.out)}")


def sweep_picture(args):
    return os.path.splitext(args.sweep_out)[0] + ".png"


def sweep(args, body, _n_ratings):
    """p50, p99, throughput and server CPU at each number of clients in ``args.sweep``, for
    the app and for the app with a stored answer; a CSV and a plot."""
    served, stored = measure_both(args, body, [(clients, args.requests, args.warm_up) for clients in args.sweep])
    rows = []
    for app, results in (("recommendation", served), ("stored answer", stored)):
        for clients, result in zip(args.sweep, results):
            found = summary(result)
            rows.append({
                "app": app, "clients": clients, "requests": found["requests"], "errors": found["errors"],
                "p50_ms": found["p50"], "p99_ms": found["p99"], "throughput": found["throughput"],
                "server_cpu_ms": found.get("server_cpu"),
                "fastest_client_ms": found.get("fastest_client_mean"), "slowest_client_ms": found.get("slowest_client_mean"),
            })
    write_csv(args.sweep_out, rows, list(rows[0]))
    picture = sweep_picture(args)
    from bookrbm.plots import plot_latency_by_load

    plot_latency_by_load(rows, TARGET_MS, picture)
    print_table(rows, [("app", "app", "<16"), ("clients", "clients", ">8"), ("p50 ms", "p50_ms", ">9.1f"),
                       ("p99 ms", "p99_ms", ">9.1f"), ("req/s", "throughput", ">8.0f"), ("CPU ms", "server_cpu_ms", ">8.2f"),
                       ("errors", "errors", ">8")])
    within = [row["clients"] for row in rows if row["app"] == "recommendation" and row["p99_ms"] <= TARGET_MS]
    print(f"p99 ≤ {TARGET_MS} ms with {', '.join(map(str, within)) or 'no number of'} concurrent clients; "
          f"wrote {paths.shown(args.sweep_out)} and {paths.shown(picture)}")


def by_rate(args, body, _n_ratings):
    """p50, p99 and server CPU of the app at each request rate of ``args.rates`` (requests
    arriving at random, ``open_load``); a CSV."""
    port = free_port()
    loads = [(rate, args.requests) for rate in args.rates]
    results = measure(serve_command(args, port), port, body, loads, args.workers, run=open_load, desc="serve.py by rate")
    rows = []
    for rate, result in zip(args.rates, results):
        found = summary(result)
        rows.append({
            "rate": rate, "achieved": found["throughput"], "requests": found["requests"], "errors": found["errors"],
            "p50_ms": found["p50"], "p99_ms": found["p99"], "max_ms": found["max"], "server_cpu_ms": found.get("server_cpu"),
        })
    write_csv(args.rates_out, rows, list(rows[0]))
    print_table(rows, [("requests/s", "rate", ">10g"), ("achieved", "achieved", ">10.1f"), ("p50 ms", "p50_ms", ">9.1f"),
                       ("p99 ms", "p99_ms", ">9.1f"), ("max ms", "max_ms", ">9.1f"), ("CPU ms", "server_cpu_ms", ">8.2f"),
                       ("errors", "errors", ">8")])
    within = [row["rate"] for row in rows if row["p99_ms"] <= TARGET_MS]
    print(f"p99 ≤ {TARGET_MS} ms at {', '.join(f'{rate:g}' for rate in within) or 'none of these'} requests/s "
          f"arriving at random; wrote {paths.shown(args.rates_out)}")


if __name__ == "__main__":
    main()

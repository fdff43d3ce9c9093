"""The full-scale benchmark: its stand-in data, and a smoke run (CI never asserts a time)."""
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from bookrbm import kernel, paths

sys.path.insert(0, os.path.join(paths.ROOT, "bench"))
import full_scale  # noqa: E402


def test_stand_in_copies_real_users_and_is_cached(tmp_path):
    messages = []
    full_scale.make_stand_in(tmp_path / "a", 300, seed=3, log=messages.append)
    full_scale.make_stand_in(tmp_path / "b", 300, seed=3, log=messages.append)
    full_scale.make_stand_in(tmp_path / "a", 300, seed=3, log=messages.append)
    assert "cached" in messages[-1] and "cached" not in messages[0]
    for name in ("ratings.csv", "to_read.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    for name in full_scale.COPIED:
        assert (tmp_path / "a" / name).read_bytes() == open(os.path.join(paths.BUNDLED_DATA, name), "rb").read()

    made = pd.read_csv(tmp_path / "a" / "ratings.csv")
    real = pd.read_csv(os.path.join(paths.BUNDLED_DATA, "ratings.csv"))
    assert sorted(made.user_id.unique()) == list(range(1, 301))
    by_user = {u: list(zip(g.book_id, g.rating)) for u, g in real.groupby("user_id")}
    real_rows = set(map(tuple, by_user.values()))
    # every made-up reader is one real reader's ratings, in the same order
    for _, group in made.groupby("user_id"):
        assert tuple(zip(group.book_id, group.rating)) in real_rows
    # so the spread of ratings per user is the real one's (300 draws from 2,672 users)
    assert made.groupby("user_id").size().mean() == pytest.approx(real.groupby("user_id").size().mean(), rel=0.1)


def test_copies_handle_users_without_rows():
    import numpy as np

    rows, new_ids = full_scale._copies(np.array([5, 7, 5, 9]), np.array([9, 8, 5]))
    assert rows.tolist() == [3, 0, 2] and new_ids.tolist() == [1, 3, 3]


def test_compare_child_alternates_the_four_steps_epoch_by_epoch(sample_file, tmp_path, monkeypatch):
    import itertools
    import shutil
    from types import SimpleNamespace

    shutil.copyfile(sample_file, tmp_path / "processed.npz")
    clock = itertools.count()
    monkeypatch.setattr(full_scale, "_timed", lambda epoch: next(clock))  # the order of the epochs, not their time
    args = SimpleNamespace(folder=str(tmp_path), hidden=4, batch_size=600, seed=0, epochs=3, kernel=False)
    seconds = full_scale.measure_compare(args)
    assert seconds == {"ours": [0, 4, 8], "ours_writeup_settings": [1, 5, 9], "writeup": [2, 6, 10],
                       "bare_cd1": [3, 7, 11]}


def test_bare_cd1_step_does_the_three_counted_products_and_plain_updates():
    import numpy as np
    from bare_cd1 import BareCD1

    bare = BareCD1(n_visible=30, n_hidden=4, batch_size=3, learning_rate=0.5, seed=1)
    bare.feed = {bare.h0_mean: np.ones((3, 4), np.float32)}  # every hidden sample on: uniform draws are < 1
    weights, visible_bias, hidden_bias = bare.session.run(bare.params)
    bare.step()
    after = bare.session.run(bare.params)
    bare.close()

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    v1 = sigmoid(np.ones((3, 4)) @ weights.T + visible_bias)
    h1 = sigmoid(v1 @ weights + hidden_bias)
    np.testing.assert_allclose(after[0], weights - 0.5 / 3 * v1.T @ h1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(after[1], visible_bias - 0.5 / 3 * v1.sum(axis=0), rtol=1e-5)
    np.testing.assert_allclose(after[2], hidden_bias - 0.5 / 3 * h1.sum(axis=0), rtol=1e-5)


KERNEL_FIGURES = {"kernel_epoch", "kernel_share_of_peak", "speedup_vs_writeup_kernel", "kernel_epoch_writeup_settings",
                  "kernel_share_of_peak_writeup_settings", "speedup_vs_writeup_same_settings_kernel"}


@pytest.mark.skipif(not kernel.has_compiler(), reason="no C++ compiler for the kernel step")
def test_smoke_run_measures_every_figure(tmp_path):
    out = tmp_path / "bench.csv"
    done = subprocess.run(
        [sys.executable, "bench/full_scale.py", "--users", "300", "--epochs", "1", "--calls", "10", "--runs", "1",
         "--gemm", "256", "--cache", str(tmp_path / "cache"), "--out", str(out)],
        cwd=paths.ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr[-800:]
    table = pd.read_csv(out)
    assert list(table.columns) == ["name", "value", "unit"]
    expected = {"users", "ratings", "preprocess_wall", "preprocess_peak_rss", "gemm_numpy", "gemm_tensorflow",
                "gemm_peak", "fit_users", "train_epoch", "train_gflops", "train_share_of_peak", "train_epoch_metrics",
                "train_peak_rss", "writeup_epoch", "train_epoch_alongside_writeup", "speedup_vs_writeup",
                "train_epoch_writeup_settings", "train_share_of_peak_writeup_settings",
                "speedup_vs_writeup_same_settings", "bare_cd1_epoch",
                "bare_cd1_share_of_peak", "recommend_in_process", "recommend_process", *KERNEL_FIGURES}
    assert set(table.name) == expected
    assert (table.value > 0).all()
    values = dict(zip(table.name, table.value))
    assert values["users"] == 300 and values["fit_users"] < 300
    assert values["speedup_vs_writeup"] == pytest.approx(
        values["writeup_epoch"] / values["train_epoch_alongside_writeup"], rel=0.02
    )
    assert values["speedup_vs_writeup_same_settings"] == pytest.approx(
        values["writeup_epoch"] / values["train_epoch_writeup_settings"], rel=0.02
    )
    # the write-up settings' share by the same count as the defaults'
    flop = values["train_gflops"] * values["train_epoch"]
    assert values["train_share_of_peak_writeup_settings"] == pytest.approx(
        100 * flop / values["train_epoch_writeup_settings"] / values["gemm_peak"], rel=0.02
    )
    # the bare step's share by the same count, over as many full batches of 100 as our epoch has
    flop_per_user = flop / values["fit_users"]
    bare_users = -(-values["fit_users"] // 100) * 100
    assert values["bare_cd1_share_of_peak"] == pytest.approx(
        100 * flop_per_user * bare_users / values["bare_cd1_epoch"] / values["gemm_peak"], rel=0.05
    )
    # our trainer with --step kernel, by the same count and against the same write-up epochs
    for suffix, speedup in (("", "speedup_vs_writeup_kernel"), ("_writeup_settings", "speedup_vs_writeup_same_settings_kernel")):
        assert values[speedup] == pytest.approx(values["writeup_epoch"] / values[f"kernel_epoch{suffix}"], rel=0.02)
        assert values[f"kernel_share_of_peak{suffix}"] == pytest.approx(
            100 * flop / values[f"kernel_epoch{suffix}"] / values["gemm_peak"], rel=0.02
        )
    assert "train_share_of_peak" in done.stdout and "wrote" in done.stdout


def test_without_a_compiler_the_kernel_step_is_left_out_with_a_note(monkeypatch):
    """Then the bench runs as with --no-kernel (the compare child without the kernel step:
    ``test_compare_child_alternates_the_four_steps_epoch_by_epoch``)."""
    lines = []
    monkeypatch.setenv("CXX", "no-such-cc")
    assert not full_scale.kernel_can_be_built(lines.append)
    assert lines == ["note: no-such-cc: no such C++ compiler; set CXX to one: the kernel step is not timed"]
    monkeypatch.setenv("CXX", "g++")
    assert full_scale.kernel_can_be_built(lines.append) == (shutil.which("g++") is not None)


def test_threads_smoke_run_measures_each_figure_at_one_and_two_threads(tmp_path):
    import threads

    out = tmp_path / "threads.csv"
    done = subprocess.run(
        [sys.executable, "bench/threads.py", "--users", "300", "--rounds", "1", "--calls", "3", "--gemm", "128",
         "--cache", str(tmp_path / "cache"), "--out", str(out)],
        cwd=paths.ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr[-800:]
    assert "preprocess.py" in done.stdout  # the stand-in had none yet
    table = pd.read_csv(out, dtype={"threads": str})
    assert list(table.columns) == ["name", "threads", "value", "low", "high", "unit"]
    figures = ["gemm", *(f"product_{name}" for name in threads.PRODUCTS), *(f"epoch_{name}" for name in threads.STEPS)]
    value = {(row.name, row.threads): row.value for row in table.itertuples()}
    for name in figures:
        one, two = value[(name, "1")], value[(name, "2")]
        assert one > 0 and two > 0
        # the ratio is of speeds: for the GEMM a rate, for the rest times
        expected = two / one if name == "gemm" else one / two
        assert value[(f"{name}_speedup", "2/1")] == pytest.approx(expected, rel=1e-5)
    assert set(table.name) == {*figures, *(f"{name}_speedup" for name in figures),
                               *(f"product_{name}_gflops" for name in threads.PRODUCTS)}
    counted = table[table.threads != "2/1"]
    assert (counted.low <= counted.value).all() and (counted.value <= counted.high).all()


def test_threads_table_is_the_medians_over_the_rounds():
    import threads

    def figures(gemm, product, epoch):
        return {"gemm": gemm, "products": dict.fromkeys(threads.PRODUCTS, product),
                "epochs": dict.fromkeys(threads.STEPS, epoch), "product_gflop": 0.128}

    runs = {1: [figures(250, 0.6, 2.0), figures(270, 0.8, 1.0), figures(260, 0.7, 3.0)],
            2: [figures(500, 0.4, 1.0), figures(480, 0.35, 1.5), figures(490, 0.5, 2.0)]}
    rows = {(row["name"], row["threads"]): row for row in threads.rows_of(runs)}
    assert (rows[("gemm", "1")]["value"], rows[("gemm", "1")]["low"], rows[("gemm", "1")]["high"]) == (260, 250, 270)
    assert rows[("gemm_speedup", "2/1")]["value"] == pytest.approx(490 / 260, rel=1e-5)
    assert rows[("product_v1_h1", "2")]["value"] == 0.4
    assert rows[("product_v1_h1_gflops", "2")]["value"] == pytest.approx(320, rel=1e-5)
    # the slowest round is the lowest rate
    assert rows[("product_v1_h1_gflops", "2")]["low"] == pytest.approx(0.128 / 0.5e-3, rel=1e-5)
    assert rows[("product_W_h0T_speedup", "2/1")]["value"] == pytest.approx(0.7 / 0.4, rel=1e-5)
    assert rows[("epoch_bare_cd1_speedup", "2/1")]["value"] == pytest.approx(2.0 / 1.5, rel=1e-5)


def test_threads_refuses_a_process_that_ran_with_another_count(monkeypatch):
    import threads
    from types import SimpleNamespace

    from bookrbm.errors import InputError

    answer = '{"threads": 1, "gemm": 1.0, "products": {}, "epochs": {}, "product_gflop": 1.0}\n'
    monkeypatch.setattr(full_scale, "run_measured", lambda command: (1.0, 100.0, answer))
    args = SimpleNamespace(folder="stand-in", seed=0, hidden=64, batch_size=100, calls=3, gemm=128)
    assert threads._child(args, 1)["threads"] == 1
    with pytest.raises(InputError, match="asked for 2 intra-op threads ran with 1"):
        threads._child(args, 2)


def test_data_size_smoke_run(sample_file, tmp_path):
    out = tmp_path / "data_size.csv"
    done = subprocess.run(
        [sys.executable, "bench/data_size.py", "--data", str(sample_file), "--shares", "0.1,0.2", "--hidden", "8",
         "--epochs", "2", "--baselines", "popularity", "--out", str(out)],
        cwd=paths.ROOT, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr[-800:]
    table = pd.read_csv(out)
    assert list(table.columns) == ["share", "fit_users", "model", "settings", "ndcg", "gap", "low", "high"]
    assert table.model.tolist() == ["rbm", "popularity", "rbm", "popularity"]
    fit_users = table.fit_users.unique().tolist()
    assert len(fit_users) == 2 and fit_users[1] == pytest.approx(2 * fit_users[0], abs=1)
    rbm = table[table.model == "rbm"]
    assert (rbm.gap == 0).all()  # the RBM against itself
    versus = table[table.model == "popularity"]
    assert ((versus.low <= versus.gap) & (versus.gap <= versus.high)).all()
    assert "RBM minus it" in done.stdout


def test_data_size_rejects_bad_shares(sample_file):
    done = subprocess.run([sys.executable, "bench/data_size.py", "--data", str(sample_file), "--shares", "0,2"],
                          cwd=paths.ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "--shares must be above 0 and at most 1" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("only", ["-1", "999"])
def test_tune_rbm_rejects_a_setting_it_does_not_have(sample_file, only):
    done = subprocess.run([sys.executable, "bench/tune_rbm.py", "--data", str(sample_file), "--only", only],
                          cwd=paths.ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "--only must be from 0 to " in done.stderr and only in done.stderr
    assert "Traceback" not in done.stderr


def test_web_latency_client_reads_answers_that_arrive_in_pieces():
    import socket

    import web_latency

    answers = [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", b"HTTP/1.1 422 Unprocessable\r\nContent-Length: 2\r\n\r\nno"]
    listener = socket.create_server(("127.0.0.1", 0))
    received = []

    def server():
        connection, _ = listener.accept()
        with connection:
            for answer in answers:
                received.append(connection.recv(65536))
                for start in range(0, len(answer), 7):  # a few bytes at a time
                    connection.sendall(answer[start : start + 7])
            connection.recv(1)  # until the client closes

    thread = threading.Thread(target=server)
    thread.start()
    connection = web_latency.Connection(listener.getsockname()[1])
    request = web_latency.http_request(b'{"ratings": []}')
    assert connection.exchange(request) == (200, b"hello")
    assert connection.exchange(request) == (422, b"no")
    connection.close()
    thread.join(timeout=10)
    listener.close()
    assert received[0] == request and b"Content-Length: 15\r\n\r\n" in request


@contextlib.contextmanager
def answering(body_of):
    """A keep-alive HTTP server on a free loopback port that answers every GET and POST with
    200 and ``body_of()``'s bytes, in threads; yields its port."""

    class Answers(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the bench's clients expect

        def answer(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = body_of()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_web_latency_waits_until_every_worker_has_answered():
    import json

    import web_latency
    from bookrbm.errors import InputError

    workers = iter([7, 7, 7, 8])  # the second worker is up from the fourth /healthz on

    class Running:
        def poll(self):
            return None

    with answering(lambda: json.dumps({"status": "ok", "worker": next(workers, 8)}).encode()) as port:
        web_latency.wait_until_up(port, Running(), workers=2)
        assert next(workers, None) is None  # it asked until the second worker answered
        with pytest.raises(InputError, match="from 3 workers"):
            web_latency.wait_until_up(port, Running(), workers=3, timeout=0.5)


def test_web_latency_leaves_the_warm_up_requests_out():
    import web_latency

    seen, lock = [], threading.Lock()

    def body():
        with lock:
            seen.append(len(seen))
            first = len(seen) <= 3
        if first:
            time.sleep(0.3)  # the first three answers are slow: only the warm-up's
        return b'{"recommendations": []}'

    with answering(body) as port:
        run = web_latency.load(port, b"{}", clients=1, total=5, warm=3)
        assert len(seen) == 8 and run.sent == 8 and run.errors == 0
        assert len(run.latencies[0]) == 5 and max(run.latencies[0]) < 0.3
        # the first five from the start: the three slow ones and two counted
        assert len(run.from_start) == 5 and sorted(run.from_start)[-3] >= 0.3
        assert 0 < run.wall < sum(run.from_start)  # from the first counted request on

        run = web_latency.load(port, b"{}", clients=3, total=9, warm=6)
        assert len(seen) == 8 + 15 and run.sent == 15
        assert sum(len(mine) for mine in run.latencies) == 9 and len(run.from_start) == 9


def run_web_latency(model_file, data_file, *options):
    """bench/web_latency.py with one worker on the quick model, which must succeed."""
    done = subprocess.run(
        [sys.executable, "bench/web_latency.py", "--model", str(model_file), "--data", str(data_file),
         "--workers", "1", *options],
        cwd=paths.ROOT, capture_output=True, text=True, check=False, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-800:]
    return done


def test_web_latency_smoke_run(sample_file, quick_model_file, tmp_path):
    out = tmp_path / "web_latency.csv"
    done = run_web_latency(quick_model_file, sample_file, "--clients", "3", "--requests", "60", "--warm-up", "20", "--out", str(out))
    values = dict(zip(*pd.read_csv(out)[["name", "value"]].T.values))
    for prefix in ("", "stored_answer_"):
        assert values[f"{prefix}requests"] == 60 and values[f"{prefix}one_client_requests"] == 60
        assert values[f"{prefix}errors"] == 0 and values[f"{prefix}one_client_errors"] == 0
        assert 0 < values[f"{prefix}p50"] <= values[f"{prefix}p99"] <= values[f"{prefix}max"]
        assert values[f"{prefix}from_start_p99"] > 0  # the first requests, warm-up included
        # each client's mean wait, the three between the fastest and the slowest
        assert 0 < values[f"{prefix}fastest_client_mean"] <= values[f"{prefix}mean"] <= values[f"{prefix}slowest_client_mean"]
        assert f"{prefix}one_client_fastest_client_mean" not in values
        assert values[f"{prefix}one_client_server_cpu"] >= 0  # reported for one client too (few ticks: may read 0)
        # /proc counts CPU time in 10 ms ticks: 60 requests of at least 0.3 ms each fill some
        assert values[f"{prefix}server_cpu"] > 0
    assert "target ≤ 20 ms" in done.stdout and "the app with a stored answer" in done.stdout


def test_web_latency_sweep_measures_each_load_for_both_apps(sample_file, quick_model_file, tmp_path):
    out = tmp_path / "sweep.csv"
    done = run_web_latency(quick_model_file, sample_file, "--sweep", "1,3", "--requests", "20", "--warm-up", "10", "--sweep-out", str(out))
    rows = pd.read_csv(out)
    assert rows[["app", "clients"]].values.tolist() == [
        ["recommendation", 1], ["recommendation", 3], ["stored answer", 1], ["stored answer", 3]
    ]
    assert (rows.requests == 20).all() and (rows.errors == 0).all()
    assert (rows.p50_ms > 0).all() and (rows.p50_ms <= rows.p99_ms).all() and (rows.throughput > 0).all()
    several = rows.clients == 3
    assert (rows.fastest_client_ms[several] <= rows.slowest_client_ms[several]).all()
    assert rows.fastest_client_ms[~several].isna().all()
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "concurrent clients; wrote" in done.stdout


@pytest.mark.parametrize("text", ["1,x", "0,4", ""])
def test_web_latency_sweep_refuses_what_is_not_a_list_of_client_counts(text):
    import argparse

    import web_latency

    with pytest.raises(argparse.ArgumentTypeError, match="clients|whole numbers"):
        web_latency.client_counts(text)
    assert web_latency.client_counts("1,4,16") == [1, 4, 16]


def test_web_latency_by_rate_sends_requests_as_they_arrive(sample_file, quick_model_file, tmp_path):
    out = tmp_path / "rates.csv"
    done = run_web_latency(quick_model_file, sample_file, "--rates", "20,40", "--requests", "30", "--rates-out", str(out))
    rows = pd.read_csv(out)
    assert rows.rate.tolist() == [20, 40]
    assert (rows.requests == 30).all() and (rows.errors == 0).all()
    assert (rows.p50_ms > 0).all() and (rows.p50_ms <= rows.p99_ms).all() and (rows.p99_ms <= rows.max_ms).all()
    # the requests come at about the asked rate, not as fast as the server answers (the
    # quick model answers hundreds a second); the wall time includes the last answers
    assert ((rows.achieved > rows.rate / 3) & (rows.achieved < rows.rate * 2)).all()
    assert "requests/s arriving at random; wrote" in done.stdout


@pytest.mark.parametrize("text", ["1,x", "0,4", "-5", "nan", "inf", ""])
def test_web_latency_refuses_what_is_not_a_list_of_rates(text):
    import argparse

    import web_latency

    with pytest.raises(argparse.ArgumentTypeError, match="numbers|above 0"):
        web_latency.request_rates(text)
    assert web_latency.request_rates("50,2.5") == [50.0, 2.5]


@pytest.mark.parametrize("options, message", [
    (["--clients", "0"], "--clients must be at least 1, not 0"),
    (["--warm-up", "-1"], "--warm-up must not be negative, not -1"),
])
def test_web_latency_refuses_a_bad_count_before_starting_a_server(options, message, tmp_path):
    done = subprocess.run([sys.executable, "bench/web_latency.py", "--data", str(tmp_path / "missing.npz"), *options],
                          cwd=paths.ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr == f"error: {message}\n"


def test_stored_answer_server_without_its_files_says_which_in_one_line():
    env = {name: value for name, value in os.environ.items() if not name.startswith("BOOKRBM_")}
    env["BOOKRBM_MODEL"] = "model.npz"
    done = subprocess.run([sys.executable, "bench/stored_answer.py", "--port", "8"], cwd=paths.ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == "error: set BOOKRBM_DATA, BOOKRBM_RATINGS in the environment (web_latency.py does)\n"


@pytest.mark.parametrize("script, options", [
    ("bench/full_scale.py", ["--cache", "{tmp}/cache", "--out"]),
    ("bench/threads.py", ["--cache", "{tmp}/cache", "--out"]),
    ("bench/data_size.py", ["--data", "{tmp}/missing.npz", "--out"]),
    ("bench/web_latency.py", ["--data", "{tmp}/missing.npz", "--out"]),
    ("bench/web_latency.py", ["--data", "{tmp}/missing.npz", "--sweep", "1,2", "--sweep-out"]),
    ("bench/web_latency.py", ["--data", "{tmp}/missing.npz", "--rates", "50", "--rates-out"]),
])
def test_a_results_file_that_is_a_folder_is_one_line_before_measuring(script, options, tmp_path):
    (tmp_path / "results.csv").mkdir()
    options = [option.format(tmp=tmp_path) for option in options]
    done = subprocess.run([sys.executable, script, *options, str(tmp_path / "results.csv")],
                          cwd=paths.ROOT, capture_output=True, text=True, check=False)
    # told before the missing data file or a stand-in is made, so before any measuring
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]
    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path / 'results.csv'}: cannot write it (it is a folder)\n"

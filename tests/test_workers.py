"""serve.py's worker processes: each connection dealt to the next worker, a worker that stops
replaced, and SIGTERM stopping them all (bookrbm.workers). Real processes on a free port."""
import os
import signal
import subprocess
import sys
import time

import pytest

from bookrbm import paths

sys.path.insert(0, os.path.join(paths.ROOT, "bench"))
from web_latency import free_port, wait_until_up, worker_answering  # noqa: E402

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="connections are dealt on Linux only")


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (stopped, not yet reaped by its parent) is no longer serving
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def server(sample_file, quick_model_file):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "serve.py", "--port", str(port), "--workers", "2", "--model", str(quick_model_file),
         "--data", str(sample_file)],
        cwd=paths.ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@linux_only
def test_connections_are_dealt_to_the_workers_in_turn_and_a_stopped_one_is_replaced(server):
    process, port = server
    wait_until_up(port, process, workers=2)
    workers = [worker_answering(port, timeout=5) for _ in range(8)]
    # every new connection goes to the other worker: 4 each, never one taking them all
    assert len(set(workers)) == 2 and all(a != b for a, b in zip(workers, workers[1:]))

    gone, kept = workers[0], workers[1]
    os.kill(gone, signal.SIGKILL)
    # the server goes on answering, and a new worker takes the stopped one's place
    replacement = wait_for(lambda: ({worker_answering(port, timeout=5)} - {None, gone, kept} or {None}).pop())
    assert alive(kept) and alive(replacement)

    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert not alive(kept) and not alive(replacement)
    assert "Traceback" not in process.stderr.read()


@linux_only
def test_workers_stop_by_themselves_when_the_server_is_killed(server):
    process, port = server
    wait_until_up(port, process, workers=2)
    seen = {worker_answering(port, timeout=5) for _ in range(2)}  # dealt in turn: both workers
    process.kill()  # SIGKILL: the parent stops nothing itself
    process.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in seen), timeout=20)


@linux_only
def test_a_worker_that_cannot_start_stops_the_server_in_one_line(tmp_path):
    # files that serve.py's own checks would refuse reach a worker only this way
    script = ("from bookrbm import workers; "
              f"print(workers.serve('bookrbm.web:app_from_env', '127.0.0.1', {free_port()}, 2, log_level='critical'))")
    done = subprocess.run([sys.executable, "-c", script], cwd=paths.ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "BOOKRBM_MODEL": str(tmp_path / "none.npz"), "BOOKRBM_DATA": str(tmp_path / "none.npz")})
    assert done.returncode == 0
    assert done.stdout.startswith("a worker process stopped while starting (exit code ")


def test_elsewhere_uvicorns_own_workers_serve(monkeypatch):
    import uvicorn

    from bookrbm import workers

    ran = []
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(workers, "serve", lambda *args, **options: 1 / 0)
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.append((app, options, os.environ.get("UV_TCP_SINGLE_ACCEPT"))))
    monkeypatch.delenv("UV_TCP_SINGLE_ACCEPT", raising=False)
    assert workers.run("bookrbm.web:app_from_env", "127.0.0.1", 8123, 3, log_level="warning") is None
    (app, options, single_accept), = ran
    assert app == "bookrbm.web:app_from_env" and single_accept == "1"
    assert options == {"factory": True, "workers": 3, "host": "127.0.0.1", "port": 8123, "log_level": "warning"}

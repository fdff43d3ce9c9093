"""Worker processes that each serve the app, the connections dealt to them in turn (Linux).

uvicorn's own workers share one listening socket, and which of them takes a connection is a
race the kernel settles: under the latency bench's 16 keep-alive clients they split anywhere
from 8/8 to 16/0, the clients of the busier worker waiting longest, and at 16/0 one worker
served everyone while the other idled (about 700 requests/s where two give 1,200). Here the
parent accepts every connection and hands it to the next worker, passing its file descriptor
over a Unix socket; the worker serves it with uvicorn's own HTTP protocol, so nothing of a
connection passes through the parent once it is handed over.
"""
import array
import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time

import uvicorn

log = logging.getLogger("bookrbm.workers")
TICK = 0.5  # seconds between the supervisor's looks at its workers


def inbox_name(parent, worker):
    """The abstract Unix socket (Linux) on which ``worker`` (a pid) takes connections from ``parent``."""
    return f"\0bookrbm-workers-{parent}-{worker}"


class Server(uvicorn.Server):
    """uvicorn's server, taking its connections from the parent instead of listening; it
    stops when the parent is gone."""

    async def startup(self, sockets=None):
        await super().startup(sockets=[])
        loop = asyncio.get_running_loop()
        parent = os.getppid()
        self.inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.inbox.setblocking(False)

        def protocol():
            return self.config.http_protocol_class(
                config=self.config, server_state=self.server_state, app_state=self.lifespan.state
            )

        def take():
            while True:
                try:
                    _, fds, _, _ = socket.recv_fds(self.inbox, 1, 1)
                except BlockingIOError:
                    return
                for fd in fds:  # none in the parent's "are you up?" (``_hand`` of no connection)
                    loop.create_task(loop.connect_accepted_socket(protocol, socket.socket(fileno=fd)))

        def watch():
            if os.getppid() != parent:
                self.should_exit = True  # orphaned: nobody deals connections to it any more
            else:
                loop.call_later(1.0, watch)

        loop.add_reader(self.inbox.fileno(), take)
        watch()
        # bound last: the parent hands a worker connections only once it can serve them
        self.inbox.bind(inbox_name(parent, os.getpid()))


def _work(app, options):
    Server(uvicorn.Config(app, factory=True, **options)).run()


def _hand(outbox, parent, pid, connection=None):
    """Pass ``connection`` to worker ``pid`` (with None, only ask whether it is up); whether it took it."""
    rights = [] if connection is None else [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [connection.fileno()]))]
    try:
        # (socket.send_fds ignores its address before Python 3.12)
        outbox.sendmsg([b"c"], rights, 0, inbox_name(parent, pid))
    except OSError:  # not up yet, or gone
        return False
    return True


def _hand_from(outbox, parent, pids, first, connection):
    """The first of ``pids`` from position ``first`` on (and round) that takes ``connection``,
    or None if none does."""
    for i in range(len(pids)):
        pid = pids[(first + i) % len(pids)]
        if _hand(outbox, parent, pid, connection):
            return pid
    return None


def _hand_when_taken(outbox, parent, workers, first, connection, stopping):
    """Offer ``connection`` round ``workers`` from position ``first`` until one takes it:
    (its pid, the position after it), or None if serving stops first."""
    while not stopping.is_set():
        pids = [worker.pid for worker in list(workers)]
        taker = _hand_from(outbox, parent, pids, first, connection)
        if taker is not None:
            return taker, pids.index(taker) + 1
        time.sleep(0.05)
    return None


def _deal(listener, workers, up, stopping):
    """Hand each connection ``listener`` accepts to the next of ``workers`` (a list the
    supervisor keeps current) that takes it; while none can, the connection waits."""
    parent, turn = os.getpid(), 0
    # its own socket: the supervisor's thread asks on another whether a new worker is up
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as outbox:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # the listener was shut: serving is over
            with connection:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                taken = _hand_when_taken(outbox, parent, workers, turn, connection, stopping)
            if taken is not None:
                taker, turn = taken
                up.add(taker)


def run(app, host, port, count, **options):
    """Serve ``app`` (the import string of an app factory) with ``count`` worker processes:
    the connections dealt to them in turn (``serve``) where the system allows it (Linux),
    elsewhere uvicorn's own workers, which race for them. Returns ``serve``'s."""
    if sys.platform.startswith("linux"):
        return serve(app, host, port, count, **options)
    # libuv (uvloop's) accepted every waiting connection at once: 16 clients connecting
    # together went 11 to one worker and 5 to the other; with this each takes one and yields
    os.environ.setdefault("UV_TCP_SINGLE_ACCEPT", "1")
    uvicorn.run(app, factory=True, workers=count, host=host, port=port, **options)
    return None


def serve(app, host, port, count, **options):
    """Serve ``app`` (the import string of an app factory) on ``host``:``port`` with ``count``
    worker processes (Linux), each started with this process's environment and the uvicorn
    ``options`` given, until SIGTERM or Ctrl-C. A worker that stops once up is replaced; one
    that stops before it was ever up stops the server, and the reason is returned (None
    after a normal stop)."""
    listener = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET,
                                    backlog=2048)
    context = multiprocessing.get_context("spawn")
    stopping, up = threading.Event(), set()
    outbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    parent = os.getpid()

    def start():
        worker = context.Process(target=_work, args=(app, options), daemon=True)
        worker.start()
        return worker

    workers = [start() for _ in range(count)]
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    threading.Thread(target=_deal, args=(listener, workers, up, stopping), daemon=True).start()
    failed = None
    try:
        while not stopping.wait(TICK):
            for i, worker in enumerate(workers):
                if worker.is_alive():
                    if worker.pid not in up and _hand(outbox, parent, worker.pid):
                        up.add(worker.pid)
                    continue
                if worker.pid not in up:
                    failed = f"a worker process stopped while starting (exit code {worker.exitcode})"
                    stopping.set()
                    break
                log.warning("worker process %s stopped (exit code %s); starting another", worker.pid, worker.exitcode)
                workers[i] = start()
    except KeyboardInterrupt:
        stopping.set()
    finally:
        signal.signal(signal.SIGTERM, previous)
        try:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the dealer from its accept
        except OSError:
            pass
        listener.close()
        outbox.close()
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # uvicorn's graceful stop: open connections are closed
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
    return failed

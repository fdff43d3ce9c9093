"""Work that callers on one event loop ask for at the same moment, done in one call."""
import asyncio
import time


class Together:
    """Hands the items that callers of ``ask`` give at the same moment to ``work`` in one
    call, at most ``most`` at a time.

    work : a list of items → a list as long, for each item its result or an exception, which
        is raised to that item's caller alone; what ``work`` itself raises goes to all of them.
    rounds : how many of the loop's rounds may pass with no caller joining before the work
        starts. The requests that arrived while the last work ran are read, parsed and
        checked over the loop's next few rounds, a step at a time. Under the latency bench's
        16 clients, starting at once made calls of 2 or 3 readers (770 requests/s); waiting
        for 1 to 4 quiet rounds, calls of all 6–10 readers waiting at a worker (1,120–1,180
        requests/s, within the noise of each other). A lone caller waits a few microseconds.
    patience : seconds to go on waiting, after the quiet rounds, while fewer callers have
        come than the last call took. Under a steady load the same clients come back, a
        little apart (each answer reaches its client, which then sends the next request);
        the late ones used to make a call of their own, which the others then waited for.
        1 ms took the bench's p99 from 17.8–27.0 to 16.6–19.5 ms (seven alternated pairs,
        lower in each). A caller after a call of one, as under light load, never waits.
    """

    def __init__(self, work, most=16, rounds=2, patience=0.001):
        self.work, self.most, self.rounds, self.patience = work, most, rounds, patience
        self._waiting = []
        self._last = 1  # how many the last call took
        self._since = 0.0  # when the first of those waiting asked

    async def ask(self, item):
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._waiting.append((item, answer))
        if len(self._waiting) == 1:
            self._since = time.perf_counter()
            loop.call_soon(self._gather, loop, 1, 0)
        return await answer

    def _gather(self, loop, seen, quiet):
        waiting = len(self._waiting)
        if waiting < self.most:
            quiet = quiet + 1 if waiting == seen else 0
            # each round polls the sockets, so a request that arrives meanwhile joins at once
            if quiet < self.rounds or (waiting < self._last and time.perf_counter() - self._since < self.patience):
                loop.call_soon(self._gather, loop, waiting, quiet)
                return
        batch, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
        self._last = len(batch)
        if self._waiting:
            self._since = time.perf_counter()
            loop.call_soon(self._gather, loop, len(self._waiting), 0)
        try:
            results = self.work([item for item, _ in batch])
        except Exception as error:  # noqa: BLE001  (each caller raises it, as it would alone)
            results = [error] * len(batch)
        for (_, answer), result in zip(batch, results):
            if answer.done():  # its caller has gone (the client hung up)
                continue
            if isinstance(result, BaseException):
                answer.set_exception(result)
            else:
                answer.set_result(result)

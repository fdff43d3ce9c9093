"""Work asked for at the same moment on one event loop, done in one call (bookrbm.together)."""
import asyncio

import pytest

from bookrbm.together import Together


class Recorded:
    """Work that squares numbers, and fails for negative ones; it records every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, items):
        self.calls.append(list(items))
        return [ValueError(f"negative: {x}") if x < 0 else x * x for x in items]


def run(main):
    return asyncio.run(main())


def test_callers_at_the_same_moment_share_one_call_and_each_gets_its_own_answer():
    work = Recorded()
    together = Together(work)

    async def main():
        return await asyncio.gather(*(together.ask(x) for x in range(5)))

    assert run(main) == [0, 1, 4, 9, 16]
    assert work.calls == [[0, 1, 2, 3, 4]]


def test_callers_who_come_later_are_served_by_a_later_call():
    work = Recorded()
    together = Together(work)

    async def main():
        first = await asyncio.gather(together.ask(1), together.ask(2))
        return first, await together.ask(3)

    assert run(main) == ([1, 4], 9)
    assert work.calls == [[1, 2], [3]]


def test_a_caller_a_round_behind_joins_the_call_and_one_far_behind_waits_for_the_next():
    """A request that arrived with others reaches ``ask`` a few of the loop's rounds after
    them (it is read, parsed and checked a step at a time): it still joins their call."""
    work = Recorded()
    together = Together(work, rounds=2)

    async def after(rounds, x):
        for _ in range(rounds):
            await asyncio.sleep(0)
        return await together.ask(x)

    async def main():
        return await asyncio.gather(together.ask(1), after(1, 2), after(2, 3), after(8, 4))

    assert run(main) == [1, 4, 9, 16]
    assert work.calls == [[1, 2, 3], [4]]


def test_after_a_call_of_several_it_waits_patiently_for_as_many_and_a_lone_caller_never_waits():
    work = Recorded()
    patient, hasty = Together(work, patience=60.0), Together(Recorded(), patience=0.0)

    async def after(together, rounds, x):
        for _ in range(rounds):
            await asyncio.sleep(0)
        return await together.ask(x)

    async def main(together):
        first = await asyncio.gather(*(together.ask(x) for x in (1, 2, 3)))
        # the same three come back, one of them well after the quiet rounds
        second = await asyncio.gather(together.ask(4), after(together, 1, 5), after(together, 30, 6))
        return first, second

    assert run(lambda: main(patient)) == ([1, 4, 9], [16, 25, 36])
    assert work.calls == [[1, 2, 3], [4, 5, 6]]
    run(lambda: main(hasty))
    assert hasty.work.calls == [[1, 2, 3], [4, 5], [6]]

    lone = Together(Recorded(), patience=60.0)

    async def alone():
        await lone.ask(7)  # a call of one: the next lone caller is not kept waiting
        return await asyncio.wait_for(lone.ask(8), timeout=5.0)

    assert run(alone) == 64


def test_no_call_takes_more_than_most():
    work = Recorded()
    together = Together(work, most=2)

    async def main():
        return await asyncio.gather(*(together.ask(x) for x in range(5)))

    assert run(main) == [0, 1, 4, 9, 16]
    assert work.calls == [[0, 1], [2, 3], [4]]


def test_a_failed_item_fails_its_caller_alone():
    together = Together(Recorded())

    async def main():
        return await asyncio.gather(together.ask(2), together.ask(-1), together.ask(3), return_exceptions=True)

    good, bad, other = run(main)
    assert (good, other) == (4, 9) and isinstance(bad, ValueError) and str(bad) == "negative: -1"


def test_failed_work_fails_each_of_its_callers_and_the_next_call_works():
    calls = []

    def work(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("broken")
        return items

    together = Together(work)

    async def main():
        failed = await asyncio.gather(together.ask(1), together.ask(2), return_exceptions=True)
        return failed, await together.ask(3)

    failed, later = run(main)
    assert [str(error) for error in failed] == ["broken", "broken"] and later == 3


def test_a_caller_who_leaves_does_not_stop_the_others():
    work = Recorded()
    together = Together(work)

    async def main():
        leaving = asyncio.ensure_future(together.ask(5))
        staying = asyncio.ensure_future(together.ask(6))
        await asyncio.sleep(0)  # both are waiting now
        leaving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaving
        return await staying

    assert run(main) == 36
    assert work.calls == [[5, 6]]

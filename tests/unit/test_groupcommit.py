"""The group writer: what arrives while a group is written goes together as the next group."""

from __future__ import annotations

import asyncio

from receiver.groupcommit import GroupWriter
from tests.support.aio import run


class Store:
    def __init__(self, fail_on: set[str] = frozenset()) -> None:
        self.groups: list[list[str]] = []
        self.fail_on = fail_on

    async def __call__(self, items):
        self.groups.append(list(items))
        await asyncio.sleep(0.01)  # a Redis round trip
        if self.fail_on & set(items):
            raise ConnectionError("redis went away")
        return [f"stored {i}" for i in items]


def test_a_lone_delivery_is_written_at_once_and_later_arrivals_form_the_next_group():
    async def main():
        store = Store()
        writer = GroupWriter(store, max_batch=3)
        first = asyncio.create_task(writer.submit("a"))
        await asyncio.sleep(0)  # "a" is being written alone
        rest = [asyncio.create_task(writer.submit(x)) for x in "bcde"]
        answers = await asyncio.gather(first, *rest)
        await writer.close()
        return store.groups, answers

    groups, answers = run(main())
    assert groups == [["a"], ["b", "c", "d"], ["e"]]  # max_batch bounds a group
    assert answers == [f"stored {x}" for x in "abcde"]  # each request gets its own answer


def test_an_error_reaches_every_request_of_its_group_and_the_next_group_is_still_written():
    async def main():
        store = Store(fail_on={"b"})
        writer = GroupWriter(store, max_batch=2)
        first = asyncio.create_task(writer.submit("a"))
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(writer.submit(x)) for x in "bcd"]
        results = await asyncio.gather(first, *tasks, return_exceptions=True)
        return store.groups, results

    groups, results = run(main())
    assert groups == [["a"], ["b", "c"], ["d"]]
    assert results[0] == "stored a" and results[3] == "stored d"
    assert all(isinstance(r, ConnectionError) for r in results[1:3])


def test_a_store_answering_the_wrong_number_of_results_fails_the_group_instead_of_hanging():
    async def short(items):
        return ["only one"]

    async def main():
        writer = GroupWriter(short)
        return await asyncio.gather(*(writer.submit(x) for x in "ab"), return_exceptions=True)

    results = run(asyncio.wait_for(main(), 5))
    assert all(isinstance(r, RuntimeError) for r in results)
    assert str(results[0]) == "stored 2 deliveries, got 1 answers"

"""The per-host gate of crawl workers on a real PostgreSQL: two gates are two workers' connections.

What one worker takes (a request slot, a host's turn, a Retry-After, a job lock) the other sees at
once, and what a closed (or killed) connection held is free again.
"""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("procrastinate", reason="the 'distributed' extra is not installed")

from monitor.workers import PostgresHostGate, prepare_queue  # noqa: E402

HOST = "news.example.org:8080"


@pytest.fixture
def gates(postgres_url):
    prepare_queue(postgres_url)
    first, second = PostgresHostGate.connect(postgres_url), PostgresHostGate.connect(postgres_url)
    yield first, second
    first.close()
    second.close()


def test_slots_are_shared_a_second_request_waits_for_a_free_one(gates):
    first, second = gates

    async def scenario() -> float:
        await first.enter(HOST, 2, 0)
        await first.enter(HOST, 2, 0)  # the same worker takes both slots: locks stack, slots don't
        waiter = asyncio.create_task(second.enter(HOST, 2, 0))
        await asyncio.sleep(0.4)
        assert not waiter.done(), "a third request got in while two were in flight"
        released = time.monotonic()
        await first.leave(HOST)
        await asyncio.wait_for(waiter, 5)
        waited = time.monotonic() - released
        await second.leave(HOST)
        await first.leave(HOST)
        return waited

    assert asyncio.run(scenario()) < 1.0


def test_turns_space_request_starts_by_the_delay_across_connections(gates):
    first, second = gates

    async def scenario() -> list[float]:
        starts = []
        for gate in (first, second, first, second):
            await gate.enter(HOST, 4, 0.3)
            starts.append(time.monotonic())
            await gate.leave(HOST)
        return starts

    starts = asyncio.run(scenario())
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) >= 0.25, gaps


def test_a_retry_after_published_by_one_worker_holds_and_blocks_the_host_for_the_other(gates):
    first, second = gates

    async def scenario() -> tuple[float, tuple[float, str] | None, tuple[float, str] | None]:
        await first.hold(HOST, 0.8)  # a short Retry-After: no start before then, but not refused
        assert await second.blocked(HOST) is None
        started = time.monotonic()
        await second.enter(HOST, 2, 0)
        waited = time.monotonic() - started
        await second.leave(HOST)
        await first.hold("other.example.org", 120, "other.example.org asked to retry after 120 s")
        return waited, await second.blocked("other.example.org"), await second.blocked(HOST)

    waited, blocked, free = asyncio.run(scenario())
    assert waited >= 0.6
    assert blocked is not None and 100 < blocked[0] <= 120 and "retry after 120" in blocked[1]
    assert free is None
    assert second.host_wait("other.example.org") > 100


def test_job_lock_is_exclusive_and_freed_when_its_connection_goes(postgres_url, gates):
    first, second = gates
    assert first.try_job_lock(HOST)
    assert not second.try_job_lock(HOST)
    assert second.try_job_lock("another.example.org")
    first.close()  # as when a worker is killed: the server ends the session and its locks
    deadline = time.monotonic() + 5
    while not second.try_job_lock(HOST):
        assert time.monotonic() < deadline, "the closed connection's job lock was never freed"
        time.sleep(0.05)

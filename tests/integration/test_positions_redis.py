"""Live positions across API processes: two `LivePositions` (as two API processes would hold)
share one redis-server (the session's, on loopback). A position one process receives is the
latest in the other and reaches the other's viewers; it lasts `keep_seconds` and then is gone
from Redis too; a share that ended is forgotten."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
import redis

from commands.emergency import LivePositions
from domain.emergency import Position

pytestmark = pytest.mark.integration

CHANNEL = "carebridge:positions"
BENCH = Position(51.507222, -0.127500, 12.0, datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
ALONG = Position(51.507300, -0.127300, 10.0, datetime(2026, 11, 23, 9, 0, 10, tzinfo=UTC))
WAIT_SECONDS = 20.0  # a bound for what must happen, never a measure of how fast


def key(share_id: UUID) -> str:
    return f"carebridge:position:{share_id}"


async def eventually(check: Callable[[], Any], what: str) -> Any:
    """Polls `check` (run off the loop: it may ask Redis) until it returns something truthy."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_SECONDS:.0f} s"
        await asyncio.sleep(0.05)


async def received(queue: asyncio.Queue[Any]) -> dict[str, Any]:
    frame: dict[str, Any] = await asyncio.wait_for(queue.get(), WAIT_SECONDS)
    return frame


@asynccontextmanager
async def processes(redis_url: str, count: int, keep_seconds: float = 60
                    ) -> AsyncIterator[list[LivePositions]]:
    """`count` API processes' positions, each relaying what the others receive, once every
    relay is subscribed."""
    started = [LivePositions(keep_seconds, redis_url) for _ in range(count)]
    for positions in started:
        await positions.start()
    try:
        with redis.Redis.from_url(redis_url) as client:
            await eventually(lambda: dict(client.pubsub_numsub(CHANNEL)).get(
                CHANNEL.encode(), 0) >= count, "every relay subscribing")
        yield started
    finally:
        for positions in started:
            await stopped(positions)


async def stopped(positions: LivePositions) -> None:
    """Stops a process's positions as the app's shutdown does."""
    await positions.stop()


def test_a_position_received_by_one_process_is_the_latest_and_reaches_viewers_of_another(
        redis_url: str) -> None:
    share = uuid4()
    other_share = uuid4()

    async def scenario() -> None:
        async with processes(redis_url, 3) as (phone_side, screen_side, third):
            mine = phone_side.watch(lambda frame: frame["share_id"] == str(share))
            theirs = screen_side.watch(lambda frame: frame["clinic_id"] == "riverside")
            heard = []
            for position in (BENCH, ALONG):
                phone_side.put(share, "riverside", position)
                heard.append(await received(theirs))
            assert [(f["type"], f["share_id"], f["latitude"], f["accuracy"], f["at"])
                    for f in heard] == [
                ("position", str(share), p.latitude, p.accuracy, p.at.isoformat())
                for p in (BENCH, ALONG)]
            assert all(set(f) == {"type", "share_id", "clinic_id", "latitude", "longitude",
                                  "accuracy", "at"} for f in heard)
            assert await asyncio.to_thread(screen_side.latest, share) == (BENCH, ALONG)
            assert screen_side.latest(other_share) is None

            # Redis keeps order on one subscription: once the phone's process hears a third
            # process's position, it has heard its own two back, and handed them to nobody.
            third.put(share, "riverside", ALONG)
            assert [(await received(mine))["latitude"] for _ in range(3)] == [
                BENCH.latitude, ALONG.latitude, ALONG.latitude]
            assert mine.empty()

    asyncio.run(scenario())


def test_a_held_position_expires_from_redis_after_keep_seconds(redis_url: str) -> None:
    share = uuid4()

    async def scenario() -> None:
        async with processes(redis_url, 2, keep_seconds=1) as (phone_side, screen_side):
            phone_side.put(share, "riverside", BENCH)
            with redis.Redis.from_url(redis_url) as client:
                await eventually(lambda: client.exists(key(share)), "the position reaching Redis")
                assert 0 < client.pttl(key(share)) <= 1000  # held with an expiry, not for ever
                assert await asyncio.to_thread(screen_side.latest, share) == (BENCH, BENCH)
                await eventually(lambda: screen_side.latest(share) is None,
                                 "the position expiring")
                assert client.exists(key(share)) == 0
                assert await asyncio.to_thread(phone_side.latest, share) is None

    asyncio.run(scenario())


def test_an_ended_share_is_forgotten_in_redis_and_by_every_process(redis_url: str) -> None:
    share = uuid4()

    async def scenario() -> None:
        async with processes(redis_url, 2) as (phone_side, screen_side):
            phone_side.put(share, "riverside", BENCH)
            await eventually(lambda: screen_side.latest(share), "the position reaching Redis")
            await asyncio.to_thread(screen_side.forget, share)
            with redis.Redis.from_url(redis_url) as client:
                assert client.exists(key(share)) == 0
            assert await asyncio.to_thread(screen_side.latest, share) is None
            # Each process hears that the share ended (ShareFeed) and forgets it too.
            await asyncio.to_thread(phone_side.forget, share)
            assert await asyncio.to_thread(phone_side.latest, share) is None

    asyncio.run(scenario())


def test_stopping_a_process_closes_its_redis_connections(redis_url: str) -> None:
    async def scenario() -> None:
        with redis.Redis.from_url(redis_url) as client:
            before = len(client.client_list())
            positions = LivePositions(60, redis_url)
            await positions.start()
            await eventually(lambda: len(client.client_list()) > before, "the relay connecting")
            positions.put(uuid4(), "riverside", BENCH)
            await eventually(lambda: len(client.client_list()) > before + 1,
                             "the position being written")
            relay = positions._task
            await positions.stop()
            assert relay is not None and relay.done(), "stop returned before the relay ended"
            await eventually(lambda: len(client.client_list()) == before,
                             "every connection of the stopped process closing")

    asyncio.run(scenario())

"""What the live WebSocket feeds share: hearing PostgreSQL NOTIFYs in every API process, and
forwarding what arrives for one client until it goes away.

A change that other processes' clients must hear of sends a NOTIFY in the transaction that
records it (so it is heard if and only if it committed). `NotifyListener` hears one channel and
hands each decoded payload on; `forward` sends a client what its queue receives, ignoring what
the client sends, until it disconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import psycopg
from litestar import WebSocket

log = logging.getLogger("carebridge.live")


class NotifyListener:
    """Listens on one NOTIFY channel (reconnecting after database errors) and calls `heard`
    with each payload, decoded from JSON, on the event loop."""

    def __init__(self, url: str, channel: str,
                 heard: Callable[[dict[str, Any]], Any]) -> None:
        self.url, self.channel, self.heard = url, channel, heard
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name=f"listen-{self.channel}")
        await asyncio.wait_for(self.listening.wait(), timeout=30)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url,
                                                                 autocommit=True) as conn:
                    await conn.execute(f"LISTEN {self.channel}")
                    self.listening.set()
                    async for notice in conn.notifies():
                        outcome = self.heard(json.loads(notice.payload))
                        if asyncio.iscoroutine(outcome):
                            await outcome
            except psycopg.Error as error:
                log.warning("%s: database error (%s); listening again", self.channel,
                            type(error).__name__)
                await asyncio.sleep(1.0)


async def next_event(socket: WebSocket[Any, Any, Any]) -> dict[str, Any]:
    """The next ASGI event from a client (a message, or its going away)."""
    return dict(await socket.receive())


async def forward(socket: WebSocket[Any, Any, Any], queue: asyncio.Queue[Any],
                  render: Callable[[Any], dict[str, Any]]) -> None:
    """Sends the client each item of `queue`, rendered, until the client goes away; what the
    client sends is ignored."""
    receiving = asyncio.create_task(next_event(socket))
    try:
        while True:
            getting = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getting, receiving},
                                         return_when=asyncio.FIRST_COMPLETED)
            if receiving in done:
                if receiving.exception() is not None \
                        or receiving.result().get("type") == "websocket.disconnect":
                    getting.cancel()
                    return
                receiving = asyncio.create_task(next_event(socket))
                if getting not in done:
                    getting.cancel()
                    continue
            await socket.send_json(render(getting.result()))
    finally:
        receiving.cancel()

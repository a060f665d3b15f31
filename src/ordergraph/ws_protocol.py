"""uvicorn's websockets-sansio WebSocket protocol, holding less per connection.

`ordergraph serve` runs uvicorn with `ws="ordergraph.ws_protocol:LeanWebSocketProtocol"`
(`--ws` chooses another). It is uvicorn's `WebSocketsSansIOProtocol` with three changes, for
servers that keep thousands of mostly idle connections (issue 3: memory per idle
subscription):

- the handshake is not kept: uvicorn holds the parsed request (its `Headers`) and the
  response for the connection's whole life; here the request goes once the scope is built and
  the response once it is sent, and the scope's `headers` are emptied once the app has
  accepted the connection (an app that needs a header after `websocket.accept` must read it
  before);
- the inbox of received messages is a small list with one future made only while the app
  waits on it, not an `asyncio.Queue` (three deques, about 2.3 KiB, idle or not); the
  "writable" flag likewise makes a future only while a send waits for the transport;
- when the connection is lost, websockets' parser (a generator referring back to its
  protocol: a reference cycle) is closed, so the connection is freed by reference counting,
  not at the next full garbage collection;
- nothing else changes: frames, keepalive pings, flow control, close handshake and the ASGI
  messages are uvicorn's own code.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class Inbox:
    """What uvicorn's protocol uses of an `asyncio.Queue`: put_nowait, get, empty."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] | None = None
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items or ())

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        items = self._items
        item = items.pop(0)
        if not items:
            self._items = None
        return item


class Flag:
    """What uvicorn's protocol uses of an `asyncio.Event`: set, clear, is_set, wait."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = True) -> None:
        self._set = value
        self._waiters: list[asyncio.Future] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, None
        for fut in waiters or ():
            if not fut.done():
                fut.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        fut = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(fut)
        try:
            return await fut
        finally:
            if self._waiters is not None and fut in self._waiters:
                self._waiters.remove(fut)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        self.request = None  # the scope has what the app needs of it

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete and getattr(self, "response", None) is not None:
            self.response = None  # sent (or refused): not needed any more
            scope = getattr(self, "scope", None)
            if scope is not None and message["type"] == "websocket.accept":
                scope["headers"] = []  # the app read the handshake's headers before accepting

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.response = None
        self.request = None
        # websockets' ServerProtocol runs its parser as a generator that refers back to it (and
        # holds the handshake request and the last frame): a cycle that only a full collection
        # would free. Nothing is parsed after the connection is lost: close it.
        parser, self.conn.parser = self.conn.parser, None
        if parser is not None:
            parser.close()

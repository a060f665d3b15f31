"""A small graphql-transport-ws client over real WebSockets, for the subscription tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets

PROTOCOL = "graphql-transport-ws"


class WSClient:
    def __init__(self, ws) -> None:
        self.ws = ws
        self._ids = 0

    @classmethod
    async def connect(cls, base_url: str, auth: str | None = None, *, init: bool = True, payload: dict | None = None) -> WSClient:
        ws = await websockets.connect(base_url.replace("http", "ws", 1) + "/graphql", subprotocols=[PROTOCOL], max_size=None)
        client = cls(ws)
        if init:
            body = dict(payload or {})
            if auth:
                body["Authorization"] = f"Bearer {auth}"
            await client.send({"type": "connection_init", "payload": body})
            ack = await client.recv()
            assert ack["type"] == "connection_ack", ack
        return client

    async def send(self, message: dict) -> None:
        await self.ws.send(json.dumps(message))

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def subscribe(self, query: str, variables: dict | None = None) -> str:
        self._ids += 1
        sub_id = str(self._ids)
        await self.send({"id": sub_id, "type": "subscribe", "payload": {"query": query, "variables": variables or {}}})
        return sub_id

    async def next_data(self, timeout: float = 10) -> dict[str, Any]:
        """The next `next` message's data (fails on errors or completion)."""
        while True:
            message = await self.recv(timeout)
            if message["type"] == "ping":
                await self.send({"type": "pong"})
                continue
            assert message["type"] == "next", message
            assert "errors" not in message["payload"], message["payload"]["errors"]
            return message["payload"]["data"]

    async def take(self, n: int, timeout: float = 10) -> list[dict[str, Any]]:
        return [await self.next_data(timeout) for _ in range(n)]

    async def expect_silence(self, seconds: float = 0.5) -> None:
        try:
            message = await self.recv(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message {message}")

    async def close(self) -> None:
        await self.ws.close()

"""Noticing that a client has closed its connection, for the run lifecycle."""

from __future__ import annotations

from fastapi import Request

from service.runs.errors import ClientGone


def client_gone(request: Request) -> ClientGone:
    """A function whose coroutine resolves once the client has disconnected.

    The body has been read by then, so the server's next message is the disconnect.
    """

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return gone

"""uvicorn's h11 protocol with deadlines for reading a request.

uvicorn closes a keep-alive connection that stays silent, but once a client has sent
one byte it waits for the rest for ever: a connection held open with half-sent headers
or an unfinished body costs a descriptor and memory indefinitely. Here a request's
headers must be complete within HTTP_HEADER_TIMEOUT_S of the connection opening (or of
the previous response), and its body within HTTP_BODY_TIMEOUT_S of its headers; while
the app works on a request no deadline runs. A connection past its deadline is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from service.observability import metrics
from service.settings import get_settings


class TimedH11Protocol(H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._timeouts = {
            "headers": settings.http_header_timeout_s,
            "body": settings.http_body_timeout_s,
        }
        self._phase: str | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._set_phase(None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def _follow_request(self) -> None:
        """Start the deadline of the request's phase: its headers, its body, or none."""
        if self.transport.is_closing():
            self._set_phase(None)
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            self._set_phase("headers")
        elif state is h11.SEND_BODY:
            self._set_phase("body")
        else:
            self._set_phase(None)

    def _set_phase(self, phase: str | None) -> None:
        if phase == self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is not None:
            self._deadline = self.loop.call_later(self._timeouts[phase], self._expired, phase)

    def _expired(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        metrics.HTTP_READ_TIMEOUTS.labels(phase=phase).inc()
        self.transport.close()

"""Webhooks: when a run that names one ends, its outcome is POSTed there as JSON
(`run_id`, `thread_id`, `assistant_id`, `status`, `metadata`, `values`, `error`).

Delivery runs in the background of the worker that ran the run, so a slow receiver
never holds a thread: a connection failure, a 429 or a 5xx is retried WEBHOOK_RETRIES
times (after 1 s, 2 s, ...), each try bounded by WEBHOOK_TIMEOUT_S; redirects are not
followed. Unless WEBHOOK_ALLOW_PRIVATE, a URL whose host is, or resolves to, a
private, loopback, link-local or otherwise non-public address is refused: at the door
when the host is an address, else at delivery.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import HTTPException

from service.observability import metrics
from service.settings import Settings

log = logging.getLogger(__name__)


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


def check_webhook_target(url: str | None, settings: Settings) -> None:
    """422 for a webhook to a private address, unless WEBHOOK_ALLOW_PRIVATE."""
    if not url or settings.webhook_allow_private:
        return
    host = urlsplit(url).hostname or ""
    try:
        refused = not _public(host)
    except ValueError:  # a name, resolved at delivery
        refused = host == "localhost" or host.endswith(".localhost")
    if refused:
        raise HTTPException(
            422,
            "webhook points at a private or loopback address; set WEBHOOK_ALLOW_PRIVATE=true "
            "to allow it",
        )


class WebhookSender:
    """One worker's deliveries, each in a task of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = httpx.AsyncClient(
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            headers={"User-Agent": "booking-agent-webhook"},
        )
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, url: str, outcome: dict[str, Any]) -> None:
        task = asyncio.create_task(self._deliver(url, outcome), name="webhook")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, url: str, outcome: dict[str, Any]) -> None:
        run_id = outcome.get("run_id")
        if not await self._allowed(url):
            metrics.WEBHOOKS.labels(result="refused").inc()
            log.warning("webhook of run %s refused: its host is not a public address", run_id)
            return
        for attempt in range(self.settings.webhook_retries + 1):
            if attempt:
                await asyncio.sleep(2 ** (attempt - 1))
            try:
                response = await self.client.post(url, json=outcome)
            except httpx.HTTPError as exc:
                log.warning("webhook of run %s: %s (try %d)", run_id, exc, attempt + 1)
                continue
            if response.status_code == 429 or response.status_code >= 500:
                log.warning(
                    "webhook of run %s: HTTP %d (try %d)", run_id, response.status_code, attempt + 1
                )
                continue
            result = "delivered" if response.is_success else "rejected"
            metrics.WEBHOOKS.labels(result=result).inc()
            if result == "rejected":
                log.warning("webhook of run %s: HTTP %d", run_id, response.status_code)
            return
        metrics.WEBHOOKS.labels(result="failed").inc()
        log.warning("webhook of run %s failed after %d tries", run_id, attempt + 1)

    async def _allowed(self, url: str) -> bool:
        if self.settings.webhook_allow_private:
            return True
        parts = urlsplit(url)
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                parts.hostname, parts.port or 443, type=socket.SOCK_STREAM
            )
        except OSError:
            return True  # unresolvable: the post fails and is counted as such
        return all(_public(str(info[4][0])) for info in found)

    async def aclose(self, timeout_s: float) -> None:
        """Let deliveries under way finish for a while, then close the connections."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout_s)
        for task in self._pending:
            task.cancel()
        await self.client.aclose()

"""The chat model named by `LLM_PROVIDER`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from langchain_core.language_models import BaseChatModel

from service.settings import Settings


def build_model(
    settings: Settings, *, now: Callable[[], dt.datetime] | None = None
) -> BaseChatModel:
    """Offline rules by default; any OpenAI-compatible server with `LLM_PROVIDER=openai`."""
    if settings.llm_provider == "openai":
        # Imported here so offline deployments never load the OpenAI client.
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            model=settings.openai_model,
            api_key=settings.openai_api_key or "not-needed",
            base_url=settings.openai_base_url or None,
            max_retries=1,
            timeout=60,
        )
    from service.agent.offline.model import OfflineChatModel

    return OfflineChatModel(settings=settings, latency_ms=settings.offline_llm_latency_ms, now=now)

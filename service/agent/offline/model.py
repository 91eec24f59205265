"""A deterministic chat model for running the agent without a network or an API key.

It behaves like a tool-calling LLM (streams tokens, emits tool calls for bound
tools) but decides with rules from `offline.dialogue`, so load tests and local
runs exercise the whole serving path at a predictable cost (`latency_ms`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from service.agent.offline.dialogue import Dialogue, Reply
from service.settings import Settings

_TOKEN = re.compile(r"\S+\s*|\s+")


def tool_names(tools: Sequence[Any] | None) -> list[str]:
    """Names of tools given in OpenAI format (as `bind_tools` passes them)."""
    names = []
    for item in tools or ():
        if isinstance(item, dict):
            names.append(item.get("function", item).get("name", ""))
    return [name for name in names if name]


def tool_call_id(
    messages: Sequence[BaseMessage], name: str, args: dict[str, Any], scope: str = ""
) -> str:
    """Same conversation and same call give the same id, so replays stay idempotent.

    `scope` (the thread id, when running in a graph) keeps two threads that happen to
    say the same words from sharing an idempotency key.
    """
    digest = hashlib.sha256(f"{scope}\x1d".encode())
    for message in messages:
        digest.update(f"{message.type}\x1f{message.text}\x1e".encode())
    digest.update(json.dumps([name, args], sort_keys=True, ensure_ascii=False).encode())
    return "call_" + digest.hexdigest()[:24]


class OfflineChatModel(BaseChatModel):
    """Rule-based booking assistant in Spanish and English; no network, no key."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    settings: Settings
    latency_ms: int = 0
    now: Callable[[], dt.datetime] | None = None

    @property
    def _llm_type(self) -> str:
        return "offline-booking"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": "offline", "latency_ms": self.latency_ms}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools like a real provider; only bound tools are ever called."""
        formatted = [convert_to_openai_tool(item) for item in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    # --- decision ----------------------------------------------------------------------
    def _today(self) -> dt.date:
        tz = self.settings.tz
        current = self.now() if self.now else dt.datetime.now(tz)
        return current.astimezone(tz).date()

    def _reply(self, messages: list[BaseMessage], run_manager: Any, **kwargs: Any) -> AIMessage:
        allowed = kwargs.get("tool_choice") != "none"
        names = tool_names(kwargs.get("tools")) if allowed else []
        reply: Reply = Dialogue(self.settings, self._today(), names).respond(messages)
        if reply.tool_name is None:
            return AIMessage(content=reply.text)
        metadata = getattr(run_manager, "metadata", None) or {}
        scope = str(metadata.get("thread_id", ""))
        call_id = tool_call_id(messages, reply.tool_name, reply.tool_args, scope)
        return AIMessage(
            content="",
            tool_calls=[{"name": reply.tool_name, "args": reply.tool_args, "id": call_id}],
        )

    @staticmethod
    def _chunks(message: AIMessage) -> Iterator[ChatGenerationChunk]:
        if message.tool_calls:
            call = message.tool_calls[0]
            chunk = AIMessageChunk(
                content="",
                tool_call_chunks=[
                    {
                        "name": call["name"],
                        "args": json.dumps(call["args"], ensure_ascii=False),
                        "id": call["id"],
                        "index": 0,
                    }
                ],
            )
            yield ChatGenerationChunk(message=chunk)
            return
        for token in _TOKEN.findall(str(message.content)):
            yield ChatGenerationChunk(message=AIMessageChunk(content=token))

    # --- BaseChatModel -----------------------------------------------------------------
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        return ChatResult(
            generations=[ChatGeneration(message=self._reply(messages, run_manager, **kwargs))]
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        return ChatResult(
            generations=[ChatGeneration(message=self._reply(messages, run_manager, **kwargs))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if self.latency_ms:
            time.sleep(self.latency_ms / 1000)
        # BaseChatModel reports each chunk to the callbacks itself.
        yield from self._chunks(self._reply(messages, run_manager, **kwargs))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if self.latency_ms:
            await asyncio.sleep(self.latency_ms / 1000)
        for chunk in self._chunks(self._reply(messages, run_manager, **kwargs)):
            yield chunk

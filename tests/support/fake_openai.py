"""A local OpenAI-compatible chat completions server, for testing LLM_PROVIDER=openai.

It speaks the real wire format (JSON and server-sent-event streaming, tool calls), so
langchain-openai talks real HTTP to it. Its "model": when the user asks about services
and no tool result is there yet, call `list_services`; on "book {json}", call
`book_appointment` with those arguments; after a tool result, answer with what it got;
otherwise echo a short answer. Every request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _tool_call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
        ],
    }


def _answer_tool(payload: dict[str, Any]) -> str:
    if "services" in payload:
        services = payload["services"]
        names = ", ".join(s["name"] if isinstance(s, dict) else str(s) for s in services)
        return f"We offer: {names}."
    if payload.get("status") == "confirmed":
        return f"Booked, code {payload['confirmation_code']}."
    if payload.get("status") == "declined":
        return f"Nothing was booked ({payload.get('reason') or 'no reason given'})."
    return f"The tool said: {payload.get('status')}."


def _reply(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
    last = messages[-1]
    tool_names = {t["function"]["name"] for t in tools}
    if last["role"] == "tool":
        return {"role": "assistant", "content": _answer_tool(json.loads(last["content"]))}
    text = str(last.get("content", ""))
    # "book {json args}": call book_appointment with those arguments.
    if text.startswith("book {") and "book_appointment" in tool_names:
        return _tool_call("book_appointment", json.loads(text[len("book ") :]))
    if "service" in text.lower() and "list_services" in tool_names:
        return _tool_call("list_services", {})
    return {"role": "assistant", "content": "Hello from the local model."}


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), **body}
                )
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                message = _reply(body["messages"], body.get("tools", []))
                if body.get("stream"):
                    self._stream(body, message)
                else:
                    self._json(body, message)

            def _json(self, body: dict[str, Any], message: dict[str, Any]) -> None:
                payload = json.dumps(
                    {
                        "id": f"chatcmpl-{uuid.uuid4().hex}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": message,
                                "finish_reason": "tool_calls"
                                if message.get("tool_calls")
                                else "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, body: dict[str, Any], message: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                base = {
                    "id": f"chatcmpl-{uuid.uuid4().hex}",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": body["model"],
                }
                if message.get("tool_calls"):
                    deltas = [
                        {
                            "role": "assistant",
                            "tool_calls": [{"index": 0, **call} for call in message["tool_calls"]],
                        }
                    ]
                    finish = "tool_calls"
                else:
                    words = message["content"].split(" ")
                    deltas = [{"role": "assistant", "content": ""}] + [
                        {"content": w + (" " if i < len(words) - 1 else "")}
                        for i, w in enumerate(words)
                    ]
                    finish = "stop"
                for delta in deltas:
                    chunk = {**base, "choices": [{"index": 0, "delta": delta}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

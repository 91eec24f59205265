"""The rules every request obeys before anything touches storage or the graph.

One place for what the whole API shares: identifiers match their pattern in full,
strings can be stored as UTF-8 (no lone surrogates, no NUL), numbers are finite and fit a
signed 64-bit integer (SQLite's and PostgreSQL's), metadata filter keys are plain
names and few, and nothing a client sent is quoted back at length.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}"
THREAD_ID = re.compile(ID_PATTERN)
ID_HELP = "1-128 characters: letters, digits, '-', '_', '.', ':' (starting with a letter or digit)"

# A metadata filter key: names joined by single dots (a dot reaches into nested
# metadata where the backend supports it), never an empty segment.
FILTER_KEY_PATTERN = r"[A-Za-z0-9_\-]{1,64}(\.[A-Za-z0-9_\-]{1,64}){0,3}"
MAX_FILTER_KEYS = 32

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Deeper than any body the API takes; the per-field limits (MAX_JSON_DEPTH) are lower.
MAX_BODY_DEPTH = 64
QUOTE_CHARS = 40


def check_thread_id(value: str) -> str:
    if not THREAD_ID.fullmatch(value):
        raise ValueError(f"thread_id must be {ID_HELP}")
    return value


def _string_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid UTF-8)"
    if "\x00" in text:
        return "contains a NUL character (PostgreSQL cannot store it)"
    return None


def json_problem(value: Any) -> str | None:
    """The first thing in a decoded JSON body that the service cannot store faithfully.

    Walks iteratively, so a deeply nested body cannot exhaust the stack.
    """
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_BODY_DEPTH:
            return f"{where or 'body'}: nested deeper than {MAX_BODY_DEPTH} levels"
        if isinstance(item, str):
            problem = _string_problem(item)
        elif isinstance(item, bool) or item is None:
            problem = None
        elif isinstance(item, int):
            problem = (
                None
                if INT64_MIN <= item <= INT64_MAX
                else "is an integer outside the signed 64-bit range"
            )
        elif isinstance(item, float):
            problem = None if math.isfinite(item) else "is not a finite number"
        elif isinstance(item, dict):
            problem = None
            for key, child in item.items():
                key_problem = _string_problem(key) if isinstance(key, str) else None
                if key_problem:
                    return f"{where or 'body'}: a key {key_problem}"
                name = safe_text(str(key), 24)
                stack.append((child, f"{where}.{name}" if where else name, depth + 1))
        elif isinstance(item, list):
            problem = None
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
        else:
            problem = None
        if problem:
            return f"{where or 'body'} {problem}"
    return None


def safe_text(text: str, limit: int = QUOTE_CHARS) -> str:
    """`text` shortened to `limit` characters, with anything not UTF-8 escaped."""
    if len(text) > limit:
        text = text[:limit] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """What a client sent, for an error message: quoted, at most `limit` characters."""
    return repr(safe_text(value if isinstance(value, str) else repr(value), limit))


def check_webhook_url(value: str) -> str:
    """An absolute http(s) URL with a host and no credentials: where a run's end is sent."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("webhook must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise ValueError("webhook must not carry credentials in the URL")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise ValueError("webhook has an invalid port") from None
    return value

"""The chat page's routes, in process: every file the page loads is served with its
type and the page's policy, and CHAT_PAGE=false removes them all."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from service.api.routes.chat import CHAT_DIR
from service.app import create_app
from service.settings import Settings


def _client(**settings: object) -> TestClient:
    return TestClient(create_app(Settings(**settings)))  # no lifespan: no storage needed


def test_every_file_the_page_loads_is_served() -> None:
    client = _client()
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    loaded = set(re.findall(r'(?:src|href)="(/[^"]*)"', page.text))
    assert loaded == {"/chat/chat.js", "/chat/chat.css"}
    types = {"/chat/chat.js": "text/javascript", "/chat/chat.css": "text/css"}
    for path in loaded:
        served = client.get(path)
        assert served.status_code == 200 and served.headers["content-type"].startswith(types[path])
        assert served.text == (CHAT_DIR / path.rsplit("/", 1)[1]).read_text()


def test_chat_page_false_removes_the_page() -> None:
    client = _client(chat_page=False)
    for path in ("/", "/chat/chat.js", "/chat/chat.css"):
        assert client.get(path).status_code == 404

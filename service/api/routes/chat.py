"""The chat page at `/`: static files that talk to this service's own API.

The page holds no data, so it needs no key to load; its calls to the API carry the
key the customer enters when the server asks for one. CHAT_PAGE=false removes it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

CHAT_DIR = Path(__file__).resolve().parent.parent / "chat"
# Scripts and styles from this origin only, and no framing: a key typed into the page
# stays with the page.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["chat"], include_in_schema=False)


def _asset(name: str, media_type: str) -> FileResponse:
    return FileResponse(CHAT_DIR / name, media_type=media_type, headers=PAGE_HEADERS)


@router.get("/")
async def chat_page() -> FileResponse:
    """The page itself."""
    return _asset("index.html", "text/html; charset=utf-8")


@router.get("/chat/chat.js")
async def chat_script() -> FileResponse:
    return _asset("chat.js", "text/javascript; charset=utf-8")


@router.get("/chat/chat.css")
async def chat_styles() -> FileResponse:
    return _asset("chat.css", "text/css; charset=utf-8")

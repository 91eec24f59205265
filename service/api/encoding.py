"""JSON responses, encoded the fast way (`service.runs.encoding`)."""

from __future__ import annotations

from typing import Any

from fastapi import Response

from service.runs.encoding import encode


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(encode(data), status_code=status_code, media_type="application/json")

"""CORS for browser apps on other origins, and JSON bodies under any Content-Type only
for requests with no Origin or an allowed one, on real servers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import ServerProcess

pytestmark = [pytest.mark.timeout(120), pytest.mark.backends("sqlite")]

APP = "http://app.example:3000"
OTHER = "https://evil.example"
RUN = {"assistant_id": "agent", "input": {"messages": [{"role": "user", "content": "hi"}]}}


@pytest.fixture(scope="module")
def cors_server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[ServerProcess]:
    env = {**backend_env, "CORS_ALLOW_ORIGINS": f"{APP},http://localhost:5173"}
    with ServerProcess(tmp_path_factory.mktemp("cors"), workers=2, env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def plain_server(
    tmp_path_factory: pytest.TempPathFactory, backend_env: dict[str, str]
) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("plain"), workers=2, env=backend_env) as proc:
        yield proc


def preflight(base: str, path: str, origin: str, method: str = "POST") -> httpx.Response:
    return httpx.options(
        f"{base}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
    )


def test_preflights_from_an_allowed_origin_are_answered(cors_server: ServerProcess) -> None:
    for path in ("/threads", "/threads/search", f"/threads/{uuid.uuid4()}/runs/stream"):
        response = preflight(cors_server.base_url, path, APP)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["access-control-allow-origin"] == APP
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "x-api-key" in response.headers["access-control-allow-headers"].lower()
        assert response.headers["access-control-max-age"] == "600"
    refused = preflight(cors_server.base_url, "/threads", OTHER)
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


def test_responses_to_an_allowed_origin_expose_where_the_run_is(
    cors_server: ServerProcess,
) -> None:
    base = cors_server.base_url
    thread = httpx.post(f"{base}/threads", json={}, headers={"Origin": APP}).json()
    response = httpx.post(
        f"{base}/threads/{thread['thread_id']}/runs/wait", json=RUN, headers={"Origin": APP}
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    exposed = response.headers["access-control-expose-headers"].lower()
    assert {"content-location", "location", "retry-after"} <= set(exposed.split(", "))
    assert "content-location" in response.headers
    other = httpx.get(f"{base}/ok", headers={"Origin": OTHER})
    assert "access-control-allow-origin" not in other.headers


def test_json_under_another_content_type_only_without_a_foreign_origin(
    cors_server: ServerProcess,
) -> None:
    base = cors_server.base_url
    body = httpx.Request("POST", "/", json={**RUN, "if_not_exists": "create"}).content
    text_plain = {"Content-Type": "text/plain;charset=UTF-8"}
    for headers in ({}, {"Origin": APP}):  # a server-side proxy; the allowed browser app
        thread_id = str(uuid.uuid4())
        response = httpx.post(
            f"{base}/threads/{thread_id}/runs/wait", content=body, headers={**text_plain, **headers}
        )
        assert response.status_code == 200, (headers, response.text)
        assert response.json()["messages"][-1]["type"] == "ai"
    # A page on another site sends a "simple" request: it is not read, nothing is written.
    thread_id = str(uuid.uuid4())
    refused = httpx.post(
        f"{base}/threads/{thread_id}/runs/wait",
        content=body,
        headers={**text_plain, "Origin": OTHER},
    )
    assert refused.status_code == 422 and refused.json()["detail"]
    assert httpx.get(f"{base}/threads/{thread_id}").status_code == 404


def test_without_cors_settings_there_are_no_cors_headers(plain_server: ServerProcess) -> None:
    base = plain_server.base_url
    assert preflight(base, "/threads", APP).status_code == 405
    response = httpx.get(f"{base}/ok", headers={"Origin": APP})
    assert not any(name.startswith("access-control-") for name in response.headers)
    thread_id = str(uuid.uuid4())
    foreign = httpx.post(
        f"{base}/threads/{thread_id}/runs/wait",
        content=httpx.Request("POST", "/", json={**RUN, "if_not_exists": "create"}).content,
        headers={"Content-Type": "text/plain", "Origin": APP},
    )
    assert foreign.status_code == 422
    assert httpx.get(f"{base}/threads/{thread_id}").status_code == 404

"""The chat page at `/` in a real headless Chromium (Debian's `chromium`, driven by
Playwright through `executable_path`) against real workers: a customer asks, sees the
reply stream in token by token and the tool calls, approves a booking, reloads and
finds the conversation, in the list too.

Without a Chromium binary the tests skip with the reason, except under CI, where they
fail. CHROMIUM_PATH names another binary.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.server import ServerProcess

pytestmark = pytest.mark.timeout(180)

ALICE = "alice-key-0123456789abcdef"
WAIT_MS = 15_000
# Counts the text nodes appended to a bubble while it streams (the page appends one per
# token; the final render from the thread's state replaces the bubble).
COUNT_STREAMED_TOKENS = """
window.streamedTokens = 0;
new MutationObserver((records) => {
  for (const record of records) {
    if (record.target.classList && record.target.classList.contains("streaming")) {
      window.streamedTokens += [...record.addedNodes].filter((n) => n.nodeType === 3).length;
    }
  }
}).observe(document, { childList: true, subtree: true });
"""


def _chromium() -> str:
    found = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if found:
        return found
    reason = "no Chromium binary: apt-get install chromium (or set CHROMIUM_PATH)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so this is an error, not a skip", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    with sync_playwright() as playwright:
        # Chromium's sandbox needs user namespaces, which a container running as root lacks.
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert errors == [], errors


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("chat"), workers=2) as proc:
        yield proc


def send(page: Page, text: str) -> None:
    page.fill("#prompt", text)
    page.click("#send")


def test_a_customer_books_through_the_chat_page(chat_server: ServerProcess, page: Page) -> None:
    page.add_init_script(COUNT_STREAMED_TOKENS)
    page.goto(f"{chat_server.base_url}/")
    expect(page.locator("h1")).to_have_text("Book an appointment")

    send(page, "What services do you offer?")
    reply = page.locator(".msg.ai").last
    expect(reply).to_contain_text("haircut", timeout=WAIT_MS)
    expect(page.locator("#send")).to_be_enabled(timeout=WAIT_MS)
    assert page.evaluate("window.streamedTokens") > 5  # token by token, not one block
    expect(page.locator(".tool-call").first).to_contain_text("list_services")
    expect(page.locator(".tool-result").first).to_contain_text("beard trim")

    send(page, "Book a haircut tomorrow at 10:00, I'm Ana, ana@example.com")
    approval = page.locator("#approval")
    expect(approval).to_be_visible(timeout=WAIT_MS)
    expect(approval).to_contain_text("Book haircut")
    expect(approval).to_contain_text("for Ana (ana@example.com)")
    expect(page.locator("#prompt")).to_be_disabled()  # the booking waits for a decision
    thread_id = page.url.split("#thread=")[1]
    state = httpx.get(f"{chat_server.base_url}/threads/{thread_id}").json()
    assert state["status"] == "interrupted"

    page.click("#approve")
    expect(approval).to_be_hidden()
    expect(page.locator(".msg.ai").last).to_contain_text("confirmation code", timeout=WAIT_MS)
    booked = page.locator(".tool-result").last
    expect(booked).to_contain_text('"status": "confirmed"')

    page.reload()
    expect(page.locator(".msg.human")).to_have_text(
        [
            "What services do you offer?",
            "Book a haircut tomorrow at 10:00, I'm Ana, ana@example.com",
        ],
        timeout=WAIT_MS,
    )
    expect(page.locator(".msg.ai").last).to_contain_text("confirmation code")
    listed = page.locator(f'#threads button[data-thread-id="{thread_id}"]')
    expect(listed).to_contain_text("What services do you offer?", timeout=WAIT_MS)
    expect(listed).to_have_attribute("aria-current", "true")


def test_a_declined_booking_books_nothing_and_the_list_switches_threads(
    chat_server: ServerProcess, page: Page
) -> None:
    page.goto(f"{chat_server.base_url}/")
    send(page, "Manicure on Wednesday at 16:00, I'm Eva, eva@example.com")
    expect(page.locator("#approval")).to_be_visible(timeout=WAIT_MS)
    declined_thread = page.url.split("#thread=")[1]
    page.click("#reject")
    expect(page.locator("#approval")).to_be_hidden(timeout=WAIT_MS)
    expect(page.locator(".tool-result").last).to_contain_text("declined", timeout=WAIT_MS)
    expect(page.locator("#send")).to_be_enabled(timeout=WAIT_MS)

    page.click("#new-chat")
    expect(page.locator(".msg")).to_have_count(0)
    send(page, "Which services do you have?")
    expect(page.locator(".msg.ai").last).to_contain_text("manicure", timeout=WAIT_MS)
    assert page.url.split("#thread=")[1] != declined_thread

    page.locator(f'#threads button[data-thread-id="{declined_thread}"]').click()
    expect(page.locator(".msg.human").first).to_contain_text("Manicure on Wednesday")
    assert page.url.endswith(f"#thread={declined_thread}")


def test_with_keys_on_the_page_asks_for_one_and_then_works(tmp_path: Path, page: Page) -> None:
    env = {"AUTH_ENABLED": "true", "API_KEYS": f"alice:{ALICE}"}
    with ServerProcess(tmp_path, workers=1, env=env) as server:
        page.goto(f"{server.base_url}/")  # the page itself needs no key
        expect(page.locator("#status")).to_contain_text("API key", timeout=WAIT_MS)
        page.click("#settings summary")
        page.fill("#api-key", ALICE)
        page.locator("#api-key").dispatch_event("change")
        send(page, "What services do you offer?")
        expect(page.locator(".msg.ai").last).to_contain_text("haircut", timeout=WAIT_MS)
        threads = httpx.post(
            f"{server.base_url}/threads/search", json={}, headers={"x-api-key": ALICE}
        ).json()
        assert len(threads) == 1 and threads[0]["metadata"]["owner"] == "alice"


def test_the_customer_picks_a_salon(chat_server: ServerProcess, page: Page) -> None:
    salon = httpx.post(
        f"{chat_server.base_url}/assistants",
        json={"graph_id": "agent", "name": "Salón Rosa", "context": {"salon_name": "Salón Rosa"}},
    ).json()
    page.goto(f"{chat_server.base_url}/")
    page.click("#settings summary")
    picker = page.locator("#assistant")
    expect(picker.locator(f'option[value="{salon["assistant_id"]}"]')).to_have_text("Salón Rosa")
    picker.select_option(salon["assistant_id"])
    send(page, "hello")
    expect(page.locator(".msg.ai").last).to_contain_text("Hi, this is Salón Rosa!", timeout=WAIT_MS)
    page.reload()  # the choice is kept
    expect(page.locator("#assistant")).to_have_value(salon["assistant_id"])

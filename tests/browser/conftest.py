"""Browser fixtures: the local stack and Debian's Chromium driven by Playwright (PyPI).

No ``playwright install``: Playwright drives the system browser at ``/usr/bin/chromium``
(``make browser-deps`` installs it with apt-get when it is missing) and the page loads
mqtt.js from ``web/node_modules`` (``make web-deps``). Everything listens on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from iotauth.local.stack import LocalPorts, LocalStack, StackInfo

ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = Path("/usr/bin/chromium")
MQTT_JS = ROOT / "web" / "node_modules" / "mqtt" / "dist" / "mqtt.min.js"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000  # the longest any single step in the page may take


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    missing = [
        what
        for what, ok in (
            (f"{CHROMIUM} (make browser-deps)", CHROMIUM.exists()),
            (f"{MQTT_JS.relative_to(ROOT)} (make web-deps)", MQTT_JS.is_file()),
        )
        if not ok
    ]
    if missing:
        # `make test` installs both first; running pytest by hand without them must say why.
        pytest.fail("browser tests need " + " and ".join(missing), pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def stack() -> Iterator[StackInfo]:
    with LocalStack(LocalPorts.any_free()) as running:
        yield running.info


@pytest.fixture
def open_page(chromium: Any, stack: StackInfo) -> Iterator[Callable[[], Any]]:
    """``open_page()`` → the chat page, loaded and configured, in a fresh browser context.

    ``open_page(without_config=True)``: the page finds no ``config.json`` and is filled in by
    hand, as against a deployed signer.

    Each call is a separate context (its own storage), i.e. a separate user.
    """
    contexts: list[Any] = []
    errors: list[str] = []

    def make(*, without_config: bool = False) -> Any:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        if without_config:  # as when the page is hosted on its own, next to a deployed stack
            page.route("**/config.json", lambda route: route.fulfill(status=404, body=""))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(stack.page_url)
        page.wait_for_selector("body[data-ready=true]")
        return page

    yield make
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

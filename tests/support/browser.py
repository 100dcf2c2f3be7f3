"""Helpers of the browser tests: Chromium's flags, a fresh page, and an axe-core accessibility
check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE = Path(__file__).resolve().parents[1] / "browser" / "vendor" / "axe.min.js"


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Run axe-core (WCAG 2.1 A and AA rules) on ``page`` as it is now; its violations, each
    ``{"id", "impact", "help", "nodes": [selector, ...]}``."""
    # evaluated through the DevTools protocol: the page's CSP (no inline scripts) stays in force
    page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    found = page.evaluate(
        """async () => {
            const tags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
            const r = await axe.run(document, {runOnly: tags});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.map(n => n.target.join(" "))}));
        }"""
    )
    return list(found)


@contextmanager
def fresh_page(browser: Browser, width: int, height: int, timeout_ms: int) -> Iterator[Page]:
    """A page in a new context (a fresh profile: no storage, no cookies) of ``width`` ×
    ``height`` CSS pixels, in Vietnamese; fails the test on an uncaught JavaScript error."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="vi-VN")
    context.set_default_timeout(timeout_ms)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    if errors:
        pytest.fail(f"JavaScript errors on the page: {errors}")

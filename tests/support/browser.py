"""Helpers of the browser tests: Chromium's flags and an axe-core accessibility check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

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

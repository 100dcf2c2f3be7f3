"""The public page holds still while it loads and while the proof of work is solved (it
starts with the voter's first choice): the layout shift (from a
``PerformanceObserver('layout-shift')`` set up before any script of the page, summed over
every shift not caused by input, stricter than CLS's worst window) over the first load, the
first choice and the solving stays at or under 0.02 on a 360 px phone and a 1280 px laptop."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.test_browser import CANDIDATES, TIMEOUT_MS
from tests.support.browser import axe_violations, fresh_page

#: Sums every layout shift not caused by input (stricter than CLS's worst session window).
OBSERVE_SHIFTS = """
window.__shifts = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    if (e.hadRecentInput) continue;
    const name = (s) => (s.node ? s.node.id || s.node.className || s.node.nodeName : '');
    window.__shifts.push({value: e.value, sources: (e.sources || []).map(name)});
  }
}).observe({type: 'layout-shift', buffered: true});
"""

CLS_TARGET = 0.02


@pytest.mark.browser
@pytest.mark.parametrize(("width", "height"), [(360, 740), (1280, 800)], ids=["phone", "laptop"])
def test_first_load_and_solving_do_not_move_the_page(
    _browser: Browser, live_server: Any, width: int, height: int
) -> None:
    with fresh_page(_browser, width, height, TIMEOUT_MS) as page:
        page.add_init_script(OBSERVE_SHIFTS)
        page.goto(f"{live_server.base_url}/?round={live_server.round_id}")
        expect(page.locator("[data-candidate-id]")).to_have_count(CANDIDATES)
        page.wait_for_timeout(800)  # the privacy figures, fonts, anything late of the first load
        first_load = sum(s["value"] for s in page.evaluate("() => window.__shifts"))
        assert axe_violations(page) == []
        # the proof of work starts with the first choice; the tap's own shifts (500 ms) are
        # excluded by the browser, the widget's loading and solving after it are not
        page.locator("[data-candidate-id]").first.locator("input[name=choice]").check()
        page.wait_for_timeout(600)
        assert axe_violations(page) == []  # solving
        page.wait_for_function(
            f"() => Boolean(localStorage.getItem('voter_token_device_{live_server.round_id}'))",
            timeout=60_000,
        )
        page.wait_for_timeout(800)  # the panel's change after the credential, the privacy figures
        shifts = page.evaluate("() => window.__shifts")
        total = sum(s["value"] for s in shifts)
        print(f"CLS {width}px: first load {first_load:.4f}, with solving {total:.4f} {shifts}")
        assert total <= CLS_TARGET, shifts
        assert axe_violations(page) == []  # solved
        page.screenshot(path=f"tests/artifacts/page-solved-{width}.png")

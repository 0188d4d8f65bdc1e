"""The report page in a real browser: Debian's Chromium, headless, driven by Playwright.

The API runs as a real uvicorn server on a free port; the test asks it for a signed link, opens
the link in a fresh browser context (no API key anywhere), checks the findings tables and that
each chart drew its bars, and saves a screenshot under test-artifacts/ (git-ignored). `make test`
installs Chromium when it is missing; under CI (CI=true) a missing browser fails the test,
elsewhere it skips it.
"""

from __future__ import annotations

import httpx

from tests.api.helpers import new_tenant, source_payload
from tests.api.seed import seed_directory_and_activity
from tests.fixtures.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_or_skip
from worker.db import session_scope
from worker.models import ZoomUser


def _license(*account_ids: int) -> None:
    with session_scope() as db:
        for account_id in account_ids:
            user = db.get(ZoomUser, account_id)
            assert user is not None
            user.type = 2


def test_the_report_page_opens_from_a_signed_link_in_chromium(
    live_api: str, admin_key: str
) -> None:
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    with httpx.Client(base_url=live_api, timeout=30) as api:
        tenant = new_tenant(api, {"Authorization": f"Bearer {admin_key}"}, "acme")  # type: ignore[arg-type]
        source = api.post("/v1/sources", json=source_payload(), headers=tenant.headers)
        assert source.status_code == 201, source.text
        seeded = seed_directory_and_activity(tenant.id, source.json()["id"])
        _license(seeded.users["u-alice"], seeded.users["u-bob"])
        link = api.post("/v1/reports/access-review/links", json={"days": 30},
                        headers=tenant.headers)
        assert link.status_code == 201, link.text
        href = link.json()["href"]
    assert href.startswith(live_api)
    assert "token=" in href

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            response = page.goto(href, wait_until="load")
            assert response is not None
            assert response.status == 200
            assert page.title() == "Access review: acme"
            # The findings tables: bob and carol are orphans (no identity), alice is not.
            orphans = page.locator('table[data-finding="orphan"] tbody tr')
            assert sorted(orphans.evaluate_all("rows => rows.map(r => r.dataset.zoomId)")) == [
                "u-bob", "u-carol"]
            assert page.locator('[data-count="orphan"]').inner_text() == "2"
            assert page.locator('[data-count="accounts"]').inner_text() == "3"
            # Alice and Bob hold licences; Bob's last activity is 120 days old.
            unused = page.locator('table[data-finding="unused_licence"] tbody tr')
            assert unused.evaluate_all("rows => rows.map(r => r.dataset.zoomId)") == ["u-bob"]
            assert page.locator('[data-count="unused_licence_share"]').inner_text() == "50%"
            assert page.locator('table[data-finding="leaver"]').count() == 0
            # Each chart drew: an SVG with a laid-out size and one bar per data point.
            for name, bars in (("daily-active", 91), ("days-active", 6), ("licences", 2)):
                chart = page.locator(f'svg[data-chart="{name}"]')
                box = chart.bounding_box()
                assert box is not None, name
                assert box["width"] > 100, name
                assert box["height"] > 30, name
                assert chart.locator("rect.bar").count() == bars, name
            licences = page.locator('svg[data-chart="licences"] rect.bar').evaluate_all(
                "bars => bars.map(b => [b.dataset.value, Math.round(b.getBBox().width)])")
            assert [v for v, _ in licences] == ["1", "1"]
            assert all(width > 100 for _, width in licences)
            # Alice's sign-ins drew non-empty bars in the daily chart.
            drawn = page.locator('svg[data-chart="daily-active"] rect.bar').evaluate_all(
                "bars => bars.filter(b => b.getBBox().height > 0).length")
            assert drawn >= 3
            page.screenshot(path=str(ARTIFACTS / "access-review.png"), full_page=True)
        finally:
            browser.close()
    assert (ARTIFACTS / "access-review.png").stat().st_size > 10_000

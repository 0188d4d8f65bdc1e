"""/docs in a real browser with no way out to the internet: the operations still render."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.fixtures.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, browser_or_skip


def test_the_api_docs_show_the_operations_with_no_network(live_api: str) -> None:
    browser_or_skip()
    from playwright.sync_api import Route, sync_playwright

    local = urlsplit(live_api).netloc
    refused: list[str] = []

    def only_the_api(route: Route) -> None:
        # Everything but the API itself is refused, as on an air-gapped network.
        if urlsplit(route.request.url).netloc == local:
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.route("**/*", only_the_api)
            page = context.new_page()
            response = page.goto(f"{live_api}/docs", wait_until="load")
            assert response is not None
            assert response.status == 200
            # Swagger UI draws one block per operation once it has loaded the OpenAPI document.
            page.wait_for_selector(".opblock", timeout=30_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert "/v1/sources" in [p.replace("\u200b", "") for p in paths]
            assert page.locator(".opblock").count() > 30
            page.screenshot(path=str(ARTIFACTS / "api-docs.png"), full_page=False)
        finally:
            browser.close()
    assert refused == []  # nothing was even asked of the outside
    assert (ARTIFACTS / "api-docs.png").stat().st_size > 10_000

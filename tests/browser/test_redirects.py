"""Redirects in a real browser (Chromium, no extension needed: an optional stage on a connector
without a challenge key passes at once): a path lands on the stage's registered origin, the
relying party's site, not the API's; the tricky URLs are refused when the plan is created; and
the page itself refuses to follow a tampered redirect (a `javascript:` URL, userinfo).

Screenshots go to target/browser-screenshots/.
"""

import http.server
import json
import threading

import pytest
from playwright.sync_api import sync_playwright

from people import load_until
from test_stage_page import API, CHROMIUM, FLAGS, SHOTS, admin, create_plan, free_port
from test_stage_page import http as api

pytestmark = pytest.mark.skipif(not API, reason="run through make test (scripts/stack-lib.sh exports ENDPOINT_API)")


class Site(http.server.BaseHTTPRequestHandler):
    """The relying party's site: every path answers a page saying where the browser is."""

    def do_GET(self):  # noqa: N802 (the standard library's name)
        body = f"<!doctype html><title>Signed in</title><h1>Welcome back</h1><p>{self.path}</p>".encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site():
    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


@pytest.fixture(scope="module")
def stage(site):
    connector = admin("connector", "create", "--name", "redirects")["id"]
    return admin("stage", "create", "--connector", connector, "--redirect-origin", site)["id"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def test_a_path_lands_on_the_registered_origin(site, stage, browser):
    plan = create_plan(stage, "/welcome?from=stage")
    page = browser.new_page()
    load_until(page, plan["page"], lambda timeout: page.wait_for_url(f"{site}/welcome?from=stage", timeout=timeout))
    assert page.locator("h1").inner_text() == "Welcome back"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "7-redirect-on-the-relying-party.png"))
    page.close()


@pytest.mark.parametrize(
    "redirect",
    [
        "http://[::1]@evil.example/",
        "http://127.0.0.1@evil.example/",
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        " /welcome",
        "http://127.0.0.1:1/",
    ],
)
def test_tricky_redirects_are_refused_when_the_plan_is_created(stage, redirect):
    status, _, body = api("POST", "/v1/plans", {"stage": stage, "redirect": redirect})
    assert status == 400, body
    assert json.loads(body)["error"] == "bad_request"


@pytest.mark.parametrize("tampered", ["javascript:alert(document.domain)", "http://user:pw@127.0.0.1:9/x"])
def test_the_page_does_not_follow_a_tampered_redirect(site, stage, browser, tampered):
    plan = create_plan(stage, "/welcome")
    page = browser.new_page()
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    def tamper(route):
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"component": "xak-flow-redirect", "to": tampered}))

    page.route("**/executor", tamper)
    load_until(page, plan["page"], lambda timeout: page.wait_for_selector('main[data-state="error"]', timeout=timeout))
    assert "not a web address" in page.locator("[data-stage-status]").inner_text()
    assert page.url == plan["page"] and dialogs == []
    page.close()

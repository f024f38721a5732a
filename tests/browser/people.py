"""Helpers of tests/browser/test_page_for_people.py: the stand-in extension, the live region's
recorder, axe-core, and opening a hosted page past the local emulator's failures."""

import time
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "target" / "npm" / "node_modules" / "axe-core" / "axe.min.js"

# The extension's window messages, answered by the agent binary through an exposed function.
STAND_IN_EXTENSION = """
window.addEventListener("message", async (event) => {
  const data = event.data;
  if (event.source !== window || !data || data._ak_ext !== "authentik-platform-sso" || !data.challenge) return;
  const response = await window.__agentRespond(data.challenge);
  if (response) window.postMessage({ _ak_ext: "authentik-platform-sso", response }, window.location.origin);
});
"""
# Records every text the live region shows, in order (installed before the page's module runs).
LIVE_RECORDER = """
window.__announced = [];
new MutationObserver(() => {
  const region = document.querySelector("[data-stage-status]");
  if (!region) return;
  const text = region.textContent.replace(/\\s+/g, " ").trim();
  if (text && window.__announced[window.__announced.length - 1] !== text) window.__announced.push(text);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


def run_axe(page):
    """axe-core's violations on the page as it is, and how many rules it checked and passed."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async () => {
             const r = await axe.run(document);
             return { violations: r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.length })),
                      passed: r.passes.map((p) => p.id) };
           }"""
    )


def visit(page, url):
    """Opens a page that runs the stage (or lands on one with a state). The local emulator
    (`cargo lambda watch`) now and then answers `/v1/stage.js` with its own 500, or never,
    when requests for one function overlap, while the web function answered 200 at once
    (measured: 11 of 300 sequential requests of the module; 7 of 720 overlapping requests with
    curl; never for small answers). A page is loaded again, at most twice, as soon as the
    emulator refused its module or left the module's request unanswered for 5 s (the web
    function answers it in milliseconds), and when its module has not run within 15 s. Every
    answer of the stage itself stands."""
    module = watch_module(page)
    response = page.goto(url, wait_until="commit")
    settle(page, module)
    return response


def settle(page, module=None):
    """Waits until the page's module has run (`main[data-state]`), loading it again as `visit`
    says (`module`: what `watch_module` saw; without it, only after 15 s)."""
    until(page, lambda timeout: page.wait_for_selector("main[data-state]", state="attached", timeout=timeout), module)


def load_until(page, url, arrived):
    """Opens `url` without waiting for its `load` (which waits for the module as well) and waits
    for `arrived(timeout)` (a Playwright wait), loading the hosted page again as `visit` says."""
    module = watch_module(page)
    page.goto(url, wait_until="commit")
    return until(page, arrived, module)


def watch_module(page):
    """What the page's requests of its module (`/v1/stage.js`) met: how many the emulator
    refused, and since when each unanswered one waits."""
    module = {"refused": 0, "pending": {}}

    def sent(request):
        if request.url.endswith("/v1/stage.js"):
            module["pending"][id(request)] = time.monotonic()

    def done(request):
        module["pending"].pop(id(request), None)

    def answered(response):
        if response.url.endswith("/v1/stage.js") and response.status >= 500:
            module["refused"] += 1

    page.on("request", sent)
    page.on("requestfinished", done)
    page.on("requestfailed", done)
    page.on("response", answered)
    return module


def until(page, arrived, module=None):
    """`arrived(timeout)` within 15 s, waited for in half seconds; the hosted page loaded again,
    at most twice, as soon as the emulator refused or held its module (`module`) or after 15 s."""
    module = module if module is not None else {"refused": 0, "pending": {}}
    for attempt in range(3):
        refused = module["refused"]
        for _ in range(30):
            try:
                return arrived(500)
            except PlaywrightTimeout:
                held = any(time.monotonic() - t > 5 for t in module["pending"].values())
                if module["refused"] > refused or held:
                    break
        if attempt < 2 and "/page" in page.url:
            module["pending"].clear()
            page.reload(wait_until="commit")
        else:
            break
    raise AssertionError(f"{page.url}: not there after the hosted page was loaded {attempt + 1} time(s)")

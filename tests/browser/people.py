"""Helpers of tests/browser/test_page_for_people.py: the stand-in extension, the live region's
recorder, axe-core, and opening a hosted page past the local emulator's failures."""

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
    while the web function answered 200 at once (measured: 11 of 300 sequential requests of
    the module; never for small answers): when the module has not run within 15 s, the page is
    loaded again, at most twice. Every answer of the stage itself stands."""
    response = page.goto(url, wait_until="commit")
    settle(page)
    return response


def settle(page):
    """Waits until the page's module has run (`main[data-state]`); reloads it at most twice
    when it has not within 15 s (see `visit`)."""
    for attempt in range(3):
        try:
            page.wait_for_selector("main[data-state]", state="attached", timeout=15000)
            return
        except PlaywrightTimeout:
            if attempt < 2:
                page.reload(wait_until="commit")
    raise AssertionError(f"{page.url}: the module did not run, three times")

"""Helpers of tests/browser/test_page_for_people.py: the stand-in extension, the live region's
recorder, axe-core, and opening a hosted page past the local emulator's failures."""

from pathlib import Path

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
    """Opens a hosted page. The local emulator (`cargo lambda watch`) answers a few percent of
    `/v1/stage.js` requests with its own 500 while the web function answered 200 (measured:
    11 of 300 sequential requests; never for small answers): then the page is loaded again, at
    most twice. Only that failure is retried; every other answer stands."""
    for _ in range(3):
        failed = []

        def record(response):
            if response.url.endswith("/v1/stage.js") and response.status >= 500:
                failed.append(response.status)

        page.on("response", record)
        response = page.goto(url)
        page.wait_for_load_state("load")
        page.remove_listener("response", record)
        if not failed:
            return response
    raise AssertionError(f"{url}: the module failed to load three times")

"""The stage in a real browser: Debian's Chromium driven by Playwright, a stand-in for the
authentik extension (tests/browser/extension: content script + background relay to the native
host io.goauthentik.platform, exactly the extension's messages), and `endpoint-agent
native-host` registered in a throwaway profile. Runs inside the local stack of make test:
the functions under `cargo lambda watch` against moto.

Screenshots of each state go to target/browser-screenshots/.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from people import visit

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "tests" / "browser" / "extension"
EXTENSION_ID = "cpiflbgjplcglpcioajoollfokliibgn"  # from the manifest's "key"
SHOTS = ROOT / "target" / "browser-screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
API = os.environ.get("ENDPOINT_API", "")
# Chromium flags for this closed network (no background connections, no updates) and root.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
# Records CSP violations on every page, whatever it navigates to.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""

pytestmark = pytest.mark.skipif(not API, reason="run through make test (scripts/stack-lib.sh exports ENDPOINT_API)")


def admin(*args):
    out = subprocess.run([os.environ["STACK_ADMIN"], *args, "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return json.loads(out.stdout)


def agent_binary():
    return str(Path(os.environ["STACK_ADMIN"]).with_name("endpoint-agent"))


def agent(state, *args):
    out = subprocess.run([agent_binary(), "--state", str(state), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{args}: {out.stderr}"
    return out.stdout.strip()


def http(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(API + path, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def create_plan(stage, redirect):
    status, _, body = http("POST", "/v1/plans", {"stage": stage, "redirect": redirect})
    assert status == 201, body
    return json.loads(body)


def read_plan(plan):
    status, _, body = http("GET", f"/v1/plans/{plan}")
    assert status == 200, body
    return json.loads(body)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A connector with a P-256 key and a 2 s idle timeout, a required and an optional stage,
    and a device enrolled by the simulator, whose state the native host reads."""
    key = admin("key", "create")["key_id"]
    connector = admin("connector", "create", "--name", "browser", "--challenge-key", key, "--idle-timeout", "2s")["id"]
    required = admin("stage", "create", "--connector", connector, "--mode", "required")["id"]
    optional = admin("stage", "create", "--connector", connector, "--mode", "optional")["id"]
    token = admin("enrollment-token", "create", "--connector", connector)["key"]
    home = tmp_path_factory.mktemp("agent")
    state = home / "agent.json"
    serial = "VMware-56 4d 1a 2b 3c 4d 5e 6f-70 81 92 a3 b4 c5 d6 ee"
    agent(state, "enroll", "--server", API, "--token", token, "--serial", serial, "--name", "browser-laptop")
    SHOTS.mkdir(parents=True, exist_ok=True)
    return {"connector": connector, "required": required, "optional": optional, "token": token, "state": state, "serial": serial}


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def with_extension(playwright, world):
    """A browser profile with the stand-in extension and the simulator's native host."""
    profile = Path(tempfile.mkdtemp(prefix="endpoint-stage-profile-"))
    manifest = agent(world["state"], "install-native-host", "--profile", str(profile), "--extension-id", EXTENSION_ID)
    assert Path(manifest) == profile / "NativeMessagingHosts" / "io.goauthentik.platform.json"
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=False,
        ignore_default_args=["--disable-extensions"],
        args=["--headless=new", f"--disable-extensions-except={EXTENSION}", f"--load-extension={EXTENSION}", *FLAGS],
        viewport={"width": 420, "height": 640},
    )
    context.add_init_script(CSP_RECORDER)
    # The background worker has started: the extension is loaded.
    if not context.service_workers:
        context.wait_for_event("serviceworker", timeout=15000)
    yield context
    context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def without_extension(playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
    context = browser.new_context(viewport={"width": 420, "height": 640})
    context.add_init_script(CSP_RECORDER)
    yield context
    browser.close()


def status_text(page):
    """What happened, as the live region's first line says it."""
    return page.locator("[data-stage-title]").inner_text()


def violations(page):
    return page.evaluate("window.__cspViolations")


def test_the_relying_party_example_end_to_end(world, with_extension):
    port = free_port()
    # The app asks for its own URL as the assertion's audience: registered on the stage.
    admin("stage", "set-audiences", world["required"], f"http://127.0.0.1:{port}")
    env = dict(os.environ)
    app = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "relying-party" / "app.py"), "--api", API, "--stage", world["required"], "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        page = with_extension.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.screenshot(path=str(SHOTS / "1-relying-party-login.png"))
        with page.expect_response(lambda r: r.url.endswith("/page")) as page_response:
            page.get_by_role("button", name="Sign in with this device").click()
        headers = page_response.value.headers
        assert page_response.value.status == 200
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        page.wait_for_url(f"http://127.0.0.1:{port}/done", timeout=20000)
        result = page.locator("[data-result]")
        assert result.get_attribute("data-result") == "passed"
        assert page.locator("[data-device]").get_attribute("data-device") == world["serial"]
        # The app verified the plan's device assertion (PyJWT, against /.well-known/jwks.json).
        device_id = admin("device", "show", world["serial"])["id"]
        assert page.locator("[data-sub]").inner_text() == device_id
        assert "browser-laptop" in page.inner_text("main")
        page.screenshot(path=str(SHOTS / "2-relying-party-signed-in.png"))
        page.close()
    finally:
        app.terminate()
        app.wait(timeout=10)


def test_a_required_stage_without_the_extension_is_denied_after_the_idle_timeout(world, without_extension):
    plan = create_plan(world["required"], "/after-required")
    page = without_extension.new_page()
    started = time.monotonic()
    response = visit(page, plan["page"])
    assert response.status == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    page.wait_for_selector('main[data-state="denied"]', timeout=15000)
    waited = time.monotonic() - started
    # Not the words of a forged answer: no agent answered, and what to do about it.
    assert status_text(page) == "✗ No authentik agent answered on this device."
    assert "start it" in page.locator("[data-stage-explain]").inner_text()
    assert page.get_by_role("link", name="Back to sign-in").get_attribute("href").endswith("/after-required?device_check=no_response")
    assert waited >= 2, f"the page waited {waited:.1f} s for an agent (idle timeout 2 s)"
    assert read_plan(plan["plan"])["status"] == "denied"
    page.screenshot(path=str(SHOTS / "3-required-denied-without-extension.png"))
    assert violations(page) == []
    page.close()


def test_an_optional_stage_without_the_extension_passes_with_no_device(world, without_extension):
    plan = create_plan(world["optional"], "/v1/plans/after-optional/page")
    page = without_extension.new_page()
    visit(page, plan["page"])
    page.wait_for_url("**/v1/plans/after-optional/page", timeout=15000)
    shown = read_plan(plan["plan"])
    assert (shown["status"], shown["device"]) == ("passed", None)
    page.close()


def test_a_device_whose_token_was_revoked_fails_to_validate_and_can_try_again(world, with_extension):
    admin("device", "revoke-tokens", world["serial"], "--connector", world["connector"])
    try:
        plan = create_plan(world["required"], "/after-revoked")
        page = with_extension.new_page()
        visit(page, plan["page"])
        page.wait_for_selector('main[data-state="failed"]', timeout=15000)
        # Its tokens revoked, the device is no longer enrolled for this sign-in.
        assert page.locator("main").get_attribute("data-reason") == "not_enrolled"
        assert status_text(page) == "✗ This device is not enrolled for this sign-in."
        retry = page.get_by_role("button", name="Try again")
        assert retry.is_visible()
        # Keyboard users land on the button.
        assert page.evaluate("document.activeElement.matches('[data-stage-retry]')")
        page.screenshot(path=str(SHOTS / "4-failed-to-validate-device.png"))
        assert violations(page) == []
        # Trying again answers the new challenge: still revoked, so it fails again.
        page.keyboard.press("Enter")
        page.wait_for_selector('main[data-state="failed"]', timeout=15000)
        assert read_plan(plan["plan"])["status"] == "pending"
        page.close()
    finally:
        # Put the device back for the other cases: a reinstall, approved by the operator.
        token = admin("device", "allow-reenroll", world["serial"], "--connector", world["connector"])["key"]
        agent(world["state"], "enroll", "--server", API, "--token", token, "--serial", world["serial"], "--name", "browser-laptop")


def test_an_unknown_plan_gets_the_readable_html_error_page(without_extension):
    page = without_extension.new_page()
    response = page.goto(API + "/v1/plans/NoSuchPlan123/page")
    assert response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    assert page.locator("h1").inner_text() == "This sign-in link has expired"
    page.screenshot(path=str(SHOTS / "5-unknown-plan.png"))
    page.close()


def test_the_content_security_policy_is_in_force(world, without_extension):
    plan = create_plan(world["optional"], "/v1/plans/after-csp/page")
    page = without_extension.new_page()
    response = visit(page, plan["page"])
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    # An inline script injected into the page does not run, and is reported as a violation:
    # the policy is enforced, so the pages above ran with no violation at all.
    ran = page.evaluate(
        """() => { window.__inline = false; const s = document.createElement('script');
                   s.textContent = 'window.__inline = true'; document.head.append(s);
                   return new Promise((r) => setTimeout(() => r(window.__inline), 200)); }"""
    )
    assert ran is False
    assert any(v.startswith("script-src") for v in violations(page)), violations(page)
    page.close()


def test_the_stage_page_is_readable_on_a_phone_and_says_what_it_does(world, without_extension):
    plan = create_plan(world["required"], "/after-phone")
    page = without_extension.new_page()
    page.set_viewport_size({"width": 360, "height": 640})
    visit(page, plan["page"])
    status = page.locator("[data-stage-status]")
    assert status.get_attribute("role") == "status" and status.get_attribute("aria-live") == "polite"
    assert status_text(page) in ("Checking this device…", "Asking this device's authentik agent (up to 2 s)…")
    page.screenshot(path=str(SHOTS / "0-stage-page-waiting.png"))
    # Nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.close()


FACTS = ROOT / "examples" / "facts"


def test_a_non_compliant_device_reads_what_to_fix_and_passes_once_fixed(world, with_extension):
    """A required stage with a posture policy: the denial lists each failing rule's title and
    remediation and each warning's deadline; fixed and checked in again, the next sign-in
    passes. Uses the world's device on a connector of its own (so it runs last)."""
    key = admin("key", "create")["key_id"]
    connector = admin("connector", "create", "--name", "browser-compliance", "--challenge-key", key, "--idle-timeout", "2s")["id"]
    stage = admin("stage", "create", "--connector", connector, "--mode", "required")["id"]
    policy = admin("policy", "create", "--name", "browser baseline")["id"]
    admin("policy", "add-rule", policy, "os-version", "--family", "mac_os", "--min", "14.4")
    admin("policy", "add-rule", policy, "disk-encryption", "--title", "FileVault turned on",
          "--remediation", "Open System Settings > Privacy & Security > FileVault and turn it on.")
    admin("policy", "add-rule", policy, "firewall", "--enforce", "grace:72h")
    admin("stage", "set-policy", stage, policy)
    # The serial is enrolled already (on the first connector): the operator approves it here.
    token = admin("device", "allow-reenroll", world["serial"], "--connector", connector)["key"]
    agent(world["state"], "enroll", "--server", API, "--token", token, "--serial", world["serial"], "--name", "browser-laptop")
    agent(world["state"], "check-in", "--server", API, "--facts", str(FACTS / "macos-non-compliant.json"))

    plan = create_plan(stage, "/after-compliance")
    page = with_extension.new_page()
    visit(page, plan["page"])
    page.wait_for_selector('main[data-state="denied"]', timeout=15000)
    assert status_text(page) == "✗ This device does not meet the requirements to sign in."
    assert page.locator("main").get_attribute("data-reason") == "non_compliant"
    items = page.locator("[data-stage-errors] li").all_inner_texts()
    assert items[0].startswith("macOS 14.4 or later\n") and "Update macOS to version 14.4" in items[0], items
    assert items[1] == "FileVault turned on\nOpen System Settings > Privacy & Security > FileVault and turn it on.", items
    # The firewall rule is in its grace period: a warning with its deadline, in the page's time.
    warning = page.locator("[data-stage-errors] li[data-warning]")
    assert warning.locator("strong").inner_text() == "Firewall turned on"
    deadline = read_plan(plan["plan"])["compliance"]["warnings"][0]["deadline"]
    iso = warning.locator("time").get_attribute("datetime")
    assert page.evaluate(f"Date.parse('{iso}') / 1000") == deadline
    assert "start the sign-in again" in items[-1]
    page.screenshot(path=str(SHOTS / "5-denied-non-compliant-with-remediation.png"), full_page=True)
    assert violations(page) == []
    page.close()

    # Fixed but the firewall: the sign-in passes (the firewall is in its grace period), and the
    # page says what to fix by when before it continues.
    facts = json.loads((FACTS / "macos-compliant.json").read_text())
    facts["network"]["firewall_enabled"] = False
    almost = Path(tempfile.mkdtemp()) / "firewall-off.json"
    almost.write_text(json.dumps(facts))
    agent(world["state"], "check-in", "--server", API, "--facts", str(almost))
    plan = create_plan(stage, "/v1/plans/after-warning/page")
    page = with_extension.new_page()
    visit(page, plan["page"])
    page.wait_for_selector('main[data-state="passed-with-warnings"]', timeout=15000)
    warning = page.locator("[data-stage-errors] li[data-warning]")
    assert warning.locator("strong").inner_text() == "Firewall turned on"
    assert warning.locator("time").get_attribute("datetime")
    assert "start the sign-in again" not in page.locator("[data-stage-errors]").inner_text()
    assert page.evaluate("document.activeElement.matches('[data-stage-retry]')")
    assert page.get_by_role("button", name="Continue").is_visible()
    page.screenshot(path=str(SHOTS / "6-passed-with-a-warning.png"), full_page=True)
    assert violations(page) == []
    page.keyboard.press("Enter")
    page.wait_for_url("**/after-warning/page", timeout=15000)
    assert read_plan(plan["plan"])["status"] == "passed"
    page.close()

    agent(world["state"], "check-in", "--server", API, "--facts", str(FACTS / "macos-compliant.json"))
    plan = create_plan(stage, "/v1/plans/after-fixed/page")
    page = with_extension.new_page()
    visit(page, plan["page"])
    page.wait_for_url("**/after-fixed/page", timeout=20000)
    assert read_plan(plan["plan"])["compliance"]["status"] == "compliant"
    page.close()

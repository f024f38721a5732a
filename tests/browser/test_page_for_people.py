"""The hosted page as a person meets it, in Chromium: each state it can end in (and its waiting
state) in two languages, with a screenshot of each (target/browser-screenshots/people/) and an
accessibility audit by axe-core (installed by scripts/browser.sh; results in
target/browser-screenshots/people/axe-results.json) with no serious or critical violation;
the whole flow by keyboard alone; the live region announcing each state change; the module's
statuses in the language of navigator.languages.

The agent side is the real agent binary (`endpoint-agent respond`, what the native host runs)
behind a page-level stand-in for the extension that speaks the extension's window messages:
so one device can be locked, another enrolled elsewhere, and one answer malformed, without
touching the real extension's profile (tests/browser/test_stage_page.py drives that one).
"""

import json
import secrets
import subprocess
import sys
import time
import urllib.request

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

from people import AXE, LIVE_RECORDER, STAND_IN_EXTENSION, run_axe, settle, visit
from test_stage_page import API, CHROMIUM, FLAGS, ROOT, admin, agent, create_plan, free_port, http

SHOTS = ROOT / "target" / "browser-screenshots" / "people"
FACTS = ROOT / "examples" / "facts"
# Each language with the browser locale that asks for it (Accept-Language, navigator.languages).
LOCALES = {"en": "en-US", "de": "de-DE"}
HELP_TEXT = "Call the IT desk on 1234 (8:00-18:00).\nMention \"device check\"."
HELP_URL = "https://help.example.com/device-check"

pytestmark = pytest.mark.skipif(not API, reason="run through make test (scripts/stack-lib.sh exports ENDPOINT_API)")

AXE_RESULTS = {}


def catalogue(lang):
    return json.loads((ROOT / "functions" / "web" / "assets" / "i18n" / f"{lang}.json").read_text())


TEXT = {lang: catalogue(lang) for lang in LOCALES}


def enroll(home, connector, serial, name):
    """A device enrolled on `connector`, its agent state in `home`."""
    token = admin("enrollment-token", "create", "--connector", connector)["key"]
    state = home / f"{name}.json"
    agent(state, "enroll", "--server", API, "--token", token, "--serial", serial, "--name", name)
    return state


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One challenge key behind several connectors (a device enrolled on one answers another's
    challenges: not enrolled for that sign-in): required stages with the operator's help, idle
    timeout 2 s where nothing answers, 15 s where the agent binary answers (started for each
    answer: slow on a loaded machine); one with a policy, one disabled, one waiting 30 s."""
    assert AXE.is_file(), f"{AXE} is missing: scripts/browser.sh installs it"
    key = admin("key", "create")["key_id"]
    main = admin("connector", "create", "--name", "people", "--challenge-key", key, "--idle-timeout", "2s")["id"]
    answered = admin("connector", "create", "--name", "people-answered", "--challenge-key", key, "--idle-timeout", "15s")["id"]
    other = admin("connector", "create", "--name", "people-other", "--challenge-key", key, "--idle-timeout", "2s")["id"]
    slow = admin("connector", "create", "--name", "people-slow", "--challenge-key", key, "--idle-timeout", "30s")["id"]
    broken = admin("connector", "create", "--name", "people-broken", "--challenge-key", key)["id"]
    required = admin("stage", "create", "--connector", main, "--mode", "required")["id"]
    shown = admin("stage", "set-help", required, "--text", HELP_TEXT, "--url", HELP_URL)
    assert shown["help"] == {"text": HELP_TEXT, "url": HELP_URL}
    answered_required = admin("stage", "create", "--connector", answered, "--mode", "required")["id"]
    admin("stage", "set-help", answered_required, "--text", HELP_TEXT, "--url", HELP_URL)
    waiting = admin("stage", "create", "--connector", slow, "--mode", "required")["id"]
    unavailable = admin("stage", "create", "--connector", broken, "--mode", "required")["id"]
    admin("connector", "disable", broken)
    policy = admin("policy", "create", "--name", "people baseline")["id"]
    admin("policy", "add-rule", policy, "disk-encryption", "--title", "FileVault turned on",
          "--remediation", "Open System Settings > Privacy & Security > FileVault and turn it on.")
    compliance = admin("stage", "create", "--connector", answered, "--mode", "required", "--policy", policy)["id"]
    admin("stage", "set-help", compliance, "--text", HELP_TEXT, "--url", HELP_URL)

    home = tmp_path_factory.mktemp("people")
    run = secrets.token_hex(4)  # serials of their own: the module can run again on one stack
    device = enroll(home, answered, f"PEOPLE-1-{run}", "people-laptop")
    agent(device, "check-in", "--server", API, "--facts", str(FACTS / "macos-non-compliant.json"))
    elsewhere = enroll(home, other, f"PEOPLE-2-{run}", "people-elsewhere")
    locked = enroll(home, answered, f"PEOPLE-3-{run}", "people-locked")
    admin("device", "lock", f"PEOPLE-3-{run}", "--reason", "stolen, ticket 4711")
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield {
        "required": required, "answered": answered_required, "waiting": waiting, "unavailable": unavailable, "compliance": compliance,
        "device": device, "elsewhere": elsewhere, "locked": locked,
    }
    (SHOTS / "axe-results.json").write_text(json.dumps(AXE_RESULTS, indent=2, sort_keys=True))


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def open_page(browser, lang, answer=None):
    """A page in a fresh context whose browser asks for `lang`; `answer(challenge)` is the
    stand-in extension's answer (None: no extension at all). The context bypasses the page's CSP
    only so that axe-core can be injected (test_stage_page.py checks the CSP in force)."""
    context = browser.new_context(locale=LOCALES[lang], viewport={"width": 480, "height": 760}, bypass_csp=True)
    page = context.new_page()
    if answer is not None:
        page.expose_function("__agentRespond", answer)
        page.add_init_script(STAND_IN_EXTENSION)
    page.add_init_script(LIVE_RECORDER)
    return page


def responder(state):
    """The agent binary's answer to a challenge (what the native host sends)."""
    return lambda challenge: agent(state, "respond", "--challenge", challenge)


def audit(page, name):
    """axe-core over the page as it is: no serious or critical violation; results kept."""
    result = run_axe(page)
    AXE_RESULTS[name] = {"violations": result["violations"], "rules_passed": len(result["passed"])}
    # The audit looked at the page: the language, the landmarks, the live region's names.
    assert {"html-has-lang", "html-lang-valid", "document-title"} <= set(result["passed"]), result["passed"]
    bad = [v for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert bad == [], f"{name}: {bad}"


def capture(page, name):
    """The page's screenshot and audit. A full-page capture lays the page out and renders it
    again at its whole height (0.2 to 0.4 s of Chromium's CPU each); a page that fits the
    viewport is the same picture taken as it is (a tenth of that)."""
    fits = page.evaluate("document.documentElement.scrollHeight <= window.innerHeight")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=not fits)
    audit(page, name)


def title(page):
    return page.locator("[data-stage-title]").inner_text()


def explanation(page):
    return page.locator("[data-stage-explain]").inner_text()


def final(page, state, reason):
    try:
        page.wait_for_selector(f'main[data-state="{state}"][data-reason="{reason}"]', timeout=30000)
    except PlaywrightTimeout:
        where = page.evaluate("(() => { const m = document.querySelector('main'); return [m.dataset.state, m.dataset.reason, m.innerText]; })()")
        raise AssertionError(f"expected {state}/{reason}, the page is at {where}") from None


def check_help(page, lang):
    help_box = page.locator("[data-stage-help]")
    assert help_box.is_visible()
    assert help_box.locator("h2").inner_text() == TEXT[lang]["help_heading"]
    # As the operator wrote it, line break included.
    assert help_box.locator(".help-text").inner_text() == HELP_TEXT
    link = help_box.get_by_role("link", name=TEXT[lang]["help_link"])
    assert link.get_attribute("href") == HELP_URL


def check_back(page, lang, reason, redirect):
    back = page.get_by_role("link", name=TEXT[lang]["back"])
    assert back.is_visible()
    assert back.get_attribute("href") == f"{API}{redirect}?device_check={reason}"


@pytest.mark.parametrize("lang", LOCALES)
def test_waiting_for_the_agent_says_so_and_for_how_long(world, browser, lang):
    plan = create_plan(world["waiting"], "/after-waiting")
    page = open_page(browser, lang)
    response = visit(page, plan["page"])
    assert response.headers["content-language"] == lang
    assert page.get_attribute("html", "lang") == lang
    page.wait_for_selector('main[data-state="waiting"]', timeout=15000)
    assert title(page) == TEXT[lang]["status_waiting"].replace("{seconds}", "30")
    assert page.locator("h1").inner_text() == TEXT[lang]["title"]
    # Nothing to act on yet, and no help until something went wrong.
    assert not page.locator("[data-stage-retry]").is_visible()
    assert not page.locator("[data-stage-back]").is_visible()
    assert not page.locator("[data-stage-help]").is_visible()
    capture(page, f"waiting-{lang}")
    page.context.close()


@pytest.mark.parametrize("lang", LOCALES)
def test_no_agent_answered_says_start_the_agent_and_leads_back(world, browser, lang):
    plan = create_plan(world["required"], "/after-no-agent")
    page = open_page(browser, lang)
    visit(page, plan["page"])
    final(page, "denied", "no_response")
    assert title(page) == TEXT[lang]["reason_no_response"]
    assert explanation(page) == TEXT[lang]["explain_no_response"]
    # Not the words of a forged answer.
    assert "Invalid challenge response" not in page.inner_text("main")
    check_help(page, lang)
    check_back(page, lang, "no_response", "/after-no-agent")
    # A denied plan is final: no "Try again", the way forward is a new sign-in.
    assert not page.locator("[data-stage-retry]").is_visible()
    capture(page, f"no-agent-{lang}")
    page.context.close()


@pytest.mark.parametrize("lang", LOCALES)
def test_an_answer_that_does_not_verify_can_be_tried_again(world, browser, lang):
    plan = create_plan(world["answered"], "/after-invalid")
    page = open_page(browser, lang, answer=lambda challenge: "not.a.response")
    visit(page, plan["page"])
    final(page, "failed", "invalid_response")
    assert title(page) == TEXT[lang]["reason_invalid_response"]
    assert explanation(page) == TEXT[lang]["explain_invalid_response"]
    retry = page.get_by_role("button", name=TEXT[lang]["try_again"])
    assert retry.is_visible()
    assert page.evaluate("document.activeElement.matches('[data-stage-retry]')")
    check_help(page, lang)
    check_back(page, lang, "invalid_response", "/after-invalid")
    capture(page, f"invalid-response-{lang}")
    page.context.close()


@pytest.mark.parametrize("lang", LOCALES)
def test_a_device_enrolled_elsewhere_is_told_it_is_not_enrolled_for_this_sign_in(world, browser, lang):
    plan = create_plan(world["answered"], "/after-elsewhere")
    page = open_page(browser, lang, answer=responder(world["elsewhere"]))
    visit(page, plan["page"])
    final(page, "failed", "not_enrolled")
    assert title(page) == TEXT[lang]["reason_not_enrolled"]
    assert explanation(page) == TEXT[lang]["explain_not_enrolled"]
    assert page.get_by_role("button", name=TEXT[lang]["try_again"]).is_visible()
    check_help(page, lang)
    capture(page, f"not-enrolled-{lang}")
    page.context.close()


@pytest.mark.parametrize("lang", LOCALES)
def test_a_locked_device_is_told_so_without_the_administrators_reason(world, browser, lang):
    plan = create_plan(world["answered"], "/after-locked")
    page = open_page(browser, lang, answer=responder(world["locked"]))
    visit(page, plan["page"])
    final(page, "denied", "device_locked")
    assert title(page) == TEXT[lang]["reason_device_locked"]
    assert explanation(page) == TEXT[lang]["explain_device_locked"]
    check_help(page, lang)
    check_back(page, lang, "device_locked", "/after-locked")
    assert "4711" not in page.inner_text("body")
    capture(page, f"device-locked-{lang}")
    page.context.close()


@pytest.mark.parametrize("lang", LOCALES)
def test_a_non_compliant_device_reads_the_rules_as_the_operator_wrote_them(world, browser, lang):
    plan = create_plan(world["compliance"], "/after-compliance")
    page = open_page(browser, lang, answer=responder(world["device"]))
    visit(page, plan["page"])
    final(page, "denied", "non_compliant")
    assert title(page) == TEXT[lang]["reason_non_compliant"]
    assert explanation(page) == TEXT[lang]["explain_non_compliant"]
    items = page.locator("[data-stage-errors] li").all_inner_texts()
    # The operator's title and remediation as written (English here), the page's own words in
    # the person's language.
    assert items[0] == "FileVault turned on\nOpen System Settings > Privacy & Security > FileVault and turn it on.", items
    assert items[-1] == TEXT[lang]["compliance_next"]
    check_help(page, lang)
    check_back(page, lang, "non_compliant", "/after-compliance")
    capture(page, f"non-compliant-{lang}")
    page.context.close()


@pytest.mark.parametrize("lang", LOCALES)
def test_a_sign_in_out_of_attempts_is_expired_and_leads_back(world, browser, lang):
    plan = create_plan(world["required"], "/after-expired")
    for _ in range(10):
        status, _, _ = http("GET", f"/v1/plans/{plan['plan']}/executor")
        assert status == 200
    page = open_page(browser, lang)
    visit(page, plan["page"])
    final(page, "denied", "expired")
    assert title(page) == TEXT[lang]["reason_expired"]
    assert explanation(page) == TEXT[lang]["explain_expired"]
    check_back(page, lang, "expired", "/after-expired")
    capture(page, f"expired-{lang}")
    page.context.close()


@pytest.mark.parametrize("lang", LOCALES)
def test_an_unknown_or_expired_link_is_a_readable_page_in_the_persons_language(world, browser, lang):
    page = open_page(browser, lang)
    response = page.goto(API + "/v1/plans/NoSuchPlanForPeople/page")
    assert response.status == 404
    assert page.get_attribute("html", "lang") == lang
    assert page.locator("h1").inner_text() == TEXT[lang]["expired_title"]
    assert page.locator("[role=alert]").inner_text() == TEXT[lang]["expired_text"]
    capture(page, f"unknown-link-{lang}")
    page.context.close()


@pytest.mark.parametrize("lang", LOCALES)
def test_a_misconfigured_stage_is_unavailable_and_leads_back(world, browser, lang):
    plan = create_plan(world["unavailable"], "/after-unavailable")
    page = open_page(browser, lang)
    visit(page, plan["page"])
    final(page, "denied", "unavailable")
    assert title(page) == TEXT[lang]["reason_unavailable"]
    assert explanation(page) == TEXT[lang]["explain_unavailable"]
    check_back(page, lang, "unavailable", "/after-unavailable")
    capture(page, f"unavailable-{lang}")
    page.context.close()


def test_the_audit_finds_what_it_must(world, browser):
    page = open_page(browser, "en")
    page.goto(API + "/v1/plans/NoSuchPlanForTheAudit/page")
    page.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', '<button></button><a href=\"/x\"></a>')")
    found = {v["id"]: v["impact"] for v in run_axe(page)["violations"]}
    assert found.get("button-name") == "critical", found
    assert found.get("link-name") == "serious", found
    page.context.close()


def test_a_page_whose_plan_expired_while_open_says_so(world, browser):
    """The plan gone between the page and its executor (an unknown plan id in a copy of the
    page): the module reads 404 as an expired sign-in."""
    plan = create_plan(world["required"], "/after-gone")
    page = open_page(browser, "de")
    visit(page, plan["page"])
    page.evaluate(
        """async () => {
             const m = await import("/v1/stage.js");
             const root = document.querySelector("[data-endpoint-stage]").cloneNode(true);
             root.dataset.plan = "GoneAway123";
             root.removeAttribute("data-state");
             document.body.replaceChildren(root);
             await m.mountStage(root);
           }"""
    )
    final(page, "error", "expired")
    assert title(page) == TEXT["de"]["reason_expired"]
    assert not page.locator("[data-stage-retry]").is_visible()
    assert page.get_by_role("link", name=TEXT["de"]["back"]).get_attribute("href").endswith("/after-gone?device_check=expired")
    page.context.close()


def test_the_whole_flow_by_keyboard_alone(world, browser):
    """No mouse: the final state takes the focus to its way forward, Tab reaches the operator's
    help, and Enter follows "Back to sign-in" with the outcome for the relying party."""
    plan = create_plan(world["required"], "/v1/plans/after-keyboard/page")
    page = open_page(browser, "en")
    visit(page, plan["page"])
    final(page, "denied", "no_response")
    focused = lambda: page.evaluate("document.activeElement.textContent")  # noqa: E731
    assert page.evaluate("document.activeElement.matches('[data-stage-back]')")
    page.keyboard.press("Shift+Tab")
    assert focused() == TEXT["en"]["help_link"]
    page.keyboard.press("Tab")
    assert focused() == TEXT["en"]["back"]
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: url.endswith("/v1/plans/after-keyboard/page?device_check=no_response"), timeout=15000)
    page.context.close()

    # A refused answer: Enter on "Try again" answers the new challenge, now with the enrolled
    # device, and the sign-in continues: keyboard only.
    plan = create_plan(world["answered"], "/v1/plans/after-keyboard-retry/page")
    answers = iter(["not.a.response"])
    good = responder(world["device"])
    page = open_page(browser, "de", answer=lambda c: next(answers, None) or good(c))
    visit(page, plan["page"])
    final(page, "failed", "invalid_response")
    assert page.evaluate("document.activeElement.matches('[data-stage-retry]')")
    page.keyboard.press("Enter")
    page.wait_for_url("**/v1/plans/after-keyboard-retry/page", timeout=15000)
    status, _, body = http("GET", f"/v1/plans/{plan['plan']}")
    assert json.loads(body)["status"] == "passed"
    page.context.close()


def test_back_to_sign_in_tells_the_relying_party_why(world, browser):
    """The example relying party: no agent, a denial, "Back to sign-in" (keyboard), and the
    site reads the plan (denied) and the page's device_check=no_response."""
    port = free_port()
    # The app asks for its own URL as the assertion's audience: registered on the stage.
    admin("stage", "set-audiences", world["required"], f"http://127.0.0.1:{port}")
    app = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "relying-party" / "app.py"), "--api", API, "--stage", world["required"], "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        page = open_page(browser, "en")
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("button", name="Sign in with this device").click()
        page.wait_for_url("**/page", timeout=15000)
        settle(page)
        final(page, "denied", "no_response")
        page.keyboard.press("Enter")
        page.wait_for_url(f"http://127.0.0.1:{port}/done?device_check=no_response", timeout=15000)
        assert page.locator("[data-result]").get_attribute("data-result") == "denied"
        assert page.locator("[data-device-check]").get_attribute("data-device-check") == "no_response"
        page.context.close()
    finally:
        app.terminate()
        app.wait(timeout=10)


def test_the_live_region_announces_each_state_change(world, browser):
    plan = create_plan(world["required"], "/after-live")
    page = open_page(browser, "de")
    visit(page, plan["page"])
    final(page, "denied", "no_response")
    region = page.locator("[data-stage-status]")
    assert (region.get_attribute("role"), region.get_attribute("aria-live"), region.get_attribute("aria-atomic")) == ("status", "polite", "true")
    t = TEXT["de"]
    announced = page.evaluate("window.__announced")
    # Each state, in order, once: what happened and, at the end, what to do.
    assert announced == [
        t["status_loading"],
        t["status_waiting"].replace("{seconds}", "2"),
        t["status_no_agent"],
        f'{t["reason_no_response"]} {t["explain_no_response"]}',
    ], announced
    page.context.close()


def test_the_module_speaks_the_language_of_navigator_languages(world, browser):
    """stage.js in the browser's language (Chinese for zh-CN; French), its reason for code."""
    for locale, tags, want in [("zh-CN", ["zh-TW", "zh-CN"], "zh-Hans"), ("fr-FR", ["zh-CN", "de", "fr-CA"], "fr")]:
        context = browser.new_context(locale=locale)
        page = context.new_page()
        # A page of this origin that has loaded the module (a plan of the misconfigured stage,
        # denied at once): import() below gets the same module.
        visit(page, create_plan(world["unavailable"], "/after-module-host")["page"])
        final(page, "denied", "unavailable")
        assert page.evaluate("async (t) => (await import('/v1/stage.js')).pickLanguage(t)", tags) == want
    plan = create_plan(world["required"], "/after-module")
    started = time.monotonic()
    result = page.evaluate(
        """async (plan) => {
             const m = await import("/v1/stage.js");
             const texts = [];
             const r = await m.runStage({ plan, onStatus: (s) => texts.push([s.state, s.text]) });
             return { texts, status: r.status, reason: r.reason, text: r.text, langs: navigator.languages,
                      picked: [m.pickLanguage(["nl", "en-GB"]), m.pickLanguage(["nl"])] };
           }""",
        plan["plan"],
    )
    fr = catalogue("fr")
    assert result["langs"][0] == "fr-FR"
    assert result["texts"][0] == ["loading", fr["status_loading"]]
    assert result["texts"][1] == ["waiting", fr["status_waiting"].replace("{seconds}", "2")]
    assert (result["status"], result["reason"], result["text"]) == ("denied", "no_response", fr["reason_no_response"])
    assert result["picked"] == ["en", "en"]
    assert time.monotonic() - started >= 2
    context.close()


def test_the_screenshots_and_audits_cover_every_state_in_two_languages(world):
    """Runs last in this module: every state above left its screenshot and its audit."""
    states = ["waiting", "no-agent", "invalid-response", "not-enrolled", "device-locked", "non-compliant", "expired", "unknown-link", "unavailable"]
    for state in states:
        for lang in LOCALES:
            name = f"{state}-{lang}"
            assert (SHOTS / f"{name}.png").stat().st_size > 1000, name
            assert name in AXE_RESULTS, name

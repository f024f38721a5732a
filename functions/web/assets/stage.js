// endpoint-stage: the device-trust stage of one plan, in the browser. No dependencies.
//
//   import { runStage } from "https://API/v1/stage.js";
//   const result = await runStage({ api: "https://API", plan, onStatus: (s) => show(s.text) });
//   // result.status: "passed" (result.to: where to go), "denied" (result.message, result.reason
//   // and result.text: why, in the person's language; result.compliance when the device does
//   // not meet the stage's policy: the failing rules with their remediation, and warnings with
//   // their deadline), or "failed" (result.errors, result.reason; result.retry() answers the
//   // new challenge)
//
// It speaks the authentik endpoint stage protocol exactly as authentik's own web component:
// GET the executor; hand its challenge to the authentik browser extension with
// window.postMessage({_ak_ext: "authentik-platform-sso", challenge}); POST the extension's
// response, or null when nothing answered within challenge_idle_timeout seconds.
//
// Its texts come from the catalogues (functions/web/assets/i18n/<lang>.json): the module is
// served with the catalogue of the language its request asks for (Accept-Language, which the
// browser derives from the same preferences as navigator.languages) and English, inlined below;
// it speaks the first of navigator.languages it has, else English.

const EXTENSION = "authentik-platform-sso";
const COMPONENT = "ak-stage-endpoint-agent";
/** Seconds to wait for the extension when the challenge names no idle timeout. */
const DEFAULT_IDLE_TIMEOUT = 3;
/** At most this many challenges are answered in one run (the server allows 10 per plan). */
const MAX_ROUNDS = 12;
/** The reasons the service gives for a denial or a refused response (its `reason` field). */
const REASONS = ["no_response", "invalid_response", "not_enrolled", "device_locked", "non_compliant", "expired", "unavailable"];

/** The catalogues served, by language: `{"en": {key: text}, "de": {...}}` (filled in when served). */
const CATALOGUES = /* endpoint-stage:catalogues */ {};
/** The languages, English (the fallback) first. */
export const LANGUAGES = ["en", "de", "fr", "es", "pt", "ja", "zh-Hans"];

/** The supported language of one language tag (`de-AT` -> `de`, `zh-CN` -> `zh-Hans`), or null. */
function supported(tag) {
  const parts = String(tag || "").trim().toLowerCase().split(/[-_]/);
  if (parts[0] === "zh") {
    return parts.slice(1).some((p) => ["hant", "tw", "hk", "mo"].includes(p)) ? null : "zh-Hans";
  }
  return LANGUAGES.find((l) => l === parts[0]) || null;
}

/** The first language of `tags` (the browser's `navigator.languages`) this module speaks, else English. */
export function pickLanguage(tags) {
  for (const tag of tags || []) {
    const lang = supported(tag);
    if (lang && CATALOGUES[lang]) return lang;
  }
  return "en";
}

function browserLanguages() {
  if (typeof navigator === "undefined") return [];
  return navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language];
}

/** The texts of `lang`: `tr(key, {name: value})` fills `{name}`; English when a text is missing. */
export function translator(lang) {
  const own = CATALOGUES[lang] || {};
  const en = CATALOGUES.en || {};
  return (key, vars = {}) =>
    String(own[key] ?? en[key] ?? key).replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** A failure to reach the service or to understand its answer. */
export class StageError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "StageError";
    this.code = code;
  }
}

/**
 * Posts the challenge to the extension and waits for its response; resolves with the response
 * JWS, or null when nothing answered within `seconds`.
 */
export function askAgent(challenge, seconds, win = window) {
  return new Promise((resolve) => {
    let timer = 0;
    const finish = (response) => {
      clearTimeout(timer);
      win.removeEventListener("message", onMessage);
      resolve(response);
    };
    function onMessage(event) {
      // Only the page's own window (the extension's content script posts there), only the
      // extension's messages, and only answers: our own challenge message passes by here too.
      if (event.source !== win) return;
      const data = event.data;
      if (!data || data._ak_ext !== EXTENSION) return;
      if (typeof data.response !== "string" || data.response === "") return;
      finish(data.response);
    }
    win.addEventListener("message", onMessage);
    timer = setTimeout(() => finish(null), seconds * 1000);
    win.postMessage({ _ak_ext: EXTENSION, challenge }, win.location.origin);
  });
}

async function call(url, init, tr) {
  let res;
  try {
    res = await fetch(url, { credentials: "omit", cache: "no-store", ...init });
  } catch {
    throw new StageError("network", tr("error_network"));
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    // The service's own message is English: the person reads the catalogue's sentence.
    const code = body && typeof body.error === "string" ? body.error : `http_${res.status}`;
    throw new StageError(code, tr("error_http", { status: res.status }));
  }
  return body;
}

/** The reason of an outcome, if it is one this module knows. */
function reasonOf(outcome) {
  return REASONS.includes(outcome.reason) ? outcome.reason : null;
}

/**
 * Runs the stage for `plan` against the API at `api` (default: this page's origin). Calls
 * `onStatus({state, text, ...})` as it goes: "loading", "waiting" (timeout), "verifying",
 * "no-agent", "passed" (to), "denied" (message, reason), "failed" (errors, reason); `text` is
 * the state in `lang` (default: the browser's language). Resolves with the final outcome;
 * rejects with a StageError when the service cannot be reached or understood (`code`
 * "not_found": the plan is unknown or expired).
 */
export async function runStage({ api, plan, onStatus, lang } = {}) {
  const tr = translator(lang || pickLanguage(browserLanguages()));
  if (typeof plan !== "string" || plan === "") throw new StageError("usage", tr("error_usage"));
  const base = String(api || window.location.origin).replace(/\/+$/, "");
  const executor = `${base}/v1/plans/${encodeURIComponent(plan)}/executor`;
  const status = (state, text, detail = {}) => {
    try {
      if (onStatus) onStatus({ state, text, ...detail });
    } catch (e) {
      console.warn("endpoint-stage: onStatus failed", e);
    }
  };

  async function drive(outcome) {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      switch (outcome && outcome.component) {
        case "xak-flow-redirect": {
          // A pass with warnings (rules failing in their grace period) says what to fix by when.
          const compliance = outcome.compliance || null;
          status("passed", tr("status_passed"), { to: outcome.to, compliance });
          return { status: "passed", to: outcome.to, compliance };
        }
        case "ak-stage-access-denied": {
          // A denial for compliance says which rules failed and how to fix them.
          const compliance = outcome.compliance || null;
          const reason = reasonOf(outcome);
          const text = reason ? tr(`reason_${reason}`) : tr("status_denied", { message: outcome.error_message });
          status("denied", text, { message: outcome.error_message, compliance, reason });
          return { status: "denied", message: outcome.error_message, compliance, reason, text };
        }
        case COMPONENT: {
          if (outcome.response_errors) {
            // As authentik's component: show the errors, never retry by itself.
            const errors = ((outcome.response_errors && outcome.response_errors.response) || []).map((e) => String(e.string));
            const reason = reasonOf(outcome);
            const pending = { component: COMPONENT, challenge: outcome.challenge, challenge_idle_timeout: outcome.challenge_idle_timeout };
            const text = reason ? tr(`reason_${reason}`) : tr("status_failed");
            status("failed", text, { errors, reason });
            return { status: "failed", errors, reason, text, retry: () => drive(pending) };
          }
          const idle = Number.isFinite(outcome.challenge_idle_timeout) ? outcome.challenge_idle_timeout : DEFAULT_IDLE_TIMEOUT;
          status("waiting", tr("status_waiting", { seconds: idle }), { timeout: idle });
          const response = await askAgent(outcome.challenge, idle);
          if (response) status("verifying", tr("status_verifying"));
          else status("no-agent", tr("status_no_agent"));
          outcome = await call(
            executor,
            {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({ component: COMPONENT, response }),
            },
            tr,
          );
          break;
        }
        default:
          throw new StageError("unexpected", tr("error_unexpected"));
      }
    }
    throw new StageError("rounds", tr("error_rounds"));
  }

  status("loading", tr("status_loading"));
  return drive(await call(executor, { method: "GET" }, tr));
}

/** A time as the person's browser writes it, with its ISO form for machines. */
function timeElement(unixSeconds) {
  const when = new Date(unixSeconds * 1000);
  const el = document.createElement("time");
  el.dateTime = when.toISOString();
  el.textContent = when.toLocaleString();
  return el;
}

/** One rule as a list item: its title in bold, then what to do (text only, never markup). */
function ruleItem(rule, deadline, tr) {
  const li = document.createElement("li");
  const title = document.createElement("strong");
  title.textContent = String(rule.title);
  li.append(title);
  if (deadline) {
    const [before, after = ""] = tr("required_from").split("{date}");
    li.append(` ${before}`, timeElement(deadline), after);
  }
  const fix = document.createElement("span");
  fix.className = "remediation";
  fix.textContent = String(rule.remediation || "");
  li.append(document.createElement("br"), fix);
  return li;
}

/**
 * What a denial for compliance shows: each failing rule with its remediation (as the operator
 * wrote them), then each warning with its deadline, in `list`.
 */
export function renderCompliance(list, compliance, { passed = false, lang } = {}) {
  const tr = translator(lang || pickLanguage(browserLanguages()));
  const failed = Array.isArray(compliance.failed) ? compliance.failed : [];
  const warnings = Array.isArray(compliance.warnings) ? compliance.warnings : [];
  if (compliance.status === "unknown") {
    const li = document.createElement("li");
    li.textContent = tr("compliance_unknown");
    list.append(li);
  }
  for (const rule of failed) list.append(ruleItem(rule, null, tr));
  for (const rule of warnings) {
    const li = ruleItem(rule, rule.deadline, tr);
    li.dataset.warning = "";
    list.append(li);
  }
  if (list.children.length > 0 && !passed) {
    const next = document.createElement("li");
    next.className = "next";
    next.textContent = tr("compliance_next");
    list.append(next);
  }
  list.hidden = list.children.length === 0;
}

/**
 * Only http(s) URLs without user information are followed (the server refuses other redirects
 * at plan creation; this is the page's second check).
 */
function safeTarget(to) {
  try {
    const url = new URL(String(to), window.location.href);
    const web = url.protocol === "https:" || url.protocol === "http:";
    const userinfo = url.username !== "" || url.password !== "";
    return web && !userinfo ? url.href : null;
  } catch {
    return null;
  }
}

/**
 * Where "Back to sign-in" goes after an outcome with `reason`: for a relying party's plan
 * (`kind` "plan"), its redirect with `device_check=<reason>` added to the query, for the
 * relying party to read. A plan of the OpenID provider (kind "oidc") goes back to its resume
 * route as it is: that route answers the client's redirect_uri with `error=access_denied`, the
 * denial's sentence and the request's `state`.
 */
export function backTarget(back, kind, reason) {
  const target = safeTarget(back);
  if (!target) return null;
  const url = new URL(target);
  switch (kind || "plan") {
    case "plan":
      url.searchParams.set("device_check", reason);
      return url.href;
    case "oidc":
      return url.href;
    default:
      return null;
  }
}

/**
 * The hosted page: runs the stage for the plan named by `root.dataset.plan` and shows where it
 * is in `[data-stage-status]` (a live region: `[data-stage-title]`, what happened, and
 * `[data-stage-explain]`, what to do), the rules or errors in `[data-stage-errors]`, the
 * stage's help (`[data-stage-help]`) on every denial, and a way forward: `[data-stage-retry]`
 * ("Try again" where the plan can go on, "Continue" after a pass with warnings) and
 * `[data-stage-back]` ("Back to sign-in", to `root.dataset.back` with the outcome). `root.dataset.state`
 * and `root.dataset.reason` say where it is, for styling and tests.
 */
export function mountStage(root, { navigate = (url) => window.location.assign(url), lang } = {}) {
  const language = lang || pickLanguage([document.documentElement.lang, ...browserLanguages()]);
  const tr = translator(language);
  const titleEl = root.querySelector("[data-stage-title]");
  const explainEl = root.querySelector("[data-stage-explain]");
  const errorsEl = root.querySelector("[data-stage-errors]");
  const helpEl = root.querySelector("[data-stage-help]");
  const retryEl = root.querySelector("[data-stage-retry]");
  const backEl = root.querySelector("[data-stage-back]");
  const show = (state, title, { reason = null, explain = "" } = {}) => {
    root.dataset.state = state;
    if (reason) root.dataset.reason = reason;
    else delete root.dataset.reason;
    titleEl.textContent = title;
    explainEl.textContent = explain;
    explainEl.hidden = explain === "";
  };
  const reset = () => {
    errorsEl.replaceChildren();
    errorsEl.hidden = true;
    retryEl.hidden = true;
    retryEl.textContent = tr("try_again");
    backEl.hidden = true;
    backEl.removeAttribute("href");
    if (helpEl) helpEl.hidden = true;
  };
  /** The ways forward of a final state that is not a pass; the first shown gets the focus. */
  const forward = (reason, retry) => {
    if (helpEl) helpEl.hidden = false;
    const back = backTarget(root.dataset.back, root.dataset.backKind, reason);
    if (back) {
      backEl.href = back;
      backEl.hidden = false;
    }
    if (retry) {
      retryEl.hidden = false;
      retryEl.onclick = retry;
      retryEl.focus();
    } else if (back) {
      backEl.focus();
    }
  };
  const run = async (start) => {
    reset();
    try {
      const result = await start();
      if (result.status === "passed") {
        const target = safeTarget(result.to);
        const warnings = result.compliance && Array.isArray(result.compliance.warnings) ? result.compliance.warnings : [];
        if (target && warnings.length > 0) {
          // Passed, but something must be fixed soon: the person reads what and by when, then
          // continues (the button has the focus).
          show("passed-with-warnings", tr("status_passed_warnings"));
          renderCompliance(errorsEl, { ...result.compliance, failed: [] }, { passed: true, lang: language });
          retryEl.textContent = tr("continue");
          retryEl.hidden = false;
          retryEl.onclick = () => navigate(target);
          retryEl.focus();
        } else if (target) {
          show("passed", tr("status_passed"));
          navigate(target);
        } else {
          show("error", tr("status_bad_target"), { reason: "unavailable" });
          forward("unavailable", null);
        }
      } else if (result.status === "denied") {
        // A denied plan is final: the way forward is a new sign-in.
        const reason = result.reason;
        show("denied", result.text, { reason, explain: reason ? tr(`explain_${reason}`) : "" });
        if (result.compliance) renderCompliance(errorsEl, result.compliance, { lang: language });
        forward(reason || "denied", null);
      } else {
        // The response was refused, the plan goes on: trying again answers its new challenge.
        const reason = result.reason || "invalid_response";
        show("failed", result.text, { reason, explain: tr(`explain_${reason}`) });
        forward(reason, () => run(result.retry));
      }
    } catch (e) {
      // An unknown or expired plan needs a new sign-in; anything else may pass on a new try.
      const expired = e instanceof StageError && e.code === "not_found";
      const reason = expired ? "expired" : "unavailable";
      show("error", tr(`reason_${reason}`), { reason, explain: tr(`explain_${reason}`) });
      const li = document.createElement("li");
      li.textContent = e instanceof StageError ? e.message : tr("error_stopped");
      if (!expired) {
        errorsEl.append(li);
        errorsEl.hidden = false;
      }
      forward(reason, expired ? null : () => run(begin));
    }
  };
  const begin = () =>
    runStage({
      api: root.dataset.api || undefined,
      plan: root.dataset.plan,
      lang: language,
      onStatus: (s) => {
        if (["loading", "waiting", "verifying", "no-agent"].includes(s.state)) show(s.state, s.text);
      },
    });
  return run(begin);
}

// The hosted page marks its root with data-endpoint-stage; a relying party's own page that
// imports runStage has no such element, and nothing runs by itself.
if (typeof document !== "undefined") {
  const root = document.querySelector("[data-endpoint-stage]");
  if (root) mountStage(root);
}

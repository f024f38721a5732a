// endpoint-stage: the device-trust stage of one plan, in the browser. No dependencies.
//
//   import { runStage } from "https://API/v1/stage.js";
//   const result = await runStage({ api: "https://API", plan, onStatus: (s) => show(s.state) });
//   // result.status: "passed" (result.to: where to go), "denied" (result.message, and
//   // result.compliance when the device does not meet the stage's policy: the failing rules
//   // with their remediation, and warnings with their deadline), or
//   // "failed" (result.errors; result.retry() answers the new challenge)
//
// It speaks the authentik endpoint stage protocol exactly as authentik's own web component:
// GET the executor; hand its challenge to the authentik browser extension with
// window.postMessage({_ak_ext: "authentik-platform-sso", challenge}); POST the extension's
// response, or null when nothing answered within challenge_idle_timeout seconds.

const EXTENSION = "authentik-platform-sso";
const COMPONENT = "ak-stage-endpoint-agent";
/** Seconds to wait for the extension when the challenge names no idle timeout. */
const DEFAULT_IDLE_TIMEOUT = 3;
/** At most this many challenges are answered in one run (the server allows 10 per plan). */
const MAX_ROUNDS = 12;

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

async function call(url, init) {
  let res;
  try {
    res = await fetch(url, { credentials: "omit", cache: "no-store", ...init });
  } catch {
    throw new StageError("network", "The sign-in service could not be reached. Check the connection and try again.");
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (!res.ok) {
    const message = body && typeof body.message === "string" ? body.message : `The sign-in service answered ${res.status}.`;
    throw new StageError(body && typeof body.error === "string" ? body.error : `http_${res.status}`, message);
  }
  return body;
}

/**
 * Runs the stage for `plan` against the API at `api` (default: this page's origin). Calls
 * `onStatus({state, ...})` as it goes: "loading", "waiting" (timeout), "verifying",
 * "no-agent", "passed" (to), "denied" (message), "failed" (errors). Resolves with the final
 * outcome; rejects with a StageError when the service cannot be reached or understood.
 */
export async function runStage({ api, plan, onStatus } = {}) {
  if (typeof plan !== "string" || plan === "") throw new StageError("usage", "runStage needs a plan id.");
  const base = String(api || window.location.origin).replace(/\/+$/, "");
  const executor = `${base}/v1/plans/${encodeURIComponent(plan)}/executor`;
  const status = (state, detail = {}) => {
    try {
      if (onStatus) onStatus({ state, ...detail });
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
          status("passed", { to: outcome.to, compliance });
          return { status: "passed", to: outcome.to, compliance };
        }
        case "ak-stage-access-denied": {
          // A denial for compliance says which rules failed and how to fix them.
          const compliance = outcome.compliance || null;
          status("denied", { message: outcome.error_message, compliance });
          return { status: "denied", message: outcome.error_message, compliance };
        }
        case COMPONENT: {
          if (outcome.response_errors) {
            // As authentik's component: show the errors, never retry by itself.
            const errors = ((outcome.response_errors && outcome.response_errors.response) || []).map((e) => String(e.string));
            const pending = { component: COMPONENT, challenge: outcome.challenge, challenge_idle_timeout: outcome.challenge_idle_timeout };
            status("failed", { errors });
            return { status: "failed", errors, retry: () => drive(pending) };
          }
          const idle = Number.isFinite(outcome.challenge_idle_timeout) ? outcome.challenge_idle_timeout : DEFAULT_IDLE_TIMEOUT;
          status("waiting", { timeout: idle });
          const response = await askAgent(outcome.challenge, idle);
          status(response ? "verifying" : "no-agent");
          outcome = await call(executor, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ component: COMPONENT, response }),
          });
          break;
        }
        default:
          throw new StageError("unexpected", "The sign-in service answered something this page does not understand.");
      }
    }
    throw new StageError("rounds", "The device check did not finish. Start the sign-in again.");
  }

  status("loading");
  return drive(await call(executor, { method: "GET" }));
}

const TEXT = {
  loading: "Checking this device…",
  waiting: "Asking this device's authentik agent…",
  verifying: "Verifying the device's answer…",
  "no-agent": "No device agent answered. Continuing…",
};

/** A time as the person's browser writes it, with its ISO form for machines. */
function timeElement(unixSeconds) {
  const when = new Date(unixSeconds * 1000);
  const el = document.createElement("time");
  el.dateTime = when.toISOString();
  el.textContent = when.toLocaleString();
  return el;
}

/** One rule as a list item: its title in bold, then what to do (text only, never markup). */
function ruleItem(rule, deadline) {
  const li = document.createElement("li");
  const title = document.createElement("strong");
  title.textContent = String(rule.title);
  li.append(title);
  if (deadline) {
    li.append(" (required from ", timeElement(deadline), ")");
  }
  const fix = document.createElement("span");
  fix.className = "remediation";
  fix.textContent = String(rule.remediation || "");
  li.append(document.createElement("br"), fix);
  return li;
}

/**
 * What a denial for compliance shows: each failing rule with its remediation, then each
 * warning with its deadline, in `list`.
 */
export function renderCompliance(list, compliance, { passed = false } = {}) {
  const failed = Array.isArray(compliance.failed) ? compliance.failed : [];
  const warnings = Array.isArray(compliance.warnings) ? compliance.warnings : [];
  if (compliance.status === "unknown") {
    const li = document.createElement("li");
    li.textContent = "This device has not reported its state recently. Make sure the authentik agent is running, wait a minute, and try again.";
    list.append(li);
  }
  for (const rule of failed) list.append(ruleItem(rule, null));
  for (const rule of warnings) {
    const li = ruleItem(rule, rule.deadline);
    li.dataset.warning = "";
    list.append(li);
  }
  if (list.children.length > 0 && !passed) {
    const next = document.createElement("li");
    next.className = "next";
    next.textContent = "When this is fixed, the device reports it to authentik within minutes: then start the sign-in again.";
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
 * The hosted page: runs the stage for the plan named by `root.dataset.plan` and shows where it
 * is in `[data-stage-status]` (a live region), the errors in `[data-stage-errors]`, and a
 * `[data-stage-retry]` button after a failed validation (or, labelled Continue, after a pass
 * with warnings).
 */
export function mountStage(root, { navigate = (url) => window.location.assign(url) } = {}) {
  const statusEl = root.querySelector("[data-stage-status]");
  const errorsEl = root.querySelector("[data-stage-errors]");
  const retryEl = root.querySelector("[data-stage-retry]");
  const show = (state, text) => {
    root.dataset.state = state;
    statusEl.textContent = text;
  };
  const retryLabel = retryEl.textContent;
  const reset = () => {
    errorsEl.replaceChildren();
    errorsEl.hidden = true;
    retryEl.hidden = true;
    retryEl.textContent = retryLabel;
  };
  const run = async (start) => {
    reset();
    try {
      const result = await start();
      if (result.status === "passed") {
        const target = safeTarget(result.to);
        const warnings = result.compliance && Array.isArray(result.compliance.warnings)
          ? result.compliance.warnings
          : [];
        if (target && warnings.length > 0) {
          // Passed, but something must be fixed soon: the person reads what and by when, then
          // continues (the button has the focus).
          show("passed-with-warnings", "✓ Device check passed. Fix these soon, or sign-in will be refused:");
          renderCompliance(errorsEl, { ...result.compliance, failed: [] }, { passed: true });
          retryEl.textContent = "Continue";
          retryEl.hidden = false;
          retryEl.onclick = () => navigate(target);
          retryEl.focus();
        } else if (target) {
          show("passed", "✓ Device check passed. Continuing…");
          navigate(target);
        } else {
          show("error", "✗ The device check passed, but the way back to the site is not a web address.");
        }
      } else if (result.status === "denied") {
        show("denied", `✗ Access denied: ${result.message}`);
        // A denied plan is final: once fixed, the person starts the sign-in again.
        if (result.compliance) renderCompliance(errorsEl, result.compliance);
      } else {
        show("failed", "✗ Failed to validate device.");
        for (const text of result.errors) {
          const li = document.createElement("li");
          li.textContent = text;
          errorsEl.append(li);
        }
        errorsEl.hidden = result.errors.length === 0;
        retryEl.hidden = false;
        retryEl.onclick = () => run(result.retry);
        retryEl.focus();
      }
    } catch (e) {
      show("error", `✗ ${e instanceof StageError ? e.message : "The device check stopped unexpectedly."}`);
      retryEl.hidden = false;
      retryEl.onclick = () => run(begin);
      retryEl.focus();
    }
  };
  const begin = () =>
    runStage({
      api: root.dataset.api || undefined,
      plan: root.dataset.plan,
      onStatus: (s) => {
        if (TEXT[s.state]) show(s.state, TEXT[s.state]);
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

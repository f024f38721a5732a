// The background side of the authentik extension: one native messaging port to the agent's
// host io.goauthentik.platform; requests carry a random id, answers name it in response_to.
let port = null;
const pending = new Map();

function connect() {
  port = chrome.runtime.connectNative("io.goauthentik.platform");
  port.onMessage.addListener((msg) => {
    const resolve = pending.get(msg.response_to);
    if (resolve) {
      pending.delete(msg.response_to);
      resolve(msg);
    }
  });
  port.onDisconnect.addListener(() => {
    port = null;
    for (const resolve of pending.values()) resolve(null);
    pending.clear();
  });
}

function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[b % 62]).join("");
}

function post(message) {
  if (!port) connect();
  const id = randomId();
  return new Promise((resolve) => {
    pending.set(id, resolve);
    port.postMessage({ version: "1", id, ...message });
  });
}

chrome.runtime.onMessage.addListener((msg, sender, sendResponse) => {
  if (msg.action === "platform_sign_endpoint_header") {
    post({ path: "platform_sign_endpoint_header", profile: msg.profile, data: { challenge: msg.challenge } })
      .then((answer) => sendResponse(answer && answer.data ? answer.data.response || null : null))
      .catch(() => sendResponse(null));
    return true;
  }
  return false;
});

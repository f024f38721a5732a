// The page side of the authentik extension: a challenge posted by the page itself goes to the
// background worker; a signed response goes back to the page with window.postMessage.
window.addEventListener(
  "message",
  (event) => {
    if (!event || !event.data || event.data._ak_ext !== "authentik-platform-sso" || !event.data.challenge) return;
    if (event.source !== window) return;
    chrome.runtime
      .sendMessage({ action: "platform_sign_endpoint_header", profile: "default", challenge: event.data.challenge })
      .then((signed) => {
        if (signed) window.postMessage({ _ak_ext: "authentik-platform-sso", response: signed });
      })
      .catch((e) => console.warn(`endpoint-stage test extension: ${e}`));
  },
  true,
);

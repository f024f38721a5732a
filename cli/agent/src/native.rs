//! A Chrome native messaging host (`io.goauthentik.platform`), as the authentik platform
//! agent's `ak-browser-support`: the browser starts it, passes the calling extension's origin
//! as the first argument, and exchanges messages on stdin/stdout, each a 32-bit length in
//! native byte order followed by that many bytes of UTF-8 JSON.
//!
//! Requests: `{"version": "1", "path": ..., "profile": ..., "id": ..., "data": {...}}`.
//! Answers: `{"response_to": id, "successful": bool, "data": {...}}`; failures carry
//! `data.error` (the extension then posts nothing back to the page). Paths: `ping`,
//! `platform_sign_endpoint_header` (verify the challenge by `kid` against the keys of the last
//! configuration fetch, then sign with the enrolled device), `list_profiles`, `get_token`
//! (refused: the simulator issues no tokens).
//!
//! A malformed frame or JSON gets an error answer, never a crash: after invalid JSON the host
//! goes on; after a length it cannot honour (over [`MAX_FRAME`]) the stream cannot be trusted,
//! so it answers once and stops. End of input ends the host.

use std::io::{self, Read, Write};
use std::path::Path;

use serde_json::{json, Value};

use crate::{respond, State};

/// The host's name, as the extension connects to it.
pub const HOST_NAME: &str = "io.goauthentik.platform";
/// Largest message accepted from the browser (challenges are a few hundred bytes).
pub const MAX_FRAME: usize = 1024 * 1024;
/// The extension ids of the real authentik browser extension (Chrome Web Store and Edge).
pub const AUTHENTIK_EXTENSION_IDS: [&str; 2] = [
    "dklfpnaeklldfpmhkbfjbmbnmkfafdma",
    "mcmjmlcifgadhpeggocghbiainhedbgn",
];

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix names more than [`MAX_FRAME`] bytes.
    TooLarge(u32),
    /// The input ended inside a frame.
    Truncated,
    Io(String),
}

/// One frame's bytes, or `None` at a clean end of input.
pub fn read_frame(input: &mut impl Read) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match input.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e.to_string())),
        }
    }
    let len = u32::from_ne_bytes(len);
    if len as usize > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = vec![0u8; len as usize];
    input.read_exact(&mut body).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e.to_string()),
    })?;
    Ok(Some(body))
}

/// Writes one message as a frame and flushes it.
pub fn write_frame(output: &mut impl Write, message: &Value) -> io::Result<()> {
    let bytes = serde_json::to_vec(message)?;
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "message too large"))?;
    output.write_all(&len.to_ne_bytes())?;
    output.write_all(&bytes)?;
    output.flush()
}

fn answer(id: &str, data: Value) -> Value {
    json!({"response_to": id, "successful": true, "data": data})
}

fn refusal(id: &str, error: &str) -> Value {
    json!({"response_to": id, "successful": false, "data": {"error": error}})
}

/// The answer to one request (any bytes); `state` is the enrolled device, if any.
pub fn handle(state: Option<&State>, request: &[u8], now: i64) -> Value {
    let Ok(message) = serde_json::from_slice::<Value>(request) else {
        return refusal("", "the message is not JSON");
    };
    let id = message.get("id").and_then(Value::as_str).unwrap_or("");
    if message.get("version").and_then(Value::as_str) != Some("1") {
        return refusal(id, "unsupported message version");
    }
    match message.get("path").and_then(Value::as_str).map(str::trim) {
        Some("ping") => answer(id, json!({"ping": "pong"})),
        Some("list_profiles") => answer(id, json!({"profiles": [{"name": "default"}]})),
        Some("get_token") => refusal(id, "the device simulator issues no tokens"),
        Some("platform_sign_endpoint_header") => {
            let Some(challenge) = message
                .get("data")
                .and_then(|d| d.get("challenge"))
                .and_then(Value::as_str)
            else {
                return refusal(id, "No challenge");
            };
            let Some(state) = state else {
                return refusal(id, "this device is not enrolled (endpoint-agent enroll)");
            };
            match respond(state, challenge, now) {
                Ok(response) => answer(id, json!({"response": response})),
                Err(e) => refusal(id, &format!("failed to sign endpoint header: {e}")),
            }
        }
        _ => refusal(id, "No handler found"),
    }
}

/// Serves the browser until it closes stdin.
pub fn serve(
    state_path: &Path,
    input: &mut impl Read,
    output: &mut impl Write,
    now: impl Fn() -> i64,
) -> Result<(), String> {
    loop {
        match read_frame(input) {
            Ok(None) => return Ok(()),
            Ok(Some(request)) => {
                // Read on every request: `endpoint-agent enroll` or `refresh` may have run
                // since the browser started the host.
                let state = State::load(state_path).ok();
                let reply = handle(state.as_ref(), &request, now());
                write_frame(output, &reply).map_err(|e| format!("cannot answer: {e}"))?;
            }
            Err(FrameError::TooLarge(len)) => {
                let reply = refusal("", &format!("a message of {len} bytes is over the limit"));
                let _ = write_frame(output, &reply);
                return Err(format!("a frame of {len} bytes is over {MAX_FRAME}"));
            }
            Err(FrameError::Truncated) => return Err("the input ended inside a frame".into()),
            Err(FrameError::Io(e)) => return Err(format!("cannot read the input: {e}")),
        }
    }
}

/// The host manifest for a browser profile: the browser starts `path` (which must be an
/// executable taking the origin as its only argument) for the extensions allowed.
pub fn manifest(path: &Path, extension_ids: &[String]) -> Value {
    json!({
        "name": HOST_NAME,
        "description": "endpoint-stage device simulator (authentik platform agent stand-in)",
        "path": path,
        "type": "stdio",
        "allowed_origins": extension_ids
            .iter()
            .map(|id| format!("chrome-extension://{id}/"))
            .collect::<Vec<_>>(),
    })
}

/// Writes `<profile>/NativeMessagingHosts/io.goauthentik.platform.json` and, beside it, the
/// launcher script it names (the browser cannot pass arguments of its own to a host). Returns
/// the manifest's path.
pub fn install(
    profile: &Path,
    agent_binary: &Path,
    state: &Path,
    extension_ids: &[String],
) -> Result<std::path::PathBuf, String> {
    let dir = profile.join("NativeMessagingHosts");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let launcher = dir.join("endpoint-agent-native-host");
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
    let script = format!(
        "#!/bin/sh\n# Started by the browser for {HOST_NAME}; the argument is the extension's origin.\nexec {} --state {} native-host \"$@\"\n",
        quote(agent_binary),
        quote(state)
    );
    std::fs::write(&launcher, script)
        .map_err(|e| format!("cannot write {}: {e}", launcher.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| e.to_string())?;
    }
    let path = dir.join(format!("{HOST_NAME}.json"));
    let text = serde_json::to_string_pretty(&manifest(&launcher, extension_ids))
        .map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u32).to_ne_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }

    fn replies(mut out: &[u8]) -> Vec<Value> {
        let mut all = Vec::new();
        while let Ok(Some(f)) = read_frame(&mut out) {
            all.push(serde_json::from_slice(&f).unwrap_or(Value::Null));
        }
        all
    }

    #[test]
    fn ping_and_unknown_paths_and_bad_json_get_answers_and_the_host_goes_on() {
        let mut input = Vec::new();
        input.extend(frame(
            br#"{"version":"1","path":"ping","id":"a","data":{}}"#,
        ));
        input.extend(frame(b"{not json"));
        input.extend(frame(br#"{"version":"2","path":"ping","id":"b"}"#));
        input.extend(frame(br#"{"version":"1","path":"nope","id":"c"}"#));
        input.extend(frame(
            br#"{"version":"1","path":"platform_sign_endpoint_header","id":"d","data":{}}"#,
        ));
        input.extend(frame(br#"{"version":"1","path":"platform_sign_endpoint_header","id":"e","data":{"challenge":"x.y.z"}}"#));
        let mut out = Vec::new();
        let missing = Path::new("/nonexistent/state.json");
        assert_eq!(
            serve(missing, &mut input.as_slice(), &mut out, || 0),
            Ok(())
        );
        let r = replies(&out);
        assert_eq!(r.len(), 6);
        assert_eq!(
            r[0],
            json!({"response_to": "a", "successful": true, "data": {"ping": "pong"}})
        );
        for (i, id) in [(1, ""), (2, "b"), (3, "c"), (4, "d"), (5, "e")] {
            assert_eq!(r[i]["response_to"], id);
            assert_eq!(r[i]["successful"], false);
            assert!(r[i]["data"]["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()));
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_answered_once_then_the_host_stops() {
        let mut input = ((MAX_FRAME + 1) as u32).to_ne_bytes().to_vec();
        input.extend(frame(br#"{"version":"1","path":"ping","id":"a"}"#));
        let mut out = Vec::new();
        assert!(serve(Path::new("/x"), &mut input.as_slice(), &mut out, || 0).is_err());
        let r = replies(&out);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0]["successful"], false);
    }

    #[test]
    fn truncated_input_ends_the_host_without_a_hang() {
        for input in [vec![1u8, 0], frame(b"{\"version\":\"1\"}")[..8].to_vec()] {
            let mut out = Vec::new();
            assert!(serve(Path::new("/x"), &mut input.as_slice(), &mut out, || 0).is_err());
        }
        let mut out = Vec::new();
        assert_eq!(
            serve(Path::new("/x"), &mut &b""[..], &mut out, || 0),
            Ok(())
        );
        assert!(out.is_empty());
    }

    #[test]
    fn the_manifest_names_the_host_and_the_allowed_extensions() {
        let m = manifest(Path::new("/opt/host"), &["abc".to_string()]);
        assert_eq!(
            m,
            json!({"name": "io.goauthentik.platform", "description": m["description"], "path": "/opt/host", "type": "stdio", "allowed_origins": ["chrome-extension://abc/"]})
        );
    }
}

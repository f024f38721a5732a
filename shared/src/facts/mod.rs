//! Device facts from `check_in/`: what is accepted, and what is stored.
//!
//! Real agents send every process (named by its full command line), every installed package,
//! users and groups: hundreds of KiB on a desktop. Every top-level field is optional and
//! `hardware` may be null or absent; only a present `hardware` object needs a non-blank
//! `serial`. Bodies up to [`MAX_FACTS_BODY`] (2 MiB) are accepted and never refused for size.
//!
//! A DynamoDB item holds at most 400 KB, so the snapshot is stored deflate-compressed. If it
//! still exceeds [`MAX_STORED_FACTS`], a bounded subset is stored and marked truncated: first
//! every process is named by its program alone (its command line dropped), then the longest
//! list loses entries from its end until the document fits.

use miniz_oxide::deflate::compress_to_vec;
use miniz_oxide::inflate::decompress_to_vec_with_limit;
use serde_json::Value;

use crate::error::CoreError;

mod document;
mod lenient;
mod program;

pub use document::{Facts, NotFacts, Package};
pub use program::program;

/// Largest `check_in/` body accepted (the reference's framework allows 2.5 MB).
pub const MAX_FACTS_BODY: usize = 2 * 1024 * 1024;
/// Largest compressed snapshot stored: a DynamoDB item is at most 400 KB, and the snapshot's
/// other attributes and names take well under the remaining margin.
pub const MAX_STORED_FACTS: usize = 350 * 1024;
/// Deflate level: 6 is zlib's default balance of speed and size.
const LEVEL: u8 = 6;
/// Most rounds of list trimming before giving up on the lists (each round drops a quarter of
/// the longest list, so 64 rounds empty any list a 2 MiB body can hold many times over).
const MAX_TRIM_ROUNDS: usize = 64;

/// A facts document ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredFacts {
    /// The JSON as the device sent it (or, reduced, compact), deflate-compressed, at most
    /// [`MAX_STORED_FACTS`] bytes.
    pub deflate: Vec<u8>,
    /// Whether this is a bounded subset of what the device sent.
    pub truncated: bool,
}

/// Parses and checks a `check_in/` body: UTF-8 JSON, an object, at most 2 MiB; a present,
/// non-null `hardware` must be an object with a non-blank string `serial`.
pub fn parse(body: &[u8]) -> Result<Facts, CoreError> {
    if body.len() > MAX_FACTS_BODY {
        return Err(CoreError::PayloadTooLarge(MAX_FACTS_BODY));
    }
    let not_json = || CoreError::BadRequest("The facts are not valid JSON.".into());
    let text = String::from_utf8(body.to_vec()).map_err(|_| not_json())?;
    let facts = Facts::index(text).map_err(|why| match why {
        NotFacts::Syntax => not_json(),
        NotFacts::NotAnObject => CoreError::BadRequest("The facts must be a JSON object.".into()),
    })?;
    if facts.has("hardware") {
        match facts.get("hardware") {
            Some(Value::Null) => {}
            hardware => {
                let serial = hardware
                    .and_then(|h| h.get("serial"))
                    .and_then(Value::as_str);
                if !hardware.is_some_and(Value::is_object)
                    || serial.is_none_or(|s| s.trim().is_empty())
                {
                    return Err(CoreError::BadRequest(
                        "hardware, when present, needs a non-blank string serial.".into(),
                    ));
                }
            }
        }
    }
    Ok(facts)
}

fn compress(text: &str) -> Vec<u8> {
    compress_to_vec(text.as_bytes(), LEVEL)
}

/// Compresses `facts` for storage (its text as the device sent it), reducing it to a bounded
/// subset if it does not fit.
pub fn store(facts: &Facts) -> StoredFacts {
    let deflate = compress(facts.text());
    if deflate.len() <= MAX_STORED_FACTS {
        return StoredFacts {
            deflate,
            truncated: false,
        };
    }
    // Compact, it may fit whole.
    let mut facts = facts.to_value();
    let deflate = compress(&facts.to_string());
    if deflate.len() <= MAX_STORED_FACTS {
        return StoredFacts {
            deflate,
            truncated: false,
        };
    }
    drop_command_lines(&mut facts);
    let mut deflate = compress(&facts.to_string());
    let mut rounds = 0;
    while deflate.len() > MAX_STORED_FACTS && rounds < MAX_TRIM_ROUNDS {
        if !trim_longest_list(&mut facts) {
            break;
        }
        deflate = compress(&facts.to_string());
        rounds += 1;
    }
    if deflate.len() > MAX_STORED_FACTS {
        // No list left to trim (one huge scalar, say): keep what identifies the device.
        let kept: serde_json::Map<String, Value> = facts
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| matches!(k.as_str(), "hardware" | "os"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        facts = Value::Object(kept);
        deflate = compress(&facts.to_string());
        if deflate.len() > MAX_STORED_FACTS {
            deflate = compress("{}");
        }
    }
    StoredFacts {
        deflate,
        truncated: true,
    }
}

/// A stored snapshot back as a document; `None` if the bytes are not a snapshot this module
/// wrote.
pub fn load(deflate: &[u8]) -> Option<Facts> {
    // A stored snapshot inflates to at most the 2 MiB body it came from.
    let json = decompress_to_vec_with_limit(deflate, MAX_FACTS_BODY).ok()?;
    Facts::index(String::from_utf8(json).ok()?).ok()
}

/// Names every process by its program only (the first word of its command line).
fn drop_command_lines(facts: &mut Value) {
    let Some(processes) = facts.get_mut("processes").and_then(Value::as_array_mut) else {
        return;
    };
    for p in processes {
        if let Some(name) = p.get_mut("name") {
            if let Some(program) = name
                .as_str()
                .and_then(|n| n.split_whitespace().next())
                .map(str::to_string)
            {
                *name = Value::String(program);
            }
        }
    }
}

/// Drops the last quarter (at least one entry) of the longest top-level list, or of the
/// network's interfaces. `false` if every list is empty.
fn trim_longest_list(facts: &mut Value) -> bool {
    let Some(map) = facts.as_object_mut() else {
        return false;
    };
    let mut longest: Option<&mut Vec<Value>> = None;
    for (key, value) in map.iter_mut() {
        let list = match value {
            Value::Array(list) => Some(list),
            Value::Object(inner) if key == "network" => {
                inner.get_mut("interfaces").and_then(Value::as_array_mut)
            }
            _ => None,
        };
        if let Some(list) = list {
            if !list.is_empty() && longest.as_ref().is_none_or(|l| list.len() > l.len()) {
                longest = Some(list);
            }
        }
    }
    match longest {
        Some(list) => {
            let keep = list.len() - (list.len() / 4).max(1);
            list.truncate(keep);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_top_level_field_is_optional_and_hardware_may_be_null() {
        assert!(parse(b"{}").is_ok());
        assert!(parse(br#"{"hardware": null, "os": {"family": "linux"}}"#).is_ok());
        assert!(parse(br#"{"hardware": {"serial": "VMware-56 4d"}}"#).is_ok());
        for bad in [
            &br#"{"hardware": {"serial": "  "}}"#[..],
            br#"{"hardware": {}}"#,
            br#"{"hardware": "x"}"#,
            br#"[]"#,
            b"{",
        ] {
            assert!(
                matches!(parse(bad), Err(CoreError::BadRequest(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn bodies_over_two_mib_are_too_large_and_up_to_it_are_not() {
        let pad = "x".repeat(MAX_FACTS_BODY - 20);
        let at_limit = format!(r#"{{"pad":"{pad}"}}"#);
        assert!(at_limit.len() <= MAX_FACTS_BODY);
        assert!(parse(at_limit.as_bytes()).is_ok());
        let over = format!(r#"{{"pad":"{pad}{pad}"}}"#);
        assert_eq!(
            parse(over.as_bytes()).err(),
            Some(CoreError::PayloadTooLarge(MAX_FACTS_BODY))
        );
    }

    /// A deterministic, poorly compressible string: hex of a SHA-256 chain.
    fn noise(seed: u64, len: usize) -> String {
        use sha2::{Digest, Sha256};
        let mut block = Sha256::digest(seed.to_le_bytes());
        let mut s = String::with_capacity(len + 64);
        while s.len() < len {
            s.push_str(&hex::encode(block));
            block = Sha256::digest(block);
        }
        s.truncate(len);
        s
    }

    #[test]
    fn a_desktop_document_is_stored_whole_and_round_trips() {
        let processes: Vec<Value> = (0..3000)
            .map(|i| json!({"id": i, "name": format!("/usr/lib/app{i} --flag --config /etc/app{}.conf", i % 7), "user": "alice"}))
            .collect();
        let facts =
            json!({"hardware": {"serial": "To Be Filled By O.E.M."}, "processes": processes});
        let stored = store(&Facts::from(facts.clone()));
        assert!(!stored.truncated);
        assert!(stored.deflate.len() <= MAX_STORED_FACTS);
        assert_eq!(load(&stored.deflate).map(|f| f.to_value()), Some(facts));
    }

    #[test]
    fn an_incompressible_document_keeps_programs_then_trims_lists_from_the_end() {
        // 1.5 MiB that deflate cannot shrink below the limit: long random command lines and
        // random package names.
        let processes: Vec<Value> = (0..2000)
            .map(|i| json!({"id": i, "name": format!("/usr/bin/prog{i} {}", noise(i, 400))}))
            .collect();
        let software: Vec<Value> = (0..6000)
            .map(|i| json!({"name": noise(10_000 + i, 120), "source": "deb"}))
            .collect();
        let facts =
            json!({"hardware": {"serial": "S1"}, "processes": processes, "software": software});
        assert!(facts.to_string().len() > 1_200_000);
        let stored = store(&Facts::from(facts));
        assert!(stored.truncated);
        assert!(stored.deflate.len() <= MAX_STORED_FACTS);
        let Some(kept) = load(&stored.deflate).map(|f| f.to_value()) else {
            panic!("the stored snapshot must load");
        };
        assert_eq!(kept["hardware"]["serial"], "S1");
        // Command lines went first: every kept process is named by its program alone.
        let kept_processes = kept["processes"].as_array().cloned().unwrap_or_default();
        assert!(!kept_processes.is_empty());
        for (i, p) in kept_processes.iter().enumerate() {
            assert_eq!(p["name"], format!("/usr/bin/prog{i}"));
        }
        // Lists lose entries from their end: what is kept is a prefix.
        let kept_software = kept["software"].as_array().cloned().unwrap_or_default();
        assert!(kept_software.len() < 6000);
        for (i, s) in kept_software.iter().enumerate() {
            assert_eq!(s["name"], noise(10_000 + i as u64, 120));
        }
    }

    #[test]
    fn one_huge_scalar_keeps_hardware_and_os() {
        let facts = json!({"hardware": {"serial": "S"}, "os": {"family": "linux"}, "blob": noise(7, 1_500_000)});
        let stored = store(&Facts::from(facts));
        assert!(stored.truncated);
        assert_eq!(
            load(&stored.deflate).map(|f| f.to_value()),
            Some(json!({"hardware": {"serial": "S"}, "os": {"family": "linux"}}))
        );
    }

    #[test]
    fn load_refuses_foreign_bytes() {
        assert!(load(b"not deflate").is_none());
    }
}

//! Device facts from `check_in/`: what is accepted, and what is stored.
//!
//! Real agents send every process (named by its full command line), every installed package,
//! users and groups: hundreds of KiB on a desktop. Every top-level field is optional and
//! `hardware` may be null or absent; only a present `hardware` object needs a non-blank
//! `serial`. Bodies up to [`MAX_FACTS_BODY`] (2 MiB) are accepted and never refused for size.
//!
//! A DynamoDB item holds at most 400 KB, so the snapshot is stored deflate-compressed. If it
//! still exceeds [`MAX_STORED_FACTS`], a bounded subset is stored and marked truncated
//! (`reduce.rs`): first every process is named by its program alone (its command line
//! dropped), then the longest lists lose entries from their end until the document fits. The
//! reduction works on the text by bytes, in one pass, to a size the start of the document
//! predicts will fit; at most three compressions in all, each stopped as soon as its output
//! passes the limit, whatever the document.

use miniz_oxide::deflate::core::{
    compress as deflate, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush,
    TDEFLStatus,
};
use miniz_oxide::inflate::decompress_to_vec_with_limit;
use serde_json::Value;

use crate::error::CoreError;

mod document;
mod lenient;
mod program;
mod reduce;

pub use document::{Facts, NotFacts, Package};
pub use program::program;

/// Largest `check_in/` body accepted (the reference's framework allows 2.5 MB).
pub const MAX_FACTS_BODY: usize = 2 * 1024 * 1024;
/// Largest compressed snapshot stored: a DynamoDB item is at most 400 KB, and the snapshot's
/// other attributes and names take well under the remaining margin.
pub const MAX_STORED_FACTS: usize = 350 * 1024;
/// Deflate level: 1, the fastest (a desktop's 1.5 MiB compresses to well under the limit at
/// any level; level 6 took several times as long on crafted documents).
const LEVEL: i32 = 1;
/// What a reduced document aims at, of [`MAX_STORED_FACTS`]: a margin for a subset that
/// compresses a little worse than the whole.
const AIM_PERCENT: usize = 90;
/// A text of at most this many bytes fits compressed whatever it holds: deflate adds 5 bytes
/// per stored block of up to 64 KiB to an incompressible input.
const FITS_ANYWAY: usize = MAX_STORED_FACTS - 1024;

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

/// `text` deflated, if that fits in [`MAX_STORED_FACTS`] bytes; otherwise how many bytes of
/// `text` had been taken when the output passed the limit (the compression stops there: a
/// document that does not fit costs the compression of what does, not of all of it).
fn compress(text: &str) -> Result<Vec<u8>, usize> {
    let mut compressor = CompressorOxide::new(create_comp_flags_from_zip_params(LEVEL, 0, 0));
    let mut out = vec![0u8; MAX_STORED_FACTS + 1];
    let (mut taken, mut written) = (0, 0);
    let input = text.as_bytes();
    let result = loop {
        let (status, bytes_in, bytes_out) = deflate(
            &mut compressor,
            &input[taken..],
            &mut out[written..],
            TDEFLFlush::Finish,
        );
        taken += bytes_in;
        written += bytes_out;
        match status {
            TDEFLStatus::Done if written <= MAX_STORED_FACTS => {
                out.truncate(written);
                break Ok(out);
            }
            TDEFLStatus::Okay if written < out.len() && bytes_in + bytes_out > 0 => continue,
            // The output is full (over the limit), or the compressor stopped: does not fit.
            _ => break Err(taken.max(1)),
        }
    };
    #[cfg(test)]
    tests::COMPRESSED.with(|c| c.set(c.get() + taken));
    result
}

/// Compresses `facts` for storage (its text as the device sent it), reducing it to a bounded
/// subset if it does not fit: at most three compressions, each stopped as soon as its output
/// passes the limit (the whole; a subset of the size the whole's start predicts; if that subset
/// compressed worse, one small enough to fit anyway).
pub fn store(facts: &Facts) -> StoredFacts {
    let text = facts.text();
    let taken = match compress(text) {
        Ok(deflate) => {
            return StoredFacts {
                deflate,
                truncated: false,
            }
        }
        Err(taken) => taken,
    };
    // `taken` bytes of the text made MAX_STORED_FACTS compressed: a subset of about that many
    // (a margin below) fits, if it compresses as the start of the document did.
    let predicted = taken / 100 * AIM_PERCENT;
    let (reduced, truncated) = reduce::reduce(facts, predicted.max(FITS_ANYWAY));
    if let Ok(deflate) = compress(&reduced) {
        return StoredFacts { deflate, truncated };
    }
    let (reduced, _) = reduce::reduce(facts, FITS_ANYWAY);
    StoredFacts {
        // Incompressible, this many bytes still fit (deflate's stored blocks add 5 bytes in
        // 64 KiB); `{}` if even that failed.
        deflate: compress(&reduced)
            .or_else(|_| compress("{}"))
            .unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::cell::Cell;

    thread_local! {
        /// Bytes given to deflate on this thread.
        pub(super) static COMPRESSED: Cell<usize> = const { Cell::new(0) };
    }

    /// `store` of `facts`, and how many bytes it compressed in all.
    fn store_counted(facts: &Facts) -> (StoredFacts, usize) {
        COMPRESSED.with(|c| c.set(0));
        let stored = store(facts);
        (stored, COMPRESSED.with(Cell::get))
    }

    #[test]
    fn any_document_is_reduced_with_at_most_about_three_times_its_size_compressed() {
        // The documents that made the old reduction re-serialise and deflate 2 MiB up to 64
        // times: many short lists, lists of lists, one long list of incompressible entries, a
        // wide map, deep nesting, a pretty-printed desktop.
        let near = MAX_FACTS_BODY - 64;
        let mut many_lists = String::from("{");
        let mut i = 0;
        while many_lists.len() < near - 400 {
            many_lists.push_str(&format!("\"l{i}\":[\"{}\"],", noise(i, 24)));
            i += 1;
        }
        many_lists.push_str("\"end\":0}");
        let nested: Vec<Value> = (0..9000)
            .map(|i| json!([[noise(i, 60)], [noise(i + 1, 60)], {"k": [noise(i + 2, 40)]}]))
            .collect();
        let incompressible: Vec<Value> = (0..14_000).map(|i| json!(noise(i, 140))).collect();
        let wide: serde_json::Map<String, Value> = (0..30_000)
            .map(|i| (noise(i, 16), json!(noise(i + 7, 40))))
            .collect();
        let mut deep = String::new();
        for _ in 0..100 {
            deep.push('[');
        }
        deep.push_str(&format!("\"{}\"", noise(3, 1_000_000)));
        for _ in 0..100 {
            deep.push(']');
        }
        let processes: Vec<Value> = (0..3000)
            .map(|i| json!({"id": i, "name": format!("/usr/bin/p{i} {}", noise(i, 500))}))
            .collect();
        let pretty = serde_json::to_string_pretty(
            &json!({"hardware": {"serial": "S"}, "processes": processes}),
        )
        .unwrap();
        let documents = [
            many_lists,
            json!({"nested": nested}).to_string(),
            json!({"software": incompressible, "os": {"family": "linux"}}).to_string(),
            json!({"wide": wide}).to_string(),
            format!("{{\"deep\":{deep}}}"),
            pretty,
        ];
        for text in documents {
            assert!(text.len() <= MAX_FACTS_BODY, "{}", text.len());
            let facts = parse(text.as_bytes()).expect("a facts document");
            let (stored, compressed) = store_counted(&facts);
            assert!(stored.deflate.len() <= MAX_STORED_FACTS);
            assert!(stored.truncated, "{} bytes stored whole", text.len());
            assert!(
                compressed <= 2 * text.len() + MAX_STORED_FACTS,
                "{compressed} bytes compressed for a document of {}",
                text.len()
            );
            assert!(
                load(&stored.deflate).is_some(),
                "the reduced document loads"
            );
        }
    }

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

//! A document that does not fit a DynamoDB item, reduced to a byte budget in one pass over its
//! text: no tree of the document is built, nothing is re-serialised but the process names
//! rewritten and the brackets around what is kept.
//!
//! Order (as the snapshot's contract says): the whole document without insignificant
//! whitespace; then every process named by its program (the first word of its command line);
//! then the lists (every top-level list, and `network.interfaces`) lose entries from their end,
//! the longest first (all the lists over a common length in bytes are cut to it, the length
//! found by bisection); then, if what is not a list is still over the budget, only `hardware`
//! and `os`; then `{}`.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use super::Facts;

/// One list of the document: its elements (slices of compact text), as many kept as fit.
struct List<'a> {
    elements: Vec<&'a str>,
    /// Bytes of each prefix: `prefix[i]` is the size of the first `i` elements with commas.
    prefix: Vec<usize>,
}

impl<'a> List<'a> {
    fn of(elements: Vec<&'a str>) -> Self {
        let mut prefix = Vec::with_capacity(elements.len() + 1);
        let mut total = 0;
        prefix.push(0);
        for e in &elements {
            total += e.len() + 1;
            prefix.push(total);
        }
        List { elements, prefix }
    }

    fn bytes(&self) -> usize {
        self.prefix.last().copied().unwrap_or(0)
    }

    /// How many elements fit in `cap` bytes.
    fn kept(&self, cap: usize) -> usize {
        self.prefix.partition_point(|&p| p <= cap).saturating_sub(1)
    }
}

/// A top-level field as the reduction sees it.
enum Piece<'a> {
    /// Kept whole (or dropped whole): its compact text.
    Whole(String),
    /// A list.
    List(List<'a>),
    /// `network` with its `interfaces` list: its other entries (compact `"k":v`) and the list.
    Network(Vec<String>, List<'a>),
}

/// The document's text without insignificant whitespace (one pass over the bytes).
pub(super) fn compact(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    // Bytes: every byte JSON gives a meaning to is ASCII, and no byte of a multi-byte UTF-8
    // character is.
    for &b in text.as_bytes() {
        if in_string {
            out.push(b);
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(b);
            in_string = b == b'"';
        }
    }
    // Only ASCII whitespace was dropped, between characters: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

fn key(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_else(|_| "\"\"".into())
}

/// A process element named by the first word of its `name` (other entries as they were).
fn program_only(element: &str) -> Option<String> {
    let entries: BTreeMap<String, &RawValue> = serde_json::from_str(element).ok()?;
    let name: String = serde_json::from_str(entries.get("name")?.get()).ok()?;
    let program = name.split_whitespace().next().unwrap_or("");
    let fields: Vec<String> = entries
        .iter()
        .map(|(k, v)| {
            if k == "name" {
                format!("{}:{}", key(k), key(program))
            } else {
                format!("{}:{}", key(k), v.get())
            }
        })
        .collect();
    Some(format!("{{{}}}", fields.join(",")))
}

/// The elements of a compact JSON array, as slices of it.
fn elements(text: &str) -> Option<Vec<&str>> {
    let list: Vec<&RawValue> = serde_json::from_str(text).ok()?;
    Some(list.into_iter().map(RawValue::get).collect())
}

/// Reduces `facts` to at most about `budget` bytes of JSON (see the module's order). Returns
/// the text and whether anything was left out.
pub(super) fn reduce(facts: &Facts, budget: usize) -> (String, bool) {
    // Each field's compact text, once (the processes' rewritten below).
    let compacted: Vec<(String, String)> = facts
        .fields_raw()
        .map(|(name, raw)| (name.to_string(), compact(raw)))
        .collect();
    let whole = 2 + compacted
        .iter()
        .map(|(n, v)| key(n).len() + 2 + v.len())
        .sum::<usize>();
    if whole <= budget {
        return (assemble_whole(&compacted), false);
    }
    // Processes by program: their own texts, kept for the slices below.
    let programs: Option<Vec<String>> = compacted
        .iter()
        .find(|(n, _)| n == "processes")
        .and_then(|(_, v)| elements(v))
        .map(|list| {
            list.into_iter()
                .map(|e| program_only(e).unwrap_or_else(|| e.to_string()))
                .collect()
        });
    let mut pieces: Vec<(&str, Piece<'_>)> = Vec::with_capacity(compacted.len());
    for (name, value) in &compacted {
        let piece = if name == "processes" && programs.is_some() {
            let list = programs.iter().flatten().map(String::as_str).collect();
            Piece::List(List::of(list))
        } else if let Some(list) = value.starts_with('[').then(|| elements(value)).flatten() {
            Piece::List(List::of(list))
        } else if name == "network" {
            network(value).unwrap_or_else(|| Piece::Whole(value.clone()))
        } else {
            Piece::Whole(value.clone())
        };
        pieces.push((name.as_str(), piece));
    }
    let fixed: usize = 2 + pieces
        .iter()
        .map(|(n, p)| {
            key(n).len()
                + 2
                + match p {
                    Piece::Whole(v) => v.len(),
                    Piece::List(_) => 2,
                    Piece::Network(entries, _) => {
                        entries.iter().map(|e| e.len() + 1).sum::<usize>() + 18
                    }
                }
        })
        .sum::<usize>();
    if fixed > budget {
        return (identity_only(&compacted, budget), true);
    }
    let lists: Vec<&List<'_>> = pieces
        .iter()
        .filter_map(|(_, p)| match p {
            Piece::List(l) | Piece::Network(_, l) => Some(l),
            Piece::Whole(_) => None,
        })
        .collect();
    let room = budget - fixed;
    let cap = common_cap(&lists, room);
    let mut out = String::with_capacity(budget);
    out.push('{');
    for (i, (name, piece)) in pieces.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&key(name));
        out.push(':');
        match piece {
            Piece::Whole(v) => out.push_str(v),
            Piece::List(l) => push_list(&mut out, l, cap),
            Piece::Network(entries, l) => {
                out.push('{');
                for e in entries {
                    out.push_str(e);
                    out.push(',');
                }
                out.push_str("\"interfaces\":");
                push_list(&mut out, l, cap);
                out.push('}');
            }
        }
    }
    out.push('}');
    (out, true)
}

fn assemble_whole(fields: &[(String, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(n, v)| format!("{}:{v}", key(n)))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// `hardware` and `os` alone if they fit, else `{}`.
fn identity_only(fields: &[(String, String)], budget: usize) -> String {
    let kept: Vec<(String, String)> = fields
        .iter()
        .filter(|(n, _)| n == "hardware" || n == "os")
        .cloned()
        .collect();
    let text = assemble_whole(&kept);
    if text.len() <= budget {
        text
    } else {
        "{}".into()
    }
}

/// `network` split into its other entries and its `interfaces` list.
fn network(value: &str) -> Option<Piece<'_>> {
    let entries: BTreeMap<String, &RawValue> = serde_json::from_str(value).ok()?;
    let interfaces = elements(entries.get("interfaces")?.get())?;
    let others = entries
        .iter()
        .filter(|(k, _)| k.as_str() != "interfaces")
        .map(|(k, v)| format!("{}:{}", key(k), v.get()))
        .collect();
    Some(Piece::Network(others, List::of(interfaces)))
}

/// The largest size in bytes each list may keep so that together they fit `room`: lists under
/// it keep everything, lists over it are cut to it (bisection over the cap).
fn common_cap(lists: &[&List<'_>], room: usize) -> usize {
    let used = |cap: usize| -> usize { lists.iter().map(|l| l.prefix[l.kept(cap)]).sum() };
    let mut low = 0;
    let mut high = lists.iter().map(|l| l.bytes()).max().unwrap_or(0);
    if used(high) <= room {
        return high;
    }
    while low < high {
        let mid = low + (high - low).div_ceil(2);
        if used(mid) <= room {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    low
}

fn push_list(out: &mut String, list: &List<'_>, cap: usize) {
    out.push('[');
    for (i, e) in list.elements[..list.kept(cap)].iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn compact_drops_whitespace_outside_strings_only() {
        let text = "{ \"a\" : [ 1 ,\n 2 ] ,\t\"b\": \"x y \\\" z\" }";
        assert_eq!(compact(text), r#"{"a":[1,2],"b":"x y \" z"}"#);
        let v: Value = serde_json::from_str(&compact(text)).unwrap();
        assert_eq!(v, serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn lists_over_a_common_length_are_cut_to_it_and_the_rest_kept() {
        let facts = Facts::from(json!({
            "os": {"family": "linux"},
            "small": [1, 2, 3],
            "big": (0..1000).collect::<Vec<_>>(),
            "network": {"hostname": "h", "interfaces": (0..500).map(|i| json!({"n": i})).collect::<Vec<_>>()},
        }));
        let (text, cut) = reduce(&facts, 1500);
        assert!(cut);
        assert!(text.len() <= 1500, "{}", text.len());
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["small"], json!([1, 2, 3]));
        assert_eq!(v["os"], json!({"family": "linux"}));
        assert_eq!(v["network"]["hostname"], "h");
        let big = v["big"].as_array().unwrap();
        assert!(!big.is_empty() && big.len() < 1000);
        assert!(big.iter().enumerate().all(|(i, x)| x == &json!(i)));
        let interfaces = v["network"]["interfaces"].as_array().unwrap();
        assert!(!interfaces.is_empty() && interfaces.len() < 500);
    }
}

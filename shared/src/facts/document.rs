//! A checked-in facts document as the checks read it: the JSON text as the device sent it, an
//! index of its top-level fields, and each field parsed only when a check first asks for it.
//!
//! Why not one `serde_json::Value` of the whole body: a desktop's 1.5 MiB document is mostly
//! process command lines and package records, and building a tree of it (a map and a string for
//! every key and value) took 6 to 13 ms, more than every rule of a policy together. Here the
//! body is checked once (UTF-8, then JSON syntax while the top level is indexed), the small
//! fields (`os`, `disks`, `network`, `hardware`) become `Value`s when read, and the two long
//! lists are read into what the checks need: each package's name and version, and the programs
//! that run, as pieces of the text.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::lenient::{PackageIn, ProcessIn, Read};

/// An installed package as the `software` check reads it: its name and version when they are
/// strings (anything else the device put there counts as not reported).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Package<'a> {
    pub name: Option<&'a str>,
    pub version: Option<&'a str>,
}

/// A package's name and version as the cache holds them.
type StoredPackage = (Option<Piece>, Option<Piece>);

/// A string the lists hold: where it is in the text (no copy), or its own text when the JSON
/// had escapes or the letter case was folded.
#[derive(Debug)]
enum Piece {
    Span(Range<usize>),
    Owned(Box<str>),
}

/// One top-level field: its name, where its value is in the text, and the value once parsed
/// (`None` if serde_json cannot represent it: a number beyond `f64`, nesting deeper than 128).
#[derive(Debug)]
struct Field {
    name: String,
    span: Range<usize>,
    value: OnceLock<Option<Value>>,
}

/// A facts document: a JSON object, indexed (its fields by name), read lazily.
#[derive(Debug)]
pub struct Facts {
    text: String,
    fields: Vec<Field>,
    packages: OnceLock<Option<Vec<StoredPackage>>>,
    programs: OnceLock<Option<Vec<Piece>>>,
}

/// Why a text is not a facts document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFacts {
    /// Not JSON.
    Syntax,
    /// JSON, but not an object.
    NotAnObject,
}

impl Facts {
    /// Indexes `text`, which must be one JSON object (its syntax is checked throughout).
    pub fn index(text: String) -> Result<Facts, NotFacts> {
        // By name, the last of duplicates kept (as JSON parsers keep it), in name order: a
        // lookup is a binary search however many fields a document has.
        let raw: BTreeMap<String, Range<usize>> = {
            let top: TopLevel<'_> = serde_json::from_str(&text).map_err(|e| {
                if e.is_data() {
                    NotFacts::NotAnObject
                } else {
                    NotFacts::Syntax
                }
            })?;
            let base = text.as_ptr() as usize;
            top.0
                .into_iter()
                .map(|(name, value)| {
                    // The raw value is a slice of `text`: its place is its distance from the start.
                    let start = value.get().as_ptr() as usize - base;
                    (name, start..start + value.get().len())
                })
                .collect()
        };
        let fields = raw
            .into_iter()
            .map(|(name, span)| Field {
                name,
                span,
                value: OnceLock::new(),
            })
            .collect();
        Ok(Facts {
            text,
            fields,
            packages: OnceLock::new(),
            programs: OnceLock::new(),
        })
    }

    /// The JSON text as it came.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The top-level field `name` (of duplicates, the last, as JSON parsers keep).
    fn field(&self, name: &str) -> Option<&Field> {
        self.fields
            .binary_search_by(|f| f.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.fields[i])
    }

    /// Whether the document has a top-level field `name` (whatever its value).
    pub fn has(&self, name: &str) -> bool {
        self.field(name).is_some()
    }

    /// The top-level field `name` as JSON, parsed on the first call.
    pub fn get(&self, name: &str) -> Option<&Value> {
        let field = self.field(name)?;
        field
            .value
            .get_or_init(|| serde_json::from_str(&self.text[field.span.clone()]).ok())
            .as_ref()
    }

    /// The names of the top-level fields, each once, in order.
    pub fn names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }

    /// Each top-level field's name and raw text (of duplicates, the last), in name order.
    pub(super) fn fields_raw(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields
            .iter()
            .map(|f| (f.name.as_str(), &self.text[f.span.clone()]))
    }

    /// The whole document as JSON (fields serde_json cannot represent left out).
    pub fn to_value(&self) -> Value {
        let map: Map<String, Value> = self
            .names()
            .into_iter()
            .filter_map(|n| Some((n.to_string(), self.get(n)?.clone())))
            .collect();
        Value::Object(map)
    }

    /// The raw text of the top-level field `name` (checked JSON).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.field(name).map(|f| &self.text[f.span.clone()])
    }

    /// A string read from this document's text as a piece of it (borrowed: no copy).
    fn piece(&self, text: Cow<'_, str>) -> Piece {
        match text {
            Cow::Borrowed(s) => {
                // Borrowed strings are slices of `self.text` (the lists are read from it).
                let start = s.as_ptr() as usize - self.text.as_ptr() as usize;
                Piece::Span(start..start + s.len())
            }
            Cow::Owned(s) => Piece::Owned(s.into_boxed_str()),
        }
    }

    fn text_of<'a>(&'a self, piece: &'a Piece) -> &'a str {
        match piece {
            Piece::Span(span) => &self.text[span.clone()],
            Piece::Owned(s) => s,
        }
    }

    /// `software` as packages; `None` if it is absent or not a list.
    pub fn packages(&self) -> Option<impl Iterator<Item = Package<'_>> + '_> {
        let list = self
            .packages
            .get_or_init(|| {
                let list: Vec<Read<PackageIn<'_>>> =
                    serde_json::from_str(self.raw("software")?).ok()?;
                Some(
                    list.into_iter()
                        .map(|p| {
                            let PackageIn { name, version } = p.0;
                            (name.map(|n| self.piece(n)), version.map(|v| self.piece(v)))
                        })
                        .collect(),
                )
            })
            .as_deref()?;
        Some(list.iter().map(|(name, version)| Package {
            name: name.as_ref().map(|n| self.text_of(n)),
            version: version.as_ref().map(|v| self.text_of(v)),
        }))
    }

    /// The programs of `processes` (see [`program`]); `None` if it is absent or not a list.
    pub fn programs(&self) -> Option<impl Iterator<Item = &str> + '_> {
        let list = self
            .programs
            .get_or_init(|| {
                let list: Vec<Read<ProcessIn<'_>>> =
                    serde_json::from_str(self.raw("processes")?).ok()?;
                Some(
                    list.into_iter()
                        .filter_map(|p| p.0 .0)
                        .map(|p| self.piece(p))
                        .collect(),
                )
            })
            .as_deref()?;
        Some(list.iter().map(|p| self.text_of(p)))
    }
}

/// A document from a JSON value (tests, and documents built in code); anything but an object
/// gives a document without fields.
impl From<Value> for Facts {
    fn from(value: Value) -> Facts {
        let text = if value.is_object() {
            value.to_string()
        } else {
            "{}".to_string()
        };
        Facts::index(text).unwrap_or_else(|_| Facts {
            text: "{}".to_string(),
            fields: Vec::new(),
            packages: OnceLock::new(),
            programs: OnceLock::new(),
        })
    }
}

/// The top level: each field's name and raw value, in order.
struct TopLevel<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push(entry);
                }
                Ok(TopLevel(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_parse_when_read_and_the_last_duplicate_wins() {
        let text = r#"{"os": {"family": "linux"}, "n": 1, "n": [2, {"a": null}], "big": 1e999}"#;
        let facts = Facts::index(text.to_string()).expect("an object");
        assert_eq!(facts.get("os"), Some(&json!({"family": "linux"})));
        assert_eq!(facts.get("n"), Some(&json!([2, {"a": null}])));
        assert_eq!(facts.get("missing"), None);
        // A number serde_json cannot hold is a field present but not reported.
        assert!(facts.has("big"));
        assert_eq!(facts.get("big"), None);
        assert_eq!(facts.names(), vec!["big", "n", "os"]);
        assert_eq!(
            facts.to_value(),
            json!({"os": {"family": "linux"}, "n": [2, {"a": null}]})
        );
    }

    #[test]
    fn a_document_of_many_fields_is_read_by_name() {
        // 2 MiB of tiny fields: each lookup is a binary search, so reading every field (what a
        // CEL expression over the whole document does) stays linear-logarithmic.
        let mut text = String::from("{");
        let mut n = 0;
        while text.len() < 2 * 1024 * 1024 - 32 {
            text.push_str(&format!("\"k{n}\":{n},"));
            n += 1;
        }
        text.push_str("\"k0\":\"last\"}");
        let facts = Facts::index(text).expect("an object");
        let names = facts.names();
        assert_eq!(names.len(), n);
        assert!(names.iter().all(|name| facts.get(name).is_some()));
        assert_eq!(facts.get("k0"), Some(&json!("last")));
        assert_eq!(facts.get(&format!("k{}", n - 1)), Some(&json!(n - 1)));
    }

    #[test]
    fn only_json_objects_are_facts() {
        for (text, why) in [
            ("[]", NotFacts::NotAnObject),
            ("\"x\"", NotFacts::NotAnObject),
            ("{", NotFacts::Syntax),
            (r#"{"a": [1, }"#, NotFacts::Syntax),
            (r#"{"a": 1} x"#, NotFacts::Syntax),
            (r#"{"a": "\q"}"#, NotFacts::Syntax),
        ] {
            assert_eq!(Facts::index(text.to_string()).err(), Some(why), "{text}");
        }
    }

    #[test]
    fn lists_are_read_leniently() {
        let facts = Facts::from(json!({
            "software": [
                {"name": "osquery", "version": "5.14.1", "source": "pkg", "extra": {"deep": [1]}},
                {"name": 5, "version": ["1"]},
                "a string",
                [1, 2],
                null,
                {"version": "1.0"},
                {"name": "say \"hi\" é", "version": "2"}
            ],
            "processes": [
                {"id": 1, "name": "C:\\Program Files\\osquery\\osqueryd.EXE --flagfile x"},
                {"id": 2, "name": "/usr/bin/python3 /opt/tool.exercise"},
                {"id": 3},
                7
            ]
        }));
        let packages: Vec<Package<'_>> = facts.packages().expect("a list").collect();
        assert_eq!(packages.len(), 7);
        assert_eq!(packages[6].name, Some("say \"hi\" é"));
        assert_eq!(packages[0].name, Some("osquery"));
        assert_eq!(packages[0].version, Some("5.14.1"));
        assert_eq!(packages[1], Package::default());
        assert_eq!(packages[5].version, Some("1.0"));
        let programs: Vec<&str> = facts.programs().expect("a list").collect();
        assert_eq!(programs, ["osqueryd", "python3"]);
        assert!(Facts::from(json!({"software": {"a": 1}}))
            .packages()
            .is_none());
        assert!(Facts::from(json!({})).programs().is_none());
    }
}

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
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::OnceLock;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

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

    /// The whole document as JSON (fields serde_json cannot represent left out).
    pub fn to_value(&self) -> Value {
        let map: Map<String, Value> = self
            .names()
            .into_iter()
            .filter_map(|n| Some((n.to_string(), self.get(n)?.clone())))
            .collect();
        Value::Object(map)
    }

    /// The raw text of the top-level field `name`.
    fn raw(&self, name: &str) -> Option<&str> {
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

/// The program of a process as agents name it (often the whole command line): the last path
/// component of the program, in lower case. A Windows program path may hold spaces
/// (`C:\Program Files\osquery\osqueryd.exe --flagfile x`), so the program ends with an `.exe`
/// (any letter case) that ends a word, dropped; otherwise at the first space.
pub fn program(name: &str) -> String {
    program_slice(name).to_ascii_lowercase()
}

/// [`program`] before its letter case is folded: a slice of `name`.
fn program_slice(name: &str) -> &str {
    let name = name.trim();
    if !name.is_ascii() {
        return program_slice_of_any(name);
    }
    // One pass over the bytes (the common case, thousands of command lines per check-in): the
    // first `.exe` that ends a word, else the first whitespace.
    let bytes = name.as_bytes();
    let is_space = |b: u8| b.is_ascii_whitespace() || b == 0x0b;
    let mut first_space = None;
    let mut end = None;
    for (i, &b) in bytes.iter().enumerate() {
        if is_space(b) {
            first_space.get_or_insert(i);
        } else if b == b'.'
            && bytes
                .get(i + 1..i + 4)
                .is_some_and(|ext| ext.eq_ignore_ascii_case(b"exe"))
            && bytes.get(i + 4).is_none_or(|&next| is_space(next))
        {
            end = Some(i);
            break;
        }
    }
    let path = &name[..end.or(first_space).unwrap_or(name.len())];
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

/// [`program_slice`] for any text (a trimmed name with characters beyond ASCII).
fn program_slice_of_any(name: &str) -> &str {
    let exe = name.match_indices('.').map(|(i, _)| i).find(|&i| {
        name.get(i + 1..i + 4)
            .is_some_and(|ext| ext.eq_ignore_ascii_case("exe"))
            && name[i + 4..].chars().next().is_none_or(char::is_whitespace)
    });
    let path = match exe {
        Some(i) => &name[..i],
        None => name.split_whitespace().next().unwrap_or(""),
    };
    path.rsplit(['/', '\\']).next().unwrap_or(path)
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

/// What a value read leniently becomes: a string through [`Lenient::from_text`] (or
/// [`Lenient::from_borrowed`] when the JSON string has no escapes), an object through
/// [`Lenient::from_map`], anything else the default.
trait Lenient<'de>: Default {
    fn from_text(_text: &str) -> Self {
        Self::default()
    }
    fn from_borrowed(text: &'de str) -> Self {
        Self::from_text(text)
    }
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::default())
    }
}

/// A string, if the value is one: borrowed from the input when it can be.
#[derive(Default)]
struct Text<'de>(Option<Cow<'de, str>>);

impl<'de> Lenient<'de> for Text<'de> {
    fn from_text(text: &str) -> Self {
        Text(Some(Cow::Owned(text.to_string())))
    }
    fn from_borrowed(text: &'de str) -> Self {
        Text(Some(Cow::Borrowed(text)))
    }
}

/// The program of a process name, if the value is a string: a slice of the name when it is
/// already in lower case.
#[derive(Default)]
struct ProgramOf<'de>(Option<Cow<'de, str>>);

impl<'de> Lenient<'de> for ProgramOf<'de> {
    fn from_text(text: &str) -> Self {
        ProgramOf(Some(Cow::Owned(program(text))))
    }
    fn from_borrowed(text: &'de str) -> Self {
        let slice = program_slice(text);
        ProgramOf(Some(if slice.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(slice.to_ascii_lowercase())
        } else {
            Cow::Borrowed(slice)
        }))
    }
}

/// A package as read from the list.
#[derive(Default)]
struct PackageIn<'de> {
    name: Option<Cow<'de, str>>,
    version: Option<Cow<'de, str>>,
}

impl<'de> Lenient<'de> for PackageIn<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut package = PackageIn::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Name => package.name = map.next_value::<Read<Text<'de>>>()?.0 .0,
                Key::Version => package.version = map.next_value::<Read<Text<'de>>>()?.0 .0,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(package)
    }
}

/// A process as [`Facts::programs`] reads it: the program of its `name`.
#[derive(Default)]
struct ProcessIn<'de>(Option<Cow<'de, str>>);

impl<'de> Lenient<'de> for ProcessIn<'de> {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut process = ProcessIn::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Name => process.0 = map.next_value::<Read<ProgramOf<'de>>>()?.0 .0,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(process)
    }
}

/// The keys kept, read without allocating.
enum Key {
    Name,
    Version,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "name" => Key::Name,
                    "version" => Key::Version,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Any JSON value read as `T` leniently (a value of another type is never an error).
struct Read<T>(T);

impl<'de, T: Lenient<'de>> Deserialize<'de> for Read<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ReadVisitor(PhantomData))
    }
}

struct ReadVisitor<T>(PhantomData<T>);

impl<'de, T: Lenient<'de>> Visitor<'de> for ReadVisitor<T> {
    type Value = Read<T>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Read<T>, A::Error> {
        T::from_map(map).map(Read)
    }
    fn visit_str<E>(self, text: &str) -> Result<Read<T>, E> {
        Ok(Read(T::from_text(text)))
    }
    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Read<T>, E> {
        Ok(Read(T::from_borrowed(text)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Read<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Read(T::default()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Read<T>, E> {
        Ok(Read(T::default()))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Read<T>, E> {
        Ok(Read(T::default()))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Read<T>, E> {
        Ok(Read(T::default()))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Read<T>, E> {
        Ok(Read(T::default()))
    }
    fn visit_unit<E>(self) -> Result<Read<T>, E> {
        Ok(Read(T::default()))
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

    #[test]
    fn the_ascii_path_finds_the_program_the_general_one_does() {
        // Every string of up to five of these characters (ASCII whitespace of every kind, dots,
        // `exe` in both cases, separators), trimmed as names are.
        let alphabet = ['a', '.', 'e', 'x', 'E', 'X', ' ', '\t', '\u{b}', '/', '\\'];
        let mut names = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = names
                .iter()
                .filter(|n| n.len() == names.last().map_or(0, String::len))
                .flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}")))
                .collect();
            names.extend(longer);
        }
        assert!(names.len() > 100_000);
        for name in &names {
            let trimmed = name.trim();
            assert_eq!(
                program_slice(name),
                program_slice_of_any(trimmed),
                "{name:?}"
            );
        }
    }

    #[test]
    fn a_program_is_its_last_path_component_without_exe() {
        for (name, want) in [
            ("/opt/osquery/osqueryd --flagfile /x", "osqueryd"),
            (
                "C:\\Program Files\\Tail Scale\\tailscaled.exe",
                "tailscaled",
            ),
            ("C:\\Program Files\\x\\App.Exe -k", "app"),
            ("  /sbin/launchd  ", "launchd"),
            ("/usr/bin/exe.executor run", "exe.executor"),
            ("", ""),
            ("ünïcode.exe", "ünïcode"),
        ] {
            assert_eq!(program(name), want, "{name}");
        }
    }
}

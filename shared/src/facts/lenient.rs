//! Reading the long lists of a facts document leniently: what the checks need of each element
//! (a package's name and version, a process's program), borrowed from the text where the JSON
//! has no escapes; an element or a value of another type is never an error.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::program::{program, program_slice};

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
pub(super) struct PackageIn<'de> {
    pub(super) name: Option<Cow<'de, str>>,
    pub(super) version: Option<Cow<'de, str>>,
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
pub(super) struct ProcessIn<'de>(pub(super) Option<Cow<'de, str>>);

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
pub(super) struct Read<T>(pub(super) T);

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

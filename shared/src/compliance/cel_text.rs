//! A top-level field of the document read for CEL straight from its JSON text, in one pass:
//! measured (its sizes, whether anything is cut, the values it takes of `MAX_VALUES`), and,
//! once a rule the budget pays for reads it, converted. No `serde_json::Value` is built: parsing
//! a crafted 2 MiB field into one (a million tiny values, records nested 120 deep) took tens of
//! milliseconds before any limit applied, and nothing charged it to the budget. What is beyond
//! the limits is skipped as serde_json skips (`IgnoredAny`: the text's syntax was checked when
//! the document was indexed). Within them, a field `serde_json` cannot represent (nesting
//! deeper than 128, a number beyond `f64`) is absent for CEL, as before; such a value beyond
//! them (past the first elements, deeper than 32) is skipped with the rest, and the field,
//! being cut, answers `false` as `unknown`.
//!
//! The limits are `cel_facts.rs`'s, applied in the text's order: a map's first
//! [`MAX_ITEMS`] entries as the device sent them (of duplicate keys, the last); lists' first
//! [`MAX_ITEMS`] elements; strings and keys cut to [`MAX_STRING`] bytes; values deeper than
//! [`MAX_DEPTH`] are `null`; after [`MAX_VALUES`] values in all, `null`.

use std::collections::HashMap;
use std::fmt;

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::cel_cost::CHUNK;
use super::cel_facts::{MAX_DEPTH, MAX_ITEMS, MAX_STRING};
use super::cel_shared::Shared;

/// A CEL value whose strings borrow the document.
pub(super) type Cel<'a> = Box<dyn Val + 'a>;

/// What reading a field found: the most entries of one of its lists or maps, the most chunks of
/// one of its strings, its weight.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Stats {
    pub items: u64,
    pub chunks: u64,
    pub weight: u64,
}

pub(super) fn chunks(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(CHUNK)
}

/// `s` cut to at most `max` bytes, at a character boundary.
pub(super) fn cut_str<'s>(s: &'s str, max: usize, cut: &mut bool) -> &'s str {
    if s.len() <= max {
        return s;
    }
    *cut = true;
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Reads the field's JSON `text`, taking from `left` of `MAX_VALUES`: its value as CEL sees it
/// if `build` (else `None`), with its sizes and whether anything was cut; `Err` if `serde_json`
/// refuses it (then nothing is taken).
pub(super) fn read<'a>(
    text: &'a str,
    left: &mut usize,
    build: bool,
) -> Result<(Option<Cel<'a>>, Stats, bool), ()> {
    let (mut stats, mut cut, mut taken) = (Stats::default(), false, *left);
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Walk {
        depth: 0,
        stats: &mut stats,
        cut: &mut cut,
        left: &mut taken,
        build,
    };
    let value = seed.deserialize(&mut de).map_err(|_| ())?;
    de.end().map_err(|_| ())?;
    *left = taken;
    Ok((value, stats, cut))
}

/// One value, as CEL sees it.
struct Walk<'s> {
    depth: usize,
    stats: &'s mut Stats,
    cut: &'s mut bool,
    left: &'s mut usize,
    build: bool,
}

impl<'s> Walk<'s> {
    fn child(&mut self) -> Walk<'_> {
        Walk {
            depth: self.depth + 1,
            stats: self.stats,
            cut: self.cut,
            left: self.left,
            build: self.build,
        }
    }

    /// Takes one value of the allowance; `false` (and cut) when none is left.
    fn take(&mut self) -> bool {
        if *self.left == 0 {
            *self.cut = true;
            return false;
        }
        *self.left -= 1;
        self.stats.weight += 1;
        true
    }

    fn value<'a>(&self, v: impl Val + 'a) -> Option<Cel<'a>> {
        self.build.then(|| Box::new(v) as Cel<'a>)
    }

    fn null<'a>(&self) -> Option<Cel<'a>> {
        self.value(CelNull)
    }

    fn string<'a>(mut self, s: &str, borrowed: Option<&'a str>) -> Option<Cel<'a>> {
        if !self.take() {
            return self.null();
        }
        let kept = cut_str(s, MAX_STRING, self.cut);
        let c = chunks(kept.len());
        self.stats.chunks = self.stats.chunks.max(c);
        self.stats.weight += c;
        if !self.build {
            return None;
        }
        Some(match borrowed {
            Some(b) => Box::new(CelString::from(&b[..kept.len()])),
            None => Box::new(CelString::from(kept.to_string())),
        })
    }

    /// A list or map nested too deep, or past the allowance: `null`, its content only checked.
    fn over(&mut self) -> bool {
        if !self.take() {
            return true;
        }
        if self.depth >= MAX_DEPTH {
            *self.cut = true;
            return true;
        }
        false
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = Option<Cel<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = Option<Cel<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }

    fn visit_unit<E>(mut self) -> Result<Self::Value, E> {
        self.take();
        Ok(self.null())
    }

    fn visit_bool<E>(mut self, b: bool) -> Result<Self::Value, E> {
        Ok(if self.take() {
            self.value(CelBool::from(b))
        } else {
            self.null()
        })
    }

    // As serde gives numbers: unsigned, signed, else a double.
    fn visit_u64<E>(mut self, u: u64) -> Result<Self::Value, E> {
        Ok(if self.take() {
            self.value(CelUInt::from(u))
        } else {
            self.null()
        })
    }

    fn visit_i64<E>(mut self, i: i64) -> Result<Self::Value, E> {
        Ok(if self.take() {
            self.value(CelInt::from(i))
        } else {
            self.null()
        })
    }

    fn visit_f64<E>(mut self, f: f64) -> Result<Self::Value, E> {
        Ok(if self.take() {
            self.value(CelDouble::from(f))
        } else {
            self.null()
        })
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(self.string(s, Some(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(self.string(s, None))
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Self::Value, A::Error> {
        if self.over() {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(self.null());
        }
        let mut list: Vec<Cel<'de>> = Vec::new();
        let mut count = 0usize;
        loop {
            if count < MAX_ITEMS {
                let Some(item) = seq.next_element_seed(self.child())? else {
                    break;
                };
                list.extend(item);
            } else {
                if seq.next_element::<IgnoredAny>()?.is_none() {
                    break;
                }
                *self.cut = true;
            }
            count += 1;
        }
        self.stats.items = self.stats.items.max(count.min(MAX_ITEMS) as u64);
        Ok(self.value(Shared::new(CelList::from(list))))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        if self.over() {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(self.null());
        }
        let mut out: HashMap<CelMapKey<'de>, Cel<'de>> = HashMap::new();
        let mut count = 0usize;
        while let Some(key) = map.next_key_seed(Key)? {
            if count >= MAX_ITEMS {
                *self.cut = true;
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            count += 1;
            let kept = cut_str(&key, MAX_STRING, self.cut);
            let c = chunks(kept.len());
            self.stats.chunks = self.stats.chunks.max(c);
            self.stats.weight += c;
            let kept = match &key {
                std::borrow::Cow::Borrowed(b) => CelString::from(&b[..kept.len()]),
                std::borrow::Cow::Owned(_) => CelString::from(kept.to_string()),
            };
            if let Some(value) = map.next_value_seed(self.child())? {
                out.insert(CelMapKey::String(kept), value);
            }
        }
        self.stats.items = self.stats.items.max(count as u64);
        Ok(self.value(Shared::new(CelMap::from(out))))
    }
}

/// A map's key, borrowed from the text when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(s.to_string()))
    }
}

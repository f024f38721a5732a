//! The page's languages: one catalogue per language (`assets/i18n/<lang>.json`, a flat map of
//! keys to texts with `{name}` placeholders), shared by the page (rendered here) and
//! `stage.js` (served with the catalogue of the language the request asks for, and English,
//! inlined). No text lives in the code paths; English is the fallback.

use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The languages, English first (the fallback), as `<html lang>` names them.
pub const LANGUAGES: [&str; 7] = ["en", "de", "fr", "es", "pt", "ja", "zh-Hans"];

const SOURCES: [&str; 7] = [
    include_str!("../assets/i18n/en.json"),
    include_str!("../assets/i18n/de.json"),
    include_str!("../assets/i18n/fr.json"),
    include_str!("../assets/i18n/es.json"),
    include_str!("../assets/i18n/pt.json"),
    include_str!("../assets/i18n/ja.json"),
    include_str!("../assets/i18n/zh-Hans.json"),
];

/// Most `Accept-Language` entries looked at (the header is the client's: bounded work).
const MAX_RANGES: usize = 32;

type Catalogue = BTreeMap<String, String>;

static CATALOGUES: LazyLock<Vec<Catalogue>> = LazyLock::new(|| {
    SOURCES
        .iter()
        .map(|s| serde_json::from_str(s).expect("the catalogues are checked by the unit tests"))
        .collect()
});

/// The catalogue of `lang` (one of [`LANGUAGES`]; anything else: English).
fn catalogue(lang: &str) -> &'static Catalogue {
    let i = LANGUAGES.iter().position(|l| *l == lang).unwrap_or(0);
    &CATALOGUES[i]
}

/// The text of `key` in `lang`, else in English, else the key itself (the tests make sure
/// every key the code uses exists in every catalogue).
pub fn text(lang: &str, key: &'static str) -> &'static str {
    catalogue(lang)
        .get(key)
        .or_else(|| CATALOGUES[0].get(key))
        .map_or(key, String::as_str)
}

/// The supported language of one language tag (`de-AT` -> `de`; `zh`, `zh-CN`, `zh-SG` and
/// `zh-Hans*` -> `zh-Hans`; traditional Chinese and unknown languages: none).
pub fn supported(tag: &str) -> Option<&'static str> {
    let tag = tag.trim().to_ascii_lowercase();
    let mut parts = tag.split(['-', '_']);
    let primary = parts.next()?;
    if primary == "zh" {
        let rest: Vec<&str> = parts.collect();
        let traditional = rest
            .iter()
            .any(|p| matches!(*p, "hant" | "tw" | "hk" | "mo"));
        return (!traditional).then_some("zh-Hans");
    }
    LANGUAGES.iter().copied().find(|l| *l == primary)
}

/// The page's language for an `Accept-Language` header: the supported language the browser
/// prefers most (by `q`, then by order), else English.
pub fn negotiate(accept_language: Option<&str>) -> &'static str {
    let Some(header) = accept_language else {
        return LANGUAGES[0];
    };
    let mut ranges: Vec<(u16, usize, &str)> = header
        .split(',')
        .take(MAX_RANGES)
        .enumerate()
        .filter_map(|(i, range)| {
            let mut fields = range.split(';');
            let tag = fields.next()?.trim();
            let q = fields
                .find_map(|f| f.trim().strip_prefix("q="))
                .map_or(Some(1000), quality)?;
            (q > 0).then_some((q, i, tag))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    ranges
        .into_iter()
        .find_map(|(_, _, tag)| supported(tag))
        .unwrap_or(LANGUAGES[0])
}

/// A `q` value in thousandths (`0.8` -> 800); `None` when malformed.
fn quality(q: &str) -> Option<u16> {
    let v: f32 = q.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&v)
        .then(|| (v * 1000.0).round() as u16)
}

/// The catalogues of `lang` and English as one JSON object (`{"en": {...}, "de": {...}}`),
/// for `stage.js`. One language, not all seven: the module stays small (about 25 KiB).
pub fn as_json(lang: &str) -> String {
    let chosen: BTreeMap<&str, &Catalogue> = LANGUAGES
        .iter()
        .zip(CATALOGUES.iter())
        .filter(|(l, _)| **l == LANGUAGES[0] || **l == lang)
        .map(|(l, c)| (*l, c))
        .collect();
    serde_json::to_string(&chosen).expect("maps of strings serialize")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn placeholders(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            let Some(end) = rest[start..].find('}') else {
                break;
            };
            out.insert(rest[start..start + end + 1].to_string());
            rest = &rest[start + end + 1..];
        }
        out
    }

    #[test]
    fn every_catalogue_is_complete_with_the_same_placeholders() {
        let en = &CATALOGUES[0];
        assert!(en.len() > 30);
        for (lang, catalogue) in LANGUAGES.iter().zip(CATALOGUES.iter()) {
            let keys: BTreeSet<&String> = catalogue.keys().collect();
            let want: BTreeSet<&String> = en.keys().collect();
            assert_eq!(keys, want, "{lang}: keys differ from en.json");
            for (key, text) in catalogue {
                assert!(!text.trim().is_empty(), "{lang}.{key} is empty");
                assert_eq!(placeholders(text), placeholders(&en[key]), "{lang}.{key}");
                if *lang != "en" && !matches!(key.as_str(), "error_usage") {
                    // A translation, not a copy (names such as authentik aside).
                    assert_ne!(text, &en[key], "{lang}.{key} is the English text");
                }
            }
        }
    }

    /// Every key the module and the page use (`t("key")`, `text(lang, "key")`) exists.
    #[test]
    fn every_key_the_code_uses_is_in_the_catalogues() {
        let mut used = BTreeSet::new();
        for (source, marker) in [
            (crate::STAGE_JS, "tr(\""),
            (include_str!("lib.rs"), "text(lang, \""),
            (include_str!("lib.rs"), "text(&lang, \""),
        ] {
            for piece in source.split(marker).skip(1) {
                if let Some(end) = piece.find('"') {
                    used.insert(piece[..end].to_string());
                }
            }
        }
        // Keys built from a name (`reason_${reason}`, `explain_${reason}`, `status_${state}`).
        for reason in [
            "no_response",
            "invalid_response",
            "not_enrolled",
            "device_locked",
            "non_compliant",
            "expired",
            "unavailable",
        ] {
            used.insert(format!("reason_{reason}"));
            used.insert(format!("explain_{reason}"));
        }
        assert!(used.len() > 30, "{used:?}");
        for key in &used {
            assert!(
                CATALOGUES[0].contains_key(key),
                "{key} is used but not in en.json"
            );
        }
        // And nothing in the catalogues is unused.
        for key in CATALOGUES[0].keys() {
            assert!(used.contains(key), "{key} is in en.json but never used");
        }
    }

    #[test]
    fn the_language_is_the_browsers_first_supported_one() {
        for (header, want) in [
            (None, "en"),
            (Some(""), "en"),
            (Some("de-DE,de;q=0.9,en;q=0.8"), "de"),
            (Some("en;q=0.5, fr-CA"), "fr"),
            (Some("it, pt-BR;q=0.7, es;q=0.6"), "pt"),
            (Some("zh-CN"), "zh-Hans"),
            (Some("zh-Hans-CN,zh;q=0.9"), "zh-Hans"),
            (Some("zh-TW,ja;q=0.5"), "ja"),
            (Some("zh-Hant"), "en"),
            (Some("ja;q=0, es;q=0.1"), "es"),
            (Some("*"), "en"),
            (Some("de;q=abc, fr;q=0.2"), "fr"),
            (Some("ES-es"), "es"),
            (Some("nl, sv"), "en"),
        ] {
            assert_eq!(negotiate(header), want, "{header:?}");
        }
        // Bounded: a header of many ranges is read only that far.
        let long = format!("{}de", "xx,".repeat(MAX_RANGES));
        assert_eq!(negotiate(Some(&long)), "en");
    }

    #[test]
    fn texts_fall_back_to_english() {
        assert_eq!(text("de", "try_again"), "Erneut versuchen");
        assert_eq!(text("xx", "try_again"), "Try again");
        assert_eq!(text("en", "no_such_key"), "no_such_key");
        let zh: serde_json::Value = serde_json::from_str(&as_json("zh-Hans")).unwrap();
        let langs: Vec<&String> = zh.as_object().unwrap().keys().collect();
        assert_eq!(langs, ["en", "zh-Hans"]);
        assert_eq!(zh["zh-Hans"]["back"], "返回登录");
        let en: serde_json::Value = serde_json::from_str(&as_json("en")).unwrap();
        assert_eq!(en.as_object().unwrap().len(), 1);
    }
}

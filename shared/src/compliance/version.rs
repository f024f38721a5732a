//! Versions as devices report them: the leading run of numbers and dots, compared number by
//! number (`24.04.1 LTS (Noble Numbat)` -> 24.4.1; `10.0.22631.3447`; a missing number counts
//! as 0). A version without a leading number has no order: rules that need one say `unknown`.

use std::cmp::Ordering;

/// Most numbers read from one version (more are ignored: no real version has them).
const MAX_PARTS: usize = 8;

/// The numbers of `text`'s leading run of digits and dots, or `None` without a leading number.
pub fn parse(text: &str) -> Option<Vec<u64>> {
    let text = text.trim_start();
    let run: &str = &text[..text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len())];
    if !run.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<u64> = run
        .split('.')
        .take(MAX_PARTS)
        // `1..2` or a trailing dot leave empty parts: they end the version.
        .take_while(|p| !p.is_empty())
        // A part too long for u64 is as large as a part can be.
        .map(|p| p.parse::<u64>().unwrap_or(u64::MAX))
        .collect();
    Some(parts)
}

/// `a` compared with `b`, number by number, a missing number counting as 0.
pub fn compare(a: &[u64], b: &[u64]) -> Ordering {
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| {
            let x = a.get(i).copied().unwrap_or(0);
            let y = b.get(i).copied().unwrap_or(0);
            x.cmp(&y)
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Whether `version` is at least `minimum`; `None` when either has no leading number.
pub fn at_least(version: &str, minimum: &str) -> Option<bool> {
    Some(compare(&parse(version)?, &parse(minimum)?).is_ge())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leading_run_of_numbers_and_dots_is_the_version() {
        let table: &[(&str, Option<&[u64]>)] = &[
            ("14.4.1", Some(&[14, 4, 1])),
            ("10.0.22631.3447", Some(&[10, 0, 22631, 3447])),
            ("24.04.1 LTS (Noble Numbat)", Some(&[24, 4, 1])),
            ("13", Some(&[13])),
            ("6.8.0-45-generic", Some(&[6, 8, 0])),
            ("1..2", Some(&[1])),
            ("7.", Some(&[7])),
            ("  15.1", Some(&[15, 1])),
            ("99999999999999999999999.1", Some(&[u64::MAX, 1])),
            ("Sonoma", None),
            ("v14.4", None),
            (".5", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(parse(text).as_deref(), *want, "{text:?}");
        }
    }

    #[test]
    fn versions_compare_number_by_number_with_missing_numbers_as_zero() {
        let table = [
            ("14.4.1", "14.4", true),
            ("14.4", "14.4.0", true),
            ("14.4", "14.4.1", false),
            ("14.10", "14.9", true),
            ("10.0.22631.3447", "10.0.22631", true),
            ("10.0.19045", "10.0.22000", false),
            ("24.04.1 LTS (Noble Numbat)", "24.4.1", true),
            ("24.04.1 LTS", "24.10", false),
            ("2", "10", false),
        ];
        for (version, minimum, want) in table {
            assert_eq!(
                at_least(version, minimum),
                Some(want),
                "{version} >= {minimum}"
            );
        }
        assert_eq!(at_least("Sonoma", "14"), None);
        assert_eq!(at_least("14", "latest"), None);
    }
}

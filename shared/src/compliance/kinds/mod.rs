//! Rule kinds, each in one file with everything about it: its options (what `add-rule` takes,
//! from which `endpoint-admin` builds its arguments), its check against a facts document, the
//! validation of what it was given, its default title and remediation (what the person signing
//! in reads), whether it scans the document's lists, and the CEL functions it offers.
//!
//! A new kind is its variant of the model's [`RuleKind`], one file here implementing [`Kind`]
//! (with its tests), and one row of the table below (`kinds!`), which a variant without a row
//! fails to compile. `endpoint-admin policy add-rule --help` lists the kinds and the CEL
//! functions they offer.

use std::sync::Arc;

use ::cel::Context;

use super::check::Found;
use super::version;
use crate::compliance::cel::CelFacts;
use crate::error::CoreError;
use crate::facts::Facts;
use crate::model::RuleKind;

mod options;
pub use options::{Opt, Takes, Values};

/// Everything about one rule kind. Implemented by a unit struct per kind; the table holds it
/// as an [`Entry`].
pub trait Kind: Sync + 'static {
    /// What the kind's variant holds, borrowed.
    type Fields<'a>;
    /// The kind's name: `add-rule`'s subcommand and the stored `kind`.
    const NAME: &'static str;
    /// One line for `add-rule --help`.
    const ABOUT: &'static str;
    /// Its options besides those every rule takes.
    const OPTIONS: &'static [Opt] = &[];
    /// Whether its check scans the document's lists (charged to the check-in's budget, as CEL
    /// rules are).
    const SCANS_LISTS: bool = false;
    /// The CEL functions it offers (each costs a scan of the document in the estimate).
    const CEL_FUNCTIONS: &'static [&'static str] = &[];

    /// Its fields, when `kind` is its variant.
    fn fields(kind: &RuleKind) -> Option<Self::Fields<'_>>;
    /// The rule kind `add-rule`'s values describe (an error here is a usage error).
    fn from_values(values: &Values) -> Result<RuleKind, String>;
    /// Refuses what the rule cannot be (an error here is a refusal).
    fn validate(_fields: &Self::Fields<'_>) -> Result<(), CoreError> {
        Ok(())
    }
    /// The check on a document (`converted`: the document as CEL sees it, and the check-in's
    /// budget).
    fn check(fields: &Self::Fields<'_>, facts: &Arc<Facts>, converted: &mut CelFacts<'_>) -> Found;
    /// The title a rule gets unless the operator gives one.
    fn title(fields: &Self::Fields<'_>) -> String;
    /// The remediation a rule gets unless the operator gives one.
    fn remediation(fields: &Self::Fields<'_>) -> String;
    /// Declares its CEL functions over this document.
    fn add_cel_functions(_ctx: &mut Context, _facts: &Arc<Facts>) -> Result<(), String> {
        Ok(())
    }
}

/// A kind as the table holds it (every [`Kind`] is one).
pub trait Entry: Sync {
    fn name(&self) -> &'static str;
    fn about(&self) -> &'static str;
    fn options(&self) -> &'static [Opt];
    fn scans_lists(&self) -> bool;
    fn cel_functions(&self) -> &'static [&'static str];
    /// The rule kind `add-rule`'s values describe ([`Kind::from_values`]).
    fn build(&self, values: &Values) -> Result<RuleKind, String>;
    fn validate(&self, kind: &RuleKind) -> Result<(), CoreError>;
    fn check(&self, kind: &RuleKind, facts: &Arc<Facts>, converted: &mut CelFacts<'_>) -> Found;
    fn title(&self, kind: &RuleKind) -> String;
    fn remediation(&self, kind: &RuleKind) -> String;
    fn add_cel_functions(&self, ctx: &mut Context, facts: &Arc<Facts>) -> Result<(), String>;
}

/// Why a kind's method was given another kind's variant (the table makes it impossible).
fn not_mine(name: &str) -> CoreError {
    CoreError::BadRequest(format!("not a {name} rule"))
}

impl<K: Kind> Entry for K {
    fn name(&self) -> &'static str {
        K::NAME
    }
    fn about(&self) -> &'static str {
        K::ABOUT
    }
    fn options(&self) -> &'static [Opt] {
        K::OPTIONS
    }
    fn scans_lists(&self) -> bool {
        K::SCANS_LISTS
    }
    fn cel_functions(&self) -> &'static [&'static str] {
        K::CEL_FUNCTIONS
    }
    fn build(&self, values: &Values) -> Result<RuleKind, String> {
        K::from_values(values)
    }
    fn validate(&self, kind: &RuleKind) -> Result<(), CoreError> {
        K::fields(kind).map_or_else(|| Err(not_mine(K::NAME)), |f| K::validate(&f))
    }
    fn check(&self, kind: &RuleKind, facts: &Arc<Facts>, converted: &mut CelFacts<'_>) -> Found {
        match K::fields(kind) {
            Some(f) => K::check(&f, facts, converted),
            None => Found {
                pass: None,
                seen: not_mine(K::NAME).to_string(),
                over_list: false,
            },
        }
    }
    fn title(&self, kind: &RuleKind) -> String {
        K::fields(kind).map(|f| K::title(&f)).unwrap_or_default()
    }
    fn remediation(&self, kind: &RuleKind) -> String {
        K::fields(kind)
            .map(|f| K::remediation(&f))
            .unwrap_or_default()
    }
    fn add_cel_functions(&self, ctx: &mut Context, facts: &Arc<Facts>) -> Result<(), String> {
        K::add_cel_functions(ctx, facts)
    }
}

/// The one table: each file, and the model's variant its unit struct (of the same name)
/// defines. `of` matches every variant, so a variant without a row does not compile.
macro_rules! kinds {
    ($($file:ident: $kind:ident,)*) => {
        $(pub mod $file;)*

        /// Every kind, in the order `add-rule --help` lists them.
        pub static KINDS: &[&dyn Entry] = &[$(&$file::$kind),*];

        /// The definition of `kind`.
        pub fn of(kind: &RuleKind) -> &'static dyn Entry {
            match kind {
                $(RuleKind::$kind { .. } => &$file::$kind,)*
            }
        }
    };
}

kinds! {
    os_family: OsFamily,
    os_version: OsVersion,
    disk_encryption: DiskEncryption,
    firewall: Firewall,
    software: Software,
    process: Process,
    screen_lock: ScreenLock,
    cel: Cel,
}

/// The kind named `name` (as `add-rule` takes it).
pub fn by_name(name: &str) -> Option<&'static dyn Entry> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// A rule kind's name (`os-version`).
pub fn name(kind: &RuleKind) -> &'static str {
    of(kind).name()
}

/// Whether `function` is a CEL function some kind offers.
pub fn is_cel_function(function: &str) -> bool {
    KINDS.iter().any(|k| k.cel_functions().contains(&function))
}

/// Longest software or process name, or minimum version.
pub const MAX_NAME_CHARS: usize = 256;
/// The OS families agents report (authentik's `DeviceFactsOSFamily`).
pub const FAMILIES: [&str; 8] = [
    "linux", "unix", "bsd", "windows", "mac_os", "android", "i_os", "other",
];

/// A family as people name it.
pub fn family_name(family: &str) -> &str {
    match family {
        "linux" => "Linux",
        "unix" => "Unix",
        "bsd" => "BSD",
        "windows" => "Windows",
        "mac_os" => "macOS",
        "android" => "Android",
        "i_os" => "iOS",
        "other" => "another OS",
        other => other,
    }
}

fn bad(message: String) -> CoreError {
    CoreError::BadRequest(message)
}

/// A family agents report.
fn check_family(f: &str) -> Result<(), CoreError> {
    if FAMILIES.contains(&f) {
        Ok(())
    } else {
        Err(bad(format!(
            "unknown OS family {f:?} (one of {})",
            FAMILIES.join(", ")
        )))
    }
}

/// A software or process name: 1 to [`MAX_NAME_CHARS`] characters without control characters.
fn check_name(what: &str, s: &str) -> Result<(), CoreError> {
    if s.trim().is_empty() || s.chars().count() > MAX_NAME_CHARS || s.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "{what} must be 1 to {MAX_NAME_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

/// A version that starts with a number.
fn check_version(what: &str, v: &str) -> Result<(), CoreError> {
    check_name(what, v)?;
    version::parse(v)
        .map(|_| ())
        .ok_or_else(|| bad(format!("{what} {v:?} does not start with a number")))
}

#[cfg(test)]
mod tests {
    use super::{by_name, is_cel_function, KINDS};

    #[test]
    fn kinds_have_one_name_each_and_their_options_and_functions_are_distinct() {
        for (i, k) in KINDS.iter().enumerate() {
            assert!(by_name(k.name())
                .is_some_and(|b| std::ptr::eq(b.name().as_ptr(), KINDS[i].name().as_ptr())));
            assert_eq!(KINDS.iter().filter(|o| o.name() == k.name()).count(), 1);
            let mut longs: Vec<&str> = k.options().iter().map(|o| o.long).collect();
            longs.sort_unstable();
            longs.dedup();
            assert_eq!(longs.len(), k.options().len(), "{}", k.name());
            for f in k.cel_functions() {
                assert!(is_cel_function(f));
                assert_eq!(
                    KINDS
                        .iter()
                        .filter(|o| o.cel_functions().contains(f))
                        .count(),
                    1,
                    "{f}"
                );
            }
        }
        assert!(!is_cel_function("size"));
    }
}

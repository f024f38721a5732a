//! A kind's options as data, so that `endpoint-admin policy add-rule` builds its arguments
//! from the kinds' own definitions (one definition per option, as ripgrep defines each flag
//! once) and the core needs no argument parser.

/// How an option takes its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Takes {
    /// Exactly one value, required.
    One,
    /// At most one value.
    Optional,
    /// One value or more, comma-separated or repeated, required.
    List,
    /// One value, this one unless given.
    Default(&'static str),
}

/// One option of a rule kind: `--<long> <VALUE>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opt {
    pub long: &'static str,
    /// What usage shows in place of the value (`F,F`, `V`, `NAME`).
    pub value: &'static str,
    pub help: &'static str,
    pub takes: Takes,
}

/// The values given to a kind's options, by option.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values(Vec<(&'static str, Vec<String>)>);

impl Values {
    /// Records the values of option `long`.
    pub fn set(&mut self, long: &'static str, values: Vec<String>) {
        self.0.retain(|(l, _)| *l != long);
        self.0.push((long, values));
    }

    /// The values of `long` (empty when not given).
    pub fn list(&self, long: &str) -> Vec<String> {
        self.0
            .iter()
            .find(|(l, _)| *l == long)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The value of `long`, if given.
    pub fn optional(&self, long: &str) -> Option<String> {
        self.list(long).into_iter().next()
    }

    /// The value of a required option (or one with a default).
    pub fn one(&self, long: &str) -> Result<String, String> {
        self.optional(long)
            .ok_or_else(|| format!("--{long} is required"))
    }
}

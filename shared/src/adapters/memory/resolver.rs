//! A resolver with fixed answers, for tests of the push endpoint check.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::ports::{LookupError, Resolve};

/// Answers the addresses it was given per name (case-insensitive, without a trailing dot);
/// an unknown name does not resolve, and `slow` names time out.
#[derive(Clone, Debug, Default)]
pub struct StaticResolver {
    names: BTreeMap<String, Vec<IpAddr>>,
    slow: Vec<String>,
}

impl StaticResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// `name` resolves to `ips`.
    pub fn with(mut self, name: &str, ips: &[IpAddr]) -> Self {
        self.names.insert(key(name), ips.to_vec());
        self
    }

    /// `name`'s lookup times out.
    pub fn slow(mut self, name: &str) -> Self {
        self.slow.push(key(name));
        self
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Resolve for StaticResolver {
    async fn lookup(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        let name = key(host);
        if self.slow.contains(&name) {
            return Err(LookupError::Timeout);
        }
        self.names.get(&name).cloned().ok_or(LookupError::NotFound)
    }
}

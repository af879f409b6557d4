//! Reading variables: the one place that decides what "set" means and how a bad value is
//! reported (naming the variable).

use std::collections::HashMap;
use std::str::FromStr;

use super::ConfigError;

/// The environment as the settings read it: a value is set when it is not blank, and is
/// trimmed.
pub struct Vars<'a>(pub &'a HashMap<String, String>);

impl Vars<'_> {
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// A value parsed with `FromStr`; a value that does not parse names the variable.
    pub fn parse<T>(&self, name: &'static str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(name)
            .map(|text| text.parse::<T>().map_err(|e| invalid(name, e.to_string())))
            .transpose()
    }
}

pub fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

/// A variable map from pairs, for tests.
#[cfg(test)]
pub(crate) fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

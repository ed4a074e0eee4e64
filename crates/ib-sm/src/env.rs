//! Environment values as a plain map: the binary fills it from the process environment, tests from a
//! literal. Go's env parser treats a variable set to the empty string as unset; so does [`EnvMap::get`].

use std::collections::BTreeMap;

/// Environment variables by name; the process environment or a test's literal.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvMap(BTreeMap<String, String>);

impl EnvMap {
    /// An empty environment.
    pub fn new() -> Self {
        EnvMap::default()
    }

    /// The value of a variable, `None` when unset or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Sets `key` to `value`, replacing any earlier value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }

    /// Every variable and its value, in name order (for a child process's environment).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A whole number; unset means `default`.
    pub fn u64(&self, key: &'static str, default: u64) -> Result<u64, EnvError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| EnvError::new(key, v, "must be a whole number")),
        }
    }

    /// A boolean in the forms Go's `strconv.ParseBool` accepts; unset means `default`.
    pub fn bool(&self, key: &'static str, default: bool) -> Result<bool, EnvError> {
        match self.get(key) {
            None => Ok(default),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
            Some(v) => Err(EnvError::new(key, v, "must be true or false")),
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EnvMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        EnvMap(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// Variable names only: values may be secrets.
impl std::fmt::Debug for EnvMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// A variable whose value could not be used: names the variable and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?}: {reason}")]
pub struct EnvError {
    /// The variable's name.
    pub variable: &'static str,
    /// The value it had.
    pub value: String,
    /// Why the value cannot be used.
    pub reason: String,
}

impl EnvError {
    /// The error for `variable` set to `value`, refused for `reason`.
    pub fn new(variable: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        EnvError { variable, value: value.into(), reason: reason.into() }
    }
}

/// Several bad variables at once, so a user fixes them in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct EnvErrors(pub Vec<EnvError>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_unset_and_debug_shows_no_values() {
        let env: EnvMap = [("A", ""), ("B", "x"), ("SECRET", "hunter2")].into_iter().collect();
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B"), Some("x"));
        assert_eq!(env.get("C"), None);
        assert!(!format!("{env:?}").contains("hunter2"));
    }

    #[test]
    fn errors_name_variable_and_value() {
        let e = EnvErrors(vec![EnvError::new("X", "1", "bad"), EnvError::new("Y", "", "missing")]);
        assert_eq!(e.to_string(), "invalid configuration: X=\"1\": bad; Y=\"\": missing");
    }
}

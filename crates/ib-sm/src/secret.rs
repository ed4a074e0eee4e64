//! A credential that cannot be printed by accident.

/// Holds a password or token. `Debug` and `Display` print `<redacted>`; the value is only reachable
/// through [`Secret::expose`], which marks every place it leaves the process.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself, for the one place it is sent (a header, a plugin's environment).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("canary-123");
        assert_eq!(format!("{s:?} {s} {s:#?}"), "<redacted> <redacted> <redacted>");
        assert_eq!(s.expose(), "canary-123");
    }
}

//! The `UFM_*` variables of an emulated UFM as a POSIX shell file, loadable with
//! `set -a; . ufm.env; set +a`.

use std::fmt::Write as _;

/// Where the controller finds the UFM and how it logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UfmEnv {
    pub username: String,
    pub password: String,
    pub address: String,
    pub port: u16,
    /// `https` or `http`.
    pub schema: &'static str,
    /// PEM text of the CA, for HTTPS.
    pub certificate: Option<String>,
}

impl UfmEnv {
    /// The variables in the controller's names, in a stable order.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("UFM_USERNAME", self.username.clone()),
            ("UFM_PASSWORD", self.password.clone()),
            ("UFM_ADDRESS", self.address.clone()),
            ("UFM_PORT", self.port.to_string()),
            ("UFM_HTTP_SCHEMA", self.schema.to_owned()),
        ];
        if let Some(pem) = &self.certificate {
            vars.push(("UFM_CERTIFICATE", pem.clone()));
        }
        vars
    }

    /// The file's text: a comment line, then one `NAME='value'` assignment per variable.
    pub fn render(&self) -> String {
        let mut text =
            String::from("# UFM emulator settings for ib-kubernetes; load with: set -a; . ./ufm.env; set +a\n");
        for (name, value) in self.variables() {
            let _ = writeln!(text, "{name}={}", shell_quote(&value));
        }
        text
    }
}

/// Single-quotes `value` for a POSIX shell: newlines (a PEM) are kept literally, and a `'` becomes
/// `'\''`, the only character single quotes cannot hold.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_newlines_and_escapes_quotes() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("l1\nl2\n"), "'l1\nl2\n'");
    }

    #[test]
    fn plain_http_has_no_certificate() {
        let env = UfmEnv {
            username: "admin".into(),
            password: "pw".into(),
            address: "127.0.0.1".into(),
            port: 8080,
            schema: "http",
            certificate: None,
        };
        let text = env.render();
        assert!(text.contains("UFM_PORT='8080'\n") && text.contains("UFM_HTTP_SCHEMA='http'\n"));
        assert!(!text.contains("UFM_CERTIFICATE"));
    }
}

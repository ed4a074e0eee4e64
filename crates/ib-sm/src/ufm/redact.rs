//! Keeps credentials out of error text we did not write ourselves: UFM's error bodies and the messages of
//! the HTTP stack. A misbehaving proxy or a debug build of UFM can echo the `Authorization` header back;
//! whatever it echoes must not reach our logs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::config::Auth;

const REDACTED: &str = "<redacted>";

/// Every form in which our credentials could come back: the raw secret and the Basic header value.
#[derive(Clone)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(auth: &Auth) -> Self {
        let mut secrets = match auth {
            Auth::Basic { username, password } => {
                let pair = format!("{username}:{}", password.expose());
                vec![STANDARD.encode(&pair), pair, password.expose().to_owned()]
            }
            Auth::Token(token) => vec![token.expose().to_owned()],
        };
        secrets.retain(|s| !s.is_empty());
        // Longest first, so the pair is replaced whole before the password inside it.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    /// Length of the longest form, in bytes.
    pub fn longest(&self) -> usize {
        self.secrets.first().map_or(0, String::len)
    }

    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }
}

/// Never shows the secrets it holds.
impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    #[test]
    fn scrubs_password_pair_and_header_value() {
        let r = Redactor::new(&Auth::Basic { username: "admin".into(), password: Secret::new("pw-123") });
        let b64 = STANDARD.encode("admin:pw-123");
        let text = format!("echo: Basic {b64}; user admin:pw-123; pw-123");
        let clean = r.scrub(&text);
        assert_eq!(clean, "echo: Basic <redacted>; user <redacted>; <redacted>");
        assert_eq!(r.longest(), b64.len());
        assert!(!format!("{r:?}").contains("pw-123"));
    }

    #[test]
    fn scrubs_tokens_and_leaves_other_text() {
        let r = Redactor::new(&Auth::Token(Secret::new("tok-9")));
        assert_eq!(r.scrub("Basic tok-9 refused"), "Basic <redacted> refused");
        assert_eq!(r.scrub("nothing here"), "nothing here");
    }
}

//! Keeps credentials out of error text we did not write ourselves: UFM's error bodies, the messages of
//! the HTTP stack, and whatever an exec plugin prints. A misbehaving proxy or a debug build of UFM can
//! echo the `Authorization` header back, a plugin can print its password on stderr; whatever comes back
//! must not reach our logs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::ufm::Auth;

const REDACTED: &str = "<redacted>";

/// Words that mark an environment variable as holding a credential, in its upper-cased name.
const SECRET_NAME_WORDS: [&str; 9] =
    ["PASSWORD", "PASSWD", "PASSPHRASE", "TOKEN", "SECRET", "CREDENTIAL", "APIKEY", "API_KEY", "PRIVATE_KEY"];

/// Every form in which our credentials could come back: the raw secret, the Basic header value, and
/// their JSON-escaped spellings.
#[derive(Clone)]
pub struct Redactor {
    /// Longest first, so that a pair is replaced whole before the password inside it.
    secrets: Vec<String>,
}

impl Redactor {
    /// The UFM credentials: the password, `user:password` and its base64 (the Basic header), or the token.
    pub fn new(auth: &Auth) -> Self {
        Redactor::from_secrets(auth_forms(auth))
    }

    /// The credentials in the environment an exec plugin is given: the UFM login in the forms of
    /// [`Redactor::new`]; the value (and its base64) of every variable whose name says it holds a secret
    /// (`…PASSWORD…`, `…TOKEN…`, `…SECRET…`, `…CREDENTIAL…`, `…API_KEY…`, …); the user information of a
    /// proxy URL (`*_PROXY=http://user:password@proxy`).
    pub fn for_environment<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let get =
            |key: &str| vars.clone().into_iter().find(|(k, _)| *k == key).map(|(_, v)| v).filter(|v| !v.is_empty());
        let mut secrets = Vec::new();
        if let Some(token) = get("UFM_TOKEN") {
            secrets.extend(auth_forms(&Auth::Token(crate::Secret::new(token))));
        }
        // The user name may come under its older key, UFM_USER, as UfmConfig reads it.
        let username = get("UFM_USERNAME").or_else(|| get(crate::ufm::config::LEGACY_USERNAME_VARIABLE));
        if let (Some(username), Some(password)) = (username, get("UFM_PASSWORD")) {
            secrets.extend(auth_forms(&Auth::Basic {
                username: username.to_owned(),
                password: crate::Secret::new(password),
            }));
        }
        for (name, value) in vars {
            if value.is_empty() {
                continue;
            }
            let upper = name.to_ascii_uppercase();
            if SECRET_NAME_WORDS.iter().any(|w| upper.contains(w)) {
                secrets.push(STANDARD.encode(value));
                secrets.push(value.to_owned());
            } else if upper.ends_with("_PROXY")
                && let Some(userinfo) = proxy_userinfo(value)
            {
                secrets.push(STANDARD.encode(userinfo));
                if let Some((_, password)) = userinfo.split_once(':') {
                    secrets.push(password.to_owned());
                }
                secrets.push(userinfo.to_owned());
            }
        }
        Redactor::from_secrets(secrets)
    }

    /// Knows no credential: scrubs nothing.
    #[cfg(test)]
    pub fn none() -> Self {
        Redactor { secrets: Vec::new() }
    }

    fn from_secrets(raw: Vec<String>) -> Self {
        let mut secrets = Vec::with_capacity(raw.len() * 2);
        for secret in raw.into_iter().filter(|s| !s.is_empty()) {
            // As a JSON string would carry it (a body or a plugin's output re-encoded by serde_json).
            if let Ok(quoted) = serde_json::to_string(&secret) {
                let escaped = &quoted[1..quoted.len() - 1];
                if escaped != secret {
                    secrets.push(escaped.to_owned());
                }
            }
            secrets.push(secret);
        }
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// Length of the longest form, in bytes.
    pub fn longest(&self) -> usize {
        self.secrets.first().map_or(0, String::len)
    }

    /// `text` with every form of every credential replaced by `<redacted>`.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// [`Redactor::scrub`] for a piece cut out of a longer output: `cut_before` when output preceded the
    /// piece, `cut_after` when output followed it. A credential the cut went through is only partly in
    /// the piece, where no whole match can find it, so the part of the piece that could be the end
    /// (`cut_before`) or the start (`cut_after`) of a credential is dropped first.
    pub fn scrub_bytes(&self, piece: &[u8], cut_before: bool, cut_after: bool) -> String {
        let mut start = 0;
        let mut end = piece.len();
        for secret in self.secrets.iter().map(String::as_bytes) {
            // Proper parts only: a whole credential is in the piece and is replaced below.
            for k in (1..secret.len()).rev() {
                if cut_before && k <= piece.len() && piece[..k] == secret[secret.len() - k..] {
                    start = start.max(k);
                    break;
                }
            }
            for k in (1..secret.len()).rev() {
                if cut_after && k <= piece.len() && piece[piece.len() - k..] == secret[..k] {
                    end = end.min(piece.len() - k);
                    break;
                }
            }
        }
        if start >= end {
            return String::new();
        }
        self.scrub(&String::from_utf8_lossy(&piece[start..end]))
    }
}

fn auth_forms(auth: &Auth) -> Vec<String> {
    match auth {
        Auth::Basic { username, password } => {
            let pair = format!("{username}:{}", password.expose());
            vec![STANDARD.encode(&pair), pair, password.expose().to_owned()]
        }
        Auth::Token(token) => vec![token.expose().to_owned()],
    }
}

/// `user:password` of `scheme://user:password@host:port/…`, when there is one.
fn proxy_userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    authority.rsplit_once('@').map(|(userinfo, _)| userinfo).filter(|u| !u.is_empty())
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

    #[test]
    fn json_escaped_credentials_are_scrubbed_too() {
        let r = Redactor::new(&Auth::Basic { username: "u".into(), password: Secret::new(r#"p"w\1"#) });
        let body = serde_json::json!({ "error": r#"bad password p"w\1"# }).to_string();
        assert!(body.contains(r#"p\"w\\1"#), "{body}");
        assert_eq!(r.scrub(&body), r#"{"error":"bad password <redacted>"}"#);
    }

    #[test]
    fn pieces_drop_credentials_cut_by_their_edges() {
        let r = Redactor::new(&Auth::Token(Secret::new("canary-TOKEN")));
        assert_eq!(r.scrub_bytes(b"before canary-TOK", false, true), "before ");
        assert_eq!(r.scrub_bytes(b"KEN after", true, false), " after");
        assert_eq!(r.scrub_bytes(b"canary-TOKEN whole", false, true), "<redacted> whole");
        // Uncut pieces keep text that merely looks like a part.
        assert_eq!(r.scrub_bytes(b"before canary-TOK", false, false), "before canary-TOK");
        assert_eq!(r.scrub_bytes(b"can", true, true), "");
    }

    #[test]
    fn the_older_user_name_key_still_yields_the_basic_credential() {
        let r = Redactor::for_environment([("UFM_USER", "legacy"), ("UFM_PASSWORD", "canary-pw")]);
        let clean = r.scrub(&format!("Authorization: Basic {}", STANDARD.encode("legacy:canary-pw")));
        assert!(!clean.contains(&STANDARD.encode("legacy:canary-pw")), "{clean}");
    }

    #[test]
    fn plugin_environments_yield_their_credentials() {
        let env = [
            ("UFM_USERNAME", "admin"),
            ("UFM_PASSWORD", "canary-pw"),
            ("UFM_ADDRESS", "ufm.example"),
            ("IB_PLUGIN_API_TOKEN", "canary-api"),
            ("ACME_SECRET_KEY", "canary-acme"),
            ("HTTPS_PROXY", "http://puser:canary-proxy@proxy:3128/"),
            ("LANG", "C.UTF-8"),
            ("IB_PLUGIN_EMPTY_TOKEN", ""),
        ];
        let r = Redactor::for_environment(env);
        let text = format!(
            "admin:canary-pw {} canary-api {} canary-acme puser:canary-proxy {} at ufm.example in C.UTF-8, user admin",
            STANDARD.encode("admin:canary-pw"),
            STANDARD.encode("canary-api"),
            STANDARD.encode("puser:canary-proxy"),
        );
        let clean = r.scrub(&text);
        assert!(!clean.contains("canary"), "{clean}");
        for kept in ["ufm.example", "C.UTF-8", "admin"] {
            assert!(clean.contains(kept), "{clean}");
        }
        assert_eq!(proxy_userinfo("proxy:3128"), None);
        assert_eq!(proxy_userinfo("u:p@proxy"), Some("u:p"));
    }
}

//! UFM's two header-based logins: `/ufmRest` takes HTTP Basic with user name
//! and password; `/ufmRestV3` takes an access token written as `Authorization: Basic <token>`
//! (literally "Basic", the token not base64-wrapped). Nothing here ever logs a secret.

use std::collections::BTreeMap;
use std::fmt;

use axum::http::HeaderValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use crate::routes::Prefix;

/// Why a request was not let in; all answer 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authorization required")]
    Missing,
    #[error("malformed authorization header")]
    Malformed,
    #[error("invalid user name or password")]
    BadCredentials,
    #[error("invalid or revoked access token")]
    BadToken,
}

/// How long UFM's tokens live (ten years, the value its API reports).
const TOKEN_LIFETIME_SECS: u64 = 315_360_000;

/// One access token as `GET /app/tokens` lists it.
#[derive(Clone, Serialize)]
pub struct TokenInfo {
    pub access_token: String,
    pub revoked: bool,
    pub issued_at: i64,
    pub expires_in: u64,
    pub username: String,
}

impl fmt::Debug for TokenInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenInfo")
            .field("access_token", &"<redacted>")
            .field("revoked", &self.revoked)
            .field("issued_at", &self.issued_at)
            .field("username", &self.username)
            .finish()
    }
}

/// The accepted login and tokens.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: String,
    tokens: BTreeMap<String, TokenInfo>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl Credentials {
    pub fn new(username: String, password: String, tokens: &[String]) -> Self {
        let mut credentials = Credentials { username, password, tokens: BTreeMap::new() };
        for token in tokens {
            credentials.add_token(token.clone());
        }
        credentials
    }

    pub fn set_password(&mut self, password: String) {
        self.password = password;
    }

    /// Registers a token for the configured user.
    pub fn add_token(&mut self, token: String) -> TokenInfo {
        let info = TokenInfo {
            access_token: token.clone(),
            revoked: false,
            issued_at: jiff::Timestamp::now().as_second(),
            expires_in: TOKEN_LIFETIME_SECS,
            username: self.username.clone(),
        };
        self.tokens.insert(token, info.clone());
        info
    }

    /// Marks a token revoked; false if it was never issued.
    pub fn revoke(&mut self, token: &str) -> bool {
        match self.tokens.get_mut(token) {
            Some(info) => {
                info.revoked = true;
                true
            }
            None => false,
        }
    }

    pub fn tokens(&self) -> Vec<TokenInfo> {
        self.tokens.values().cloned().collect()
    }

    /// Checks the `Authorization` header against what `prefix` requires.
    pub fn check(&self, prefix: Prefix, header: Option<&HeaderValue>) -> Result<(), AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let text = header.to_str().map_err(|_| AuthError::Malformed)?;
        let (scheme, value) = text.split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(AuthError::Malformed);
        }
        let value = value.trim();
        match prefix {
            Prefix::Basic => {
                let decoded = STANDARD.decode(value).map_err(|_| AuthError::Malformed)?;
                let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Malformed)?;
                let (user, pass) = decoded.split_once(':').ok_or(AuthError::Malformed)?;
                if user == self.username && pass == self.password { Ok(()) } else { Err(AuthError::BadCredentials) }
            }
            Prefix::Token => match self.tokens.get(value) {
                Some(info) if !info.revoked => Ok(()),
                _ => Err(AuthError::BadToken),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new("admin".into(), "123456".into(), &["tok1".into()])
    }

    fn basic(user_pass: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(user_pass))).unwrap()
    }

    #[test]
    fn basic_auth_checks_user_and_password() {
        let c = creds();
        assert_eq!(c.check(Prefix::Basic, Some(&basic("admin:123456"))), Ok(()));
        assert_eq!(c.check(Prefix::Basic, Some(&basic("admin:wrong"))), Err(AuthError::BadCredentials));
        assert_eq!(c.check(Prefix::Basic, None), Err(AuthError::Missing));
        assert_eq!(c.check(Prefix::Basic, Some(&HeaderValue::from_static("Basic !!!"))), Err(AuthError::Malformed));
        assert_eq!(c.check(Prefix::Basic, Some(&HeaderValue::from_static("Bearer x"))), Err(AuthError::Malformed));
    }

    #[test]
    fn passwords_may_contain_colons() {
        let c = Credentials::new("u".into(), "a:b".into(), &[]);
        assert_eq!(c.check(Prefix::Basic, Some(&basic("u:a:b"))), Ok(()));
    }

    #[test]
    fn tokens_are_taken_verbatim_and_can_be_revoked() {
        let mut c = creds();
        let ok = HeaderValue::from_static("Basic tok1");
        assert_eq!(c.check(Prefix::Token, Some(&ok)), Ok(()));
        let wrapped = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("tok1"))).unwrap();
        assert_eq!(c.check(Prefix::Token, Some(&wrapped)), Err(AuthError::BadToken));
        assert_eq!(c.check(Prefix::Token, Some(&basic("admin:123456"))), Err(AuthError::BadToken));
        assert!(c.revoke("tok1"));
        assert_eq!(c.check(Prefix::Token, Some(&ok)), Err(AuthError::BadToken));
        assert!(!c.revoke("nope"));
    }

    #[test]
    fn debug_redacts_secrets() {
        let shown = format!("{:?} {:?}", creds(), creds().tokens());
        assert!(!shown.contains("123456"));
        assert!(!shown.contains("tok1"));
    }
}

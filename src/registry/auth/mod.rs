//! Registry authentication: where credentials come from (`credentials`), how a registry asks for
//! them (`challenge`), and the secret types that keep them out of every log and error.

pub mod challenge;
pub mod credentials;

use std::fmt;
use std::sync::Mutex;

/// Every secret this process has held (passwords, tokens, the headers made of them), so that
/// [`redact`] can take them out of anything a registry sends back. Shorter ones are too likely to
/// occur in ordinary text to be replaced.
static HELD: Mutex<Vec<String>> = Mutex::new(Vec::new());
const SHORTEST_REDACTED: usize = 4;

/// A string that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        if value.len() >= SHORTEST_REDACTED {
            let mut held = HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if !held.contains(&value) {
                held.push(value.clone());
                // Longest first: a header is replaced whole, not just the token inside it.
                held.sort_by_key(|s| std::cmp::Reverse(s.len()));
            }
        }
        Secret(value)
    }

    /// The value, for the one place that sends it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

/// For command-line flags such as `--creds`: parsing cannot fail, and the value stays wrapped.
impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Secret::new(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `text` with every secret this process holds, and any `Basic …` or `Bearer …` credential,
/// replaced by `<redacted>`: for text a registry sends back, which may echo what it was sent.
pub fn redact(text: &str) -> String {
    let mut text = text.to_string();
    for secret in HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter() {
        if text.contains(secret.as_str()) {
            text = text.replace(secret.as_str(), "<redacted>");
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = find_scheme(rest) {
        let (before, scheme_on) = rest.split_at(at);
        let scheme_len = scheme_on.find(' ').map_or(scheme_on.len(), |i| i + 1);
        out.push_str(before);
        out.push_str(&scheme_on[..scheme_len]);
        let value = &scheme_on[scheme_len..];
        let end = value.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';')).unwrap_or(value.len());
        if looks_like_credential(&value[..end]) {
            out.push_str("<redacted>");
        } else {
            out.push_str(&value[..end]);
        }
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// The length of the longest secret held, in bytes.
pub(crate) fn longest_held() -> usize {
    HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner).first().map_or(0, String::len)
}

/// A token or base64 `user:password`, not a word: it has a digit or a symbol, or decodes to `a:b`.
fn looks_like_credential(value: &str) -> bool {
    use base64::Engine;
    !value.is_empty()
        && (!value.chars().all(|c| c.is_alphabetic())
            || base64::engine::general_purpose::STANDARD.decode(value).is_ok_and(|decoded| decoded.contains(&b':')))
}

/// Where `Basic ` or `Bearer ` (any case) starts in `text`.
fn find_scheme(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    [lower.find("basic "), lower.find("bearer ")].into_iter().flatten().min()
}

/// What a user gave us to log in with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// Sent as HTTP Basic, or to a token server to get a bearer token.
    Basic { username: String, password: Secret },
    /// An OAuth2 refresh token (`identitytoken` in docker's config), exchanged with a POST.
    IdentityToken { username: Option<String>, token: Secret },
}

/// A credential and where it was found (a flag, a variable or a file: never the secret).
#[derive(Clone, Debug)]
pub(crate) struct FoundCredential {
    pub(crate) credential: Credential,
    pub(crate) source: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let credential = Credential::Basic { username: "ci".into(), password: Secret::new("hunter2") };
        let shown = format!("{credential:?} {}", Secret::new("hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn held_secrets_and_credentials_are_redacted() {
        let _ = Secret::new("s3cr3t-token-value");
        assert_eq!(redact("got s3cr3t-token-value back"), "got <redacted> back");
        assert_eq!(redact("header was \"Basic dTpw\", BEARER abc.def;x"), "header was \"Basic <redacted>\", BEARER <redacted>;x");
        assert_eq!(redact("needs basic authentication, Bearer tokens"), "needs basic authentication, Bearer tokens");
    }
}

//! Registry authentication: where credentials come from (`credentials`), how a registry asks for
//! them (`challenge`), and the secret types that keep them out of every log and error.

pub mod challenge;
pub mod credentials;

use std::fmt;

/// A string that must never be printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
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
}

//! Registry errors: what was asked (method and URL, query stripped), what came back (status and
//! the registry's error code from its JSON), and a hint for the fixes people need most.

use std::time::Duration;

use super::auth::credentials::CredentialError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistryError {
    #[error("{method} {url}: {status}{}", describe_code(code.as_deref(), message))]
    Status {
        method: String,
        url: String,
        status: u16,
        code: Option<String>,
        message: String,
        /// `Retry-After`, when the registry sent one.
        retry_after: Option<Duration>,
    },
    #[error("{method} {url}: {detail}")]
    Network { method: String, url: String, detail: String },
    #[error("TLS connection to {host} failed: {detail}")]
    Tls { host: String, detail: String },
    #[error("{host} asks for credentials, and none were found")]
    NoCredentials { host: String },
    #[error("{host} refused the credentials from {source_name}")]
    Refused { host: String, source_name: String },
    #[error("the token server {realm} answered {status}{}", describe_code(code.as_deref(), message))]
    Token { realm: String, status: u16, code: Option<String>, message: String },
    #[error("{what}: {detail}")]
    BadResponse { what: String, detail: String },
    #[error("{what}: the registry stored digest {got}, expected {expected}")]
    DigestMismatch { what: String, expected: String, got: String },
    #[error("gave up after --timeout {seconds}s while {what}")]
    Timeout { seconds: u64, what: String },
    #[error("{what}: the registry asked to wait {seconds} s (Retry-After), past the --timeout of {timeout} s")]
    RetryAfter { seconds: u64, timeout: u64, what: String },
    #[error("{what}: the answer is larger than {limit_mib} MiB, the most scratchpack reads")]
    TooLarge { what: String, limit_mib: u64 },
    #[error("{method} {url}: too many redirects (more than {limit}); the registry redirects in a loop")]
    Redirects { method: String, url: String, limit: usize },
    #[error("{reference}: a Docker schema 1 manifest ({media_type}), which scratchpack does not read")]
    Schema1 { reference: String, media_type: String },
    #[error("{what}: the registry sent bytes that do not match digest {expected} ({detail}); refused")]
    WrongContent { what: String, expected: String, detail: String },
    #[error("{reference}: not found in the registry")]
    NotFound { reference: String },
    #[error("{path}: cannot write {what}")]
    Write {
        path: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot read {what}")]
    Read {
        path: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The registry could not be reached, after the probe's own retries: final, never retried
    /// again by the operation that found it.
    #[error(transparent)]
    Unreachable(Box<RegistryError>),
}

fn describe_code(code: Option<&str>, message: &str) -> String {
    match (code, message.is_empty()) {
        (Some(code), false) => format!(" ({code}: {message})"),
        (Some(code), true) => format!(" ({code})"),
        (None, false) => format!(" ({message})"),
        (None, true) => String::new(),
    }
}

impl RegistryError {
    /// Worth another try: timeouts, throttling, server errors and broken connections.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            RegistryError::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            RegistryError::Token { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            RegistryError::Network { .. } => true,
            _ => false,
        }
    }

    /// An answer that came but is no use (a redirect loop, an oversized head or body, a malformed
    /// answer): the server speaks HTTP, and asking again would get the same.
    pub(crate) fn is_bad_answer(&self) -> bool {
        matches!(self, RegistryError::Redirects { .. } | RegistryError::TooLarge { .. } | RegistryError::BadResponse { .. })
    }

    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn hint(&self) -> Option<String> {
        let code = match self {
            RegistryError::Unreachable(inner) => return inner.hint(),
            RegistryError::Status { code, status, .. } => code.clone().or_else(|| match status {
                401 => Some("UNAUTHORIZED".into()),
                403 => Some("DENIED".into()),
                _ => None,
            }),
            RegistryError::NoCredentials { host } | RegistryError::Refused { host, .. } => {
                return Some(format!(
                    "run `docker login {host}` (or `podman login`), or pass --creds USER:PASSWORD, or set SCRATCHPACK_REGISTRY_USER and SCRATCHPACK_REGISTRY_PASSWORD"
                ))
            }
            RegistryError::Tls { host, .. } => {
                return Some(format!("if {host} uses a private CA, pass it with --registry-ca CA.pem; for a test registry only, --insecure-registry {host}"))
            }
            RegistryError::Timeout { .. } => return Some("raise --timeout, or check the network to the registry".into()),
            RegistryError::RetryAfter { .. } => return Some("try again later, or raise --timeout past the wait the registry asks for".into()),
            RegistryError::Redirects { .. } => return Some("check the registry's address and its proxy configuration".into()),
            RegistryError::Schema1 { .. } => {
                return Some("schema 1 is deprecated and unsigned by today's tools: push the image again with a current docker, podman or `skopeo copy --format v2s2`".into())
            }
            RegistryError::WrongContent { .. } => {
                return Some("the registry's copy is damaged or was tampered with: push the image again, or ask its owner".into())
            }
            RegistryError::NotFound { .. } => return Some("check the repository, tag or digest (`skopeo list-tags docker://HOST/REPO` lists the tags)".into()),
            _ => None,
        }?;
        Some(
            match code.as_str() {
                "UNAUTHORIZED" => "log in with `docker login HOST` or pass --creds USER:PASSWORD",
                "DENIED" => "these credentials may not push here; Harbor and ECR need the project or repository created first",
                "NAME_UNKNOWN" => "the repository does not exist: create it first (Harbor project, ECR repository) or check its name",
                "NAME_INVALID" => {
                    "repository names are lowercase letters and digits with . _ - separators (GHCR needs the owner in lowercase)"
                }
                "TAG_INVALID" => super::Tag::RULE,
                "MANIFEST_INVALID" | "MANIFEST_BLOB_UNKNOWN" => {
                    "the registry may not accept OCI manifests of this kind; check its OCI support"
                }
                "TOOMANYREQUESTS" => "the registry is rate limiting; wait, or log in for a higher limit",
                _ => return None,
            }
            .to_string(),
        )
    }
}

/// An URL as errors show it: no query string (upload URLs carry state tokens) and no user info.
pub(crate) fn redact_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    let had_query = shown.query().is_some();
    shown.set_query(None);
    let mut text = shown.to_string();
    if had_query {
        text.push_str("?…");
    }
    text
}

/// An error and its causes on one line, `a: b: c`, as `{:#}` prints an `anyhow::Error`: what a
/// transport error says is spread over its chain.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_queries_and_user_info() {
        let url = reqwest::Url::parse("https://user:pw@reg.example/v2/app/blobs/uploads/abc?_state=secret&digest=x").unwrap();
        assert_eq!(redact_url(&url), "https://reg.example/v2/app/blobs/uploads/abc?…");
    }

    #[test]
    fn messages_and_hints() {
        let err = RegistryError::Status {
            method: "PUT".into(),
            url: "https://h/v2/a/manifests/1".into(),
            status: 404,
            code: Some("NAME_UNKNOWN".into()),
            message: "repository name not known to registry".into(),
            retry_after: None,
        };
        assert_eq!(err.to_string(), "PUT https://h/v2/a/manifests/1: 404 (NAME_UNKNOWN: repository name not known to registry)");
        assert!(err.hint().unwrap().contains("create it first"));
        assert!(!err.is_transient());
        let busy = RegistryError::Status {
            method: "PUT".into(),
            url: "u".into(),
            status: 503,
            code: None,
            message: String::new(),
            retry_after: None,
        };
        assert!(busy.is_transient());
        assert_eq!(busy.to_string(), "PUT u: 503");
    }
}

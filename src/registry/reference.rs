//! Image references: `[HOST[:PORT]/]REPO[:TAG][@DIGEST]`, checked and normalised as the
//! distribution project's `reference` grammar and Docker's defaults say.
//!
//! `Registry` ⊂ `Repository` ⊂ `Reference`. Docker Hub is spelt `docker.io` for people and reached
//! at `registry-1.docker.io`; single names get `library/`; its credentials are stored under
//! `https://index.docker.io/v1/`.

use std::fmt;

use super::tag::Tag;
use crate::image::Digest;

pub(crate) const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";
const DOCKER_HUB_CREDENTIAL_KEY: &str = "https://index.docker.io/v1/";
const MAX_NAME_LENGTH: usize = 255;

/// A registry host, with port if any: `ghcr.io`, `127.0.0.1:5000`, `docker.io`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registry(String);

impl Registry {
    pub(crate) fn new(host: &str) -> Self {
        match host {
            "index.docker.io" | "registry-1.docker.io" | DOCKER_HUB => Registry(DOCKER_HUB.to_string()),
            other => Registry(other.to_string()),
        }
    }

    /// As people write it.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Where the API answers.
    pub fn api_host(&self) -> &str {
        if self.0 == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.0
        }
    }

    /// The key docker login stores credentials under.
    pub fn credential_key(&self) -> &str {
        if self.0 == DOCKER_HUB {
            DOCKER_HUB_CREDENTIAL_KEY
        } else {
            &self.0
        }
    }

    /// The host without its port.
    pub fn hostname(&self) -> &str {
        let host = self.api_host();
        if let Some(rest) = host.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    }

    /// localhost and loopback addresses, where plain HTTP may be tried without being asked for
    /// (as go-containerregistry does).
    pub fn is_loopback(&self) -> bool {
        let host = self.hostname();
        host == "localhost" || host == "::1" || host.starts_with("127.")
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A repository in a registry: `ghcr.io` + `org/app`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    pub registry: Registry,
    pub(crate) path: String,
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.path)
    }
}

/// A full reference: a repository and a tag or digest (or both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub repository: Repository,
    pub(crate) tag: Option<Tag>,
    pub digest: Option<Digest>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub(crate) input: String,
    pub(crate) reason: String,
    hint: Option<String>,
}

impl ReferenceError {
    pub fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

/// `input` with the credentials of a `user:password@host/…` reference replaced by `<redacted>`:
/// an `@` before the first `/` is no digest, it ends user info.
pub(crate) fn redact_userinfo(input: &str) -> std::borrow::Cow<'_, str> {
    let (scheme, rest) = input.split_once("://").map_or(("", input), |(scheme, rest)| (scheme, rest));
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => {
            let prefix = if scheme.is_empty() { String::new() } else { format!("{scheme}://") };
            std::borrow::Cow::Owned(format!("{prefix}<redacted>{}", &rest[at..]))
        }
        None => std::borrow::Cow::Borrowed(input),
    }
}

fn is_path_component(component: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    let bytes = component.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_lowercase() || bytes[i].is_ascii_digit()) {
            i += 1;
        }
        let separator = &component[start..i];
        let dashes = separator.bytes().all(|c| c == b'-');
        if !(separator == "." || separator == "_" || separator == "__" || dashes) {
            return false;
        }
    }
    true
}

fn is_domain(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost" || component.starts_with('[')
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, ReferenceError> {
        let fail = |reason: &str, hint: Option<String>| ReferenceError {
            input: redact_userinfo(input).into_owned(),
            reason: reason.to_string(),
            hint,
        };
        if input.is_empty() {
            return Err(fail("it is empty", Some("write HOST/REPOSITORY[:TAG], for example ghcr.io/org/app:1.0".into())));
        }
        if redact_userinfo(input) != input {
            return Err(fail(
                "a reference holds no credentials",
                Some(
                    "pass them with --creds USER:PASSWORD, or log in with `docker login HOST` and scratchpack reads the login file".into(),
                ),
            ));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let digest = Digest::parse(digest).map_err(|_| fail("the digest must be sha256: and 64 lowercase hex digits", None))?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag follows the last ':' after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        let tag = tag.map(str::parse::<Tag>).transpose().map_err(|e| fail(&e.to_string(), None))?;
        let (registry, path) = match name.split_once('/') {
            Some((first, rest)) if is_domain(first) => (Registry::new(first), rest.to_string()),
            _ => (Registry::new(DOCKER_HUB), name.to_string()),
        };
        if path.is_empty() {
            return Err(fail("the repository name is missing", Some(format!("write {}/REPOSITORY[:TAG]", registry))));
        }
        let path = if registry.name() == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path };
        if path != path.to_lowercase() {
            let fixed =
                Reference { repository: Repository { registry: registry.clone(), path: path.to_lowercase() }, tag: tag.clone(), digest };
            return Err(fail("repository names must be lowercase", Some(format!("use {fixed}"))));
        }
        if let Some(bad) = path.split('/').find(|c| !is_path_component(c)) {
            return Err(fail(
                &format!("invalid path component {bad:?}: use lowercase letters and digits, separated by '.', '_', '__' or '-'"),
                None,
            ));
        }
        if registry.name().len() + 1 + path.len() > MAX_NAME_LENGTH {
            return Err(fail("the name is longer than 255 characters", None));
        }
        Ok(Reference { repository: Repository { registry, path }, tag, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let cases: &[(&str, &str, &str, Option<&str>, bool)] = &[
            // input, registry, path, tag, has digest
            ("alpine", "docker.io", "library/alpine", None, false),
            ("alpine:3.20", "docker.io", "library/alpine", Some("3.20"), false),
            ("docker.io/alpine", "docker.io", "library/alpine", None, false),
            ("index.docker.io/me/app:1", "docker.io", "me/app", Some("1"), false),
            ("me/app", "docker.io", "me/app", None, false),
            ("ghcr.io/org/app:1.4", "ghcr.io", "org/app", Some("1.4"), false),
            ("localhost/app", "localhost", "app", None, false),
            ("127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000", "a/b/c", Some("t"), false),
            ("localhost:5000/app@DIGEST", "localhost:5000", "app", None, true),
            ("quay.io/org/app:v1@DIGEST", "quay.io", "org/app", Some("v1"), true),
            ("registry.example.com/my_app/web-ui__x", "registry.example.com", "my_app/web-ui__x", None, false),
        ];
        for (input, registry, path, tag, has_digest) in cases {
            let input = input.replace("DIGEST", digest);
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.repository.registry.name(), *registry, "{input}");
            assert_eq!(r.repository.path, *path, "{input}");
            assert_eq!(r.tag.as_deref(), *tag, "{input}");
            assert_eq!(r.digest.is_some(), *has_digest, "{input}");
        }
    }

    #[test]
    fn docker_hub_hosts_and_credential_keys() {
        let hub: Reference = "alpine".parse().unwrap();
        assert_eq!(hub.repository.registry.api_host(), "registry-1.docker.io");
        assert_eq!(hub.repository.registry.credential_key(), "https://index.docker.io/v1/");
        assert_eq!(hub.to_string(), "docker.io/library/alpine");
        let ghcr: Reference = "ghcr.io/o/a".parse().unwrap();
        assert_eq!(ghcr.repository.registry.credential_key(), "ghcr.io");
        assert!(!ghcr.repository.registry.is_loopback());
        let local: Reference = "127.0.0.1:5000/a".parse().unwrap();
        assert!(local.repository.registry.is_loopback());
        assert_eq!(local.repository.registry.hostname(), "127.0.0.1");
        assert!(Registry::new("localhost:5000").is_loopback());
    }

    #[test]
    fn rejects_bad_references_with_a_fix() {
        let err = "ghcr.io/MyOrg/App:1".parse::<Reference>().unwrap_err();
        assert_eq!(err.to_string(), "invalid image reference \"ghcr.io/MyOrg/App:1\": repository names must be lowercase");
        assert_eq!(err.hint().as_deref(), Some("use ghcr.io/myorg/app:1"));
        for bad in ["", "ghcr.io/", "app:-x", "ghcr.io/a//b", "ghcr.io/a-/b", "app@sha256:12", "ghcr.io/a b"] {
            assert!(bad.parse::<Reference>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn user_info_is_refused_and_never_echoed() {
        let err = "u:hunter2@ghcr.io/a/b:1".parse::<Reference>().unwrap_err();
        assert_eq!(err.to_string(), "invalid image reference \"<redacted>@ghcr.io/a/b:1\": a reference holds no credentials");
        assert!(err.hint().unwrap().contains("--creds"));
        assert_eq!(redact_userinfo("docker://a:b@c@h:5000/x@sha256:1"), "docker://<redacted>@h:5000/x@sha256:1");
        assert_eq!(redact_userinfo("h/x@sha256:1"), "h/x@sha256:1");
    }
}

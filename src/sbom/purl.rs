//! Package URLs (purl spec: `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS`) for crates and Debian
//! packages, and where a crate came from.
//!
//! Choices for `cargo` purls (the type has no namespace and crates.io as its default repository):
//! - crates.io: `pkg:cargo/NAME@VERSION`, no qualifier, since crates.io is the default.
//! - another registry: `?repository_url=URL` with the registry's index URL when cargo metadata gave
//!   it (the purl spec's qualifier for "a non-default package repository"); without it no qualifier,
//!   and the document marks the crate's source instead.
//! - git: `?vcs_url=git+https://host/repo@COMMIT`. The spec says `vcs_url` follows pip's / SPDX's
//!   download-location syntax, `<vcs>+<transport>://<host>/<path>@<revision>`, so cargo's source id
//!   `git+https://host/repo?branch=main#COMMIT` is rewritten: the branch/tag query goes (the commit
//!   pins the revision) and `#COMMIT` becomes `@COMMIT`. Credentials in an http(s) URL are dropped
//!   so that no token ends up in an SBOM. Without the URL (cargo-auditable records only the word
//!   `git`) there is no honest value for `vcs_url`, so there is no qualifier: a placeholder such as
//!   `vcs_url=git` is not a URL and would break purl parsers; the document marks the crate as git.
//! - local path crates: `pkg:cargo/NAME@VERSION` (they have no URL), marked local in the document.
//!
//! Values are percent-encoded as the purl spec's canonical form wants: everything but ASCII
//! letters, digits, `.-_~` and `:` (so `/` in a qualifier value becomes `%2F`, `+` becomes `%2B`).

use std::collections::BTreeMap;

use super::{AuditedCrate, DebPackage, Origin};

/// The index URL cargo metadata gives crates.io, whatever protocol fetched it.
const CRATES_IO_SOURCE: &str = "registry+https://github.com/rust-lang/crates.io-index";

/// Where `krate` came from: its audit-data source word, made precise by cargo metadata's source
/// string when the caller has it and it agrees with the word.
pub(super) fn origin(krate: &AuditedCrate, cargo_sources: Option<&BTreeMap<(String, String), String>>) -> Origin {
    let metadata = cargo_sources.and_then(|sources| sources.get(&(krate.name.clone(), krate.version.clone()))).map(String::as_str);
    match krate.source.as_str() {
        "crates.io" => Origin::CratesIo,
        "local" => Origin::Local,
        "git" => Origin::Git { vcs_url: metadata.and_then(|s| s.strip_prefix("git+")).map(git_vcs_url) },
        "registry" | "sparse" => {
            let url = metadata
                .filter(|s| *s != CRATES_IO_SOURCE)
                .and_then(|s| s.strip_prefix("registry+").or_else(|| s.strip_prefix("sparse+")))
                .map(str::to_string);
            Origin::Registry { url }
        }
        other => Origin::Other(other.to_string()),
    }
}

/// `https://host/repo?branch=x#COMMIT` → `git+https://host/repo@COMMIT`.
fn git_vcs_url(source: &str) -> String {
    let (url, commit) = match source.split_once('#') {
        Some((url, commit)) if !commit.is_empty() => (url, Some(commit)),
        Some((url, _)) => (url, None),
        None => (source, None),
    };
    let url = url.split_once('?').map_or(url, |(url, _query)| url);
    let url = without_credentials(url);
    match commit {
        Some(commit) => format!("git+{url}@{commit}"),
        None => format!("git+{url}"),
    }
}

/// Drops `user:password@` from an http(s) URL; ssh user names (`ssh://git@host`) are kept.
fn without_credentials(url: &str) -> String {
    for scheme in ["https://", "http://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            if let Some(at) = rest[..authority_end].rfind('@') {
                return format!("{scheme}{}", &rest[at + 1..]);
            }
        }
    }
    url.to_string()
}

/// The purl of a crate.
pub(super) fn cargo(name: &str, version: &str, origin: &Origin) -> String {
    let mut purl = format!("pkg:cargo/{}@{}", encode(name), encode(version));
    let qualifier = match origin {
        Origin::Git { vcs_url: Some(url) } => Some(("vcs_url", url)),
        Origin::Registry { url: Some(url) } => Some(("repository_url", url)),
        _ => None,
    };
    if let Some((key, value)) = qualifier {
        purl.push_str(&format!("?{key}={}", encode(value)));
    }
    purl
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH`.
pub(super) fn deb(package: &DebPackage) -> String {
    format!("pkg:deb/debian/{}@{}?arch={}", encode(&package.name.to_lowercase()), encode(&package.version), encode(&package.architecture))
}

/// The download location SPDX wants: the crate file for crates.io, the pinned commit for git,
/// `NOASSERTION` when unknown (local crates, registries whose download URL is in their config).
pub(super) fn download_location(name: &str, version: &str, origin: &Origin) -> String {
    match origin {
        Origin::CratesIo => format!("https://crates.io/api/v1/crates/{name}/{version}/download"),
        Origin::Git { vcs_url: Some(url) } => url.clone(),
        _ => "NOASSERTION".to_string(),
    }
}

/// Percent-encodes a purl component: everything but `A-Za-z0-9.-_~:`.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'~' | b':') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn krate(name: &str, version: &str, source: &str) -> AuditedCrate {
        AuditedCrate {
            name: name.into(),
            version: version.into(),
            source: source.into(),
            kind: "runtime".into(),
            dependencies: vec![],
            root: false,
        }
    }

    fn purl_of(krate: &AuditedCrate, sources: &BTreeMap<(String, String), String>) -> String {
        cargo(&krate.name, &krate.version, &origin(krate, Some(sources)))
    }

    #[test]
    fn cargo_purls_per_source() {
        let mut sources = BTreeMap::new();
        let mut add = |name: &str, version: &str, source: &str| {
            sources.insert((name.to_string(), version.to_string()), source.to_string());
        };
        add("itoa", "1.0.15", CRATES_IO_SOURCE);
        add("gitdep", "0.3.0", "git+https://user:tok3n@github.com/org/gitdep?branch=main#0123456789abcdef0123456789abcdef01234567");
        add("corp", "2.0.0", "sparse+https://crates.corp.example/index/");
        add("semverish", "1.0.0+build.5", CRATES_IO_SOURCE);

        assert_eq!(purl_of(&krate("itoa", "1.0.15", "crates.io"), &sources), "pkg:cargo/itoa@1.0.15");
        assert_eq!(
            purl_of(&krate("gitdep", "0.3.0", "git"), &sources),
            "pkg:cargo/gitdep@0.3.0?vcs_url=git%2Bhttps:%2F%2Fgithub.com%2Forg%2Fgitdep%400123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(purl_of(&krate("other-git", "0.1.0", "git"), &sources), "pkg:cargo/other-git@0.1.0");
        assert_eq!(
            purl_of(&krate("corp", "2.0.0", "registry"), &sources),
            "pkg:cargo/corp@2.0.0?repository_url=https:%2F%2Fcrates.corp.example%2Findex%2F"
        );
        assert_eq!(purl_of(&krate("app", "0.1.0", "local"), &sources), "pkg:cargo/app@0.1.0");
        assert_eq!(purl_of(&krate("semverish", "1.0.0+build.5", "crates.io"), &sources), "pkg:cargo/semverish@1.0.0%2Bbuild.5");
        // A source that disagrees with the audit data is not trusted.
        assert_eq!(origin(&krate("itoa", "1.0.15", "git"), Some(&sources)), Origin::Git { vcs_url: None });
    }

    #[test]
    fn git_urls_follow_the_spdx_download_location_syntax() {
        assert_eq!(git_vcs_url("https://github.com/o/r?rev=abc#abcdef"), "git+https://github.com/o/r@abcdef");
        assert_eq!(git_vcs_url("https://github.com/o/r"), "git+https://github.com/o/r");
        assert_eq!(git_vcs_url("ssh://git@github.com/o/r.git#abc"), "git+ssh://git@github.com/o/r.git@abc");
        assert_eq!(git_vcs_url("https://x-access-token:secret@github.com/o/r#abc"), "git+https://github.com/o/r@abc");
        let origin = Origin::Git { vcs_url: Some("git+https://github.com/o/r@abc".into()) };
        assert_eq!(download_location("r", "1.0.0", &origin), "git+https://github.com/o/r@abc");
        assert_eq!(download_location("itoa", "1.0.15", &Origin::CratesIo), "https://crates.io/api/v1/crates/itoa/1.0.15/download");
        assert_eq!(download_location("app", "0.1.0", &Origin::Local), "NOASSERTION");
    }

    #[test]
    fn deb_purls_encode_epochs_and_plus() {
        let package = DebPackage { name: "libc6".into(), version: "2.36-9+deb12u14".into(), architecture: "amd64".into() };
        assert_eq!(deb(&package), "pkg:deb/debian/libc6@2.36-9%2Bdeb12u14?arch=amd64");
        let package = DebPackage { name: "attr".into(), version: "1:2.4.47-2".into(), architecture: "arm64".into() };
        assert_eq!(deb(&package), "pkg:deb/debian/attr@1:2.4.47-2?arch=arm64");
    }
}

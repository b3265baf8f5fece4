//! Parsing `--output` values: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF]`,
//! `docker://HOST/REPO[:TAG]`, `docker-daemon:[NAME[:TAG]]`, `podman:[NAME[:TAG]]`.

use std::path::PathBuf;

use crate::registry::reference::{Reference, ReferenceError};
use crate::registry::tag::{Tag, TagError};

/// A parsed `--output`. For `DockerDaemon` (the local Docker engine) and `Podman` (the local podman
/// service), `name` is the image's name as written (`app`, `ghcr.io/me/app`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestSpec {
    OciLayout { dir: PathBuf, tag: Option<Tag> },
    OciArchive { file: PathBuf, tag: Option<Tag> },
    DockerArchive { file: PathBuf, reference: Option<String> },
    Registry { reference: Reference },
    DockerDaemon { name: Option<String>, tag: Option<Tag> },
    Podman { name: Option<String>, tag: Option<Tag> },
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("--output {0:?}: unknown destination; expected oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], docker://HOST/REPO[:TAG], docker-daemon:[NAME[:TAG]] or podman:[NAME[:TAG]]")]
    Unknown(String),
    #[error("--output {spec:?}")]
    BadReference {
        spec: String,
        #[source]
        source: ReferenceError,
    },
    #[error("--output {0:?}: a push or a load names a tag, not a digest (the digest is what it prints)")]
    DigestReference(String),
    #[error("--output {0:?}: the path is empty")]
    EmptyPath(String),
    #[error("--output {spec:?}: {tag}")]
    BadTag { spec: String, tag: TagError },
}

impl std::str::FromStr for DestSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        if let Some(reference) = spec.strip_prefix("docker://") {
            let reference: Reference = reference.parse().map_err(|source| SpecError::BadReference {
                spec: crate::registry::reference::redact_userinfo(spec).into_owned(),
                source,
            })?;
            if reference.digest.is_some() {
                return Err(SpecError::DigestReference(spec.to_string()));
            }
            return Ok(DestSpec::Registry { reference });
        }
        let (transport, rest) = spec.split_once(':').ok_or_else(|| SpecError::Unknown(spec.to_string()))?;
        if transport == "docker-daemon" || transport == "podman" {
            let (name, tag) = engine_image(spec, rest)?;
            return Ok(if transport == "podman" { DestSpec::Podman { name, tag } } else { DestSpec::DockerDaemon { name, tag } });
        }
        if rest.is_empty() {
            return Err(SpecError::EmptyPath(spec.to_string()));
        }
        match transport {
            "oci" | "oci-archive" => {
                let (path, tag) = split_tag(spec, rest)?;
                Ok(if transport == "oci" { DestSpec::OciLayout { dir: path, tag } } else { DestSpec::OciArchive { file: path, tag } })
            }
            "docker-archive" => {
                // As skopeo: the first ':' ends the path; the rest is a docker reference.
                let (file, reference) = match rest.split_once(':') {
                    Some((file, reference)) => (file, Some(reference.to_string()).filter(|r| !r.is_empty())),
                    None => (rest, None),
                };
                if file.is_empty() {
                    return Err(SpecError::EmptyPath(spec.to_string()));
                }
                Ok(DestSpec::DockerArchive { file: PathBuf::from(file), reference })
            }
            _ => Err(SpecError::Unknown(spec.to_string())),
        }
    }
}

/// `[NAME[:TAG]]` of an engine: checked as an image reference, kept as written (an engine
/// names `app` as its own default registry does, `docker.io/library/app` or `localhost/app`).
fn engine_image(spec: &str, rest: &str) -> Result<(Option<String>, Option<Tag>), SpecError> {
    if rest.is_empty() {
        return Ok((None, None));
    }
    let reference: Reference = rest.parse().map_err(|source| SpecError::BadReference { spec: spec.to_string(), source })?;
    if reference.digest.is_some() {
        return Err(SpecError::DigestReference(spec.to_string()));
    }
    let name = match &reference.tag {
        Some(tag) => &rest[..rest.len() - tag.len() - 1],
        None => rest,
    };
    Ok((Some(name.to_string()), reference.tag))
}

/// `PATH:TAG`: the tag is what follows the last ':' when that has no '/', as skopeo reads it.
fn split_tag(spec: &str, rest: &str) -> Result<(PathBuf, Option<Tag>), SpecError> {
    match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => {
            if path.is_empty() {
                return Err(SpecError::EmptyPath(spec.to_string()));
            }
            let tag = tag.parse().map_err(|tag| SpecError::BadTag { spec: spec.to_string(), tag })?;
            Ok((PathBuf::from(path), Some(tag)))
        }
        _ => Ok((PathBuf::from(rest), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_transport() {
        let cases: &[(&str, DestSpec)] = &[
            ("oci:out", DestSpec::OciLayout { dir: "out".into(), tag: None }),
            ("oci:out:v1.2", DestSpec::OciLayout { dir: "out".into(), tag: Some("v1.2".parse().unwrap()) }),
            ("oci:/tmp/a:b/c", DestSpec::OciLayout { dir: "/tmp/a:b/c".into(), tag: None }),
            ("oci-archive:img.tar:latest", DestSpec::OciArchive { file: "img.tar".into(), tag: Some(Tag::latest()) }),
            ("docker-archive:d.tar", DestSpec::DockerArchive { file: "d.tar".into(), reference: None }),
            ("docker-archive:d.tar:app:1.0", DestSpec::DockerArchive { file: "d.tar".into(), reference: Some("app:1.0".into()) }),
            ("docker-daemon:", DestSpec::DockerDaemon { name: None, tag: None }),
            ("docker-daemon:app", DestSpec::DockerDaemon { name: Some("app".into()), tag: None }),
            ("docker-daemon:app:1.0", DestSpec::DockerDaemon { name: Some("app".into()), tag: Some("1.0".parse().unwrap()) }),
            (
                "docker-daemon:localhost:5000/team/app:v2",
                DestSpec::DockerDaemon { name: Some("localhost:5000/team/app".into()), tag: Some("v2".parse().unwrap()) },
            ),
            ("podman:", DestSpec::Podman { name: None, tag: None }),
            ("podman:ghcr.io/me/app:latest", DestSpec::Podman { name: Some("ghcr.io/me/app".into()), tag: Some(Tag::latest()) }),
        ];
        for (text, want) in cases {
            assert_eq!(&text.parse::<DestSpec>().unwrap(), want, "{text}");
        }
    }

    #[test]
    fn rejects_bad_specs_with_the_reason() {
        assert_eq!(
            "out".parse::<DestSpec>().unwrap_err().to_string(),
            "--output \"out\": unknown destination; expected oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF], docker://HOST/REPO[:TAG], docker-daemon:[NAME[:TAG]] or podman:[NAME[:TAG]]"
        );
        let upper = "docker-daemon:My/App".parse::<DestSpec>().unwrap_err();
        assert!(matches!(&upper, SpecError::BadReference { .. }));
        assert_eq!(
            std::error::Error::source(&upper).unwrap().to_string(),
            "invalid image reference \"My/App\": repository names must be lowercase"
        );
        assert!(matches!("podman:app:-x".parse::<DestSpec>(), Err(SpecError::BadReference { .. })));
        let pinned_load = "podman:me/app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(pinned_load.parse::<DestSpec>(), Err(SpecError::DigestReference(_))));
        assert!(matches!("oci:".parse::<DestSpec>(), Err(SpecError::EmptyPath(_))));
        assert!(matches!("oci::tag".parse::<DestSpec>(), Err(SpecError::EmptyPath(_))));
        assert!(matches!("oci:out:-bad".parse::<DestSpec>(), Err(SpecError::BadTag { .. })));
        assert!(matches!("zip:out".parse::<DestSpec>(), Err(SpecError::Unknown(_))));
        assert!(matches!("docker://Ghcr.io/Org/App".parse::<DestSpec>(), Err(SpecError::BadReference { .. })));
        let pinned = "docker://ghcr.io/o/a@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(matches!(pinned.parse::<DestSpec>(), Err(SpecError::DigestReference(_))));
        let DestSpec::Registry { reference } = "docker://127.0.0.1:5000/team/app:1.4".parse().unwrap() else { panic!("a registry") };
        assert_eq!(reference.to_string(), "127.0.0.1:5000/team/app:1.4");
    }
}

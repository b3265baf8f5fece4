//! Parsing `--output` values: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF]`,
//! `docker://HOST/REPO[:TAG]`.

use std::path::PathBuf;

use crate::registry::reference::{Reference, ReferenceError};
use crate::registry::tag::{Tag, TagError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestSpec {
    OciLayout { dir: PathBuf, tag: Option<Tag> },
    OciArchive { file: PathBuf, tag: Option<Tag> },
    DockerArchive { file: PathBuf, reference: Option<String> },
    Registry { reference: Reference },
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("--output {0:?}: unknown destination; expected oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or docker://HOST/REPO[:TAG]")]
    Unknown(String),
    #[error("--output {spec:?}")]
    BadReference {
        spec: String,
        #[source]
        source: ReferenceError,
    },
    #[error("--output {0:?}: a push names a tag, not a digest (the digest is what the push prints)")]
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
        ];
        for (text, want) in cases {
            assert_eq!(&text.parse::<DestSpec>().unwrap(), want, "{text}");
        }
    }

    #[test]
    fn rejects_bad_specs_with_the_reason() {
        assert_eq!(
            "out".parse::<DestSpec>().unwrap_err().to_string(),
            "--output \"out\": unknown destination; expected oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF] or docker://HOST/REPO[:TAG]"
        );
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

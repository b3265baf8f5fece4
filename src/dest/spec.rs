//! Parsing `--output` values: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REF]`.

use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestSpec {
    OciLayout { dir: PathBuf, tag: Option<String> },
    OciArchive { file: PathBuf, tag: Option<String> },
    DockerArchive { file: PathBuf, reference: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("--output {0:?}: unknown destination; expected oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF]")]
    Unknown(String),
    #[error("--output {0:?}: the path is empty")]
    EmptyPath(String),
    #[error("--output {spec:?}: invalid tag {tag:?}: a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'")]
    BadTag { spec: String, tag: String },
}

/// A tag as the distribution spec allows it: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
        && bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl std::str::FromStr for DestSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
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
fn split_tag(spec: &str, rest: &str) -> Result<(PathBuf, Option<String>), SpecError> {
    match rest.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => {
            if path.is_empty() {
                return Err(SpecError::EmptyPath(spec.to_string()));
            }
            if !is_valid_tag(tag) {
                return Err(SpecError::BadTag { spec: spec.to_string(), tag: tag.to_string() });
            }
            Ok((PathBuf::from(path), Some(tag.to_string())))
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
            ("oci:out:v1.2", DestSpec::OciLayout { dir: "out".into(), tag: Some("v1.2".into()) }),
            ("oci:/tmp/a:b/c", DestSpec::OciLayout { dir: "/tmp/a:b/c".into(), tag: None }),
            ("oci-archive:img.tar:latest", DestSpec::OciArchive { file: "img.tar".into(), tag: Some("latest".into()) }),
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
            "--output \"out\": unknown destination; expected oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker-archive:FILE[:REF]"
        );
        assert!(matches!("oci:".parse::<DestSpec>(), Err(SpecError::EmptyPath(_))));
        assert!(matches!("oci::tag".parse::<DestSpec>(), Err(SpecError::EmptyPath(_))));
        assert!(matches!("oci:out:-bad".parse::<DestSpec>(), Err(SpecError::BadTag { .. })));
        assert!(matches!("zip:out".parse::<DestSpec>(), Err(SpecError::Unknown(_))));
    }

    #[test]
    fn tag_rules() {
        assert!(is_valid_tag("latest"));
        assert!(is_valid_tag("_v1.0-rc.1"));
        assert!(!is_valid_tag(".hidden"));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_tag("a+b"));
    }
}

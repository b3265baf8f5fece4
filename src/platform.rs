//! The OCI notion of a platform (`os/architecture[/variant]`).
//!
//! Owns the names only: `elf` decides which platform a binary is, `image` writes it into configs and
//! indexes. Nothing here reads files.

use std::fmt;

/// An OCI platform, spelled as the image spec and `GOARCH` spell it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Platform {
    pub(crate) os: String,
    pub(crate) architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
}

impl Platform {
    pub(crate) fn linux(architecture: &str, variant: Option<&str>) -> Self {
        Platform { os: "linux".to_string(), architecture: architecture.to_string(), variant: variant.map(str::to_string) }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_docker_platform_strings() {
        assert_eq!(Platform::linux("amd64", None).to_string(), "linux/amd64");
        assert_eq!(Platform::linux("arm64", Some("v8")).to_string(), "linux/arm64/v8");
    }
}

//! An image read from somewhere (an OCI layout or archive, or a registry), as its exact bytes:
//! the manifest or index a tag points to, the child manifests of an index, the content blobs
//! (configs and layers, in files) and the referrers of every manifest (SBOMs, signatures).
//!
//! Owns the view only: reading it is the layout's or the registry client's, writing it a
//! destination's. Manifests are never serialised again, so every digest stays what it was.

use serde_json::Value;

use super::config::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use super::referrers::Attachment;
use super::Blob;

/// Docker schema 2 media types, read as their OCI twins.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1, never read: its manifests are signed JSON that cannot be kept byte for byte.
pub(crate) const SCHEMA1_TYPES: [&str; 2] =
    ["application/vnd.docker.distribution.manifest.v1+json", "application/vnd.docker.distribution.manifest.v1+prettyjws"];

/// Whether `media_type` names an index (OCI, or a Docker manifest list).
pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == INDEX_MEDIA_TYPE || media_type == DOCKER_LIST
}

/// Whether `media_type` names one platform's manifest (OCI or Docker schema 2).
pub(crate) fn is_manifest(media_type: &str) -> bool {
    media_type == MANIFEST_MEDIA_TYPE || media_type == DOCKER_MANIFEST
}

/// The media type of a manifest: the one its JSON states, else the one it was served or listed as.
pub(crate) fn media_type_of(value: &Value, given: &str) -> String {
    value["mediaType"].as_str().filter(|t| !t.is_empty()).unwrap_or(given).to_string()
}

/// An image and everything that travels with it, ready to be written elsewhere.
pub(crate) struct StoredImage {
    /// The image's layers and configs, each once (the referrers' blobs are in `referrers`).
    pub(crate) blobs: Vec<Blob>,
    /// The child manifests of an index, in its order; empty for a single manifest.
    pub(crate) manifests: Vec<Blob>,
    /// What the tag points to: a manifest or an index.
    pub(crate) root: Blob,
    /// Artifacts whose `subject` is the root or one of its children.
    pub(crate) referrers: Vec<Attachment>,
    /// Folders the blob files live in (an unpacked archive, a download staging folder), kept as
    /// long as the image. Owned, never read.
    #[allow(dead_code)]
    pub(crate) keep: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

/// One platform's image of a [`StoredImage`]: its manifest, parsed, and the platform its index
/// entry names (if any).
pub(crate) struct Child<'a> {
    pub(crate) manifest: &'a Blob,
    pub(crate) value: Value,
    pub(crate) platform: Option<String>,
}

impl StoredImage {
    /// The parsed root document.
    pub(crate) fn root_value(&self) -> Value {
        parse(&self.root)
    }

    /// Each platform's manifest, with its platform as the index lists it.
    pub(crate) fn children(&self) -> Vec<Child<'_>> {
        if self.manifests.is_empty() {
            return vec![Child { manifest: &self.root, value: self.root_value(), platform: None }];
        }
        let root = self.root_value();
        let entries = root["manifests"].as_array().cloned().unwrap_or_default();
        self.manifests
            .iter()
            .map(|manifest| {
                let entry = entries.iter().find(|e| e["digest"] == manifest.digest.to_string().as_str()).cloned().unwrap_or(Value::Null);
                Child { manifest, value: parse(manifest), platform: platform_text(&entry["platform"]) }
            })
            .collect()
    }

    /// The content blobs, then the child manifests: everything the root references, in the order
    /// a registry must receive them (the root itself excluded).
    pub(crate) fn all_blobs(&self) -> Vec<&Blob> {
        self.blobs.iter().chain(self.manifests.iter()).collect()
    }

    /// The content blob with this digest (a config or a layer; [`content_of`] lists a manifest's),
    /// as it is here: still in its registry, for an image read lazily.
    pub(crate) fn blob(&self, digest: &str) -> Option<&Blob> {
        self.blobs.iter().find(|b| b.digest.to_string() == digest)
    }

    /// The digests of every manifest referrers may point at: the root and its children.
    pub(crate) fn subjects(&self) -> Vec<&Blob> {
        std::iter::once(&self.root).chain(self.manifests.iter()).collect()
    }
}

/// `os/architecture[/variant]` of a descriptor's or config's platform fields.
pub(crate) fn platform_text(value: &Value) -> Option<String> {
    let os = value["os"].as_str()?;
    let architecture = value["architecture"].as_str()?;
    Some(match value["variant"].as_str() {
        Some(variant) if !variant.is_empty() => format!("{os}/{architecture}/{variant}"),
        _ => format!("{os}/{architecture}"),
    })
}

/// A document blob's JSON (manifests and indexes are held in memory, already checked to parse).
pub(crate) fn parse(blob: &Blob) -> Value {
    super::blob::read_all(blob).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or(Value::Null)
}

/// The content descriptors of a manifest: its config, then its layers, as `(media type, digest, size)`.
pub(crate) fn content_of(manifest: &Value) -> Vec<(String, String, Option<u64>)> {
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    std::iter::once(&manifest["config"])
        .chain(layers.iter())
        .filter(|d| d.is_object())
        .map(|d| {
            (
                d["mediaType"].as_str().unwrap_or_default().to_string(),
                d["digest"].as_str().unwrap_or_default().to_string(),
                d["size"].as_u64(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_and_media_types() {
        assert_eq!(
            platform_text(&serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})).as_deref(),
            Some("linux/arm64/v8")
        );
        assert_eq!(platform_text(&serde_json::json!({"os": "linux", "architecture": "amd64"})).as_deref(), Some("linux/amd64"));
        assert_eq!(platform_text(&Value::Null), None);
        assert!(is_index(DOCKER_LIST) && is_index(INDEX_MEDIA_TYPE) && !is_index(DOCKER_MANIFEST));
        assert_eq!(media_type_of(&serde_json::json!({}), DOCKER_MANIFEST), DOCKER_MANIFEST);
        let manifest = serde_json::json!({"config": {"mediaType": "c", "digest": "d", "size": 2}, "layers": [{"mediaType": "l", "digest": "e", "size": 3}]});
        assert_eq!(content_of(&manifest), vec![("c".into(), "d".into(), Some(2)), ("l".into(), "e".into(), Some(3))]);
    }
}

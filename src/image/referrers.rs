//! OCI 1.1 referrers: an artifact (an SBOM, a signature, attestations) attached to an image
//! through the manifest's `subject`, and the referrers tag schema (`sha256-<hex>` → an index of
//! the referrers) that registries without the referrers API, and OCI layouts, use to find them.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::blob::Blob;
use super::config::{canonical_json, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use super::digest::Digest;

pub(crate) const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY_JSON: &[u8] = b"{}";

/// An artifact manifest and its blobs, attached to `subject`.
#[derive(Clone, Debug)]
pub(crate) struct Attachment {
    pub(crate) subject: Blob,
    pub(crate) artifact_type: String,
    pub(crate) manifest: Blob,
    /// The config and the payloads: uploaded before the manifest.
    pub(crate) blobs: Vec<Blob>,
    /// Tags that also point at the manifest (cosign's `sha256-<hex>.sig` and `.att`).
    pub(crate) tags: Vec<String>,
    /// How to combine the manifest with one a tag already names (another signer's signatures),
    /// rather than replace it.
    pub(crate) merge: Option<Merge>,
}

/// Combines `existing` (a manifest a tag of the attachment names now) with the attachment:
/// `None` when the attachment's own manifest should simply replace it.
pub(crate) type Merge = fn(existing: &[u8], attachment: &Attachment) -> Option<Merged>;

/// A manifest that combines another with an attachment's, and the blobs it needs that neither had
/// (its config).
#[derive(Clone, Debug)]
pub(crate) struct Merged {
    pub(crate) manifest: Blob,
    pub(crate) blobs: Vec<Blob>,
}

/// One payload of an artifact with the annotations of its descriptor.
pub(crate) struct Payload {
    pub(crate) blob: Blob,
    pub(crate) annotations: BTreeMap<String, String>,
}

/// Attaches `payloads` (layers) with `config` to `subject` as an artifact of `artifact_type`,
/// also tagged with `tags`.
pub(crate) fn attach_payloads(subject: &Blob, artifact_type: &str, config: Blob, payloads: Vec<Payload>, tags: Vec<String>) -> Attachment {
    let layers: Vec<Value> = payloads
        .iter()
        .map(|p| {
            let mut layer = json!({"mediaType": p.blob.media_type, "digest": p.blob.digest.to_string(), "size": p.blob.size});
            if !p.annotations.is_empty() {
                layer["annotations"] = json!(p.annotations);
            }
            layer
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": artifact_type,
        "config": {"mediaType": config.media_type, "digest": config.digest.to_string(), "size": config.size},
        "layers": layers,
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
    });
    let manifest = Blob::from_bytes(MANIFEST_MEDIA_TYPE, canonical_json(&manifest));
    let blobs = std::iter::once(config).chain(payloads.into_iter().map(|p| p.blob)).collect();
    Attachment { subject: subject.clone(), artifact_type: artifact_type.to_string(), manifest, blobs, tags, merge: None }
}

/// Attaches `payload` (media type = artifact type, e.g. `application/spdx+json`) to `subject`.
pub(crate) fn attach(subject: &Blob, payload: Blob, file_name: &str, created: &str) -> Attachment {
    let empty = Blob::from_bytes(EMPTY_MEDIA_TYPE, EMPTY_JSON.to_vec());
    let artifact_type = payload.media_type.clone();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_MEDIA_TYPE, "digest": empty.digest.to_string(), "size": empty.size, "data": "e30="},
        "layers": [{
            "mediaType": payload.media_type,
            "digest": payload.digest.to_string(),
            "size": payload.size,
            "annotations": {"org.opencontainers.image.title": file_name},
        }],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.size},
        "annotations": {"org.opencontainers.image.created": created},
    });
    let manifest = Blob::from_bytes(MANIFEST_MEDIA_TYPE, canonical_json(&manifest));
    Attachment { subject: subject.clone(), artifact_type, manifest, blobs: vec![empty, payload], tags: Vec::new(), merge: None }
}

/// `sha256-<hex>`: the tag under which referrers of `subject` are listed.
pub(crate) fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// The referrers index for the fallback tag: `existing` (if any) plus `attachment`, without
/// duplicates, in a stable order.
pub(crate) fn referrers_index(existing: Option<&[u8]>, attachments: &[&Attachment]) -> Blob {
    let mut manifests: Vec<Value> = existing
        .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
        .and_then(|index| index.get("manifests").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    for attachment in attachments {
        let digest = attachment.manifest.digest.to_string();
        if !manifests.iter().any(|m| m["digest"] == digest.as_str()) {
            manifests.push(json!({
                "mediaType": MANIFEST_MEDIA_TYPE,
                "digest": digest,
                "size": attachment.manifest.size,
                "artifactType": attachment.artifact_type,
            }));
        }
    }
    manifests.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    Blob::from_bytes(INDEX_MEDIA_TYPE, canonical_json(&json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attachment_points_at_its_subject_and_merges_into_the_tag_index() {
        let subject = Blob::from_bytes(MANIFEST_MEDIA_TYPE, b"{\"image\":1}".to_vec());
        let sbom = Blob::from_bytes("application/spdx+json", b"{\"spdxVersion\":\"SPDX-2.3\"}".to_vec());
        let attachment = attach(&subject, sbom, "sbom.spdx.json", "1970-01-01T00:00:00Z");
        let manifest: Value = serde_json::from_slice(attachment.manifest.bytes().unwrap()).unwrap();
        assert_eq!(manifest["artifactType"], "application/spdx+json");
        assert_eq!(manifest["subject"]["digest"], subject.digest.to_string());
        assert_eq!(manifest["config"]["digest"], "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert_eq!(fallback_tag(&subject.digest), format!("sha256-{}", subject.digest.hex()));

        let first = referrers_index(None, &[&attachment]);
        let again = referrers_index(first.bytes(), &[&attachment]);
        assert_eq!(first.digest, again.digest, "adding the same referrer twice changes nothing");
        let other = attach(&subject, Blob::from_bytes("application/vnd.cyclonedx+json", b"{}".to_vec()), "sbom.cdx.json", "x");
        let both: Value = serde_json::from_slice(referrers_index(first.bytes(), &[&other]).bytes().unwrap()).unwrap();
        assert_eq!(both["manifests"].as_array().unwrap().len(), 2);
    }
}

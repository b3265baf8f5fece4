//! cosign's formats: the simple-signing payload that names an image by digest, the signature
//! artifact that carries it (each payload a layer, its signature in the layer's
//! `dev.cosignproject.cosign/signature` annotation), and the attestation artifact (each DSSE
//! envelope a layer). Each artifact is one manifest, attached to its subject as an OCI 1.1
//! referrer and tagged `sha256-<hex>.sig` / `.att`, where today's cosign looks.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{json, Value};

use super::{SignError, Signer};
use crate::image::config::canonical_json;
use crate::image::referrers::{self, Attachment, Merged, Payload};
use crate::image::{Blob, Digest};

pub(crate) const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub(crate) const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub(crate) const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
pub(crate) const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub(crate) const ATTESTATION_ARTIFACT_TYPE: &str = "application/vnd.in-toto+json";
/// cosign's annotation naming an attestation layer's predicate type; buildx's is the second.
pub(crate) const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
const INTOTO_PREDICATE_ANNOTATION: &str = "in-toto.io/predicate-type";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const SIGNATURE_TYPE: &str = "cosign container image signature";

/// The simple-signing payload cosign signs: `docker-reference` names where the image was put,
/// `docker-manifest-digest` the manifest or index signed.
pub(crate) fn payload(docker_reference: &str, digest: &Digest) -> Vec<u8> {
    canonical_json(&json!({
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": SIGNATURE_TYPE,
        },
        "optional": null,
    }))
}

/// What a simple-signing payload says, for `verify`.
pub(crate) struct Claim {
    pub(crate) docker_reference: String,
    pub(crate) digest: String,
}

pub(crate) fn read_payload(bytes: &[u8]) -> Option<Claim> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let critical = value.get("critical")?;
    if critical.get("type")?.as_str()? != SIGNATURE_TYPE {
        return None;
    }
    Some(Claim {
        docker_reference: critical["identity"]["docker-reference"].as_str().unwrap_or_default().to_string(),
        digest: critical["image"]["docker-manifest-digest"].as_str()?.to_string(),
    })
}

/// An attachment read from elsewhere (a copied image's referrer), set to be written as cosign
/// writes its own: a signature also under `sha256-<hex>.sig`, an attestation under `.att`, each
/// beside what the tag already holds there. Other artifacts (SBOMs) are left as they are.
pub(crate) fn carry_tags(attachment: &mut Attachment) {
    let subject = attachment.subject.digest;
    match attachment.artifact_type.as_str() {
        SIGNATURE_ARTIFACT_TYPE => {
            attachment.tags = vec![signature_tag(&subject)];
            attachment.merge = Some(keep_other_signatures);
        }
        ATTESTATION_ARTIFACT_TYPE => {
            attachment.tags = vec![attestation_tag(&subject)];
            attachment.merge = Some(keep_other_attestations);
        }
        _ => {}
    }
}

/// cosign's `sha256-<hex>.sig`.
pub(crate) fn signature_tag(subject: &Digest) -> String {
    format!("{}.sig", referrers::fallback_tag(subject))
}

/// cosign's `sha256-<hex>.att`.
pub(crate) fn attestation_tag(subject: &Digest) -> String {
    format!("{}.att", referrers::fallback_tag(subject))
}

/// The config of a cosign artifact image, as go-containerregistry writes it for an empty image
/// with these layers appended.
fn config(layers: &[&Blob]) -> Blob {
    config_of(&layers.iter().map(|b| b.digest.to_string()).collect::<Vec<_>>())
}

fn config_of(digests: &[String]) -> Blob {
    let created = "0001-01-01T00:00:00Z";
    let config = json!({
        "architecture": "",
        "config": {},
        "created": created,
        "history": digests.iter().map(|_| json!({"created": created})).collect::<Vec<_>>(),
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": digests},
    });
    Blob::from_bytes(CONFIG_MEDIA_TYPE, canonical_json(&config))
}

/// The signature of `subject` (a manifest or index) as put at `docker_reference`.
pub(crate) fn sign(signer: &dyn Signer, subject: &Blob, docker_reference: &str) -> Result<Attachment, SignError> {
    let bytes = payload(docker_reference, &subject.digest);
    let signature = base64::engine::general_purpose::STANDARD.encode(signer.sign(&bytes)?);
    let blob = Blob::from_bytes(SIMPLE_SIGNING_MEDIA_TYPE, bytes);
    let config = config(&[&blob]);
    let annotations = BTreeMap::from([(SIGNATURE_ANNOTATION.to_string(), signature)]);
    let tags = vec![signature_tag(&subject.digest)];
    let mut attachment = referrers::attach_payloads(subject, SIGNATURE_ARTIFACT_TYPE, config, vec![Payload { blob, annotations }], tags);
    attachment.merge = Some(keep_other_signatures);
    Ok(attachment)
}

/// The `.sig` image with the signatures already there (other keys', other places') and ours, as
/// `cosign sign` appends to it; `None` when it holds only ours.
fn keep_other_signatures(existing: &[u8], ours: &Attachment) -> Option<Merged> {
    merge_layers(existing, ours, |_| true)
}

/// The `.att` image with the attestations already there whose predicate types ours do not
/// replace (another tool's vulnerability scan stays; an older provenance goes).
fn keep_other_attestations(existing: &[u8], ours: &Attachment) -> Option<Merged> {
    let our_types: Vec<Value> =
        manifest_layers(&ours.manifest)?.iter().map(|l| l["annotations"][PREDICATE_TYPE_ANNOTATION].clone()).collect();
    merge_layers(existing, ours, |layer| !our_types.contains(&layer["annotations"][PREDICATE_TYPE_ANNOTATION]))
}

fn manifest_layers(manifest: &Blob) -> Option<Vec<Value>> {
    let bytes = crate::image::blob::read_all(manifest).ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?["layers"].as_array().cloned()
}

/// The layers of `existing` that `keep` keeps and ours lacks, then ours, in a cosign image (no
/// `subject`: the attachment's own manifest is the referrer).
fn merge_layers(existing: &[u8], ours: &Attachment, keep: impl Fn(&Value) -> bool) -> Option<Merged> {
    let existing_bytes = existing;
    let existing: Value = serde_json::from_slice(existing).ok()?;
    let our_layers = manifest_layers(&ours.manifest)?;
    let held = existing["layers"].as_array()?;
    if our_layers.iter().all(|l| held.contains(l)) && held.iter().all(|l| keep(l) || our_layers.contains(l)) {
        // Ours are there already, and nothing is to go: the tag stays as it is.
        let manifest = Blob::from_bytes(crate::image::config::MANIFEST_MEDIA_TYPE, existing_bytes.to_vec());
        return Some(Merged { manifest, blobs: Vec::new() });
    }
    let mut layers: Vec<Value> = existing["layers"].as_array()?.iter().filter(|l| keep(l) && !our_layers.contains(l)).cloned().collect();
    if layers.is_empty() {
        return None;
    }
    layers.extend(our_layers);
    let digests: Vec<String> = layers.iter().filter_map(|l| l["digest"].as_str().map(str::to_string)).collect();
    let config = config_of(&digests);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": crate::image::config::MANIFEST_MEDIA_TYPE,
        "config": {"mediaType": config.media_type, "digest": config.digest.to_string(), "size": config.size},
        "layers": layers,
    });
    let manifest = Blob::from_bytes(crate::image::config::MANIFEST_MEDIA_TYPE, canonical_json(&manifest));
    Some(Merged { manifest, blobs: vec![config] })
}

/// A signature of each of `subjects`, naming `docker_reference`.
pub(crate) fn sign_all(signer: &dyn Signer, subjects: &[&Blob], docker_reference: &str) -> Result<Vec<Attachment>, SignError> {
    subjects.iter().map(|subject| sign(signer, subject, docker_reference)).collect()
}

/// The attestations of `subject`: each `(predicate type, DSSE envelope)` a layer, as `cosign
/// attest` writes them.
pub(crate) fn attestations(subject: &Blob, envelopes: Vec<(String, Vec<u8>)>) -> Attachment {
    let payloads: Vec<Payload> = envelopes
        .into_iter()
        .map(|(predicate_type, envelope)| Payload {
            blob: Blob::from_bytes(DSSE_MEDIA_TYPE, envelope),
            annotations: BTreeMap::from([
                (PREDICATE_TYPE_ANNOTATION.to_string(), predicate_type.clone()),
                (INTOTO_PREDICATE_ANNOTATION.to_string(), predicate_type),
                // cosign reads the signature from the envelope; the annotation must be there.
                (SIGNATURE_ANNOTATION.to_string(), String::new()),
            ]),
        })
        .collect();
    let config = config(&payloads.iter().map(|p| &p.blob).collect::<Vec<_>>());
    let tags = vec![attestation_tag(&subject.digest)];
    let mut attachment = referrers::attach_payloads(subject, ATTESTATION_ARTIFACT_TYPE, config, payloads, tags);
    attachment.merge = Some(keep_other_attestations);
    attachment
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::config::MANIFEST_MEDIA_TYPE;
    use crate::sign::key::tests::TEST_KEY;
    use crate::sign::KeySigner;

    #[test]
    fn a_second_key_adds_its_signature_to_the_sig_image_and_a_repeat_changes_nothing() {
        let first = KeySigner::from_pem(TEST_KEY, "test").unwrap();
        let second = KeySigner::from_pem(SECOND_KEY, "test").unwrap();
        let subject = Blob::from_bytes(MANIFEST_MEDIA_TYPE, b"{}".to_vec());
        let by_first = sign(&first, &subject, "r/app").unwrap();
        let by_second = sign(&second, &subject, "r/app").unwrap();
        let existing = by_first.manifest.bytes().unwrap();
        let merged = (by_second.merge.unwrap())(existing, &by_second).unwrap();
        let layers = |blob: &Blob| serde_json::from_slice::<Value>(blob.bytes().unwrap()).unwrap()["layers"].as_array().unwrap().len();
        assert_eq!(layers(&merged.manifest), 2);
        let again = (by_first.merge.unwrap())(merged.manifest.bytes().unwrap(), &by_first).unwrap();
        assert_eq!(again.manifest.digest, merged.manifest.digest, "nothing new: the tag stays as it is");
        assert!((by_first.merge.unwrap())(existing, &by_first).is_some_and(|m| m.manifest.digest == by_first.manifest.digest));
    }

    /// Another throwaway P-256 key.
    const SECOND_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9TJTG4VrcdbVMuNi
8kfsLR8SB6FSUTjRxFHDMoHxg9qhRANCAARZujVhPKVBPRcM2piQo8X9gE+THTEg
1H2njgfFOOtK2UCVzIxNVJ6p0BO8yP3+naNMW4a62U51eD9jv9m1/zYm
-----END PRIVATE KEY-----\n";

    #[test]
    fn the_payload_is_cosigns_byte_for_byte() {
        let digest = Digest::of(b"x");
        let text = String::from_utf8(payload("localhost:5000/app", &digest)).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"localhost:5000/app"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        assert_eq!(read_payload(text.as_bytes()).unwrap().digest, digest.to_string());
    }

    #[test]
    fn a_signature_is_a_referrer_and_a_sig_tag() {
        let signer = KeySigner::from_pem(TEST_KEY, "test").unwrap();
        let subject = Blob::from_bytes(MANIFEST_MEDIA_TYPE, b"{}".to_vec());
        let attachment = sign(&signer, &subject, "localhost:5000/app").unwrap();
        assert_eq!(attachment.tags, vec![format!("sha256-{}.sig", subject.digest.hex())]);
        let manifest: Value = serde_json::from_slice(attachment.manifest.bytes().unwrap()).unwrap();
        assert_eq!(manifest["artifactType"], SIGNATURE_ARTIFACT_TYPE);
        assert_eq!(manifest["subject"]["digest"], subject.digest.to_string());
        assert_eq!(manifest["layers"][0]["mediaType"], SIMPLE_SIGNING_MEDIA_TYPE);
        let signature = manifest["layers"][0]["annotations"][SIGNATURE_ANNOTATION].as_str().unwrap();
        let signature = base64::engine::general_purpose::STANDARD.decode(signature).unwrap();
        let public = signer.public_key();
        assert!(public.verifies(attachment.blobs[1].bytes().unwrap(), &signature));
    }
}

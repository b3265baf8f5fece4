//! `scratchpack verify IMAGE --key PUB.pem`: checks, with the public key, the cosign signature of
//! the image's manifest or index and of each platform's manifest, and every attestation (DSSE
//! envelope) attached to them and the statement's subjects. Signatures and attestations are found
//! where `pack` puts them and where cosign looks: the referrers (API or `sha256-<hex>` tag) and
//! cosign's `sha256-<hex>.sig` / `.att` tags.
//!
//! Reading is the registry's `pull` and the layout's `LayoutFiles`; the checks are `sign`'s. This
//! only walks the image and says what it found: one line per verified item on stdout (also when
//! something else fails), and an error naming each digest whose signature is missing, made by
//! another key, or made for another digest.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use serde_json::Value;

use crate::dest::registry::RegistryContext;
use crate::dest::DestSpec;
use crate::image::config::INDEX_MEDIA_TYPE;
use crate::image::referrers::fallback_tag;
use crate::image::Digest;
use crate::layout::read::LayoutFiles;
use crate::registry::auth::credentials::Lookup;
use crate::registry::{pull, Client, Reference};
use crate::sign::cosign::{self, ATTESTATION_ARTIFACT_TYPE, DSSE_MEDIA_TYPE, SIGNATURE_ARTIFACT_TYPE, SIMPLE_SIGNING_MEDIA_TYPE};
use crate::sign::{dsse, PublicKey};

/// The most bytes a signature payload or an attestation envelope may have.
const MAX_PAYLOAD: u64 = 16 << 20;

#[derive(Debug)]
pub(crate) struct VerifyOptions {
    /// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` or `docker://HOST/REPO[:TAG|@DIGEST]`.
    pub(crate) image: String,
    pub(crate) key: PathBuf,
    pub(crate) registry: RegistryContext,
}

#[derive(Debug, thiserror::Error)]
#[error("{image}: {}", problems.join("; "))]
pub(crate) struct VerifyError {
    image: String,
    problems: Vec<String>,
}

impl VerifyError {
    pub(crate) fn hint(&self) -> Option<String> {
        Some("an image pushed or moved after signing, or signed with another key, fails; sign with scratchpack pack --sign-key KEY".into())
    }
}

/// Where the image and its signatures are read from.
trait Store {
    /// A manifest or index by tag or digest: its bytes and digest; `None` when absent.
    fn manifest(&self, reference: &str) -> Result<Option<(Vec<u8>, Digest)>>;
    fn blob(&self, digest: &Digest) -> Result<Vec<u8>>;
    /// The descriptors of `subject`'s referrers.
    fn referrers(&self, subject: &Digest) -> Result<Vec<Value>>;
}

struct RegistryStore {
    client: Client,
    repository: String,
}

impl Store for RegistryStore {
    fn manifest(&self, reference: &str) -> Result<Option<(Vec<u8>, Digest)>> {
        let expected = Digest::parse(reference).ok();
        let found = pull::get_manifest(&self.client, &self.repository, reference, expected.as_ref())?;
        Ok(found.map(|m| (m.blob.bytes().expect("a manifest is read into memory").to_vec(), m.blob.digest)))
    }

    fn blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        Ok(pull::get_small_blob(&self.client, &self.repository, digest, MAX_PAYLOAD)?)
    }

    fn referrers(&self, subject: &Digest) -> Result<Vec<Value>> {
        Ok(pull::referrers(&self.client, &self.repository, subject)?)
    }
}

struct LayoutStore {
    files: LayoutFiles,
}

impl Store for LayoutStore {
    fn manifest(&self, reference: &str) -> Result<Option<(Vec<u8>, Digest)>> {
        let digest = match Digest::parse(reference) {
            Ok(digest) => Some(digest),
            Err(_) => self.files.tags()?.into_iter().find(|(tag, _, _)| tag == reference).map(|(_, digest, _)| digest),
        };
        let Some(digest) = digest else { return Ok(None) };
        Ok(self.files.document(&digest)?.map(|bytes| (bytes, digest)))
    }

    fn blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.files.document(digest)?.ok_or_else(|| anyhow!("the layout lacks blob {digest}"))
    }

    fn referrers(&self, subject: &Digest) -> Result<Vec<Value>> {
        Ok(manifests_of(self.manifest(&fallback_tag(subject))?.map(|(bytes, _)| bytes).as_deref()))
    }
}

fn manifests_of(index: Option<&[u8]>) -> Vec<Value> {
    index
        .and_then(|bytes| serde_json::from_slice::<Value>(bytes).ok())
        .and_then(|index| index["manifests"].as_array().cloned())
        .unwrap_or_default()
}

/// Opens the store `image` names, and the tag or digest of the image in it.
fn open(options: &VerifyOptions) -> Result<(Box<dyn Store>, String)> {
    let image = &options.image;
    if let Some(text) = image.strip_prefix("docker://") {
        let reference: Reference = text.parse().with_context(|| format!("{image:?}"))?;
        let repository = &reference.repository;
        let env = |name: &str| std::env::var(name).ok();
        let lookup = Lookup { creds_flag: options.registry.creds_flag.as_ref(), env: &env };
        let credential = lookup.find(repository)?;
        let scopes = vec![format!("repository:{}:pull", repository.path)];
        let client = Client::connect(repository.registry.clone(), credential, scopes, &options.registry.connect)?;
        let target = match (&reference.digest, &reference.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.to_string(),
            (None, None) => "latest".to_string(),
        };
        return Ok((Box::new(RegistryStore { client, repository: repository.path.clone() }), target));
    }
    let (files, tag) = match image.parse::<DestSpec>()? {
        DestSpec::OciLayout { dir, tag } => (LayoutFiles::open(&dir)?, tag),
        DestSpec::OciArchive { file, tag } => (LayoutFiles::open_archive(&file)?, tag),
        _ => bail!("{image:?}: verify reads oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://HOST/REPO[:TAG|@DIGEST]"),
    };
    let tag = match tag {
        Some(tag) => tag.to_string(),
        None => {
            // Signatures and attestations are tagged too (`sha256-<hex>…`): the image is the other tag.
            let images: Vec<String> = files.tags()?.into_iter().map(|(tag, _, _)| tag).filter(|t| !t.starts_with("sha256-")).collect();
            match images.as_slice() {
                [only] => only.clone(),
                [] => bail!("{image}: the layout holds no tagged image"),
                several => bail!("{image}: holds {} images; name one with :TAG (tags: {})", several.len(), several.join(", ")),
            }
        }
    };
    Ok((Box::new(LayoutStore { files }), tag))
}

/// Verifies the image, handing `verified` one line per signature or attestation that verifies, as
/// it goes. Fails, naming each digest, when anything is missing or does not verify.
pub(crate) fn verify(options: &VerifyOptions, verified: &mut dyn FnMut(&str)) -> Result<()> {
    let key = PublicKey::from_file(&options.key)?;
    let (store, target) = open(options)?;
    let (root_bytes, root_digest) = store.manifest(&target)?.ok_or_else(|| anyhow!("{}: no image tagged {target}", options.image))?;
    let root: Value = serde_json::from_slice(&root_bytes).with_context(|| format!("{root_digest} is not JSON"))?;
    let is_index = root["mediaType"] == INDEX_MEDIA_TYPE
        || root["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
        || root.get("manifests").is_some();
    let mut subjects = vec![(root_digest, if is_index { "index".to_string() } else { "manifest".to_string() })];
    if is_index {
        for child in root["manifests"].as_array().cloned().unwrap_or_default() {
            // An attestation listed in the index (as buildx lists them, `unknown/unknown`) is no
            // platform's image, and nobody signs it as one: it is passed over.
            if child["annotations"]["vnd.docker.reference.type"] == "attestation-manifest" {
                continue;
            }
            let digest = Digest::parse(child["digest"].as_str().unwrap_or_default())?;
            let platform = &child["platform"];
            let label = match (platform["os"].as_str(), platform["architecture"].as_str()) {
                (Some(os), Some(arch)) => match platform["variant"].as_str() {
                    Some(variant) => format!("{os}/{arch}/{variant}"),
                    None => format!("{os}/{arch}"),
                },
                _ => "manifest".to_string(),
            };
            subjects.push((digest, label));
        }
    }
    let mut problems = Vec::new();
    for (digest, label) in &subjects {
        match signature(store.as_ref(), &key, digest)? {
            Ok(reference) => verified(&format!("{digest} {label}: signature verified (docker-reference {reference})")),
            Err(problem) => problems.push(format!("{digest} ({label}): {problem}")),
        }
        for outcome in attestations(store.as_ref(), &key, digest)? {
            match outcome {
                Ok(predicate) => verified(&format!("{digest} {label}: {predicate} attestation verified")),
                Err(problem) => problems.push(format!("{digest} ({label}): {problem}")),
            }
        }
    }
    if !problems.is_empty() {
        return Err(VerifyError { image: options.image.clone(), problems }.into());
    }
    Ok(())
}

/// The manifests attached to `subject` as `artifact_type` (through its referrers), and the one
/// cosign's `tag` names, each once.
fn attached(store: &dyn Store, subject: &Digest, artifact_type: &str, tag: &str) -> Result<Vec<Value>> {
    let mut seen = Vec::new();
    let mut manifests = Vec::new();
    for descriptor in store.referrers(subject)? {
        if descriptor["artifactType"] != artifact_type {
            continue;
        }
        let digest = Digest::parse(descriptor["digest"].as_str().unwrap_or_default())?;
        if let Some((bytes, digest)) = store.manifest(&digest.to_string())? {
            seen.push(digest);
            manifests.push(serde_json::from_slice(&bytes)?);
        }
    }
    if let Some((bytes, digest)) = store.manifest(tag)? {
        if !seen.contains(&digest) {
            manifests.push(serde_json::from_slice(&bytes)?);
        }
    }
    Ok(manifests)
}

fn layers_of<'a>(manifest: &'a Value, media_type: &'a str) -> impl Iterator<Item = &'a Value> {
    manifest["layers"].as_array().into_iter().flatten().filter(move |l| l["mediaType"] == media_type)
}

/// The signature of `subject` by `key`: `Ok(docker-reference)`, or why there is none.
fn signature(store: &dyn Store, key: &PublicKey, subject: &Digest) -> Result<Result<String, String>> {
    let tag = cosign::signature_tag(subject);
    let manifests = attached(store, subject, SIGNATURE_ARTIFACT_TYPE, &tag)?;
    let mut count = 0;
    let mut other_digest = None;
    for manifest in &manifests {
        for layer in layers_of(manifest, SIMPLE_SIGNING_MEDIA_TYPE) {
            count += 1;
            let Some(signature) = layer["annotations"][cosign::SIGNATURE_ANNOTATION]
                .as_str()
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            else {
                continue;
            };
            let payload = store.blob(&Digest::parse(layer["digest"].as_str().unwrap_or_default())?)?;
            if !key.verifies(&payload, &signature) {
                continue;
            }
            match cosign::read_payload(&payload) {
                Some(claim) if claim.digest == subject.to_string() => return Ok(Ok(claim.docker_reference)),
                Some(claim) => other_digest = Some(claim.digest),
                None => {}
            }
        }
    }
    Ok(Err(match (count, other_digest) {
        (0, _) => format!("no signature (none among its referrers, nor under the tag {tag})"),
        (_, Some(other)) => format!("the signature by this key covers {other}, not this digest"),
        (n, None) => format!("{n} signature(s), none made by the key {}", key.fingerprint()),
    }))
}

/// Each attestation of `subject`: `Ok(predicate type)` when signed by `key` and naming `subject`.
fn attestations(store: &dyn Store, key: &PublicKey, subject: &Digest) -> Result<Vec<Result<String, String>>> {
    let manifests = attached(store, subject, ATTESTATION_ARTIFACT_TYPE, &cosign::attestation_tag(subject))?;
    let mut outcomes = Vec::new();
    let mut seen = Vec::new();
    for manifest in &manifests {
        for layer in layers_of(manifest, DSSE_MEDIA_TYPE) {
            // The same envelope under the tag and in a referrer (or in an older one) counts once.
            if seen.contains(&layer["digest"]) {
                continue;
            }
            seen.push(layer["digest"].clone());
            let envelope = store.blob(&Digest::parse(layer["digest"].as_str().unwrap_or_default())?)?;
            let Some(opened) = dsse::open(&envelope, key) else {
                outcomes.push(Err(format!("attestation {} is not a DSSE envelope of an in-toto statement", layer["digest"])));
                continue;
            };
            let predicate = opened.statement["predicateType"].as_str().unwrap_or("unknown").to_string();
            let subjects = dsse::subject_digests(&opened.statement);
            outcomes.push(if !opened.signed {
                Err(match opened.signature_count {
                    0 => format!("the {predicate} attestation is not signed"),
                    n => format!("the {predicate} attestation has {n} signature(s), none made by the key {}", key.fingerprint()),
                })
            } else if !subjects.contains(&subject.to_string()) {
                Err(format!("the {predicate} attestation is about {}, not this digest", subjects.join(", ")))
            } else {
                Ok(predicate)
            });
        }
    }
    Ok(outcomes)
}

//! The pull protocol (distribution spec "Pulling"), as go-containerregistry's `remote` reads:
//! manifests and indexes by GET with every OCI and Docker schema 2 media type in `Accept`, their
//! bytes checked against the digest asked for (else the registry's `Docker-Content-Digest`) and
//! kept exactly as they came; Docker schema 1 refused. Blobs are streamed to files, hashed on the
//! way: a connection that drops is resumed with `Range` when the registry answers 206, or started
//! over when it answers 200; a blob whose bytes or size do not match its digest is refused. Each
//! is retried on transient failures; when and how many at once is [`super::lazy`]'s.
//!
//! Blobs already kept in the layer cache (`blobs/sha256/<hex>`, the folder is keyed by digest)
//! are taken from there, checked, and never fetched; fetched ones are kept there for next time.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use reqwest::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::Digest as _;

use super::answers::{mib, read_capped, registry_text, MAX_MANIFEST_BODY};
use super::client::{status_error, Client};
use super::error::{redact_url, RegistryError};
use super::progress::{BlobProgress, Progress};
use crate::image::cache::LayerCache;
use crate::image::config::{INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::image::referrers::{fallback_tag, Attachment};
use crate::image::stored::{content_of, is_index, is_manifest, media_type_of, StoredImage, DOCKER_LIST, DOCKER_MANIFEST, SCHEMA1_TYPES};
use crate::image::{Blob, Digest, Staging};

const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// Every manifest kind scratchpack reads, in the `Accept` of a manifest GET.
pub(crate) fn accept_manifests() -> String {
    [INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, DOCKER_LIST, DOCKER_MANIFEST].join(", ")
}

/// A manifest or index as the registry sent it: the exact bytes (in the blob) and their JSON.
pub(crate) struct Manifest {
    pub(crate) blob: Blob,
    pub(crate) value: Value,
}

/// GETs the manifest `reference` (a tag or a digest) of `repository`. `None` when the registry
/// does not have it (404). The bytes must hash to `expected` when given (a pull by digest, or a
/// child of an index), else to the registry's `Docker-Content-Digest` when it sends one.
pub(crate) fn get_manifest(
    client: &Client,
    repository: &str,
    reference: &str,
    expected: Option<&Digest>,
) -> Result<Option<Manifest>, RegistryError> {
    let url = client.url(&format!("v2/{repository}/manifests/{reference}"));
    let shown = format!("{}/{repository}{}{reference}", client.registry, if reference.starts_with("sha256:") { "@" } else { ":" });
    let answer = client.with_retries(&format!("reading manifest {reference}"), || {
        let response = client.send(Method::GET, &url, &|r| Ok(r.header(ACCEPT, accept_manifests())))?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(status_error(&Method::GET, &url, response)),
        }
        let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type =
            header(CONTENT_TYPE.as_str()).map(|t| t.split(';').next().unwrap_or_default().trim().to_string()).unwrap_or_default();
        let registry_digest = header(DOCKER_CONTENT_DIGEST);
        if SCHEMA1_TYPES.contains(&content_type.as_str()) {
            return Err(RegistryError::Schema1 { reference: shown.clone(), media_type: content_type });
        }
        let bytes = read_capped(response, MAX_MANIFEST_BODY)
            .map_err(|e| client.read_error(&Method::GET, &url, &e))?
            .ok_or_else(|| RegistryError::TooLarge { what: format!("GET {}", redact_url(&url)), limit_mib: mib(MAX_MANIFEST_BODY) })?;
        Ok(Some((bytes, content_type, registry_digest)))
    })?;
    let Some((bytes, content_type, registry_digest)) = answer else { return Ok(None) };
    let digest = Digest::of(&bytes);
    let wanted = expected.map(Digest::to_string).or(registry_digest);
    if let Some(wanted) = wanted.filter(|w| *w != digest.to_string()) {
        return Err(RegistryError::WrongContent {
            what: format!("manifest {shown}"),
            expected: registry_text(&wanted),
            detail: format!("they hash to {digest}"),
        });
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| RegistryError::BadResponse { what: format!("manifest {shown}"), detail: format!("not JSON: {e}") })?;
    if value["schemaVersion"] == 1 {
        return Err(RegistryError::Schema1 { reference: shown, media_type: content_type });
    }
    let media_type = media_type_of(&value, &content_type);
    if !is_index(&media_type) && !is_manifest(&media_type) {
        return Err(RegistryError::BadResponse {
            what: format!("manifest {shown}"),
            detail: format!("media type {:?} is neither an image manifest nor an index", registry_text(&media_type)),
        });
    }
    Ok(Some(Manifest { blob: Blob::from_bytes(&media_type, bytes), value }))
}

/// GET a blob of at most `cap` bytes, checked against its digest.
pub(crate) fn get_small_blob(client: &Client, repository: &str, digest: &Digest, cap: u64) -> Result<Vec<u8>, RegistryError> {
    let url = client.url(&format!("v2/{repository}/blobs/{digest}"));
    let what = || format!("GET {}", redact_url(&url));
    let bytes = client.with_retries(&format!("reading blob {digest}"), || {
        let response = client.send(Method::GET, &url, &|r| Ok(r))?;
        match response.status() {
            StatusCode::OK => read_capped(response, cap)
                .map_err(|e| client.read_error(&Method::GET, &url, &e))?
                .ok_or_else(|| RegistryError::TooLarge { what: what(), limit_mib: mib(cap) }),
            _ => Err(status_error(&Method::GET, &url, response)),
        }
    })?;
    let got = Digest::of(&bytes);
    if got != *digest {
        return Err(RegistryError::DigestMismatch { what: what(), expected: digest.to_string(), got: got.to_string() });
    }
    Ok(bytes)
}

/// A content blob to fetch, as a descriptor names it.
#[derive(Clone, Debug)]
pub(crate) struct Wanted {
    pub(crate) media_type: String,
    pub(crate) digest: Digest,
    pub(crate) size: u64,
}

impl Wanted {
    fn from_descriptor(media_type: &str, digest: &str, size: Option<u64>, of: &str) -> Result<Wanted, RegistryError> {
        let bad = |detail: String| RegistryError::BadResponse { what: format!("manifest {of}"), detail };
        let parsed = Digest::parse(digest).map_err(|e| bad(registry_text(&e.to_string())))?;
        let size = size.ok_or_else(|| bad(format!("descriptor {parsed} has no size")))?;
        Ok(Wanted { media_type: media_type.to_string(), digest: parsed, size })
    }
}

/// Streams blob `wanted` of `repository` into the new file `to`, resuming a dropped connection
/// where the registry allows it; the file holds exactly the blob's bytes when this returns `Ok`.
pub(crate) fn get_blob(
    client: &Client,
    repository: &str,
    wanted: &Wanted,
    to: &Path,
    handle: &Arc<dyn BlobProgress>,
) -> Result<(), RegistryError> {
    let digest = wanted.digest.to_string();
    let url = client.url(&format!("v2/{repository}/blobs/{digest}"));
    let write_error = |source| RegistryError::Write { path: to.display().to_string(), what: "a downloaded blob", source };
    let mut file = std::fs::File::create(to).map_err(write_error)?;
    let mut hasher = sha2::Sha256::new();
    let mut written: u64 = 0;
    client.with_retries(&format!("downloading {digest}"), || {
        let from = written;
        let mut response = client.send(Method::GET, &url, &|r| Ok(if from > 0 { r.header(RANGE, format!("bytes={from}-")) } else { r }))?;
        let resumed = response.status() == StatusCode::PARTIAL_CONTENT
            && from > 0
            && response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|range| range.starts_with(&format!("bytes {from}-")));
        let restart = |file: &mut std::fs::File| -> Result<(), RegistryError> {
            file.set_len(0).map_err(write_error)?;
            std::io::Seek::rewind(file).map_err(write_error)
        };
        match response.status() {
            _ if resumed => {}
            StatusCode::OK => {
                // From the start: the registry ignored the range.
                restart(&mut file)?;
                hasher = sha2::Sha256::new();
                written = 0;
                handle.restart();
            }
            StatusCode::PARTIAL_CONTENT => {
                // Another range than the one asked for: start over, asking for the whole blob.
                restart(&mut file)?;
                hasher = sha2::Sha256::new();
                written = 0;
                handle.restart();
                return Err(RegistryError::Network {
                    method: "GET".into(),
                    url: redact_url(&url),
                    detail: format!("asked for bytes {from}- and got another range"),
                });
            }
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound { reference: format!("{}/{repository}@{digest}", client.registry) })
            }
            _ => return Err(status_error(&Method::GET, &url, response)),
        }
        let mut buffer = vec![0u8; 256 << 10];
        loop {
            let n = response.read(&mut buffer).map_err(|e| client.read_error(&Method::GET, &url, &e))?;
            if n == 0 {
                break;
            }
            if written + n as u64 > wanted.size {
                return Err(RegistryError::WrongContent {
                    what: format!("blob {digest}"),
                    expected: digest.clone(),
                    detail: format!("more than its {} bytes", wanted.size),
                });
            }
            file.write_all(&buffer[..n]).map_err(write_error)?;
            hasher.update(&buffer[..n]);
            written += n as u64;
            handle.advance(n as u64);
        }
        if written < wanted.size {
            // Cut short: a network fault, resumed from here on the next attempt.
            return Err(RegistryError::Network {
                method: "GET".into(),
                url: redact_url(&url),
                detail: format!("the answer ended after {written} of {} bytes", wanted.size),
            });
        }
        Ok(())
    })?;
    file.sync_all().map_err(write_error)?;
    let got = Digest::from_hasher(hasher);
    if got != wanted.digest {
        let _ = std::fs::remove_file(to);
        return Err(RegistryError::WrongContent {
            what: format!("blob {digest}"),
            expected: digest,
            detail: format!("they hash to {got}"),
        });
    }
    Ok(())
}

/// Where fetched blobs go: a staging folder that lives with the image, and the layer cache.
pub(crate) struct BlobStore<'a> {
    pub(crate) staging: &'a Staging,
    pub(crate) cache: Option<&'a LayerCache>,
}

/// Brings blob `w` into a new file of the store: from the layer cache when it holds it intact,
/// else from the registry (then kept in the cache for next time).
pub(crate) fn fetch_one(
    client: &Client,
    repository: &str,
    w: &Wanted,
    store: &BlobStore,
    progress: &dyn Progress,
) -> Result<std::path::PathBuf, RegistryError> {
    let path = store.staging.next_file();
    if store.cache.is_some_and(|cache| cache.take_blob(&w.digest, w.size, &path)) {
        progress.start(&w.digest, w.size, "blob").finish("cached");
        return Ok(path);
    }
    let handle = progress.start(&w.digest, w.size, "blob");
    get_blob(client, repository, w, &path, &handle)?;
    handle.finish("pulled");
    if let Some(cache) = store.cache {
        cache.keep_blob(&w.digest, &path);
    }
    Ok(path)
}

/// The descriptors of the referrers of `subject`: from the referrers API where the registry has
/// it, else from the referrers tag `sha256-<hex>` (distribution 2.8 has no API).
pub(crate) fn referrers(client: &Client, repository: &str, subject: &Digest) -> Result<Vec<Value>, RegistryError> {
    let url = client.url(&format!("v2/{repository}/referrers/{subject}"));
    let api = client.with_retries("listing referrers", || {
        let response = client.send(Method::GET, &url, &|r| Ok(r.header(ACCEPT, INDEX_MEDIA_TYPE)))?;
        if response.status().is_server_error() || response.status() == StatusCode::TOO_MANY_REQUESTS {
            return Err(status_error(&Method::GET, &url, response));
        }
        let is_index = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with(INDEX_MEDIA_TYPE));
        if response.status() != StatusCode::OK || !is_index {
            return Ok(None);
        }
        let bytes = read_capped(response, MAX_MANIFEST_BODY).map_err(|e| client.read_error(&Method::GET, &url, &e))?;
        Ok(bytes.and_then(|b| serde_json::from_slice::<Value>(&b).ok()))
    })?;
    let index = match api {
        Some(index) => index,
        None => match get_manifest(client, repository, &fallback_tag(subject), None)? {
            Some(found) if is_index(&found.blob.media_type) => found.value,
            _ => return Ok(Vec::new()),
        },
    };
    Ok(index["manifests"].as_array().cloned().unwrap_or_default())
}

/// What a pull reads before any blob: the root, the child manifests, the referrers' manifests,
/// and the content blobs they all name (the image's first, then the referrers').
pub(crate) struct Listing {
    root: Manifest,
    manifests: Vec<Manifest>,
    /// Each content blob once.
    pub(crate) wanted: Vec<Wanted>,
    image_blob_count: usize,
    /// `(subject, artifact type, manifest)` of each referrer.
    found: Vec<(Blob, String, Manifest)>,
}

impl Listing {
    /// The image, given the blobs of [`Listing::wanted`], in its order.
    pub(crate) fn into_image(self, blobs: Vec<Blob>) -> StoredImage {
        let by_digest = |digest: &str| blobs.iter().find(|b| b.digest.to_string() == digest).cloned();
        let referrers = self
            .found
            .into_iter()
            .map(|(subject, artifact_type, manifest)| {
                let parts = content_of(&manifest.value).into_iter().filter_map(|(_, digest, _)| by_digest(&digest)).collect();
                Attachment { subject, artifact_type, manifest: manifest.blob, blobs: parts, tags: Vec::new(), merge: None }
            })
            .collect();
        let image_blobs = blobs[..self.image_blob_count].to_vec();
        StoredImage {
            blobs: image_blobs,
            manifests: self.manifests.into_iter().map(|m| m.blob).collect(),
            root: self.root.blob,
            referrers,
            keep: Vec::new(),
        }
    }
}

/// Reads every manifest of the image `reference` (a tag, or a digest also given as `expected`) of
/// `repository`: its manifest or index, each child manifest, and the referrers of each; lists
/// their content blobs, fetching none (see [`super::lazy`]). What the registry lacks of a
/// referrer's manifest is skipped; a missing blob shows when it is fetched or mounted.
pub(crate) fn list(client: &Client, repository: &str, reference: &str, expected: Option<&Digest>) -> Result<Listing, RegistryError> {
    let shown = |reference: &str| {
        format!("{}/{repository}{}{reference}", client.registry, if reference.starts_with("sha256:") { "@" } else { ":" })
    };
    let root =
        get_manifest(client, repository, reference, expected)?.ok_or_else(|| RegistryError::NotFound { reference: shown(reference) })?;
    let mut manifests: Vec<Manifest> = Vec::new();
    if is_index(&root.blob.media_type) {
        for entry in root.value["manifests"].as_array().cloned().unwrap_or_default() {
            let digest = Digest::parse(entry["digest"].as_str().unwrap_or_default()).map_err(|e| RegistryError::BadResponse {
                what: format!("index {}", shown(reference)),
                detail: registry_text(&e.to_string()),
            })?;
            let child = get_manifest(client, repository, &digest.to_string(), Some(&digest))?
                .ok_or_else(|| RegistryError::NotFound { reference: shown(&digest.to_string()) })?;
            if !is_manifest(&child.blob.media_type) {
                return Err(RegistryError::BadResponse {
                    what: format!("index {}", shown(reference)),
                    detail: format!("child {digest} is an index too; scratchpack reads one level of index"),
                });
            }
            manifests.push(child);
        }
    }
    let mut wanted: Vec<Wanted> = Vec::new();
    let want = |manifest: &Manifest, wanted: &mut Vec<Wanted>| -> Result<(), RegistryError> {
        for (media_type, digest, size) in content_of(&manifest.value) {
            let w = Wanted::from_descriptor(&media_type, &digest, size, &manifest.blob.digest.to_string())?;
            if !wanted.iter().any(|have| have.digest == w.digest) {
                wanted.push(w);
            }
        }
        Ok(())
    };
    let images: Vec<&Manifest> = if manifests.is_empty() { vec![&root] } else { manifests.iter().collect() };
    for manifest in &images {
        want(manifest, &mut wanted)?;
    }
    let image_blob_count = wanted.len();
    // Referrers of the root and of each child: their manifests now, their blobs with the image's.
    let mut found: Vec<(Blob, String, Manifest)> = Vec::new();
    let subjects: Vec<&Manifest> = std::iter::once(&root).chain(manifests.iter()).collect();
    for subject in subjects {
        for descriptor in referrers(client, repository, &subject.blob.digest)? {
            let Ok(digest) = Digest::parse(descriptor["digest"].as_str().unwrap_or_default()) else { continue };
            if found.iter().any(|(s, _, m)| s.digest == subject.blob.digest && m.blob.digest == digest) {
                continue;
            }
            let Some(manifest) = get_manifest(client, repository, &digest.to_string(), Some(&digest))? else { continue };
            want(&manifest, &mut wanted)?;
            let artifact_type = descriptor["artifactType"]
                .as_str()
                .or(manifest.value["artifactType"].as_str())
                .or(manifest.value["config"]["mediaType"].as_str())
                .unwrap_or_default()
                .to_string();
            found.push((subject.blob.clone(), artifact_type, manifest));
        }
    }
    Ok(Listing { root, manifests, wanted, image_blob_count, found })
}

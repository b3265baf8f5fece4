//! The push protocol (distribution spec "Pushing"), as go-containerregistry's `remote.Write` does it:
//! each blob is uploaded once, as HEAD (skip if present), POST (with a cross-repository mount when
//! the blob is known in another repository), then a monolithic PUT, falling back to chunked PATCH
//! uploads when the registry refuses the size. Up to four blobs go in parallel; a blob's whole
//! sequence is retried on transient failures. First of all, each tag is checked with one manifest
//! HEAD: when every tag already names our digest, the push is done (a re-push costs one round
//! trip, plus a token exchange where the registry asks for one). Manifests go last, children before the index, each
//! PUT with the exact bytes that were hashed, and the registry's digest is checked.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use reqwest::blocking::Body;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};

use super::answers::{mib, MAX_MANIFEST_BODY};
use super::client::{status_error, Client};
use super::error::{redact_url, RegistryError};
use super::progress::{BlobProgress, Progress};
use super::Tag;
use crate::image::config::{CONFIG_MEDIA_TYPE, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE};
use crate::image::{Blob, Digest, ImageOrIndex};

pub(crate) const PARALLEL_UPLOADS: usize = 4;
/// Chunk size for chunked uploads, unless the registry asks for more (`OCI-Chunk-Min-Length`).
const CHUNK_SIZE: u64 = 1 << 20;
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
const CHUNK_MIN_LENGTH: &str = "oci-chunk-min-length";

/// What one push sends: content blobs, child manifests, and the root a tag points to.
pub(crate) struct PushSet<'a> {
    pub(crate) blobs: Vec<&'a Blob>,
    pub(crate) manifests: Vec<&'a Blob>,
    pub(crate) root: &'a Blob,
}

impl<'a> PushSet<'a> {
    pub(crate) fn from_image(image: &'a ImageOrIndex) -> Self {
        let all = image.blobs_in_upload_order();
        let root = image.root();
        let is_manifest = |b: &&Blob| b.media_type == MANIFEST_MEDIA_TYPE || b.media_type == INDEX_MEDIA_TYPE;
        let blobs = all.iter().copied().filter(|b| !is_manifest(b)).collect();
        let manifests = all.iter().copied().filter(|b| is_manifest(b) && b.digest != root.digest).collect();
        PushSet { blobs, manifests, root }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlobOutcome {
    Pushed,
    Exists,
    Mounted,
}

impl BlobOutcome {
    fn as_str(self) -> &'static str {
        match self {
            BlobOutcome::Pushed => "pushed",
            BlobOutcome::Exists => "exists",
            BlobOutcome::Mounted => "mounted",
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct PushReport {
    pub(crate) pushed: usize,
    pub(crate) existing: usize,
    pub(crate) mounted: usize,
    /// Blob bytes sent (the last attempt of each blob).
    pub(crate) bytes_sent: u64,
}

/// What an early start of the push (while the program's layer was still being compressed)
/// already did: the digests the tags named then, and the blobs it uploaded.
#[derive(Debug, Default)]
pub(crate) struct Prior {
    /// Per reference of [`references`], the digest it named (`None`: none); `None` when not asked.
    pub(crate) current: Option<Vec<Option<String>>>,
    pub(crate) uploaded: HashSet<Digest>,
    pub(crate) report: PushReport,
}

/// The references a push writes: its tags, or the root's digest when there are none.
pub(crate) fn references(root: &Digest, tags: &[Tag]) -> Vec<String> {
    match tags.is_empty() {
        true => vec![root.to_string()],
        false => tags.iter().map(Tag::to_string).collect(),
    }
}

/// The digest each reference names now (one manifest HEAD each; `None` where there is none).
pub(crate) fn current_digests(client: &Client, repository: &str, references: &[String]) -> Result<Vec<Option<String>>, RegistryError> {
    references.iter().map(|reference| current_digest(client, repository, reference)).collect()
}

/// Pushes `set` to `repository` (a path in the client's registry) under every tag, or by digest
/// alone when `tags` is empty. `mount_from` maps digests to repositories of this registry that hold
/// them already; `prior` is what an early start did.
pub(crate) fn push(
    client: &Client,
    repository: &str,
    set: &PushSet,
    tags: &[Tag],
    mount_from: &HashMap<Digest, String>,
    progress: &dyn Progress,
    prior: Prior,
) -> Result<PushReport, RegistryError> {
    // A manifest already at every tag (or by digest) with our digest proves its blobs are there:
    // an unchanged image costs one HEAD per tag, and nothing else.
    let references = references(&set.root.digest, tags);
    let current = match prior.current {
        Some(current) => current,
        None => current_digests(client, repository, &references)?,
    };
    let ours = set.root.digest.to_string();
    let up_to_date: Vec<bool> = current.iter().map(|digest| digest.as_deref() == Some(ours.as_str())).collect();
    if up_to_date.iter().all(|&yes| yes) {
        return Ok(PushReport { existing: set.blobs.len(), ..PushReport::default() });
    }
    let rest: Vec<&Blob> = set.blobs.iter().copied().filter(|b| !prior.uploaded.contains(&b.digest)).collect();
    let mut report = upload_blobs(client, repository, &rest, mount_from, progress)?;
    report.pushed += prior.report.pushed;
    report.existing += prior.report.existing;
    report.mounted += prior.report.mounted;
    report.bytes_sent += prior.report.bytes_sent;
    // Only now may manifests reference the blobs: a failed push never leaves a dangling manifest.
    for manifest in &set.manifests {
        put_manifest(client, repository, &manifest.digest.to_string(), manifest)?;
    }
    for (reference, up_to_date) in references.iter().zip(up_to_date) {
        if !up_to_date {
            put_manifest(client, repository, reference, set.root)?;
        }
    }
    Ok(report)
}

/// Uploads `blobs` (each once: HEAD, then mount or upload), four at a time.
pub(crate) fn upload_blobs(
    client: &Client,
    repository: &str,
    blobs: &[&Blob],
    mount_from: &HashMap<Digest, String>,
    progress: &dyn Progress,
) -> Result<PushReport, RegistryError> {
    let report = Mutex::new(PushReport::default());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    let workers = PARALLEL_UPLOADS.min(blobs.len()).max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= blobs.len() || failed.load(Ordering::Relaxed) {
                    return;
                }
                let blob = blobs[i];
                match upload_blob(client, repository, blob, mount_source(mount_from, repository, blob), progress) {
                    Ok((outcome, sent)) => {
                        let mut report = report.lock().expect("report lock");
                        report.bytes_sent += sent;
                        match outcome {
                            BlobOutcome::Pushed => report.pushed += 1,
                            BlobOutcome::Exists => report.existing += 1,
                            BlobOutcome::Mounted => report.mounted += 1,
                        }
                    }
                    Err(error) => {
                        failed.store(true, Ordering::Relaxed);
                        first_error.lock().expect("error lock").get_or_insert(error);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().expect("error lock") {
        Some(error) => Err(error),
        None => Ok(report.into_inner().expect("report lock")),
    }
}

/// The other repository of this registry to mount `blob` from, if any.
fn mount_source<'a>(mount_from: &'a HashMap<Digest, String>, repository: &str, blob: &Blob) -> Option<&'a str> {
    mount_from.get(&blob.digest).filter(|from| from.as_str() != repository).map(String::as_str)
}

fn label(blob: &Blob) -> &'static str {
    match blob.media_type.as_str() {
        CONFIG_MEDIA_TYPE => "config",
        MANIFEST_MEDIA_TYPE | INDEX_MEDIA_TYPE => "manifest",
        _ => "layer",
    }
}

fn upload_blob(
    client: &Client,
    repository: &str,
    blob: &Blob,
    mount_from: Option<&str>,
    progress: &dyn Progress,
) -> Result<(BlobOutcome, u64), RegistryError> {
    let handle = progress.start(&blob.digest, blob.size, label(blob));
    let sent = Arc::new(AtomicU64::new(0));
    let outcome = client.with_retries(&format!("uploading {}", blob.digest), || {
        handle.restart();
        sent.store(0, Ordering::Relaxed);
        try_upload(client, repository, blob, mount_from, &handle, &sent)
    })?;
    handle.finish(outcome.as_str());
    Ok((outcome, sent.load(Ordering::Relaxed)))
}

fn try_upload(
    client: &Client,
    repository: &str,
    blob: &Blob,
    mount_from: Option<&str>,
    handle: &Arc<dyn BlobProgress>,
    sent: &Arc<AtomicU64>,
) -> Result<BlobOutcome, RegistryError> {
    let digest = blob.digest.to_string();
    let head_url = client.url(&format!("v2/{repository}/blobs/{digest}"));
    let response = client.send(Method::HEAD, &head_url, &|r| Ok(r))?;
    match response.status() {
        StatusCode::OK => {
            let length = response.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
            if length.is_none_or(|l| l == blob.size) {
                return Ok(BlobOutcome::Exists);
            }
        }
        StatusCode::NOT_FOUND => {}
        _ => return Err(status_error(&Method::HEAD, &head_url, response)),
    }

    let (location, min_chunk) = match start_upload(client, repository, &digest, mount_from)? {
        Started::Mounted => return Ok(BlobOutcome::Mounted),
        Started::Upload { location, min_chunk } => (location, min_chunk),
    };
    // Not mounted (refused, or nowhere to mount from): a blob still in its registry is fetched
    // now, so that a failed fetch is reported as such, not as a failed upload.
    if blob.remote().is_some() {
        blob.local_file().map_err(|e| super::lazy::registry_error(e, blob))?;
    }
    if min_chunk.is_none() {
        let mut put_url = location.clone();
        put_url.query_pairs_mut().append_pair("digest", &digest);
        let response = client.send(Method::PUT, &put_url, &|r| {
            let reader = Counting { inner: open(blob, 0)?, handle: Arc::clone(handle), sent: Arc::clone(sent) };
            Ok(r.header(CONTENT_TYPE, "application/octet-stream").header(CONTENT_LENGTH, blob.size).body(Body::sized(reader, blob.size)))
        })?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK | StatusCode::NO_CONTENT => {
                check_digest(&response, &blob.digest, &format!("PUT {}", redact_url(&put_url)))?;
                return Ok(BlobOutcome::Pushed);
            }
            // Too big for one request (a proxy's body limit): start over in chunks.
            StatusCode::PAYLOAD_TOO_LARGE => {}
            _ => return Err(status_error(&Method::PUT, &put_url, response)),
        }
        handle.restart();
        sent.store(0, Ordering::Relaxed);
    }
    let (location, min_chunk) = match min_chunk {
        Some(min) => (location, min),
        None => match start_upload(client, repository, &digest, None)? {
            Started::Upload { location, min_chunk } => (location, min_chunk.unwrap_or(0)),
            Started::Mounted => return Ok(BlobOutcome::Mounted),
        },
    };
    upload_chunks(client, blob, location, CHUNK_SIZE.max(min_chunk), handle, sent)?;
    Ok(BlobOutcome::Pushed)
}

enum Started {
    Mounted,
    Upload { location: Url, min_chunk: Option<u64> },
}

/// POST an upload session, or a mount from another repository (201 mounted, 202 upload instead;
/// a refusal of the mount, an upload without it).
fn start_upload(client: &Client, repository: &str, digest: &str, mount_from: Option<&str>) -> Result<Started, RegistryError> {
    let mut url = client.url(&format!("v2/{repository}/blobs/uploads/"));
    if let Some(from) = mount_from {
        url.query_pairs_mut().append_pair("mount", digest).append_pair("from", from);
    }
    // A mount the registry will not do (a token without pull on the source, no mounts at all) is
    // an upload instead, as go-containerregistry does; 202 is that already.
    let response = match client.send(Method::POST, &url, &|r| Ok(r.header(CONTENT_LENGTH, 0))) {
        Err(RegistryError::Refused { .. } | RegistryError::NoCredentials { .. }) if mount_from.is_some() => {
            return start_upload(client, repository, digest, None)
        }
        response => response?,
    };
    match response.status() {
        StatusCode::CREATED if mount_from.is_some() => Ok(Started::Mounted),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED
            if mount_from.is_some() =>
        {
            start_upload(client, repository, digest, None)
        }
        StatusCode::ACCEPTED => {
            let location = location(client, &response, &url)?;
            let min_chunk = response.headers().get(CHUNK_MIN_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
            Ok(Started::Upload { location, min_chunk })
        }
        _ => Err(status_error(&Method::POST, &url, response)),
    }
}

fn upload_chunks(
    client: &Client,
    blob: &Blob,
    mut location: Url,
    chunk: u64,
    handle: &Arc<dyn BlobProgress>,
    sent: &Arc<AtomicU64>,
) -> Result<(), RegistryError> {
    let mut offset = 0;
    while offset < blob.size {
        let length = chunk.min(blob.size - offset);
        let response = client.send(Method::PATCH, &location, &|r| {
            let reader = Counting { inner: Box::new(open(blob, offset)?.take(length)), handle: Arc::clone(handle), sent: Arc::clone(sent) };
            Ok(r.header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, length)
                .header(CONTENT_RANGE, format!("{offset}-{}", offset + length - 1))
                .body(Body::sized(reader, length)))
        })?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(status_error(&Method::PATCH, &location, response));
        }
        location = self::location(client, &response, &location)?;
        offset += length;
    }
    let mut put_url = location;
    put_url.query_pairs_mut().append_pair("digest", &blob.digest.to_string());
    let response = client.send(Method::PUT, &put_url, &|r| Ok(r.header(CONTENT_LENGTH, 0)))?;
    match response.status() {
        StatusCode::CREATED | StatusCode::OK | StatusCode::NO_CONTENT => {
            check_digest(&response, &blob.digest, &format!("PUT {}", redact_url(&put_url)))
        }
        _ => Err(status_error(&Method::PUT, &put_url, response)),
    }
}

/// The `Location` of an upload, relative or absolute, with its query string kept.
fn location(client: &Client, response: &reqwest::blocking::Response, request_url: &Url) -> Result<Url, RegistryError> {
    let text = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| RegistryError::BadResponse {
        what: format!("POST {}", redact_url(request_url)),
        detail: "202 without a Location header".into(),
    })?;
    client
        .base()
        .join(text)
        .map_err(|e| RegistryError::BadResponse { what: format!("POST {}", redact_url(request_url)), detail: format!("bad Location: {e}") })
}

fn check_digest(response: &reqwest::blocking::Response, expected: &Digest, what: &str) -> Result<(), RegistryError> {
    match response.headers().get(DOCKER_CONTENT_DIGEST).and_then(|v| v.to_str().ok()) {
        Some(got) if got != expected.to_string() => Err(RegistryError::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            got: super::answers::registry_text(got),
        }),
        _ => Ok(()),
    }
}

fn open(blob: &Blob, offset: u64) -> Result<Box<dyn Read + Send>, RegistryError> {
    blob.open_at(offset).map_err(|source| match &blob.data {
        crate::image::BlobData::File(path) => RegistryError::Read { path: path.display().to_string(), what: "a blob", source },
        _ => super::lazy::registry_error(source, blob),
    })
}

/// Whether `tag` (or a digest) already points at `root` (then there is nothing to write).
fn tag_points_to(client: &Client, repository: &str, tag: &str, root: &Blob) -> Result<bool, RegistryError> {
    Ok(current_digest(client, repository, tag)?.as_deref() == Some(root.digest.to_string().as_str()))
}

/// The digest `tag` (or a digest) names in the registry now, from one manifest HEAD.
fn current_digest(client: &Client, repository: &str, tag: &str) -> Result<Option<String>, RegistryError> {
    let url = client.url(&format!("v2/{repository}/manifests/{tag}"));
    let response = client.with_retries("checking the tag", || {
        let response = client.send(Method::HEAD, &url, &|r| Ok(r.header(ACCEPT, super::pull::accept_manifests())))?;
        if response.status().is_server_error() || response.status() == StatusCode::TOO_MANY_REQUESTS {
            return Err(status_error(&Method::HEAD, &url, response));
        }
        Ok(response)
    })?;
    let current = response.headers().get(DOCKER_CONTENT_DIGEST).and_then(|v| v.to_str().ok());
    Ok(current.filter(|_| response.status() == StatusCode::OK).map(str::to_string))
}

fn put_manifest(client: &Client, repository: &str, reference: &str, manifest: &Blob) -> Result<(), RegistryError> {
    let url = client.url(&format!("v2/{repository}/manifests/{reference}"));
    let bytes = crate::image::blob::read_all(manifest).map_err(|source| RegistryError::Read {
        path: manifest.digest.to_string(),
        what: "a manifest",
        source,
    })?;
    client.with_retries(&format!("writing manifest {reference}"), || {
        let response = client.send(Method::PUT, &url, &|r| Ok(r.header(CONTENT_TYPE, manifest.media_type.as_str()).body(bytes.clone())))?;
        match response.status() {
            StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => {
                check_digest(&response, &manifest.digest, &format!("PUT {}", redact_url(&url)))
            }
            _ => Err(status_error(&Method::PUT, &url, response)),
        }
    })
}

/// Counts bytes as the HTTP client reads the body, for progress and the report.
struct Counting {
    inner: Box<dyn Read + Send>,
    handle: Arc<dyn BlobProgress>,
    sent: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.handle.advance(n as u64);
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Pushes attached artifacts (SBOMs, signatures, attestations): their blobs, then each artifact
/// manifest by digest, and under its own tags. Where
/// the registry does not answer with `OCI-Subject` (no referrers API, as distribution 2.8), the
/// referrers tag `sha256-<subject hex>` is updated with an index listing them, merged with what the
/// tag already lists.
pub(crate) fn push_referrers(
    client: &Client,
    repository: &str,
    attachments: &[crate::image::referrers::Attachment],
    mount_from: &HashMap<Digest, String>,
    progress: &dyn Progress,
) -> Result<(), RegistryError> {
    use crate::image::referrers::{fallback_tag, referrers_index};
    let mut needs_fallback: Vec<&crate::image::referrers::Attachment> = Vec::new();
    for attachment in attachments {
        // Already there (a re-push): its blobs and its place in the referrers tag came with it.
        if tag_points_to(client, repository, &attachment.manifest.digest.to_string(), &attachment.manifest)? {
            continue;
        }
        for blob in &attachment.blobs {
            upload_blob(client, repository, blob, mount_source(mount_from, repository, blob), progress)?;
        }
        let reference = attachment.manifest.digest.to_string();
        let url = client.url(&format!("v2/{repository}/manifests/{reference}"));
        let bytes = crate::image::blob::read_all(&attachment.manifest).map_err(|source| RegistryError::Read {
            path: reference.clone(),
            what: "a manifest",
            source,
        })?;
        let supports_referrers = client.with_retries(&format!("writing manifest {reference}"), || {
            let response = client
                .send(Method::PUT, &url, &|r| Ok(r.header(CONTENT_TYPE, attachment.manifest.media_type.as_str()).body(bytes.clone())))?;
            match response.status() {
                StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => Ok(response.headers().contains_key("oci-subject")),
                _ => Err(status_error(&Method::PUT, &url, response)),
            }
        })?;
        if !supports_referrers {
            needs_fallback.push(attachment);
        }
        // cosign's tags (`sha256-<hex>.sig`, `.att`) point at the same manifest, or at one that
        // keeps what the tag already held beside it.
        for tag in &attachment.tags {
            let existing = super::pull::get_manifest(client, repository, tag, None)?;
            let merged = match (attachment.merge, existing) {
                (Some(merge), Some(existing)) if existing.blob.digest != attachment.manifest.digest => {
                    merge(existing.blob.bytes().expect("a manifest is read into memory"), attachment)
                }
                _ => None,
            };
            match merged {
                Some(merged) => {
                    for blob in &merged.blobs {
                        upload_blob(client, repository, blob, None, progress)?;
                    }
                    put_manifest(client, repository, tag, &merged.manifest)?;
                }
                None => put_manifest(client, repository, tag, &attachment.manifest)?,
            }
        }
    }
    let mut subjects: Vec<&Digest> = needs_fallback.iter().map(|a| &a.subject.digest).collect();
    subjects.sort();
    subjects.dedup();
    for subject in subjects {
        let tag = fallback_tag(subject);
        let url = client.url(&format!("v2/{repository}/manifests/{tag}"));
        let existing = client.with_retries("reading the referrers tag", || {
            let response = client.send(Method::GET, &url, &|r| Ok(r.header(ACCEPT, INDEX_MEDIA_TYPE)))?;
            match response.status() {
                StatusCode::OK => Ok(Some(
                    super::answers::read_capped(response, MAX_MANIFEST_BODY)
                        .map_err(|e| client.read_error(&Method::GET, &url, &e))?
                        .ok_or_else(|| RegistryError::TooLarge {
                            what: format!("GET {}", redact_url(&url)),
                            limit_mib: mib(MAX_MANIFEST_BODY),
                        })?,
                )),
                StatusCode::NOT_FOUND => Ok(None),
                _ => Err(status_error(&Method::GET, &url, response)),
            }
        })?;
        let for_subject: Vec<&crate::image::referrers::Attachment> =
            needs_fallback.iter().copied().filter(|a| &a.subject.digest == subject).collect();
        let index = referrers_index(existing.as_deref(), &for_subject);
        put_manifest(client, repository, &tag, &index)?;
    }
    Ok(())
}

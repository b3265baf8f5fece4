//! Reading from a registry, as little as checking signatures needs: a manifest or index by tag or
//! digest (with the `Accept` of every OCI and Docker type), a small blob by digest, and the
//! referrers of a digest (the referrers API, or `None` where the registry has none, so that the
//! caller reads the `sha256-<hex>` tag). Every body is capped and checked against its digest;
//! authentication, retries and redaction are the [`Client`]'s.

use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};

use super::answers::{mib, read_capped, MAX_MANIFEST_BODY};
use super::client::{status_error, Client};
use super::error::{redact_url, RegistryError};
use crate::image::Digest;

/// Every manifest and index type a tag may point at.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// A manifest as the registry served it: its exact bytes and their digest.
pub(crate) struct Fetched {
    pub(crate) bytes: Vec<u8>,
    pub(crate) digest: Digest,
}

/// GET `reference` (a tag or a digest) in `repository`; `None` when the registry has no such
/// manifest. A manifest asked for by digest must hash to it.
pub(crate) fn manifest(client: &Client, repository: &str, reference: &str) -> Result<Option<Fetched>, RegistryError> {
    let url = client.url(&format!("v2/{repository}/manifests/{reference}"));
    let what = || format!("GET {}", redact_url(&url));
    let fetched = client.with_retries(&format!("reading manifest {reference}"), || {
        let response = client.send(Method::GET, &url, &|r| Ok(r.header(ACCEPT, MANIFEST_ACCEPT)))?;
        match response.status() {
            StatusCode::OK => Ok(Some(
                read_capped(response, MAX_MANIFEST_BODY)
                    .map_err(|e| client.read_error(&Method::GET, &url, &e))?
                    .ok_or_else(|| RegistryError::TooLarge { what: what(), limit_mib: mib(MAX_MANIFEST_BODY) })?,
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(&Method::GET, &url, response)),
        }
    })?;
    let Some(bytes) = fetched else { return Ok(None) };
    let digest = Digest::of(&bytes);
    if reference.starts_with("sha256:") && reference != digest.to_string() {
        return Err(RegistryError::DigestMismatch { what: what(), expected: reference.to_string(), got: digest.to_string() });
    }
    Ok(Some(Fetched { bytes, digest }))
}

/// GET a blob of at most `cap` bytes, checked against its digest.
pub(crate) fn blob(client: &Client, repository: &str, digest: &Digest, cap: u64) -> Result<Vec<u8>, RegistryError> {
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

/// The referrers index of `subject` from the referrers API; `None` where the registry has no
/// such API (404), for the caller to read the `sha256-<hex>` tag instead.
pub(crate) fn referrers(client: &Client, repository: &str, subject: &Digest) -> Result<Option<Vec<u8>>, RegistryError> {
    let url = client.url(&format!("v2/{repository}/referrers/{subject}"));
    let what = || format!("GET {}", redact_url(&url));
    client.with_retries("reading the referrers", || {
        let response = client.send(Method::GET, &url, &|r| Ok(r.header(ACCEPT, "application/vnd.oci.image.index.v1+json")))?;
        match response.status() {
            StatusCode::OK => {
                let is_index = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|t| t.starts_with("application/vnd.oci.image.index.v1+json"));
                if !is_index {
                    // Some registries answer an unknown path with a page of their own.
                    return Ok(None);
                }
                let bytes = read_capped(response, MAX_MANIFEST_BODY)
                    .map_err(|e| client.read_error(&Method::GET, &url, &e))?
                    .ok_or_else(|| RegistryError::TooLarge { what: what(), limit_mib: mib(MAX_MANIFEST_BODY) })?;
                Ok(Some(bytes))
            }
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => Ok(None),
            _ => Err(status_error(&Method::GET, &url, response)),
        }
    })
}

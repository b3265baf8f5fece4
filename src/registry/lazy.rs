//! Lazy pulls: an image read from a registry as its manifests only, its content blobs left where
//! they are until a destination needs them ([`RemoteBlob`]). A push to another repository of the
//! same registry then mounts each of them (`POST …/blobs/uploads/?mount=DIGEST&from=REPO`): no
//! byte of a layer is downloaded or uploaded. Any other destination fetches each blob once, on
//! first use, through the pull protocol ([`super::pull`]): the layer cache first, else a
//! download streamed to a file, resumed on a dropped connection and checked against its digest,
//! then kept in the cache.
//!
//! Owns the bridge from [`crate::image::blob::Fetch`] to the pull protocol, and nothing more: when
//! to mount is the registry destination's choice.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::progress::Progress;
use super::pull::{self, BlobStore, Wanted};
use super::{Client, RegistryError};
use crate::image::blob::{Fetch, RemoteBlob};
use crate::image::cache::LayerCache;
use crate::image::stored::StoredImage;
use crate::image::{Blob, BlobData, Digest, Staging};

/// Blobs fetched at once by [`fetch_all`].
const PARALLEL_FETCHES: usize = 4;

/// Where the blobs of one lazily read image come from, and where fetched ones go.
struct Origin {
    client: Client,
    repository: String,
    staging: Staging,
    cache: Option<LayerCache>,
    progress: Box<dyn Progress + Send>,
}

impl Fetch for Origin {
    fn fetch(&self, media_type: &str, digest: &Digest, size: u64) -> io::Result<PathBuf> {
        let wanted = Wanted { media_type: media_type.to_string(), digest: *digest, size };
        let store = BlobStore { staging: &self.staging, cache: self.cache.as_ref() };
        pull::fetch_one(&self.client, &self.repository, &wanted, &store, self.progress.as_ref()).map_err(io::Error::other)
    }
}

/// Reads the image `reference` (a tag, or a digest also given as `expected`) of `repository`,
/// every manifest and referrer checked ([`pull::list`]), but fetches no content blob: each is
/// a [`RemoteBlob`] of this registry and repository. `staging` and `cache` receive the blobs
/// fetched later; the client is kept for that.
pub(crate) fn pull_lazily(
    client: Client,
    repository: &str,
    reference: &str,
    expected: Option<&Digest>,
    staging: Staging,
    cache: Option<LayerCache>,
    progress: Box<dyn Progress + Send>,
) -> Result<StoredImage, RegistryError> {
    let listing = pull::list(&client, repository, reference, expected)?;
    let registry = client.registry.to_string();
    let origin: Arc<dyn Fetch> = Arc::new(Origin { client, repository: repository.to_string(), staging, cache, progress });
    let blobs = listing
        .wanted
        .iter()
        .map(|w| Blob {
            media_type: w.media_type.clone(),
            digest: w.digest,
            size: w.size,
            data: BlobData::Remote(Arc::new(RemoteBlob::new(registry.clone(), repository.to_string(), Arc::clone(&origin)))),
        })
        .collect();
    Ok(listing.into_image(blobs))
}

/// Fetches every blob of `image` still in its registry (the referrers' included), four at a time,
/// for a destination that needs all their bytes.
pub(crate) fn fetch_all(image: &StoredImage) -> Result<(), RegistryError> {
    let referrer_blobs = image.referrers.iter().flat_map(|a| a.blobs.iter());
    fetch_blobs(image.blobs.iter().chain(referrer_blobs))
}

/// Fetches those of `blobs` still in their registry (each once), four at a time. Blobs in memory
/// or in files are left as they are.
pub(crate) fn fetch_blobs<'a>(blobs: impl IntoIterator<Item = &'a Blob>) -> Result<(), RegistryError> {
    let mut remote: Vec<&Blob> = Vec::new();
    for blob in blobs {
        if blob.remote().is_some_and(|r| !r.is_fetched()) && !remote.iter().any(|b| b.digest == blob.digest) {
            remote.push(blob);
        }
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_FETCHES.min(remote.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= remote.len() || failed.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(error) = remote[i].local_file() {
                    failed.store(true, Ordering::Relaxed);
                    first_error.lock().expect("error lock").get_or_insert(registry_error(error, remote[i]));
                    return;
                }
            });
        }
    });
    match first_error.into_inner().expect("error lock") {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// The registry client's error a failed fetch carries, else the I/O error on `blob`.
pub(crate) fn registry_error(error: io::Error, blob: &Blob) -> RegistryError {
    if error.get_ref().is_some_and(|inner| inner.is::<RegistryError>()) {
        if let Some(Ok(inner)) = error.into_inner().map(|inner| inner.downcast::<RegistryError>()) {
            return *inner;
        }
        unreachable!("checked to be a registry error");
    }
    RegistryError::Read { path: blob.digest.to_string(), what: "a blob", source: error }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Refuses;

    impl Fetch for Refuses {
        fn fetch(&self, _: &str, digest: &Digest, _: u64) -> io::Result<PathBuf> {
            Err(io::Error::other(RegistryError::NotFound { reference: format!("h/r@{digest}") }))
        }
    }

    #[test]
    fn a_fetch_error_comes_back_as_the_registry_error() {
        let digest = Digest::of(b"x");
        let blob = Blob {
            media_type: "m".into(),
            digest,
            size: 1,
            data: BlobData::Remote(Arc::new(RemoteBlob::new("h".into(), "r".into(), Arc::new(Refuses)))),
        };
        let error = registry_error(blob.open().err().expect("refused"), &blob);
        assert!(matches!(error, RegistryError::NotFound { reference } if reference == format!("h/r@{digest}")));
        let other = registry_error(io::Error::new(io::ErrorKind::NotFound, "gone"), &blob);
        assert!(matches!(other, RegistryError::Read { .. }));
    }
}

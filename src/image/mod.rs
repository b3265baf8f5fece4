//! Images: layers (tar, compression, digests), the config, the manifest and, for several platforms,
//! the index.
//!
//! Owns turning planned file trees into blobs with digests. It must not know where the blobs go
//! (that is `dest`), nor where the files came from (that is `rootfs` and `elf`).

pub(crate) mod blob;
pub(crate) mod cache;
pub(crate) mod compress;
pub mod config;
mod deflate;
pub(crate) mod digest;
pub(crate) mod layer;
pub(crate) mod referrers;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub(crate) use blob::{Blob, BlobData};
pub(crate) use digest::Digest;
pub(crate) use layer::{Compression, Layer};

use crate::platform::Platform;

/// One platform's image.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    pub(crate) platform: Platform,
    pub(crate) manifest: Blob,
    pub(crate) config: Blob,
    pub(crate) layers: Vec<Layer>,
}

/// What a pack produces: one image, or an index of several platforms' images.
#[derive(Clone, Debug)]
pub(crate) enum ImageOrIndex {
    Image(Image),
    Index { index: Blob, images: Vec<Image> },
}

impl ImageOrIndex {
    /// The manifest or index that a tag points to.
    pub(crate) fn root(&self) -> &Blob {
        match self {
            ImageOrIndex::Image(image) => &image.manifest,
            ImageOrIndex::Index { index, .. } => index,
        }
    }

    pub(crate) fn images(&self) -> &[Image] {
        match self {
            ImageOrIndex::Image(image) => std::slice::from_ref(image),
            ImageOrIndex::Index { images, .. } => images,
        }
    }

    /// Every blob once, each after the blobs it references: layers and configs, then manifests,
    /// then the index. This is the order in which a registry must receive them.
    pub(crate) fn blobs_in_upload_order(&self) -> Vec<&Blob> {
        let mut seen = std::collections::HashSet::new();
        let mut blobs = Vec::new();
        let images = self.images();
        let content = images.iter().flat_map(|image| image.layers.iter().map(|l| &l.blob).chain([&image.config]));
        for blob in content.chain(images.iter().map(|image| &image.manifest)) {
            if seen.insert(blob.digest) {
                blobs.push(blob);
            }
        }
        if let ImageOrIndex::Index { index, .. } = self {
            blobs.push(index);
        }
        blobs
    }

    /// Total bytes of every distinct blob: what a registry stores for it.
    pub(crate) fn total_size(&self) -> u64 {
        self.blobs_in_upload_order().iter().map(|b| b.size).sum()
    }
}

/// A private temporary folder for layers while they are written; removed when dropped.
pub(crate) struct Staging {
    // Declared first: unregistered before the folder is removed.
    _guard: crate::cleanup::Guard,
    dir: tempfile::TempDir,
    next: AtomicUsize,
}

impl Staging {
    /// A staging folder beside `destination` (a folder that exists), so that publishing there is a
    /// hard link instead of a copy; in the system's temporary folder when that cannot be made.
    pub(crate) fn near(destination: Option<&std::path::Path>) -> std::io::Result<Self> {
        let beside = destination.and_then(|folder| tempfile::Builder::new().prefix(".scratchpack-").tempdir_in(folder).ok());
        let dir = match beside {
            Some(dir) => dir,
            None => tempfile::Builder::new().prefix("scratchpack-").tempdir()?,
        };
        Ok(Staging { _guard: crate::cleanup::register(dir.path()), dir, next: AtomicUsize::new(0) })
    }

    /// A new file name inside the staging folder.
    pub(crate) fn next_file(&self) -> PathBuf {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("layer-{n}"))
    }
}

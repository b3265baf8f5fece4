//! The OCI image layout (image-spec `image-layout.md`): a folder holding `oci-layout`, `index.json`
//! and `blobs/sha256/<hex>`. Reading ([`read`]) and writing ([`write`]) sit side by side, as in
//! go-containerregistry's `layout` package, so the format's names are known in one place.
//!
//! Owns the folder format, the tag annotation and the index entries. It knows blobs by digest,
//! size and media type; it never knows how layers are made, nor where else an image goes.

pub(crate) mod read;
pub(crate) mod write;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::atomic::FileError;
use crate::image::config::INDEX_MEDIA_TYPE;
use crate::image::{Blob, Digest};

/// The annotation of an `index.json` entry that names its tag.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The file that marks a folder as a layout, and its content.
pub(crate) const LAYOUT_FILE: &str = "oci-layout";
pub(crate) const LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
pub(crate) const INDEX_FILE: &str = "index.json";
/// Where blobs live, relative to the layout's folder.
pub(crate) const BLOB_FOLDER: &str = "blobs/sha256";

/// `DIR/blobs/sha256/<hex>`.
pub(crate) fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join(BLOB_FOLDER).join(digest.hex())
}

/// The `index.json` entry that tags `root`.
pub(crate) fn index_entry(root: &Blob, tag: &str) -> Value {
    json!({
        "mediaType": root.media_type,
        "digest": root.digest.to_string(),
        "size": root.size,
        "annotations": { REF_NAME: tag },
    })
}

/// An `index.json` holding `manifests`.
pub(crate) fn index_document(manifests: Vec<Value>) -> Value {
    json!({"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests})
}

/// The tag an `index.json` entry carries, if any.
pub(crate) fn entry_tag(entry: &Value) -> Option<&str> {
    entry["annotations"][REF_NAME].as_str()
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LayoutError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{}: not an OCI image layout ({reason})", path.display())]
    NotALayout { path: PathBuf, reason: String },
}

impl LayoutError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            LayoutError::NotALayout { .. } => Some("write to an empty or new folder, or to an existing layout made by an OCI tool".into()),
            LayoutError::File(_) => None,
        }
    }
}

//! The OCI image layout (image-spec `image-layout.md`): a folder holding `oci-layout`, `index.json`
//! and `blobs/sha256/<hex>`. Reading ([`read`]) and writing ([`write`]) sit side by side, as in
//! go-containerregistry's `layout` package, so the format's names are known in one place.
//!
//! Owns the folder format, the tag annotation and the index entries. It knows blobs by digest,
//! size and media type; it never knows how layers are made, nor where else an image goes.

pub(crate) mod read;
pub(crate) mod write;

use std::io::Read;
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

/// The most a manifest, an index or `index.json` may hold.
pub(crate) const MAX_DOCUMENT: u64 = 8 << 20;

/// A layout's document (`oci-layout`, `index.json`, a manifest or index), read without following a
/// link and no further than [`MAX_DOCUMENT`].
pub(crate) fn read_document(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    crate::image::blob::open_file(path)?.take(MAX_DOCUMENT).read_to_end(&mut bytes)?;
    Ok(bytes)
}

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
    #[error("{}: is a symbolic link; the folders and files of an OCI layout must be real ones, never links", path.display())]
    Link { path: PathBuf },
    #[error("{}: is not a regular file; the layout is damaged", path.display())]
    NotAFile { path: PathBuf },
    #[error("{}: blob {digest} {reason}; the layout is damaged", dir.display())]
    Damaged { dir: PathBuf, digest: Digest, reason: String },
}

impl LayoutError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            LayoutError::NotALayout { .. } => Some("write to an empty or new folder, or to an existing layout made by an OCI tool".into()),
            LayoutError::Link { .. } => Some("replace the link with the folder or file it points to, or use a new layout folder".into()),
            LayoutError::NotAFile { .. } => Some("replace it with a regular file, or use a new layout folder".into()),
            LayoutError::Damaged { .. } => Some(
                "pack the image again into this layout (a pack replaces a damaged blob), or into a new one, and push from there".into(),
            ),
            LayoutError::File(error) => error.hint(),
        }
    }
}

/// Refuses a layout whose `blobs` or `blobs/sha256` folder, `index.json` or `oci-layout` is a
/// symbolic link (or, for the files, anything but a regular file): a link would make reads and
/// writes reach outside the layout. What does not exist yet is fine.
pub(crate) fn check_no_links(dir: &Path) -> Result<(), LayoutError> {
    for (name, folder) in [("blobs", true), (BLOB_FOLDER, true), (INDEX_FILE, false), (LAYOUT_FILE, false)] {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(LayoutError::Link { path }),
            Ok(meta) if !folder && !meta.is_file() => return Err(LayoutError::NotAFile { path }),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FileError::at(path, "cannot read")(e).into()),
        }
    }
    Ok(())
}

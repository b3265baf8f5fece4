//! Layers that ship inside the executable: the default base layer and the built-in zoneinfo layer,
//! gzip and zstd, compressed when scratchpack was released (`shipped-layers/`). A pack on a fresh
//! machine, with no layer cache, then compresses only what is its own: the program, its libraries,
//! its `--add` files.
//!
//! Owns those bytes and the digests they are checked against (`shipped-layers/layers.rs`, made by
//! `scripts/update-shipped-layers.sh`). A shipped layer is used only for a tree whose inputs are
//! exactly the ones it was made from, so the image is byte for byte what compressing would give;
//! the unit test below writes each tree again and compares. It must not decide what goes into a
//! layer (that is `rootfs`) or where layers are kept between packs (that is `cache`).

use std::path::Path;

use super::blob::{Blob, BlobData};
use super::digest::Digest;
use super::layer::{self, Compression, Layer, LayerError};
use crate::rootfs::FileTree;

/// The first identity line of a shipped layer's inputs: bump it when the key changes.
const IDENTITY: &str = "scratchpack shipped layer 1";

/// One shipped layer: what it was made from and what it is.
struct Shipped {
    compression: Compression,
    /// [`layer::inputs_key`] of the tree it was made from, with [`IDENTITY`].
    inputs: &'static str,
    digest: &'static str,
    diff_id: &'static str,
    uncompressed_size: u64,
    bytes: &'static [u8],
}

include!("../../shipped-layers/layers.rs");

/// The shipped layer of `tree`, written to `staging_file`, when one was made from exactly these
/// inputs; `None` otherwise (the caller compresses the tree). A shipped blob that does not match its
/// digest is never used.
pub(crate) fn layer(tree: &FileTree, compression: Compression, mtime: u64, staging_file: &Path) -> Option<Result<Layer, LayerError>> {
    let inputs = layer::inputs_key(&[IDENTITY], tree, compression, mtime)?;
    let shipped = SHIPPED.iter().find(|shipped| shipped.compression == compression && shipped.inputs == inputs)?;
    let digest = Digest::parse(shipped.digest).ok().filter(|digest| *digest == Digest::of(shipped.bytes))?;
    let diff_id = Digest::parse(shipped.diff_id).ok()?;
    if let Err(source) = std::fs::write(staging_file, shipped.bytes) {
        return Some(Err(LayerError::Write { path: staging_file.to_path_buf(), source }));
    }
    Some(Ok(Layer {
        blob: Blob {
            media_type: compression.media_type().to_string(),
            digest,
            size: shipped.bytes.len() as u64,
            data: BlobData::File(staging_file.to_path_buf()),
        },
        diff_id,
        uncompressed_size: shipped.uncompressed_size,
        compression: Some(compression),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trees that ship, by name: the base layer of the default options, and the built-in zones.
    fn shipped_trees() -> Vec<(&'static str, FileTree)> {
        let base = crate::rootfs::base::plan(&Default::default()).expect("the default base needs no host file");
        vec![("base", base.tree), ("zoneinfo", crate::rootfs::zoneinfo::builtin_tree())]
    }

    const COMPRESSIONS: [(Compression, &str); 2] = [(Compression::Gzip, "tar.gz"), (Compression::Zstd, "tar.zst")];

    /// Each shipped tree, compressed now, in the order of `shipped-layers/layers.rs`.
    fn made_now(dir: &Path) -> Vec<(String, Compression, &'static str, String, Layer)> {
        let mut made = Vec::new();
        for (name, tree) in shipped_trees() {
            for (compression, extension) in COMPRESSIONS {
                let file = dir.join(format!("{name}.{extension}"));
                let inputs = layer::inputs_key(&[IDENTITY], &tree, compression, 0).expect("no host files");
                let written = layer::write_layer(&tree, compression, 0, &file).unwrap();
                made.push((format!("{name}.{extension}"), compression, name, inputs, written));
            }
        }
        made
    }

    /// `scripts/update-shipped-layers.sh` runs this with `SCRATCHPACK_UPDATE_SHIPPED_LAYERS=1`:
    /// it then writes `shipped-layers/` anew instead of comparing.
    #[test]
    fn the_shipped_layers_are_what_the_source_makes() {
        let dir = tempfile::tempdir().unwrap();
        let made = made_now(dir.path());
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("shipped-layers");
        if std::env::var_os("SCRATCHPACK_UPDATE_SHIPPED_LAYERS").is_some() {
            write_shipped(&folder, dir.path(), &made);
            return;
        }
        assert_eq!(SHIPPED.len(), made.len(), "run scripts/update-shipped-layers.sh");
        for ((file, compression, name, inputs, written), shipped) in made.iter().zip(SHIPPED) {
            let what = format!("shipped-layers/{file} is stale: run scripts/update-shipped-layers.sh");
            assert_eq!((shipped.compression, shipped.inputs), (*compression, inputs.as_str()), "{what} ({name})");
            assert_eq!(std::fs::read(dir.path().join(file)).unwrap(), shipped.bytes, "{what}");
            assert_eq!(shipped.digest, written.blob.digest.to_string(), "{what}");
            assert_eq!(shipped.diff_id, written.diff_id.to_string(), "{what}");
            assert_eq!(shipped.uncompressed_size, written.uncompressed_size, "{what}");
        }
    }

    fn write_shipped(folder: &Path, made_in: &Path, made: &[(String, Compression, &'static str, String, Layer)]) {
        let mut table = String::from(
            "// Made by scripts/update-shipped-layers.sh from the source's base and zoneinfo trees; do not edit.\n\
             // src/image/shipped.rs checks every blob against its digest before it is used.\n\
             const SHIPPED: &[Shipped] = &[\n",
        );
        for (file, compression, name, inputs, written) in made {
            std::fs::copy(made_in.join(file), folder.join(file)).unwrap();
            table.push_str(&format!(
                "    Shipped {{\n        // {name}\n        compression: Compression::{compression:?},\n        \
                 inputs: {inputs:?},\n        digest: \"{}\",\n        diff_id: \"{}\",\n        uncompressed_size: {},\n        \
                 bytes: include_bytes!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/shipped-layers/{file}\")),\n    }},\n",
                written.blob.digest, written.diff_id, written.uncompressed_size
            ));
        }
        table.push_str("];\n");
        std::fs::write(folder.join("layers.rs"), table).unwrap();
    }

    #[test]
    fn a_tree_that_differs_in_anything_gets_no_shipped_layer() {
        let dir = tempfile::tempdir().unwrap();
        let (_, base) = shipped_trees().remove(0);
        let shipped = layer(&base, Compression::Gzip, 0, &dir.path().join("a")).expect("the default base ships").unwrap();
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), SHIPPED[0].bytes);
        assert_eq!(shipped.blob.digest.to_string(), SHIPPED[0].digest);
        // Another mtime (SOURCE_DATE_EPOCH on a shared layer), or one file more: compressed anew.
        assert!(layer(&base, Compression::Gzip, 1, &dir.path().join("b")).is_none());
        let mut other = base.clone();
        let bytes = crate::rootfs::Content::Bytes(std::sync::Arc::from(&b"x"[..]));
        other.add_file("etc/extra", bytes, 0o644, 0, 0).unwrap();
        assert!(layer(&other, Compression::Gzip, 0, &dir.path().join("c")).is_none());
    }
}

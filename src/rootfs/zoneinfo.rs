//! The built-in time zones: the IANA database compiled to TZif, vendored in `tzdata/zoneinfo` from
//! the PyPI `tzdata` package (see `tzdata/README.md`) and embedded at build time. Owns the tree of
//! the built-in zoneinfo layer: byte-identical on every machine, whatever the host holds.

use std::sync::Arc;

use super::{Content, FileTree};

include!(concat!(env!("OUT_DIR"), "/zoneinfo.rs"));

/// The IANA release of the built-in zones, as `2026f`.
pub(crate) const BUILTIN_TZDATA_VERSION: &str = include_str!("../../tzdata/VERSION");

/// The image folder the zones go into, without its leading `/`.
const ROOT: &str = "usr/share/zoneinfo";

/// The IANA release of the built-in zones, trimmed.
pub(crate) fn builtin_version() -> &'static str {
    BUILTIN_TZDATA_VERSION.trim()
}

/// The built-in zones at `/usr/share/zoneinfo`: every vendored file (mode 0644, owner 0:0), every
/// alias a relative link to its zone, folders 0755.
pub(crate) fn builtin_tree() -> FileTree {
    let mut tree = FileTree::new();
    let mut planned = || {
        tree.add_dir("usr", 0o755, 0, 0)?;
        tree.add_dir("usr/share", 0o755, 0, 0)?;
        tree.add_dir(ROOT, 0o755, 0, 0)?;
        for (path, bytes) in FILES {
            tree.add_file(&format!("{ROOT}/{path}"), Content::Bytes(Arc::from(*bytes)), 0o644, 0, 0)?;
        }
        for (alias, zone) in LINKS {
            tree.add_symlink(&format!("{ROOT}/{alias}"), &relative_link(alias, zone))?;
        }
        Ok::<_, super::PathError>(())
    };
    planned().expect("the vendored zone names are valid image paths");
    tree
}

/// The target of a link at `alias` to `zone`, both relative to the zoneinfo folder, as `zic -l`
/// writes it: the folders they share left out, one `..` per folder of `alias` left.
fn relative_link(alias: &str, zone: &str) -> String {
    let alias_dirs: Vec<&str> = alias.split('/').collect::<Vec<_>>().split_last().map(|(_, dirs)| dirs.to_vec()).unwrap_or_default();
    let zone_parts: Vec<&str> = zone.split('/').collect();
    let shared = alias_dirs.iter().zip(&zone_parts).take_while(|(a, z)| a == z).count().min(zone_parts.len() - 1);
    let mut target: Vec<&str> = vec![".."; alias_dirs.len() - shared];
    target.extend(&zone_parts[shared..]);
    target.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::layer;
    use crate::image::Compression;
    use crate::rootfs::EntryKind;

    #[test]
    fn links_are_relative_as_zic_makes_them() {
        assert_eq!(relative_link("UTC", "Etc/UTC"), "Etc/UTC");
        assert_eq!(relative_link("US/Eastern", "America/New_York"), "../America/New_York");
        assert_eq!(relative_link("America/Argentina/ComodRivadavia", "America/Argentina/Catamarca"), "Catamarca");
        assert_eq!(relative_link("America/Indianapolis", "America/Indiana/Indianapolis"), "Indiana/Indianapolis");
        assert_eq!(relative_link("Etc/GMT0", "Etc/GMT"), "GMT");
        assert_eq!(relative_link("GMT", "Etc/GMT"), "Etc/GMT");
    }

    #[test]
    fn the_tree_holds_the_zones_and_links_but_no_duplicate_trees() {
        let tree = builtin_tree();
        let Some(crate::rootfs::Entry { kind: EntryKind::File(Content::Bytes(paris)), mode: 0o644, .. }) =
            tree.get("usr/share/zoneinfo/Europe/Paris")
        else {
            panic!("no Europe/Paris file");
        };
        assert!(paris.starts_with(b"TZif"));
        assert!(matches!(&tree.get("usr/share/zoneinfo/US/Eastern").unwrap().kind, EntryKind::Symlink(t) if t == "../America/New_York"));
        assert!(matches!(&tree.get("usr/share/zoneinfo/UTC").unwrap().kind, EntryKind::Symlink(t) if t == "Etc/UTC"));
        assert!(tree
            .iter()
            .all(|(path, _)| !path.starts_with("usr/share/zoneinfo/right") && !path.starts_with("usr/share/zoneinfo/posix")));
        // Every link lands on a file of the tree.
        for (alias, zone) in LINKS {
            assert!(tree.get(&format!("{ROOT}/{zone}")).is_some(), "{alias} -> {zone}");
        }
        assert_eq!(builtin_version(), "2026f");
    }

    /// The layer is the same bytes on every machine: a new release changes this digest on purpose.
    #[test]
    fn the_builtin_layer_is_a_golden_value() {
        let dir = tempfile::tempdir().unwrap();
        let gzip = layer::write_layer(&builtin_tree(), Compression::Gzip, 0, &dir.path().join("gz")).unwrap();
        let zstd = layer::write_layer(&builtin_tree(), Compression::Zstd, 0, &dir.path().join("zst")).unwrap();
        assert_eq!(gzip.diff_id.to_string(), "sha256:402a8388bcb6ba616973c8db2640366e31779330b50a7011a527ce12561b8ac1");
        assert_eq!(gzip.blob.digest.to_string(), "sha256:f3fa78ce1276e62011605fa0acd8795db57363104e1c93638ff8f2bf4a2b9956");
        assert_eq!(zstd.blob.digest.to_string(), "sha256:8ae0e9b7807479a1c66bc1dd92ec5364134a9029c5dada300034395f5b1e5ba8");
    }
}

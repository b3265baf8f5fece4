//! What scanners read to learn which Debian packages an image holds. For the libraries bundled from
//! a Debian or Ubuntu root (the host, or `--sysroot`), one `/var/lib/dpkg/status.d/<package>` per
//! owning package, its stanza of that root's dpkg status, and `<package>.md5sums` with the lines of
//! the files the image holds, as distroless images carry them; and that root's `/etc/os-release`.
//! Trivy and Grype skip library files no package manager installed (trivy issues 2299 and 1525);
//! with these records they match the bundled libraries to the distribution's advisories.
//!
//! Owns those records. It reads the dpkg database through `sbom::DpkgDb`, and must not decide which
//! libraries go in (that is `elf::resolve` and `libs`). A static image gains none of these files.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Content, EntryKind, FileTree, PathError};
use crate::elf::root::Root;
use crate::sbom::{DebPackage, DpkgDb};

/// Where the records go, without the leading `/`.
const STATUS_D: &str = "var/lib/dpkg/status.d";
/// The largest os-release file taken (they are a few hundred bytes).
const OS_RELEASE_CAP: u64 = 64 << 10;

/// Adds the package records of the files of `tree` (a libraries layer read from `root`, whose
/// dpkg database is `dpkg`) to it.
/// Files no package owns get none; a root without a dpkg database gives nothing.
pub(crate) fn add_records(tree: &mut FileTree, root: &Root, dpkg: &DpkgDb) -> Result<(), PathError> {
    let mut owned: BTreeMap<DebPackage, Vec<String>> = BTreeMap::new();
    for (path, entry) in tree.iter() {
        if let EntryKind::File(_) = entry.kind {
            if let Some(package) = dpkg.owner(&format!("/{path}")) {
                owned.entry(package).or_default().push(path.to_string());
            }
        }
    }
    if owned.is_empty() {
        return Ok(());
    }
    let bytes = |text: String| Content::Bytes(Arc::from(text.into_bytes()));
    for (package, files) in &owned {
        let Some(stanza) = dpkg.stanza(package) else { continue };
        tree.add_file(&format!("{STATUS_D}/{}", package.name), bytes(held_stanza(stanza)), 0o644, 0, 0)?;
        let md5sums: String = dpkg.md5sums_of(package, files).iter().map(|(md5, path)| format!("{md5}  {path}\n")).collect();
        if !md5sums.is_empty() {
            tree.add_file(&format!("{STATUS_D}/{}.md5sums", package.name), bytes(md5sums), 0o644, 0, 0)?;
        }
    }
    if let Some(os_release) = os_release(root) {
        tree.add_file("etc/os-release", Content::Bytes(Arc::from(os_release)), 0o644, 0, 0)?;
    }
    Ok(())
}

/// The stanza as the image holds the package: without `Conffiles`, which names files it does not
/// hold; ends with a newline.
fn held_stanza(stanza: &str) -> String {
    let mut out = String::new();
    let mut skipping = false;
    for line in stanza.lines() {
        if line.starts_with([' ', '\t']) {
            if !skipping {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        skipping = line.starts_with("Conffiles:");
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The root's `/etc/os-release` (often a link to `../usr/lib/os-release`), else
/// `/usr/lib/os-release`, read inside the root.
fn os_release(root: &Root) -> Option<Vec<u8>> {
    ["/etc/os-release", "/usr/lib/os-release"].iter().find_map(|path| {
        let real = root.canonicalize(path).ok()?.real;
        crate::input_file::read(&root.host(&real), OS_RELEASE_CAP).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conffiles_are_left_out_and_continuations_kept() {
        let stanza = "Package: libfoo1\nStatus: install ok installed\nConffiles:\n /etc/foo.conf 0123\n /etc/bar.conf 4567\n\
                      Version: 1.0\nDescription: foo\n the library\n .\n more";
        assert_eq!(
            held_stanza(stanza),
            "Package: libfoo1\nStatus: install ok installed\nVersion: 1.0\nDescription: foo\n the library\n .\n more\n"
        );
    }

    /// A sysroot with a dpkg database: the libraries it owns get records, with only the lines of
    /// the files the image holds; a file no package owns gets none.
    #[test]
    fn records_of_a_sysroot_hold_only_what_the_image_holds() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let info = root.join("var/lib/dpkg/info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("var/lib/dpkg/status"),
            "Package: libfoo1\nStatus: install ok installed\nArchitecture: arm64\nVersion: 1.2-3\nConffiles:\n /etc/foo.conf abc\n\n\
             Package: other\nStatus: install ok installed\nArchitecture: arm64\nVersion: 9\n",
        )
        .unwrap();
        std::fs::write(info.join("libfoo1:arm64.list"), "/usr/lib/libfoo.so.1\n/usr/lib/libfoo-extra.so.1\n").unwrap();
        std::fs::write(info.join("libfoo1:arm64.md5sums"), "aaaa  usr/lib/libfoo.so.1\nbbbb  usr/lib/libfoo-extra.so.1\n").unwrap();
        std::fs::write(root.join("usr/lib/os-release"), "ID=debian\nVERSION_ID=\"12\"\n").unwrap();
        std::os::unix::fs::symlink("../usr/lib/os-release", root.join("etc/os-release")).unwrap();
        let mut tree = FileTree::new();
        for name in ["usr/lib/libfoo.so.1", "usr/lib/unowned.so"] {
            tree.add_file(name, Content::Bytes(Arc::from(&b"x"[..])), 0o755, 0, 0).unwrap();
        }
        let root = Root::new(Some(root.to_path_buf()));
        add_records(&mut tree, &root, &DpkgDb::load(&root)).unwrap();
        let text = |path: &str| match &tree.get(path).unwrap_or_else(|| panic!("{path} missing")).kind {
            EntryKind::File(Content::Bytes(bytes)) => String::from_utf8(bytes.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            text("var/lib/dpkg/status.d/libfoo1"),
            "Package: libfoo1\nStatus: install ok installed\nArchitecture: arm64\nVersion: 1.2-3\n"
        );
        assert_eq!(text("var/lib/dpkg/status.d/libfoo1.md5sums"), "aaaa  usr/lib/libfoo.so.1\n");
        assert_eq!(text("etc/os-release"), "ID=debian\nVERSION_ID=\"12\"\n");
        assert!(tree.get("var/lib/dpkg/status.d/other").is_none());
    }

    #[test]
    fn a_root_without_a_database_gets_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = FileTree::new();
        tree.add_file("usr/lib/libfoo.so.1", Content::Bytes(Arc::from(&b"x"[..])), 0o755, 0, 0).unwrap();
        let root = Root::new(Some(dir.path().to_path_buf()));
        add_records(&mut tree, &root, &DpkgDb::load(&root)).unwrap();
        assert_eq!(tree.iter().count(), 3, "usr, usr/lib, the library");
    }
}

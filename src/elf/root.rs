//! A file-system root to resolve paths in: the host (`/`) or a sysroot. Every path the ELF names
//! (interpreter, RPATH, ld.so.conf entries, symlink targets) is an *image path*, read under the
//! root; an absolute symlink target starts again at the root, never at the host's `/`.

use std::path::{Path, PathBuf};

const MAX_SYMLINK_HOPS: usize = 40;

#[derive(Clone, Debug, Default)]
pub(crate) struct Root {
    sysroot: Option<PathBuf>,
}

/// An image path with every symlink on the way resolved, and the links that were crossed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Canonical {
    /// The real file's image path, absolute.
    pub(crate) real: String,
    /// `(link image path, target as written)`, in the order crossed.
    pub(crate) links: Vec<(String, String)>,
}

impl Root {
    pub(crate) fn new(sysroot: Option<PathBuf>) -> Self {
        Root { sysroot }
    }

    pub(crate) fn sysroot(&self) -> Option<&Path> {
        self.sysroot.as_deref()
    }

    /// Where an absolute image path lives on this machine.
    pub(crate) fn host(&self, image_path: &str) -> PathBuf {
        match &self.sysroot {
            Some(root) => root.join(image_path.trim_start_matches('/')),
            None => PathBuf::from(image_path),
        }
    }

    /// Where the real file (or folder) behind an image path is on this machine, every symlink on
    /// the way resolved inside the root; `None` when it is not there. What to read of the root: a
    /// sysroot's link never reaches this machine's own files.
    pub(crate) fn real_host(&self, image_path: &str) -> Option<PathBuf> {
        self.canonicalize(image_path).ok().map(|c| self.host(&c.real))
    }

    /// Resolves `image_path` component by component inside the root, as the kernel would inside
    /// a container whose root is this root. Fails on a loop or a missing component.
    pub(crate) fn canonicalize(&self, image_path: &str) -> std::io::Result<Canonical> {
        let mut pending: Vec<String> = image_path.split('/').filter(|c| !c.is_empty()).rev().map(str::to_string).collect();
        let mut current: Vec<String> = Vec::new();
        let mut links = Vec::new();
        while let Some(component) = pending.pop() {
            match component.as_str() {
                "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = format!("/{}", current.iter().chain([&component]).cloned().collect::<Vec<_>>().join("/"));
            let meta = std::fs::symlink_metadata(self.host(&candidate))?;
            if meta.file_type().is_symlink() {
                if links.len() >= MAX_SYMLINK_HOPS {
                    return Err(std::io::Error::other(format!("too many symlinks resolving {image_path}")));
                }
                let target = std::fs::read_link(self.host(&candidate))?;
                // Image paths are UTF-8: a lossy target could name another file than the link does.
                let target = target.into_os_string().into_string().map_err(|target| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("symlink {candidate} points to {target:?}, which is not UTF-8; image paths must be UTF-8"),
                    )
                })?;
                links.push((candidate, target.clone()));
                if target.starts_with('/') {
                    current.clear();
                }
                pending.extend(target.split('/').filter(|c| !c.is_empty()).rev().map(str::to_string));
            } else {
                current.push(component);
            }
        }
        Ok(Canonical { real: format!("/{}", current.join("/")), links })
    }
}

/// Joins and normalises image paths lexically: `/a/b` + `../c` → `/a/c`.
pub(crate) fn join(dir: &str, name: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    let full = if name.starts_with('/') { name.to_string() } else { format!("{dir}/{name}") };
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_links_stay_inside_the_sysroot() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::write(root.join("usr/lib/x86_64-linux-gnu/libz.so.1.3"), b"x").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        symlink("libz.so.1.3", root.join("usr/lib/x86_64-linux-gnu/libz.so.1")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib64")).unwrap();
        symlink("/lib/x86_64-linux-gnu/libz.so.1", root.join("usr/lib64/libz.so")).unwrap();
        let r = Root::new(Some(root.to_path_buf()));
        let c = r.canonicalize("/usr/lib64/libz.so").unwrap();
        assert_eq!(c.real, "/usr/lib/x86_64-linux-gnu/libz.so.1.3");
        assert_eq!(
            c.links,
            vec![
                ("/usr/lib64/libz.so".to_string(), "/lib/x86_64-linux-gnu/libz.so.1".to_string()),
                ("/lib".to_string(), "usr/lib".to_string()),
                ("/usr/lib/x86_64-linux-gnu/libz.so.1".to_string(), "libz.so.1.3".to_string()),
            ]
        );
        assert_eq!(r.host(&c.real), root.join("usr/lib/x86_64-linux-gnu/libz.so.1.3"));
    }

    #[test]
    fn a_link_target_that_is_not_utf8_is_refused_not_made_another_name() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("lib")).unwrap();
        std::fs::write(root.join("lib/libz\u{FFFD}.so"), b"the file a lossy name would reach").unwrap();
        symlink(std::ffi::OsStr::from_bytes(b"libz\xff.so"), root.join("lib/libz.so.1")).unwrap();
        let err = Root::new(Some(root.to_path_buf())).canonicalize("/lib/libz.so.1").unwrap_err();
        assert_eq!(err.to_string(), "symlink /lib/libz.so.1 points to \"libz\\xFF.so\", which is not UTF-8; image paths must be UTF-8");
    }

    #[test]
    fn real_host_paths_stay_inside_the_sysroot() {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), b"x").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/share/zoneinfo-2024")).unwrap();
        symlink(host.path(), root.join("outside")).unwrap();
        symlink(format!("../../../../../../../..{}", host.path().display()), root.join("climbing")).unwrap();
        symlink("/usr/share/zoneinfo-2024", root.join("zoneinfo")).unwrap();
        let r = Root::new(Some(root.to_path_buf()));
        assert!(root.join("outside/secret").is_file() && root.join("climbing/secret").is_file(), "on the host, both reach it");
        assert_eq!(r.real_host("/outside/secret"), None);
        assert_eq!(r.real_host("/climbing/secret"), None);
        assert_eq!(r.real_host("/zoneinfo"), Some(root.join("usr/share/zoneinfo-2024")));
    }

    #[test]
    fn loops_and_missing_files_fail() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let r = Root::new(Some(dir.path().to_path_buf()));
        assert!(r.canonicalize("/a").is_err());
        assert!(r.canonicalize("/missing").is_err());
    }

    #[test]
    fn lexical_join() {
        assert_eq!(join("/opt/app/bin", "../lib"), "/opt/app/lib");
        assert_eq!(join("/x", "/abs/./y"), "/abs/y");
        assert_eq!(join("/", "../../etc"), "/etc");
    }
}

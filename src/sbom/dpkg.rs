//! Which Debian package owns a file, from a root's dpkg database: `var/lib/dpkg/status` for
//! versions and architectures, `var/lib/dpkg/info/*.list` for the files.
//!
//! Best effort: a missing or unreadable database means "owner unknown", never an error, since the
//! SBOM is still right without it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::OnceLock;

use super::DebPackage;
use crate::elf::root::Root;

/// Top-level directories that merged-/usr systems link into /usr: a file dpkg lists as
/// `/lib/x86_64-linux-gnu/libc.so.6` is `/usr/lib/x86_64-linux-gnu/libc.so.6` too, and back.
const MERGED_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32"];
/// The largest `md5sums` file read (the largest on a Debian system is about 2 MiB).
const MD5SUMS_CAP: u64 = 16 << 20;

/// A root's dpkg database, read once for many lookups, and only when first asked: a pack makes one
/// and shares it (the libraries' package records, the SBOM), and a static program never reads it.
/// The status file is read on the first question; the (larger) file lists on the first
/// [`DpkgDb::owner`] call.
pub(crate) struct DpkgDb {
    root: Root,
    status: OnceLock<Status>,
    lists: OnceLock<Lists>,
}

/// What the status file says, and where the file lists are (`None` when it lists no package).
struct Status {
    info_dir: Option<PathBuf>,
    /// Installed packages by (name, architecture), with their stanza of the status file.
    installed: BTreeMap<(String, String), (DebPackage, String)>,
}

/// What the `*.list` files say. Indexed by a 64-bit hash of each path rather than by the path, so
/// that a system's ~100k listed paths cost no allocation each; a hit is confirmed in its list.
#[derive(Default)]
struct Lists {
    /// Per list file: package name, architecture from the file's name if it has one, contents.
    lists: Vec<(String, Option<String>, String)>,
    /// Hash of a path → the first list (in name order) that has it.
    index: HashMap<u64, u32>,
}

impl Lists {
    fn find(&self, path: &str) -> Option<usize> {
        let listed = |i: usize| self.lists[i].2.lines().any(|line| line == path);
        match self.index.get(&path_hash(path)) {
            Some(&i) if listed(i as usize) => Some(i as usize),
            // A hash collision (or nothing): look the slow way.
            Some(_) => (0..self.lists.len()).find(|&i| listed(i)),
            None => None,
        }
    }
}

/// The same hash for the same path within the process (the index lives in memory only).
fn path_hash(path: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut hasher);
    hasher.finish()
}

impl std::fmt::Debug for DpkgDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpkgDb")
            .field("root", &self.root.sysroot())
            .field("installed", &self.status.get().map(|status| status.installed.len()))
            .field("lists", &self.lists.get().map(|lists| lists.lists.len()))
            .finish()
    }
}

impl DpkgDb {
    /// The root's dpkg database, read when first asked; an empty one when the root has none.
    pub(crate) fn load(root: &Root) -> DpkgDb {
        DpkgDb { root: root.clone(), status: OnceLock::new(), lists: OnceLock::new() }
    }

    fn status(&self) -> &Status {
        self.status.get_or_init(|| {
            let status = std::fs::read_to_string(self.root.host("/var/lib/dpkg/status")).unwrap_or_default();
            let installed = parse_status(&status);
            let info_dir = Some(self.root.host("/var/lib/dpkg/info")).filter(|dir| !installed.is_empty() && dir.is_dir());
            Status { info_dir, installed }
        })
    }

    /// The installed package that owns `image_path` (an absolute path), looking at its merged-/usr
    /// twin too.
    pub(crate) fn owner(&self, image_path: &str) -> Option<DebPackage> {
        let Status { info_dir, installed } = self.status();
        info_dir.as_ref()?;
        let lists = self.lists.get_or_init(|| self.read_lists());
        let path = crate::elf::root::join("/", image_path);
        let index = candidates(&path).iter().find_map(|candidate| lists.find(candidate))?;
        let (name, arch, _) = &lists.lists[index];
        match arch {
            Some(arch) => installed.get(&(name.clone(), arch.clone())).map(|(package, _)| package.clone()),
            // A list without an architecture in its name belongs to the one installed package of
            // that name (dpkg adds `:ARCH` whenever the name alone is ambiguous).
            None => {
                let mut matching = installed.range((name.clone(), String::new())..).take_while(|((n, _), _)| n == name);
                let first = matching.next()?;
                matching.next().is_none().then(|| first.1 .0.clone())
            }
        }
    }

    /// The stanza of `package` in the status file, as dpkg wrote it (without a final newline).
    pub(crate) fn stanza(&self, package: &DebPackage) -> Option<&str> {
        self.status().installed.get(&(package.name.clone(), package.architecture.clone())).map(|(_, stanza)| stanza.as_str())
    }

    /// The lines of `package`'s `md5sums` file (`MD5  path`, the path without its leading `/`) for
    /// `image_paths` (absolute or not), each matched as itself or its merged-/usr twin: (MD5, the
    /// image path as given), in the order of `image_paths`. The file is read once.
    pub(crate) fn md5sums_of(&self, package: &DebPackage, image_paths: &[String]) -> Vec<(String, String)> {
        let Some(dir) = &self.status().info_dir else { return Vec::new() };
        let qualified = dir.join(format!("{}:{}.md5sums", package.name, package.architecture));
        let file = if qualified.is_file() { qualified } else { dir.join(format!("{}.md5sums", package.name)) };
        let Some(text) = crate::input_file::read(&file, MD5SUMS_CAP).ok().and_then(|bytes| String::from_utf8(bytes).ok()) else {
            return Vec::new();
        };
        let sums: Vec<(&str, &str)> = text.lines().filter_map(|line| line.split_once("  ")).collect();
        image_paths
            .iter()
            .filter_map(|image_path| {
                let wanted = candidates(&crate::elf::root::join("/", image_path));
                let (md5, _) = sums.iter().find(|(_, path)| wanted.iter().any(|candidate| candidate.trim_start_matches('/') == *path))?;
                Some((md5.to_string(), image_path.clone()))
            })
            .collect()
    }

    /// Reads every `*.list` file, in name order so that a path listed twice (diversions, shared
    /// directories) always gets the same owner.
    fn read_lists(&self) -> Lists {
        let mut lists = Lists::default();
        let Some(dir) = &self.status().info_dir else { return lists };
        let mut names: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".list")?.to_string();
                Some((stem, entry.path()))
            })
            .collect();
        names.sort();
        for (stem, path) in names {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let (name, arch) = match stem.split_once(':') {
                Some((name, arch)) => (name.to_string(), Some(arch.to_string())),
                None => (stem, None),
            };
            let index = lists.lists.len() as u32;
            for line in text.lines().filter(|line| line.starts_with('/')) {
                lists.index.entry(path_hash(line)).or_insert(index);
            }
            lists.lists.push((name, arch, text));
        }
        lists
    }
}

/// The path itself, then its merged-/usr twin.
fn candidates(path: &str) -> Vec<String> {
    let mut out = vec![path.to_string()];
    if let Some(rest) = path.strip_prefix("/usr/") {
        if MERGED_DIRS.contains(&rest.split('/').next().unwrap_or_default()) {
            out.push(format!("/{rest}"));
        }
    } else if MERGED_DIRS.contains(&path.trim_start_matches('/').split('/').next().unwrap_or_default()) {
        out.push(format!("/usr{path}"));
    }
    out
}

/// The installed packages of a dpkg status file (RFC 822-style stanzas), each with its stanza.
fn parse_status(text: &str) -> BTreeMap<(String, String), (DebPackage, String)> {
    let mut installed = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let (mut name, mut version, mut status, mut architecture) = (None, None, None, None);
        for line in stanza.lines() {
            let Some((key, value)) = line.split_once(':') else { continue };
            let slot = match key {
                "Package" => &mut name,
                "Version" => &mut version,
                "Status" => &mut status,
                "Architecture" => &mut architecture,
                _ => continue,
            };
            *slot = Some(value.trim());
        }
        let (Some(name), Some(version), Some(status)) = (name, version, status) else { continue };
        // `want flag state`: the files are on disk in every state but these two.
        if matches!(status.split_whitespace().nth(2), None | Some("not-installed" | "config-files")) {
            continue;
        }
        let architecture = architecture.unwrap_or("all");
        installed.insert(
            (name.to_string(), architecture.to_string()),
            (
                DebPackage { name: name.to_string(), version: version.to_string(), architecture: architecture.to_string() },
                stanza.trim_matches('\n').to_string(),
            ),
        );
    }
    installed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn dpkg_query(package: &str, field: &str) -> Option<String> {
        let output = Command::new("dpkg-query").args(["-W", &format!("-f=${{{field}}}"), package]).output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    #[test]
    fn finds_libc6_on_this_machine_by_both_merged_usr_paths() {
        let Some(version) = dpkg_query("libc6", "Version") else {
            eprintln!("skipped: no dpkg-query or no libc6 here");
            return;
        };
        let arch = dpkg_query("libc6", "Architecture").unwrap();
        let db = DpkgDb::load(&Root::new(None));
        let want = DebPackage { name: "libc6".into(), version, architecture: arch.clone() };
        let libdir = match arch.as_str() {
            "amd64" => "x86_64-linux-gnu",
            "arm64" => "aarch64-linux-gnu",
            other => panic!("add the multiarch directory of {other}"),
        };
        for path in [format!("/lib/{libdir}/libc.so.6"), format!("/usr/lib/{libdir}/libc.so.6")] {
            assert_eq!(db.owner(&path), Some(want.clone()), "{path}");
        }
        assert_eq!(db.owner("/usr/local/bin/nothing-owns-this"), None);
    }

    #[test]
    fn sysroot_database_with_multiarch_and_plain_lists() {
        let dir = tempfile::tempdir().unwrap();
        let info = dir.path().join("var/lib/dpkg/info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(
            dir.path().join("var/lib/dpkg/status"),
            "Package: libc6\nStatus: install ok installed\nArchitecture: arm64\nMulti-Arch: same\nVersion: 2.36-9+deb12u14\nDescription: GNU C Library\n continued: line\n\n\
             Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u14\n\n\
             Package: ca-certificates\nStatus: install ok installed\nArchitecture: all\nVersion: 20230311\n\n\
             Package: gone\nStatus: deinstall ok config-files\nArchitecture: arm64\nVersion: 1.0\n",
        )
        .unwrap();
        std::fs::write(info.join("libc6:arm64.list"), "/.\n/lib\n/lib/aarch64-linux-gnu\n/lib/aarch64-linux-gnu/libc.so.6\n").unwrap();
        std::fs::write(info.join("libc6:amd64.list"), "/lib/x86_64-linux-gnu/libc.so.6\n").unwrap();
        std::fs::write(info.join("ca-certificates.list"), "/usr/sbin/update-ca-certificates\n").unwrap();
        std::fs::write(info.join("gone.list"), "/usr/bin/gone\n").unwrap();
        let db = DpkgDb::load(&Root::new(Some(dir.path().to_path_buf())));
        let libc = |arch: &str| DebPackage { name: "libc6".into(), version: "2.36-9+deb12u14".into(), architecture: arch.into() };
        assert_eq!(db.owner("/usr/lib/aarch64-linux-gnu/libc.so.6"), Some(libc("arm64")));
        assert_eq!(db.owner("/lib/x86_64-linux-gnu/libc.so.6"), Some(libc("amd64")));
        assert_eq!(
            db.owner("/sbin/update-ca-certificates"),
            Some(DebPackage { name: "ca-certificates".into(), version: "20230311".into(), architecture: "all".into() })
        );
        assert_eq!(db.owner("/usr/bin/gone"), None, "config-files packages have no files");
        assert_eq!(db.owner("/usr/lib/other"), None);
    }

    #[test]
    fn no_database_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let db = DpkgDb::load(&Root::new(Some(dir.path().to_path_buf())));
        assert_eq!(db.owner("/lib/x86_64-linux-gnu/libc.so.6"), None);
    }

    #[test]
    fn merged_usr_twins() {
        assert_eq!(candidates("/lib/x/libc.so.6"), ["/lib/x/libc.so.6", "/usr/lib/x/libc.so.6"]);
        assert_eq!(candidates("/usr/lib64/ld.so"), ["/usr/lib64/ld.so", "/lib64/ld.so"]);
        assert_eq!(candidates("/usr/share/x"), ["/usr/share/x"]);
        assert_eq!(candidates("/etc/ssl/certs/ca-certificates.crt"), ["/etc/ssl/certs/ca-certificates.crt"]);
    }
}

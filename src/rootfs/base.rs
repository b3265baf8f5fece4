//! The base layer: the POSIX files and the CA bundle that real programs expect.
//!
//! Byte-identical for every image made with the same tool version and the same CA options,
//! whatever the binary, so registries and caches store it once. Nothing here may depend on the
//! binary being packed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::pem::{self, PemError};
use super::{Content, FileTree};
use crate::input_file;

pub(crate) const PASSWD: &[u8] = include_bytes!("../../templates/passwd");
pub(crate) const GROUP: &[u8] = include_bytes!("../../templates/group");
pub(crate) const NSSWITCH: &[u8] = include_bytes!("../../templates/nsswitch.conf");
/// For runtimes that do not mount their own (runc, nspawn): `localhost` resolves without DNS.
pub(crate) const HOSTS: &[u8] = include_bytes!("../../templates/hosts");
pub(crate) const BUILTIN_CA_BUNDLE: &[u8] = include_bytes!("../../certs/ca-certificates.crt");
pub(crate) const BUILTIN_CA_VERSION: &str = include_str!("../../certs/VERSION");

pub(crate) const CA_BUNDLE_PATH: &str = "etc/ssl/certs/ca-certificates.crt";
/// The base files a person looks for, as `inspect` lists them.
pub(crate) const BASE_FILES: &[&str] =
    &["/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/ssl/certs/ca-certificates.crt", "/tmp", "/home/nonroot"];
/// Where other distributions' TLS stacks look; each links to the bundle.
const CA_BUNDLE_LINKS: &[(&str, &str)] =
    &[("etc/ssl/cert.pem", "certs/ca-certificates.crt"), ("etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/certs/ca-certificates.crt")];

/// Where Go's crypto/x509 looks for the host's bundle, in its order.
const HOST_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

pub(crate) const NONROOT_UID: u32 = 65532;

/// `--ca-bundle`: which roots the image trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CaBundle {
    Builtin,
    Host,
    None,
    File(PathBuf),
}

impl std::str::FromStr for CaBundle {
    type Err = std::convert::Infallible;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "builtin" => CaBundle::Builtin,
            "host" => CaBundle::Host,
            "none" => CaBundle::None,
            path => CaBundle::File(PathBuf::from(path)),
        })
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct BaseOptions {
    pub(crate) ca_bundle: Option<CaBundle>,
    pub(crate) extra_ca: Vec<PathBuf>,
}

/// The planned base layer, and what its CA bundle is, for the image annotation.
#[derive(Debug)]
pub(crate) struct Base {
    pub(crate) tree: FileTree,
    /// `None` when the image has no CA bundle.
    pub(crate) ca_version: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BaseError {
    #[error("{}: cannot read the CA bundle", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is refused: a private key, a block that is no certificate, or none at all.
    #[error("{}: {error}", path.display())]
    Pem { path: PathBuf, error: PemError },
    #[error("--ca-bundle host: no CA bundle on this machine (looked in {})", HOST_CA_BUNDLES.join(", "))]
    NoHostBundle,
    #[error("--extra-ca needs a CA bundle, but --ca-bundle none was given")]
    ExtraWithoutBundle,
}

impl BaseError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            BaseError::NoHostBundle => Some("install ca-certificates, or use --ca-bundle builtin"),
            BaseError::ExtraWithoutBundle => Some("drop --ca-bundle none; --extra-ca is appended to the chosen bundle"),
            BaseError::Pem { path, error } => return Some(error.hint(&path.display().to_string())),
            BaseError::Read { .. } => None,
        }
        .map(String::from)
    }
}

/// The folders of the base layer that do not depend on the CA options (`/tmp`, `/root`, `/home`,
/// `/home/nonroot`, `/etc`), with their modes and owners.
pub(crate) fn folders() -> FileTree {
    let tree = plan(&BaseOptions { ca_bundle: Some(CaBundle::None), extra_ca: Vec::new() }).expect("no file to read").tree;
    let mut folders = FileTree::new();
    for (path, entry) in tree.iter().filter(|(_, entry)| matches!(entry.kind, super::EntryKind::Dir)) {
        folders.insert(path, entry.clone()).expect("a tree's folders");
    }
    folders
}

pub(crate) fn plan(options: &BaseOptions) -> Result<Base, BaseError> {
    let mut tree = FileTree::new();
    let bytes = |data: &'static [u8]| Content::Bytes(Arc::from(data));
    let planned = (|| {
        tree.add_file("etc/passwd", bytes(PASSWD), 0o644, 0, 0)?;
        tree.add_file("etc/group", bytes(GROUP), 0o644, 0, 0)?;
        tree.add_file("etc/nsswitch.conf", bytes(NSSWITCH), 0o644, 0, 0)?;
        tree.add_file("etc/hosts", bytes(HOSTS), 0o644, 0, 0)?;
        tree.add_dir("tmp", 0o1777, 0, 0)?;
        tree.add_dir("root", 0o700, 0, 0)?;
        tree.add_dir("home", 0o755, 0, 0)?;
        tree.add_dir("home/nonroot", 0o700, NONROOT_UID, NONROOT_UID)
    })();
    planned.expect("the base layout has no conflicting paths");

    let ca_version = match ca_bundle(options)? {
        None => None,
        Some((pem, version)) => {
            tree.add_file(CA_BUNDLE_PATH, Content::Bytes(Arc::from(pem)), 0o644, 0, 0).expect("fixed path");
            for (link, target) in CA_BUNDLE_LINKS {
                tree.add_symlink(link, target).expect("fixed path");
            }
            Some(version)
        }
    };
    Ok(Base { tree, ca_version })
}

/// The bundle's PEM bytes, with any `--extra-ca` appended, and a description of its version.
fn ca_bundle(options: &BaseOptions) -> Result<Option<(Vec<u8>, String)>, BaseError> {
    let (mut pem, mut version) = match options.ca_bundle.clone().unwrap_or(CaBundle::Builtin) {
        CaBundle::None if options.extra_ca.is_empty() => return Ok(None),
        CaBundle::None => return Err(BaseError::ExtraWithoutBundle),
        CaBundle::Builtin => (BUILTIN_CA_BUNDLE.to_vec(), BUILTIN_CA_VERSION.trim().to_string()),
        CaBundle::Host => {
            let path = HOST_CA_BUNDLES.iter().map(Path::new).find(|p| p.is_file()).ok_or(BaseError::NoHostBundle)?;
            (read_pem(path)?, format!("host {}", path.display()))
        }
        CaBundle::File(path) => (read_pem(&path)?, format!("file {}", file_name(&path))),
    };
    for extra in &options.extra_ca {
        if !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend_from_slice(&read_pem(extra)?);
        version.push_str(&format!(" + extra {}", file_name(extra)));
    }
    Ok(Some((pem, version)))
}

/// The certificates of every `--extra-ca`, one after the other: what goes after the bundle's.
pub(crate) fn extra_pem(options: &BaseOptions) -> Result<Vec<u8>, BaseError> {
    let mut pem = Vec::new();
    for extra in &options.extra_ca {
        if !pem.is_empty() && !pem.ends_with(b"\n") {
            pem.push(b'\n');
        }
        pem.extend_from_slice(&read_pem(extra)?);
    }
    Ok(pem)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The certificates of a PEM file (a regular file of at most 4 MiB), as `pem` keeps them.
fn read_pem(path: &Path) -> Result<Vec<u8>, BaseError> {
    let data = input_file::read(path, input_file::PEM_CAP).map_err(|source| BaseError::Read { path: path.to_path_buf(), source })?;
    pem::certificate_pem(&data).map_err(|error| BaseError::Pem { path: path.to_path_buf(), error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::EntryKind;

    fn modes(tree: &FileTree) -> Vec<String> {
        tree.iter()
            .map(|(path, e)| {
                let kind = match &e.kind {
                    EntryKind::Dir => "d".to_string(),
                    EntryKind::File(_) => "f".to_string(),
                    EntryKind::Symlink(t) => format!("l->{t}"),
                };
                format!("{path} {kind} {:o} {}:{}", e.mode, e.uid, e.gid)
            })
            .collect()
    }

    #[test]
    fn default_base_follows_the_conventions() {
        let base = plan(&BaseOptions::default()).unwrap();
        assert_eq!(
            modes(&base.tree),
            [
                "etc d 755 0:0",
                "etc/group f 644 0:0",
                "etc/hosts f 644 0:0",
                "etc/nsswitch.conf f 644 0:0",
                "etc/passwd f 644 0:0",
                "etc/pki d 755 0:0",
                "etc/pki/tls d 755 0:0",
                "etc/pki/tls/certs d 755 0:0",
                "etc/pki/tls/certs/ca-bundle.crt l->/etc/ssl/certs/ca-certificates.crt 777 0:0",
                "etc/ssl d 755 0:0",
                "etc/ssl/cert.pem l->certs/ca-certificates.crt 777 0:0",
                "etc/ssl/certs d 755 0:0",
                "etc/ssl/certs/ca-certificates.crt f 644 0:0",
                "home d 755 0:0",
                "home/nonroot d 700 65532:65532",
                "root d 700 0:0",
                "tmp d 1777 0:0",
            ]
        );
        assert!(base.ca_version.unwrap().starts_with("mozilla-nss via debian ca-certificates "));
    }

    #[test]
    fn no_bundle_means_no_certs_and_no_links() {
        let base = plan(&BaseOptions { ca_bundle: Some(CaBundle::None), extra_ca: vec![] }).unwrap();
        assert!(base.tree.get("etc/ssl").is_none());
        assert!(base.ca_version.is_none());
    }

    #[test]
    fn extra_ca_is_appended_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("corp.pem");
        let text = std::str::from_utf8(BUILTIN_CA_BUNDLE).unwrap();
        let corp = &text[..text.find("-----END CERTIFICATE-----\n").unwrap() + "-----END CERTIFICATE-----\n".len()];
        // Comments around it are left out; the certificate goes in as it is.
        std::fs::write(&good, format!("# corp CA\n{corp}\n# end\n")).unwrap();
        let base = plan(&BaseOptions { ca_bundle: None, extra_ca: vec![good] }).unwrap();
        let Some(super::super::Entry { kind: EntryKind::File(Content::Bytes(pem)), .. }) = base.tree.get(CA_BUNDLE_PATH) else {
            panic!("bundle missing")
        };
        assert_eq!(&pem[..], [BUILTIN_CA_BUNDLE, corp.as_bytes()].concat());
        assert!(base.ca_version.unwrap().ends_with(" + extra corp.pem"));

        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "not a cert").unwrap();
        let err = plan(&BaseOptions { ca_bundle: None, extra_ca: vec![bad.clone()] }).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: no PEM certificate in it (expected -----BEGIN CERTIFICATE----- blocks)", bad.display()));

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
        let err = plan(&BaseOptions { ca_bundle: None, extra_ca: vec![junk.clone()] }).unwrap_err();
        assert_eq!(err.to_string(), format!("{}: block 1 (line 1) is not an X.509 certificate: its DER is cut short", junk.display()));
    }

    #[test]
    fn a_bundle_file_with_a_private_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let server = dir.path().join("server.pem");
        let key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        std::fs::write(&server, [BUILTIN_CA_BUNDLE, key.as_bytes()].concat()).unwrap();
        let lines = BUILTIN_CA_BUNDLE.iter().filter(|&&b| b == b'\n').count();
        let blocks = BUILTIN_CA_BUNDLE.windows(11).filter(|w| w == b"-----BEGIN ").count();
        let err = plan(&BaseOptions { ca_bundle: Some(CaBundle::File(server.clone())), extra_ca: vec![] }).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: block {} (line {}) is a private key (-----BEGIN PRIVATE KEY-----); a private key is never copied into an image",
                server.display(),
                blocks + 1,
                lines + 1
            )
        );
        assert_eq!(err.hint().unwrap(), format!("give the certificate alone, e.g. `openssl x509 -in {} -out ca.pem`", server.display()));
    }

    #[test]
    fn the_host_bundle_is_checked_too() {
        // A machine's bundle has certificates only: they go in, as `pem` writes them.
        let base = match plan(&BaseOptions { ca_bundle: Some(CaBundle::Host), extra_ca: vec![] }) {
            Err(BaseError::NoHostBundle) if !HOST_CA_BUNDLES.iter().any(|p| Path::new(p).is_file()) => return,
            result => result.unwrap(),
        };
        let path = base.ca_version.unwrap().strip_prefix("host ").unwrap().to_string();
        let Some(super::super::Entry { kind: EntryKind::File(Content::Bytes(pem)), .. }) = base.tree.get(CA_BUNDLE_PATH) else {
            panic!("bundle missing")
        };
        assert_eq!(&pem[..], pem::certificate_pem(&std::fs::read(path).unwrap()).unwrap());
    }
}

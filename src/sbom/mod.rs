//! The image's software bill of materials: which crates are compiled into the program (and into the
//! image's further programs), which files the image holds, and which Debian packages those files
//! came from, as an SPDX 2.3 or CycloneDX 1.5 JSON document.
//!
//! Owns reading cargo-auditable's `.dep-v0` section from a program ([`read_auditable`]), looking up
//! the owners of files in a root's dpkg database ([`DpkgDb`]), package URLs, and writing the two
//! document formats ([`generate`]). The output is a pure function of [`SbomInput`]: no clock, no
//! randomness, sorted keys and arrays, so the same input gives byte-identical documents. It must not
//! know about registries, layouts, layers or manifests: the caller decides where the document goes
//! (an OCI referrer, a file beside the image) and which files it lists.

mod auditable;
mod cyclonedx;
mod dpkg;
mod purl;
mod spdx;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use crate::image::Digest;
use crate::platform::Platform;

pub(crate) use auditable::read_auditable;
pub(crate) use dpkg::DpkgDb;

/// What the caller prints when a Rust program carries no audit data, so its crates cannot be listed.
pub(crate) const NO_AUDIT_DATA_HINT: &str = "build the program with `cargo auditable build` (install it with `cargo install cargo-auditable`) so that the SBOM lists the crates compiled into it";

/// The tool name and version written into every document.
const TOOL_NAME: &str = "scratchpack";
const TOOL_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `--sbom`: which SBOM document, if any, describes the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum SbomFormat {
    /// SPDX 2.3, JSON.
    #[default]
    Spdx,
    /// CycloneDX 1.5, JSON.
    Cyclonedx,
    /// No SBOM.
    None,
}

impl SbomFormat {
    /// The document's media type (an OCI artifact type), `None` for [`SbomFormat::None`].
    pub(crate) fn media_type(self) -> Option<&'static str> {
        match self {
            SbomFormat::Spdx => Some("application/spdx+json"),
            SbomFormat::Cyclonedx => Some("application/vnd.cyclonedx+json"),
            SbomFormat::None => None,
        }
    }

    /// The conventional file name extension, without the leading dot: `spdx.json`, `cdx.json`;
    /// empty for [`SbomFormat::None`].
    pub(crate) fn file_extension(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "spdx.json",
            SbomFormat::Cyclonedx => "cdx.json",
            SbomFormat::None => "",
        }
    }
}

spelled_enum!(SbomFormat { Spdx => "spdx", Cyclonedx => "cyclonedx", None => "none" });

/// One crate from cargo-auditable's `.dep-v0` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditedCrate {
    pub(crate) name: String,
    pub(crate) version: String,
    /// Where cargo took it from, as cargo-auditable spells it: `crates.io`, `git`, `local`,
    /// `registry` (any other registry), or another word a newer cargo-auditable may write.
    pub(crate) source: String,
    /// `runtime` (compiled into the program) or `build` (build scripts, proc-macros and what only
    /// they use). Only runtime crates go into the SBOM.
    pub(crate) kind: String,
    /// Indices, into the list [`read_auditable`] returns, of the crates this one depends on.
    pub(crate) dependencies: Vec<usize>,
    /// The package whose program this is.
    pub(crate) root: bool,
}

impl AuditedCrate {
    /// Whether the crate is compiled into the program (roots always are).
    pub(crate) fn is_runtime(&self) -> bool {
        self.root || self.kind == "runtime"
    }
}

/// A Debian package owning a file, from the root's dpkg database.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct DebPackage {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) architecture: String,
}

impl DebPackage {
    /// `pkg:deb/debian/NAME@VERSION?arch=ARCH`.
    pub(crate) fn purl(&self) -> String {
        purl::deb(self)
    }
}

/// A file in the image the SBOM lists.
#[derive(Clone, Debug)]
pub(crate) struct SbomFile {
    /// The image path, absolute.
    pub(crate) path: String,
    pub(crate) sha256: Digest,
    /// Hex SHA1: SPDX 2.3 requires it on every file (clause 8.4).
    pub(crate) sha1: String,
    pub(crate) size: u64,
    /// What the file is, for people: `Mozilla CA bundle: mozilla-nss via debian ca-certificates 20250419~deb12u2`.
    pub(crate) comment: Option<String>,
    /// The Debian package the file was copied from, when known.
    pub(crate) package: Option<DebPackage>,
}

/// Everything one document says, for one image (one platform).
pub(crate) struct SbomInput<'a> {
    /// The image's name, e.g. the binary's name.
    pub(crate) name: &'a str,
    /// The package version, if known.
    pub(crate) version: Option<&'a str>,
    pub(crate) platform: &'a Platform,
    /// RFC 3339 in UTC (`1970-01-01T00:00:00Z`), from `SOURCE_DATE_EPOCH`: never the clock, so
    /// that the output is reproducible.
    pub(crate) created: &'a str,
    /// Where the binary is in the image.
    pub(crate) binary_path: &'a str,
    pub(crate) binary_sha256: Digest,
    /// Hex SHA1 of the binary.
    pub(crate) binary_sha1: String,
    /// The program's audit data; `None` when it has none (not Rust, or not built with
    /// `cargo auditable`).
    pub(crate) crates: Option<&'a [AuditedCrate]>,
    /// The audit data of the image's further programs (`--also`), one list each: their crates are
    /// listed as the image's.
    pub(crate) also_crates: &'a [Vec<AuditedCrate>],
    /// cargo metadata's `source` field per (name, version), when known (cargo scratchpack knows it):
    /// `registry+https://github.com/rust-lang/crates.io-index`, `git+https://host/repo?branch=x#sha`,
    /// or absent for local path crates. It gives git crates and crates of other registries their URL.
    pub(crate) cargo_sources: Option<&'a BTreeMap<(String, String), String>>,
    /// Files besides the binary: the CA bundle, bundled shared libraries…
    pub(crate) files: &'a [SbomFile],
}

/// A finished document.
#[derive(Clone, Debug)]
pub(crate) struct Sbom {
    pub(crate) format: SbomFormat,
    pub(crate) media_type: &'static str,
    /// Pretty-printed JSON, ending with a newline.
    pub(crate) bytes: Vec<u8>,
    /// How many crates the document lists (runtime crates, roots included); 0 without audit data.
    pub(crate) runtime_crates: usize,
}

/// Why audit data could not be read or a document not be made. Each variant names the file (or
/// the value) at fault.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SbomError {
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: cannot read the ELF section headers: {reason}", path.display())]
    Elf { path: PathBuf, reason: String },
    #[error("{}: the .dep-v0 section {reason}", path.display())]
    Section { path: PathBuf, reason: String },
    #[error("{}: the .dep-v0 audit data decompresses to more than {} MiB", path.display(), limit >> 20)]
    TooLarge { path: PathBuf, limit: usize },
    #[error("{}: the .dep-v0 audit data is not valid zlib data", path.display())]
    Decompress {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the .dep-v0 audit data is not cargo-auditable JSON", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{}: the .dep-v0 audit data is inconsistent: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("SBOM creation time {value:?} is not an RFC 3339 UTC time such as 1970-01-01T00:00:00Z")]
    Timestamp { value: String },
}

impl SbomError {
    pub(crate) fn hint(&self) -> Option<String> {
        match self {
            SbomError::Section { .. }
            | SbomError::TooLarge { .. }
            | SbomError::Decompress { .. }
            | SbomError::Json { .. }
            | SbomError::Invalid { .. } => {
                Some("rebuild the program with a current `cargo auditable build`, or leave the SBOM out with `--sbom none`")
            }
            SbomError::Read { .. } | SbomError::Elf { .. } | SbomError::Timestamp { .. } => None,
        }
        .map(String::from)
    }
}

/// Writes the document for `input` in `format`; `Ok(None)` for [`SbomFormat::None`].
pub(crate) fn generate(format: SbomFormat, input: &SbomInput) -> Result<Option<Sbom>, SbomError> {
    let Some(media_type) = format.media_type() else {
        return Ok(None);
    };
    let created = utc_timestamp(input.created)?;
    let model = Model::new(input, created);
    let bytes = match format {
        SbomFormat::Spdx => spdx::document(&model),
        SbomFormat::Cyclonedx => cyclonedx::document(&model),
        SbomFormat::None => unreachable!("handled above"),
    };
    Ok(Some(Sbom { format, media_type, bytes, runtime_crates: model.crates.len() }))
}

/// Accepts `YYYY-MM-DDThh:mm:ss` followed by `Z` or `+00:00`, and returns it with `Z`, the one form
/// SPDX allows.
fn utc_timestamp(value: &str) -> Result<String, SbomError> {
    let err = || SbomError::Timestamp { value: value.to_string() };
    let base = value.strip_suffix('Z').or_else(|| value.strip_suffix("+00:00")).ok_or_else(err)?;
    let shape = b"dddd-dd-ddTdd:dd:dd";
    let fits =
        base.len() == shape.len() && base.bytes().zip(shape.iter()).all(|(b, &s)| if s == b'd' { b.is_ascii_digit() } else { b == s });
    if !fits {
        return Err(err());
    }
    Ok(format!("{base}Z"))
}

/// Where a crate came from, as far as the audit data and cargo metadata tell.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    CratesIo,
    /// `vcs_url`: `git+https://host/repo@COMMIT`, when cargo metadata gave the URL.
    Git {
        vcs_url: Option<String>,
    },
    Local,
    /// Another registry; `url`: its index URL, when cargo metadata gave it.
    Registry {
        url: Option<String>,
    },
    /// A source word this version does not know.
    Other(String),
}

impl Origin {
    /// The `scratchpack:source` marker: what the purl alone cannot say.
    fn label(&self) -> &str {
        match self {
            Origin::CratesIo => "crates.io",
            Origin::Git { .. } => "git",
            Origin::Local => "local",
            Origin::Registry { .. } => "registry",
            Origin::Other(word) => word,
        }
    }
}

struct CrateEntry {
    /// Unique within the document, made of `[A-Za-z0-9.-]`: `crate-itoa-1.0.15`.
    id: String,
    name: String,
    version: String,
    origin: Origin,
    purl: String,
    root: bool,
    /// Positions in `Model::crates`, sorted, without duplicates.
    dependencies: Vec<usize>,
}

struct DebEntry {
    id: String,
    package: DebPackage,
    purl: String,
    /// Positions in `Model::files` of the files it owns.
    files: Vec<usize>,
}

struct FileEntry {
    id: String,
    path: String,
    sha256: Digest,
    sha1: String,
    size: Option<u64>,
    comment: Option<String>,
    binary: bool,
}

/// The input, normalised for both writers: sorted, deduplicated, with unique ids.
struct Model<'a> {
    name: &'a str,
    version: Option<&'a str>,
    platform: &'a Platform,
    created: String,
    crates: Vec<CrateEntry>,
    debs: Vec<DebEntry>,
    files: Vec<FileEntry>,
    /// Whether the program carried audit data at all.
    audited: bool,
}

impl<'a> Model<'a> {
    fn new(input: &SbomInput<'a>, created: String) -> Self {
        let mut ids = Ids::default();
        ids.used.insert("image".to_string());

        // Crates: runtime ones only, sorted so that ids do not depend on the input's order.
        let merged = auditable::merge(input.crates.unwrap_or(&[]), input.also_crates);
        let all = &merged[..];
        let mut order: Vec<usize> = (0..all.len()).filter(|&i| all[i].is_runtime()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&all[a], &all[b]);
            (&x.name, &x.version, &x.source, a).cmp(&(&y.name, &y.version, &y.source, b))
        });
        let position: BTreeMap<usize, usize> = order.iter().enumerate().map(|(pos, &index)| (index, pos)).collect();
        let crates = order
            .iter()
            .map(|&index| {
                let krate = &all[index];
                let origin = purl::origin(krate, input.cargo_sources);
                let mut dependencies: Vec<usize> = krate.dependencies.iter().filter_map(|d| position.get(d).copied()).collect();
                dependencies.sort_unstable();
                dependencies.dedup();
                dependencies.retain(|&d| d != position[&index]);
                CrateEntry {
                    id: ids.allocate(&format!("crate-{}-{}", krate.name, krate.version)),
                    purl: purl::cargo(&krate.name, &krate.version, &origin),
                    name: krate.name.clone(),
                    version: krate.version.clone(),
                    origin,
                    root: krate.root,
                    dependencies,
                }
            })
            .collect();

        // Files: the binary first (the caller may list it among the files too), then by path.
        let binary_path = crate::elf::root::join("/", input.binary_path);
        let mut sources: Vec<(String, &SbomFile)> = input.files.iter().map(|f| (crate::elf::root::join("/", &f.path), f)).collect();
        sources.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.sha256.cmp(&b.1.sha256)));
        sources.dedup_by(|a, b| a.0 == b.0 && a.1.sha256 == b.1.sha256);
        let listed_binary = sources.iter().position(|(path, _)| *path == binary_path).map(|i| sources.remove(i).1);
        let mut files = vec![FileEntry {
            id: ids.allocate(&format!("file-{}", binary_path.trim_start_matches('/'))),
            sha256: listed_binary.map_or(input.binary_sha256, |f| f.sha256),
            sha1: listed_binary.map_or_else(|| input.binary_sha1.clone(), |f| f.sha1.clone()),
            size: listed_binary.map(|f| f.size),
            comment: listed_binary.and_then(|f| f.comment.clone()),
            path: binary_path,
            binary: true,
        }];
        let mut owners: BTreeMap<&DebPackage, Vec<usize>> = BTreeMap::new();
        if let Some(package) = listed_binary.and_then(|f| f.package.as_ref()) {
            owners.entry(package).or_default().push(0);
        }
        for (path, file) in sources {
            if let Some(package) = &file.package {
                owners.entry(package).or_default().push(files.len());
            }
            files.push(FileEntry {
                id: ids.allocate(&format!("file-{}", path.trim_start_matches('/'))),
                sha256: file.sha256,
                sha1: file.sha1.clone(),
                size: Some(file.size),
                comment: file.comment.clone(),
                path,
                binary: false,
            });
        }
        let debs = owners
            .into_iter()
            .map(|(package, files)| DebEntry {
                id: ids.allocate(&format!("deb-{}-{}-{}", package.name, package.version, package.architecture)),
                purl: package.purl(),
                package: package.clone(),
                files,
            })
            .collect();

        Model {
            name: input.name,
            version: input.version,
            platform: input.platform,
            created,
            crates,
            debs,
            files,
            audited: input.crates.is_some(),
        }
    }

    /// Crates the image holds directly: the roots, and any crate no listed crate depends on (so
    /// that nothing floats unattached when the audit data has no root).
    fn top_crates(&self) -> Vec<usize> {
        let mut depended: Vec<bool> = vec![false; self.crates.len()];
        for krate in &self.crates {
            for &d in &krate.dependencies {
                depended[d] = true;
            }
        }
        (0..self.crates.len()).filter(|&i| self.crates[i].root || !depended[i]).collect()
    }
}

/// Hands out ids made of `[A-Za-z0-9.-]` (what SPDX allows after `SPDXRef-`), unique per document.
#[derive(Default)]
struct Ids {
    used: HashSet<String>,
}

impl Ids {
    fn allocate(&mut self, wanted: &str) -> String {
        let base: String = wanted.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect();
        let mut id = base.clone();
        let mut n = 2;
        while !self.used.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }
}

/// Rebuilds every object with its keys in sorted order, whatever map serde_json was built with
/// (its `preserve_order` feature, if some other crate turned it on, would keep insertion order).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> = map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Pretty JSON with sorted keys and a final newline.
fn to_bytes(value: serde_json::Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(&sorted(value)).expect("a JSON value with string keys always serialises");
    bytes.push(b'\n');
    bytes
}

/// The SHA-256 of a document, which names it (SPDX namespace, CycloneDX serial number): the same
/// content gets the same name, and any change a new one.
fn content_hash(value: &serde_json::Value) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(to_bytes(value.clone())).into()
}

#[cfg(test)]
mod tests;

/// Hex SHA1 of `bytes`, for SPDX.
pub(crate) fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest as _;
    hex::encode(sha1::Sha1::digest(bytes))
}

/// A file's SHA256, hex SHA1 and size, in one read.
pub(crate) fn hash_file(path: &std::path::Path) -> std::io::Result<(Digest, String, u64)> {
    use sha1::Digest as _;
    let mut sha256 = sha2::Sha256::new();
    let mut sha1 = sha1::Sha1::new();
    let size = crate::image::digest::read_in_pieces(path, |piece| {
        sha256.update(piece);
        sha1.update(piece);
    })?;
    Ok((Digest::from_hasher(sha256), hex::encode(sha1.finalize()), size))
}

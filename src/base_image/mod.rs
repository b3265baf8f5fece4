//! `--base IMAGE`: the image a pack builds on. Reads it (`oci:DIR[:TAG][@sha256:…]`,
//! `oci-archive:FILE[:TAG][@sha256:…]`), picks each binary's platform out of it, and tells the
//! pipeline what that platform's image holds: its layers (reused byte for byte), its config (env,
//! user, history) and which paths its layers leave in place.
//!
//! Owns reading a base into [`BaseImage`] and [`BasePlatform`]; it never writes anything. The base
//! is read through [`BaseSource`]: its root manifest or index, then each document and blob when a
//! platform's image needs it, checked against its digest and size and handed out as a file. A
//! layout or archive is one ([`LayoutImage`]); a base from a registry is another ([`RegistryBase`],
//! read lazily through `copy::read_lazily`: its blobs are fetched once into the layer cache when
//! read, and a push to the base's own registry mounts them). The pack pipeline sees only
//! [`BasePlatform`]. Only the platforms packed are read (or, from a registry, fetched).
//!
//! Media types: the image written is OCI. A base in Docker schema2 media types keeps its layers'
//! bytes and digests; their descriptors say `application/vnd.oci.image.layer.v1.tar+gzip`, since a
//! Docker `rootfs.diff.tar.gzip` blob is exactly a gzip-compressed tar, which is what that OCI
//! media type names, and an OCI manifest lists OCI layer types. Every image of a pack is then of
//! one family, whatever its base; an uncompressed layer becomes
//! `application/vnd.oci.image.layer.v1.tar`.
//! Non-distributable (foreign) layers are refused: their blobs are not in the layout.

mod files;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oci_spec::image::History;
use serde_json::Value;

pub(crate) use files::PresentPaths;

use crate::dest::DestSpec;
use crate::image::blob::read_all;
use crate::image::{Blob, Compression, Digest, Layer};
use crate::layout::read::{LayoutImage, Select, DOCKER_LIST_MEDIA_TYPE};
use crate::platform::Platform;

/// An uncompressed layer.
const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// The annotations a packed image carries about its base (image-spec `annotations.md`).
pub(crate) const BASE_NAME_ANNOTATION: &str = "org.opencontainers.image.base.name";
pub(crate) const BASE_DIGEST_ANNOTATION: &str = "org.opencontainers.image.base.digest";

/// A parsed `--base`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BaseSpec {
    /// As the user wrote it.
    pub(crate) text: String,
    pub(crate) source: BaseTransport,
    pub(crate) tag: Option<String>,
    /// `@sha256:…`: the manifest or index the base must be.
    pub(crate) digest: Option<Digest>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BaseTransport {
    Layout(PathBuf),
    Archive(PathBuf),
    /// `docker://REF`: read through the registry client.
    Registry(String),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BaseImageError {
    #[error("--base {0:?}: expected oci:DIR[:TAG], oci-archive:FILE[:TAG] or docker://REF, each with an optional @sha256:DIGEST")]
    Spec(String),
    #[error("--base {base}: has no {wanted} image (it has {})", has.join(", "))]
    NoPlatform { base: String, wanted: String, has: Vec<String> },
    #[error("--base {base}: layer {digest} has media type {media_type}, which a base may not have")]
    LayerType { base: String, digest: Digest, media_type: String },
    #[error(
        "--base {base}: layer {digest} does not hold what its config says (its content hashes to {actual}, the config says {expected})"
    )]
    DiffId { base: String, digest: Digest, actual: Digest, expected: String },
    #[error("--base {base}: {reason}")]
    Malformed { base: String, reason: String },
}

impl BaseImageError {
    pub(crate) fn hint(&self) -> Option<String> {
        Some(match self {
            BaseImageError::Spec(_) => "for example --base oci:./base:1.0 or --base oci-archive:base.tar@sha256:…".into(),
            BaseImageError::NoPlatform { wanted, .. } => {
                format!("use a base that has a {wanted} image, or build the program for a platform the base has")
            }
            BaseImageError::LayerType { .. } => {
                "copy the base with gzip layers first: skopeo copy --dest-compress-format gzip --dest-compress oci:SRC oci:DEST".into()
            }
            BaseImageError::DiffId { .. } | BaseImageError::Malformed { .. } => return None,
        })
    }
}

impl std::str::FromStr for BaseSpec {
    type Err = BaseImageError;

    fn from_str(text: &str) -> Result<Self, BaseImageError> {
        let spec_err = || BaseImageError::Spec(text.to_string());
        if let Some(reference) = text.strip_prefix("docker://") {
            reference.parse::<crate::registry::Reference>().map_err(|_| spec_err())?;
            return Ok(BaseSpec {
                text: text.to_string(),
                source: BaseTransport::Registry(reference.to_string()),
                tag: None,
                digest: None,
            });
        }
        let (rest, digest) = match text.rsplit_once('@') {
            Some((rest, digest)) if digest.starts_with("sha256:") => (rest, Some(Digest::parse(digest).map_err(|_| spec_err())?)),
            _ => (text, None),
        };
        // `oci:DIR@sha256:…` has no tag; `oci:DIR:TAG@sha256:…` has both.
        let (source, tag) = match rest.parse::<DestSpec>().map_err(|_| spec_err())? {
            DestSpec::OciLayout { dir, tag } => (BaseTransport::Layout(dir), tag),
            DestSpec::OciArchive { file, tag } => (BaseTransport::Archive(file), tag),
            _ => return Err(spec_err()),
        };
        Ok(BaseSpec { text: text.to_string(), source, tag: tag.map(|t| t.to_string()), digest })
    }
}

impl BaseSpec {
    /// The `org.opencontainers.image.base.name` of images built on it: a registry reference as
    /// given; for a local layout or archive, the transport and the last component of its path with
    /// the tag and digest as given (`oci:busybox:1.36`), so that the annotation, and the image's
    /// digest, do not depend on where the base sits on this machine.
    pub(crate) fn annotation_name(&self) -> String {
        let local = |transport: &str, path: &Path| {
            // `oci:.` and `oci:..` are named after the folder they are.
            let real = path.file_name().is_none().then(|| std::fs::canonicalize(path).ok()).flatten();
            let name = real.as_deref().unwrap_or(path).file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_else(|| path.display().to_string());
            let tag = self.tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default();
            let digest = self.digest.map(|d| format!("@{d}")).unwrap_or_default();
            format!("{transport}:{name}{tag}{digest}")
        };
        match &self.source {
            BaseTransport::Layout(dir) => local("oci", dir),
            BaseTransport::Archive(file) => local("oci-archive", file),
            BaseTransport::Registry(reference) => reference.clone(),
        }
    }
}

/// Where a base image's documents and blobs come from. Everything it hands out has been checked
/// against the digest and size asked for.
pub(crate) trait BaseSource: Send + Sync {
    /// The manifest or index the base names.
    fn root(&self) -> &Blob;
    /// A manifest of the base, in memory.
    fn document(&self, media_type: &str, digest: Digest, size: u64) -> Result<Blob>;
    /// A config or layer of the base, as a file.
    fn blob(&self, media_type: &str, digest: Digest, size: u64) -> Result<Blob>;
}

/// A base in a registry, read lazily: its manifests and index now (checked); each config and layer
/// only when a platform packed needs it, fetched once into the layer cache. Pushed to the base's
/// own registry, its layers are mounted from the base's repository, never uploaded.
struct RegistryBase(crate::image::stored::StoredImage);

impl BaseSource for RegistryBase {
    fn root(&self) -> &Blob {
        &self.0.root
    }

    fn document(&self, media_type: &str, digest: Digest, size: u64) -> Result<Blob> {
        let found = self.0.manifests.iter().find(|m| m.digest == digest && m.size == size);
        let found = found.ok_or_else(|| anyhow::anyhow!("the registry gave no manifest {digest} of {size} bytes"))?;
        Ok(Blob { media_type: media_type.to_string(), ..found.clone() })
    }

    fn blob(&self, media_type: &str, digest: Digest, size: u64) -> Result<Blob> {
        let found = self.0.blob(&digest.to_string()).filter(|b| b.size == size);
        let found = found.ok_or_else(|| anyhow::anyhow!("the base's manifests list no blob {digest} of {size} bytes"))?;
        Ok(Blob { media_type: media_type.to_string(), ..found.clone() })
    }
}

impl BaseSource for LayoutImage {
    fn root(&self) -> &Blob {
        LayoutImage::root(self)
    }

    fn document(&self, media_type: &str, digest: Digest, size: u64) -> Result<Blob> {
        LayoutImage::document(self, media_type, digest, size)
    }

    fn blob(&self, media_type: &str, digest: Digest, size: u64) -> Result<Blob> {
        LayoutImage::blob(self, media_type, digest, size)
    }
}

/// A base image: its platforms' manifests, read and checked; each platform's config and layers are
/// read when that platform is packed. Its layers stay in its files (or in the archive's unpacked
/// folder, which lives as long as this does).
pub(crate) struct BaseImage {
    pub(crate) spec: BaseSpec,
    source: Box<dyn BaseSource>,
    /// Each platform's image: its platform and manifest.
    children: Vec<(Platform, Child)>,
}

/// A platform's manifest: an index's entry, read when that platform is packed; or the root itself.
enum Child {
    Entry { media_type: String, digest: Digest, size: u64 },
    Root,
}

/// A descriptor's media type, digest and size.
fn descriptor(value: &Value) -> Result<(String, Digest, u64), String> {
    let media_type = value["mediaType"].as_str().ok_or("a descriptor has no mediaType")?.to_string();
    let digest = Digest::parse(value["digest"].as_str().unwrap_or_default()).map_err(|e| e.to_string())?;
    let size = value["size"].as_u64().ok_or_else(|| format!("descriptor {digest} has no size"))?;
    Ok((media_type, digest, size))
}

impl BaseImage {
    /// Opens the base `spec` names; a registry's through the client `registry` sets up.
    pub(crate) fn open(spec: &BaseSpec, registry: &crate::dest::registry::RegistryContext) -> Result<BaseImage> {
        let select = Select { tag: spec.tag.as_deref(), digest: spec.digest };
        let source: Box<dyn BaseSource> = match &spec.source {
            BaseTransport::Layout(dir) => {
                Box::new(LayoutImage::from_layout(dir, select).with_context(|| format!("reading the base {}", spec.text))?)
            }
            BaseTransport::Archive(file) => {
                Box::new(LayoutImage::from_archive(file, select).with_context(|| format!("reading the base {}", spec.text))?)
            }
            BaseTransport::Registry(_) => {
                let source: crate::copy::Source = spec.text.parse()?;
                Box::new(RegistryBase(
                    crate::copy::read_lazily(&source, registry).with_context(|| format!("reading the base {}", spec.text))?,
                ))
            }
        };
        BaseImage::from_source(spec.clone(), source).with_context(|| format!("reading the base {}", spec.text))
    }

    /// The base `source` holds: its root, and each platform's manifest.
    pub(crate) fn from_source(spec: BaseSpec, source: Box<dyn BaseSource>) -> Result<BaseImage> {
        let malformed = |reason: String| BaseImageError::Malformed { base: spec.text.clone(), reason };
        let root_blob = source.root().clone();
        let root: Value =
            serde_json::from_slice(&read_all(&root_blob)?).map_err(|e| malformed(format!("its manifest is not JSON: {e}")))?;
        let mut children = Vec::new();
        let is_index = root["manifests"].is_array()
            || matches!(root_blob.media_type.as_str(), crate::image::config::INDEX_MEDIA_TYPE | DOCKER_LIST_MEDIA_TYPE);
        if is_index {
            for entry in root["manifests"].as_array().into_iter().flatten() {
                let (media_type, digest, size) = descriptor(entry).map_err(&malformed)?;
                let platform = match platform_of(&entry["platform"]) {
                    Some(platform) => platform,
                    None => {
                        let manifest = source.document(&media_type, digest, size)?;
                        platform_of(&config_of(source.as_ref(), &manifest)?).ok_or_else(|| malformed(format!("{digest}: no platform")))?
                    }
                };
                // Attestations (buildkit's `unknown/unknown`) are no platform's image.
                if platform.os != "unknown" {
                    children.push((platform, Child::Entry { media_type, digest, size }));
                }
            }
        } else {
            let config = config_of(source.as_ref(), &root_blob)?;
            let platform = platform_of(&config).ok_or_else(|| malformed("its config names no os and architecture".into()))?;
            children.push((platform, Child::Root));
        }
        Ok(BaseImage { spec, source, children })
    }

    /// The image of `platform` in the base: its manifest and config read, its layers listed and
    /// checked against the config's diff IDs.
    pub(crate) fn for_platform(&self, platform: &Platform) -> Result<BasePlatform> {
        let base = self.spec.text.clone();
        let Some((_, entry)) = self.children.iter().find(|(p, _)| same_platform(p, platform)) else {
            let has = self.children.iter().map(|(p, _)| p.to_string()).collect();
            return Err(BaseImageError::NoPlatform { base, wanted: platform.to_string(), has }.into());
        };
        let malformed = |reason: String| BaseImageError::Malformed { base: base.clone(), reason };
        let reading = || format!("reading the base {base}");
        let manifest_blob = match entry {
            Child::Entry { media_type, digest, size } => self.source.document(media_type, *digest, *size).with_context(reading)?,
            Child::Root => self.source.root().clone(),
        };
        let manifest: Value = serde_json::from_slice(&read_all(&manifest_blob)?).map_err(|e| malformed(e.to_string()))?;
        let config = config_of(self.source.as_ref(), &manifest_blob).with_context(reading)?;
        let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let descriptors = manifest["layers"].as_array().cloned().unwrap_or_default();
        if diff_ids.len() != descriptors.len() {
            return Err(malformed(format!("its config lists {} layers, its manifest {}", diff_ids.len(), descriptors.len())).into());
        }
        // The base's own CA bundle is kept, for --extra-ca to be appended to.
        let mut present = PresentPaths::keeping(&[crate::rootfs::base::CA_BUNDLE_PATH]);
        let mut layers = Vec::new();
        for (descriptor_value, expected) in descriptors.iter().zip(diff_ids) {
            let (media_type, digest, size) = descriptor(descriptor_value).map_err(&malformed)?;
            let compression = match media_type.as_str() {
                "application/vnd.oci.image.layer.v1.tar+gzip" | "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
                    Some(Compression::Gzip)
                }
                "application/vnd.oci.image.layer.v1.tar+zstd" => Some(Compression::Zstd),
                OCI_TAR | "application/vnd.docker.image.rootfs.diff.tar" => None,
                _ => return Err(BaseImageError::LayerType { base, digest, media_type }.into()),
            };
            let oci_type = compression.map_or(OCI_TAR, Compression::media_type);
            let blob = self.source.blob(oci_type, digest, size).with_context(reading)?;
            let listed = present.apply(blob.open()?, compression).with_context(|| {
                format!("--base {base}: layer {digest} is not a {} tar archive", compression.map_or("plain".to_string(), |c| c.to_string()))
            })?;
            if listed.diff_id.to_string() != expected {
                return Err(BaseImageError::DiffId { base, digest, actual: listed.diff_id, expected: expected.to_string() }.into());
            }
            layers.push(Layer { blob, diff_id: listed.diff_id, uncompressed_size: listed.uncompressed_size, compression });
        }
        let history = match config.get("history") {
            Some(Value::Array(entries)) => {
                serde_json::from_value::<Vec<History>>(Value::Array(entries.clone())).map_err(|e| malformed(format!("its history: {e}")))?
            }
            _ => Vec::new(),
        };
        Ok(BasePlatform {
            name: self.spec.annotation_name(),
            manifest_digest: manifest_blob.digest,
            layers,
            history,
            config: config.get("config").cloned().unwrap_or(Value::Null),
            present,
        })
    }
}

/// The config of the image whose manifest is `manifest`.
fn config_of(source: &dyn BaseSource, manifest: &Blob) -> Result<Value> {
    let value: Value = serde_json::from_slice(&read_all(manifest)?).with_context(|| format!("manifest {} is not JSON", manifest.digest))?;
    let (media_type, digest, size) = descriptor(&value["config"]).map_err(|e| anyhow::anyhow!("manifest {}: {e}", manifest.digest))?;
    let blob = source.blob(&media_type, digest, size)?;
    serde_json::from_slice(&read_all(&blob)?).with_context(|| format!("config {digest} is not JSON"))
}

/// The platform of an index entry's `platform`, or of a config.
fn platform_of(value: &Value) -> Option<Platform> {
    let os = value["os"].as_str()?;
    let architecture = value["architecture"].as_str()?;
    Some(Platform { os: os.to_string(), architecture: architecture.to_string(), variant: value["variant"].as_str().map(str::to_string) })
}

/// The same os, architecture and variant; arm64 without a variant is v8 and arm is v7, as
/// containerd's platform normaliser says.
fn same_platform(a: &Platform, b: &Platform) -> bool {
    let variant = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
        ("arm64", None) => Some("v8".to_string()),
        ("arm", None) => Some("v7".to_string()),
        (_, variant) => variant.map(str::to_string),
    };
    a.os == b.os && a.architecture == b.architecture && variant(a) == variant(b)
}

/// One platform's image of the base, as a pack builds on it.
pub(crate) struct BasePlatform {
    /// `org.opencontainers.image.base.name`.
    pub(crate) name: String,
    /// `org.opencontainers.image.base.digest`: this platform's manifest.
    pub(crate) manifest_digest: Digest,
    /// Bottom first, their blobs as the base has them.
    pub(crate) layers: Vec<Layer>,
    pub(crate) history: Vec<History>,
    /// The config's `config` object: Env, User, WorkingDir, ExposedPorts, Labels, ...
    pub(crate) config: Value,
    /// The paths its layers leave in place.
    pub(crate) present: PresentPaths,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_is_a_layout_or_archive_with_an_optional_tag_and_digest() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let spec: BaseSpec = format!("oci:/tmp/base:1.0@{digest}").parse().unwrap();
        assert_eq!(spec.source, BaseTransport::Layout("/tmp/base".into()));
        assert_eq!(spec.tag.as_deref(), Some("1.0"));
        assert_eq!(spec.digest, Some(Digest::parse(&digest).unwrap()));
        assert_eq!(spec.annotation_name(), format!("oci:base:1.0@{digest}"));
        let spec: BaseSpec = format!("oci-archive:dir/base.tar@{digest}").parse().unwrap();
        assert_eq!((spec.source.clone(), spec.tag.clone()), (BaseTransport::Archive("dir/base.tar".into()), None));
        assert_eq!(spec.annotation_name(), format!("oci-archive:base.tar@{digest}"));
        let spec: BaseSpec = "docker://ghcr.io/me/base:1".parse().unwrap();
        assert_eq!(spec.annotation_name(), "ghcr.io/me/base:1");
        assert!("docker-archive:x.tar".parse::<BaseSpec>().is_err());
        assert!("oci:x@sha256:abc".parse::<BaseSpec>().is_err());
    }

    #[test]
    fn arm64_without_a_variant_is_v8() {
        assert!(same_platform(&Platform::linux("arm64", None), &Platform::linux("arm64", Some("v8"))));
        assert!(!same_platform(&Platform::linux("arm", Some("v7")), &Platform::linux("arm", Some("v6"))));
        assert!(same_platform(&Platform::linux("arm", None), &Platform::linux("arm", Some("v7"))));
        assert!(!same_platform(&Platform::linux("amd64", None), &Platform::linux("arm64", None)));
    }
}

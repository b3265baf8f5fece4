//! What a pack is asked to do, checked: the front end builds these from flags and cargo metadata.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::base_image::BaseSpec;
use crate::dest::registry::RegistryContext;
use crate::dest::DestSpec;
use crate::image::config::RuntimeSettings;
use crate::image::Compression;
use crate::needs::NeedsOptions;
use crate::registry::Tag;
use crate::rootfs::base::BaseOptions;
use crate::rootfs::caps::Capabilities;
use crate::rootfs::extra::ExtraFiles;
use crate::sbom::SbomFormat;

/// Everything a pack needs.
#[derive(Clone, Debug)]
pub(crate) struct PackOptions {
    pub(crate) binaries: Vec<PathBuf>,
    /// `--also`: further programs of the image's platform, placed beside the main one.
    pub(crate) also: Vec<AlsoSpec>,
    /// Each destination, with the `--output` text that named it.
    pub(crate) outputs: Vec<(String, DestSpec)>,
    /// Tags for destinations that name none.
    pub(crate) tags: Vec<Tag>,
    /// `--path`: where the binary goes in the image (`DIR/` keeps its name).
    pub(crate) path: Option<String>,
    pub(crate) settings: RuntimeSettings,
    pub(crate) annotations: BTreeMap<String, String>,
    /// `--add`, `--mkdir`, `--chown-to-user`.
    pub(crate) extra: ExtraFiles,
    /// `--cap`: the file capabilities of each program.
    pub(crate) caps: Capabilities,
    pub(crate) base: BaseOptions,
    /// `--base`: the image the binaries go on, instead of scratchpack's own base layer.
    pub(crate) base_image: Option<BaseSpec>,
    /// `--inherit-labels`: the base image's labels are kept (under the flags' own).
    pub(crate) inherit_labels: bool,
    pub(crate) compression: Compression,
    /// `--strip`: pack each program without its debug sections and static symbol table.
    pub(crate) strip: bool,
    /// The time of every layer's entries but the base's and zoneinfo's (`SOURCE_DATE_EPOCH`).
    pub(crate) source_date_epoch: u64,
    /// The config's `created` (and its history's), in seconds since 1970.
    pub(crate) created: u64,
    pub(crate) registry: RegistryContext,
    pub(crate) needs: NeedsOptions,
    pub(crate) sbom: SbomOptions,
    /// `--max-size`: the largest each platform's image may be, compressed.
    pub(crate) max_size: Option<super::ByteSize>,
    pub(crate) sign: SignOptions,
}

/// `--sign-key` and `--provenance`, and what the provenance says about the build.
#[derive(Clone, Debug, Default)]
pub(crate) struct SignOptions {
    pub(crate) signer: Option<std::sync::Arc<dyn crate::sign::Signer>>,
    pub(crate) provenance: bool,
    /// The cargo package, version and profile, under `cargo scratchpack`.
    pub(crate) cargo: Option<CargoBuild>,
    /// The commit built, when the sources are in git.
    pub(crate) git_commit: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct CargoBuild {
    pub(crate) package: String,
    pub(crate) version: String,
    pub(crate) profile: String,
}

/// One `--also PROGRAM[:DEST]`: a further program, inspected and resolved like the main one. DEST
/// follows `--path`'s rule: `/usr/local/bin/NAME` without it, and `DIR/` keeps the program's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AlsoSpec {
    pub(crate) file: PathBuf,
    pub(crate) dest: Option<String>,
}

impl std::str::FromStr for AlsoSpec {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (file, dest) = match spec.split_once(':') {
            Some((file, dest)) => (file, Some(dest)),
            None => (spec, None),
        };
        if file.is_empty() || dest.is_some_and(|dest| !dest.starts_with('/')) {
            return Err(format!("{spec:?}: expected PROGRAM[:DEST], with DEST an absolute path in the image"));
        }
        Ok(AlsoSpec { file: PathBuf::from(file), dest: dest.map(str::to_string) })
    }
}

/// What the SBOM of each image is made from, besides the image itself.
#[derive(Clone, Debug, Default)]
pub(crate) struct SbomOptions {
    pub(crate) format: SbomFormat,
    pub(crate) dir: Option<PathBuf>,
    /// The package version, when cargo knows it.
    pub(crate) version: Option<String>,
    /// cargo metadata's `source` of each (crate, version), for exact purls.
    pub(crate) cargo_sources: Option<BTreeMap<(String, String), String>>,
}

impl PackOptions {
    /// The existing folder that holds the first `oci:` layout: layers staged there are hard-linked
    /// into the layout instead of copied.
    pub(super) fn local_output_folder(&self) -> Option<PathBuf> {
        self.outputs.iter().find_map(|(_, spec)| match spec {
            DestSpec::OciLayout { dir, .. } => {
                let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
                parent.is_dir().then(|| parent.to_path_buf())
            }
            _ => None,
        })
    }

    /// Whether an archive output is this process's stdout (`oci-archive:/dev/stdout`): then the
    /// result lines go to stderr, so that stdout carries the archive alone.
    pub(crate) fn writes_to_stdout(&self) -> bool {
        self.outputs.iter().any(|(_, spec)| match spec {
            DestSpec::OciArchive { file, .. } | DestSpec::DockerArchive { file, .. } => crate::atomic::is_stdout(file),
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn also_takes_a_program_and_an_optional_absolute_destination() {
        let parse = |text: &str| text.parse::<AlsoSpec>();
        assert_eq!(parse("bin/hc"), Ok(AlsoSpec { file: "bin/hc".into(), dest: None }));
        assert_eq!(parse("bin/hc:/usr/bin/"), Ok(AlsoSpec { file: "bin/hc".into(), dest: Some("/usr/bin/".into()) }));
        assert_eq!(parse("hc:bin/hc").unwrap_err(), "\"hc:bin/hc\": expected PROGRAM[:DEST], with DEST an absolute path in the image");
        assert!(parse(":/usr/bin/hc").is_err());
    }
}

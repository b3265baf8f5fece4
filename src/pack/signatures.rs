//! What a signing key adds to a pack: a cosign signature of every manifest and of the index, for
//! each destination (the signed payload names where the image was put), and the attestations of
//! each image: SLSA v1 provenance (`--provenance`) and, with a key, the SBOM as a signed in-toto
//! statement of its own predicate type.
//!
//! Attestations are artifacts beside the image, never part of it: their times and builder vary
//! from run to run, while the image's digest stays what the same inputs always give.

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::plan::BinaryPlan;
use super::PackOptions;
use crate::dest::{tags_or, DestSpec};
use crate::image::referrers::Attachment;
use crate::image::{Blob, Image, ImageOrIndex};
use crate::sign::{cosign, dsse, Signer};

pub(crate) const SLSA_PROVENANCE: &str = "https://slsa.dev/provenance/v1";
const BUILD_TYPE: &str = "https://github.com/scratchpack/scratchpack/blob/main/docs/provenance.md";

/// The `docker-reference` a signature names for an output: `HOST/REPO` for a registry (as cosign
/// signs it), and for a layout or archive the reference scratchpack prints for it, without the
/// digest (`oci:DIR:TAG`); `None` where no signature can be kept (docker-archive).
pub(crate) fn docker_reference(spec: &DestSpec, default_tags: &[crate::registry::Tag]) -> Option<String> {
    let first_tag = |tag| tags_or(tag, default_tags).first().map(ToString::to_string).unwrap_or_else(|| "latest".into());
    match spec {
        DestSpec::Registry { reference } => Some(reference.repository.to_string()),
        DestSpec::OciLayout { dir, tag } => Some(format!("oci:{}:{}", dir.display(), first_tag(tag))),
        DestSpec::OciArchive { file, tag } => Some(format!("oci-archive:{}:{}", file.display(), first_tag(tag))),
        // A docker archive, and an engine's image store, keep no signatures.
        DestSpec::DockerArchive { .. } | DestSpec::DockerDaemon { .. } | DestSpec::Podman { .. } => None,
    }
}

/// A signature of each platform manifest and of the index, naming `docker_reference`.
pub(crate) fn signatures(signer: &dyn Signer, image: &ImageOrIndex, docker_reference: &str) -> Result<Vec<Attachment>> {
    let mut subjects: Vec<&Blob> = image.images().iter().map(|i| &i.manifest).collect();
    if let ImageOrIndex::Index { index, .. } = image {
        subjects.push(index);
    }
    cosign::sign_all(signer, &subjects, docker_reference).with_context(|| format!("signing for {docker_reference}"))
}

/// When the pack began and ended, for the provenance.
pub(crate) struct Times {
    pub(crate) started: String,
    pub(crate) finished: String,
}

/// The in-toto statements (predicate type, bytes) each subject gets: per image, its provenance
/// and SBOM statements; for the index, its provenance. Each set becomes one attestation artifact
/// (cosign's `.att`), DSSE envelopes signed by `signer` (unsigned without one).
pub(crate) struct Attestations<'a> {
    pub(crate) options: &'a PackOptions,
    pub(crate) plans: &'a [BinaryPlan],
    pub(crate) programs: &'a [std::path::PathBuf],
    pub(crate) ca_version: Option<&'a str>,
    pub(crate) times: Times,
}

impl Attestations<'_> {
    /// The attestation artifacts of `image`. `sboms` are the SBOM attachments made for its images
    /// (attested only with a key).
    pub(crate) fn attach(&self, image: &ImageOrIndex, sboms: &[Attachment], signer: Option<&dyn Signer>) -> Result<Vec<Attachment>> {
        let provenance = self.options.sign.provenance;
        let mut out = Vec::new();
        for (i, platform_image) in image.images().iter().enumerate() {
            let mut statements = Vec::new();
            if provenance {
                statements.push((SLSA_PROVENANCE.to_string(), self.provenance(&[(i, platform_image)])?));
            }
            if signer.is_some() {
                for sbom in sboms.iter().filter(|a| a.subject.digest == platform_image.manifest.digest) {
                    statements.push(sbom_statement(&self.subject_name(i), platform_image, sbom)?);
                }
            }
            out.extend(envelopes(&platform_image.manifest, statements, signer)?);
        }
        if let (ImageOrIndex::Index { index, images }, true) = (image, provenance) {
            let all: Vec<(usize, &Image)> = images.iter().enumerate().collect();
            let mut statement = self.provenance(&all)?;
            // The index's provenance names the index too.
            let mut value: Value = serde_json::from_slice(&statement)?;
            value["subject"]
                .as_array_mut()
                .expect("a statement has subjects")
                .insert(0, json!({"name": "index", "digest": {"sha256": index.digest.hex()}}));
            statement = crate::image::config::canonical_json(&value);
            out.extend(envelopes(index, vec![(SLSA_PROVENANCE.to_string(), statement)], signer)?);
        }
        Ok(out)
    }

    fn subject_name(&self, i: usize) -> String {
        let plan = &self.plans[i];
        format!("{}@{}", plan.info.file_name(), plan.info.platform)
    }

    /// The SLSA v1 provenance statement of `images` (each with its plan's index).
    fn provenance(&self, images: &[(usize, &Image)]) -> Result<Vec<u8>> {
        let subjects: Vec<(String, crate::image::Digest)> =
            images.iter().map(|(i, image)| (self.subject_name(*i), image.manifest.digest)).collect();
        let predicate = json!({
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": self.external_parameters(),
                "internalParameters": {
                    "scratchpack": env!("CARGO_PKG_VERSION"),
                    "sourceDateEpoch": self.options.source_date_epoch,
                },
                "resolvedDependencies": self.resolved_dependencies(images)?,
            },
            "runDetails": {
                "builder": {"id": builder_id(&|name| std::env::var(name).ok().filter(|v| !v.is_empty())), "version": {"scratchpack": env!("CARGO_PKG_VERSION")}},
                "metadata": {"startedOn": self.times.started, "finishedOn": self.times.finished},
            },
        });
        Ok(dsse::statement(&subjects, SLSA_PROVENANCE, predicate))
    }

    /// The flags that change the image, and the cargo package and profile.
    fn external_parameters(&self) -> Value {
        let o = self.options;
        let s = &o.settings;
        let ca_bundle = match &o.base.ca_bundle {
            Some(crate::rootfs::base::CaBundle::Builtin) | None => "builtin".to_string(),
            Some(crate::rootfs::base::CaBundle::Host) => "host".to_string(),
            Some(crate::rootfs::base::CaBundle::None) => "none".to_string(),
            Some(crate::rootfs::base::CaBundle::File(path)) => path.display().to_string(),
        };
        let mut params = json!({
            "binaries": o.binaries.iter().map(|b| crate::elf::file_name(b)).collect::<Vec<_>>(),
            "path": o.path,
            "user": s.user,
            "env": s.env,
            "cmd": s.cmd,
            "workdir": s.workdir,
            "expose": s.exposed_ports,
            "labels": s.labels,
            "annotations": o.annotations,
            "add": o.extra.add.iter().map(|a| format!("{}:{}", a.source.display(), a.dest)).collect::<Vec<_>>(),
            "mkdir": o.extra.mkdir.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "chownToUser": o.extra.chown_to_user.iter().map(|path| format!("/{path}")).collect::<Vec<_>>(),
            "caps": o.caps.to_string(),
            "also": o.also.iter().map(|a| format!("{}{}", crate::elf::file_name(&a.file), a.dest.as_deref().map(|d| format!(":{d}")).unwrap_or_default())).collect::<Vec<_>>(),
            "caBundle": ca_bundle,
            "extraCa": o.base.extra_ca.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "compression": o.compression.to_string(),
            "strip": o.strip,
            "tzdata": o.needs.tzdata.to_string(),
            "tzdataSource": o.needs.tzdata_source.to_string(),
            "sysroot": o.needs.sysroot.as_ref().map(|p| p.display().to_string()),
            "libraryPath": o.needs.library_path,
            "sbom": o.sbom.format.to_string(),
        });
        if let Some(cargo) = &o.sign.cargo {
            params["cargo"] = json!({"package": cargo.package, "version": cargo.version, "profile": cargo.profile});
        }
        params
    }

    /// The programs, the base layer (scratchpack's own base: no base image is pulled), the CA
    /// bundle and time zone releases, and the source commit.
    fn resolved_dependencies(&self, images: &[(usize, &Image)]) -> Result<Vec<Value>> {
        let mut deps = Vec::new();
        for (i, image) in images {
            let program = &self.programs[*i];
            let (sha256, _, _) = crate::sbom::hash_file(program).with_context(|| format!("{}: cannot read", program.display()))?;
            let plan = &self.plans[*i];
            deps.push(json!({
                "name": plan.info.file_name(),
                "digest": {"sha256": sha256.hex()},
                "annotations": {"platform": plan.info.platform.to_string(), "imagePath": format!("/{}", plan.target)},
            }));
            if let Some(base) = image.layers.first() {
                deps.push(json!({"name": "scratchpack base layer", "digest": {"sha256": base.blob.digest.hex()}, "annotations": {"platform": plan.info.platform.to_string()}}));
            }
        }
        deps.dedup_by(|a, b| a["digest"] == b["digest"]);
        if let Some(version) = self.ca_version {
            deps.push(json!({"name": "ca-certificates", "annotations": {"version": version}}));
        }
        if self.plans.iter().any(|p| p.zoneinfo == Some(crate::needs::Zoneinfo::Builtin)) {
            deps.push(json!({"name": "tzdata", "annotations": {"version": crate::rootfs::zoneinfo::builtin_version()}}));
        }
        if let Some(commit) = &self.options.sign.git_commit {
            let mut dep = json!({"name": "source", "digest": {"gitCommit": commit}});
            if let Some(uri) = source_uri(&|name| std::env::var(name).ok().filter(|v| !v.is_empty())) {
                dep["uri"] = json!(format!("git+{uri}@{commit}"));
            }
            deps.push(dep);
        }
        Ok(deps)
    }
}

/// The SBOM of `image` as an in-toto statement of the SBOM's own predicate type.
fn sbom_statement(name: &str, image: &Image, sbom: &Attachment) -> Result<(String, Vec<u8>)> {
    let payload = sbom.blobs.iter().find(|b| b.media_type == sbom.artifact_type).context("an SBOM attachment holds its document")?;
    let bytes = crate::image::blob::read_all(payload)?;
    let document: Value = serde_json::from_slice(&bytes).context("the SBOM is JSON")?;
    let predicate_type = match sbom.artifact_type.as_str() {
        "application/spdx+json" => "https://spdx.dev/Document",
        _ => "https://cyclonedx.org/bom",
    };
    Ok((predicate_type.to_string(), dsse::statement(&[(name.to_string(), image.manifest.digest)], predicate_type, document)))
}

/// One attestation artifact for `subject` holding `statements`, each in a DSSE envelope.
fn envelopes(subject: &Blob, statements: Vec<(String, Vec<u8>)>, signer: Option<&dyn Signer>) -> Result<Option<Attachment>> {
    if statements.is_empty() {
        return Ok(None);
    }
    let wrapped = statements
        .into_iter()
        .map(|(predicate_type, statement)| Ok((predicate_type, dsse::envelope(&statement, signer)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(cosign::attestations(subject, wrapped)))
}

/// Who built: the CI run when there is one (GitHub Actions, GitLab CI), else this machine's
/// scratchpack.
pub(crate) fn builder_id(env: &dyn Fn(&str) -> Option<String>) -> String {
    if env("GITHUB_ACTIONS").as_deref() == Some("true") {
        if let (Some(repository), Some(run)) = (env("GITHUB_REPOSITORY"), env("GITHUB_RUN_ID")) {
            let server = env("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
            let attempt = env("GITHUB_RUN_ATTEMPT").map(|a| format!("/attempts/{a}")).unwrap_or_default();
            return format!("{server}/{repository}/actions/runs/{run}{attempt}");
        }
    }
    if env("GITLAB_CI").is_some() {
        if let Some(url) = env("CI_JOB_URL") {
            return url;
        }
    }
    "urn:scratchpack:builder:local".to_string()
}

/// The source repository's URL as CI names it (never a local remote, which may carry credentials).
fn source_uri(env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let (Some(server), Some(repository)) = (env("GITHUB_SERVER_URL"), env("GITHUB_REPOSITORY")) {
        return Some(format!("{server}/{repository}"));
    }
    env("CI_PROJECT_URL")
}

/// The commit being built, as CI names it, else `git rev-parse HEAD` here.
pub(crate) fn git_commit() -> Option<String> {
    let from_env = ["GITHUB_SHA", "CI_COMMIT_SHA"].iter().find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    from_env.or_else(|| {
        let output = std::process::Command::new("git").args(["rev-parse", "HEAD"]).stderr(std::process::Stdio::null()).output().ok()?;
        let text = String::from_utf8(output.stdout).ok()?.trim().to_string();
        (output.status.success() && text.len() >= 40 && text.bytes().all(|b| b.is_ascii_hexdigit())).then_some(text)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_is_the_ci_run_when_there_is_one() {
        let github = |name: &str| match name {
            "GITHUB_ACTIONS" => Some("true".to_string()),
            "GITHUB_REPOSITORY" => Some("org/app".to_string()),
            "GITHUB_RUN_ID" => Some("42".to_string()),
            _ => None,
        };
        assert_eq!(builder_id(&github), "https://github.com/org/app/actions/runs/42");
        let gitlab = |name: &str| match name {
            "GITLAB_CI" => Some("true".to_string()),
            "CI_JOB_URL" => Some("https://gitlab.example/org/app/-/jobs/7".to_string()),
            _ => None,
        };
        assert_eq!(builder_id(&gitlab), "https://gitlab.example/org/app/-/jobs/7");
        assert_eq!(builder_id(&|_| None), "urn:scratchpack:builder:local");
    }
}

//! SBOMs from cargo-auditable data: the crate list equals cargo's runtime dependency set, the SBOM
//! sits beside the image in an OCI layout and is found through the referrers tag on a registry
//! without the referrers API (distribution 2.8).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::*;
use crate::util::*;

/// The crates cargo resolves for the package's normal (runtime) dependencies, root included.
fn runtime_crates(ws: &Path) -> BTreeSet<(String, String)> {
    let output = run_ok(Command::new("cargo").args(["metadata", "--format-version", "1"]).current_dir(ws).env_remove("CARGO"));
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let root = metadata["resolve"]["root"].as_str().unwrap().to_string();
    let nodes = metadata["resolve"]["nodes"].as_array().unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let mut seen = BTreeSet::new();
    let mut queue = vec![root];
    while let Some(id) = queue.pop() {
        if !seen.insert(id.clone()) {
            continue;
        }
        let node = nodes.iter().find(|n| n["id"] == id.as_str()).unwrap();
        for dep in node["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].is_null());
            if normal {
                queue.push(dep["pkg"].as_str().unwrap().to_string());
            }
        }
    }
    seen.iter()
        .map(|id| {
            let package = packages.iter().find(|p| p["id"] == id.as_str()).unwrap();
            (package["name"].as_str().unwrap().to_string(), package["version"].as_str().unwrap().to_string())
        })
        .collect()
}

fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()
}

/// The SBOM attached to the image `tag` of `layout`, found through the referrers tag.
fn sbom_in_layout(layout: &Path, tag: &str) -> (Value, Value) {
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    let image = entries.iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag).unwrap();
    let image_digest = image["digest"].as_str().unwrap();
    let referrers_tag = format!("sha256-{}", image_digest.trim_start_matches("sha256:"));
    let referrers =
        entries.iter().find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == referrers_tag.as_str()).expect("a referrers tag");
    let referrers: Value = serde_json::from_slice(&read_blob(layout, referrers["digest"].as_str().unwrap())).unwrap();
    let artifact = &referrers["manifests"][0];
    assert_eq!(artifact["artifactType"], "application/spdx+json");
    let manifest: Value = serde_json::from_slice(&read_blob(layout, artifact["digest"].as_str().unwrap())).unwrap();
    assert_eq!(manifest["subject"]["digest"], image_digest);
    let sbom: Value = serde_json::from_slice(&read_blob(layout, manifest["layers"][0]["digest"].as_str().unwrap())).unwrap();
    (manifest, sbom)
}

/// The SPDX project's own validator accepts the document.
fn assert_valid_spdx(document: &Path) {
    let validated = Command::new("pyspdxtools").arg("-i").arg(document).output().expect("pyspdxtools (run scripts/install-test-deps.sh)");
    assert!(
        validated.status.success(),
        "pyspdxtools refused {}:\n{}{}",
        document.display(),
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );
}

/// The cargo crates an SPDX document lists, as (name, version).
pub(crate) fn spdx_crates(sbom: &Value) -> BTreeSet<(String, String)> {
    sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["externalRefs"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["referenceLocator"].as_str().is_some_and(|l| l.starts_with("pkg:cargo/"))))
        })
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["versionInfo"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn the_sbom_lists_the_runtime_crates_and_sits_beside_the_image() {
    let (_dir, ws) = cargo_fixture("cargo-auditable");
    let layout = ws.join("layout");
    let sbom_dir = ws.join("sboms");
    let output = cargo_scratchpack(
        &ws,
        &[
            "--auditable",
            "--target",
            "x86_64-unknown-linux-musl",
            "--sbom-dir",
            sbom_dir.to_str().unwrap(),
            "--output",
            &format!("oci:{}", layout.display()),
        ],
        &[],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let (_, sbom) = sbom_in_layout(&layout, "latest");
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    let listed = spdx_crates(&sbom);
    let expected = runtime_crates(&ws);
    assert_eq!(listed, expected, "the SBOM's crates are cargo's runtime dependency set");
    assert!(!listed.iter().any(|(name, _)| name == "hex"), "dev-dependencies are not in the binary");
    let files: Vec<&str> = sbom["files"].as_array().unwrap().iter().map(|f| f["fileName"].as_str().unwrap()).collect();
    assert!(files.contains(&"./etc/ssl/certs/ca-certificates.crt"), "{files:?}");
    assert!(files.contains(&"./usr/local/bin/audited"), "{files:?}");
    assert_valid_spdx(&sbom_dir.join("audited-linux-amd64.spdx.json"));
    // The binary in the image is the one cargo built, .dep-v0 intact, so Trivy and Syft find the crates too.
    let built = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cargo-auditable-target/x86_64-unknown-linux-musl/release/audited");
    let work = temp_dir();
    let bundle = unpack(&layout, "latest", work.path());
    assert!(std::fs::read(bundle.join("rootfs/usr/local/bin/audited")).unwrap() == std::fs::read(&built).unwrap());
    assert_eq!(run_image(&layout, "latest"), "audited 42\n");
}

#[test]
fn without_auditable_data_the_sbom_lists_what_is_known_and_says_how_to_get_more() {
    let work = temp_dir();
    let layout = work.path().join("layout");
    let output = run_ok(
        scratchpack().arg("pack").arg(dynamic_c_hello()).args(["--sbom", "cyclonedx", "--output"]).arg(format!("oci:{}", layout.display())),
    );
    assert!(stderr(&output).contains("has no cargo-auditable data"), "{}", stderr(&output));
    assert!(stderr(&output).contains("cargo auditable build"), "{}", stderr(&output));
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let referrers = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().starts_with("sha256-"))
        .unwrap();
    let referrers: Value = serde_json::from_slice(&read_blob(&layout, referrers["digest"].as_str().unwrap())).unwrap();
    assert_eq!(referrers["manifests"][0]["artifactType"], "application/vnd.cyclonedx+json");
    let manifest: Value = serde_json::from_slice(&read_blob(&layout, referrers["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let bom: Value = serde_json::from_slice(&read_blob(&layout, manifest["layers"][0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(bom["specVersion"], "1.5");
    let components = bom["components"].as_array().unwrap();
    assert!(components.iter().any(|c| c["name"] == "/lib/x86_64-linux-gnu/libc.so.6" && c["type"] == "file"), "the bundled libc is listed");
    let package = components.iter().find(|c| c["name"] == "libc6").expect("with the Debian package it came from");
    assert!(package["purl"].as_str().unwrap().starts_with("pkg:deb/debian/libc6@"), "{package}");
    oci_validate(&layout, "latest");
}

#[test]
fn on_distribution_2_8_the_referrer_is_found_through_the_fallback_tag() {
    let registry = Registry::plain();
    let (_dir, ws) = cargo_fixture("cargo-auditable");
    let output = cargo_scratchpack(
        &ws,
        &["--auditable", "--target", "x86_64-unknown-linux-musl", "--output", "audited", "-q"],
        &[("SCRATCHPACK_REPO", format!("{}/team", registry.host))],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let digest = digest_of(stdout(&output).trim());
    let tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));
    let raw = skopeo_inspect(&format!("docker://{}/team/audited:{tag}", registry.host), &["--tls-verify=false", "--raw"]);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let artifact = &raw["manifests"][0];
    assert_eq!(artifact["artifactType"], "application/spdx+json");
    let manifest = skopeo_inspect(
        &format!("docker://{}/team/audited@{}", registry.host, artifact["digest"].as_str().unwrap()),
        &["--tls-verify=false", "--raw"],
    );
    assert_eq!(manifest["subject"]["digest"], digest.as_str());
    // A second push finds the same referrer listed once.
    let again = cargo_scratchpack(
        &ws,
        &["--auditable", "--target", "x86_64-unknown-linux-musl", "--output", "audited", "-q"],
        &[("SCRATCHPACK_REPO", format!("{}/team", registry.host))],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    let raw = skopeo_inspect(&format!("docker://{}/team/audited:{tag}", registry.host), &["--tls-verify=false", "--raw"]);
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 1);
}

/// An SPDX document of a dynamic program (libraries from Debian packages) passes the SPDX project's
/// validator, and its checksums are the files' own: SHA1 (which SPDX 2.3 requires) and SHA256.
#[test]
fn the_spdx_document_passes_the_spdx_validator_with_real_checksums() {
    let work = temp_dir();
    let sbom_dir = work.path().join("sboms");
    let binary = dynamic_c_hello();
    run_ok(
        scratchpack()
            .arg("pack")
            .arg(&binary)
            .args(["--sbom", "spdx", "--sbom-dir"])
            .arg(&sbom_dir)
            .arg("--output")
            .arg(format!("oci:{}", work.path().join("layout").display())),
    );
    let name = binary.file_name().unwrap().to_string_lossy().into_owned();
    let document = sbom_dir.join(format!("{name}-linux-amd64.spdx.json"));
    assert_valid_spdx(&document);
    let sbom: Value = serde_json::from_slice(&std::fs::read(&document).unwrap()).unwrap();
    let file = sbom["files"].as_array().unwrap().iter().find(|f| f["fileName"] == format!("./usr/local/bin/{name}")).unwrap();
    let sha1sum = stdout(&run_ok(Command::new("sha1sum").arg(&binary)));
    let sha256sum = stdout(&run_ok(Command::new("sha256sum").arg(&binary)));
    assert_eq!(
        file["checksums"],
        serde_json::json!([
            { "algorithm": "SHA1", "checksumValue": sha1sum.split_whitespace().next().unwrap() },
            { "algorithm": "SHA256", "checksumValue": sha256sum.split_whitespace().next().unwrap() },
        ])
    );
}

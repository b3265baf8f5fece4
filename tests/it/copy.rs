//! `scratchpack copy` between OCI layouts, OCI archives, the real registry (distribution 2.8) and
//! docker archives: every digest kept byte for byte, the index and the SBOM referrers carried
//! along, skopeo reading every step; Docker schema 2 images read, schema 1 refused.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use crate::support::hostile::{Hostile, Reply};
use crate::support::*;
use crate::util::*;

/// `scratchpack copy SRC DEST`, with its own layer cache (so that blobs really come over the wire).
pub fn copy(source: &str, dest: &str, cache: &Path) -> Output {
    let mut cmd = scratchpack();
    cmd.env("SCRATCHPACK_CACHE_DIR", cache).args(["copy", source, dest]);
    cmd.output().unwrap()
}

pub fn copy_ok(source: &str, dest: &str, cache: &Path) -> String {
    let output = copy(source, dest, cache);
    assert!(output.status.success(), "copy {source} {dest} failed:\n{}", stderr(&output));
    stdout(&output).trim().to_string()
}

/// `skopeo inspect --raw`: the manifest or index bytes as skopeo reads them.
pub fn skopeo_raw(reference: &str) -> Vec<u8> {
    run_ok(Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", reference])).stdout
}

/// Every blob digest of a layout.
fn blob_set(layout: &Path) -> BTreeSet<String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
        .collect()
}

/// `tag → digest` of every entry of a layout's index.json.
fn tagged(layout: &Path) -> BTreeSet<(String, String)> {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (m["annotations"]["org.opencontainers.image.ref.name"].as_str().unwrap().to_string(), m["digest"].as_str().unwrap().to_string())
        })
        .collect()
}

fn json_of(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn copy_oci_to_registry_to_archive_to_oci_keeps_every_digest_and_the_sbom() {
    let registry = Registry::plain();
    let work = temp_dir();
    let cache = work.path().join("cache");
    let first = work.path().join("first");
    let lines = pack(&["--sbom", "spdx", "--output", &format!("oci:{}:v1", first.display())], |cmd| {
        cmd.arg(static_c_hello()).arg(static_c_hello_arm64());
    });
    let index_digest = digest_of(&lines[0]);
    let index_bytes = std::fs::read(blob_file(&first, &index_digest)).unwrap();
    let children: Vec<String> =
        json_of(&index_bytes)["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap().to_string()).collect();
    assert_eq!(children.len(), 2);
    // One SBOM per platform's image, listed under each child's referrers tag.
    let referrer_tags: Vec<(String, String)> = tagged(&first).into_iter().filter(|(t, _)| t.starts_with("sha256-")).collect();
    assert_eq!(referrer_tags.len(), 2, "{:?}", tagged(&first));

    // oci → registry
    let remote = format!("{}/copy/hello", registry.host);
    let line = copy_ok(&format!("oci:{}:v1", first.display()), &format!("docker://{remote}:v1"), &cache);
    assert_eq!(line, format!("{remote}@{index_digest}"));
    assert_eq!(skopeo_raw(&format!("docker://{remote}:v1")), index_bytes);
    for child in &children {
        assert_eq!(skopeo_raw(&format!("docker://{remote}@{child}")), std::fs::read(blob_file(&first, child)).unwrap());
    }
    for (tag, digest) in &referrer_tags {
        assert_eq!(skopeo_raw(&format!("docker://{remote}:{tag}")), std::fs::read(blob_file(&first, digest)).unwrap(), "referrers {tag}");
    }

    // A docker archive holds one platform: an index is refused, naming the way out.
    let docker_archive = work.path().join("docker.tar");
    let refused = copy(&format!("docker://{remote}:v1"), &format!("docker-archive:{}", docker_archive.display()), &cache);
    assert_eq!(refused.status.code(), Some(1));
    let err = stderr(&refused);
    assert!(err.contains("docker-archive holds one platform's image, but this image has 2 platforms"), "{err}");
    assert!(err.contains("hint: use oci: or oci-archive: for a multi-platform image"), "{err}");
    assert!(!docker_archive.exists());

    // registry → oci-archive (the tag comes from the source)
    let archive = work.path().join("hello.tar");
    let line = copy_ok(&format!("docker://{remote}:v1"), &format!("oci-archive:{}", archive.display()), &cache);
    assert_eq!(line, format!("oci-archive:{}:v1@{index_digest}", archive.display()));
    assert_eq!(skopeo_raw(&format!("oci-archive:{}:v1", archive.display())), index_bytes);

    // oci-archive → oci
    let last = work.path().join("last");
    copy_ok(&format!("oci-archive:{}:v1", archive.display()), &format!("oci:{}", last.display()), &cache);
    assert_eq!(skopeo_raw(&format!("oci:{}:v1", last.display())), index_bytes);
    assert_eq!(blob_set(&last), blob_set(&first), "every blob, the SBOMs' included, came through unchanged");
    assert_eq!(tagged(&last), tagged(&first));
}

#[test]
fn a_docker_schema2_image_is_copied_and_a_pull_by_digest_keeps_it() {
    let registry = Registry::plain();
    let work = temp_dir();
    let cache = work.path().join("cache");
    let layout = work.path().join("layout");
    pack(&["--output", &format!("oci:{}:v1", layout.display())], |cmd| {
        cmd.arg(static_c_hello());
    });
    let remote = format!("{}/v2s2/hello", registry.host);
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--format", "v2s2", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{remote}:v1")),
    );
    let raw = skopeo_raw(&format!("docker://{remote}:v1"));
    assert_eq!(json_of(&raw)["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    let digest = format!("sha256:{}", hex_sha256(&raw));

    let out = work.path().join("out");
    let line = copy_ok(&format!("docker://{remote}@{digest}"), &format!("oci:{}:copied", out.display()), &cache);
    assert_eq!(line, format!("oci:{}:copied@{digest}", out.display()));
    // The layout keeps the Docker manifest as it is (skopeo's layout reader knows only OCI media
    // types there, so it is read back through another registry repository).
    assert_eq!(std::fs::read(blob_file(&out, &digest)).unwrap(), raw);
    let again = format!("{}/v2s2/again", registry.host);
    assert_eq!(copy_ok(&format!("oci:{}:copied", out.display()), &format!("docker://{again}:v1"), &cache), format!("{again}@{digest}"));
    assert_eq!(skopeo_raw(&format!("docker://{again}:v1")), raw);

    // And to a docker archive, which skopeo reads back with the same config.
    let archive = work.path().join("docker.tar");
    copy_ok(&format!("docker://{remote}:v1"), &format!("docker-archive:{}:hello:v1", archive.display()), &cache);
    let inspected = skopeo_inspect(&format!("docker-archive:{}", archive.display()), &[]);
    assert_eq!(inspected["Architecture"], "amd64");
    let config = skopeo_inspect(&format!("docker-archive:{}", archive.display()), &["--config"]);
    let original = skopeo_inspect(&format!("docker://{remote}:v1"), &["--config", "--tls-verify=false"]);
    assert_eq!(config["rootfs"], original["rootfs"]);
}

#[test]
fn a_schema1_manifest_is_refused_clearly() {
    let server = Hostile::start(|request| match request.target.as_str() {
        "/v2/" => Reply::json(200, "{}"),
        target if target.contains("/manifests/") => Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), "application/vnd.docker.distribution.manifest.v1+prettyjws".into())],
            body: br#"{"schemaVersion":1,"name":"old/app","tag":"v1","architecture":"amd64","fsLayers":[],"history":[],"signatures":[]}"#
                .to_vec(),
        },
        _ => Reply::error(404, "NOT_FOUND", "no"),
    });
    let work = temp_dir();
    let output = copy(&format!("docker://{}/old/app:v1", server.host), &format!("oci:{}", work.path().join("out").display()), work.path());
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "{}/old/app:v1: a Docker schema 1 manifest (application/vnd.docker.distribution.manifest.v1+prettyjws), which scratchpack does not read",
            server.host
        )),
        "{err}"
    );
    assert!(err.contains("hint: schema 1 is deprecated"), "{err}");
    assert!(!work.path().join("out").exists(), "nothing written");
}

fn hex_sha256(bytes: &[u8]) -> String {
    pki::sha256_digest(bytes).trim_start_matches("sha256:").to_string()
}

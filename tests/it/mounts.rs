//! Copies within one registry (distribution 2.8): every layer, config and SBOM blob is mounted
//! from the source repository (`POST …/blobs/uploads/?mount=…&from=…` answered 201), never
//! downloaded and never uploaded; with token auth the token may pull from the source; a registry
//! that refuses the mount (202) gets each blob fetched once and uploaded, and the copy is the same.

use std::collections::BTreeSet;
use std::path::Path;

use crate::copy::{copy_ok, skopeo_raw};
use crate::support::*;
use crate::util::*;

const USER: &str = "mounter";
const PASSWORD: &str = "mount-secret-7";

/// Packs a two-platform image with SBOMs into a layout; returns the layout and the digests of its
/// content blobs (layers, configs and the SBOMs' blobs: every blob that is not a manifest).
fn packed(work: &Path) -> (std::path::PathBuf, BTreeSet<String>) {
    let layout = work.join("packed");
    pack(&["--sbom", "spdx", "--output", &format!("oci:{}:v1", layout.display())], |cmd| {
        cmd.arg(static_c_hello()).arg(static_c_hello_arm64());
    });
    let content = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|path| {
            let json: Option<serde_json::Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).ok();
            json.is_none_or(|j| j.get("schemaVersion").is_none())
        })
        .map(|path| format!("sha256:{}", path.file_name().unwrap().to_string_lossy()))
        .collect();
    (layout, content)
}

/// The digests of `requests` that are mount POSTs into `to` from `from` answered `status`.
fn mounts(requests: &[(String, String, u16)], to: &str, from: &str, status: u16) -> BTreeSet<String> {
    let prefix = format!("/v2/{to}/blobs/uploads/?mount=");
    let suffix = format!("&from={}", from.replace('/', "%2F"));
    requests
        .iter()
        .filter(|(m, p, s)| m == "POST" && *s == status && p.starts_with(&prefix) && p.ends_with(&suffix))
        .map(|(_, p, _)| p[prefix.len()..p.len() - suffix.len()].replace("%3A", ":"))
        .collect()
}

fn blob_gets(requests: &[(String, String, u16)]) -> Vec<String> {
    requests.iter().filter(|(m, p, _)| m == "GET" && p.contains("/blobs/sha256:")).map(|(_, p, _)| p.clone()).collect()
}

fn blob_uploads(requests: &[(String, String, u16)], repo: &str) -> usize {
    let uploads = format!("/v2/{repo}/blobs/uploads/");
    requests.iter().filter(|(m, p, _)| (m == "PUT" || m == "PATCH") && p.starts_with(&uploads)).count()
}

/// Every blob of a layout.
fn blob_set(layout: &Path) -> BTreeSet<String> {
    std::fs::read_dir(layout.join("blobs/sha256")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect()
}

#[test]
fn a_copy_within_one_registry_mounts_every_blob_and_fetches_none() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (layout, content) = packed(work.path());
    assert!(content.len() >= 6, "two layers sets, two configs, two SBOMs: {content:?}");
    let a = format!("{}/mount/a", registry.host);
    let b = format!("{}/mount/b", registry.host);
    copy_ok(&format!("oci:{}:v1", layout.display()), &format!("docker://{a}:v1"), &work.path().join("cache-1"));

    let line = copy_ok(&format!("docker://{a}:v1"), &format!("docker://{b}:v1"), &work.path().join("cache-2"));
    assert!(line.starts_with(&format!("{b}@sha256:")), "{line}");
    assert!(registry.wait_for_request("PUT", "/v2/mount/b/manifests/v1", 201), "{:?}", registry.requests());
    let requests = registry.requests();
    assert_eq!(mounts(&requests, "mount/b", "mount/a", 201), content, "every content blob mounted: {requests:?}");
    assert_eq!(blob_gets(&requests), Vec::<String>::new(), "no blob downloaded");
    assert_eq!(blob_uploads(&requests, "mount/b"), 0, "no blob uploaded: {requests:?}");
    assert!(!work.path().join("cache-2/blobs").exists(), "nothing fetched into the layer cache");
    assert_eq!(skopeo_raw(&format!("docker://{b}:v1")), skopeo_raw(&format!("docker://{a}:v1")));

    // The mounted repository holds every blob: a copy out of it is the packed layout again.
    let out = work.path().join("out");
    copy_ok(&format!("docker://{b}:v1"), &format!("oci:{}", out.display()), &work.path().join("cache-3"));
    assert_eq!(blob_set(&out), blob_set(&layout));
}

#[test]
fn a_mount_on_a_token_registry_asks_for_pull_on_the_source() {
    let tokens = TokenServer::start(USER, PASSWORD, 300);
    let registry = Registry::start(RegistryOptions { tls: false, auth: RegistryAuth::Token(tokens.registry_config()) });
    let work = temp_dir();
    let (layout, content) = packed(work.path());
    let creds = format!("{USER}:{PASSWORD}");
    let copy = |source: &str, dest: &str, cache: &str| {
        let output = scratchpack()
            .env("SCRATCHPACK_CACHE_DIR", work.path().join(cache))
            .args(["copy", source, dest, "--creds", &creds])
            .output()
            .unwrap();
        assert!(output.status.success(), "copy {source} {dest}:\n{}", stderr(&output));
        output
    };
    copy(&format!("oci:{}:v1", layout.display()), &format!("docker://{}/tok/src:v1", registry.host), "cache-1");
    let output = copy(&format!("docker://{}/tok/src:v1", registry.host), &format!("docker://{}/tok/dst:v1", registry.host), "cache-2");
    let scopes = tokens.scopes_requested();
    assert!(scopes.iter().any(|s| s == "repository:tok/dst:push,pull"), "{scopes:?}");
    assert!(scopes.iter().any(|s| s == "repository:tok/src:pull"), "{scopes:?}");
    assert!(registry.wait_for_request("PUT", "/v2/tok/dst/manifests/v1", 201), "{:?}", registry.requests());
    let requests = registry.requests();
    assert_eq!(mounts(&requests, "tok/dst", "tok/src", 201), content, "{requests:?}");
    assert_eq!(blob_gets(&requests), Vec::<String>::new());
    assert_eq!(blob_uploads(&requests, "tok/dst"), 0);
    let issued = tokens.issued_tokens();
    for secret in issued.iter().map(String::as_str).chain([PASSWORD]) {
        assert!(!stderr(&output).contains(secret) && !stdout(&output).contains(secret), "a secret leaked");
    }
}

#[test]
fn a_refused_mount_falls_back_to_fetching_and_uploading_each_blob_once() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (layout, content) = packed(work.path());
    copy_ok(&format!("oci:{}:v1", layout.display()), &format!("docker://{}/refuse/a:v1", registry.host), &work.path().join("cache-1"));
    // The registry, seen through the proxy, ignores every mount and opens an upload instead (202).
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::DropQuery { method: "POST", path_contains: "mount=", times: 1000 });

    let (a, b) = (format!("{}/refuse/a", proxy.host), format!("{}/refuse/b", proxy.host));
    copy_ok(&format!("docker://{a}:v1"), &format!("docker://{b}:v1"), &work.path().join("cache-2"));
    let requests = proxy.requests();
    assert_eq!(mounts(&requests, "refuse/b", "refuse/a", 202), content, "each mount tried, and refused: {requests:?}");
    let mut fetched: Vec<String> = blob_gets(&requests).iter().map(|p| p.rsplit('/').next().unwrap().to_string()).collect();
    fetched.sort();
    assert_eq!(fetched, content.iter().cloned().collect::<Vec<_>>(), "each blob fetched once");
    assert!(blob_uploads(&requests, "refuse/b") >= content.len(), "{requests:?}");
    for blob in &content {
        assert!(work.path().join("cache-2/blobs/sha256").join(blob.trim_start_matches("sha256:")).exists(), "{blob} kept in the cache");
    }
    assert_eq!(
        skopeo_raw(&format!("docker://{}/refuse/b:v1", registry.host)),
        skopeo_raw(&format!("docker://{}/refuse/a:v1", registry.host))
    );
    let out = work.path().join("out");
    copy_ok(&format!("docker://{}/refuse/b:v1", registry.host), &format!("oci:{}", out.display()), &work.path().join("cache-3"));
    assert_eq!(blob_set(&out), blob_set(&layout));
}

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
    // The registry, seen through the proxy, ignores every mount and opens an upload instead (202).
    refused_mount_falls_back(Fault::DropQuery { method: "POST", path_contains: "mount=", times: 1000 }, 202);
}

#[test]
fn a_forbidden_mount_falls_back_to_an_upload() {
    // A registry whose token does not cover the source for this push answers 403 to the mount.
    let status = Fault::Status { method: "POST", path_contains: "mount=", status: 403, times: 1000, retry_after: None };
    refused_mount_falls_back(status, 403);
}

/// Copies within one registry whose mounts `fault` turns into `status`: the copy fetches each blob
/// once (into the layer cache), uploads it, and is the same image.
fn refused_mount_falls_back(fault: Fault, status: u16) {
    let registry = Registry::plain();
    let work = temp_dir();
    let (layout, content) = packed(work.path());
    copy_ok(&format!("oci:{}:v1", layout.display()), &format!("docker://{}/refuse/a:v1", registry.host), &work.path().join("cache-1"));
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(fault);

    let (a, b) = (format!("{}/refuse/a", proxy.host), format!("{}/refuse/b", proxy.host));
    copy_ok(&format!("docker://{a}:v1"), &format!("docker://{b}:v1"), &work.path().join("cache-2"));
    let requests = proxy.requests();
    assert_eq!(mounts(&requests, "refuse/b", "refuse/a", status), content, "each mount tried, and refused: {requests:?}");
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

#[test]
fn a_copy_to_another_registry_fetches_each_blob_once_as_it_uploads() {
    let (source, dest) = (Registry::plain(), Registry::plain());
    let work = temp_dir();
    let (layout, content) = packed(work.path());
    let a = format!("{}/far/a", source.host);
    copy_ok(&format!("oci:{}:v1", layout.display()), &format!("docker://{a}:v1"), &work.path().join("cache-1"));

    let b = format!("{}/far/b", dest.host);
    copy_ok(&format!("docker://{a}:v1"), &format!("docker://{b}:v1"), &work.path().join("cache-2"));
    let mut fetched: Vec<String> = blob_gets(&source.requests()).iter().map(|p| p.rsplit('/').next().unwrap().to_string()).collect();
    fetched.sort();
    assert_eq!(fetched, content.iter().cloned().collect::<Vec<_>>(), "each blob fetched once");
    assert!(dest.wait_for_request("PUT", "/v2/far/b/manifests/v1", 201));
    assert_eq!(mounts(&dest.requests(), "far/b", "far/a", 201), BTreeSet::new(), "nothing to mount from on another registry");
    assert!(blob_uploads(&dest.requests(), "far/b") >= content.len());
    for blob in &content {
        assert!(work.path().join("cache-2/blobs/sha256").join(blob.trim_start_matches("sha256:")).exists(), "{blob} kept in the cache");
    }
    assert_eq!(skopeo_raw(&format!("docker://{b}:v1")), skopeo_raw(&format!("docker://{a}:v1")));

    // Again, into another repository: every blob comes from the layer cache.
    let before = source.requests().len();
    copy_ok(&format!("docker://{a}:v1"), &format!("docker://{}/far/c:v1", dest.host), &work.path().join("cache-2"));
    assert_eq!(blob_gets(&source.requests()[before..]), Vec::<String>::new());
    assert_eq!(skopeo_raw(&format!("docker://{}/far/c:v1", dest.host)), skopeo_raw(&format!("docker://{a}:v1")));
}

#[test]
fn a_tampered_blob_copied_to_another_registry_is_refused_naming_it() {
    let (source, dest) = (Registry::plain(), Registry::plain());
    let work = temp_dir();
    let layout = work.path().join("packed");
    let lines = pack(&["--output", &format!("oci:{}:v1", layout.display())], |cmd| {
        cmd.arg(static_c_hello());
    });
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(blob_file(&layout, &digest_of(&lines[0]))).unwrap()).unwrap();
    copy_ok(&format!("oci:{}:v1", layout.display()), &format!("docker://{}/bad/a:v1", source.host), &work.path().join("cache-1"));
    let layer = manifest["layers"].as_array().unwrap().last().unwrap()["digest"].as_str().unwrap().to_string();
    source.tamper_blob(&layer);

    let output = crate::copy::copy(
        &format!("docker://{}/bad/a:v1", source.host),
        &format!("docker://{}/bad/b:v1", dest.host),
        &work.path().join("cache-2"),
    );
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("blob {layer}: the registry sent bytes that do not match digest {layer} (they hash to sha256:")),
        "{err}"
    );
    assert!(err.contains("hint: the registry's copy is damaged or was tampered with"), "{err}");
    let head = http_request(&dest.host, "HEAD", "/v2/bad/b/manifests/v1", &[], b"").unwrap();
    assert_eq!(head.status, 404, "no manifest written");
    assert!(
        !work.path().join("cache-2/blobs/sha256").join(layer.trim_start_matches("sha256:")).exists(),
        "a wrong blob is never kept in the cache"
    );
}

//! Pulls from the real registry (distribution 2.8), through the fault proxy: a blob cut off halfway
//! is resumed and still gives the right image; a blob whose bytes do not match its digest is
//! refused, naming it; the layer cache spares every download it can; a loopback registry that
//! never answers a TLS hello is reached without waiting for one.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::copy::{copy, copy_ok, skopeo_raw};
use crate::support::*;
use crate::util::*;

/// Packs the static C hello into a layout and pushes it to `registry` as `repo:v1`; returns the
/// layout's manifest (as JSON) and its digest.
fn packed_in_registry(registry: &Registry, repo: &str, work: &Path) -> (serde_json::Value, String) {
    let layout = work.join("packed");
    let lines = pack(&["--output", &format!("oci:{}:v1", layout.display())], |cmd| {
        cmd.arg(static_c_hello());
    });
    let digest = digest_of(&lines[0]);
    copy_ok(&format!("oci:{}:v1", layout.display()), &format!("docker://{}/{repo}:v1", registry.host), &work.join("push-cache"));
    let manifest = serde_json::from_slice(&std::fs::read(blob_file(&layout, &digest)).unwrap()).unwrap();
    (manifest, digest)
}

/// The largest layer of a manifest: `(digest, size)`.
fn largest_layer(manifest: &serde_json::Value) -> (String, u64) {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["digest"].as_str().unwrap().to_string(), l["size"].as_u64().unwrap()))
        .max_by_key(|(_, size)| *size)
        .unwrap()
}

#[test]
fn a_blob_cut_off_halfway_is_resumed_and_gives_the_right_image() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (manifest, digest) = packed_in_registry(&registry, "pull/resume", work.path());
    let (layer, size) = largest_layer(&manifest);
    let proxy = FaultProxy::start(&registry.host);
    let leaked: &'static str = Box::leak(format!("/blobs/{layer}").into_boxed_str());
    proxy.add(Fault::TruncateResponse { method: "GET", path_contains: leaked, after_bytes: (size / 2) as usize, times: 1 });

    let out = work.path().join("out");
    let line = copy_ok(&format!("docker://{}/pull/resume:v1", proxy.host), &format!("oci:{}", out.display()), &work.path().join("cache"));
    assert_eq!(line, format!("oci:{}:v1@{digest}", out.display()));
    assert_eq!(proxy.faults_left(), vec![0], "the fault was hit");
    let gets: Vec<u16> = proxy.requests().iter().filter(|(m, p, _)| m == "GET" && p.ends_with(leaked)).map(|(_, _, s)| *s).collect();
    assert_eq!(gets, vec![200, 206], "cut off, then resumed from where it stopped");
    assert_eq!(run_image(&out, "v1"), "hello from C, uid 65532\n");
    assert_eq!(skopeo_raw(&format!("oci:{}:v1", out.display())), skopeo_raw(&format!("docker://{}/pull/resume:v1", registry.host)));

    // A second pull with the same cache fetches no blob again: only the manifest and referrers.
    proxy.reset_counters();
    let again = work.path().join("again");
    copy_ok(&format!("docker://{}/pull/resume:v1", proxy.host), &format!("oci:{}", again.display()), &work.path().join("cache"));
    let blob_gets: Vec<_> = proxy.requests().into_iter().filter(|(m, p, _)| m == "GET" && p.contains("/blobs/")).collect();
    assert_eq!(blob_gets, vec![], "every blob came from the layer cache");
    assert_eq!(run_image(&again, "v1"), "hello from C, uid 65532\n");
}

#[test]
fn a_blob_that_does_not_match_its_digest_is_refused_naming_it() {
    let registry = Registry::plain();
    let work = temp_dir();
    let (manifest, _) = packed_in_registry(&registry, "pull/tampered", work.path());
    let (layer, _) = largest_layer(&manifest);
    registry.tamper_blob(&layer);

    let out = work.path().join("out");
    let output =
        copy(&format!("docker://{}/pull/tampered:v1", registry.host), &format!("oci:{}", out.display()), &work.path().join("cache"));
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains(&format!("blob {layer}: the registry sent bytes that do not match digest {layer} (they hash to sha256:")),
        "{err}"
    );
    assert!(err.contains("hint: the registry's copy is damaged or was tampered with"), "{err}");
    assert!(!out.exists(), "nothing written");
    assert!(
        !work.path().join("cache/blobs/sha256").join(layer.trim_start_matches("sha256:")).exists(),
        "a wrong blob is never kept in the cache"
    );
}

#[test]
fn a_loopback_registry_that_never_answers_a_tls_hello_is_reached_at_once() {
    let registry = Registry::plain();
    let work = temp_dir();
    let proxy = FaultProxy::start(&registry.host);
    proxy.ignore_tls_hellos();
    let layout = work.path().join("packed");
    pack(&["--output", &format!("oci:{}:v1", layout.display())], |cmd| {
        cmd.arg(static_c_hello());
    });
    let started = Instant::now();
    let output = scratchpack()
        .args(["push", &format!("oci:{}:v1", layout.display()), &format!("docker://{}/pull/plain:v1", proxy.host)])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let pushed = started.elapsed();
    let started = Instant::now();
    copy_ok(
        &format!("docker://{}/pull/plain:v1", proxy.host),
        &format!("oci:{}", work.path().join("out").display()),
        &work.path().join("cache"),
    );
    let pulled = started.elapsed();
    assert!(
        pushed < Duration::from_secs(2) && pulled < Duration::from_secs(2),
        "push {pushed:?}, pull {pulled:?}: no wait for a TLS answer"
    );
}

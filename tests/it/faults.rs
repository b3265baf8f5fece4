//! Registry faults, injected by a proxy in front of the real registry: every push either completes
//! with the right digest or fails with a clear error and a non-zero exit, never leaves a manifest
//! that references a missing blob, and a re-run sends again only what did not arrive.

use std::process::Output;
use std::time::Duration;

use crate::support::*;
use crate::util::*;

fn push_through(host: &str, repo: &str, extra: &[&str]) -> Output {
    scratchpack().arg("pack").arg(static_c_hello()).args(["--output", &format!("docker://{host}/{repo}:1")]).args(extra).output().unwrap()
}

fn assert_pushed_and_runs(output: &Output, registry: &Registry, proxy_host: &str, repo: &str) {
    assert!(output.status.success(), "{}", stderr(output));
    let digest = digest_of(stdout(output).trim());
    assert!(stdout(output).starts_with(&format!("{proxy_host}/{repo}@")), "{}", stdout(output));
    let inspected = skopeo_inspect(&format!("docker://{}/{repo}:1", registry.host), &["--tls-verify=false"]);
    assert_eq!(inspected["Digest"].as_str().unwrap(), digest, "the registry holds what was printed");
    let work = temp_dir();
    let layout = work.path().join("pulled");
    run_ok(std::process::Command::new("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/{repo}:1", registry.host),
        &format!("oci:{}:p", layout.display()),
    ]));
    assert_eq!(run_image(&layout, "p"), "hello from C, uid 65532\n");
}

#[test]
fn a_connection_dropped_in_the_middle_of_a_blob_is_retried() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::DropRequestBody { method: "PUT", path_contains: "/blobs/uploads/", after_bytes: 64 * 1024, times: 2 });
    let output = push_through(&proxy.host, "faults/drop", &[]);
    assert_pushed_and_runs(&output, &registry, &proxy.host, "faults/drop");
    assert_eq!(proxy.requests().iter().filter(|(_, _, status)| *status == 0).count(), 2, "{:?}", proxy.requests());
}

#[test]
fn server_errors_500_502_503_are_survived() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::Status { method: "HEAD", path_contains: "/blobs/", status: 500, times: 1, retry_after: None });
    proxy.add(Fault::Status { method: "POST", path_contains: "/blobs/uploads/", status: 502, times: 1, retry_after: None });
    proxy.add(Fault::Status { method: "PUT", path_contains: "/manifests/", status: 503, times: 1, retry_after: None });
    let output = push_through(&proxy.host, "faults/5xx", &[]);
    assert_pushed_and_runs(&output, &registry, &proxy.host, "faults/5xx");
    let statuses: Vec<u16> = proxy.requests().iter().map(|(_, _, s)| *s).filter(|s| *s >= 500).collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
}

#[test]
fn a_slow_registry_is_waited_for_within_the_timeout() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::Delay { method: "HEAD", path_contains: "/blobs/", delay: Duration::from_millis(1500), times: 3 });
    let output = push_through(&proxy.host, "faults/slow", &["--timeout", "60s"]);
    assert_pushed_and_runs(&output, &registry, &proxy.host, "faults/slow");
}

#[test]
fn a_truncated_token_answer_is_retried() {
    let tokens = TokenServer::start("u", "p", 300);
    let token_proxy = FaultProxy::start(&tokens.host);
    let mut config = tokens.registry_config();
    config.realm = format!("http://{}/token", token_proxy.host);
    let registry = Registry::start(RegistryOptions { tls: false, auth: RegistryAuth::Token(config) });
    token_proxy.add(Fault::TruncateResponse { method: "GET", path_contains: "/token", after_bytes: 20, times: 1 });
    let output = push_through(&registry.host, "faults/truncated", &["--creds", "u:p"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(token_proxy.requests().len() >= 2, "{:?}", token_proxy.requests());
}

#[test]
fn a_failed_push_leaves_no_manifest_and_a_rerun_sends_only_what_is_missing() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::Status { method: "PUT", path_contains: "/manifests/", status: 503, times: 100, retry_after: None });
    let failed = push_through(&proxy.host, "faults/rerun", &["--retries", "2"]);
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(stdout(&failed), "");
    let err = stderr(&failed);
    assert!(err.contains("error: writing docker://") && err.contains("/manifests/1: 503"), "{err}");
    // The blobs arrived, the tag does not exist: no manifest points at anything missing.
    let (found, _) = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{}/faults/rerun:1", registry.host)]);
    assert!(!found, "no manifest was written");
    let uploads = registry.blob_upload_requests();
    assert_eq!(uploads, 3);

    proxy.clear_faults();
    proxy.reset_counters();
    let output = push_through(&proxy.host, "faults/rerun", &[]);
    assert_pushed_and_runs(&output, &registry, &proxy.host, "faults/rerun");
    assert_eq!(proxy.blob_bytes_uploaded(), 0, "the blobs that arrived are not sent again");
    assert_eq!(registry.blob_upload_requests(), uploads);
}

#[test]
fn retries_are_bounded() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::Status { method: "*", path_contains: "/v2/", status: 503, times: 1000, retry_after: None });
    let started = std::time::Instant::now();
    let output = push_through(&proxy.host, "faults/bounded", &["--retries", "3"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(proxy.requests().len(), 4, "the first request, then one ping tried 3 times: {:?}", proxy.requests());
    assert!(stderr(&output).contains("GET http://") && stderr(&output).contains("/v2/: 503"), "{}", stderr(&output));
}

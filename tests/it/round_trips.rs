//! Round trips to the real registry, counted through the proxy and the registry's access log: a
//! re-push of an unchanged image is one manifest HEAD (plus a token exchange where the registry
//! asks for one), with no `GET /v2/` before it.

use std::process::Command;

use crate::support::*;
use crate::util::*;

const USER: &str = "ci-bot";
const PASSWORD: &str = "s3cret-Passw0rd";

fn push(layout: &std::path::Path, dest: &str, extra: &[&str]) {
    run_ok(scratchpack().args(["push", &format!("oci:{}:v1", layout.display()), dest]).args(extra));
}

fn head(path: &str, status: u16) -> (String, String, u16) {
    ("HEAD".to_string(), path.to_string(), status)
}

#[test]
fn a_repush_of_an_unchanged_image_is_one_manifest_head() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&["--output", &format!("oci:{}:v1", layout.display())], |cmd| {
        cmd.arg(static_c_hello());
    });
    let dest = format!("docker://{}/rt/hello:v1", proxy.host);
    push(&layout, &dest, &[]);
    proxy.reset_counters();
    push(&layout, &dest, &[]);
    assert_eq!(proxy.requests(), [head("/v2/rt/hello/manifests/v1", 200)]);

    // pack straight to the registry: the same image, the same single HEAD.
    proxy.reset_counters();
    pack(&["--output", &dest], |cmd| {
        cmd.arg(static_c_hello());
    });
    assert_eq!(proxy.requests(), [head("/v2/rt/hello/manifests/v1", 200)]);

    // An SBOM already attached costs one more HEAD, for its manifest.
    let with_sbom = work.path().join("with-sbom");
    pack(&["--sbom", "spdx", "--output", &format!("oci:{}:v1", with_sbom.display())], |cmd| {
        cmd.arg(static_c_hello());
    });
    let dest = format!("docker://{}/rt/sbom:v1", proxy.host);
    push(&with_sbom, &dest, &[]);
    proxy.reset_counters();
    push(&with_sbom, &dest, &[]);
    let requests = proxy.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0], head("/v2/rt/sbom/manifests/v1", 200));
    assert!(requests[1].0 == "HEAD" && requests[1].1.starts_with("/v2/rt/sbom/manifests/sha256:") && requests[1].2 == 200, "{requests:?}");
}

#[test]
fn a_repush_to_a_token_registry_is_one_head_and_one_token() {
    let tokens = TokenServer::start(USER, PASSWORD, 300);
    let registry = Registry::start(RegistryOptions { tls: false, auth: RegistryAuth::Token(tokens.registry_config()) });
    let work = temp_dir();
    let layout = work.path().join("layout");
    pack(&["--output", &format!("oci:{}:v1", layout.display())], |cmd| {
        cmd.arg(static_c_hello());
    });
    let dest = format!("docker://{}/rt/token:v1", registry.host);
    let creds = format!("{USER}:{PASSWORD}");
    push(&layout, &dest, &["--creds", &creds]);
    let before = registry.requests().len();
    let issued = tokens.tokens_issued();
    push(&layout, &dest, &["--creds", &creds]);
    assert!(registry.wait_for_request("HEAD", "/v2/rt/token/manifests/v1", 200));
    // The registry's challenge comes with the HEAD itself: no ping before it.
    assert_eq!(registry.requests()[before..], [head("/v2/rt/token/manifests/v1", 401), head("/v2/rt/token/manifests/v1", 200)]);
    assert_eq!(tokens.tokens_issued(), issued + 1);

    // A pull logs in the same way, with a pull-only token.
    let out = work.path().join("pulled");
    let output = scratchpack()
        .env("SCRATCHPACK_CACHE_DIR", work.path().join("cache"))
        .args(["copy", &dest, &format!("oci:{}", out.display()), "--creds", &creds])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(run_image(&out, "v1"), "hello from C, uid 65532\n");
    // Without credentials, the token server refuses: a clear error.
    let output = scratchpack()
        .env("SCRATCHPACK_CACHE_DIR", work.path().join("cache"))
        .args(["copy", &dest, &format!("oci:{}", work.path().join("refused").display())])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(err.contains(&format!("pulling {0}/rt/token:v1: {0} asks for credentials, and none were found", registry.host)), "{err}");
    assert!(err.contains(&format!("hint: run `docker login {}`", registry.host)), "{err}");
    assert!(!work.path().join("refused").exists());
}

#[test]
fn a_first_push_sends_the_shared_layers_while_the_program_layer_is_compressed() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    let output = run_ok(scratchpack().arg("pack").arg(static_c_hello()).args([
        "--json",
        "--output",
        &format!("docker://{}/rt/first:v1", proxy.host),
    ]));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let layers = summary["images"][0]["layers"].as_array().unwrap();
    let base = layers[0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let app = layers[layers.len() - 1]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_string();
    let requests = proxy.requests();
    assert_eq!(requests[0], head("/v2/rt/first/manifests/v1", 404), "{requests:?}");
    // The base layer went up before the program's layer was even asked about: its upload began
    // while that layer was still being compressed.
    let base_put = requests.iter().position(|(m, p, _)| m == "PUT" && p.contains(&format!("digest=sha256%3A{base}"))).expect("base PUT");
    let app_first = requests.iter().position(|(_, p, _)| p.contains(&app)).expect("app layer requests");
    assert!(base_put < app_first, "{requests:?}");
    assert_eq!(requests.iter().filter(|(m, p, _)| m == "HEAD" && p.contains("/manifests/")).count(), 1, "{requests:?}");
    let lines =
        stdout(&run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", &format!("docker://{}/rt/first:v1", registry.host)])));
    assert!(lines.contains(summary["digest"].as_str().unwrap()), "{lines}");
}

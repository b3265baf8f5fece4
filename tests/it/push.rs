//! Pushes to the real registry (distribution 2.8) on 127.0.0.1: plain HTTP, TLS with a private CA,
//! htpasswd, token auth, faults through the proxy. Each image is pulled back with skopeo and run
//! with umoci and runc.

use std::process::{Command, Output};

use crate::support::*;
use crate::util::*;

const USER: &str = "ci-bot";
const PASSWORD: &str = "s3cret-Passw0rd";

fn pack_to(binaries: &[std::path::PathBuf], dest: &str, extra: &[&str]) -> Output {
    let mut cmd = scratchpack();
    cmd.arg("pack").args(binaries).args(["--output", dest]).args(extra);
    cmd.output().unwrap()
}

/// Pulls `reference` (HOST/REPO:TAG) with skopeo into an OCI layout, and runs it.
fn pull_and_run(registry: &Registry, reference: &str, creds: Option<&str>) -> String {
    let work = temp_dir();
    let layout = work.path().join("pulled");
    let mut cmd = Command::new("skopeo");
    cmd.arg("copy").args(registry.skopeo_src_args());
    if let Some(creds) = creds {
        cmd.args(["--src-creds", creds]);
    }
    cmd.arg(format!("docker://{reference}")).arg(format!("oci:{}:pulled", layout.display()));
    run_ok(&mut cmd);
    run_image(&layout, "pulled")
}

fn assert_pushed_line(output: &Output, host: &str, repo: &str) -> String {
    assert!(output.status.success(), "push failed: {}", stderr(output));
    let out = stdout(output);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one line per registry destination: {out}");
    let prefix = format!("{host}/{repo}@sha256:");
    assert!(lines[0].starts_with(&prefix) && lines[0].len() == prefix.len() + 64, "{}", lines[0]);
    digest_of(lines[0])
}

#[test]
fn push_over_plain_http_then_pull_and_run() {
    let registry = Registry::plain();
    let output = pack_to(&[static_c_hello()], &format!("docker://{}/test/hello:v1", registry.host), &[]);
    let digest = assert_pushed_line(&output, &registry.host, "test/hello");
    // Off a terminal: one plain line per blob on stderr.
    let err = stderr(&output);
    assert_eq!(err.lines().filter(|l| l.contains(": pushed layer sha256:")).count(), 2, "{err}");
    assert_eq!(err.lines().filter(|l| l.contains(": pushed config sha256:")).count(), 1, "{err}");
    let inspected = skopeo_inspect(&format!("docker://{}/test/hello:v1", registry.host), &["--tls-verify=false"]);
    assert_eq!(inspected["Digest"], digest.as_str());
    assert_eq!(pull_and_run(&registry, &format!("{}/test/hello:v1", registry.host), None), "hello from C, uid 65532\n");
    // Manifest last: every blob PUT came before the manifest PUT.
    let requests = registry.requests();
    let manifest_at = requests.iter().position(|(m, p, _)| m == "PUT" && p.contains("/manifests/")).expect("manifest PUT");
    let last_blob_at = requests.iter().rposition(|(m, p, _)| m == "PUT" && p.contains("/blobs/uploads/")).expect("blob PUT");
    assert!(last_blob_at < manifest_at, "{requests:?}");
}

#[test]
fn a_second_push_uploads_no_blob_and_quiet_prints_only_the_reference() {
    let registry = Registry::plain();
    let dest = format!("docker://{}/test/again", registry.host);
    let first = pack_to(&[static_c_hello()], &dest, &[]);
    let digest = assert_pushed_line(&first, &registry.host, "test/again");
    let uploads = registry.blob_upload_requests();
    assert_eq!(uploads, 3, "base layer, app layer, config");
    let second = pack_to(&[static_c_hello()], &dest, &["-q"]);
    assert_eq!(assert_pushed_line(&second, &registry.host, "test/again"), digest);
    assert_eq!(stderr(&second), "");
    assert_eq!(registry.blob_upload_requests(), uploads, "no blob uploaded again");
    // And through the counting proxy: zero blob bytes.
    let proxy = FaultProxy::start(&registry.host);
    let third = pack_to(&[static_c_hello()], &format!("docker://{}/test/again", proxy.host), &[]);
    assert!(third.status.success(), "{}", stderr(&third));
    assert_eq!(proxy.blob_bytes_uploaded(), 0);
    assert!(stderr(&third).lines().all(|l| l.contains(": exists ")), "{}", stderr(&third));
}

#[test]
fn push_command_sends_a_packed_layout() {
    let registry = Registry::plain();
    let work = temp_dir();
    let layout = work.path().join("layout");
    let packed = pack(&[static_rust_hello().to_str().unwrap(), "--output", &format!("oci:{}:1.0", layout.display())], |_| {});
    let output = run_ok(
        scratchpack().args(["push", &format!("oci:{}:1.0", layout.display())]).arg(format!("docker://{}/team/rust:1.0", registry.host)),
    );
    assert_eq!(stdout(&output), format!("{}/team/rust@{}\n", registry.host, digest_of(&packed[0])));
    assert_eq!(
        pull_and_run(&registry, &format!("{}/team/rust:1.0", registry.host), None),
        "hello from Rust, uid 65532\ntmp: true\nbundle: true\n"
    );
    // From an archive too, and with a wrong tag a clear error.
    let archive = work.path().join("image.tar");
    pack(&[static_rust_hello().to_str().unwrap(), "--output", &format!("oci-archive:{}", archive.display())], |_| {});
    let output = run_ok(
        scratchpack()
            .args(["push", &format!("oci-archive:{}", archive.display())])
            .arg(format!("docker://{}/team/rust:arch", registry.host)),
    );
    assert_eq!(stdout(&output), format!("{}/team/rust@{}\n", registry.host, digest_of(&packed[0])));
    let output = scratchpack()
        .args(["push", &format!("oci:{}:nope", layout.display())])
        .arg(format!("docker://{}/team/rust", registry.host))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    assert!(stderr(&output).contains(&format!("{}: no image tagged \"nope\" (tags: 1.0)", layout.display())), "{}", stderr(&output));
}

#[test]
fn tls_with_a_private_ca_is_refused_without_registry_ca() {
    let registry = Registry::start(RegistryOptions { tls: true, auth: RegistryAuth::None });
    let dest = format!("docker://{}/secure/hello:1", registry.host);
    let refused = pack_to(&[static_c_hello()], &dest, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(stdout(&refused), "");
    let err = stderr(&refused);
    assert!(err.contains("TLS connection to 127.0.0.1 failed"), "{err}");
    assert!(err.contains("hint: if 127.0.0.1"), "{err}");
    assert!(err.contains("--registry-ca"), "{err}");
    assert_eq!(registry.blob_upload_requests(), 0);

    let ca = registry.ca_cert().unwrap();
    let output = pack_to(&[static_c_hello()], &dest, &["--registry-ca", ca.to_str().unwrap()]);
    assert_pushed_line(&output, &registry.host, "secure/hello");
    assert_eq!(pull_and_run(&registry, &format!("{}/secure/hello:1", registry.host), None), "hello from C, uid 65532\n");
    // --insecure-registry accepts the unverified certificate for that host only.
    let output =
        pack_to(&[static_c_hello()], &format!("docker://{}/secure/insecure", registry.host), &["--insecure-registry", &registry.host]);
    assert_pushed_line(&output, &registry.host, "secure/insecure");
}

#[test]
fn htpasswd_basic_auth_from_flag_and_environment() {
    let registry = Registry::htpasswd(USER, PASSWORD);
    let dest = format!("docker://{}/private/hello:1", registry.host);
    let output = pack_to(&[static_c_hello()], &dest, &["--creds", &format!("{USER}:{PASSWORD}"), "-vv"]);
    assert_pushed_line(&output, &registry.host, "private/hello");
    assert_no_secret(&output, &[PASSWORD, &base64_std(format!("{USER}:{PASSWORD}").as_bytes())]);
    let creds = format!("{USER}:{PASSWORD}");
    assert_eq!(pull_and_run(&registry, &format!("{}/private/hello:1", registry.host), Some(&creds)), "hello from C, uid 65532\n");

    let mut cmd = scratchpack();
    cmd.arg("pack").arg(static_rust_hello()).args(["--output", &format!("docker://{}/private/rust", registry.host)]);
    cmd.env("SCRATCHPACK_REGISTRY_USER", USER).env("SCRATCHPACK_REGISTRY_PASSWORD", PASSWORD);
    assert_pushed_line(&cmd.output().unwrap(), &registry.host, "private/rust");

    // A docker config.json with a base64 auth entry, as `docker login` writes it.
    let work = temp_dir();
    std::fs::write(
        work.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{}"}}}}}}"#, registry.host, base64_std(creds.as_bytes())),
    )
    .unwrap();
    let mut cmd = scratchpack();
    cmd.arg("pack").arg(static_rust_hello()).args(["--output", &format!("docker://{}/private/fromconfig", registry.host)]);
    cmd.env("DOCKER_CONFIG", work.path());
    assert_pushed_line(&cmd.output().unwrap(), &registry.host, "private/fromconfig");
}

#[test]
fn a_wrong_password_is_a_clear_error_with_no_secret_in_it() {
    let registry = Registry::htpasswd(USER, PASSWORD);
    let wrong = "wrong-Passw0rd-123";
    let output =
        pack_to(&[static_c_hello()], &format!("docker://{}/private/hello", registry.host), &["--creds", &format!("{USER}:{wrong}"), "-vv"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "");
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "error: writing docker://{0}/private/hello: pushing to {0}/private/hello: {0} refused the credentials from --creds",
            registry.host
        )),
        "{err}"
    );
    assert!(err.contains(&format!("hint: run `docker login {}`", registry.host)), "{err}");
    assert_no_secret(&output, &[wrong, &base64_std(format!("{USER}:{wrong}").as_bytes())]);
    assert_eq!(registry.blob_upload_requests(), 0);

    let output = pack_to(&[static_c_hello()], &format!("docker://{}/private/hello", registry.host), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&format!("{} asks for credentials, and none were found", registry.host)), "{}", stderr(&output));
}

/// No output of the command contains any of `secrets`.
fn assert_no_secret(output: &Output, secrets: &[&str]) {
    for secret in secrets {
        assert!(!stdout(output).contains(secret), "stdout leaks a secret");
        assert!(!stderr(output).contains(secret), "stderr leaks a secret:\n{}", stderr(output));
    }
}

#[test]
fn token_auth_through_a_token_server() {
    let tokens = TokenServer::start(USER, PASSWORD, 300);
    let registry = Registry::start(RegistryOptions { tls: false, auth: RegistryAuth::Token(tokens.registry_config()) });
    let output = pack_to(
        &[static_c_hello()],
        &format!("docker://{}/tok/hello:1", registry.host),
        &["--creds", &format!("{USER}:{PASSWORD}"), "-vv"],
    );
    assert_pushed_line(&output, &registry.host, "tok/hello");
    assert!(tokens.scopes_requested().iter().any(|s| s == "repository:tok/hello:push,pull"), "{:?}", tokens.scopes_requested());
    let issued = tokens.issued_tokens();
    assert!(!issued.is_empty());
    let mut secrets: Vec<&str> = issued.iter().map(String::as_str).collect();
    let basic = base64_std(format!("{USER}:{PASSWORD}").as_bytes());
    secrets.extend([PASSWORD, basic.as_str()]);
    assert_no_secret(&output, &secrets);
    assert_eq!(
        pull_and_run(&registry, &format!("{}/tok/hello:1", registry.host), Some(&format!("{USER}:{PASSWORD}"))),
        "hello from C, uid 65532\n"
    );
    // A second repository on the same registry mounts the blobs of the first.
    let output = pack_to(
        &[static_c_hello()],
        &format!("docker://{}/tok/one", registry.host),
        &["--creds", &format!("{USER}:{PASSWORD}"), "--output", &format!("docker://{}/tok/two", registry.host)],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        registry.wait_for_request("POST", "/v2/tok/two/blobs/uploads/?mount=sha256%3A", 201)
            && registry.requests().iter().filter(|(m, p, s)| m == "POST" && p.ends_with("&from=tok%2Fone") && *s == 201).count() == 3,
        "{:?}",
        registry.requests()
    );
}

#[test]
fn an_expired_token_is_renewed_in_the_middle_of_a_push() {
    let tokens = TokenServer::start(USER, PASSWORD, 300);
    let registry = Registry::start(RegistryOptions { tls: false, auth: RegistryAuth::Token(tokens.registry_config()) });
    // The first token says it is good for 300 s, but the registry already finds it expired.
    tokens.issue_stale_tokens(1);
    let output =
        pack_to(&[static_c_hello()], &format!("docker://{}/tok/renew:1", registry.host), &["--creds", &format!("{USER}:{PASSWORD}")]);
    assert_pushed_line(&output, &registry.host, "tok/renew");
    // The first request learns the challenge; the stale token is refused on the next, and renewed.
    let refused: Vec<_> = registry.requests().into_iter().filter(|(_, _, s)| *s == 401).collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert_eq!(tokens.tokens_issued(), 2, "one stale token, then one renewal shared by every upload");
    assert_eq!(
        pull_and_run(&registry, &format!("{}/tok/renew:1", registry.host), Some(&format!("{USER}:{PASSWORD}"))),
        "hello from C, uid 65532\n"
    );

    // Tokens that are always stale: a clear error, not a loop.
    tokens.issue_stale_tokens(100);
    let output =
        pack_to(&[static_rust_hello()], &format!("docker://{}/tok/renew:2", registry.host), &["--creds", &format!("{USER}:{PASSWORD}")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains(&format!("{} refused the credentials from --creds", registry.host)), "{}", stderr(&output));
}

#[test]
fn a_multi_platform_index_pushes_and_resolves_per_architecture() {
    let registry = Registry::plain();
    let output = pack_to(&[static_c_hello(), static_c_hello_arm64()], &format!("docker://{}/multi/hello:2", registry.host), &[]);
    let digest = assert_pushed_line(&output, &registry.host, "multi/hello");
    let raw = skopeo_inspect(&format!("docker://{}/multi/hello:2", registry.host), &["--tls-verify=false", "--raw"]);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
    let arm = skopeo_inspect(&format!("docker://{}/multi/hello:2", registry.host), &["--tls-verify=false", "--override-arch", "arm64"]);
    assert_eq!(arm["Architecture"], "arm64");
    assert_eq!(arm["Digest"], digest.as_str());
    let amd = skopeo_inspect(&format!("docker://{}/multi/hello:2", registry.host), &["--tls-verify=false", "--override-arch", "amd64"]);
    assert_eq!(amd["Architecture"], "amd64");
    assert_ne!(arm["Layers"][1], amd["Layers"][1]);
    // Children before the index.
    let requests = registry.requests();
    let puts: Vec<&String> = requests.iter().filter(|(m, p, _)| m == "PUT" && p.contains("/manifests/")).map(|(_, p, _)| p).collect();
    assert_eq!(puts.len(), 3, "{puts:?}");
    assert!(
        puts[0].contains("/manifests/sha256:") && puts[1].contains("/manifests/sha256:") && puts[2].ends_with("/manifests/2"),
        "{puts:?}"
    );
}

#[test]
fn a_registry_that_answers_503_twice_is_survived() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::Status { method: "PUT", path_contains: "/blobs/uploads/", status: 503, times: 2, retry_after: None });
    let output = pack_to(&[static_c_hello()], &format!("docker://{}/flaky/hello:1", proxy.host), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(proxy.requests().iter().filter(|(_, _, status)| *status == 503).count(), 2);
    assert_eq!(pull_and_run(&registry, &format!("{}/flaky/hello:1", registry.host), None), "hello from C, uid 65532\n");
}

#[test]
fn too_large_for_one_put_falls_back_to_chunks() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::Status { method: "PUT", path_contains: "/blobs/uploads/", status: 413, times: 1, retry_after: None });
    let output = pack_to(&[static_c_hello()], &format!("docker://{}/chunked/hello:1", proxy.host), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(proxy.requests().iter().any(|(m, p, s)| m == "PATCH" && p.contains("/blobs/uploads/") && *s == 202), "{:?}", proxy.requests());
    assert_eq!(pull_and_run(&registry, &format!("{}/chunked/hello:1", registry.host), None), "hello from C, uid 65532\n");
}

#[test]
fn bad_references_are_refused_before_anything_is_sent() {
    let output = pack_to(&[static_c_hello()], "docker://ghcr.io/MyOrg/App:1", &[]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "error: --output \"docker://ghcr.io/MyOrg/App:1\": invalid image reference \"ghcr.io/MyOrg/App:1\": repository names must be lowercase\nhint: use ghcr.io/myorg/app:1\n"
    );
}

#[test]
fn an_identity_token_in_docker_config_uses_the_oauth2_post() {
    let tokens = TokenServer::start(USER, PASSWORD, 300);
    let registry = Registry::start(RegistryOptions { tls: false, auth: RegistryAuth::Token(tokens.registry_config()) });
    let work = temp_dir();
    let refresh = tokens.refresh_token();
    std::fs::write(
        work.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{}","identitytoken":"{refresh}"}}}}}}"#, registry.host, base64_std(b"<token>:")),
    )
    .unwrap();
    let output = scratchpack()
        .arg("pack")
        .arg(static_c_hello())
        .args(["--output", &format!("docker://{}/oauth/hello", registry.host), "-vv"])
        .env("DOCKER_CONFIG", work.path())
        .output()
        .unwrap();
    assert_pushed_line(&output, &registry.host, "oauth/hello");
    assert!(tokens.requests().iter().any(|r| r.starts_with("POST /token")), "{:?}", tokens.requests());
    assert!(!tokens.requests().iter().any(|r| r.starts_with("GET /token")), "{:?}", tokens.requests());
    let issued = tokens.issued_tokens();
    let mut secrets: Vec<&str> = issued.iter().map(String::as_str).collect();
    secrets.push(&refresh);
    assert_no_secret(&output, &secrets);
}

#[test]
fn several_tags_and_retry_after_on_429() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::Status { method: "HEAD", path_contains: "/blobs/", status: 429, times: 1, retry_after: Some(1) });
    let started = std::time::Instant::now();
    let output = pack_to(
        &[static_c_hello()],
        &format!("docker://{}/tags/hello", proxy.host),
        &["--tag", "1.4.2", "--tag", "1.4", "--tag", "latest"],
    );
    assert_pushed_line(&output, &proxy.host, "tags/hello");
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After: 1 was honoured");
    for tag in ["1.4.2", "1.4", "latest"] {
        let inspected = skopeo_inspect(&format!("docker://{}/tags/hello:{tag}", registry.host), &["--tls-verify=false"]);
        assert_eq!(inspected["Digest"].as_str().unwrap(), digest_of(stdout(&output).trim()));
    }
}

#[test]
fn timeout_bounds_the_whole_push() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::Delay { method: "*", path_contains: "/v2/", delay: std::time::Duration::from_secs(5), times: 100 });
    let started = std::time::Instant::now();
    let output = pack_to(&[static_c_hello()], &format!("docker://{}/slow/hello", proxy.host), &["--timeout", "2s"]);
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    let err = stderr(&output);
    assert!(err.contains("gave up after --timeout 2s"), "{err}");
    assert!(err.contains("hint: raise --timeout"), "{err}");
    assert_eq!(stdout(&output), "");
}

#[test]
fn progress_bars_on_a_terminal() {
    let registry = Registry::plain();
    // `script` gives the command a terminal; what it draws comes back on our stdout.
    let command = format!(
        "{} pack {} --output docker://{}/tty/hello:1",
        env!("CARGO_BIN_EXE_scratchpack"),
        static_c_hello().display(),
        registry.host
    );
    let output = run_ok(Command::new("script").args(["-qec", &command, "/dev/null"]));
    let screen = stdout(&output);
    let bars = screen.lines().filter(|l| l.contains(" pushed [") && l.contains("/s")).count();
    assert!(bars >= 3, "a bar per blob, with bytes and speed: {screen}");
    assert!(screen.contains(&format!("{}/tty/hello@sha256:", registry.host)), "{screen}");
}

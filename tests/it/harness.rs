//! Self-test of the registry harness (`tests/it/support`) against real clients: skopeo, curl and raw
//! HTTP. If these fail, registry tests of scratchpack cannot be trusted.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::http::HttpConnection;
use crate::support::pki::sha256_digest;
use crate::support::token::{jwt_claims, jwt_header};
use crate::support::*;
use crate::util::*;

/// A fresh OCI layout with the C hello image; returns (work dir guard, `oci:DIR:latest`).
fn layout() -> (tempfile::TempDir, String) {
    let work = temp_dir();
    let reference = sample_oci_layout(&work.path().join("layout"));
    (work, reference)
}

fn process_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn harness_plain_registry_takes_a_skopeo_push() {
    let (_work, src) = layout();
    let registry = Registry::plain();
    assert!(registry.host.starts_with("127.0.0.1:"));
    assert_eq!(registry.ca_cert(), None);
    assert_eq!(registry.ca_dir(), None);
    let dest = format!("docker://{}/test/app:1", registry.host);
    run_ok(Command::new("skopeo").args(["copy", "--dest-tls-verify=false", &src, &dest]));
    let inspect = skopeo_inspect(&dest, &["--tls-verify=false"]);
    assert_eq!(inspect["Architecture"], "amd64");
    assert!(registry.wait_for_request("PUT", "/v2/test/app/manifests/1", 201), "{:#?}", registry.requests());
    let requests = registry.requests();
    // Readiness probes are not in the list: skopeo's own GET /v2/ comes first.
    assert_eq!(requests[0].0, "GET", "{requests:#?}");
    assert!(registry.blob_upload_requests() >= 2, "{requests:#?}");
    assert!(registry.log().contains("response completed"));
    // The log has the registry's app lines too, and the probe requests.
    assert!(registry.log().contains(registry::PROBE_USER_AGENT));
}

#[test]
fn harness_registries_run_side_by_side_and_stop_on_drop() {
    let a = Registry::plain();
    let b = Registry::plain();
    assert_ne!(a.host, b.host);
    let (pid_a, pid_b) = (a.pid(), b.pid());
    assert!(process_alive(pid_a) && process_alive(pid_b));
    let digest = upload_blob_raw(&a.host, "test/blob", b"only in a");
    let in_b = http_request(&b.host, "HEAD", &format!("/v2/test/blob/blobs/{digest}"), &[], b"").unwrap();
    assert_eq!(in_b.status, 404);
    let in_a = http_request(&a.host, "HEAD", &format!("/v2/test/blob/blobs/{digest}"), &[], b"").unwrap();
    assert_eq!(in_a.status, 200);
    assert_eq!(in_a.header("content-length"), Some("9"));
    let host = a.host.clone();
    drop(a);
    assert!(!process_alive(pid_a), "registry {pid_a} still running after drop");
    assert!(std::net::TcpStream::connect(&host).is_err() || http_request(&host, "GET", "/v2/", &[], b"").is_err());
    assert!(process_alive(pid_b));
    drop(b);
    assert!(!process_alive(pid_b));
}

#[test]
fn harness_tls_registry_needs_its_ca() {
    let (_work, src) = layout();
    let registry = Registry::tls();
    let ca_dir = registry.ca_dir().expect("a CA dir");
    assert!(ca_dir.join("ca.crt").is_file());
    let ca_cert = registry.ca_cert().expect("a CA cert");
    assert_eq!(std::fs::read(&ca_cert).unwrap(), std::fs::read(ca_dir.join("ca.crt")).unwrap());
    assert!(registry.url().starts_with("https://127.0.0.1:"));

    let dest = format!("docker://{}/test/app:1", registry.host);
    run_ok(Command::new("skopeo").args(["copy", "--dest-cert-dir", ca_dir.to_str().unwrap(), &src, &dest]));
    let inspect = skopeo_inspect(&dest, &["--cert-dir", ca_dir.to_str().unwrap()]);
    assert_eq!(inspect["Architecture"], "amd64");

    let (ok, text) = skopeo(&["copy", &src, &format!("docker://{}/test/app:2", registry.host)]);
    assert!(!ok, "push without the CA should fail:\n{text}");
    assert!(text.contains("certificate"), "{text}");

    // The certificate is valid for localhost too.
    for url in [format!("https://localhost:{}/v2/", registry.port), format!("{}/v2/", registry.url())] {
        let output =
            run_ok(Command::new("curl").args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"]).arg(&ca_cert).arg(&url));
        assert_eq!(stdout(&output), "200", "{url}");
    }
}

#[test]
fn harness_htpasswd_registry_checks_credentials() {
    let (_work, src) = layout();
    let registry = Registry::htpasswd("alice", "s3cret");
    let dest = format!("docker://{}/test/app:1", registry.host);
    run_ok(Command::new("skopeo").args(["copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret", &src, &dest]));
    let inspect = skopeo_inspect(&dest, &["--tls-verify=false", "--creds", "alice:s3cret"]);
    assert_eq!(inspect["Architecture"], "amd64");

    let (ok, text) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:wrong",
        &src,
        &format!("docker://{}/test/app:2", registry.host),
    ]);
    assert!(!ok, "push with a wrong password should fail:\n{text}");
    assert!(text.contains("unauthorized") || text.contains("401"), "{text}");
    assert!(registry.requests().iter().any(|(_, _, s)| *s == 401), "{:#?}", registry.requests());
    assert!(!registry.requests().iter().any(|(m, p, _)| m == "PUT" && p.contains("manifests/2")));

    let anonymous = http_request(&registry.host, "GET", "/v2/", &[], b"").unwrap();
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.header("www-authenticate").unwrap().starts_with("Basic realm="), "{:?}", anonymous.headers);
}

fn token_round_trip(key_header: JwtKeyHeader) {
    let (_work, src) = layout();
    let tokens = TokenServer::start_with("bob", "hunter2", 300, key_header);
    assert!(tokens.url.starts_with("http://127.0.0.1:") && tokens.url.ends_with("/token"));
    let registry = Registry::start(RegistryOptions { tls: false, auth: RegistryAuth::Token(tokens.registry_config()) });

    let challenge = http_request(&registry.host, "GET", "/v2/", &[], b"").unwrap();
    assert_eq!(challenge.status, 401);
    let www = challenge.header("www-authenticate").unwrap();
    assert!(www.starts_with("Bearer ") && www.contains(&format!("realm=\"{}\"", tokens.url)), "{www}");

    let dest = format!("docker://{}/test/app:1", registry.host);
    run_ok(Command::new("skopeo").args(["copy", "--dest-tls-verify=false", "--dest-creds", "bob:hunter2", &src, &dest]));
    let inspect = skopeo_inspect(&dest, &["--tls-verify=false", "--creds", "bob:hunter2"]);
    assert_eq!(inspect["Architecture"], "amd64");
    assert!(tokens.tokens_issued() > 0);
    assert!(registry.wait_for_request("PUT", "/v2/test/app/manifests/1", 201), "{:#?}", registry.requests());
    let scopes = tokens.scopes_requested();
    let push_pull = scopes.iter().any(|s| {
        s.strip_prefix("repository:test/app:").is_some_and(|a| {
            let mut actions: Vec<_> = a.split(',').collect();
            actions.sort();
            actions == ["pull", "push"]
        })
    });
    assert!(push_pull, "no push+pull scope for test/app in {scopes:?} ({:?})", tokens.requests());
    assert!(tokens.requests().iter().all(|r| r.starts_with("GET /token?") || r.starts_with("POST /token")), "{:?}", tokens.requests());

    let (ok, text) =
        skopeo(&["copy", "--dest-tls-verify=false", "--dest-creds", "bob:nope", &src, &format!("docker://{}/test/app:2", registry.host)]);
    assert!(!ok, "push with a wrong password should fail:\n{text}");

    // The token itself, fetched by hand.
    let basic = format!("Basic {}", base64_std(b"bob:hunter2"));
    let query = "/token?service=scratchpack-test-registry&scope=repository%3Atest%2Fapp%3Apull";
    let answer = http_request(&tokens.host, "GET", query, &[("Authorization", &basic)], b"").unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let json = answer.json();
    assert_eq!(json["token"], json["access_token"]);
    assert_eq!(json["expires_in"], 300);
    assert!(json["issued_at"].as_str().unwrap().ends_with('Z'));
    let token = json["token"].as_str().unwrap();
    let header = jwt_header(token);
    assert_eq!(header["alg"], "RS256");
    match key_header {
        JwtKeyHeader::Kid => assert_eq!(header["kid"].as_str().unwrap().len(), 59, "{header}"),
        JwtKeyHeader::X5c => assert_eq!(header["x5c"].as_array().unwrap().len(), 1, "{header}"),
    }
    let claims = jwt_claims(token);
    assert_eq!(claims["aud"], "scratchpack-test-registry");
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["access"], serde_json::json!([{"type": "repository", "name": "test/app", "actions": ["pull"]}]));
    // The registry accepts it.
    let bearer = format!("Bearer {token}");
    let tags = http_request(&registry.host, "GET", "/v2/test/app/tags/list", &[("Authorization", &bearer)], b"").unwrap();
    assert_eq!(tags.status, 200, "{}", tags.text());
    assert_eq!(tags.json()["tags"], serde_json::json!(["1"]));

    let wrong = format!("Basic {}", base64_std(b"bob:nope"));
    assert_eq!(http_request(&tokens.host, "GET", query, &[("Authorization", &wrong)], b"").unwrap().status, 401);

    // OAuth2 forms, and a shorter lifetime from now on.
    tokens.set_expires_in(5);
    let form = "grant_type=password&username=bob&password=hunter2&service=scratchpack-test-registry&client_id=t&access_type=offline&scope=repository%3Atest%2Fapp%3Apull%2Cpush";
    let headers = [("Content-Type", "application/x-www-form-urlencoded")];
    let oauth = http_request(&tokens.host, "POST", "/token", &headers, form.as_bytes()).unwrap();
    assert_eq!(oauth.status, 200, "{}", oauth.text());
    assert_eq!(oauth.json()["expires_in"], 5);
    assert_eq!(oauth.json()["refresh_token"], tokens.refresh_token());
    let refresh = format!(
        "grant_type=refresh_token&refresh_token={}&service=scratchpack-test-registry&client_id=t&scope=repository%3Atest%2Fapp%3Apull",
        tokens.refresh_token()
    );
    let refreshed = http_request(&tokens.host, "POST", "/token", &headers, refresh.as_bytes()).unwrap();
    assert_eq!(refreshed.status, 200, "{}", refreshed.text());
    let token = refreshed.json()["access_token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {token}");
    let tags = http_request(&registry.host, "GET", "/v2/test/app/tags/list", &[("Authorization", &bearer)], b"").unwrap();
    assert_eq!(tags.status, 200, "{}", tags.text());
    let bad = "grant_type=refresh_token&refresh_token=nope&service=scratchpack-test-registry&client_id=t";
    assert_eq!(http_request(&tokens.host, "POST", "/token", &headers, bad.as_bytes()).unwrap().status, 401);
}

#[test]
fn harness_token_registry_with_kid_tokens() {
    token_round_trip(JwtKeyHeader::Kid);
}

#[test]
fn harness_token_registry_with_x5c_tokens() {
    token_round_trip(JwtKeyHeader::X5c);
}

#[test]
fn harness_token_registry_rejects_expired_and_anonymous_tokens() {
    let tokens = TokenServer::start("bob", "hunter2", 300);
    let registry = Registry::start(RegistryOptions { tls: false, auth: RegistryAuth::Token(tokens.registry_config()) });
    // Anonymous: a token that grants nothing.
    let anonymous =
        http_request(&tokens.host, "GET", "/token?service=scratchpack-test-registry&scope=repository%3Atest%2Fapp%3Apull", &[], b"")
            .unwrap();
    assert_eq!(anonymous.status, 200);
    let token = anonymous.json()["token"].as_str().unwrap().to_string();
    assert_eq!(jwt_claims(&token)["access"], serde_json::json!([]));
    let bearer = format!("Bearer {token}");
    let denied = http_request(&registry.host, "GET", "/v2/test/app/tags/list", &[("Authorization", &bearer)], b"").unwrap();
    assert_eq!(denied.status, 401, "{}", denied.text());
    // Expired: registry 2.8 allows 60 s of leeway past `exp`, so a token that just expired still
    // works...
    tokens.set_expires_in(0);
    let basic = format!("Basic {}", base64_std(b"bob:hunter2"));
    let query = "/token?service=scratchpack-test-registry&scope=repository%3Atest%2Fapp%3Apull";
    let fetch = || {
        let answer = http_request(&tokens.host, "GET", query, &[("Authorization", &basic)], b"").unwrap();
        format!("Bearer {}", answer.json()["token"].as_str().unwrap())
    };
    let just_expired = fetch();
    std::thread::sleep(Duration::from_millis(1100));
    let lenient = http_request(&registry.host, "GET", "/v2/", &[("Authorization", &just_expired)], b"").unwrap();
    assert_eq!(lenient.status, 200, "{}", lenient.text());
    // ...while one signed with a clock two minutes behind is refused, whatever `expires_in` says.
    tokens.set_expires_in(30);
    tokens.set_clock_offset(-120);
    let stale = fetch();
    let expired = http_request(&registry.host, "GET", "/v2/", &[("Authorization", &stale)], b"").unwrap();
    assert_eq!(expired.status, 401, "{}", expired.text());
    assert!(registry.log().contains("invalid token"), "{}", registry.log());
    assert_eq!(tokens.tokens_issued(), 3);
}

#[test]
fn harness_proxy_forwards_a_skopeo_push() {
    let (_work, src) = layout();
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    let dest = format!("docker://{}/test/app:1", proxy.host);
    run_ok(Command::new("skopeo").args(["copy", "--dest-tls-verify=false", &src, &dest]));
    assert!(proxy.blob_bytes_uploaded() > 0);
    let requests = proxy.requests();
    assert!(requests.iter().any(|(m, p, s)| m == "PUT" && p == "/v2/test/app/manifests/1" && *s == 201), "{requests:#?}");
    // Read back through the proxy and directly.
    assert_eq!(skopeo_inspect(&dest, &["--tls-verify=false"])["Architecture"], "amd64");
    let direct = skopeo_inspect(&format!("docker://{}/test/app:1", registry.host), &["--tls-verify=false"]);
    assert_eq!(direct["Architecture"], "amd64");
    // A copy back out through the proxy reads blobs with GET (Content-Length bodies).
    let back = temp_dir();
    run_ok(Command::new("skopeo").args(["copy", "--src-tls-verify=false", &dest, &format!("oci:{}:x", back.path().display())]));
    proxy.reset_counters();
    assert!(proxy.requests().is_empty());
    assert_eq!(proxy.blob_bytes_uploaded(), 0);
}

#[test]
fn harness_proxy_injects_statuses() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::Status { method: "GET", path_contains: "/v2/", status: 503, times: 1, retry_after: Some(2) });
    let curl = |url: &str| {
        let output = run_ok(Command::new("curl").args(["-sS", "-D", "-", "-o", "/dev/null", url]));
        stdout(&output)
    };
    let url = format!("http://{}/v2/", proxy.host);
    let first = curl(&url);
    assert!(first.starts_with("HTTP/1.1 503"), "{first}");
    assert!(first.to_ascii_lowercase().contains("retry-after: 2"), "{first}");
    let second = curl(&url);
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert_eq!(proxy.requests(), [("GET".to_string(), "/v2/".to_string(), 503), ("GET".to_string(), "/v2/".to_string(), 200)]);
    assert_eq!(proxy.faults_left(), [0]);

    // On one keep-alive connection: a 429 on a PUT with a body keeps the connection usable.
    proxy.add(Fault::Status { method: "PUT", path_contains: "/blobs/uploads/", status: 429, times: 1, retry_after: None });
    let data = b"status fault body".to_vec();
    let digest = sha256_digest(&data);
    let location = start_upload_raw(&proxy.host, "test/status");
    let target = format!("{}&digest={digest}", location.strip_prefix(&format!("http://{}", proxy.host)).unwrap());
    let mut conn = HttpConnection::connect(&proxy.host).unwrap();
    let headers = [("Content-Type", "application/octet-stream")];
    let refused = conn.send("PUT", &target, &headers, &data).unwrap();
    assert_eq!(refused.status, 429);
    let head = conn.send("HEAD", "/v2/", &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let accepted = conn.send("PUT", &target, &headers, &data).unwrap();
    assert_eq!(accepted.status, 201, "{}", accepted.text());
    assert!(accepted.header("location").unwrap().starts_with(&format!("http://{}/", proxy.host)), "{:?}", accepted.headers);
    assert_eq!(proxy.blob_bytes_uploaded(), data.len() as u64, "refused bodies are not forwarded");
}

#[test]
fn harness_proxy_drops_a_request_body_once() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::DropRequestBody { method: "PUT", path_contains: "/blobs/uploads/", after_bytes: 1000, times: 1 });
    let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256_digest(&data);
    let put = |location: &str| {
        let target = format!("{location}&digest={digest}");
        http_request(&proxy.host, "PUT", &target, &[("Content-Type", "application/octet-stream")], &data)
    };
    let first = put(&start_upload_raw(&proxy.host, "test/drop"));
    assert!(first.is_err(), "the dropped upload got an answer: {first:?}");
    let second = put(&start_upload_raw(&proxy.host, "test/drop")).expect("the second upload");
    assert_eq!(second.status, 201, "{}", second.text());
    assert_eq!(proxy.blob_bytes_uploaded(), 1000 + data.len() as u64);
    let statuses: Vec<u16> = proxy.requests().iter().filter(|(m, _, _)| m == "PUT").map(|(_, _, s)| *s).collect();
    assert_eq!(statuses, [0, 201]);
    let head = http_request(&registry.host, "HEAD", &format!("/v2/test/drop/blobs/{digest}"), &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(data.len().to_string().as_str()));
    assert!(registry.wait_for_request("PUT", "/v2/test/drop/blobs/uploads/", 201));
}

#[test]
fn harness_proxy_forwards_chunked_uploads_and_truncates_responses() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    let parts: [&[u8]; 3] = [b"hello ", b"chunked ", b"world"];
    let data: Vec<u8> = parts.concat();
    let digest = sha256_digest(&data);
    let location = start_upload_raw(&proxy.host, "test/chunked");
    let path = location.strip_prefix(&format!("http://{}", proxy.host)).unwrap().to_string();

    // A chunked PATCH, written by hand on a keep-alive connection.
    let mut conn = HttpConnection::connect(&proxy.host).unwrap();
    let mut message = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
        proxy.host
    )
    .into_bytes();
    for part in parts {
        message.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        message.extend_from_slice(part);
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(b"0\r\n\r\n");
    conn.stream().write_all(&message).unwrap();
    let patched = conn.read_response("PATCH").unwrap();
    assert_eq!(patched.status, 202, "{}", patched.text());
    assert_eq!(patched.header("range"), Some(format!("0-{}", data.len() - 1).as_str()));
    let next = patched.header("location").unwrap();
    assert!(next.starts_with(&format!("http://{}/", proxy.host)), "{next}");
    let next_path = next.strip_prefix(&format!("http://{}", proxy.host)).unwrap();
    let done = conn.send("PUT", &format!("{next_path}&digest={digest}"), &[], b"").unwrap();
    assert_eq!(done.status, 201, "{}", done.text());
    assert_eq!(proxy.blob_bytes_uploaded(), data.len() as u64);

    // Truncated once, whole the next time.
    let blob_path = format!("/v2/test/chunked/blobs/{digest}");
    proxy.add(Fault::TruncateResponse { method: "GET", path_contains: "/blobs/sha256:", after_bytes: 5, times: 1 });
    let cut = http_request(&proxy.host, "GET", &blob_path, &[], b"");
    assert!(cut.is_err(), "a truncated body should fail to read: {cut:?}");
    let whole = http_request(&proxy.host, "GET", &blob_path, &[], b"").unwrap();
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, data);
    let gets: Vec<u16> = proxy.requests().iter().filter(|(m, p, _)| m == "GET" && p == &blob_path).map(|(_, _, s)| *s).collect();
    assert_eq!(gets, [200, 200]);

    // A raw response cut: the client sees the head and 5 body bytes, then the end.
    proxy.add(Fault::TruncateResponse { method: "GET", path_contains: "/blobs/sha256:", after_bytes: 5, times: 1 });
    let output = Command::new("curl").args(["-sS", "-o", "-", &format!("http://{}{blob_path}", proxy.host)]).output().unwrap();
    assert!(!output.status.success());
    assert_eq!(output.stdout, b"hello");
}

#[test]
fn harness_proxy_delays_responses() {
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    proxy.add(Fault::Delay { method: "*", path_contains: "/v2/", delay: Duration::from_millis(400), times: 1 });
    let started = Instant::now();
    let first = http_request(&proxy.host, "GET", "/v2/", &[], b"").unwrap();
    assert_eq!(first.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
    assert_eq!(proxy.faults_left(), [0]);
    assert_eq!(http_request(&proxy.host, "GET", "/v2/", &[], b"").unwrap().status, 200);
}

#[test]
fn harness_proxy_answers_tls_hellos_at_once() {
    use std::io::Read;
    let registry = Registry::plain();
    let proxy = FaultProxy::start(&registry.host);
    let mut stream = std::net::TcpStream::connect(&proxy.host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The start of a TLS ClientHello record.
    stream.write_all(&[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
    assert!(proxy.requests().is_empty());
}
